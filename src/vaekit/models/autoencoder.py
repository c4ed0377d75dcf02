"""Deterministic auto-encoder: the same encoder/decoder shape with a point-mass q(z|x)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import distributions as D
from torch import nn

from .. import bounds
from ..objective import Loss
from .base import Decoder, LatentVariableModel, NetConfig, make_bodies
from .registry import register


class PointMass(D.Distribution):
    """delta(z - loc): `rsample` returns loc (broadcast to the sample shape), so gradients flow."""

    arg_constraints: dict[str, D.constraints.Constraint] = {}
    has_rsample = True

    def __init__(self, loc: torch.Tensor):
        self.loc = loc
        super().__init__(batch_shape=loc.shape[:-1], event_shape=loc.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        return self.loc.expand(torch.Size(sample_shape) + self.loc.shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return torch.where((value == self.loc).all(-1), 0.0, float("-inf"))


class PointEncoder(nn.Module):
    """x -> PointMass(f(x)); code units are linear, as in Hinton & Salakhutdinov (2006)."""

    def __init__(self, body: nn.Module, latent_dim: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(cast(int, body.out_features), latent_dim)

    def forward(self, x: torch.Tensor) -> PointMass:
        return PointMass(self.head(self.body(x)))


@register("autoencoder")
class AutoEncoder(LatentVariableModel):
    """Minimises -log p(x | z = f(x)): cross-entropy for Bernoulli output, squared error for Gaussian."""

    encoder_density = False  # a point mass
    can_sample = False  # no prior is fitted: sample through a sampler fitted on the codes (gmm, twostage)

    @dataclass
    class Config(NetConfig):
        pass

    def __init__(self, config: Config):
        super().__init__(config)
        enc, dec = make_bodies(config)
        self.encoder = PointEncoder(enc, config.latent_dim)
        self.decoder = Decoder(dec, config)

    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        return bounds.reconstruction(self, x)
