"""The synthetic *curves* data set of Hinton & Salakhutdinov (2006): 28 x 28 images of smooth
curves through three random points in the plane, 20,000 for training and 10,000 for testing.

Each image is made from three points drawn uniformly in the square [margin, 27 - margin]^2 of
pixel coordinates.  The curve is the quadratic (in a parameter t) that passes through the three points,
with the middle point placed at the chord-length fraction t1 = |p1 - p0| / (|p1 - p0| + |p2 - p1|),
so the pen moves at a roughly even speed.  A pixel's intensity is the ink of a soft pen of
half-width `width` pixels at the pixel's distance d from the curve, exp(-d^2 / (2 width^2)),
so intensities lie in [0, 1] and the data have exactly six degrees of freedom.

The paper's supporting material gives the idea (three random 2-D points, a curve through them,
28 x 28 images, 20k/10k) but we could not confirm its exact rendering.  Our pen half-width
(0.5 px) is a choice; the margin (6.25 px) was set once so that PCA with 18 components reaches
the paper's 5.90 squared error (points anywhere in the image, margin 2, give 13.0, so the
paper's curves must be more compact than ours would be by default).  The other numbers of the
report (PCA 6, logistic PCA, auto-encoders) are not tuned.
Generated once per (seed, width) and cached as .npz under cache_root()/curves ($VAEKIT_CACHE).

    >>> from vaekit.data.curves import curves
    >>> train = curves("train")          # Dataset, x (20000, 28, 28) in [0, 1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from ..io import cached, load_npz, save_npz
from .core import Dataset, cache_root, register_dataset

SIZES = {"train": 20_000, "test": 10_000}
SEEDS = {"train": 0, "test": 1}  # added to the user seed, so train and test never share points


def through_three_points(points: np.ndarray, n_steps: int = 120) -> np.ndarray:
    """Points (N, 3, 2) -> samples (N, n_steps, 2) of the quadratic curve through them, in order."""
    p0, p1, p2 = points[:, 0], points[:, 1], points[:, 2]
    a = np.linalg.norm(p1 - p0, axis=1)
    b = np.linalg.norm(p2 - p1, axis=1)
    t1 = np.clip(a / np.maximum(a + b, 1e-9), 0.15, 0.85)[:, None, None]  # where p1 sits on [0, 1]
    t = np.linspace(0.0, 1.0, n_steps)[None, :, None]
    # Lagrange basis on the nodes 0, t1, 1
    l0 = (t - t1) * (t - 1.0) / t1
    l1 = t * (t - 1.0) / (t1 * (t1 - 1.0))
    l2 = t * (t - t1) / (1.0 - t1)
    return l0 * p0[:, None] + l1 * p1[:, None] + l2 * p2[:, None]


def render(paths: np.ndarray, size: int = 28, width: float = 0.5, chunk: int = 500) -> np.ndarray:
    """Curves sampled as (N, T, 2) pixel coordinates (x = column, y = row) -> images (N, size, size)."""
    ys, xs = np.mgrid[0:size, 0:size]
    grid = torch.from_numpy(np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64))  # (P, 2)
    out = np.empty((len(paths), size * size), dtype=np.float32)
    for s in range(0, len(paths), chunk):
        c = torch.from_numpy(paths[s : s + chunk].astype(np.float64))  # (C, T, 2)
        d = torch.cdist(c, grid.expand(len(c), -1, -1)).amin(1)  # (C, P) distance
        out[s : s + chunk] = torch.exp(-d.pow(2) / (2.0 * width**2)).numpy()
    return out.reshape(-1, size, size)


def make_curves(n: int, seed: int = 0, size: int = 28, margin: float = 6.25, width: float = 0.5) -> np.ndarray:
    """n images (n, size, size) float32 in [0, 1]; the same seed gives the same images."""
    if n < 1:
        raise VaekitError(f"curves: n must be >= 1, got {n}")
    if not 0 <= margin < (size - 1) / 2:
        raise VaekitError(f"curves: margin must be in [0, {(size - 1) / 2}), got {margin}")
    if width <= 0:
        raise VaekitError(f"curves: width must be > 0, got {width}")
    rng = np.random.default_rng(seed)
    points = rng.uniform(margin, size - 1 - margin, size=(n, 3, 2))
    return render(through_three_points(points), size, width)


def cache_folder(data_dir=None) -> Path:
    """Where the .npz cache lives: `data_dir`/curves when given explicitly, else cache_root()/curves."""
    return Path(data_dir) / "curves" if data_dir else cache_root() / "curves"


def curves(
    split_name: str = "train",
    data_dir=None,
    seed: int = 0,
    n: int | None = None,
    width: float = 0.5,
    margin: float = 6.25,
    cache: bool = True,
) -> Dataset:
    """The curves split ('train' 20k or 'test' 10k, or the first `n`), cached as .npz."""
    if split_name not in SIZES:
        raise VaekitError(f"unknown split {split_name!r} for curves; choose 'train' or 'test'")
    total = SIZES[split_name]
    n = total if n is None else int(n)
    if not 1 <= n <= total:
        raise VaekitError(f"curves: n must be in [1, {total}] for split {split_name!r}, got {n}")
    path = cache_folder(data_dir) / f"curves_{split_name}_seed{seed}_w{width:g}_m{margin:g}.npz"

    def make(m: int) -> np.ndarray:
        return make_curves(m, seed=seed * 7919 + SEEDS[split_name], margin=margin, width=width)

    if n < total and not (cache and path.is_file()):  # the first n images of a split are the first n of the generator
        x = make(n)
    else:
        x = cached(
            path,
            lambda: make(total),
            lambda p, x: save_npz(p, {"x": x}, compressed=True),
            lambda p: load_npz(p, ("x",))["x"],
            use=cache,
        )
    return Dataset(torch.from_numpy(np.ascontiguousarray(x[:n])), None, "curves")


@register_dataset("curves")
def _load(split_name, data_dir):
    return curves(split_name, data_dir)
