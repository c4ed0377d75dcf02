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
# # Reduced-order models of PDE fields: POD against an auto-encoder
#
# A simulation of a partial differential equation produces *snapshots* $u(\cdot, t; \mu) \in \mathbb R^{n_x}$ for
# times $t$ and parameters $\mu$.  A **reduced-order model** describes them with $r \ll n_x$ coordinates, so that new
# parameters can be explored cheaply.
#
# **POD** (proper orthogonal decomposition: PCA of snapshots).  Stack the snapshots as rows of $X$, centre them, and take
# the SVD $X - \bar x = U\Sigma V^\top$.  The best rank-$r$ linear approximation keeps the first $r$ right singular
# vectors (*modes*); its relative error on the training snapshots is
#
# $$\frac{\lVert X - X_r\rVert_F}{\lVert X - \bar x\rVert_F} = \sqrt{\frac{\sum_{i>r}\sigma_i^2}{\sum_i \sigma_i^2}} .$$
#
# **The catch: transport.**  For advection, $u_t + c\,u_x = 0$, a pulse simply moves, $u(x,t) = g(x - ct)$.  The set of
# all snapshots is a curve in $\mathbb R^{n_x}$ with one coordinate (the pulse's position), but it is not close to any
# low-dimensional *linear* subspace: the singular values decay slowly (a large Kolmogorov $n$-width).  A **nonlinear**
# reduction, an auto-encoder $u \approx g(f(u))$ with $f(u)\in\mathbb R^r$, needs only as many coordinates as the curve
# has (Lee & Carlberg 2020).  `vaekit.rom` has both with one interface: `fit`, `transform`, `inverse_transform`,
# `reconstruct`.
#
# `QUICK=1` in the environment uses a coarser grid and shorter training (the notebook runs in well under a minute).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from vaekit import rom
from vaekit.data import fields

QUICK = os.environ.get("QUICK", "") not in ("", "0")
N_X = 128 if QUICK else 256
torch.manual_seed(0)

# %% [markdown]
# ## 1. Snapshots of advection
#
# A narrow Gaussian pulse carried around the periodic unit interval at speed $c$; training speeds and test speeds are
# disjoint, so a test snapshot is an unseen parameter, not only an unseen time.  The solution is exact
# (`data.fields.advection`).

# %%
train_speeds = np.linspace(0.2, 0.8, 7)
test_speeds = (train_speeds[:-1] + train_speeds[1:]) / 2
train = fields.advection(train_speeds, n_x=N_X, n_t=32, width=0.03)
test = fields.advection(test_speeds, n_x=N_X, n_t=32, width=0.03)
X, X_test = train.snapshots, test.snapshots
print(f"training snapshots {X.shape} from {len(train_speeds)} speeds; test snapshots {X_test.shape} "
      f"from {len(test_speeds)} other speeds")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for k in range(0, 32, 6):
    axes[0].plot(train.grid, train.u[2, k], label=f"t = {train.times[k]:.2f}")
axes[0].set(xlabel="x", ylabel="u", title=f"c = {train_speeds[2]:.2f}: the pulse moves")
axes[0].legend(fontsize=7)
axes[1].imshow(train.u[2], aspect="auto", origin="lower", extent=(0, 1, 0, train.times[-1]))
axes[1].set(xlabel="x", ylabel="t", title="u(x, t)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. POD: slow decay
#
# The singular values of the snapshot matrix give the error of every rank at once.  The training error of `POD(r)`
# equals the tail energy above exactly.

# %%
full = rom.POD(min(X.shape)).fit(X)
ranks = [1, 2, 4, 8, 16, 32]
pod_test = {}
for r in ranks:
    pod = rom.POD(r).fit(X)
    assert abs(pod.projection_error(X) - full.tail_energy(r)) < 1e-8
    pod_test[r] = rom.reconstruction_error(pod, X_test)
    print(f"POD r = {r:2d}: energy captured {full.energy()[r - 1]:.4f}, training error {full.tail_energy(r):.3f}, "
          f"test relative error {pod_test[r]:.3f}")

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.semilogy(full.singular_values_ / full.singular_values_[0], "o-", ms=3)
ax.set(xlabel="mode i", ylabel="sigma_i / sigma_1", title="singular values of the advection snapshots")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. An auto-encoder with two coordinates
#
# The snapshots of one trajectory form a closed curve (the domain is periodic), so two coordinates suffice: the pulse's
# position as a point on a circle.  `rom.AutoEncoderROM(2)` trains a `vaekit` auto-encoder with a Gaussian decoder of
# fixed $\sigma$ (a scaled squared error) by the kit's training loop.

# %%
ae = rom.AutoEncoderROM(2, arch="mlp", hidden=(128, 64), epochs=150 if QUICK else 1000, batch_size=32, lr=2e-3).fit(X)
ae_test = rom.reconstruction_error(ae, X_test)
print(f"auto-encoder, 2 coordinates: test relative error {ae_test:.3f} ({ae.history_.seconds:.1f} s of training); "
      f"POD needs r = {next((r for r in ranks if pod_test[r] <= ae_test), '> 32')} for as good")

fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
i = len(test.times) * 2 + 20              # one test snapshot
for name, model in (("POD, r = 2", rom.POD(2).fit(X)), ("POD, r = 8", rom.POD(8).fit(X)), ("auto-encoder, r = 2", ae)):
    axes[0].plot(test.grid, model.reconstruct(X_test[i:i + 1])[0], label=name)
axes[0].plot(test.grid, X_test[i], "k--", label="exact")
axes[0].set(xlabel="x", title=f"a test snapshot (c = {test.snapshot_params[i, 0]:.2f})")
axes[0].legend(fontsize=7)
axes[1].plot(ranks, [pod_test[r] for r in ranks], "o-", label="POD")
axes[1].axhline(ae_test, color="C3", ls="--", label="auto-encoder, r = 2")
axes[1].set(xscale="log", yscale="log", xlabel="r (coordinates)", ylabel="test relative error")
axes[1].legend()
Z = ae.transform(X_test)
sc = axes[2].scatter(Z[:, 0], Z[:, 1], c=test.snapshot_times, s=6, cmap="viridis")
axes[2].set(title="auto-encoder coordinates of the test snapshots", xlabel="z1", ylabel="z2")
plt.colorbar(sc, ax=axes[2], label="t")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Latent dynamics: predicting unseen speeds
#
# A reduced-order model is useful when it also *advances* the coordinates in time.  `rom.LatentDynamics` learns a step
# $z_{t+1} = z_t + g(z_t, \mu)$ on the training trajectories' coordinates, unrolled over a few steps in the loss so the
# errors do not compound unchecked.  From the encoded first snapshot of each *test* speed it predicts all later ones;
# the decoder turns them into fields.

# %%
Z_train = ae.transform(X).reshape(len(train_speeds), len(train.times), -1)
dyn = rom.LatentDynamics(hidden=(64, 64), horizon=4, epochs=300 if QUICK else 1500, batch_size=32, lr=3e-3).fit(Z_train, train.params)
err_t, pred = rom.rollout_error(ae, dyn, test.u, test.params)
print(f"rollout from t = 0: relative error at the last time {err_t[-1]:.3f}, mean over time {err_t.mean():.3f} "
      f"({dyn.history_.seconds:.1f} s of training)")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(test.times, err_t)
axes[0].set(xlabel="t", ylabel="relative error", title="error of the rollout, mean over the test speeds")
k = 2
axes[1].imshow(np.concatenate([test.u[k], pred[k]], 1), aspect="auto", origin="lower")
axes[1].set(title=f"c = {test_speeds[k]:.2f}: exact (left) and predicted (right)", xlabel="x (twice)", ylabel="t step")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * POD is the best *linear* reduction, with its error read off the singular values; for transport they decay slowly.
# * An auto-encoder needs only as many coordinates as the solution manifold has dimensions: two here, where POD needs
#   many more for the same error.
# * Coordinates plus a learned step make a surrogate that predicts unseen parameters, with an error that grows along
#   the rollout (longer training and a longer unrolled horizon reduce it).  `vaekit report rom` adds viscous
#   Burgers' equation (a moving shock) and convolutional auto-encoders.
