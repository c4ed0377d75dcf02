"""Numerics of the bounds against closed forms."""

import math

import pytest
import torch
from torch import distributions as D

import vaekit
from vaekit import bounds
from vaekit.train import TrainConfig, fit


def linear_gaussian_vae(x_dim=6, z_dim=2, sigma=0.5, seed=0):
    """Probabilistic PCA as a VAE: linear decoder, fixed-sigma Gaussian likelihood, Gaussian encoder."""
    torch.manual_seed(seed)
    return vaekit.build(
        "vae",
        data_shape=(x_dim,),
        latent_dim=z_dim,
        hidden=(z_dim,),
        activation="identity",
        likelihood="gaussian",
        sigma=sigma,
    )


def exact_log_marginal(model, x, sigma):
    """log N(x; b, W W^T + sigma^2 I) for the decoder's own affine map z -> W z + b."""
    dec = model.decoder.body
    d = model.config.latent_dim
    with torch.no_grad():
        b = dec(torch.zeros(1, d))[0]
        W = (dec(torch.eye(d)) - b).T  # (x_dim, d)
        cov = W @ W.T + sigma**2 * torch.eye(len(b))
    return D.MultivariateNormal(b.double(), cov.double()).log_prob(x.double())


def ppca_data(n=512, x_dim=6, z_dim=2, sigma=0.5, seed=1):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(x_dim, z_dim, generator=g)
    z = torch.randn(n, z_dim, generator=g)
    return z @ W.T + 0.3 + sigma * torch.randn(n, x_dim, generator=g)


def test_log_likelihood_matches_ppca_closed_form():
    x = ppca_data(n=256)
    model = linear_gaussian_vae()
    fit(
        model,
        x,
        TrainConfig(epochs=500, batch_size=256, lr=2e-2, lr_schedule="cosine", progress=False, tensorboard=False),
    )
    # Make q(z|x) a deliberately imperfect proposal (wider and shifted) so importance sampling has work to do.
    with torch.no_grad():
        d = model.config.latent_dim
        model.encoder.head.bias[d:] += math.log(1.5)
        model.encoder.head.bias[:d] += 0.2
    exact = exact_log_marginal(model, x[:64], 0.5)
    torch.manual_seed(0)
    est = vaekit.log_likelihood(model, x[:64], k=5000, batch_size=16, max_elements=2**16)
    err = (est.double() - exact).abs()
    assert err.mean() < 0.05, f"mean |error| {err.mean():.4f} nats"
    # the single-sample bound is clearly worse, and the ELBO sits below the exact value
    rec, kl = bounds.elbo_terms(model, x[:64], n_samples=2000)
    assert ((rec - kl).double() <= exact + 1e-3).all()
    assert (exact - (rec - kl).double()).mean() > 5 * err.mean()


def test_chunking_does_not_change_the_estimate():
    x = ppca_data(n=8)
    model = linear_gaussian_vae()
    torch.manual_seed(3)
    noise = torch.randn(300, 8, 2)
    fn = lambda xb, start, m: noise[start : start + m, : len(xb)]  # noqa: E731
    a = vaekit.log_likelihood(model, x, k=300, noise_fn=fn)
    b = vaekit.log_likelihood(model, x, k=300, noise_fn=fn, max_elements=6 * 8 * 7)  # chunks of 7 samples
    assert torch.allclose(a, b, atol=1e-5)


def test_iwae_bound_increases_with_k():
    x = ppca_data(n=256)
    model = linear_gaussian_vae()  # untrained: a poor q makes the gap between bounds large
    torch.manual_seed(0)
    vals = []
    for k in (1, 5, 50):
        reps = torch.stack([-bounds.iwae_bound(model, x, k=k).value.detach() for _ in range(20)])
        vals.append(reps.mean())
    assert vals[0] < vals[1] < vals[2], vals


def test_analytic_kl_equals_monte_carlo():
    torch.manual_seed(0)
    q = D.Independent(D.Normal(torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0.3, 1.5, 0.8])), 1)
    p = D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1)
    analytic = bounds.kl(q, p)
    z = q.sample((100_000,))
    terms = q.log_prob(z) - p.log_prob(z)
    se = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - analytic) < 3 * se


def test_kl_falls_back_to_monte_carlo_when_unregistered():
    loc, scale = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 2.0])
    # a Normal in disguise: N(0,1) pushed through z -> loc + scale * z; torch has no KL rule for it
    q = D.Independent(
        D.TransformedDistribution(D.Normal(torch.zeros(2), torch.ones(2)), [D.AffineTransform(loc, scale)]), 1
    )
    p = D.Independent(D.Normal(torch.zeros(2), torch.ones(2)), 1)
    with pytest.raises(NotImplementedError):
        D.kl_divergence(q, p)
    torch.manual_seed(0)
    mc = bounds.kl(q, p, n_samples=200_000)
    exact = D.kl_divergence(D.Independent(D.Normal(loc, scale), 1), p)
    assert abs(float(mc) - float(exact)) < 0.02


def test_elbo_with_beta_weights_only_the_kl():
    model = linear_gaussian_vae()
    x = ppca_data(n=32)
    torch.manual_seed(5)
    l1 = bounds.elbo(model, x, beta=1.0)
    torch.manual_seed(5)
    l2 = bounds.elbo(model, x, beta=2.0)
    assert torch.allclose(l2.value - l1.value, l1.terms["kl"])


@pytest.mark.parametrize("workers", [1, 2])
def test_iwae2015_quick_report_runs_every_row(tmp_path, workers):
    import json

    from vaekit.reports import run_report

    run_report("iwae2015", out_root=tmp_path, quick=True, budget_minutes=0.02, nll_k=20, workers=workers)
    rows = json.loads((tmp_path / "iwae2015" / "results.json").read_text())["rows"]
    assert [r["metric"].split(":")[0] for r in rows[::2]] == ["VAE (k=1)", "IWAE (k=5)", "IWAE (k=50)"]
    assert all(r["ours"] > 0 for r in rows[::2])  # an NLL in nats
    assert all(0 <= r["ours"] <= 8 for r in rows[1::2])  # active units of 8


def test_iwae2015_rows_option_trains_only_the_rows_asked_for(tmp_path):
    import json

    from vaekit.errors import VaekitError
    from vaekit.reports import run_report

    run_report("iwae2015", out_root=tmp_path, quick=True, budget_minutes=0.01, nll_k=10, rows="1,50")
    rows = json.loads((tmp_path / "iwae2015" / "results.json").read_text())["rows"]
    assert [r["metric"].split(":")[0] for r in rows[::2]] == ["VAE (k=1)", "IWAE (k=50)"]
    with pytest.raises(VaekitError, match=r"option rows takes k values from \[1, 5, 50\], got '2'"):
        run_report("iwae2015", out_root=tmp_path, quick=True, rows="2")


# -- the bounds' one home: per-item terms, warm-up, any proposal, seeded evaluation ----------------------
def decoder_affine(model):
    """(W, b) of a linear decoder z -> W z + b."""
    dec = model.decoder.body
    d = model.config.latent_dim
    with torch.no_grad():
        b = dec(torch.zeros(1, d))[0]
        return (dec(torch.eye(d)) - b).T, b


def exact_posterior(model, sigma):
    """x -> p(z|x) of the linear-Gaussian model, a full-covariance Gaussian."""
    W, b = decoder_affine(model)
    cov = torch.linalg.inv(torch.eye(W.shape[1]) + W.T @ W / sigma**2)
    return lambda x: D.MultivariateNormal((x - b) @ W @ cov / sigma**2, cov)


class WithEncoder(torch.nn.Module):
    """A model's decoder with another encoder (x -> a full-covariance Gaussian over z) and N(0, I) as a full-covariance
    Gaussian too, so that torch has the KL in closed form."""

    def __init__(self, model, encode):
        super().__init__()
        self.model, self.encode, self.decode, self.config = model, encode, model.decode, model.config

    def prior(self):
        d = self.config.latent_dim
        return D.MultivariateNormal(torch.zeros(d), torch.eye(d))


def test_with_the_exact_posterior_the_elbo_and_every_iwae_bound_are_log_p_x():
    x = ppca_data(n=16)
    vae = linear_gaussian_vae()
    model = WithEncoder(vae, exact_posterior(vae, 0.5))
    exact = exact_log_marginal(vae, x, 0.5)
    torch.manual_seed(0)
    with torch.no_grad():
        t = bounds.elbo_terms(model, x, n_samples=20000)  # KL analytic, E_q[log p(x|z)] by Monte Carlo
        assert torch.allclose(t.elbo.double(), exact, atol=0.05) and torch.equal(t.elbo, t.rec - t.kl)
        for k in (1, 7):  # log p(x, z) - log p(z|x) = log p(x) for every draw
            assert torch.allclose(bounds.log_weights(model, x, k).double(), exact.expand(k, -1), atol=2e-3)
            assert float(-bounds.iwae_bound(model, x, k=k).value) == pytest.approx(float(exact.mean()), abs=2e-3)


def test_mean_elbo_is_the_seeded_mean_of_the_per_item_elbo():
    from vaekit.evaluate import mean_elbo

    x = ppca_data(n=40)
    model = linear_gaussian_vae()
    torch.manual_seed(4)
    with torch.no_grad():
        expected = float(bounds.elbo_terms(model, x).elbo.double().mean())
    torch.manual_seed(1)
    after = torch.rand(2)
    torch.manual_seed(1)
    assert mean_elbo(model, x, seed=4) == pytest.approx(expected, rel=1e-6)
    assert mean_elbo(model, x, seed=4, batch_size=7) == mean_elbo(model, x, seed=4, batch_size=7)
    assert torch.equal(torch.rand(2), after)  # the caller's random stream is untouched


def test_elbo_with_the_prior_as_q_matches_its_closed_form():
    """q = p(z): KL = 0 and E_p(z)[log N(x; W z + b, s^2 I)] = log N(x; b, s^2 I) - tr(W^T W) / (2 s^2)."""
    x = ppca_data(n=8)
    vae = linear_gaussian_vae()
    W, b = decoder_affine(vae)
    model = WithEncoder(vae, lambda xb: D.MultivariateNormal(torch.zeros(len(xb), 2), torch.eye(2)))
    closed = D.Independent(D.Normal(b, 0.5), 1).log_prob(x) - (W * W).sum() / (2 * 0.5**2)
    torch.manual_seed(0)
    with torch.no_grad():
        t = bounds.elbo_terms(model, x, n_samples=20000)
    assert torch.allclose(t.kl, torch.zeros(8))
    assert torch.allclose(t.elbo, closed, atol=0.2)  # Monte Carlo: about 0.03 nats s.e. per item
    assert float(t.elbo.mean()) == pytest.approx(float(closed.mean()), abs=0.05)


def test_log_likelihood_with_any_proposal_is_a_bound_that_tightens_with_k():
    x = ppca_data(n=16)
    vae = linear_gaussian_vae()
    exact = exact_log_marginal(vae, x, 0.5)
    posterior = exact_posterior(vae, 0.5)
    torch.manual_seed(0)
    # the exact posterior as proposal: every weight is p(x), so even k = 2 gives log p(x)
    assert torch.allclose(bounds.log_likelihood(vae, x, k=2, proposal=posterior).double(), exact, atol=2e-3)
    # a poor proposal (the posterior, widened and shifted): a lower bound that rises with k towards log p(x)
    poor = lambda xb: D.Independent(D.Normal(posterior(xb).mean + 0.5, 3.0 * torch.ones(len(xb), 2)), 1)  # noqa: E731
    means = [
        float(torch.stack([bounds.log_likelihood(vae, x, k=k, proposal=poor) for _ in range(30)]).mean())
        for k in (1, 10, 1000)
    ]
    assert means[0] < means[1] < means[2] <= float(exact.mean()) + 0.01, (means, float(exact.mean()))
    assert float(exact.mean()) - means[2] < 0.05


def test_log_mean_exp_is_stable_and_exact():
    v = torch.tensor([[1.0, -2.0], [3.0, 0.5], [-1.0, 2.0]])
    assert torch.allclose(bounds.log_mean_exp(v), v.exp().mean(0).log())
    assert torch.allclose(bounds.log_mean_exp(v, 1), v.exp().mean(1).log())
    assert torch.allclose(bounds.log_mean_exp(v + 1000.0), v.exp().mean(0).log() + 1000.0)


def test_elbo_terms_loss_weights_the_kl_by_beta_and_logs_the_plain_elbo():
    t = bounds.ElboTerms(torch.tensor([-3.0, -5.0]), torch.tensor([1.0, 2.0]))
    loss = t.loss(beta=0.5)
    assert float(loss.value) == pytest.approx(4.0 + 0.5 * 1.5)
    assert {k: float(v) for k, v in loss.terms.items()} == {"elbo": -5.5, "rec": -4.0, "kl": 1.5}


def test_kl_weight_warms_up_linearly():
    cfg = linear_gaussian_vae().config
    assert bounds.kl_weight(cfg, 0) == 1.0  # no warm-up: beta from the start
    cfg.beta, cfg.warmup_steps = 2.0, 10
    assert [bounds.kl_weight(cfg, s) for s in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]


def test_seeded_repeats_its_draws_and_gives_back_the_callers_stream():
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    with bounds.seeded(7):
        a = torch.randn(4)
    with bounds.seeded(7):
        b = torch.randn(4)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(3), expected)  # the caller's stream as if nothing had been drawn


def test_item_means_averages_per_item_terms_over_batches():
    from vaekit.evaluate import item_means

    x = torch.arange(10.0)
    out = item_means(lambda rows: {"x": x[rows], "noise": torch.randn(len(x[rows]))}, len(x), seed=3, batch_size=3)
    assert out["x"] == pytest.approx(4.5)
    assert out == item_means(
        lambda rows: {"x": x[rows], "noise": torch.randn(len(x[rows]))}, len(x), seed=3, batch_size=3
    )
