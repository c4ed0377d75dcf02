"""Variational auto-encoders (Kingma & Welling 2013), beta-VAE and IWAE (Burda et al. 2015).

All three share the networks of `base.NetConfig`; they differ only in the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import bounds
from ..errors import VaekitError
from ..objective import Loss
from .base import Decoder, GaussianEncoder, LatentVariableModel, NetConfig, make_bodies
from .registry import register

__all__ = ["VAE", "IWAE", "Decoder"]


@register("vae")
class VAE(LatentVariableModel):
    """Gaussian q(z|x), N(0, I) prior, chosen likelihood; trained on the (beta-weighted) ELBO."""

    @dataclass
    class Config(NetConfig):
        beta: float = 1.0  # weight of the KL term (beta-VAE, Higgins et al. 2017)
        warmup_steps: int = 0  # KL warm-up: beta grows linearly from 0 over this many steps

        def __post_init__(self) -> None:
            super().__post_init__()
            bounds.check_kl_schedule(self)

    config: Config

    def __init__(self, config: Config):
        super().__init__(config)
        enc, dec = make_bodies(config)
        self.encoder = GaussianEncoder(enc, config.latent_dim)
        self.decoder = Decoder(dec, config)

    def beta_at(self, step: int) -> float:
        return bounds.kl_weight(self.config, step)

    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        return bounds.elbo(self, x, beta=self.beta_at(step))


@register("iwae")
class IWAE(VAE):
    """Same networks as the VAE, trained on the k-sample importance-weighted bound."""

    @dataclass
    class Config(VAE.Config):
        k: int = 5  # importance samples per item (1: the ELBO)

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 1 <= self.k <= 100_000:
                raise VaekitError(f"config field k must be from 1 to 100,000, got {self.k}")

    config: Config

    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        return bounds.iwae_bound(self, x, k=self.config.k)
