"""Contract tests over the model registry: every NetConfig model trains, saves, loads and gives the same outputs."""

import dataclasses
import json

import pytest
import torch

from vaekit import checkpoint, likelihoods, models
from vaekit.errors import VaekitError
from vaekit.models.base import NetConfig
from vaekit.train import TrainConfig, fit

NET_MODELS = sorted(n for n, c in models.REGISTRY.items() if issubclass(c.Config, NetConfig))
VARIANTS = [
    dict(arch="mlp", likelihood="bernoulli", data_shape=(12,)),
    dict(arch="mlp", likelihood="gaussian", sigma=None, data_shape=(3, 4)),
    dict(arch="conv", likelihood="gaussian", sigma=0.3, data_shape=(1, 9, 7)),
    dict(arch="conv", likelihood="categorical", n_categories=4, data_shape=(10, 10)),
]


def data_for(cfg, n=24):
    x = torch.rand(n, *cfg["data_shape"])
    return (x * (cfg["n_categories"] - 1)).round() if cfg["likelihood"] == "categorical" else x


@pytest.mark.parametrize("name", NET_MODELS)
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: f"{v['arch']}-{v['likelihood']}")
def test_fit_save_load_same_outputs(tmp_path, name, variant):
    if name == "fontvae" and len(variant["data_shape"]) != 3:
        pytest.skip("fontvae items are a font's glyphs, shape (n_chars, H, W)")
    torch.manual_seed(0)
    model = models.build(name, latent_dim=3, hidden=(16,), channels=(4, 8), **variant)
    x = data_for(variant)
    hist = fit(model, x, TrainConfig(epochs=2, batch_size=8, progress=False, tensorboard=False), tmp_path / "r")
    assert len(hist.loss) == 6 and all(map(lambda v: v == v, hist.loss))
    loaded = checkpoint.load_model(tmp_path / "r")
    assert type(loaded) is type(model) and loaded.config == model.config
    for method in ("embed", "reconstruct"):  # same weights and same noise give the same outputs
        outs = []
        for m in (loaded, model):
            torch.manual_seed(1)
            outs.append(getattr(m, method)(x))
        assert torch.equal(*outs), method
    assert loaded.reconstruct(x).shape == x.shape
    q = model.encode(x)
    assert q.event_shape == (3,) and q.batch_shape == (24,)
    px = model.decode(q.rsample((5,)))
    assert px.batch_shape == (5, 24) and px.event_shape == tuple(variant["data_shape"])
    # the config survives a JSON round trip
    assert models.from_config(json.loads(models.to_json(model))).config == model.config


def test_conv_decoder_restores_odd_sizes():
    for shape in [(1, 25, 20), (3, 13, 17), (28, 28)]:
        m = models.build("vae", data_shape=shape, arch="conv", latent_dim=2, hidden=(8,), channels=(4, 4))
        assert m.reconstruct(torch.rand(2, *shape)).shape == (2, *shape)


def test_likelihood_log_probs_match_closed_forms():
    h = torch.randn(2, 3)
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    bern = likelihoods.distribution(h, "bernoulli", (3,)).log_prob(x)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(h, x, reduction="none").sum(1)
    assert torch.allclose(bern, expected)
    gauss = likelihoods.distribution(h, "gaussian", (3,), sigma=2.0).log_prob(x)
    assert torch.allclose(
        gauss, (-((x - h) ** 2) / 8 - torch.log(torch.tensor(2.0)) - 0.5 * torch.log(torch.tensor(6.283185307))).sum(1)
    )


def test_beta_vae_and_iwae_objectives_differ_from_vae():
    torch.manual_seed(0)
    x = torch.rand(16, 12)
    base = dict(data_shape=(12,), latent_dim=2, hidden=(8,))
    vae = models.build("vae", **base)
    iwae = models.build("iwae", k=10, **base)
    iwae.load_state_dict(vae.state_dict())
    torch.manual_seed(1)
    v = -vae.loss(x).value
    torch.manual_seed(1)
    w = -iwae.loss(x).value
    assert w > v  # the IWAE-10 bound is tighter than the ELBO


def test_unknown_model_and_fields():
    with pytest.raises(VaekitError, match="unknown model 'diffusion'.*autoencoder"):
        models.build("diffusion")
    with pytest.raises(VaekitError, match="unknown config field"):
        models.build("vae", latnt_dim=3)
    with pytest.raises(VaekitError, match="likelihood"):
        models.build("vae", likelihood="poisson")
    with pytest.raises(VaekitError, match="model config must be a JSON object"):
        models.from_config({"config": {}})


def test_config_dataclasses_live_next_to_models():
    for name, cls in models.REGISTRY.items():
        assert dataclasses.is_dataclass(cls.Config), name
        assert cls.name == name


def test_every_model_states_what_it_is_and_can_do():
    from vaekit.models import REGISTRY

    for name, cls in REGISTRY.items():
        caps = {c: getattr(cls, c) for c in ("has_encoder", "encoder_density", "has_likelihood", "can_sample")}
        assert all(isinstance(v, bool) for v in caps.values()), (name, caps)
        assert cls.item_kind in ("array", "font", "molecule"), name
        assert caps["has_encoder"] or not caps["encoder_density"], name  # a density needs an encoder
