"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger 2017): a VAE with an implicit posterior.

The encoder takes noise as well as x, z = g(x, eps), so q(z|x) is flexible but has no density.  The
KL term of the ELBO needs log q(z|x) - log p(z): a critic T(x, z) learns it as a density ratio
(`vaekit.ratio`), trained to tell (x, z ~ q(z|x)) from (x, z ~ p(z)).  At its optimum
T*(x, z) = log q(z|x) - log p(z), so the model declares a game of two phases (`phases()`), each
player with its own Adam over its own parameters, in this order on every batch:

    "critic"  min_T  -E_q[log sigma(T)] - E_p[log(1 - sigma(T))]                  (the critic alone)
    "elbo"    max_{enc, dec}  E_q[log p(x|z) - T(x, z)]                           (the critic held fixed)

The training loop discards the gradient each phase sends to the other player's parameters.  As for a GAN,
the run's loss (the first phase's) is the critic's; the -ELBO estimate is logged as `elbo/loss`.  The
critic goes first: the encoder then meets a critic that has just seen this batch of its codes, and the
critic's KL follows the true one as closely as when both players stepped at once (tests/test_avb.py); with
the ELBO phase first it fell further behind (the critic's KL 0.3-0.65 nats under a fresh critic's, vs
0.06-0.2, in two seeds of that test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
from torch import distributions as D
from torch import nn
from torch.types import _size

from ..bounds import ElboTerms
from ..errors import VaekitError
from ..nets import mlp
from ..objective import Loss, Phase
from ..ratio import Critic, logistic_loss
from .base import Decoder, LatentVariableModel, NetConfig, make_bodies
from .registry import register

__all__ = ["AVB", "ImplicitPosterior", "ImplicitEncoder"]


class ImplicitPosterior(D.Distribution):
    """q(z|x) known only through samples z = g(features(x), eps), eps ~ N(0, I).

    `rsample` is differentiable in the encoder's parameters; `mean` and `variance` are Monte Carlo
    estimates from `n_moments` draws; `log_prob` does not exist (that is the point).
    """

    has_rsample = True
    arg_constraints: dict[str, D.constraints.Constraint] = {}

    def __init__(
        self, features: torch.Tensor, head: nn.Module, noise_dim: int, latent_dim: int, n_moments: int = 64
    ) -> None:
        self.features, self.head, self.noise_dim, self.n_moments = features, head, noise_dim, n_moments
        super().__init__(batch_shape=features.shape[:-1], event_shape=torch.Size([latent_dim]), validate_args=False)

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.features.shape[:-1]
        eps = torch.randn(*shape, self.noise_dim, device=self.features.device, dtype=self.features.dtype)
        h = self.features.expand(*shape, self.features.shape[-1])
        out: torch.Tensor = self.head(torch.cat([h, eps], -1))
        return out

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def mean(self) -> torch.Tensor:
        return self.rsample((self.n_moments,)).mean(0)

    @property
    def variance(self) -> torch.Tensor:
        return self.rsample((self.n_moments,)).var(0)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("an implicit posterior has no density; AVB estimates log q/p with its critic")


class ImplicitEncoder(nn.Module):
    """x -> features (the usual encoder body); (features, eps) -> z through one more hidden layer."""

    def __init__(self, body: nn.Module, latent_dim: int, noise_dim: int, activation: str = "relu") -> None:
        super().__init__()
        self.body, self.latent_dim, self.noise_dim = body, latent_dim, noise_dim
        width = cast(int, body.out_features)
        self.head = mlp([width + noise_dim, width, latent_dim], activation)

    def forward(self, x: torch.Tensor) -> ImplicitPosterior:
        return ImplicitPosterior(self.body(x), self.head, self.noise_dim, self.latent_dim)


@register("avb")
class AVB(LatentVariableModel):
    """Implicit q(z|x), N(0, I) prior, chosen likelihood; the KL term is the critic's density-ratio estimate.

        With `contrast` (adaptive contrast, Mescheder et al. 2017, section 3.3) the critic does not compare
        q(z|x) with the prior directly but the *standardised* z~ = (z - m(x)) / s(x) with N(0, I), where m, s
        are the mean and std of the other `n_moments` - 1 draws from q(z|x) (leave-one-out, so that r does
    not depend on the draw it standardises).  Writing r(z|x) = N(z; m, s^2),

            log q(z|x) - log p(z) = [log q~(z~|x) - log N(z~; 0, I)] + [log r(z|x) - log p(z)]

        the second bracket is computed exactly and the critic only learns the first, which is near zero
        when q is near Gaussian; the plain critic, in contrast, must follow a ratio that grows sharp as
        q(z|x) narrows, and lags behind it (it then under-estimates the KL).
    """

    encoder_density = False  # an implicit q(z|x): its ELBO is the critic's estimate, not a number evaluate computes

    @dataclass
    class Config(NetConfig):
        noise_dim: int = 16  # dimension of the noise fed to the encoder
        critic_hidden: tuple[int, ...] = (256, 256)
        contrast: bool = True  # adaptive contrast (see the class docstring)
        n_moments: int = 8  # draws per item; each is standardised by the others

        def __post_init__(self) -> None:
            super().__post_init__()
            self.critic_hidden = tuple(int(h) for h in self.critic_hidden)
            if self.noise_dim < 1:
                raise VaekitError(f"config field noise_dim must be >= 1, got {self.noise_dim}")
            if self.contrast and self.n_moments < 3:
                raise VaekitError(f"config field n_moments must be >= 3 with contrast, got {self.n_moments}")

    config: Config

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        enc, dec = make_bodies(config)
        self.encoder = ImplicitEncoder(enc, config.latent_dim, config.noise_dim, config.activation)
        self.decoder = Decoder(dec, config)
        self.critic = Critic(math.prod(config.data_shape) + config.latent_dim, config.critic_hidden, config.activation)

    def log_ratio(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """T(x, z) for z of shape (*S, B, latent): the critic's logit, shape (*S, B)."""
        lead = z.shape[:-1]
        xs = x.expand(*lead, *x.shape[1:]).reshape(-1, *x.shape[1:])
        logit: torch.Tensor = self.critic(xs, z.reshape(-1, z.shape[-1]))
        return logit.reshape(lead)

    def standardise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z~, log r(z|x) - log p(z)) for draws z of shape (S, B, latent), S >= 3.

        Draw k is standardised with the mean and std of the *other* S - 1 draws (leave-one-out), so r
        is independent of the draw it is applied to and the decomposition above holds exactly.
        """
        n = z.shape[0]
        total, total2 = z.sum(0), z.pow(2).sum(0)
        m = (total - z) / (n - 1)
        var = (total2 - z.pow(2) - (n - 1) * m.pow(2)) / (n - 2)
        s = var.clamp_min(1e-6).sqrt()
        r = D.Independent(D.Normal(m, s, validate_args=False), 1)
        return (z - m) / s, r.log_prob(z) - self.prior().log_prob(z)

    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        """The ELBO phase: -ELBO estimated with the critic's T(x, z) as the KL term (with contrast: T of the
        standardised draws plus the exact Gaussian part)."""
        n = self.config.n_moments if self.config.contrast else 1
        z = self.encode(x).rsample((n,))  # (n, B, latent)
        rec = self.decode(z).log_prob(x).mean(0)
        if self.config.contrast:
            zt, exact = self.standardise(z)
            kl = (self.log_ratio(x, zt) + exact).mean(0)
        else:
            kl = self.log_ratio(x, z).mean(0)
        return ElboTerms(rec, kl).loss()

    def critic_input(self, x: torch.Tensor) -> torch.Tensor:
        """Draws the critic learns to tell from N(0, I): z ~ q(z|x) (with contrast: the standardised z~ of
        `n_moments` draws), shape (n, B, latent); no gradient reaches the encoder."""
        with torch.no_grad():
            if not self.config.contrast:
                return self.encode(x).rsample((1,))
            return self.standardise(self.encode(x).rsample((self.config.n_moments,)))[0]

    def critic_loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        """The critic phase: logistic loss of T on (x, critic_input(x)) against (x, z ~ N(0, I))."""
        z_q = self.critic_input(x)
        return logistic_loss(self.log_ratio(x, z_q), self.log_ratio(x, torch.randn_like(z_q)))

    def phases(self) -> list[Phase]:
        return [
            Phase("critic", _avb_critic, lambda m: m.critic.parameters()),
            Phase("elbo", _avb_elbo, lambda m: [*m.encoder.parameters(), *m.decoder.parameters()]),
        ]


def _avb_critic(model: AVB, x: torch.Tensor, step: int) -> Loss:
    return model.critic_loss(x, step)


def _avb_elbo(model: AVB, x: torch.Tensor, step: int) -> Loss:
    return model.loss(x, step)
