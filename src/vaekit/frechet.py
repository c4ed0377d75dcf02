"""The Fréchet distance between two sets of features, each summarised by a Gaussian (leaf module).

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

It is FID for images (Heusel et al. 2017), FCD for molecules (Preuer et al. 2018, features of ChemNet;
`chem.metrics.fcd`) and the glyph Fréchet distance for fonts (features of a glyph classifier;
`fontmetrics`).  Lower is closer; 0 only for equal means and covariances.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["moments", "frechet_distance"]


def moments(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features of shape (N >= 2, F), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """d^2 between N(mu1, sigma1) and N(mu2, sigma2).  When the product of the covariances is singular
    (fewer items than features), eps is added to both diagonals before the matrix square root."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"moments of different shapes: {mu1.shape}, {s1.shape} vs {mu2.shape}, {s2.shape}")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # checked below: singular -> offset
        root = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(root).all():
        offset = np.eye(len(mu1)) * eps
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            root = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    root = np.real(root)  # the imaginary part is round-off
    diff = mu1 - mu2
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)))  # >= 0 up to round-off
