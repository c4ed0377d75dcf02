"""Variational bounds on log p(x), an importance-sampled estimate of log p(x) itself, and seeded evaluation.

All values are in nats per data item.  Objectives return a `Loss`: `value` (a scalar to minimise)
and `terms` (named batch means for logging).  They are pure functions of (model, x).

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))                          (ELBO, by Jensen)
    log p(x) >= E_{z_1..k ~ r}[log 1/k sum_i p(x, z_i) / r(z_i|x)]   (IWAE-k; r = q, k = 1: the ELBO)

The second holds for any proposal r(z|x), so models without an encoder density can be bounded too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

import torch
from torch import distributions as D

from . import estimators, likelihoods
from .errors import VaekitError
from .objective import Loss as Loss  # re-exported: objectives here return it


class LatentModel(Protocol):
    """What the bounds use of a model: q(z|x), p(x|z) and p(z), each a distribution."""

    def encode(self, x: torch.Tensor) -> D.Distribution: ...

    def decode(self, z: torch.Tensor) -> D.Distribution: ...

    @property
    def prior(self) -> Callable[[], D.Distribution]: ...


class KLSchedule(Protocol):
    """A config with a KL weight and its warm-up (VAE.Config, ChemConfig)."""

    beta: float
    warmup_steps: int


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global random state seeded by `seed`, and give the caller's state back after.

    Evaluations draw their noise under it, so they are reproducible and leave a training run's stream untouched.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def kl(q: D.Distribution, p: D.Distribution, n_samples: int = 1) -> torch.Tensor:
    """KL(q || p) per batch item: analytic when torch registers it, else a re-parametrized MC estimate."""
    try:
        return D.kl_divergence(q, p)
    except NotImplementedError:
        z = q.rsample((n_samples,))
        return (q.log_prob(z) - p.log_prob(z)).mean(0)


def kl_weight(config: KLSchedule, step: int) -> float:
    """beta at a training step with KL warm-up: it grows linearly from 0 to `config.beta` over `config.warmup_steps`."""
    w = config.warmup_steps
    return float(config.beta * (min(1.0, step / w) if w > 0 else 1.0))


def check_kl_schedule(config: KLSchedule) -> None:
    """A config's `beta` >= 0 and `warmup_steps` >= 0 (see kl_weight), else a one-line VaekitError."""
    if not config.beta >= 0:
        raise VaekitError(f"config field beta must be >= 0, got {config.beta}")
    if config.warmup_steps < 0:
        raise VaekitError(f"config field warmup_steps must be >= 0, got {config.warmup_steps}")


class ElboTerms(NamedTuple):
    """The ELBO's two terms per item, each of shape (B,)."""

    rec: torch.Tensor  # E_q[log p(x|z)], a Monte Carlo estimate
    kl: torch.Tensor  # KL(q(z|x) || p(z)), or an estimate of it

    @property
    def elbo(self) -> torch.Tensor:
        return self.rec - self.kl

    def loss(self, beta: float = 1.0) -> Loss:
        """Negative (beta-weighted) ELBO of the batch as the loss; `terms` reports the plain ELBO (beta = 1)."""
        rec, kl_ = self.rec.mean(), self.kl.mean()
        return Loss(-(rec - beta * kl_), {"elbo": (rec - kl_).detach(), "rec": rec.detach(), "kl": kl_.detach()})


def elbo_terms(
    model: LatentModel, x: torch.Tensor, n_samples: int = 1, estimator: str = "reparam", **options: Any
) -> ElboTerms:
    """Per-item (reconstruction log-likelihood, KL); E_q[log p(x|z)] is differentiated by `estimator`
    (see `estimators.encoder_expectation`: "reparam", "score", "es" and their `options`), the KL analytically."""
    q = model.encode(x)
    rec = estimators.encoder_expectation(
        model, x, q, lambda z: model.decode(z).log_prob(x), estimator, n_samples, **options
    )
    return ElboTerms(rec.surrogate, kl(q, model.prior()))


def elbo(
    model: LatentModel,
    x: torch.Tensor,
    *,
    beta: float = 1.0,
    n_samples: int = 1,
    estimator: str = "reparam",
    **options: Any,
) -> Loss:
    """Negative (beta-weighted) ELBO as the loss; `terms` reports the plain ELBO (beta = 1)."""
    return elbo_terms(model, x, n_samples, estimator, **options).loss(beta)


def log_mean_exp(v: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log (1/k sum_i exp v_i) over `dim` of size k, computed without overflow."""
    return torch.logsumexp(v, dim) - math.log(v.shape[dim])


def log_weights(
    model: LatentModel,
    x: torch.Tensor,
    k: int,
    noise: torch.Tensor | None = None,
    proposal: D.Distribution | None = None,
) -> torch.Tensor:
    """log w_i = log p(x, z_i) - log r(z_i|x) for z_i ~ r(z|x), the `proposal` (default q(z|x)); shape (k, B).

    `noise` (k, B, latent), standard normal, fixes the draws z = mean + std * noise of a Gaussian r
    (common random numbers, e.g. to make a score reproducible per item).
    """
    r = model.encode(x) if proposal is None else proposal
    z = r.rsample((k,)) if noise is None else r.mean + r.stddev * noise
    out: torch.Tensor = model.decode(z).log_prob(x) + model.prior().log_prob(z) - r.log_prob(z)
    return out


def iwae_bound(model: LatentModel, x: torch.Tensor, *, k: int = 5) -> Loss:
    """Negative IWAE-k bound as the loss (Burda, Grosse & Salakhutdinov 2015)."""
    bound = log_mean_exp(log_weights(model, x, k)).mean()
    return Loss(-bound, {f"iwae{k}": bound.detach()})


def reconstruction(model: LatentModel, x: torch.Tensor) -> Loss:
    """Auto-encoder loss -log p(x | z = f(x)); also logs the summed squared error per item."""
    dist = model.decode(model.encode(x).mean)
    nll = -dist.log_prob(x).mean()
    sq = (likelihoods.mean(dist) - x).pow(2).flatten(1).sum(1).mean()
    return Loss(nll, {"rec": -nll.detach(), "sq_err": sq.detach()})


@torch.no_grad()
def log_likelihood(
    model: LatentModel,
    x: torch.Tensor,
    k: int = 5000,
    *,
    batch_size: int = 100,
    max_elements: int = 2**25,
    noise_fn: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None,
    proposal: Callable[[torch.Tensor], D.Distribution] | None = None,
) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) per item with k samples from q(z|x), shape (B,).

    Computed in chunks of samples and items so memory stays below ~`max_elements` floats; the
    chunks are combined exactly with log-sum-exp.  The estimate is a stochastic lower bound whose
    bias vanishes as k grows (it is the IWAE-k bound).  `noise_fn(xb, start, m)` may supply the
    standard-normal draws (m, len(xb), latent) for samples start..start+m of batch xb.
    `proposal(xb)` may give another proposal r(z|x) for a batch (a distribution over z, batch shape
    (len(xb),)) in place of q(z|x): the estimate is a lower bound on log p(x) whatever r is.
    """
    n_feat = max(1, math.prod(x.shape[1:]))
    out = []
    for xb in x.split(batch_size):
        r = None if proposal is None else proposal(xb)
        chunk = max(1, min(k, max_elements // (n_feat * len(xb))))
        acc = torch.full((len(xb),), float("-inf"), device=x.device, dtype=torch.float64)
        done = 0
        while done < k:
            m = min(chunk, k - done)
            noise = None if noise_fn is None else noise_fn(xb, done, m)
            acc = torch.logaddexp(acc, torch.logsumexp(log_weights(model, xb, m, noise, r).double(), 0))
            done += m
        out.append((acc - math.log(k)).to(x.dtype))
    return torch.cat(out)
