"""`vaekit report frey`: the Frey faces manifold of Kingma & Welling (2013), Fig. 4(a).

1,965 greyscale faces of 28 x 20 (`$VAEKIT_DATA/frey`), 90/10 train/test split; a VAE with a 2-D
latent, one hidden layer of 200 units (as in the paper for the Frey faces, tanh) and a Gaussian
likelihood whose mean and per-pixel standard deviation the decoder emits. The decoded 2-D grid
shows pose turning along one axis and expression changing along the other.
"""

from __future__ import annotations

import time

import torch

from ..data import frey as _frey  # noqa: F401  (registers the "frey" data set)
from ..data import load
from ..evaluate import mean_elbo
from ..train import TrainConfig
from . import report, trained, training_note
from .digits import CITATION, latent_figures


@report("frey")
def run(ctx):
    torch.manual_seed(ctx.seed)
    t0 = time.perf_counter()
    train, test = load("frey", "train", ctx.data_dir), load("frey", "test", ctx.data_dir)
    epochs = ctx.option("epochs", 100 if ctx.quick else 600, int)
    cfg = dict(data_shape=(28, 20), latent_dim=2, hidden=(200,), activation="tanh", likelihood="gaussian", sigma=None)
    tcfg = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, seed=ctx.seed, progress=False, tensorboard=False)
    model, info = trained(ctx, "frey" + ("-quick" if ctx.quick else ""), "vae", cfg, train, tcfg)
    ctx.row(
        "frey",
        "train ELBO, 2-D latent (nats)",
        mean_elbo(model, train.x, seed=ctx.seed),
        citation=CITATION,
        note=f"{training_note(info)}; Gaussian likelihood, pixels in [0, 1]",
    )
    ctx.row(
        "frey",
        "test ELBO, 2-D latent (nats)",
        mean_elbo(model, test.x, seed=ctx.seed),
        citation=CITATION,
        seconds=time.perf_counter() - t0,
        note="196 held-out faces; the paper plots curves, no table value",
    )
    latent_figures(ctx, model, test, "frey", "Frey faces", (28, 20), n_grid=20)
