"""Property-based fuzzing of every parser: any input loads or raises VaekitError, nothing else.

Cases per parser per run: $VAEKIT_FUZZ_CASES (default 150); hypothesis also shrinks any failure.
"""

import gzip
import io
import json
import os
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit import models
from vaekit.cli import _read_json, build_parser
from vaekit.data import read_idx
from vaekit.data.arrays import load_array
from vaekit.data.images import load_image_folder
from vaekit.errors import VaekitError

CASES = int(os.environ.get("VAEKIT_FUZZ_CASES", "150"))
SETTINGS = settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def loads_or_vaekit_error(fn, *args):
    try:
        return fn(*args)
    except VaekitError as e:
        assert str(e) and "\n" not in str(e)
        return None


def valid_idx(shape):
    return (
        struct.pack(">BBBB", 0, 0, 8, len(shape))
        + b"".join(struct.pack(">I", s) for s in shape)
        + bytes(int(np.prod(shape)))
    )


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda shape, cut, flip: (
                bytearray(valid_idx(shape))[:cut]
                if cut
                else valid_idx(shape)[:4] + bytes([flip]) + valid_idx(shape)[5:]
            ),
            st.lists(st.integers(1, 5), min_size=1, max_size=3),
            st.integers(0, 40),
            st.integers(0, 255),
        ),
        st.builds(lambda b: gzip.compress(b)[: len(b) // 2 + 10], st.binary(max_size=200)),
        # headers that claim absurd sizes must not allocate them
        st.builds(
            lambda dims: struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims),
            st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
        ),
    )
)
def test_idx_parser(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("idx") / "f-idx3-ubyte"
    path.write_bytes(bytes(raw))
    out = loads_or_vaekit_error(read_idx, path)
    assert out is None or isinstance(out, np.ndarray)


def npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(lambda b: b"\x93NUMPY" + b, st.binary(max_size=200)),
        st.builds(
            lambda a, cut: npz_bytes({"x": a})[:cut],
            st.builds(lambda n, d: np.random.rand(n, d), st.integers(0, 4), st.integers(0, 4)),
            st.integers(0, 400),
        ),
        st.builds(lambda name: npz_bytes({name: np.arange(6).reshape(2, 3)}), st.text(min_size=1, max_size=8)),
    ),
    st.sampled_from([".npy", ".npz"]),
)
def test_numpy_parser(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("np") / f"f{suffix}"
    path.write_bytes(raw)
    loads_or_vaekit_error(load_array, path)


@SETTINGS
@given(st.lists(st.binary(max_size=120), min_size=1, max_size=3))
def test_image_folder_parser(tmp_path_factory, files):
    folder = tmp_path_factory.mktemp("img")
    for i, raw in enumerate(files):
        (folder / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + raw if i % 2 else raw)
    loads_or_vaekit_error(load_image_folder, folder)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**7) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=12,
)
config_fields = st.fixed_dictionaries(
    {},
    optional={
        "data_shape": st.lists(st.integers(-2, 70), max_size=3),
        "latent_dim": st.integers(-2, 2**17),
        "hidden": st.lists(st.integers(-1, 2**17), max_size=3),
        "activation": st.sampled_from(["relu", "tanh", "bogus"]),
        "arch": st.sampled_from(["mlp", "conv", "rnn"]),
        "likelihood": st.sampled_from(["bernoulli", "gaussian", "x"]),
        "sigma": st.one_of(st.none(), st.floats(-1, 2)),
        "beta": json_values,
        "k": st.integers(-3, 5),
        "channels": st.lists(st.integers(0, 8), max_size=2),
        "n_categories": st.integers(-1, 10**6),
    },
)


@SETTINGS
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"model": st.sampled_from(["vae", "iwae", "autoencoder", "nope"]), "config": config_fields}
        ),
    )
)
def test_model_config_json(doc):
    loads_or_vaekit_error(models.from_config, json.loads(json.dumps(doc)))


@SETTINGS
@given(st.binary(max_size=200))
def test_json_config_files(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("json") / "config.json"
    path.write_bytes(raw)
    loads_or_vaekit_error(_read_json, path)


@SETTINGS
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "fit",
                    "eval",
                    "sample",
                    "encode",
                    "data",
                    "fetch",
                    "report",
                    "--epochs",
                    "--hidden",
                    "--latent-dim",
                    "--lr",
                    "-n",
                    "--k",
                    "--model",
                    "--nproc",
                    "1,2",
                    "x",
                    "-1",
                    "1e9",
                    "--",
                    "--resume",
                ]
            ),
            st.text(max_size=6),
        ),
        max_size=8,
    )
)
def test_cli_arguments(argv):
    try:
        build_parser().parse_args(argv)
    except SystemExit as e:  # argparse's usage error: exit status 2 with a message
        assert e.code in (0, 2)


def _checkpoint_bytes():
    import tempfile
    from pathlib import Path

    from vaekit import checkpoint

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.safetensors"
        checkpoint.save(path, models.build("vae", data_shape=(3,), latent_dim=1, hidden=(2,)), step=1)
        return path.read_bytes()


CHECKPOINT = _checkpoint_bytes()


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(lambda cut: CHECKPOINT[:cut], st.integers(0, len(CHECKPOINT))),
        st.builds(
            lambda i, bit: CHECKPOINT[:i] + bytes([CHECKPOINT[i] ^ (1 << bit)]) + CHECKPOINT[i + 1 :],
            st.integers(0, len(CHECKPOINT) - 1),
            st.integers(0, 7),
        ),
    )
)
def test_checkpoint_parser(tmp_path_factory, raw):
    from vaekit import checkpoint

    path = tmp_path_factory.mktemp("ck") / "c.safetensors"
    path.write_bytes(raw)
    loads_or_vaekit_error(checkpoint.load_model, path)
