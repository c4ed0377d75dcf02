"""Variational bounds on log p(x), and an importance-sampled estimate of log p(x) itself.

All values are in nats per data item.  Objectives return a `Loss`: `value` (a scalar to minimise)
and `terms` (named batch means for logging).  They are pure functions of (model, x).

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))                          (ELBO, by Jensen)
    log p(x) >= E_{z_1..k ~ q}[log 1/k sum_i p(x, z_i) / q(z_i|x)]   (IWAE-k; k=1 is the ELBO)
"""
from __future__ import annotations

import math
import torch
from torch import distributions as D

from . import likelihoods
from .objective import Loss


def kl(q: D.Distribution, p: D.Distribution, n_samples: int = 1) -> torch.Tensor:
    """KL(q || p) per batch item: analytic when torch registers it, else a re-parametrized MC estimate."""
    try:
        return D.kl_divergence(q, p)
    except NotImplementedError:
        z = q.rsample((n_samples,))
        return (q.log_prob(z) - p.log_prob(z)).mean(0)


def elbo_terms(model, x, n_samples: int = 1):
    """Per-item (reconstruction log-likelihood, KL), each of shape (B,)."""
    q = model.encode(x)
    z = q.rsample((n_samples,))                      # (S, B, latent)
    rec = model.decode(z).log_prob(x).mean(0)        # (B,)
    return rec, kl(q, model.prior())


def elbo(model, x, *, beta: float = 1.0, n_samples: int = 1) -> Loss:
    """Negative (beta-weighted) ELBO as the loss; `terms` reports the plain ELBO (beta = 1)."""
    rec, kl_ = elbo_terms(model, x, n_samples)
    rec_m, kl_m = rec.mean(), kl_.mean()
    return Loss(-(rec_m - beta * kl_m), {"elbo": (rec_m - kl_m).detach(), "rec": rec_m.detach(), "kl": kl_m.detach()})


def log_weights(model, x, k: int, noise: torch.Tensor | None = None) -> torch.Tensor:
    """log w_i = log p(x, z_i) - log q(z_i|x) for z_i ~ q(z|x); shape (k, B).

    `noise` (k, B, latent), standard normal, fixes the draws z = mean + std * noise of a Gaussian q
    (common random numbers, e.g. to make a score reproducible per item).
    """
    q = model.encode(x)
    z = q.rsample((k,)) if noise is None else q.mean + q.stddev * noise
    return model.decode(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)


def iwae_bound(model, x, *, k: int = 5) -> Loss:
    """Negative IWAE-k bound as the loss (Burda, Grosse & Salakhutdinov 2015)."""
    lw = log_weights(model, x, k)
    bound = (torch.logsumexp(lw, 0) - math.log(k)).mean()
    return Loss(-bound, {f"iwae{k}": bound.detach()})


def reconstruction(model, x) -> Loss:
    """Auto-encoder loss -log p(x | z = f(x)); also logs the summed squared error per item."""
    dist = model.decode(model.encode(x).mean)
    nll = -dist.log_prob(x).mean()
    sq = (likelihoods.mean(dist) - x).pow(2).flatten(1).sum(1).mean()
    return Loss(nll, {"rec": -nll.detach(), "sq_err": sq.detach()})


@torch.no_grad()
def log_likelihood(model, x, k: int = 5000, *, batch_size: int = 100, max_elements: int = 2**25,
                   noise_fn=None) -> torch.Tensor:
    """Importance-sampled estimate of log p(x) per item with k samples from q(z|x), shape (B,).

    Computed in chunks of samples and items so memory stays below ~`max_elements` floats; the
    chunks are combined exactly with log-sum-exp.  The estimate is a stochastic lower bound whose
    bias vanishes as k grows (it is the IWAE-k bound).  `noise_fn(xb, start, m)` may supply the
    standard-normal draws (m, len(xb), latent) for samples start..start+m of batch xb.
    """
    n_feat = max(1, math.prod(x.shape[1:]))
    out = []
    for xb in x.split(batch_size):
        chunk = max(1, min(k, max_elements // (n_feat * len(xb))))
        acc = torch.full((len(xb),), float("-inf"), device=x.device, dtype=torch.float64)
        done = 0
        while done < k:
            m = min(chunk, k - done)
            noise = None if noise_fn is None else noise_fn(xb, done, m)
            acc = torch.logaddexp(acc, torch.logsumexp(log_weights(model, xb, m, noise).double(), 0))
            done += m
        out.append((acc - math.log(k)).to(x.dtype))
    return torch.cat(out)
