"""bench/vs_pythae.py: the one ELBO function it scores every model with, checked against closed forms and
against each library's own objective; a smoke run when pythae is installed (it is not a vaekit dependency:
run these with an interpreter that has it, e.g. $PYTHAE_VENV/bin/python -m pytest tests/test_bench_pythae.py)."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import distributions as D

import vaekit
from vaekit import bounds

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def vs():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("vs_pythae", BENCH / "vs_pythae.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(BENCH))


def needs_pythae(vs):
    if vs.pythae is None:
        pytest.skip(f"pythae is not installed in this interpreter ({vs.PYTHAE_ERROR})")


def test_elbo_of_prior_posterior_and_flat_decoder_is_minus_784_log2(vs):
    x = torch.bernoulli(torch.full((7, 784), 0.3, dtype=torch.float32))

    def zeros(xb):  # q = p, so KL = 0
        return torch.zeros(len(xb), 4), torch.zeros(len(xb), 4)

    def flat(z):  # p(x_i = 1 | z) = 1/2
        return torch.zeros(*z.shape[:-1], 784)

    assert vs.test_elbo(zeros, flat, x, batch_size=3) == pytest.approx(-784 * math.log(2), rel=1e-6)


def test_elbo_kl_term_matches_torch_closed_form(vs):
    mu, log_std = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[-0.3, 0.2, -1.5]])
    x = torch.ones(1, 784)
    got = vs.test_elbo(lambda xb: (mu, log_std), lambda z: torch.zeros(*z.shape[:-1], 784), x)
    q, p = D.Normal(mu, log_std.exp()), D.Normal(torch.zeros(3), torch.ones(3))
    want = -784 * math.log(2) - float(D.kl_divergence(q, p).sum())
    assert got == pytest.approx(want, rel=1e-6)


def test_vaekit_parts_give_vaekit_own_elbo_with_the_same_noise(vs):
    torch.manual_seed(0)
    model = vaekit.build("vae", data_shape=(784,), latent_dim=5, hidden=(32,)).eval()
    x = torch.bernoulli(torch.rand(20, 784))
    got = vs.test_elbo(*vs.vaekit_parts(model), x, n_samples=1, seed=3)
    eps = torch.randn(1, 20, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        q = model.encode(x)
        want = (model.decode(q.mean + q.stddev * eps).log_prob(x).mean(0) - bounds.kl(q, model.prior())).mean()
    assert got == pytest.approx(float(want), rel=1e-5)


def test_pythae_parts_give_minus_pythae_loss_with_the_same_noise(vs):
    needs_pythae(vs)
    torch.manual_seed(0)
    model = vs.PythaeVAE(vs.VAEConfig(input_dim=(784,), latent_dim=5, reconstruction_loss="bce")).eval()
    x = torch.bernoulli(torch.rand(20, 784))
    got = vs.test_elbo(*vs.pythae_parts(model), x, n_samples=1, seed=3)
    torch.manual_seed(3)  # pythae draws eps with randn_like: the same stream
    with torch.no_grad():
        loss = float(model({"data": x}).loss)
    assert got == pytest.approx(-loss, rel=1e-5)


def test_pythae_parts_refuse_a_decoder_without_final_sigmoid(vs):
    needs_pythae(vs)
    model = vs.PythaeVAE(vs.VAEConfig(input_dim=(784,), latent_dim=5, reconstruction_loss="bce"))
    model.decoder.layers[-1] = model.decoder.layers[-1][:-1]
    with pytest.raises(RuntimeError, match="Linear \\+ Sigmoid"):
        vs.pythae_parts(model)


def test_quick_benchmark_runs_and_reports_both_libraries(vs):
    needs_pythae(vs)
    if not os.environ.get("VAEKIT_DATA"):
        pytest.skip("VAEKIT_DATA is not set (MNIST is needed)")
    out = vs.main(["--quick", "--epochs", "1", "--repeats", "1"])
    assert out["compared_with"] == "pythae"
    res = out["results"]
    assert res["pythae"]["parameters"] == res["vaekit"]["parameters"] == res["plain_torch"]["parameters"]
    for v in res.values():
        assert len(v["epoch_wall_s"][0]) == 1 and v["epoch_cpu_s"][0][0] > 0
        assert -400 < v["test_elbo"][0] < -100  # one epoch on 6,000 images: well above chance
    assert out["speed_ratio_epoch_wall"] > 0
