# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Density ratios by classification, and adversarial variational Bayes
#
# Much of variational inference needs a **ratio of densities**, $r(x) = p(x)/q(x)$: the KL term of the
# ELBO is $\mathbb E_q[\log q(z\mid x)/p(z)]$.  When $q$ can only be *sampled* (an implicit distribution, a
# neural sampler, an aggregate of many posteriors) no density is available, but the ratio still is: train a
# classifier to tell the two apart.
#
# **The trick.**  Label samples of $p$ with $y=1$ and samples of $q$ with $y=0$, in equal numbers, and fit a
# classifier $D(x) = \sigma(T(x))$ by the logistic loss
#
# $$\min_T\; -\mathbb E_{p}\big[\log \sigma(T(x))\big] - \mathbb E_{q}\big[\log(1-\sigma(T(x)))\big].$$
#
# The Bayes-optimal classifier is $D^*(x) = \frac{p(x)}{p(x)+q(x)}$, so its logit is the log ratio:
#
# $$T^*(x) = \log\frac{D^*(x)}{1-D^*(x)} = \log\frac{p(x)}{q(x)},\qquad
#   \mathrm{KL}(p\,\Vert\,q) = \mathbb E_p\Big[\log\frac{p}{q}\Big] \approx \frac1n\sum_{i} T(x_i),\ x_i\sim p.$$
#
# `vaekit.ratio` implements it (`fit_ratio`, `kl_divergence`, `aggregate_kl`); `vaekit`'s `avb` model uses it
# to train a VAE whose posterior has no density (Mescheder, Nowozin & Geiger 2017).
#
# `QUICK=1` in the environment trains briefly (the whole notebook runs in well under a minute).

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import distributions as D

import vaekit
from vaekit import latent, ratio
from vaekit.data import load
from vaekit.train import TrainConfig, fit

QUICK = os.environ.get("QUICK", "") not in ("", "0")
STEPS = 600 if QUICK else 3000           # classifier training steps
torch.manual_seed(0)

# %% [markdown]
# ## 1. A log ratio we know: two Gaussians
#
# For $p = \mathcal N(0, 1)$ and $q = \mathcal N(1, 1.5^2)$,
#
# $$\log\frac{p(x)}{q(x)} = \log 1.5 - \frac{x^2}{2} + \frac{(x-1)^2}{2\cdot 1.5^2},\qquad
#   \mathrm{KL}(p\,\Vert\,q) = \log 1.5 + \frac{1 + 1}{2\cdot 1.5^2} - \frac12 .$$
#
# The log ratio of two Gaussians is quadratic in $x$; `quadratic=True` gives the critic $x^2$ as a feature,
# so it can represent it exactly.  We also fit a plain MLP critic, which has to learn the shape.

# %%
p, q = D.Normal(0.0, 1.0), D.Normal(1.0, 1.5)
draw_p, draw_q = (lambda n: p.sample((n, 1))), (lambda n: q.sample((n, 1)))
grid = torch.linspace(-4, 5, 200)[:, None]
exact = p.log_prob(grid) - q.log_prob(grid)
kl_exact = float(D.kl_divergence(p, q))

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(grid, exact, "k-", lw=2, label="exact log p/q")
for quadratic in (True, False):
    est = ratio.kl_divergence(draw_p, draw_q, steps=STEPS, hidden=(64, 64), quadratic=quadratic, seed=0)
    with torch.no_grad():                 # est.critic is the fitted classifier (ratio.fit_ratio alone returns it)
        ax.plot(grid, est.critic(grid), "--", label=f"critic, quadratic={quadratic}")
    print(f"quadratic={quadratic!s:5}: KL(p||q) estimate {est.kl:.4f} ± {est.standard_error:.4f}   "
          f"closed form {kl_exact:.4f}   held-out accuracy {est.accuracy:.3f}")
    assert abs(est.kl - kl_exact) < 0.05 + 3 * est.standard_error
ax.hist(draw_p(5000).squeeze(), bins=60, density=True, alpha=0.25, label="samples of p")
ax.hist(draw_q(5000).squeeze(), bins=60, density=True, alpha=0.25, label="samples of q")
ax.set_ylim(-6, 2)
ax.set_xlabel("x")
ax.set_title("The classifier's logit is the log density ratio")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# The estimate is good where both distributions have samples and drifts where neither has (the tails).
#
# ## 2. Where it gets hard: large KL
#
# For $p = \mathcal N(\mu, I)$ and $q = \mathcal N(0, I)$, $\mathrm{KL} = \lVert\mu\rVert^2/2$.  As the two
# separate, the classifier reaches near-perfect accuracy with a logit that need not grow any further: the
# logistic loss is almost zero already.  The estimate then falls short of the truth, the well-known
# weakness of density-ratio estimation when the ratio is extreme (and the reason AVB's *adaptive contrast*,
# below, matters).

# %%
dim = 4
targets = [0.5, 2.0, 8.0] if QUICK else [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
estimates = []
for kl_true in targets:
    mu = torch.full((dim,), math.sqrt(2 * kl_true / dim))
    est = ratio.kl_divergence(lambda n: mu + torch.randn(n, dim), lambda n: torch.randn(n, dim),
                              steps=STEPS, hidden=(64, 64), seed=0)
    estimates.append(est)
    print(f"KL = {kl_true:5.2f}: estimate {est.kl:6.3f} ± {est.standard_error:.3f}, held-out accuracy {est.accuracy:.3f}")
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.errorbar(targets, [e.kl for e in estimates], yerr=[2 * e.standard_error for e in estimates], fmt="o-",
            label="classifier estimate")
ax.plot(targets, targets, "k--", label="truth")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("true KL (nats)")
ax.set_ylabel("estimated KL (nats)")
ax.set_title(f"KL between Gaussians in {dim}-D")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. How far is a VAE's aggregate posterior from its prior?
#
# A VAE's codes, pooled over the data set, form the **aggregate posterior** $q(z) = \frac1N\sum_n q(z\mid x_n)$,
# a mixture of $N$ Gaussians with no convenient density.  Samples of it are one $z\sim q(z\mid x_n)$ per item,
# so `ratio.aggregate_kl` estimates $\mathrm{KL}(q(z)\,\Vert\,p(z))$.  An identity bounds it: the average KL
# term of the ELBO splits as
#
# $$\frac1N\sum_n \mathrm{KL}\big(q(z\mid x_n)\,\Vert\,p(z)\big) = \mathrm{KL}\big(q(z)\,\Vert\,p(z)\big) + I_q(x; z),
#   \qquad 0 \le I_q(x;z) \le \log N,$$
#
# where $I_q$ is the mutual information between an item's index and its code (Hoffman & Johnson 2016).

# %%
train, test = load("digits", "train"), load("digits", "test")
torch.manual_seed(0)
vae = vaekit.build("vae", data_shape=(8, 8), latent_dim=2, hidden=(64,), likelihood="bernoulli")
tcfg = TrainConfig(epochs=20 if QUICK else 150, batch_size=64, lr=2e-3, binarize=True, progress=False,
                   tensorboard=False)
hist = fit(vae, train.x, tcfg)
with torch.no_grad():
    terms = vaekit.elbo(vae, test.x, n_samples=10).terms
agg = ratio.aggregate_kl(vae, train.x, steps=STEPS, hidden=(64, 64), seed=0)
with torch.no_grad():
    mean_kl = float(vaekit.kl(vae.encode(train.x), vae.prior()).mean())
print(f"VAE, 2-D codes ({hist.seconds:.1f} s): test ELBO {float(terms['elbo']):.2f} nats, KL term {float(terms['kl']):.2f}")
print(f"mean KL(q(z|x) || p(z)) {mean_kl:.3f} = KL(q(z) || p(z)) {agg.kl:.3f} ± {agg.standard_error:.3f} "
      f"+ I(x; z) {mean_kl - agg.kl:.3f}   (log N = {math.log(len(train)):.2f})")
assert agg.kl <= mean_kl + 3 * agg.standard_error

# %% [markdown]
# ## 4. Adversarial variational Bayes
#
# A Gaussian $q(z\mid x)$ limits the ELBO: its gap is $\mathrm{KL}(q\,\Vert\,p(z\mid x))$, zero only if the true
# posterior is Gaussian.  AVB lets the encoder be any sampler, $z = g_\phi(x, \varepsilon)$ with
# $\varepsilon\sim\mathcal N(0, I)$, and replaces the intractable $\log q_\phi(z\mid x) - \log p(z)$ by a critic
# $T_\psi(x, z)$ trained to tell $(x, z\sim q(z\mid x))$ from $(x, z\sim p(z))$:
#
# $$\max_{\theta,\phi}\; \mathbb E_{x}\,\mathbb E_{z\sim q_\phi(z\mid x)}\big[\log p_\theta(x\mid z) - T_\psi(x, z)\big],
# \qquad \min_\psi\; -\mathbb E_{q}\big[\log\sigma(T_\psi)\big] - \mathbb E_{p(z)}\big[\log(1-\sigma(T_\psi))\big].$$
#
# At the critic's optimum $T^* = \log q(z\mid x) - \log p(z)$, so the first line is the ELBO.  *Adaptive
# contrast* (the paper's section 3.3, `contrast=True`) lets the critic compare standardised codes
# $\tilde z = (z - m(x))/s(x)$ with $\mathcal N(0, I)$ instead, and adds the Gaussian part of the ratio in closed
# form: the ratio left to learn is near 1, which section 2 showed is where classifiers are accurate.
#
# We train `avb` and a plain `vae` with the same networks on the digits, with a 2-D code so the posteriors
# can be drawn.

# %%
torch.manual_seed(0)
avb = vaekit.build("avb", data_shape=(8, 8), latent_dim=2, hidden=(64,), likelihood="bernoulli", noise_dim=4,
                   critic_hidden=(64, 64), contrast=True)
hist_avb = fit(avb, train.x, tcfg)
g = torch.Generator().manual_seed(1)
x_eval = torch.bernoulli(test.x, generator=g)
with torch.no_grad():
    t_avb = avb.loss(x_eval).terms  # the ELBO phase's terms
    acc_avb = avb.critic_loss(x_eval).terms["disc_acc"]  # the critic phase's
    t_vae = vaekit.elbo(vae, x_eval, n_samples=10).terms
print(f"AVB ({hist_avb.seconds:.1f} s): test ELBO estimate {float(t_avb['elbo']):.2f} nats "
      f"(reconstruction {float(t_avb['rec']):.2f}, KL by the critic {float(t_avb['kl']):.2f}); "
      f"critic accuracy {float(acc_avb):.3f}")
print(f"VAE: test ELBO {float(t_vae['elbo']):.2f} nats (reconstruction {float(t_vae['rec']):.2f}, "
      f"KL {float(t_vae['kl']):.2f}) on the same binarised test digits")

# %% [markdown]
# The AVB's number is an *estimate* of its ELBO (its KL term comes from the critic), so it is not a bound the
# way the VAE's is; `vaekit`'s tests check that a fresh critic, fitted afterwards to the model's own samples,
# agrees with the one trained alongside.  The posteriors themselves show what the implicit encoder buys:

# %%
picks = [int((test.y == d).nonzero()[0]) for d in (0, 1, 4, 7)]
fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
z_codes = latent.embed(vae, test.x)
latent.plot_scatter(axes[0], z_codes, test.y, title="VAE: posterior means of the test digits")
for ax, (name, model) in zip(axes[1:], (("VAE", vae), ("AVB", avb))):
    ax.scatter(*model.prior().sample((2000,)).T, s=2, c="0.85", label="prior samples")
    with torch.no_grad():
        for i, c in zip(picks, ("C0", "C1", "C4", "C7")):
            z = model.encode(test.x[i:i + 1]).sample((500,))[:, 0]
            ax.scatter(*z.T, s=3, c=c, alpha=0.5, label=f"q(z|x), a {int(test.y[i])}")
    ax.set_title(f"{name}: 500 draws from q(z|x) for four test digits")
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-3.5, 3.5)
    ax.set_aspect("equal")
    ax.legend(fontsize=7, markerscale=3, loc="lower right")
plt.tight_layout()
plt.show()

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
w = 25
for name, h, key in (("VAE", hist, "elbo"), ("AVB", hist_avb, "elbo/elbo")):  # AVB logs each phase's terms
    e = np.asarray(h.terms[key])
    axes[0].plot(h.steps[w - 1:], np.convolve(e, np.ones(w) / w, mode="valid"), label=name)
acc = np.asarray(hist_avb.terms["critic/disc_acc"])
axes[1].plot(hist_avb.steps[w - 1:], np.convolve(acc, np.ones(w) / w, mode="valid"), c="C1")
axes[1].axhline(0.5, color="k", ls=":")
axes[0].set_title("ELBO on training batches (AVB: the critic's estimate)")
axes[1].set_title("AVB critic accuracy (0.5: cannot tell q from the contrast)")
axes[0].set_xlabel("step")
axes[1].set_xlabel("step")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * A classifier between samples of $p$ and $q$ is a density-ratio estimator: its logit is $\log p/q$ at the
#   optimum, and averaging it over $p$ estimates $\mathrm{KL}(p\,\Vert\,q)$, accurately when the two overlap.
# * The same tool measures what no closed form gives, such as the distance of a VAE's aggregate posterior from
#   its prior, bounded by the ELBO's KL term.
# * AVB replaces the ELBO's KL term by a critic, so the posterior can be any sampler; adaptive contrast keeps the
#   critic's job in the easy regime.
