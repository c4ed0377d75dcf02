"""Encoder + decoder + prior: the shape every model in the kit shares.

An encoder maps x `(B, *data_shape)` to a distribution over z with event shape (latent_dim,);
a decoder maps z (*S, B, latent_dim) to a distribution over x with event shape data_shape;
the prior is a distribution over z.  Objectives (see `vaekit.bounds`) only use these three.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import torch
from torch import distributions as D
from torch import nn

from .. import bounds, likelihoods
from ..errors import VaekitError
from ..nets import (
    ACTIVATIONS,
    Conv1dDecoderBody,
    Conv1dEncoderBody,
    ConvDecoderBody,
    ConvEncoderBody,
    MLPDecoderBody,
    MLPEncoderBody,
)
from ..objective import Loss


@dataclass
class NetConfig:
    """Networks shared by all models. Shapes are in items (no batch dimension)."""

    data_shape: tuple[int, ...] = (64,)
    latent_dim: int = 2
    hidden: tuple[int, ...] = (256, 128)  # encoder widths; the decoder mirrors them
    activation: str = "relu"
    arch: str = "mlp"  # "mlp", "conv" (images (H, W) or (C, H, W)) or "conv1d" (fields (n,))
    channels: tuple[int, ...] = (32, 64)  # conv channels, used when arch is "conv" or "conv1d"
    likelihood: str = "bernoulli"  # "bernoulli" | "gaussian" | "categorical"
    sigma: float | None = None  # gaussian: fixed std, or None to learn it per pixel
    n_categories: int = 256  # categorical: levels 0..K-1 per feature

    def __post_init__(self) -> None:
        self.data_shape = tuple(int(s) for s in self.data_shape)
        self.hidden = tuple(int(h) for h in self.hidden)
        self.channels = tuple(int(c) for c in self.channels)
        if not self.data_shape or min(self.data_shape) < 1:
            raise VaekitError(f"config field data_shape must be positive sizes, got {self.data_shape}")
        if self.latent_dim < 1:
            raise VaekitError(f"config field latent_dim must be >= 1, got {self.latent_dim}")
        if not self.hidden:
            raise VaekitError("config field hidden needs at least one layer width")
        if self.arch not in ("mlp", "conv", "conv1d"):
            raise VaekitError(f"config field arch must be 'mlp', 'conv' or 'conv1d', got {self.arch!r}")
        if math.prod(self.data_shape) > 2**26 or max(self.hidden + self.channels + (self.latent_dim,)) > 2**16:
            raise VaekitError(
                f"config sizes are too large (data_shape {self.data_shape}, hidden {self.hidden}, "
                f"latent_dim {self.latent_dim}); at most 2**26 features and 2**16 units per layer"
            )
        if min(self.hidden + self.channels) < 1:
            raise VaekitError(f"config fields hidden and channels must be positive, got {self.hidden}, {self.channels}")
        if self.activation not in ACTIVATIONS:
            raise VaekitError(f"config field activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.likelihood == "gaussian" and self.sigma is not None and not self.sigma > 0:
            raise VaekitError(f"config field sigma must be positive (or null to learn it), got {self.sigma}")
        if self.likelihood == "categorical" and not 2 <= self.n_categories <= 65536:
            raise VaekitError(f"config field n_categories must be in [2, 65536], got {self.n_categories}")
        if self.arch == "conv":
            if len(self.data_shape) not in (2, 3):
                raise VaekitError(
                    f"config field data_shape must be (H, W) or (C, H, W) for arch 'conv', got {self.data_shape}"
                )
            need = 2 ** len(self.channels)
            if min(self.data_shape[-2:]) < need:
                raise VaekitError(
                    f"config field data_shape {self.data_shape}: images need H, W >= {need} for "
                    f"{len(self.channels)} stride-2 convolutions"
                )
        if self.arch == "conv1d":
            if len(self.data_shape) != 1:
                raise VaekitError(
                    f"config field data_shape must be (n,) for arch 'conv1d' (1-D fields), got {self.data_shape}"
                )
            need = 2 ** (len(self.channels) - 1) + 1  # circular padding 2 needs >= 2 values before each conv
            if self.data_shape[0] < need:
                raise VaekitError(
                    f"config field data_shape {self.data_shape}: fields need n >= {need} for "
                    f"{len(self.channels)} stride-2 1-D convolutions"
                )
        if self.likelihood not in likelihoods.KINDS:
            raise VaekitError(f"config field likelihood must be one of {likelihoods.KINDS}, got {self.likelihood!r}")


class ModelConfig(Protocol):
    """What every model's config has: a dataclass with the code size and the shape of one item."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def latent_dim(self) -> int: ...

    @property
    def data_shape(self) -> tuple[int, ...]: ...


class StandardNormal(nn.Module):
    """p(z) = N(0, I), kept as buffers so it follows the model across devices."""

    loc: torch.Tensor
    scale: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("loc", torch.zeros(dim), persistent=False)
        self.register_buffer("scale", torch.ones(dim), persistent=False)

    def forward(self) -> D.Distribution:
        return D.Independent(D.Normal(self.loc, self.scale, validate_args=False), 1)


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mu(x), diag sigma(x)^2)."""

    def __init__(self, body: nn.Module, latent_dim: int):
        super().__init__()
        self.body = body
        self.head = nn.Linear(cast(int, body.out_features), 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> D.Distribution:
        mu, log_sigma = self.head(self.body(x)).chunk(2, dim=-1)
        return D.Independent(D.Normal(mu, log_sigma.clamp(-12.0, 8.0).exp(), validate_args=False), 1)


class Decoder(nn.Module):
    """p(x|z): a body emitting likelihood parameters, turned into a distribution over data_shape."""

    def __init__(self, body: nn.Module, config: NetConfig):
        super().__init__()
        self.body = body
        self.kind, self.data_shape = config.likelihood, config.data_shape
        self.sigma, self.n_categories = config.sigma, config.n_categories

    def forward(self, z: torch.Tensor) -> D.Distribution:
        lead = z.shape[:-1]
        h = self.body(z.reshape(-1, z.shape[-1]))
        h = h.reshape(*lead, h.shape[-1])
        return likelihoods.distribution(h, self.kind, self.data_shape, self.sigma, n_categories=self.n_categories)


def make_bodies(cfg: NetConfig) -> tuple[nn.Module, nn.Module]:
    """Encoder body (x -> features) and decoder body (z -> likelihood parameters) for a config."""
    enc: nn.Module
    dec: nn.Module
    p = likelihoods.params_per_feature(cfg.likelihood, cfg.sigma, cfg.n_categories)
    in_scale = 1.0 / (cfg.n_categories - 1) if cfg.likelihood == "categorical" else 1.0
    if cfg.arch == "conv":
        enc = ConvEncoderBody(cfg.data_shape, cfg.channels, cfg.hidden, cfg.activation, in_scale)
        dec = ConvDecoderBody(cfg.latent_dim, cfg.data_shape, p, cfg.channels, cfg.hidden, cfg.activation)
    elif cfg.arch == "conv1d":
        enc = Conv1dEncoderBody(cfg.data_shape[0], cfg.channels, cfg.hidden, cfg.activation, in_scale)
        dec = Conv1dDecoderBody(cfg.latent_dim, cfg.data_shape[0], p, cfg.channels, cfg.hidden, cfg.activation)
    else:
        enc = MLPEncoderBody(cfg.data_shape, cfg.hidden, cfg.activation, in_scale)
        dec = MLPDecoderBody(cfg.latent_dim, cfg.hidden, p * math.prod(cfg.data_shape), cfg.activation)
    return enc, dec


def prior_draws(prior: D.Distribution, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws from a distribution; a `generator` makes them reproducible without touching the global
    random state (torch.distributions takes no generator: a forked global RNG is seeded from it)."""
    if generator is None:
        return prior.sample((n,))
    with bounds.seeded(int(torch.randint(2**62, (1,), generator=generator))):
        return prior.sample((n,))


class LatentVariableModel(nn.Module):
    """Base class: holds `encoder`, `decoder`, `prior` and the config; subclasses set `loss`."""

    Config: ClassVar[type[Any]] = NetConfig  # the config dataclass (a subclass's own, e.g. VAE.Config)
    name = "base"
    config: ModelConfig
    encoder: nn.Module
    decoder: nn.Module
    prior: nn.Module  # called with no argument: p(z) as a distribution
    # What the model is and can do.  The CLI, `evaluate`, the explorer and the reports ask these; no code outside
    # models/ tests a model's class or name.
    # What one item is, for the commands that read and write items: "array" (a row of numbers: an image, a
    # vector; read from .npy/image data, written as .npy or an image grid), "font" (all glyphs of a font) or
    # "molecule" (read from SMILES, written as SMILES).
    item_kind = "array"
    has_encoder = True  # codes are inferred from items (`embed`, `encode`)
    encoder_density = True  # q(z|x) has a density: the ELBO, the IWAE bound and the NLL estimate are defined
    has_likelihood = True  # p(x|z) has a density: -log p(x|z) of a reconstruction is defined
    can_sample = True  # the prior is fitted as part of the model: decoded prior draws are its samples
    # What an ex-post sampler (vaekit.samplers) is fitted on: "mean", the posterior means (an image model decoded
    # to its mean draws its sharpest pictures from them), or "draw", one draw from q(z|x) per item: the aggregate
    # posterior itself, which the decoder was trained on (a model decoded stochastically, token by token)
    sampler_codes = "mean"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.prior = StandardNormal(config.latent_dim)

    # -- the three distributions -------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> D.Distribution:
        q: D.Distribution = self.encoder(x)
        return q

    def decode(self, z: torch.Tensor) -> D.Distribution:
        p: D.Distribution = self.decoder(z)
        return p

    # -- training objective ------------------------------------------------------------------
    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        raise NotImplementedError

    # -- conveniences used by reports, the CLI and the sklearn estimators ----------------------
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means E_q[z|x], shape (B, latent_dim)."""
        return self.encode(x).mean

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean, in data units, shape `(B, *data_shape)`."""
        return likelihoods.mean(self.decode(self.embed(x)))

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return likelihoods.mean(self.decode(z))

    def draw(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Items for codes z when sampling (`sample`, the ex-post samplers): the decoder means here; a model
        whose items are drawn from p(x|z) itself (token sequences) overrides it."""
        return self.generate(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of n draws from the model's prior p(z) (whatever it is: Gaussian, mixture,
        ring), shape `(n, *data_shape)`; a `generator` makes the draws reproducible without touching
        the global random state."""
        return self.draw(prior_draws(self.prior(), n, generator), generator)

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self.config, f.name)!r}" for f in dataclasses.fields(self.config))
