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
# # Adversarial games: a GAN and an adversarial auto-encoder
#
# Tutorial 04 showed that a classifier between samples of two distributions learns their log density ratio.
# An **adversarial game** turns that classifier into a training signal: a *generator* moves its samples to
# where the classifier (the *discriminator*) believes the real data lie, until it can no longer tell.
#
# **GAN** (Goodfellow et al. 2014).  A generator $x = G(\varepsilon)$, $\varepsilon\sim\mathcal N(0, I)$, defines
# a distribution $p_G$; a discriminator $D = \sigma(T)$ plays
#
# $$\min_G \max_D\; V(D, G) = \mathbb E_{x\sim p_{\text{data}}}[\log D(x)] + \mathbb E_{\varepsilon}[\log(1 - D(G(\varepsilon)))].$$
#
# For a fixed $G$ the best discriminator is $D^* = \frac{p_{\text{data}}}{p_{\text{data}} + p_G}$ (so
# $T^* = \log p_{\text{data}}/p_G$), and then
#
# $$V(D^*, G) = -\log 4 + 2\,\mathrm{JS}(p_{\text{data}}\,\Vert\,p_G),$$
#
# minimised exactly when $p_G = p_{\text{data}}$, where $D^* = \tfrac12$ everywhere.  In practice the generator
# minimises the *non-saturating* loss $-\mathbb E[\log D(G(\varepsilon))]$, which has the same fixed point and a
# useful gradient while $D$ still rejects every fake.
#
# **Adversarial auto-encoder** (Makhzani et al. 2015).  Play the same game in the *code* space of an
# auto-encoder: the discriminator tells codes $z = f(x)$ from samples of a chosen prior $p(z)$, and the
# encoder learns to make its codes look like prior samples.  The prior need only be *sampled*, never
# evaluated, and afterwards decoding prior samples generates data.
#
# In `vaekit` each game is a model that declares its moves as **phases** (`model.phases()`); the one
# training loop `vaekit.train.fit` runs them in order on every batch, each with its own optimiser.
#
# `QUICK=1` in the environment trains briefly (the whole notebook runs in well under a minute).

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch

import vaekit
from vaekit import adversarial as A
from vaekit import latent, ratio
from vaekit.data import load
from vaekit.train import TrainConfig, fit

QUICK = os.environ.get("QUICK", "") not in ("", "0")
torch.manual_seed(0)

# %% [markdown]
# ## 1. A GAN on a ring of eight Gaussians
#
# The usual 2-D benchmark: an equal mixture of 8 narrow Gaussians on a circle.  A GAN that collapses onto a
# few of them (*mode collapse*) is easy to see.  A mode counts as covered when at least 1 % of the samples lie
# within 3 standard deviations of it (`adversarial.mode_coverage`).

# %%
n_modes, radius, std = 8, 2.0, 0.05
centres = A.circle_points(n_modes, radius)
data = A.mixture_on_circle(n_modes, radius, std).sample((20_000,))
print(f"data {tuple(data.shape)}; the phases of the game:", [p.name for p in vaekit.build("gan").phases()])

torch.manual_seed(1)
gan = vaekit.build("gan", data_shape=(2,), noise_dim=4, hidden=(64, 64), disc_hidden=(64, 64))
total = 800 if QUICK else 10_000
snapshots = [0, total // 10, total // 3, total]
eps = torch.randn(2000, 4, generator=torch.Generator().manual_seed(2))    # the same noise at every snapshot
samples, terms, seconds = {}, {}, 0.0
with tempfile.TemporaryDirectory() as run:
    for i, s in enumerate(snapshots):
        if s:             # train on to step s: stop, checkpoint, resume the same run (optimisers included)
            h = fit(gan, data, TrainConfig(epochs=10**6, max_steps=s, batch_size=256, lr=2e-3, betas=(0.5, 0.999),
                                           progress=False, tensorboard=False), run, resume=i > 1, overwrite=i == 1)
            seconds += h.seconds
            for k, v in h.terms.items():
                terms.setdefault(k, []).extend(v)
        with torch.no_grad():
            samples[s] = gan.generate(eps)

real = data[:2000]
print(f"{total} steps of the game in {seconds:.1f} s")
fig, axes = plt.subplots(1, len(snapshots), figsize=(3.3 * len(snapshots), 3.5))
for ax, s in zip(axes, snapshots):
    modes, good = A.mode_coverage(samples[s], centres, std)
    mmd = A.mmd2(samples[s], real)
    print(f"step {s:5d}: {modes}/8 modes covered, {good:.0%} of samples within 3 std of a mode, MMD^2 {mmd:.4f}")
    ax.scatter(*real.T, s=2, c="0.6")
    ax.scatter(*samples[s].T, s=2, c="C3", alpha=0.5)
    ax.set_title(f"step {s}: {modes}/8 modes, {good:.0%} good", fontsize=9)
    ax.set(xlim=(-3, 3), ylim=(-3, 3), aspect="equal", xticks=[], yticks=[])
plt.tight_layout()
plt.show()
assert A.mmd2(samples[total], real) < A.mmd2(samples[0], real)

# %% [markdown]
# At the game's equilibrium the discriminator is reduced to guessing: its accuracy on real and on generated
# points tends to $\tfrac12$.  (It oscillates around it; the two players chase each other rather than descend
# a common loss.)

# %%
w = 50
acc_real, acc_fake = np.asarray(terms["disc/acc_real"]), np.asarray(terms["disc/acc_fake"])
fig, ax = plt.subplots(figsize=(6, 3.5))
for v, name in ((acc_real, "real points called real"), (acc_fake, "fakes called fake")):
    ax.plot(np.convolve(v, np.ones(w) / w, mode="valid"), label=name)
ax.axhline(0.5, color="k", ls=":")
ax.set_xlabel("step")
ax.set_ylabel("discriminator accuracy")
ax.legend()
plt.tight_layout()
plt.show()
print(f"discriminator accuracy over the last {w} steps: real {acc_real[-w:].mean():.3f}, fake {acc_fake[-w:].mean():.3f}")

# %% [markdown]
# ## 2. An adversarial auto-encoder on the digits
#
# The AAE's game has three phases, run on every batch:
#
# 1. **reconstruction**: encoder and decoder minimise $-\log p(x\mid z = f(x))$;
# 2. **discriminator**: $D$ learns to tell prior samples $z\sim p(z)$ ("real") from codes $f(x)$ ("fake");
# 3. **generator**: the encoder minimises $-\log D(f(x))$, making its codes look like prior samples.
#
# We match a 2-D code to a mixture of 10 Gaussians on a circle (one per digit, were the game to sort them)
# and, without `QUICK`, to a ring, and compare with a plain auto-encoder of the same networks, whose codes go wherever
# reconstruction wants them.

# %%
train, test = load("digits", "train"), load("digits", "test")
epochs = 20 if QUICK else 300
priors = ["mixture"] if QUICK else ["mixture", "ring"]
tcfg = TrainConfig(epochs=epochs, batch_size=64, lr=1e-3, progress=False, tensorboard=False)
net = dict(data_shape=(8, 8), latent_dim=2, hidden=(128,), likelihood="bernoulli")
models = {}
for name, kind, extra in [("plain auto-encoder", "autoencoder", {})] + [
        (f"AAE, {prior} prior", "aae", {"prior": prior, "disc_hidden": (64, 64)}) for prior in priors]:
    torch.manual_seed(0)               # the same initial encoder and decoder for every model
    models[name] = vaekit.build(kind, **net, **extra)
    h = fit(models[name], train.x, tcfg)
    print(f"{name}: {h.seconds:.1f} s, phases {[p.name for p in models[name].phases()] if kind == 'aae' else ['loss']}")

# %% [markdown]
# How well do the codes match each prior?  Two sample-based measures: the squared maximum mean discrepancy
# (`adversarial.mmd2`, 0 when the distributions agree) and the held-out accuracy of a fresh classifier
# telling codes from prior samples (`vaekit.ratio`, 0.5 when it cannot).

# %%
match = {}
for prior in priors:
    p = A.prior(prior, 2)
    for name in ("plain auto-encoder", f"AAE, {prior} prior"):
        z = latent.embed(models[name], test.x)
        torch.manual_seed(0)
        mmd = A.mmd2(z, p.sample((len(z),)))
        acc = ratio.kl_divergence(z, lambda n: p.sample((n,)), steps=300 if QUICK else 1500, hidden=(64, 64),
                                  lr=3e-3).accuracy
        sq = float((models[name].reconstruct(test.x) - test.x).pow(2).flatten(1).sum(1).mean())
        match[(prior, name)] = mmd
        print(f"{prior:7s} prior vs {name:20s}: MMD^2 {mmd:.4f}, classifier accuracy {acc:.3f}, "
              f"test squared error {sq:.2f}")
    assert match[(prior, f"AAE, {prior} prior")] < match[(prior, "plain auto-encoder")]

fig, axes = plt.subplots(2, len(models), figsize=(4.4 * len(models), 8.5))
for j, (name, model) in enumerate(models.items()):
    z = latent.embed(model, test.x)
    latent.plot_scatter(axes[0, j], z, test.y, title=f"{name}: test codes")
    if name.startswith("AAE"):
        torch.manual_seed(0)
        axes[0, j].scatter(*model.prior().sample((1000,)).T, s=1, c="0.8", zorder=0)
        latent.plot_images(axes[1, j], model.sample(64, torch.Generator().manual_seed(0)), ncol=8,
                           title="decoded prior samples")
    else:
        latent.plot_images(axes[1, j], model.reconstruct(test.x[:64]), ncol=8, title="reconstructions")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * A GAN's discriminator is the density-ratio classifier of tutorial 04; at equilibrium it cannot beat a coin
#   flip, and the generator's distribution matches the data (here: the eight modes, reached step by step).
# * An adversarial auto-encoder plays the same game on codes: any prior one can sample (a mixture, a ring) shapes
#   the code space, and decoding prior samples generates digits.
# * Both are objectives with *phases* for the same training loop; `vaekit report adversarial` runs the GAN for
#   longer and the AAEs on MNIST.
