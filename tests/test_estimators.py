"""Gradient estimators against closed forms: E_{N(mu, s^2)}[f(z)] for a quadratic and a step f."""

import math

import pytest
import torch
from torch import distributions as D

from vaekit import bounds
from vaekit import estimators as E
from vaekit.errors import VaekitError
from vaekit.models import build

C = torch.tensor([1.0, 0.0, -0.5])


def gaussian(theta):
    return D.Independent(D.Normal(theta[0], theta[1]), 1)


def params():
    mu = torch.tensor([0.5, -1.0, 0.2], requires_grad=True)
    s = torch.tensor([0.8, 1.2, 0.5], requires_grad=True)
    return mu, s


def quadratic(z):
    return (z - C).pow(2).sum(-1)  # E f = |mu - c|^2 + |s|^2


def step(z):
    return (z > C).float().sum(-1)  # E f = sum Phi((mu - c) / s)


def estimators(mu, s, f, with_reparam=True):
    out = {
        "score_loo": lambda: E.score_function(gaussian([mu, s]), f, 4, "loo"),
        "score_moving_average": (lambda ma: lambda: E.score_function(gaussian([mu, s]), f, 4, ma))(
            E.MovingAverage(0.9)
        ),
        "score_no_baseline": lambda: E.score_function(gaussian([mu, s]), f, 4, None),
        "es": lambda: E.evolution_strategies(gaussian, [mu, s], f, n_pairs=2, sigma=0.05),
    }
    if with_reparam:
        out["reparam"] = lambda: E.reparam(gaussian([mu, s]), f, 4)
    return out


def assert_unbiased(stats, truth, name):
    for m, t, se in zip(stats.mean, truth, stats.standard_error()):
        z = ((m - t) / se).abs().max().item()
        assert z < 4.0, f"{name}: estimate {m.tolist()} vs closed form {t.tolist()} ({z:.1f} standard errors)"


def test_quadratic_all_unbiased_and_reparam_lowest_variance():
    torch.manual_seed(0)
    mu, s = params()
    truth = [2 * (mu - C).detach(), 2 * s.detach()]
    var = {}
    for name, est in estimators(mu, s, quadratic).items():
        stats = E.gradient_variance(est, [mu, s], n_repeats=1500)
        assert_unbiased(stats, truth, name)
        var[name] = stats.total_variance()
    assert min(var, key=var.get) == "reparam", var
    assert var["score_loo"] < var["score_no_baseline"], var


def test_reparam_variance_matches_closed_form():
    torch.manual_seed(1)
    mu, s = params()
    stats = E.gradient_variance(lambda: E.reparam(gaussian([mu, s]), quadratic, 1), [mu, s], n_repeats=4000)
    # d/dmu (z - c)^2 = 2(z - c), z ~ N(mu, s^2): variance 4 s^2
    assert torch.allclose(stats.variance[0], 4 * s.detach() ** 2, rtol=0.1)


def test_step_function_score_and_es_work_reparam_refuses():
    torch.manual_seed(2)
    mu, s = params()
    a = ((mu - C) / s).detach()
    phi = torch.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    truth = [phi / s.detach(), -phi * a / s.detach()]
    with pytest.raises(VaekitError, match="re-parametrization is unavailable"):
        E.reparam(gaussian([mu, s]), step, 4)
    for name, est in estimators(mu, s, step, with_reparam=False).items():
        assert_unbiased(E.gradient_variance(est, [mu, s], n_repeats=1500), truth, name)


def test_surrogate_value_equals_estimate_and_value_is_mean():
    torch.manual_seed(3)
    mu, s = params()
    truth = ((mu - C) ** 2 + s**2).sum().item()
    for name, est in estimators(mu, s, quadratic).items():
        e = est()
        assert torch.allclose(e.surrogate.detach(), e.value), name
        vals = torch.stack([est().value for _ in range(400)])
        assert abs(vals.mean().item() - truth) < 4 * vals.std().item() / 20 + (0.05 if name == "es" else 0), name


def test_batched_q_and_decoder_parameters_get_gradients():
    torch.manual_seed(4)
    model = build("vae", data_shape=(6,), latent_dim=2, hidden=(8,))
    x = torch.bernoulli(torch.full((5, 6), 0.5))
    for est in E.ESTIMATORS:
        model.zero_grad()
        loss = bounds.elbo(model, x, estimator=est, n_samples=2)
        assert loss.value.shape == () and torch.isfinite(loss.value)
        loss.value.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (est, name)
            assert p.grad.abs().sum() > 0, (est, name)
        assert abs(loss.value.item() + loss.terms["elbo"].item()) < 1e-4


def test_elbo_estimators_agree_on_decoder_gradient_in_expectation():
    torch.manual_seed(5)
    model = build("vae", data_shape=(6,), latent_dim=2, hidden=(8,))
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    w = model.decoder.body.net[-1].bias
    means = {}
    for est in ("reparam", "score"):
        st = E.gradient_variance(
            lambda est=est: bounds.elbo(model, x, estimator=est, n_samples=2).value, [w], n_repeats=800
        )
        means[est] = (st.mean[0], st.standard_error()[0])
    diff = (means["reparam"][0] - means["score"][0]).abs()
    se = (means["reparam"][1] ** 2 + means["score"][1] ** 2).sqrt()
    assert (diff < 4 * se + 1e-6).all()


def test_bad_input_errors():
    mu, s = params()
    q = gaussian([mu, s])
    with pytest.raises(VaekitError, match="leave-one-out"):
        E.score_function(q, quadratic, 1, "loo")
    with pytest.raises(VaekitError, match="baseline"):
        E.score_function(q, quadratic, 2, "median")
    with pytest.raises(VaekitError, match="n_samples"):
        E.reparam(q, quadratic, 0)
    with pytest.raises(VaekitError, match="shape"):
        E.reparam(q, lambda z: z, 2)  # one value per sample and item expected
    with pytest.raises(VaekitError, match="sigma"):
        E.evolution_strategies(gaussian, [mu, s], quadratic, sigma=0.0)
    with pytest.raises(VaekitError, match="no rsample"):
        E.reparam(D.Bernoulli(probs=torch.tensor([0.3])), lambda z: z, 2)
    with pytest.raises(VaekitError, match="estimator"):
        bounds.elbo(build("vae", data_shape=(6,), latent_dim=2, hidden=(8,)), torch.zeros(2, 6), estimator="magic")
    with pytest.raises(VaekitError, match="decay"):
        E.MovingAverage(1.5)


def test_score_function_on_discrete_q():
    # E_{Bernoulli(p)}[z] = p, d/dp = 1: score function handles a q without rsample
    torch.manual_seed(6)
    p = torch.tensor([0.3], requires_grad=True)
    st = E.gradient_variance(lambda: E.score_function(D.Bernoulli(probs=p), lambda z: z, 4, "loo"), [p], 2000)
    assert abs(st.mean[0].item() - 1.0) < 4 * st.standard_error()[0].item()


@pytest.mark.slow
def test_report_quick_mode(tmp_path):
    import json
    import os

    if not os.environ.get("VAEKIT_DATA"):
        pytest.skip("VAEKIT_DATA is not set: the report's MNIST parts need the shared data")
    from vaekit.reports import run_report

    run_report("estimators", out_root=tmp_path, quick=True)
    res = json.loads((tmp_path / "estimators" / "results.json").read_text())
    assert set(res["figures"]) == {"variance_vs_samples.png", "training_curves.png"}
    assert all((tmp_path / "estimators" / f).stat().st_size > 10_000 for f in res["figures"])
    checked = [r for r in res["rows"] if r["met"] is not None]
    assert checked and all(r["met"] for r in checked), [r["metric"] for r in checked if not r["met"]]
