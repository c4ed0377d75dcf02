"""Density-ratio estimation by probabilistic classification.

Train a classifier T to tell samples of p (label 1) from samples of q (label 0) with the logistic
loss and equal numbers of each.  The Bayes-optimal logit is the log density ratio:

    T*(x) = log p(x) / q(x)        so        KL(p || q) = E_p[log p/q] ~ mean of T over fresh p samples.

Nothing about p or q needs a density: only samples.  That is what lets a VAE use an *implicit*
posterior (`models/avb.py`) or measure how far its aggregate posterior q(z) = E_x q(z|x) is from the
prior (`aggregate_kl`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .bounds import LatentModel
from .errors import VaekitError
from .nets import mlp
from .objective import Loss

__all__ = ["Critic", "logistic_loss", "fit_ratio", "RatioKL", "kl_divergence", "aggregate_kl"]

Samples = torch.Tensor | Callable[[int], torch.Tensor]


class Critic(nn.Module):
    """T(inputs) -> logit per item: an MLP on the flattened inputs, concatenated.

    `quadratic=True` adds the squares of the (concatenated) inputs as features, which makes the
    log ratio of two Gaussians exactly representable by the last layer's skip connection.
    """

    def __init__(
        self, in_features: int, hidden: Sequence[int] = (128, 128), activation: str = "relu", quadratic: bool = False
    ):
        super().__init__()
        if in_features < 1:
            raise VaekitError(f"Critic in_features must be >= 1, got {in_features}")
        self.in_features, self.quadratic = int(in_features), quadratic
        n = in_features * (2 if quadratic else 1)
        self.net = mlp([n, *hidden, 1], activation)
        self.skip = nn.Linear(n, 1, bias=False)  # a linear (logistic-regression) part, plus the MLP

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        lead = inputs[0].shape[0]
        h = torch.cat([t.reshape(lead, -1) for t in inputs], -1)
        if h.shape[-1] != self.in_features:
            raise VaekitError(f"Critic expects {self.in_features} input features per item, got {h.shape[-1]}")
        if self.quadratic:
            h = torch.cat([h, h * h], -1)
        logit: torch.Tensor = (self.net(h) + self.skip(h)).squeeze(-1)
        return logit


def logistic_loss(logit_p: torch.Tensor, logit_q: torch.Tensor) -> Loss:
    """Discriminator loss: -E_p[log sigma(T)] - E_q[log(1 - sigma(T))]; also logs its accuracy."""
    value = F.softplus(-logit_p).mean() + F.softplus(logit_q).mean()
    acc = 0.5 * ((logit_p > 0).float().mean() + (logit_q < 0).float().mean())
    return Loss(value, {"disc_loss": value.detach(), "disc_acc": acc.detach()})


def _sampler(
    s: Samples, name: str, generator: torch.Generator
) -> tuple[Callable[[int], torch.Tensor], torch.Tensor | None]:
    """(draw(n), held-out) for a tensor (minibatches from 80 %, 20 % held out) or a sampling function."""
    if callable(s) and not isinstance(s, torch.Tensor):
        return s, None
    if not isinstance(s, torch.Tensor) or s.dim() < 2 or len(s) < 10:
        raise VaekitError(f"{name} must be a tensor (N >= 10, *shape) of samples or a function n -> samples")
    if not torch.isfinite(s).all():
        raise VaekitError(f"{name} contains NaN or inf")
    perm = torch.randperm(len(s), generator=generator)
    n_hold = max(1, len(s) // 5)
    train, hold = s[perm[n_hold:]], s[perm[:n_hold]]
    return (lambda n: train[torch.randint(len(train), (n,), generator=generator)]), hold


def fit_ratio(
    p: Samples,
    q: Samples,
    critic: nn.Module | None = None,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    hidden: Sequence[int] = (128, 128),
    quadratic: bool = False,
    seed: int = 0,
) -> nn.Module:
    """Train a critic whose logit estimates log p(x)/q(x), from samples of p and q.

    p, q: tensors `(N, *shape)` of samples (80 % used for training) or functions n -> `(n, *shape)`.
    """
    g = torch.Generator().manual_seed(seed)
    draw_p, _ = _sampler(p, "p", g)
    draw_q, _ = _sampler(q, "q", g)
    x0 = draw_p(2)
    if critic is None:
        critic = Critic(math.prod(x0.shape[1:]), hidden, quadratic=quadratic).to(x0.device)
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    critic.train()
    for _ in range(steps):
        loss = logistic_loss(critic(draw_p(batch_size)), critic(draw_q(batch_size)))
        opt.zero_grad(set_to_none=True)
        loss.value.backward()
        opt.step()
        sched.step()
    return critic.eval()


@dataclass
class RatioKL:
    """KL(p || q) estimated as the mean critic logit over held-out p samples."""

    kl: float  # nats
    standard_error: float  # Monte Carlo error of the mean over the evaluation samples (not the critic's bias)
    accuracy: float  # held-out classification accuracy of the critic
    critic: nn.Module


@torch.no_grad()
def _evaluate(critic: nn.Module, xp: torch.Tensor, xq: torch.Tensor) -> RatioKL:
    lp, lq = critic(xp), critic(xq)
    se = float(lp.std() / math.sqrt(len(lp)))
    return RatioKL(float(lp.mean()), se, float(logistic_loss(lp, lq).terms["disc_acc"]), critic)


def kl_divergence(p: Samples, q: Samples, *, n_eval: int = 20000, seed: int = 0, **fit_kwargs: Any) -> RatioKL:
    """KL(p || q) from samples only: fit a critic, then average its logit over held-out p samples.

    Tensors of samples are split 80/20 (train/evaluate); sampling functions draw `n_eval` fresh items.
    """
    g = torch.Generator().manual_seed(seed)
    draw_p, hold_p = _sampler(p, "p", g)
    draw_q, hold_q = _sampler(q, "q", g)
    critic = fit_ratio(draw_p, draw_q, seed=seed, **fit_kwargs)
    xp = hold_p if hold_p is not None else draw_p(n_eval)  # a sampling function: fresh draws
    xq = hold_q if hold_q is not None else draw_q(n_eval)
    return _evaluate(critic, xp, xq)


@torch.no_grad()
def _aggregate_samples(model: LatentModel, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    return torch.cat([model.encode(xb).sample() for xb in x.split(batch_size)])


def aggregate_kl(model: LatentModel, x: torch.Tensor, **fit_kwargs: Any) -> RatioKL:
    """KL(q(z) || p(z)) of a trained model's aggregate posterior q(z) = mean_x q(z|x) over data x.

    One z ~ q(z|x) per data item is the p-side sample; the prior supplies the other side.
    """
    z = _aggregate_samples(model, x)
    prior = model.prior()
    return kl_divergence(z, lambda n: prior.sample((n,)), **fit_kwargs)
