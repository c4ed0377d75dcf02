"""Adversarial auto-encoder (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2015).

An auto-encoder whose aggregate code distribution q(z) = E_x[delta(z - f(x))] is pushed onto a chosen
prior p(z) by a discriminator on codes, instead of a KL term: any prior one can sample from works
(a Gaussian, a mixture of 10 Gaussians on a circle, a ring).  Training is a game of three phases
(`aae_phases`): reconstruction, discriminator (prior samples vs codes), and the encoder as
generator.  `fit(model, data)` runs them; `model.loss` is the reconstruction phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from .. import adversarial, bounds
from ..errors import VaekitError
from ..objective import Loss, Phase
from .autoencoder import PointEncoder
from .base import Decoder, LatentVariableModel, NetConfig, make_bodies
from .registry import register


class Prior(nn.Module):
    """p(z) by name (see `adversarial.PRIORS`), on the module's device."""

    def __init__(self, kind: str, dim: int):
        super().__init__()
        self.kind, self.dim = kind, dim
        self.register_buffer("anchor", torch.zeros(()), persistent=False)  # follows .to(device)
        adversarial.prior(kind, dim)  # fail early on a bad name

    def forward(self) -> D.Distribution:
        return adversarial.prior(self.kind, self.dim, self.anchor.device)


@register("aae")
class AAE(LatentVariableModel):
    """Deterministic encoder z = f(x), decoder p(x|z), a discriminator on z, and a prior to match."""

    encoder_density = False  # a point mass; the prior is matched by the discriminator, not through a KL

    @dataclass
    class Config(NetConfig):
        prior: str = "gaussian"  # "gaussian" | "mixture" (10 on a circle) | "ring"
        disc_hidden: tuple[int, ...] = (256, 256)
        adversarial_lr: float | None = None  # lr of both adversarial phases (None: TrainConfig.lr)

        def __post_init__(self) -> None:
            super().__post_init__()
            self.disc_hidden = tuple(int(h) for h in self.disc_hidden)
            if self.prior not in adversarial.PRIORS:
                raise VaekitError(f"config field prior must be one of {sorted(adversarial.PRIORS)}, got {self.prior!r}")
            if self.prior != "gaussian" and self.latent_dim != 2:
                raise VaekitError(
                    f"config field prior {self.prior!r} is 2-D: latent_dim must be 2, got {self.latent_dim}"
                )
            if min(self.disc_hidden, default=1) < 1:
                raise VaekitError(f"config field disc_hidden must be positive widths, got {self.disc_hidden}")

    config: Config

    def __init__(self, config: Config):
        super().__init__(config)
        enc, dec = make_bodies(config)
        self.encoder = PointEncoder(enc, config.latent_dim)
        self.decoder = Decoder(dec, config)
        self.prior = Prior(config.prior, config.latent_dim)
        self.discriminator = adversarial.Discriminator(config.latent_dim, config.disc_hidden, config.activation)

    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        """The reconstruction phase: -log p(x | z = f(x))."""
        return bounds.reconstruction(self, x)

    def phases(self) -> list[Phase]:
        return aae_phases(self.config.adversarial_lr)


# -- the three phases of the game --------------------------------------------------------------------
def _aae_reconstruction(model: AAE, x: torch.Tensor, step: int) -> Loss:
    return model.loss(x, step)


def _aae_discriminator(model: AAE, x: torch.Tensor, step: int) -> Loss:
    z_fake = model.encode(x).rsample().detach()
    z_real = model.prior().sample((len(x),))
    return adversarial.discriminator_loss(model.discriminator(z_real), model.discriminator(z_fake))


def _aae_generator(model: AAE, x: torch.Tensor, step: int) -> Loss:
    return adversarial.generator_loss(model.discriminator(model.encode(x).rsample()))


def aae_phases(adversarial_lr: float | None = None) -> list[Phase]:
    """Reconstruction (encoder + decoder), discriminator (codes vs prior samples), generator (encoder).

    The model needs `encode`, `decode`, `prior()`, `loss(x, step)` (the reconstruction loss) and a
    `discriminator` on codes; `adversarial_lr` sets both adversarial phases' learning rate.
    """
    return [
        Phase("rec", _aae_reconstruction, lambda m: [*m.encoder.parameters(), *m.decoder.parameters()]),
        Phase("disc", _aae_discriminator, lambda m: m.discriminator.parameters(), lr=adversarial_lr),
        Phase("gen", _aae_generator, lambda m: m.encoder.parameters(), lr=adversarial_lr),
    ]
