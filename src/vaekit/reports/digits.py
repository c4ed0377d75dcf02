"""`vaekit report digits`: the latent space of hand-written digits (Kingma & Welling 2013, Fig. 4).

A VAE with a 2-D latent is trained (or loaded from its run folder) on the sklearn 8 x 8 digits
(quick, the default of `--quick`) and, in the full report, also on MNIST. For each it draws the
manifold (a grid placed by the prior's inverse CDF, decoded), the test codes coloured by digit,
linear and spherical interpolations between test digits, and nearest neighbours in latent space.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import latent
from ..bounds import elbo_terms
from ..data import load
from ..train import TrainConfig
from . import report, trained, training_note

CITATION = "Kingma & Welling 2013, Auto-Encoding Variational Bayes, Fig. 4"


@torch.no_grad()
def test_elbo(model, x, seed: int = 0, batch_size: int = 1000) -> float:
    """Mean ELBO per test item (nats), one posterior sample per item, fixed noise."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        total = 0.0
        for xb in x.split(batch_size):
            rec, kl = elbo_terms(model, xb)
            total += float((rec - kl).sum())
    return total / len(x)


def latent_figures(ctx, model, test, tag: str, title: str, shape, n_grid: int = 20, label_name: str = "digit"):
    """Manifold, scatter, interpolation and neighbour figures of a 2-D model; returns nothing."""
    import matplotlib.pyplot as plt

    show = lambda x: x.reshape(-1, *shape)  # noqa: E731
    fig, ax = plt.subplots(figsize=(7, 7 * shape[0] / shape[1]))
    latent.plot_images(ax, show(latent.manifold(model, n_grid)), ncol=n_grid,
                       title=f"{title}: decoded grid, z = Phi^-1(0.05..0.95) per axis")
    ctx.figure(fig, f"{tag}_manifold.png", f"{title}: the 2-D latent manifold, decoded on a {n_grid} x {n_grid} grid "
                                           "placed by the prior's inverse CDF (cf. Kingma & Welling Fig. 4).")
    z = latent.embed(model, test.x)
    fig, ax = plt.subplots(figsize=(6, 5))
    latent.plot_scatter(ax, latent.project(z), test.y, title=f"{title}: test codes (posterior means)")
    ctx.figure(fig, f"{tag}_scatter.png", f"{title}: posterior means of the test set"
                                          + (f", coloured by {label_name}." if test.y is not None else "."))
    # interpolation between test items of different classes (or the first pairs, unlabeled)
    pairs = []
    y = test.y.numpy() if test.y is not None else np.arange(len(test))
    for a, b in [(0, 1), (3, 8), (4, 9), (1, 7)] if test.y is not None else [(0, 1), (2, 3), (4, 5), (6, 7)]:
        ia, ib = np.nonzero(y == a)[0], np.nonzero(y == b)[0]
        if len(ia) and len(ib):
            pairs.append((int(ia[0]), int(ib[0]), f"{a}->{b}"))
    fig, axes = plt.subplots(2 * len(pairs), 1, figsize=(10, 1.1 * 2 * len(pairs)))
    for k, (i, j, name) in enumerate(pairs):
        for m, method in enumerate(("linear", "spherical")):
            strip = latent.interpolate(model, test.x[i], test.x[j], steps=12, method=method)
            latent.plot_images(axes[2 * k + m], show(strip), ncol=12)
            axes[2 * k + m].set_title(f"{name} ({method})", fontsize=8)
    ctx.figure(fig, f"{tag}_interpolation.png", f"{title}: decoded paths between test items, linear and spherical.")
    # nearest neighbours in latent space: a query, then its 8 nearest test codes
    _, idx = latent.nearest_neighbours(z[:6], z, k=9, exclude_self=False)
    fig, ax = plt.subplots(figsize=(6, 4))
    latent.plot_images(ax, show(test.x[idx.flatten()]), ncol=9, title="query (left) and its nearest codes")
    ctx.figure(fig, f"{tag}_neighbours.png", f"{title}: each row a test item and its 8 nearest neighbours in latent space.")


def one(ctx, name: str, train, test, cfg: dict, tcfg: TrainConfig, title: str, binarize_test: bool):
    t0 = time.perf_counter()
    model, info = trained(ctx, f"digits-{name}", "vae", cfg, train, tcfg)
    x_test = test.x
    if binarize_test:
        x_test = torch.bernoulli(x_test, generator=torch.Generator().manual_seed(ctx.seed))
    value = test_elbo(model, x_test, ctx.seed)
    ctx.row(name, "test ELBO, 2-D latent (nats)" + (", binarized pixels" if binarize_test else ""), value,
            citation=CITATION, seconds=time.perf_counter() - t0,
            note=f"{training_note(info)}; the paper plots curves, no table value for Nz=2")
    latent_figures(ctx, model, test, name, title, test.shape)
    return model


@report("digits")
def run(ctx):
    torch.manual_seed(ctx.seed)
    # the sklearn digits: 1,437 training items of 8 x 8, quick and always run
    train, test = load("digits", "train"), load("digits", "test")
    epochs = ctx.option("epochs", 150 if ctx.quick else 300, int)
    one(ctx, "digits", train, test, dict(data_shape=(8, 8), latent_dim=2, hidden=(128, 64)),
        TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, seed=ctx.seed, progress=False, tensorboard=False),
        "sklearn digits", binarize_test=False)
    if ctx.quick:
        return
    # MNIST: Kingma & Welling's setting (MLP encoder/decoder, 2-D latent), dynamic binarization
    train, test = load("mnist", "train", ctx.data_dir), load("mnist", "test", ctx.data_dir)
    one(ctx, "mnist", train, test, dict(data_shape=(28, 28), latent_dim=2, hidden=(512, 256)),
        TrainConfig(epochs=ctx.option("mnist_epochs", 20, int), batch_size=128, lr=1e-3,
                    lr_schedule="cosine", binarize=True, seed=ctx.seed, progress=False, tensorboard=False),
        "MNIST", binarize_test=True)
