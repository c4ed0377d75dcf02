"""The chemical VAE (Gomez-Bombarelli et al. 2016/2018): molecules as token strings in a continuous latent space.

Encoder: one-hot tokens -> three 1-D convolutions -> dense -> q(z|x) Gaussian.  Decoder: a GRU
fed the latent code at every step and, with teacher forcing, the previous true token; it defines
p(x|z) as a product of categorical distributions over the token at each position.  A property
head predicts (standardised) properties such as logP, QED and SA from z and is trained jointly.
The paper's ZINC model: convolutions 9/9/10 filters with kernels 9/9/11, dense 196, latent 56
(first version) or 196 (journal), three GRU layers of 488 units; these are the defaults.

An *item* is one row of floats: `max_len` token ids followed by the standardised properties, so
the model trains in the kit's single loop like any other (`ChemVAE.items` builds them).  The
vocabulary is part of the config, so a checkpoint alone can encode and decode molecules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from .. import bounds
from ..chem.vocab import SPECIALS, Vocab
from ..errors import VaekitError
from ..nets import mlp
from ..objective import Loss
from .base import GaussianEncoder, LatentVariableModel
from .registry import register


@dataclass
class ChemConfig:
    tokens: tuple[str, ...] = SPECIALS  # the vocabulary, index order (see chem.vocab.Vocab)
    kind: str = "smiles"  # "smiles" | "kekule" (Kekulé SMILES) | "selfies"
    max_len: int = 120  # tokens per molecule incl. the end token
    properties: tuple[str, ...] = ()  # property names predicted by the head (e.g. logP, QED, SAS)
    prop_mean: tuple[float, ...] = ()  # standardisation of each property (training-set statistics)
    prop_std: tuple[float, ...] = ()
    latent_dim: int = 56
    conv_channels: tuple[int, ...] = (9, 9, 10)
    conv_kernels: tuple[int, ...] = (9, 9, 11)
    dense: int = 196
    embed_dim: int = 32  # decoder's embedding of the previous token
    word_dropout: float = 0.0  # training: hide each previous token from the decoder with this probability
    gru_hidden: int = 488
    gru_layers: int = 3
    prop_hidden: tuple[int, ...] = (256, 256)
    prop_weight: float = 1.0  # weight of the property loss (per standardised property)
    beta: float = 1.0
    warmup_steps: int = 0  # KL weight grows linearly from 0 over this many steps

    def __post_init__(self) -> None:
        for name in ("tokens", "properties", "prop_mean", "prop_std", "conv_channels", "conv_kernels", "prop_hidden"):
            setattr(self, name, tuple(getattr(self, name)))
        self.vocab = Vocab(list(self.tokens), self.kind, int(self.max_len))  # validates tokens and kind
        if len(self.tokens) <= len(SPECIALS):
            raise VaekitError("config field tokens holds no molecule tokens; build it with Vocab.build(smiles)")
        if not (len(self.prop_mean) == len(self.prop_std) == len(self.properties)):
            raise VaekitError(
                f"config fields properties, prop_mean, prop_std must have the same length, got "
                f"{len(self.properties)}, {len(self.prop_mean)}, {len(self.prop_std)}"
            )
        if any(not s > 0 for s in self.prop_std):
            raise VaekitError(f"config field prop_std must be positive, got {self.prop_std}")
        if len(self.conv_channels) != len(self.conv_kernels):
            raise VaekitError("config fields conv_channels and conv_kernels must have the same length")
        if self.max_len - sum(k - 1 for k in self.conv_kernels) < 1:
            raise VaekitError(
                f"config field max_len {self.max_len} is shorter than the convolutions' reach "
                f"{sum(k - 1 for k in self.conv_kernels) + 1}"
            )
        sizes = (
            self.latent_dim,
            self.dense,
            self.embed_dim,
            self.gru_hidden,
            self.gru_layers,
            *self.conv_channels,
            *self.conv_kernels,
            *self.prop_hidden,
        )
        if min(sizes) < 1 or max(sizes) > 2**14 or self.max_len > 4096:
            raise VaekitError(
                f"config sizes must be in [1, 16384] (max_len <= 4096), got {sizes}, max_len {self.max_len}"
            )
        bounds.check_kl_schedule(self)
        if not 0 <= self.word_dropout < 1:
            raise VaekitError(f"config field word_dropout must be in [0, 1), got {self.word_dropout}")
        if not self.prop_weight >= 0:
            raise VaekitError(f"config field prop_weight must be >= 0, got {self.prop_weight}")

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.max_len + len(self.properties),)


class ConvSequenceBody(nn.Module):
    """Token ids (B, L) -> one-hot (B, V, L) -> 1-D convolutions -> dense features (B, dense)."""

    def __init__(self, cfg: ChemConfig):
        super().__init__()
        layers, c_in, length = [], len(cfg.tokens), cfg.max_len
        for c, k in zip(cfg.conv_channels, cfg.conv_kernels):
            layers += [nn.Conv1d(c_in, c, k), nn.ReLU()]
            c_in, length = c, length - k + 1
        self.convs = nn.Sequential(*layers)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(c_in * length, cfg.dense), nn.ReLU())
        self.n_tokens, self.max_len, self.out_features = len(cfg.tokens), cfg.max_len, cfg.dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x[..., : self.max_len].long()
        features: torch.Tensor = self.dense(self.convs(F.one_hot(ids, self.n_tokens).float().transpose(1, 2)))
        return features


class GRUDecoder(nn.Module):
    """Logits over the next token given z and the previous tokens: a GRU fed [embedding, z] at each step."""

    def __init__(self, cfg: ChemConfig):
        super().__init__()
        v = len(cfg.tokens)
        self.embed = nn.Embedding(v, cfg.embed_dim)
        self.init = nn.Linear(cfg.latent_dim, cfg.gru_hidden * cfg.gru_layers)
        self.gru = nn.GRU(cfg.embed_dim + cfg.latent_dim, cfg.gru_hidden, cfg.gru_layers, batch_first=True)
        self.out = nn.Linear(cfg.gru_hidden, v)
        self.layers, self.hidden, self.max_len = cfg.gru_layers, cfg.gru_hidden, cfg.max_len
        self.word_dropout = cfg.word_dropout
        self.skip_padding = True  # teacher forcing stops at the batch's longest molecule (False: the ablation)
        self.syntax = cfg.vocab.syntax()  # the grammar mask: not learned, not saved

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> GRUDecoder:
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]  # .to(device): the grammar mask follows
        self.syntax = self.syntax.to(self.out.weight.device)
        return self

    def initial_state(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.init(z)).reshape(len(z), self.layers, self.hidden).transpose(0, 1).contiguous()

    def step(self, z: torch.Tensor, prev: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One or more steps: prev (N, T) token ids -> logits (N, T, V), new state."""
        inp = torch.cat([self.embed(prev), z[:, None, :].expand(-1, prev.shape[1], -1)], -1)
        h, state = self.gru(inp, state)
        logits: torch.Tensor = self.out(h)
        return logits, state

    def teacher_forced(self, z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits (N, L, V) for every position of `ids` (N, L), each from the true previous tokens."""
        prev = torch.cat([torch.full_like(ids[:, :1], Vocab.bos), ids[:, :-1]], 1)
        ok = self.syntax.allowed(prev, *self.syntax.state(prev))  # from the true prefixes
        # word dropout (Bowman et al. 2016): hidden tokens become padding, so the decoder leans on z;
        # the start token is always seen
        if self.training and self.word_dropout > 0:
            hide = torch.rand(prev.shape, device=prev.device) < self.word_dropout
            prev = prev.masked_fill(hide & (prev != Vocab.bos), Vocab.pad)
        return self.step(z, prev, self.initial_state(z))[0].masked_fill(~ok, float("-inf"))

    @torch.no_grad()
    def generate(
        self, z: torch.Tensor, greedy: bool = False, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Token ids (N, max_len), decoded one token at a time; positions after the end token are padding."""
        n = len(z)
        prev = torch.full((n, 1), Vocab.bos, dtype=torch.long, device=z.device)
        state, out = self.initial_state(z), torch.full((n, self.max_len), Vocab.pad, dtype=torch.long, device=z.device)
        done = torch.zeros(n, dtype=torch.bool, device=z.device)
        depth = torch.zeros(n, dtype=torch.long, device=z.device)  # the grammar's state: no branch or ring open
        rings = torch.zeros(n, self.syntax.ring.shape[1], dtype=torch.bool, device=z.device)
        for t in range(self.max_len):
            logits, state = self.step(z, prev, state)
            logits = logits[:, -1].masked_fill(~self.syntax.allowed(prev[:, 0], depth, rings), float("-inf"))
            if greedy:
                nxt = logits.argmax(-1)
            else:
                p = torch.softmax(logits / temperature, -1)
                nxt = torch.multinomial(p.cpu(), 1, generator=generator).squeeze(1).to(z.device)
            nxt = torch.where(done, torch.full_like(nxt, Vocab.pad), nxt)
            out[:, t] = nxt
            done |= nxt == Vocab.eos
            if bool(done.all()):
                break
            prev = nxt[:, None]
            depth, rings = self.syntax.advance(depth, rings, nxt)
        return out


class TokenSequence(D.Distribution):
    """p(x|z) over token rows: prod_t Categorical(x_t | x_<t, z) up to the end token, each
    categorical restricted by the grammar mask (`Vocab.syntax`).  `log_prob` uses teacher forcing;
    `sample` decodes autoregressively.  Accepts items (token ids + properties) or token ids."""

    arg_constraints: dict[str, D.constraints.Constraint] = {}

    def __init__(self, decoder: GRUDecoder, z: torch.Tensor):
        self.decoder, self.z = decoder, z
        super().__init__(batch_shape=z.shape[:-1], event_shape=torch.Size((decoder.max_len,)), validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        ids = x[..., : self.decoder.max_len].long()
        # only the positions up to the longest molecule's end token: the padding after it is not modelled,
        # and the GRU's outputs before a position do not depend on it (length-bucketed batches skip most of it)
        if self.decoder.skip_padding:
            ids = ids[..., : max(1, int((ids != Vocab.pad).sum(-1).max()))]
        lead = self.z.shape[:-1]
        z = self.z.reshape(-1, self.z.shape[-1])
        ids = ids.expand(*lead, ids.shape[-1]).reshape(-1, ids.shape[-1])
        logits = self.decoder.teacher_forced(z, ids)
        # the tokens up to and including the end token; the padding after it is not modelled
        lp = -F.cross_entropy(logits.transpose(1, 2), ids, reduction="none").masked_fill(ids == Vocab.pad, 0).sum(-1)
        return lp.reshape(lead)

    def sample(
        self,
        sample_shape: torch.Size | list[int] | tuple[int, ...] = torch.Size(),
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        z = self.z.expand(*sample_shape, *self.z.shape)
        flat = z.reshape(-1, z.shape[-1])
        return self.decoder.generate(flat, generator=generator).reshape(*z.shape[:-1], -1)

    @property
    def mode(self) -> torch.Tensor:
        return self.decoder.generate(self.z.reshape(-1, self.z.shape[-1]), greedy=True).reshape(*self.z.shape[:-1], -1)


@register("chemvae")
class ChemVAE(LatentVariableModel):
    """Chemical VAE with a jointly trained property head; trained on the (beta-weighted) ELBO + property MSE."""

    Config = ChemConfig
    config: ChemConfig
    item_kind = "molecule"  # the CLI reads and writes SMILES for it
    # ex-post samplers fitted on posterior draws: on models/chemvae-smiles (KL weight 1, 30k samples) a mixture
    # fitted on them scores FCD/Test 0.115, on the means 0.152; on models/chemvae-lowkl 5.80 against 5.90
    # (bench/chem_fcd_curve.py --sampler gmm --sampler-codes draw|mean; docs/chemvae.md)
    sampler_codes = "draw"

    def __init__(self, config: ChemConfig):
        super().__init__(config)
        self.vocab = config.vocab
        self.encoder = GaussianEncoder(ConvSequenceBody(config), config.latent_dim)
        self.decoder_net = GRUDecoder(config)
        n_props = len(config.properties)
        self.property_head = mlp([config.latent_dim, *config.prop_hidden, n_props], "relu") if n_props else None

    def decode(self, z: torch.Tensor) -> TokenSequence:
        return TokenSequence(self.decoder_net, z)

    def item_lengths(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens per molecule (incl. the end token), (N,): the training loop buckets batches by it."""
        lengths: torch.Tensor = (x[..., : self.config.max_len] != Vocab.pad).sum(-1)
        return lengths

    def loss(self, x: torch.Tensor, step: int = 0) -> Loss:
        q = self.encode(x)
        z = q.rsample()  # one code per molecule: the ELBO's and the property head's
        loss = bounds.ElboTerms(self.decode(z).log_prob(x), bounds.kl(q, self.prior())).loss(
            bounds.kl_weight(self.config, step)
        )
        if self.property_head is not None:
            target = x[:, self.config.max_len :]
            mse = (self.property_head(z) - target).pow(2).mean(0)
            loss.value = loss.value + self.config.prop_weight * mse.sum()
            loss.terms.update({f"mse_{p}": m.detach() for p, m in zip(self.config.properties, mse)})
        return loss

    # -- molecules in, molecules out -----------------------------------------------------------
    def items(
        self, smiles: Sequence[str], props: Mapping[str, Any] | None = None, *, skip: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[int] | None]:
        """Model input rows for SMILES (and their property values, in natural units).

        Returns a float tensor (n, max_len + n_properties); with skip=True also the indices of the
        molecules kept (the others do not fit the vocabulary)."""
        ids, kept = self.code_items(smiles, skip=True) if skip else (self.code_items(smiles), None)
        cols = [ids]
        names = self.config.properties
        if names:
            if props is None or any(p not in props for p in names):
                raise VaekitError(f"molecule items need the properties {list(names)}; got {sorted(props or {})}")
            index = np.arange(len(smiles)) if kept is None else np.asarray(kept, dtype=np.int64)
            vals = np.stack(
                [
                    (np.asarray(props[p], dtype=np.float64)[index] - m) / s
                    for p, m, s in zip(names, self.config.prop_mean, self.config.prop_std)
                ],
                1,
            )
            if not np.isfinite(vals).all():
                raise VaekitError("molecule items: a property value is NaN or inf (score the molecules first)")
            cols.append(torch.as_tensor(vals, dtype=torch.float32).reshape(len(ids), len(names)))
        x = torch.cat(cols, 1)
        return (x, kept) if skip else x

    def code_items(self, smiles: Sequence[str], *, skip: bool = False) -> Any:
        """The token columns of `items` (n, max_len), all that `encode` reads: rows for codes (`encode`,
        `samplers.fit_codes`) of molecules whose properties are not scored.  skip as in `items`."""
        if not skip:
            return self.vocab.encode(smiles).float()
        ids, kept = self.vocab.encode(smiles, skip=True)
        return ids.float(), kept

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def encode_smiles(
        self, smiles: Sequence[str], sample: bool = False, *, skip: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[int] | None]:
        """Codes (n, latent_dim): posterior means, or one draw from q(z|x) each with sample=True.

        A molecule outside the vocabulary is an error; with skip=True it is left out, and the result is
        (codes, indices of the molecules kept), as `vocab.encode(smiles, skip=True)` gives."""
        ids, kept = self.code_items(smiles, skip=True) if skip else (self.code_items(smiles), None)
        q = self.encode(ids.to(self._device()))
        z = q.sample() if sample else q.mean
        return (z, kept) if skip else z

    @torch.no_grad()
    def decode_smiles(
        self, z: Any, greedy: bool = False, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> list[str]:
        """SMILES strings decoded from codes z (n, latent_dim) (SELFIES vocabularies decode to SMILES)."""
        z = torch.as_tensor(z, dtype=torch.float32).to(self._device())
        return self.vocab.decode(self.decoder_net.generate(z, greedy, temperature, generator).cpu())

    def predict_properties(self, z: Any, grad: bool = False) -> torch.Tensor:
        """Property head in natural units, (n, n_properties), for codes z (n, latent_dim).

        grad=True keeps it differentiable in z (for gradient ascent on a property, `latent.ascend`);
        by default it runs without gradients."""
        if self.property_head is None:
            raise VaekitError("this chemical VAE has no property head (config field properties is empty)")
        with torch.set_grad_enabled(grad):
            z = torch.as_tensor(z, dtype=torch.float32).to(self._device())
            mean = torch.tensor(self.config.prop_mean, device=z.device)
            std = torch.tensor(self.config.prop_std, device=z.device)
            props: torch.Tensor = self.property_head(z) * std + mean
            return props

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.embed(x)).mode

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode(z).mode

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(self._device())
        return self.draw(z, generator)

    def draw(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Token ids decoded stochastically from codes z (the MOSES protocol samples p(x|z), not its mode)."""
        return self.decoder_net.generate(z, generator=generator)


def standardisation(props: Mapping[str, Any], names: Sequence[str]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(means, stds) of the named property arrays: the numbers to put in the config."""
    mean = tuple(float(np.nanmean(props[p])) for p in names)
    std = tuple(float(np.nanstd(props[p])) or 1.0 for p in names)
    return mean, std
