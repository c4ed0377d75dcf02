"""`make demo` / `vaekit demo`: a VAE with a 2-D latent on the embedded 8x8 digits, end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import models
from .data import load
from .evaluate import evaluate
from .io import atomic_write_text
from .plots import run_figures
from .train import TrainConfig, fit


def demo(run_dir="runs/demo", epochs: int = 150, overwrite: bool = True, seed: int = 0) -> dict:
    train, test = load("digits", "train"), load("digits", "test")
    model = models.build("vae", data_shape=train.shape, latent_dim=2, hidden=(256, 128))
    cfg = TrainConfig(
        epochs=epochs, batch_size=64, lr=2e-3, lr_schedule="cosine", lr_final=1e-4, seed=seed, tensorboard=False
    )
    t0 = time.perf_counter()
    hist = fit(model, train, cfg, run_dir, overwrite=overwrite, meta={"spec": "digits", "split": "train"})
    train_s = time.perf_counter() - t0
    res = evaluate(model, test.x, k=50, nll_k=1000)
    run_figures(model, test, run_dir)
    metrics = {
        "data": f"sklearn digits (8x8, pixels in [0,1]), {len(train)} train / {len(test)} test",
        "model": "vae 64-256-128-2",
        "epochs": epochs,
        "steps": len(hist.loss),
        "train_seconds": train_s,
        "test": res,
    }
    atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2))
    print(f"\nvaekit demo: VAE with a 2-D latent on the sklearn digits ({len(train)} train / {len(test)} test)")
    print(f"  training      {epochs} epochs, {len(hist.loss)} steps, {train_s:.1f} s")
    print(f"  test ELBO     {res['elbo']:.2f} nats per image (Bernoulli likelihood on [0,1] pixels)")
    print(f"  test IWAE-50  {res['iwae50']:.2f} nats")
    print(f"  test NLL      {res['nll']:.2f} nats (importance sampling, k=1000)")
    print(f"  sq. error     {res['sq_err']:.3f} per image (sum over 64 pixels)")
    print(f"  wrote {run_dir}/: reconstructions.png samples.png latent_scatter.png manifold.png metrics.json")
    return metrics
