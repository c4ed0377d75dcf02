"""Generative adversarial network (Goodfellow et al. 2014), the smallest game: x = G(eps), eps ~ N(0, I).

A generator MLP maps noise to data space; a discriminator on data space (`adversarial.Discriminator`)
tells data from G(noise).  Training is two phases (`gan_phases`): the discriminator step, then the
generator step with the non-saturating loss.  `fit(model, data)` runs them.

There is no encoder: the noise eps plays the part of a code z, with N(0, I) as its prior, so the
model's own prior sampler (`sample`, `vaekit sample --sampler prior`) works; a sampler fitted on
codes of the training items (gmm, twostage) cannot, since no code is inferred from an item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from ..adversarial import Discriminator, discriminator_loss, gaussian, generator_loss
from ..errors import VaekitError
from ..nets import ACTIVATIONS, mlp
from ..objective import Loss, Phase
from .base import prior_draws
from .registry import register

__all__ = ["GAN", "gan_phases"]


@register("gan")
class GAN(nn.Module):
    """x = G(eps), eps ~ N(0, I): a generator MLP from noise, and a discriminator on data space.

    `fit(gan, data)` trains it: the model declares its two phases (`phases()`), discriminator first.
    """

    item_kind = "array"
    has_encoder = False  # no code is inferred from an item
    encoder_density = False
    has_likelihood = False  # G(eps) is a point: p(x) has no density to evaluate
    can_sample = True

    @dataclass
    class Config:
        data_shape: tuple[int, ...] = (2,)
        noise_dim: int = 2
        hidden: tuple[int, ...] = (128, 128)  # generator widths
        disc_hidden: tuple[int, ...] = (128, 128)
        activation: str = "relu"
        disc_lr: float | None = None  # the discriminator's Adam lr (None: TrainConfig.lr)

        def __post_init__(self) -> None:
            self.data_shape = tuple(int(s) for s in self.data_shape)
            self.hidden, self.disc_hidden = tuple(map(int, self.hidden)), tuple(map(int, self.disc_hidden))
            if not self.data_shape or min(self.data_shape) < 1 or self.noise_dim < 1:
                raise VaekitError(
                    f"GAN config: data_shape and noise_dim must be positive, got {self.data_shape}, {self.noise_dim}"
                )
            if min(self.hidden + self.disc_hidden, default=1) < 1:
                raise VaekitError(f"GAN config: hidden widths must be positive, got {self.hidden}, {self.disc_hidden}")
            if self.activation not in ACTIVATIONS:
                raise VaekitError(
                    f"GAN config field activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
                )

        @property
        def latent_dim(self) -> int:
            """The noise plays the part of the code (samplers size their codes by latent_dim)."""
            return self.noise_dim

    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        d = math.prod(config.data_shape)
        self.generator = mlp([config.noise_dim, *config.hidden, d], config.activation)
        self.discriminator = Discriminator(d, config.disc_hidden, config.activation)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def prior(self) -> D.Distribution:
        """The noise distribution N(0, I), on the model's device."""
        return gaussian(self.config.noise_dim, self._device())

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, device=self._device())

    def generate(self, eps: torch.Tensor) -> torch.Tensor:
        x: torch.Tensor = self.generator(eps).reshape(len(eps), *self.config.data_shape)
        return x

    @torch.no_grad()
    def draw(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Items for noise z: G(z) (the generator is deterministic; `generator` is not needed)."""
        return self.generate(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """G(eps) for n draws eps ~ N(0, I), shape `(n, *data_shape)`; a `generator` makes the draws
        reproducible without touching the global random state (the same noise as the prior sampler's)."""
        return self.draw(prior_draws(self.prior(), n, generator), generator)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise VaekitError(
            "a GAN has no encoder: no code is inferred from an item, so only the model's own "
            "prior (sampler 'prior') can give it codes"
        )

    def phases(self) -> list[Phase]:
        return gan_phases(self.config.disc_lr)


def _gan_discriminator(model: GAN, x: torch.Tensor, step: int) -> Loss:
    fake = model.generate(model.noise(len(x))).detach()
    return discriminator_loss(model.discriminator(x), model.discriminator(fake))


def _gan_generator(model: GAN, x: torch.Tensor, step: int) -> Loss:
    return generator_loss(model.discriminator(model.generate(model.noise(len(x)))))


def gan_phases(disc_lr: float | None = None) -> list[Phase]:
    """Discriminator step (data vs G(noise)), then generator step (non-saturating loss)."""
    return [
        Phase("disc", _gan_discriminator, lambda m: m.discriminator.parameters(), lr=disc_lr),
        Phase("gen", _gan_generator, lambda m: m.generator.parameters()),
    ]
