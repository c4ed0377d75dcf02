"""A VAE over whole fonts: one latent vector per font, a decoder that renders any glyph of it.

An item is a font, x of shape (n_chars, H, W) (62 glyphs A-Z, a-z, 0-9 from `data.fonts`).

    encoder   every glyph (average-pooled by `encoder_pool`) -> a shared net -> features; the
              features of all glyphs, in character order, -> an MLP -> q(z | font) = N(mu, diag sigma^2)
    decoder   for each character c: [z, embedding(c)] -> a shared net, plus a learned image
              of c -> p(glyph_c | z, c)
    prior     N(0, I)

The shared glyph nets are MLPs (arch "mlp") or the kit's conv bodies (arch "conv": stride-2
convolutions in the encoder, transposed convolutions in the decoder).  With a Bernoulli likelihood
the conv decoder draws sharp strokes at 64 x 64, where an MLP decoder of the same cost smears them
(`vaekit report fonts` shows the ablation).

Because one z renders every glyph, the glyphs of a sampled or edited font stay consistent with
each other (the distill.pub font model, Carter & Nielsen 2017, used a 40-D latent on 64 x 64
glyphs). The objective is the VAE's (beta-weighted ELBO with warm-up); only the networks differ,
and with `train_chars` = k < n_chars a training step decodes k characters drawn at random (the same
k for the whole batch) and scales their log-likelihood by n_chars / k: an unbiased estimate of the
ELBO at k / n_chars of the decoder's cost.  Evaluation always decodes every glyph.

The encoder costs more than the decoder (it reads all 62 glyphs of every font).  With `encoder_chars`
= m < n_chars it reads m glyphs drawn at random in a training step, and the other glyphs' features are
zero, the kept ones scaled by n_chars / m: dropout over whole glyphs, so the first layer's input is an
unbiased estimate of its input from all glyphs.  q(z | m glyphs) is still a valid variational
distribution, so the objective stays an ELBO; evaluation (`model.eval()`) encodes every glyph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .. import bounds, likelihoods
from ..errors import VaekitError
from ..likelihoods import params_per_feature
from ..nets import ConvDecoderBody, ConvEncoderBody, MLPDecoderBody, MLPEncoderBody, mlp
from ..objective import Loss
from .base import Decoder, GaussianEncoder, LatentVariableModel
from .registry import register
from .vae import VAE


class FontEncoderBody(nn.Module):
    """(B, n_chars, H, W) -> (B, hidden[-1]): a per-glyph net, then an MLP over all glyphs' features."""

    def __init__(self, cfg: FontVAE.Config) -> None:
        super().__init__()
        n_chars, h, w = cfg.data_shape
        self.pool = cfg.encoder_pool
        h, w = h // self.pool, w // self.pool
        self.glyph = (
            ConvEncoderBody((h, w), cfg.channels, (cfg.glyph_features,), cfg.activation)
            if cfg.arch == "conv"
            else MLPEncoderBody((h, w), (cfg.glyph_hidden, cfg.glyph_features), cfg.activation)
        )
        self.fc = mlp([n_chars * cfg.glyph_features, *cfg.hidden], cfg.activation, final_act=cfg.activation)
        self.out_features = cfg.hidden[-1]
        self.encoder_chars = cfg.encoder_chars

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        k = self.encoder_chars if self.training and 0 < self.encoder_chars < n else n
        chars = torch.randperm(n, device=x.device)[:k] if k < n else None  # glyph dropout (module doc)
        g = x if chars is None else x[:, chars]
        g = g.reshape(b * k, 1, *x.shape[2:])
        if self.pool > 1:
            g = F.avg_pool2d(g, self.pool)
        f = self.glyph(g).reshape(b, k, -1)  # (B, k, glyph_features)
        if chars is not None:  # the others' features are zero, the kept ones scaled by n / k (as dropout does)
            f = torch.zeros(b, n, f.shape[-1], dtype=f.dtype, device=f.device).index_copy(1, chars, f * (n / k))
        out: torch.Tensor = self.fc(f.reshape(b, -1))
        return out


class GlyphDecoderBody(nn.Module):
    """(N, latent) -> (N, P * n_chars * H * W): every glyph decoded from [z, embedding(char)]."""

    def __init__(self, cfg: FontVAE.Config) -> None:
        super().__init__()
        n_chars, h, w = cfg.data_shape
        self.n_chars = n_chars
        self.params = params_per_feature(cfg.likelihood, cfg.sigma, cfg.n_categories)
        self.char = nn.Embedding(n_chars, cfg.char_dim)
        d_in = cfg.latent_dim + cfg.char_dim
        self.net = (
            ConvDecoderBody(d_in, (h, w), self.params, cfg.channels, cfg.hidden, cfg.activation)
            if cfg.arch == "conv"
            else MLPDecoderBody(d_in, (cfg.glyph_hidden, *cfg.hidden), self.params * h * w, cfg.activation)
        )
        # a learned image per character (its typical shape); the shared net adds what the font changes
        self.glyph_bias = nn.Parameter(torch.zeros(n_chars, self.params, h * w))

    def glyphs(self, z: torch.Tensor, chars: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters of the given characters: z (N, D), chars (C,) -> (N, C, P, H * W)."""
        n, c = z.shape[0], chars.shape[0]
        inp = torch.cat([z[:, None].expand(n, c, z.shape[-1]), self.char(chars)[None].expand(n, c, -1)], -1)
        out: torch.Tensor = self.net(inp.reshape(n * c, -1)).reshape(n, c, self.params, -1)
        return out + self.glyph_bias[chars]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        chars = torch.arange(self.n_chars, device=z.device)
        h = self.glyphs(z, chars)  # (N, n_chars, P, H*W)
        return h.transpose(1, 2).reshape(z.shape[0], -1)  # (P, n_chars, H, W) per item, as likelihoods expects


@register("fontvae")
class FontVAE(VAE):
    """Per-font VAE: q(z | all glyphs of a font), p(glyph | z, character). Trained on the (beta-)ELBO."""

    item_kind = "font"  # an item is one font: all its glyphs

    @dataclass
    class Config(VAE.Config):
        data_shape: tuple[int, ...] = (62, 32, 32)  # (n_chars, H, W)
        latent_dim: int = 32
        hidden: tuple[int, ...] = (256,)  # MLP over all glyph features (encoder); first decoder layer
        arch: str = "mlp"  # per-glyph nets: "mlp" or "conv"
        channels: tuple[int, ...] = (16, 32)  # arch "conv": channels of the glyph conv nets
        glyph_features: int = 64  # features per glyph in the encoder
        glyph_hidden: int = 512  # arch "mlp": width of the per-glyph hidden layer
        char_dim: int = 16  # size of the character embedding in the decoder
        encoder_pool: int = 1  # glyphs are average-pooled by this factor before the encoder
        train_chars: int = 0  # characters decoded per training step (0: all; see module doc)
        encoder_chars: int = 0  # glyphs the encoder sees per training step (0: all; see module doc)

        def __post_init__(self) -> None:
            super().__post_init__()
            if len(self.data_shape) != 3:
                raise VaekitError(f"fontvae config field data_shape must be (n_chars, H, W), got {self.data_shape}")
            if self.glyph_features < 1 or self.char_dim < 1 or self.glyph_hidden < 1:
                raise VaekitError("fontvae config fields glyph_features, glyph_hidden and char_dim must be >= 1")
            n_chars, h, w = self.data_shape
            if self.encoder_pool < 1 or h % self.encoder_pool or w % self.encoder_pool:
                raise VaekitError(
                    f"fontvae config field encoder_pool must be >= 1 and divide the glyph size "
                    f"{h}x{w}, got {self.encoder_pool}"
                )
            for name in ("train_chars", "encoder_chars"):
                if not 0 <= getattr(self, name) <= n_chars:
                    raise VaekitError(
                        f"fontvae config field {name} must be in [0, {n_chars}], got {getattr(self, name)}"
                    )

    config: Config

    def __init__(self, config: Config) -> None:
        LatentVariableModel.__init__(self, config)  # the VAE's objective, with these networks
        self.encoder = GaussianEncoder(FontEncoderBody(config), config.latent_dim)
        self.decoder = Decoder(GlyphDecoderBody(config), config)

    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        k, n_chars = self.config.train_chars, self.config.data_shape[0]
        if not self.training or k in (0, n_chars):
            return super().loss(x, step)
        chars = torch.randperm(n_chars, device=x.device)[:k]
        q = self.encode(x)
        z = q.rsample()
        body = self.decoder.body
        assert isinstance(body, GlyphDecoderBody)
        h = body.glyphs(z, chars).transpose(1, 2).reshape(z.shape[0], -1)  # (B, P * k * H * W)
        cfg = self.config
        p = likelihoods.distribution(
            h, cfg.likelihood, (k, *cfg.data_shape[1:]), cfg.sigma, n_categories=cfg.n_categories
        )
        rec = p.log_prob(x[:, chars]) * (n_chars / k)
        return bounds.ElboTerms(rec, bounds.kl(q, self.prior())).loss(self.beta_at(step))
