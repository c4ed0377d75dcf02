"""Looking at a latent space: decoded manifold grids, latent scatter plots, image grids.

Model-agnostic: every function takes a model with `embed`, `generate` and `prior()` (see
`models.base.LatentVariableModel`) and returns arrays; the `plot_*` helpers draw them.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def to_images(x) -> np.ndarray:
    """(N, *shape) -> (N, H, W) or (N, H, W, 3) float array for display; flat vectors become square-ish."""
    x = torch.as_tensor(x).detach().cpu().float()
    if x.dim() == 2:
        d = x.shape[1]
        side = int(math.isqrt(d))
        if side * side != d:
            raise ValueError(f"cannot show items of shape {tuple(x.shape[1:])} as images")
        x = x.reshape(-1, side, side)
    if x.dim() == 4:
        x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    return x.clamp(0, 1).numpy()


def image_grid(images, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W[, 3]) images into one array, `ncol` per row (white padding)."""
    ims = to_images(images)
    n, h, w = ims.shape[:3]
    ncol = ncol or int(math.ceil(math.sqrt(n)))
    nrow = int(math.ceil(n / ncol))
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, *ims.shape[3:]), dtype=np.float32)
    for i, im in enumerate(ims):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = im
    return grid


def principal_axes(z: torch.Tensor, n: int = 2) -> torch.Tensor:
    """The first n principal directions of codes z (N, D), as rows of an (n, D) matrix."""
    zc = z - z.mean(0)
    _, _, vt = torch.linalg.svd(zc, full_matrices=False)
    return vt[:n]


@torch.no_grad()
def manifold(model, n: int = 15, data=None, axes: torch.Tensor | None = None, span: float = 0.95) -> torch.Tensor:
    """Decode an n x n grid of latent points placed by the prior's inverse CDF (Kingma & Welling, Fig. 4).

    For a 2-D latent the grid covers the two latent coordinates. For more dimensions it lies in
    the plane of `axes` (default: the principal axes of the posterior means of `data`) through
    the mean code. Returns decoded means of shape (n * n, *data_shape), row-major from the top.
    """
    from scipy.stats import norm

    q = torch.tensor(norm.ppf(np.linspace(1 - span, span, n)), dtype=torch.float32)
    gy, gx = torch.meshgrid(q.flip(0), q, indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1)                    # (n*n, 2)
    d = model.config.latent_dim
    device = next(model.parameters()).device
    if d == 2 and axes is None:
        z = grid
    else:
        if axes is None:
            if data is None:
                axes, centre = torch.eye(d)[:2], torch.zeros(d)
            else:
                codes = model.embed(torch.as_tensor(data).to(device)).cpu()
                axes, centre = principal_axes(codes), codes.mean(0)
                axes = axes * (codes - centre).matmul(axes.T).std(0)[:, None]   # one posterior std per unit
        else:
            centre = torch.zeros(d)
        z = centre + grid.matmul(axes)
    return model.generate(z.to(device)).cpu()


def plot_images(ax, images, ncol=None, title=None):
    ims = image_grid(images, ncol)
    ax.imshow(ims, cmap="gray" if ims.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def plot_scatter(ax, z, labels=None, title=None, max_points: int = 5000):
    """Latent codes (N, 2) coloured by integer labels (a legend per class)."""
    z = torch.as_tensor(z).cpu().numpy()[:max_points]
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=3, alpha=0.6)
    else:
        labels = np.asarray(torch.as_tensor(labels).cpu())[:max_points]
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7)
        if len(np.unique(labels)) <= 20:
            ax.legend(*sc.legend_elements(), loc="best", fontsize=7, markerscale=0.8, title="label")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    if title:
        ax.set_title(title)
