"""The four figures every run gets: reconstructions, prior samples, latent scatter, decoded manifold."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from . import latent  # noqa: E402
from .io import save_figure  # noqa: E402


def _save(fig, path: Path) -> Path:
    return save_figure(fig, path, dpi=120, bbox_inches="tight")


def run_figures(model, data, out_dir, n: int = 10, seed: int = 0) -> list[Path]:
    """Write reconstructions.png, samples.png, latent_scatter.png and manifold.png into out_dir."""
    out_dir = Path(out_dir)
    model.eval()
    x = data.x[: 2 * n]
    written = []
    fig, axes = plt.subplots(2, 1, figsize=(n * 0.8, 2.8))
    latent.plot_images(axes[0], x, n, "test items")
    latent.plot_images(axes[1], model.reconstruct(x), n, "reconstructions")
    written.append(_save(fig, out_dir / "reconstructions.png"))

    fig, ax = plt.subplots(figsize=(6, 6))
    latent.plot_images(
        ax, model.sample(100, generator=torch.Generator().manual_seed(seed)), 10, "samples from the prior"
    )
    written.append(_save(fig, out_dir / "samples.png"))

    z = model.embed(data.x)
    if z.shape[1] > 2:
        z = (z - z.mean(0)) @ latent.principal_axes(z).T
    fig, ax = plt.subplots(figsize=(6, 5))
    latent.plot_scatter(ax, z, data.y, "posterior means" + (" (principal axes)" if model.config.latent_dim > 2 else ""))
    written.append(_save(fig, out_dir / "latent_scatter.png"))

    fig, ax = plt.subplots(figsize=(7, 7))
    latent.plot_images(ax, latent.manifold(model, 15, data=data.x), 15, "decoded latent grid (prior quantiles)")
    written.append(_save(fig, out_dir / "manifold.png"))
    return written
