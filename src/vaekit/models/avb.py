"""Adversarial Variational Bayes (Mescheder, Nowozin & Geiger 2017): a VAE with an implicit posterior.

The encoder takes noise as well as x, z = g(x, eps), so q(z|x) is flexible but has no density.  The
KL term of the ELBO needs log q(z|x) - log p(z): a critic T(x, z) learns it as a density ratio
(`vaekit.ratio`), trained to tell (x, z ~ q(z|x)) from (x, z ~ p(z)).  At its optimum
T*(x, z) = log q(z|x) - log p(z), so

    ELBO(x) = E_q[log p(x|z) - T*(x, z)]       (generator phase: encoder and decoder, T held fixed)
    min_T  -E_q[log sigma(T)] - E_p[log(1 - sigma(T))]     (discriminator phase: critic only)

Both phases are one `loss(x, step)` for the one training loop: the returned value is the generator's
(the -ELBO estimate, as logged); the discriminator's loss is added with zero value but its gradient,
and each player's gradient is cut from the other's parameters.  So one Adam step updates both players
simultaneously with their own gradients.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import distributions as D
from torch import nn

from ..bounds import ElboTerms, Loss
from ..errors import VaekitError
from ..nets import mlp
from ..ratio import Critic, logistic_loss
from .registry import register
from .base import Decoder, LatentVariableModel, NetConfig, make_bodies

__all__ = ["AVB", "ImplicitPosterior", "ImplicitEncoder"]


class ImplicitPosterior(D.Distribution):
    """q(z|x) known only through samples z = g(features(x), eps), eps ~ N(0, I).

    `rsample` is differentiable in the encoder's parameters; `mean` and `variance` are Monte Carlo
    estimates from `n_moments` draws; `log_prob` does not exist (that is the point).
    """

    has_rsample = True
    arg_constraints: dict = {}

    def __init__(self, features: torch.Tensor, head: nn.Module, noise_dim: int, latent_dim: int, n_moments: int = 64):
        self.features, self.head, self.noise_dim, self.n_moments = features, head, noise_dim, n_moments
        super().__init__(batch_shape=features.shape[:-1], event_shape=torch.Size([latent_dim]), validate_args=False)

    def rsample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.features.shape[:-1]
        eps = torch.randn(*shape, self.noise_dim, device=self.features.device, dtype=self.features.dtype)
        h = self.features.expand(*shape, self.features.shape[-1])
        return self.head(torch.cat([h, eps], -1))

    def sample(self, sample_shape=torch.Size()):
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def mean(self):
        return self.rsample((self.n_moments,)).mean(0)

    @property
    def variance(self):
        return self.rsample((self.n_moments,)).var(0)

    def log_prob(self, value):
        raise NotImplementedError("an implicit posterior has no density; AVB estimates log q/p with its critic")


class ImplicitEncoder(nn.Module):
    """x -> features (the usual encoder body); (features, eps) -> z through one more hidden layer."""

    def __init__(self, body: nn.Module, latent_dim: int, noise_dim: int, activation: str = "relu"):
        super().__init__()
        self.body, self.latent_dim, self.noise_dim = body, latent_dim, noise_dim
        width = body.out_features
        self.head = mlp([width + noise_dim, width, latent_dim], activation)

    def forward(self, x) -> ImplicitPosterior:
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

    encoder_density = False     # an implicit q(z|x): its ELBO is the critic's estimate, not a number evaluate computes

    @dataclass
    class Config(NetConfig):
        noise_dim: int = 16                         # dimension of the noise fed to the encoder
        critic_hidden: tuple[int, ...] = (256, 256)
        contrast: bool = True                       # adaptive contrast (see the class docstring)
        n_moments: int = 8                          # draws per item; each is standardised by the others

        def __post_init__(self):
            super().__post_init__()
            self.critic_hidden = tuple(int(h) for h in self.critic_hidden)
            if self.noise_dim < 1:
                raise VaekitError(f"config field noise_dim must be >= 1, got {self.noise_dim}")
            if self.contrast and self.n_moments < 3:
                raise VaekitError(f"config field n_moments must be >= 3 with contrast, got {self.n_moments}")

    def __init__(self, config: Config):
        super().__init__(config)
        enc, dec = make_bodies(config)
        self.encoder = ImplicitEncoder(enc, config.latent_dim, config.noise_dim, config.activation)
        self.decoder = Decoder(dec, config)
        self.critic = Critic(math.prod(config.data_shape) + config.latent_dim, config.critic_hidden, config.activation)

    def log_ratio(self, x, z, *, critic_grad: bool = True) -> torch.Tensor:
        """T(x, z) for z of shape (*S, B, latent): the critic's logit, shape (*S, B).

        With critic_grad=False the critic's weights are constants (gradients reach z only).
        """
        lead = z.shape[:-1]
        xs = x.expand(*lead, *x.shape[1:]).reshape(-1, *x.shape[1:])
        zs = z.reshape(-1, z.shape[-1])
        if critic_grad:
            return self.critic(xs, zs).reshape(lead)
        frozen = {n: p.detach() for n, p in self.critic.named_parameters()}
        return torch.func.functional_call(self.critic, frozen, (xs, zs)).reshape(lead)

    def standardise(self, z):
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

    def generator_loss(self, x) -> tuple[torch.Tensor, dict]:
        """-ELBO estimate with the critic held fixed; also returns the critic's inputs for its own phase."""
        n = self.config.n_moments if self.config.contrast else 1
        z = self.encode(x).rsample((n,))                       # (n, B, latent)
        rec = self.decode(z).log_prob(x).mean(0)
        if self.config.contrast:
            zt, exact = self.standardise(z)
            kl = (self.log_ratio(x, zt, critic_grad=False) + exact).mean(0)
            pos = zt.detach()
        else:
            kl = self.log_ratio(x, z, critic_grad=False).mean(0)
            pos = z.detach()
        loss = ElboTerms(rec, kl).loss()
        return loss.value, {**loss.terms, "critic_input": pos}

    def discriminator_loss(self, x, z_q) -> Loss:
        """Logistic loss of the critic: (x, z from q, or z~ with contrast) against (x, z ~ N(0, I))."""
        return logistic_loss(self.log_ratio(x, z_q), self.log_ratio(x, torch.randn_like(z_q)))

    def loss(self, x, step: int = 0) -> Loss:
        gen, terms = self.generator_loss(x)
        disc = self.discriminator_loss(x, terms.pop("critic_input"))
        value = gen + (disc.value - disc.value.detach())     # value: -ELBO; gradient: both players' own
        return Loss(value, {**terms, **disc.terms})
