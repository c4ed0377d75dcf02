"""Fuzzing checkpoint headers: a checkpoint whose model config has been tampered with (and its checksum
rewritten to match) either loads or is refused with a one-line VaekitError, never another exception.

Cases per run: $VAEKIT_FUZZ_CASES (default 150), as in test_fuzz.py.  That such files are refused without
allocating what they claim is measured in test_checkpoint.py (test_crafted_huge_header_is_refused_without_allocating).
"""

import json
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import vaekit
from vaekit import checkpoint
from vaekit.errors import VaekitError

CASES = int(os.environ.get("VAEKIT_FUZZ_CASES", "150"))
SETTINGS = settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

MODELS = {
    "vae": dict(data_shape=(6,), latent_dim=2, hidden=(8,)),
    "aae": dict(data_shape=(2, 4, 4), latent_dim=2, hidden=(4,), arch="conv", channels=(2,), prior="ring"),
    "avb": dict(data_shape=(5,), latent_dim=2, hidden=(4,), likelihood="gaussian", sigma=None, critic_hidden=(4,)),
    "gan": dict(data_shape=(3,), hidden=(4,), disc_hidden=(4,)),
    "chemvae": dict(
        tokens=("<pad>", "<bos>", "<eos>", "C", "O"),
        max_len=8,
        latent_dim=2,
        conv_channels=(2,),
        conv_kernels=(3,),
        dense=4,
        embed_dim=2,
        gru_hidden=4,
        gru_layers=1,
        prop_hidden=(4,),
        properties=("logP",),
        prop_mean=(0.5,),
        prop_std=(2.0,),
    ),
}

# what a tampered field may hold: every JSON type, sizes that fit, sizes far too big, and nonsense
scalars = (
    st.integers(-3, 70)
    | st.integers(2**16, 2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.text(max_size=6)
    | st.sampled_from(["relu", "conv", "gaussian", "ring"])
)
sizes = st.lists(st.integers(1, 70) | st.integers(2**16, 2**40), min_size=1, max_size=3)
values = sizes | st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{model name: (tensors, header)} of one small saved checkpoint per model."""
    out = {}
    for name, config in MODELS.items():
        torch.manual_seed(0)
        path = tmp_path_factory.mktemp("good") / f"{name}.safetensors"
        checkpoint.save(path, vaekit.build(name, **config))
        out[name] = checkpoint.read(path)
    return out


@SETTINGS
@given(name=st.sampled_from(sorted(MODELS)), data=st.data())
def test_tampered_model_config_loads_or_is_a_one_line_error(saved, tmp_path_factory, name, data):
    tensors, header = saved[name]
    header = json.loads(json.dumps(header))
    config = header["model"]["config"]
    fields = data.draw(st.lists(st.sampled_from(sorted(config) + ["bogus"]), min_size=1, max_size=3, unique=True))
    for field in fields:
        config[field] = data.draw(values)
    if data.draw(st.sampled_from([False] * 9 + [True])):  # now and then the whole model entry
        header["model"] = data.draw(values | st.fixed_dictionaries({"model": values, "config": values}))
    header["sha256"] = checkpoint._digest(tensors, header)
    path = tmp_path_factory.mktemp("forged") / "c.safetensors"
    save_file(tensors, path, metadata={"vaekit": json.dumps(header)})
    try:
        model = checkpoint.load_model(path)
    except VaekitError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
    else:  # a config that still describes these tensors
        assert sum(p.numel() for p in model.state_dict().values()) == sum(
            t.numel() for k, t in tensors.items() if k.startswith("model.")
        )


@SETTINGS
@given(name=st.sampled_from(sorted(vaekit.models.REGISTRY)), data=st.data())
def test_type_checked_config_values_never_trip_the_config_classes(name, data):
    """After `typed_config`, a config dataclass either accepts the values or raises VaekitError: its own checks
    (`latent_dim < 1`, `arch not in ...`) never meet a value of the wrong type."""
    import dataclasses

    cls = vaekit.models.get(name).Config
    fields = [f.name for f in dataclasses.fields(cls)]
    config = data.draw(st.dictionaries(st.sampled_from(fields), values, max_size=4))
    try:
        cls(**vaekit.models.typed_config(cls, config))
    except VaekitError as e:
        assert "\n" not in str(e)
