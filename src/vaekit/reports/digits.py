"""`vaekit report digits`: the latent space of hand-written digits (Kingma & Welling 2013, Fig. 4).

A VAE with a 2-D latent is trained (or loaded from its run folder) on the sklearn 8 x 8 digits
(quick, the default of `--quick`) and, in the full report, also on MNIST. For each it draws the
manifold (a grid placed by the prior's inverse CDF, decoded), the test codes coloured by digit,
linear and spherical interpolations between test digits, and nearest neighbours in latent space.
It then draws codes three ways (`vaekit.samplers`) and decodes them side by side: from the prior, from a
Gaussian mixture fitted on the training codes (ex-post density estimation, Ghosh et al. 2020) and from
a second VAE fitted on them (two-stage VAE, Dai & Wipf 2019); a row per sampler gives the test codes'
mean log density under it (the samplers are kept where `samplers.kept` says: in the run folder,
`sampler-<name>.safetensors`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .. import latent, samplers
from ..data import load
from ..evaluate import mean_elbo
from ..train import TrainConfig
from . import report, trained, training_note

CITATION = "Kingma & Welling 2013, Auto-Encoding Variational Bayes, Fig. 4"


def latent_figures(ctx, model, test, tag: str, title: str, shape, n_grid: int = 20, label_name: str = "digit"):
    """Manifold, scatter, interpolation and neighbour figures of a 2-D model; returns nothing."""
    import matplotlib.pyplot as plt

    show = lambda x: x.reshape(-1, *shape)  # noqa: E731
    fig, ax = plt.subplots(figsize=(7, 7 * shape[0] / shape[1]))
    latent.plot_images(
        ax,
        show(latent.manifold(model, n_grid)),
        ncol=n_grid,
        title=f"{title}: decoded grid, z = Phi^-1(0.05..0.95) per axis",
    )
    ctx.figure(
        fig,
        f"{tag}_manifold.png",
        f"{title}: the 2-D latent manifold, decoded on a {n_grid} x {n_grid} grid "
        "placed by the prior's inverse CDF (cf. Kingma & Welling Fig. 4).",
    )
    z = latent.embed(model, test.x)
    fig, ax = plt.subplots(figsize=(6, 5))
    latent.plot_scatter(ax, latent.project(z), test.y, title=f"{title}: test codes (posterior means)")
    ctx.figure(
        fig,
        f"{tag}_scatter.png",
        f"{title}: posterior means of the test set" + (f", coloured by {label_name}." if test.y is not None else "."),
    )
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
    ctx.figure(
        fig, f"{tag}_neighbours.png", f"{title}: each row a test item and its 8 nearest neighbours in latent space."
    )


SAMPLERS = ("prior", "gmm", "twostage")
C_SAMPLERS = "Ghosh et al. 2020 (ex-post GMM); Dai & Wipf 2019 (two-stage VAE)"


def sampler_figures(
    ctx,
    model,
    train,
    test,
    tag: str,
    title: str,
    shape,
    run_dir,
    twostage_steps: int = 3000,
    n_shown: int = 64,
    n_codes: int = 2000,
):
    """Codes from the prior and from densities fitted on the training codes (posterior means), decoded side by
    side (and, for a 2-D latent, drawn over the test codes); a row per sampler: the test codes' mean log density."""
    import matplotlib.pyplot as plt

    fitted_on = {}

    def train_codes():  # computed once, and only if a sampler has to be fitted
        if "z" not in fitted_on:
            fitted_on["z"] = samplers.fit_codes(model, train.x, seed=ctx.seed)
        return fitted_on["z"]

    options = {"prior": {}, "gmm": {}, "twostage": {"steps": twostage_steps}}
    z_test = samplers.codes(model, test.x)
    two_d = model.config.latent_dim == 2
    fig, axes = plt.subplots(1 + two_d, len(SAMPLERS), figsize=(3.2 * len(SAMPLERS), 3.4 * (1 + two_d)), squeeze=False)
    for i, name in enumerate(SAMPLERS):
        t0 = time.perf_counter()
        s = samplers.cached(samplers.kept(run_dir, name), name, model, train_codes, seed=ctx.seed, **options[name])
        lp = float(s.log_prob(z_test).mean())
        z = s.sample(n_codes, torch.Generator().manual_seed(ctx.seed))
        x = model.generate(z[:n_shown].to(next(model.parameters()).device)).cpu()
        ctx.row(
            tag,
            f"test codes' mean log density under the {name} sampler (nats per code)",
            lp,
            citation=C_SAMPLERS if s.uses_codes else "",
            seconds=time.perf_counter() - t0,
            note=(f"fitted on {s.n_codes} training codes (posterior means)" if s.uses_codes else "the model's prior")
            + ("; an importance-sampled lower bound" if name == "twostage" else ""),
        )
        latent.plot_images(axes[0, i], x.reshape(-1, *shape), ncol=8, title=f"{name}")
        if two_d:
            ax = axes[1, i]
            ax.scatter(z[:, 0], z[:, 1], s=2, c="C3", alpha=0.4, label=f"{name} draws")
            ax.scatter(z_test[:, 0], z_test[:, 1], s=1, c="k", label="test codes")
            lim = float(z_test.abs().max()) * 1.2
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            ax.legend(loc="upper right", fontsize=7, markerscale=4)
    ctx.figure(
        fig,
        f"{tag}_samplers.png",
        f"{title}: {n_shown} codes from each sampler, decoded (decoder means; the "
        "same seed for each): the prior N(0, I), a 10-component Gaussian mixture "
        "and a two-stage VAE fitted on the training codes"
        + (f"; below, {n_codes} draws (red) under the test codes (black)." if two_d else "."),
    )


def one(ctx, name: str, train, test, cfg: dict, tcfg: TrainConfig, title: str, binarize_test: bool):
    t0 = time.perf_counter()
    model, info = trained(ctx, f"digits-{name}", "vae", cfg, train, tcfg)
    x_test = test.x
    if binarize_test:
        x_test = torch.bernoulli(x_test, generator=torch.Generator().manual_seed(ctx.seed))
    value = mean_elbo(model, x_test, seed=ctx.seed)
    ctx.row(
        name,
        "test ELBO, 2-D latent (nats)" + (", binarized pixels" if binarize_test else ""),
        value,
        citation=CITATION,
        seconds=time.perf_counter() - t0,
        note=f"{training_note(info)}; the paper plots curves, no table value for Nz=2",
    )
    latent_figures(ctx, model, test, name, title, test.shape)
    run_dir = Path(ctx.options.get("run_root") or "runs") / f"report-digits-{name}"  # where `trained` keeps it
    sampler_figures(
        ctx,
        model,
        train,
        test,
        name,
        title,
        test.shape,
        run_dir,
        ctx.option("twostage_steps", 1000 if ctx.quick else 3000, int),
    )
    return model


@report("digits")
def run(ctx):
    torch.manual_seed(ctx.seed)
    # the sklearn digits: 1,437 training items of 8 x 8, quick and always run
    train, test = load("digits", "train"), load("digits", "test")
    epochs = ctx.option("epochs", 150 if ctx.quick else 300, int)
    one(
        ctx,
        "digits",
        train,
        test,
        dict(data_shape=(8, 8), latent_dim=2, hidden=(128, 64)),
        TrainConfig(epochs=epochs, batch_size=64, lr=2e-3, seed=ctx.seed, progress=False, tensorboard=False),
        "sklearn digits",
        binarize_test=False,
    )
    if ctx.quick:
        return
    # MNIST: Kingma & Welling's setting (MLP encoder/decoder, 2-D latent), dynamic binarization
    train, test = load("mnist", "train", ctx.data_dir), load("mnist", "test", ctx.data_dir)
    one(
        ctx,
        "mnist",
        train,
        test,
        dict(data_shape=(28, 28), latent_dim=2, hidden=(512, 256)),
        TrainConfig(
            epochs=ctx.option("mnist_epochs", 20, int),
            batch_size=128,
            lr=1e-3,
            lr_schedule="cosine",
            binarize=True,
            seed=ctx.seed,
            progress=False,
            tensorboard=False,
        ),
        "MNIST",
        binarize_test=True,
    )
