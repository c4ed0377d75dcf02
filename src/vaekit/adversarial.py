"""Adversarial games: a discriminator learns to tell real from fake, a generator learns to fool it.

The discriminator D(x) = sigma(T(x)) is the density-ratio classifier of `vaekit.ratio`: trained with
the logistic loss on real (label 1) against fake (label 0) samples, its logit T estimates
log p_real(x) / p_fake(x).  The generator then moves its samples to where T is large.  With the
*non-saturating* loss (Goodfellow et al. 2014) the generator minimises -log D(G(z)) rather than
log(1 - D(G(z))), which has a useful gradient even while D rejects every fake.

Each player is a `train.Phase`; the one training loop runs them in order on every batch:

* GAN (`GAN`, the smallest demo): discriminator phase (data vs G(noise)), generator phase.
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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from .bounds import Loss
from .errors import VaekitError
from .nets import ACTIVATIONS, mlp
from .models import register
from .ratio import Critic, logistic_loss
from .train import Phase

__all__ = ["discriminator_loss", "generator_loss", "Discriminator", "gaussian", "mixture_on_circle", "Ring",
           "ring", "prior", "PRIORS", "GAN", "gan_phases", "aae_phases", "mmd2", "mode_coverage"]


# -- the two losses of the game ---------------------------------------------------------------------
def discriminator_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor) -> Loss:
    """-E_real[log D] - E_fake[log(1 - D)] on logits; logs the accuracy on each side.

    acc_real is the fraction of real samples called real, acc_fake of fakes called fake; at the
    game's equilibrium both are near 0.5.
    """
    loss = logistic_loss(logit_real, logit_fake)
    return Loss(loss.value, {**loss.terms, "acc_real": (logit_real > 0).float().mean().detach(),
                             "acc_fake": (logit_fake < 0).float().mean().detach()})


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


# -- the smallest demo: a GAN on 2-D points ---------------------------------------------------------
@register("gan")
class GAN(nn.Module):
    """x = G(eps), eps ~ N(0, I): a generator MLP from noise, and a discriminator on data space.

    `fit(gan, data)` trains it: the model declares its two phases (`phases()`), discriminator first.
    """

    @dataclass
    class Config:
        data_shape: tuple[int, ...] = (2,)
        noise_dim: int = 2
        hidden: tuple[int, ...] = (128, 128)          # generator widths
        disc_hidden: tuple[int, ...] = (128, 128)
        activation: str = "relu"
        disc_lr: float | None = None                  # the discriminator's Adam lr (None: TrainConfig.lr)

        def __post_init__(self):
            self.data_shape = tuple(int(s) for s in self.data_shape)
            self.hidden, self.disc_hidden = tuple(map(int, self.hidden)), tuple(map(int, self.disc_hidden))
            if not self.data_shape or min(self.data_shape) < 1 or self.noise_dim < 1:
                raise VaekitError(f"GAN config: data_shape and noise_dim must be positive, got "
                                  f"{self.data_shape}, {self.noise_dim}")
            if min(self.hidden + self.disc_hidden, default=1) < 1:
                raise VaekitError(f"GAN config: hidden widths must be positive, got {self.hidden}, {self.disc_hidden}")
            if self.activation not in ACTIVATIONS:
                raise VaekitError(f"GAN config field activation must be one of {sorted(ACTIVATIONS)}, "
                                  f"got {self.activation!r}")

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        d = math.prod(config.data_shape)
        self.generator = mlp([config.noise_dim, *config.hidden, d], config.activation)
        self.discriminator = Discriminator(d, config.disc_hidden, config.activation)

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, device=next(self.parameters()).device)

    def generate(self, eps: torch.Tensor) -> torch.Tensor:
        return self.generator(eps).reshape(len(eps), *self.config.data_shape)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.generate(self.noise(n))

    def phases(self) -> list[Phase]:
        return gan_phases(self.config.disc_lr)


def _gan_discriminator(model, x, step):
    fake = model.generate(model.noise(len(x))).detach()
    return discriminator_loss(model.discriminator(x), model.discriminator(fake))


def _gan_generator(model, x, step):
    return generator_loss(model.discriminator(model.generate(model.noise(len(x)))))


def gan_phases(disc_lr: float | None = None) -> list[Phase]:
    """Discriminator step (data vs G(noise)), then generator step (non-saturating loss)."""
    return [Phase("disc", _gan_discriminator, lambda m: m.discriminator.parameters(), lr=disc_lr),
            Phase("gen", _gan_generator, lambda m: m.generator.parameters())]


# -- the adversarial auto-encoder's three phases (Makhzani et al. 2015) ---------------------------
def _aae_reconstruction(model, x, step):
    return model.loss(x, step)


def _aae_discriminator(model, x, step):
    z_fake = model.encode(x).rsample().detach()
    z_real = model.prior().sample((len(x),))
    return discriminator_loss(model.discriminator(z_real), model.discriminator(z_fake))


def _aae_generator(model, x, step):
    return generator_loss(model.discriminator(model.encode(x).rsample()))


def aae_phases(adversarial_lr: float | None = None) -> list[Phase]:
    """Reconstruction (encoder + decoder), discriminator (codes vs prior samples), generator (encoder).

    The model needs `encode`, `decode`, `prior()`, `loss(x, step)` (the reconstruction loss) and a
    `discriminator` on codes; `adversarial_lr` sets both adversarial phases' learning rate.
    """
    return [Phase("rec", _aae_reconstruction, lambda m: [*m.encoder.parameters(), *m.decoder.parameters()]),
            Phase("disc", _aae_discriminator, lambda m: m.discriminator.parameters(), lr=adversarial_lr),
            Phase("gen", _aae_generator, lambda m: m.encoder.parameters(), lr=adversarial_lr)]


# -- how well do samples match a target? -----------------------------------------------------------
def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0)) -> float:
    """Unbiased squared maximum mean discrepancy between samples x (n, d) and y (m, d).

    Kernel: the sum of Gaussian kernels exp(-|a - b|^2 / (2 h^2)) over `bandwidths` h.  Zero in
    expectation when x and y come from the same distribution; can be slightly negative.
    """
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    if x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise VaekitError(f"mmd2 needs two sample sets (>= 2 items each) of the same dimension, got "
                          f"{tuple(x.shape)} and {tuple(y.shape)}")

    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
                 + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean())


def mode_coverage(samples: torch.Tensor, centres: torch.Tensor, std: float, *, within: float = 3.0,
                  min_fraction: float = 0.01) -> tuple[int, float]:
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


from .models import aae  # noqa: E402,F401  (registers "aae", whose phases are defined above)
