"""Observation models p(x|z): turn decoder outputs into `torch.distributions` objects.

A decoder body emits `params_per_feature(kind) * prod(data_shape)` numbers per item; `distribution`
reshapes them and returns an `Independent` distribution whose event shape is the data shape, so
`log_prob(x)` sums over all pixels/features and gives one number (nats) per item.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import distributions as D

from .errors import VaekitError, VaekitWarning

KINDS = ("bernoulli", "gaussian", "categorical")


def params_per_feature(kind: str, sigma: float | None = None, n_categories: int = 256) -> int:
    if kind == "bernoulli":
        return 1
    if kind == "gaussian":
        return 1 if sigma is not None else 2
    if kind == "categorical":
        return n_categories
    raise ValueError(f"unknown likelihood {kind!r}; choose one of {KINDS}")


def distribution(
    h: torch.Tensor, kind: str, data_shape, sigma: float | None = None, min_sigma: float = 1e-3, n_categories: int = 256
) -> D.Distribution:
    """h: (*batch, P * prod(data_shape)) decoder outputs -> distribution with event shape data_shape."""
    batch = h.shape[:-1]
    n = len(data_shape)
    if kind == "bernoulli":
        return D.Independent(D.Bernoulli(logits=h.reshape(*batch, *data_shape), validate_args=False), n)
    if kind == "gaussian":
        if sigma is not None:
            return D.Independent(D.Normal(h.reshape(*batch, *data_shape), sigma, validate_args=False), n)
        mu, log_sigma = h.reshape(*batch, 2, *data_shape).unbind(len(batch))
        scale = F.softplus(log_sigma) + min_sigma
        return D.Independent(D.Normal(mu, scale, validate_args=False), n)
    if kind == "categorical":
        logits = h.reshape(*batch, n_categories, *data_shape).movedim(len(batch), -1)
        return D.Independent(D.Categorical(logits=logits, validate_args=False), n)
    raise ValueError(f"unknown likelihood {kind!r}; choose one of {KINDS}")


def mean(dist: D.Distribution) -> torch.Tensor:
    """The expected observation in data units ([0, 1] for Bernoulli; level index / (K-1) for categorical)."""
    base = dist.base_dist if isinstance(dist, D.Independent) else dist
    if isinstance(base, D.Categorical):
        k = base.probs.shape[-1]
        levels = torch.arange(k, dtype=base.probs.dtype, device=base.probs.device)
        return (base.probs * levels).sum(-1) / max(k - 1, 1)
    return dist.mean


def gaussian_log_norm(sigma: float, n_features: int) -> float:
    """log normaliser of a fixed-sigma Gaussian over n features (useful to convert nats to squared error)."""
    return -n_features * (math.log(sigma) + 0.5 * math.log(2 * math.pi))


def check_data(kind: str, x: torch.Tensor, name: str = "data", n_categories: int = 256) -> None:
    """Refuse data outside the likelihood's support (VaekitError naming `name` and the fix); warn
    (VaekitWarning) when a Gaussian is asked to fit data far from unit scale.

    bernoulli: values in [0, 1].  categorical: whole numbers 0 .. n_categories - 1 (level indices).
    """
    lo, hi = float(x.min()), float(x.max())
    if kind == "bernoulli" and (lo < 0 or hi > 1):
        raise VaekitError(
            f"{name}: values run from {lo:.4g} to {hi:.4g}, but the bernoulli likelihood needs them "
            "in [0, 1]; use the gaussian likelihood (--likelihood gaussian) or scale the data into [0, 1]"
        )
    if kind == "categorical":
        if lo < 0 or hi > n_categories - 1 or not torch.equal(x, x.round()):
            raise VaekitError(
                f"{name}: the categorical likelihood needs whole numbers from 0 to {n_categories - 1} "
                f"(level indices), got values from {lo:.4g} to {hi:.4g}"
                f"{'' if torch.equal(x, x.round()) else ' that are not whole numbers'}; "
                "use --likelihood gaussian for real values (or bernoulli for values in [0, 1])"
            )
    if kind == "gaussian":
        m, sd = float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0
        if abs(m) > 10 or sd > 10:
            warnings.warn(
                f"{name}: values have mean {m:.4g} and standard deviation {sd:.4g}; a gaussian likelihood "
                "learns slowly and reports huge losses far from unit scale: standardise the data per "
                "feature (vaekit fit --standardize)",
                VaekitWarning,
                stacklevel=2,
            )
