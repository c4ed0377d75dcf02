"""Observation models p(x|z): turn decoder outputs into `torch.distributions` objects.

A decoder body emits `params_per_feature(kind) * prod(data_shape)` numbers per item; `distribution`
reshapes them and returns an `Independent` distribution whose event shape is the data shape, so
`log_prob(x)` sums over all pixels/features and gives one number (nats) per item.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import distributions as D

KINDS = ("bernoulli", "gaussian", "categorical")


def params_per_feature(kind: str, sigma: float | None = None, n_categories: int = 256) -> int:
    if kind == "bernoulli":
        return 1
    if kind == "gaussian":
        return 1 if sigma is not None else 2
    if kind == "categorical":
        return n_categories
    raise ValueError(f"unknown likelihood {kind!r}; choose one of {KINDS}")


def distribution(h: torch.Tensor, kind: str, data_shape, sigma: float | None = None,
                 min_sigma: float = 1e-3, n_categories: int = 256) -> D.Distribution:
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
