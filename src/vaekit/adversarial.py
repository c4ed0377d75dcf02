"""Adversarial games: a discriminator learns to tell real from fake, a generator learns to fool it.

The discriminator D(x) = sigma(T(x)) is the density-ratio classifier of `vaekit.ratio`: trained with
the logistic loss on real (label 1) against fake (label 0) samples, its logit T estimates
log p_real(x) / p_fake(x).  The generator then moves its samples to where T is large.  With the
*non-saturating* loss (Goodfellow et al. 2014) the generator minimises -log D(G(z)) rather than
log(1 - D(G(z))), which has a useful gradient even while D rejects every fake.

This module holds the game's pieces; the models that play it declare their moves as phases
(`objective.Phase`), which the one training loop runs in order on every batch:

* GAN (`models/gan.py`, the smallest demo): discriminator phase (data vs G(noise)), generator phase.
* Adversarial auto-encoder (`models/aae.py`, Makhzani et al. 2015): reconstruction phase (encoder
  and decoder), discriminator phase on codes z = f(x) ("fake") against prior samples z ~ p(z)
  ("real"), generator phase in which the encoder makes its codes look like prior samples.  Any
  prior one can *sample* will do: no density of p(z) or q(z) is needed.

Priors / targets to match are `torch.distributions` objects: a standard Gaussian, a mixture of
Gaussians on a circle (10 for the AAE, 8 in the usual 2-D GAN benchmark) and a 2-D ring.
`mmd2` and `mode_coverage` measure how well samples match a target.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import distributions as D

from .errors import VaekitError
from .objective import Loss
from .ratio import Critic, logistic_loss

__all__ = [
    "discriminator_loss",
    "generator_loss",
    "Discriminator",
    "gaussian",
    "circle_points",
    "mixture_on_circle",
    "Ring",
    "ring",
    "prior",
    "PRIORS",
    "mmd2",
    "mode_coverage",
]


# -- the two losses of the game ---------------------------------------------------------------------
def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> Loss:
    """-E_real[log D] - E_fake[log(1 - D)] on logits; logs the accuracy on each side.

    acc_real is the fraction of real samples called real, acc_fake of fakes called fake; at the
    game's equilibrium both are near 0.5.
    """
    loss = logistic_loss(logit_real, logit_fake)
    return Loss(
        loss.value,
        {
            **loss.terms,
            "acc_real": (logit_real > 0).float().mean().detach(),
            "acc_fake": (logit_fake < 0).float().mean().detach(),
        },
    )


def generator_loss(logit_fake: torch.Tensor) -> Loss:
    """Non-saturating generator loss -E[log D(G(z))] = E[softplus(-T)]; logs how many fakes pass as real."""
    value = F.softplus(-logit_fake).mean()
    return Loss(value, {"gen_loss": value.detach(), "fooled": (logit_fake > 0).float().mean().detach()})


class Discriminator(Critic):
    """T(x) -> logit per item (D = sigma(T)): an MLP plus a linear skip on the flattened input."""

    def __init__(self, in_features: int, hidden=(128, 128), activation: str = "relu"):
        super().__init__(in_features, hidden, activation)


# -- distributions to match ------------------------------------------------------------------------
def gaussian(dim: int = 2, device=None) -> D.Distribution:
    """N(0, I) in `dim` dimensions."""
    zeros = torch.zeros(dim, device=device)
    return D.Independent(D.Normal(zeros, torch.ones_like(zeros)), 1)


def circle_points(n: int, radius: float, device=None) -> torch.Tensor:
    """n points evenly spaced on a circle, shape (n, 2), the first on the positive x axis."""
    angle = torch.arange(n, device=device, dtype=torch.float32) * (2 * math.pi / n)
    return radius * torch.stack([angle.cos(), angle.sin()], -1)


def mixture_on_circle(n: int = 10, radius: float = 4.0, std: float = 0.5, device=None) -> D.Distribution:
    """Equal mixture of n isotropic 2-D Gaussians N(c_k, std^2 I) with centres c_k on a circle."""
    centres = circle_points(n, radius, device)
    comps = D.Independent(D.Normal(centres, torch.full_like(centres, std)), 1)
    return D.MixtureSameFamily(D.Categorical(logits=torch.zeros(n, device=device)), comps)


class Ring(D.Distribution):
    """A 2-D ring: angle ~ U(0, 2 pi), radius ~ N(radius, width^2).  Sampling only (no log_prob)."""

    arg_constraints: dict = {}
    support = D.constraints.real_vector

    def __init__(self, radius: float = 3.0, width: float = 0.2, device=None):
        if not (radius > 0 and width > 0):
            raise VaekitError(f"Ring needs radius > 0 and width > 0, got {radius}, {width}")
        self.radius, self.width, self.device = float(radius), float(width), device
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([2]), validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape)
        angle = torch.rand(shape, device=self.device) * (2 * math.pi)
        r = self.radius + self.width * torch.randn(shape, device=self.device)
        return torch.stack([r * angle.cos(), r * angle.sin()], -1)

    @property
    def mean(self):
        return torch.zeros(2, device=self.device)


def ring(radius: float = 3.0, width: float = 0.2, device=None) -> Ring:
    return Ring(radius, width, device)


# name -> f(dim, device) -> Distribution: the priors an adversarial auto-encoder can match
PRIORS = {
    "gaussian": lambda dim, device=None: gaussian(dim, device),
    "mixture": lambda dim, device=None: mixture_on_circle(10, 4.0, 0.5, device),
    "ring": lambda dim, device=None: ring(3.0, 0.2, device),
}


def prior(kind: str, dim: int = 2, device=None) -> D.Distribution:
    """One of PRIORS by name; "mixture" (10 Gaussians on a circle) and "ring" are 2-D only."""
    if kind not in PRIORS:
        raise VaekitError(f"prior must be one of {sorted(PRIORS)}, got {kind!r}")
    if kind != "gaussian" and dim != 2:
        raise VaekitError(f"prior {kind!r} is 2-D; latent_dim must be 2, got {dim}")
    return PRIORS[kind](dim, device)


# -- how well do samples match a target? -----------------------------------------------------------
def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)) -> float:
    """Unbiased squared maximum mean discrepancy between samples x (n, d) and y (m, d).

    Kernel: the sum of Gaussian kernels exp(-|a - b|^2 / (2 h^2)) over `bandwidths` h.  Zero in
    expectation when x and y come from the same distribution; can be slightly negative.
    """
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    if x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise VaekitError(
            f"mmd2 needs two sample sets (>= 2 items each) of the same dimension, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )

    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def mode_coverage(
    samples: torch.Tensor, centres: torch.Tensor, std: float, *, within: float = 3.0, min_fraction: float = 0.01
) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples) for a mixture of isotropic Gaussians.

    A sample is high quality if it lies within `within` std of its nearest centre; a mode is covered
    if at least `min_fraction` of all samples are high quality and nearest to it (the usual 2-D GAN
    benchmark: 3 std, 1 %).
    """
    d = torch.cdist(samples.reshape(len(samples), -1).double(), centres.double())
    dist, nearest = d.min(1)
    good = dist <= within * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    return int((counts >= min_fraction * len(samples)).sum()), float(good.double().mean())
