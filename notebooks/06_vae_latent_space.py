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
# # The variational auto-encoder and the latent space of digits
#
# A VAE (Kingma & Welling 2013; Rezende, Mohamed & Wierstra 2014) is a latent-variable model
# $p(z)\,p_\theta(x\mid z)$ with $p(z) = \mathcal N(0, I)$ and a neural decoder, trained together with an
# encoder $q_\phi(z\mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$ by maximising the ELBO
# (tutorial 02)
#
# $$\mathcal L(x) = \mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)] - \mathrm{KL}\big(q_\phi(z\mid x)\,\Vert\,p(z)\big).$$
#
# The expectation is differentiated by **re-parametrization** (tutorial 03): $z = \mu_\phi(x) + \sigma_\phi(x)\odot\varepsilon$,
# $\varepsilon\sim\mathcal N(0, I)$, and the KL term between two Gaussians is analytic,
# $\mathrm{KL} = \tfrac12\sum_j\big(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\big)$.
#
# This tutorial trains VAEs on scikit-learn's 8×8 digits and looks at what they learned: the decoded
# manifold, the codes of the data, interpolations, which latent dimensions are used, and where to draw codes
# from to generate new digits (`vaekit.samplers`).
#
# `QUICK=1` in the environment trains briefly (the whole notebook runs in well under a minute).

# %%
import math
import os

import matplotlib.pyplot as plt
import torch

import vaekit
from vaekit import latent, samplers
from vaekit.data import load
from vaekit.train import TrainConfig, fit

QUICK = os.environ.get("QUICK", "") not in ("", "0")
EPOCHS = 30 if QUICK else 300
torch.manual_seed(0)

train, test = load("digits", "train"), load("digits", "test")
tcfg = TrainConfig(epochs=EPOCHS, batch_size=64, lr=2e-3, lr_schedule="cosine", binarize=True, progress=False,
                   tensorboard=False)

# %% [markdown]
# ## 1. A 2-D latent space
#
# With two latent dimensions the whole latent space can be drawn.  The pixels are modelled as Bernoulli
# variables and the images are binarised afresh in every batch (`binarize=True`), so that the Bernoulli
# likelihood is a proper one.

# %%
vae2 = vaekit.build("vae", data_shape=(8, 8), latent_dim=2, hidden=(128, 64), likelihood="bernoulli")
hist = fit(vae2, train.x, tcfg)
x_test = torch.bernoulli(test.x, generator=torch.Generator().manual_seed(0))     # a fixed binarisation
with torch.no_grad():
    t = vaekit.elbo(vae2, x_test, n_samples=10).terms
    nll = -vaekit.log_likelihood(vae2, x_test, k=500 if QUICK else 5000).mean()
print(f"trained {len(hist.steps)} steps in {hist.seconds:.1f} s; test ELBO {float(t['elbo']):.2f} nats "
      f"(reconstruction {float(t['rec']):.2f}, KL {float(t['kl']):.2f}); -log p(x) {float(nll):.2f} nats")
assert float(-nll) >= float(t["elbo"]) - 0.5, "the importance-sampled log p(x) should not be below the ELBO"

# %% [markdown]
# **The manifold.**  Decode a grid of codes placed by the prior's inverse CDF, so that each cell carries equal prior
# mass (Kingma & Welling's Figure 4): $z = (\Phi^{-1}(u_1), \Phi^{-1}(u_2))$ for $u$ on a regular grid in $(0, 1)^2$.
# **The codes.**  Posterior means $\mu_\phi(x)$ of the test digits, coloured by their label (never seen in training).

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
latent.plot_images(axes[0], latent.manifold(vae2, n=15), ncol=15, title="decoded grid of the 2-D latent space")
latent.plot_scatter(axes[1], latent.embed(vae2, test.x), test.y, title="posterior means of the test digits")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Interpolation: linear or spherical
#
# Between the codes $z_0, z_1$ of two digits, the straight line $z_t = (1-t)z_0 + t z_1$ passes closer to the
# origin than typical prior samples in many dimensions (their norms concentrate near $\sqrt d$).  Spherical
# interpolation follows the great circle instead (`latent.slerp`).  In 2-D the two differ little; in higher
# dimensions the difference grows.

# %%
vae8 = vaekit.build("vae", data_shape=(8, 8), latent_dim=8, hidden=(128, 64), likelihood="bernoulli")
hist8 = fit(vae8, train.x, tcfg)
pairs = [(0, 1), (3, 8), (4, 9)]
index = {d: int((test.y == d).nonzero()[0]) for d in range(10)}
fig, axes = plt.subplots(len(pairs), 2, figsize=(12, 1.3 * len(pairs)))
for row, (a, b) in enumerate(pairs):
    for col, method in enumerate(("linear", "spherical")):
        strip = latent.interpolate(vae8, test.x[index[a]], test.x[index[b]], steps=10, method=method)
        latent.plot_strip(axes[row, col], strip, title=f"{a} -> {b}, {method}" if row == 0 else None)
plt.tight_layout()
plt.show()
z0, z1 = latent.embed(vae8, test.x[[index[0], index[1]]])
print("norm along the path, linear:   ", latent.lerp(z0, z1, 5).norm(dim=1).numpy().round(2))
print("norm along the path, spherical:", latent.slerp(z0, z1, 5).norm(dim=1).numpy().round(2))

# %% [markdown]
# ## 3. Which latent dimensions are used?
#
# The KL term charges for every dimension the encoder uses.  A dimension whose posterior equals the prior for every
# $x$ costs nothing and carries nothing: it is *inactive* (posterior collapse, in part).  Burda et al. (2015) count a
# unit as active when its posterior mean varies across the data, $A_j = \operatorname{Var}_x\big(\mathbb E_q[z_j\mid x]\big) > 10^{-2}$.
# The KL per dimension tells the same story in nats.

# %%
with torch.no_grad():
    q = vae8.encode(x_test)
    kl_per_dim = 0.5 * (q.mean ** 2 + q.variance - 1 - q.variance.log()).mean(0)
    total_kl = vaekit.kl(q, vae8.prior()).mean()
activity = latent.embed(vae8, x_test).var(0)
order = torch.argsort(activity, descending=True)
print(f"8-D VAE: {int((activity > 1e-2).sum())} active units of 8")
for j in order.tolist():
    print(f"  z{j}: Var_x E[z|x] {float(activity[j]):.3f}   KL {float(kl_per_dim[j]):.3f} nats")
assert abs(float(kl_per_dim.sum()) - float(total_kl)) < 1e-3, "the KL of a diagonal Gaussian is a sum over dimensions"

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(range(8), kl_per_dim[order].numpy())
ax.set_xticks(range(8), [f"z{j}" for j in order.tolist()])
ax.set_ylabel("KL per test digit (nats)")
ax.set_title("KL(q || p) per latent dimension")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Where to draw codes from
#
# `model.sample(n)` decodes draws from the prior $p(z)$.  But the codes of the data, the **aggregate posterior**
# $q(z) = \frac1N\sum_n q(z\mid x_n)$, rarely fill the prior: there are holes between classes and regions that no
# digit maps to, and decoding codes from there gives blurred hybrids.  `vaekit.samplers` fits a density on the
# training codes instead (*ex-post* density estimation, Ghosh et al. 2020): a Gaussian mixture (`gmm`) or a second,
# small VAE on the codes (`twostage`, Dai & Wipf 2019).
#
# Which one describes held-out codes better?  Compare their mean log density on the *test* codes, in nats per code.

# %%
z_train = samplers.codes(vae8, train.x)
z_test = samplers.codes(vae8, test.x)
fitted = {"prior": samplers.fit("prior", vae8),
          "gmm": samplers.fit("gmm", vae8, z_train, n_components=10, seed=0),
          "twostage": samplers.fit("twostage", vae8, z_train, steps=500 if QUICK else 3000, k=100, seed=0)}
scores = {}
for name, sampler in fitted.items():
    scores[name] = float(sampler.log_prob(z_test).mean())
    print(f"{name:9s} {sampler!r}\n          mean log density of the test codes {scores[name]:.2f} nats")
assert scores["gmm"] > scores["prior"], "a mixture fitted on the codes should describe held-out codes better"

g = torch.Generator().manual_seed(0)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
for ax, (name, sampler) in zip(axes, fitted.items()):
    latent.plot_images(ax, samplers.generate(vae8, sampler, 64, g), ncol=8,
                       title=f"codes from {name} ({scores[name]:.1f} nats/code)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Neighbours in latent space
#
# Codes that are close decode to similar images; the nearest training digits of a test digit, by Euclidean
# distance between posterior means, are mostly of the same class.

# %%
d, idx = latent.nearest_neighbours(z_test, z_train, k=5)
agree = (train.y[idx] == test.y[:, None]).float().mean()
print(f"fraction of the 5 nearest training codes with the test digit's label: {float(agree):.3f} "
      f"(chance about {1 / 10:.2f})")
fig, axes = plt.subplots(4, 1, figsize=(5, 4.5))
for ax, i in zip(axes, [index[d] for d in (2, 5, 6, 8)]):
    latent.plot_strip(ax, torch.cat([test.x[i:i + 1], train.x[idx[i]]]))
axes[0].set_title("test digit, then its 5 nearest training digits in the 8-D latent space", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * The VAE is trained on the ELBO with re-parametrized samples and an analytic KL; `vaekit.log_likelihood` then
#   gives an importance-sampled $\log p(x)$ above the ELBO.
# * A 2-D latent space can be drawn whole: a decoded manifold and the data's codes, clustered by class without labels.
# * The KL per dimension shows how many dimensions the model uses.
# * Codes drawn from a density fitted on the training codes decode to cleaner digits than codes from the prior.
#   `vaekit sample RUN --sampler gmm` does the same from the command line, and `vaekit explore RUN` lets you walk the
#   latent space in a browser.
