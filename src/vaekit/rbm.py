"""Restricted Boltzmann machines trained with one step of contrastive divergence (CD-1), stacked
greedily and unrolled into a deep auto-encoder: the pre-training of Hinton & Salakhutdinov (2006).

An RBM has visible units v, hidden units h, weights W (n_visible, n_hidden) and biases a, b:

    E(v, h) = -a.v - b.h - v.W.h              (binary units)
    + |v - a|^2 / 2 instead of -a.v           (Gaussian visible units of unit variance, for faces)
    + |h - b|^2 / 2 instead of -b.h           (Gaussian "linear" hidden units, for the code layer)

so p(h|v) and p(v|h) factorise: logistic for binary units, N(mean, 1) for Gaussian ones.  CD-1
follows the gradient <v h>_data - <v h>_reconstruction with momentum and weight decay.

    >>> rbms = pretrain_stack(x, [1000, 500, 250, 30], visible="bernoulli")
    >>> model = unroll(rbms, data_shape=(28, 28))      # a vaekit "autoencoder", ready to fine-tune
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .errors import VaekitError

UNITS = ("bernoulli", "gaussian")


@dataclass
class CDConfig:
    """Hyper-parameters of CD-1 (defaults: the paper's code for binary units)."""

    epochs: int = 50
    batch_size: int = 100
    lr: float = 0.1
    momentum: tuple[float, float] = (0.5, 0.9)  # initial, final (after `momentum_switch` epochs)
    momentum_switch: int = 5
    weight_decay: float = 2e-4
    init_std: float = 0.1
    seed: int = 0


class RBM(torch.nn.Module):
    """One RBM; `visible` and `hidden` are "bernoulli" (logistic) or "gaussian" (linear, unit variance)."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        hidden: str = "bernoulli",
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if visible not in UNITS or hidden not in UNITS:
            raise VaekitError(f"RBM units must be one of {UNITS}, got visible={visible!r}, hidden={hidden!r}")
        if n_visible < 1 or n_hidden < 1:
            raise VaekitError(f"RBM sizes must be >= 1, got {n_visible} x {n_hidden}")
        self.visible, self.hidden = visible, hidden
        self.W = torch.nn.Parameter(
            torch.randn(n_visible, n_hidden, generator=generator) * init_std, requires_grad=False
        )
        self.a = torch.nn.Parameter(torch.zeros(n_visible), requires_grad=False)  # visible biases
        self.b = torch.nn.Parameter(torch.zeros(n_hidden), requires_grad=False)  # hidden biases

    # -- the two conditionals ------------------------------------------------------------------
    def hidden_mean(self, v: torch.Tensor) -> torch.Tensor:
        """E[h | v], shape (B, n_hidden)."""
        x = v @ self.W + self.b
        return torch.sigmoid(x) if self.hidden == "bernoulli" else x

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """E[v | h], shape (B, n_visible)."""
        x = h @ self.W.T + self.a
        return torch.sigmoid(x) if self.visible == "bernoulli" else x

    def sample_hidden(self, mean: torch.Tensor, generator=None) -> torch.Tensor:
        if self.hidden == "bernoulli":
            return (torch.rand(mean.shape, generator=generator) < mean).to(mean.dtype)
        return mean + torch.randn(mean.shape, generator=generator)

    @torch.no_grad()
    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field reconstruction E[v | h = E[h | v]]."""
        return self.visible_mean(self.hidden_mean(v))

    @torch.no_grad()
    def reconstruction_error(self, v: torch.Tensor) -> float:
        """Squared error per item between v and its mean-field reconstruction."""
        return float((self.reconstruct(v) - v).pow(2).sum(1).mean())

    # -- CD-1 ----------------------------------------------------------------------------------
    @torch.no_grad()
    def cd1_gradients(self, v0: torch.Tensor, generator=None):
        """Approximate log-likelihood gradients (dW, da, db) from one step of Gibbs sampling.

        Positive phase on the data and hidden means; the hidden state is sampled to drive the
        reconstruction; the visible reconstruction is its mean (as in the paper's code)."""
        h0 = self.hidden_mean(v0)
        v1 = self.visible_mean(self.sample_hidden(h0, generator))
        h1 = self.hidden_mean(v1)
        n = len(v0)
        return (v0.T @ h0 - v1.T @ h1) / n, (v0 - v1).mean(0), (h0 - h1).mean(0)

    def fit(self, x: torch.Tensor, config: CDConfig | None = None, log=None) -> list[float]:
        """Train on x (N, n_visible) with CD-1; returns the reconstruction error after each epoch."""
        cfg = config or CDConfig()
        x = _flat(x, self.W.shape[0])
        g = torch.Generator().manual_seed(cfg.seed)
        vel = [torch.zeros_like(p) for p in (self.W, self.a, self.b)]
        errors = []
        for epoch in range(cfg.epochs):
            mom = cfg.momentum[0] if epoch < cfg.momentum_switch else cfg.momentum[1]
            t0 = time.perf_counter()
            for idx in torch.randperm(len(x), generator=g).split(cfg.batch_size):
                dW, da, db = self.cd1_gradients(x[idx], g)
                dW = dW - cfg.weight_decay * self.W
                for p, v, d in zip((self.W, self.a, self.b), vel, (dW, da, db)):
                    v.mul_(mom).add_(d, alpha=cfg.lr)
                    p.add_(v)
            err = self.reconstruction_error(x[: min(len(x), 5000)])
            if not math.isfinite(err):
                raise VaekitError(
                    f"RBM {tuple(self.W.shape)}: reconstruction error became {err} in epoch "
                    f"{epoch + 1}; lower the learning rate (now {cfg.lr})"
                )
            errors.append(err)
            if log:
                log(
                    f"rbm {self.W.shape[0]}-{self.W.shape[1]} epoch {epoch + 1}/{cfg.epochs}: "
                    f"reconstruction error {err:.3f} ({time.perf_counter() - t0:.1f} s)"
                )
        return errors


def _flat(x, n_visible: int) -> torch.Tensor:
    x = torch.as_tensor(x).float()
    x = x.reshape(len(x), -1)
    if x.shape[1] != n_visible:
        raise VaekitError(f"RBM data: items have {x.shape[1]} features but the RBM has {n_visible} visible units")
    return x


def pretrain_stack(
    x,
    sizes,
    visible: str = "bernoulli",
    config: CDConfig | None = None,
    first: CDConfig | None = None,
    top: CDConfig | None = None,
    log=None,
) -> list[RBM]:
    """Greedy layer-wise pre-training: RBM k learns the hidden means of RBM k-1.

    `sizes` are the hidden widths, the last one the code (linear, Gaussian hidden units).  `first`
    overrides `config` for the bottom RBM (e.g. Gaussian visible units need a smaller rate) and
    `top` for the code layer (the paper uses lr 0.001 there)."""
    cfg = config or CDConfig()
    top = top or CDConfig(**{**cfg.__dict__, "lr": cfg.lr / 100})
    h = torch.as_tensor(x).float().reshape(len(x), -1)
    rbms = []
    for i, n_hidden in enumerate(sizes):
        last = i == len(sizes) - 1
        c = top if last else (first if (i == 0 and first is not None) else cfg)
        c = CDConfig(**{**c.__dict__, "seed": c.seed + i})
        rbm = RBM(
            h.shape[1],
            n_hidden,
            visible if i == 0 else "bernoulli",
            "gaussian" if last else "bernoulli",
            init_std=c.init_std,
            generator=torch.Generator().manual_seed(c.seed),
        )
        rbm.fit(h, c, log)
        rbms.append(rbm)
        with torch.no_grad():
            h = torch.cat([rbm.hidden_mean(hb) for hb in h.split(10_000)])
    return rbms


def unroll(rbms: list[RBM], data_shape, sigma: float = 1.0):
    """A vaekit "autoencoder" (logistic hidden units, linear code) whose encoder uses the RBMs'
    recognition weights W and whose decoder uses their transposes and visible biases.

    Bernoulli visible units give a Bernoulli decoder (logits); Gaussian ones a Gaussian decoder
    of fixed std `sigma` (so its loss is the squared error / 2 sigma^2 plus a constant)."""
    from .models import build

    if not rbms:
        raise VaekitError("unroll needs at least one RBM")
    for lower, upper in zip(rbms[:-1], rbms[1:]):
        if lower.W.shape[1] != upper.W.shape[0]:
            raise VaekitError(f"RBM stack does not chain: {tuple(lower.W.shape)} then {tuple(upper.W.shape)}")
    if math.prod(data_shape) != rbms[0].W.shape[0]:
        raise VaekitError(
            f"data_shape {tuple(data_shape)} has {math.prod(data_shape)} features but the first "
            f"RBM has {rbms[0].W.shape[0]} visible units"
        )
    gaussian = rbms[0].visible == "gaussian"
    model = build(
        "autoencoder",
        data_shape=tuple(data_shape),
        latent_dim=rbms[-1].W.shape[1],
        hidden=tuple(r.W.shape[1] for r in rbms[:-1]),
        activation="sigmoid",
        likelihood="gaussian" if gaussian else "bernoulli",
        sigma=sigma if gaussian else None,
    )
    enc = [m for m in model.encoder.body.net if isinstance(m, torch.nn.Linear)] + [model.encoder.head]
    dec = [m for m in model.decoder.body.net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, rbm in zip(enc, rbms):
            layer.weight.copy_(rbm.W.T)
            layer.bias.copy_(rbm.b)
        for layer, rbm in zip(dec, reversed(rbms)):
            layer.weight.copy_(rbm.W)
            layer.bias.copy_(rbm.a)
    return model
