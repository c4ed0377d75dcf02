"""Density-ratio estimation by classification: KL between Gaussians against the closed form."""

import pytest
import torch
from torch import distributions as D

from vaekit import ratio
from vaekit.errors import VaekitError
from vaekit.models import build


def gaussians(d):
    if d == 2:
        m, sd = torch.tensor([1.0, -0.5]), torch.tensor([0.7, 1.5])
    else:
        g = torch.Generator().manual_seed(1)
        m, sd = torch.randn(d, generator=g) * 0.5, torch.exp(torch.randn(d, generator=g) * 0.3)
    p = D.Independent(D.Normal(torch.zeros(d), torch.ones(d)), 1)
    q = D.Independent(D.Normal(m, sd), 1)
    return p, q


@pytest.mark.parametrize("d,quadratic", [(2, False), (10, True)])
def test_kl_between_gaussians_within_5_percent(d, quadratic):
    torch.manual_seed(0)
    p, q = gaussians(d)
    truth = D.kl_divergence(p, q).item()  # 1.37 nats (2-D), 1.56 nats (10-D)
    est = ratio.kl_divergence(
        lambda n: p.sample((n,)),
        lambda n: q.sample((n,)),
        steps=1500,
        batch_size=512,
        hidden=(64, 64),
        lr=3e-3,
        quadratic=quadratic,
    )
    assert abs(est.kl - truth) < 0.05 * truth, (est.kl, truth)
    assert 0.6 < est.accuracy < 0.9


def test_critic_logit_is_the_log_ratio_pointwise():
    torch.manual_seed(1)
    p, q = gaussians(2)
    critic = ratio.fit_ratio(
        lambda n: p.sample((n,)), lambda n: q.sample((n,)), steps=1500, batch_size=512, hidden=(64, 64), lr=3e-3
    )
    x = p.sample((2000,))
    with torch.no_grad():
        err = critic(x) - (p.log_prob(x) - q.log_prob(x))
    assert err.abs().median() < 0.15, err.abs().median()


def test_tensors_of_samples_and_identical_distributions():
    torch.manual_seed(2)
    a, b = torch.randn(4000, 3), torch.randn(4000, 3)
    est = ratio.kl_divergence(a, b, steps=300, batch_size=256, hidden=(32,))
    assert abs(est.kl) < 0.05 and abs(est.accuracy - 0.5) < 0.05


def test_aggregate_kl_of_a_vae_is_small_and_nonnegative_in_expectation():
    torch.manual_seed(3)
    model = build("vae", data_shape=(5,), latent_dim=2, hidden=(8,))
    x = torch.rand(3000, 5)
    est = ratio.aggregate_kl(model, x, steps=300, batch_size=256, hidden=(32,))
    assert est.kl > -3 * est.standard_error - 0.02
    assert est.kl < 1.0


def test_logistic_loss_values():
    big = torch.full((10,), 30.0)
    loss = ratio.logistic_loss(big, -big)
    assert loss.value.item() < 1e-10 and loss.terms["disc_acc"].item() == 1.0
    zero = torch.zeros(10)
    assert abs(ratio.logistic_loss(zero, zero).value.item() - 2 * torch.log(torch.tensor(2.0)).item()) < 1e-6


def test_bad_input_errors():
    with pytest.raises(VaekitError, match="tensor"):
        ratio.fit_ratio(torch.randn(5, 2), torch.randn(100, 2), steps=1)
    bad = torch.randn(100, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(VaekitError, match="NaN"):
        ratio.fit_ratio(torch.randn(100, 2), bad, steps=1)
    with pytest.raises(VaekitError, match="input features"):
        ratio.Critic(3)(torch.randn(4, 2))
