"""Samplers: where the codes z that `model.generate` decodes come from.

    codes = samplers.fit_codes(model, train.x)             # posterior means of (at most 100,000 of) the training set
    gmm = samplers.fit("gmm", model, codes, seed=0)        # a density fitted on them
    z = gmm.sample(64, torch.Generator().manual_seed(0))   # (64, latent_dim)
    x = samplers.generate(model, gmm, 64, generator)       # decoded: the items themselves
    samplers.save(gmm, "run/sampler-gmm.safetensors"); samplers.load("run/sampler-gmm.safetensors", model)

- `prior`: the model's own prior p(z) (a Gaussian, or an adversarial auto-encoder's mixture or ring):
  what `model.sample` draws, and the protocol of MOSES and of most papers.  Nothing is fitted.
- `gmm`: a Gaussian mixture (full covariances, 10 components, as Ghosh et al. 2020, "From variational
  to deterministic autoencoders"; `n_components="bic"` picks the count by the Bayesian information
  criterion) fitted on the aggregate posterior: ex-post density estimation.  A
  VAE's codes rarely fill its prior (holes between classes, unused directions), and a deterministic
  auto-encoder has no prior worth the name; drawing from where the training codes actually are
  decodes to cleaner items.
- `twostage`: a second, small VAE trained on the codes (Dai & Wipf 2019, "Diagnosing and enhancing
  VAE models"): `vaekit.build("vae", data_shape=(latent_dim,), latent_dim=latent_dim,
  likelihood="gaussian")` and the kit's own training loop; codes are drawn as u ~ N(0, I), z ~ p(z|u).

Why a two-stage VAE and not a normalising flow?  Both were tried (a 6-layer RealNVP of affine
couplings, 64 units, and the two-stage VAE, 64-64 units, each 3,000 steps of 256 codes with the kit's
loop), scoring held-out codes in nats per code (mean log density; for the two-stage VAE the
importance-sampled lower bound with k = 1000, so its true value is higher still):

    held-out codes                    1 Gaussian   GMM-10   flow    two-stage
    2-D ring (r ~ N(2, 0.15))           -3.54      -2.13    -2.25    -3.09
    digits VAE, 2-D codes               -2.74      -2.38    -2.44    -2.71
    digits VAE, 8-D codes                6.22      10.84     8.11     9.55

The flow wins in two dimensions, the two-stage VAE in eight, where the kit's real models live (16 to
56-D codes), and it costs no new mechanism: no coupling layers, no inverse pass, only the VAE and loop
every other model uses; it also trained in about half the time per step.  Its price is that
`log_prob` is an estimate (a seeded lower bound) rather than exact.  The Gaussian mixture was best in
every row and fits in seconds: it is the sampler to reach for first.

Codes are what the model says (`model.sampler_codes`).  For most models they are posterior means E_q[z|x]
(`model.embed`), not draws from q(z|x): the means are what an image decoder turns into its sharpest
reconstructions, they are the codes of the deterministic models (auto-encoder, AAE) anyway, and Ghosh et al.
fit theirs the same way.  The chemical VAE, decoded token by token at random, is fitted on one seeded draw
per molecule instead: the aggregate posterior proper (means plus encoder noise), which is what its decoder
was trained on, and what the prior itself models.  Measured on the committed SMILES models (FCD/Test of
decoded samples, bench/chem_fcd_curve.py --sampler gmm --sampler-codes draw|mean): a mixture fitted on draws
0.115 against 0.152 on means (KL weight 1, 30,000 samples; the prior 0.112), 5.80 against 5.90 (KL weight
0.001, 10,000 samples; the prior 8.94).

`gain(model, sampler, z)` says beforehand whether an ex-post sampler can help: the mean log density of held-out
codes under it, less their log density under the prior.  Near 0 (or below), the prior already is the
aggregate posterior and a sampler fitted on the codes decodes no better; tens of nats, the prior puts its
mass where no training code is.

A fitted sampler remembers the model it was fitted for (name, latent_dim and a digest of config and
weights): its file cannot be used to draw codes for any other model, not even a retrained one.  It also
records which codes it was fitted on ("mean" or "draw"), so that `cached` refits one fitted on the other kind.
Sampler files are safetensors (tensors) with a JSON header; nothing is unpickled.  A run keeps its fitted
samplers beside its checkpoint; a model committed with vaekit keeps them in the cache (`kept`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .bounds import log_likelihood, seeded
from .errors import VaekitError
from .io import atomic_write_bytes
from .io import cached as cached_file
from .models.base import prior_draws
from .names import Registry

FORMAT = "vaekit-sampler/1"
SAMPLERS = Registry("sampler")
register_sampler = SAMPLERS.register  # class decorator: make a sampler fittable (and loadable from its file) by name


def get(name: str) -> type[Sampler]:
    cls: type[Sampler] = SAMPLERS.find(name)
    return cls


# -- which model a sampler belongs to ------------------------------------------------------------------
def model_id(model: Any) -> dict[str, Any]:
    """{"model", "latent_dim", "digest"}: the model's name, code size and a SHA-256 of its config and weights."""
    from .models import config_dict

    h = hashlib.sha256(json.dumps(config_dict(model), sort_keys=True, default=str).encode())
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return {"model": model.name, "latent_dim": int(model.config.latent_dim), "digest": h.hexdigest()[:16]}


def describe(mid: dict[str, Any]) -> str:
    return f"{mid['model']} (latent_dim {mid['latent_dim']}, weights {mid['digest'][:12]})"


# -- the codes a sampler is fitted on ------------------------------------------------------------------
@torch.no_grad()
def codes(model: Any, x: Any, *, draw: bool = False, batch_size: int = 1000, seed: int = 0) -> torch.Tensor:
    """Codes of items x `(N, *data_shape)`, shape (N, latent_dim), float32 on the CPU: posterior means
    E_q[z|x], or with draw=True one draw from q(z|x) per item.  Seeded, so the same call gives the same
    codes (an implicit encoder's mean is itself a Monte Carlo estimate)."""
    x = torch.as_tensor(x.x if hasattr(x, "x") else x)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with seeded(seed):
            out = [
                (model.encode(xb.to(device)).sample() if draw else model.embed(xb.to(device))).float().cpu()
                for xb in x.split(batch_size)
            ]
    finally:
        model.train(was_training)
    return torch.cat(out)


def code_kind(model: Any) -> str:
    """The codes a sampler for `model` is fitted on, as the model says (`sampler_codes`): "mean" or "draw"
    (a model without the attribute, one with no encoder: "mean")."""
    kind: str = getattr(model, "sampler_codes", "mean")
    return kind


FIT_CODES = 100_000  # at most this many items' codes fit a sampler (`fit_codes`)


def fit_codes(model: Any, x: Any, *, limit: int = FIT_CODES, seed: int = 0) -> torch.Tensor:
    """What a sampler is fitted on: the codes (`codes`: posterior means, or one draw each where
    `model.sampler_codes` says "draw") of the items x, or of a seeded random subset of `limit` of them when x
    holds more.  A 10-component full-covariance mixture of 56-D codes has
    about 16,000 parameters, which 100,000 codes pin down, while encoding and EM cost grow with the count:
    on the whole MOSES train split (1.58 M molecules) they had not finished after 34 CPU-minutes."""
    x = torch.as_tensor(x.x if hasattr(x, "x") else x)
    if len(x) > limit:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:limit]]
    return codes(model, x, draw=code_kind(model) == "draw", seed=seed)


@torch.no_grad()
def gain(model: Any, sampler: Sampler, z: Any) -> float:
    """Mean log density of codes z (N, latent_dim) under `sampler` less under `model`'s prior, in nats a code:
    on held-out codes (made as `fit_codes` makes them), how much closer the sampler is to the aggregate
    posterior than the prior is (with draws for z, a lower bound on KL(aggregate posterior || prior))."""
    prior = fit("prior", model)
    return float((sampler.log_prob(z).double() - prior.log_prob(z).double()).mean())


def check_codes(z: Any, latent_dim: int, name: str = "codes") -> torch.Tensor:
    """z as a float32 CPU tensor (N, latent_dim); one-line errors for a wrong shape or NaN/inf."""
    try:
        t = torch.as_tensor(z, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise VaekitError(f"{name}: cannot read as numbers ({str(e).splitlines()[0][:80]})") from None
    if t.dim() != 2 or t.shape[1] != latent_dim:
        raise VaekitError(f"{name}: expected shape (n_codes, {latent_dim}), got {tuple(t.shape)}")
    bad = ~torch.isfinite(t).all(1)
    if bad.any():
        raise VaekitError(f"{name}: {int(bad.sum())} codes are NaN or inf (first: code {int(bad.nonzero()[0])})")
    return t


def _count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 1:
        raise VaekitError(f"number of codes to draw must be a positive integer, got {n!r}")
    return int(n)


# -- the interface -------------------------------------------------------------------------------------
class Sampler:
    """A distribution over codes for one model.  Subclasses set `Config` (a dataclass of options, saved as
    JSON), `uses_codes`, `min_codes`, and implement `_fit`, `sample`, and `tensors`/`load_tensors`
    (their learned state) and, where they have one, `log_prob`."""

    name = "base"
    config: Any  # an instance of the subclass's Config
    uses_codes = True  # fitted on the training codes (False: nothing to fit, e.g. the prior)
    min_codes = 1

    @dataclass
    class Config:
        seed: int = 0  # of any randomness in the fit (the prior fits nothing)

    def __init__(self, model: Any, config: Any):
        self.config = config
        self.latent_dim = int(model.config.latent_dim)
        self.fitted_for = model_id(model)
        self.n_codes = 0
        # the kind of codes it is fitted on, as the model says (`fit_codes`); one fitted otherwise sets its own
        self.fitted_on = code_kind(model) if self.uses_codes else None

    def _fit(self, model: Any, z: torch.Tensor) -> None:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes, shape (n, latent_dim), float32 on the CPU; `generator` makes them reproducible."""
        raise NotImplementedError

    def log_prob(self, z: Any) -> torch.Tensor:
        """log density of codes z (n, latent_dim), in nats, shape (n,)."""
        raise VaekitError(f"sampler {self.name!r} has no log density")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.config).items())
        on = f" on {self.n_codes} codes ({self.fitted_on})" if self.uses_codes else ""
        return f"{type(self).__name__}({opts}; for {describe(self.fitted_for)}{on})"


def _config(cls: type[Sampler], options: dict[str, Any]) -> Any:
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise VaekitError(f"unknown option(s) {unknown} for sampler {cls.name!r}; options: {sorted(fields)}")
    try:
        return cls.Config(**options)
    except (TypeError, ValueError) as e:
        raise VaekitError(f"bad options for sampler {cls.name!r}: {e}") from None


def fit(name: str, model: Any, codes: Any = None, **options: Any) -> Sampler:
    """Fit sampler `name` for `model` on its training codes (N, latent_dim) (see `codes`); options are
    fields of the sampler's Config (e.g. n_components=10, seed=0).  The prior needs no codes."""
    cls = get(name)
    sampler = cls(model, _config(cls, options))
    if not cls.uses_codes:
        return sampler
    if codes is None:
        raise VaekitError(f"sampler {name!r} is fitted on codes: pass the training set's codes")
    z = check_codes(codes, sampler.latent_dim)
    if len(z) < cls.min_codes:
        raise VaekitError(f"sampler {name!r} needs at least {cls.min_codes} codes to fit, got {len(z)}")
    sampler._fit(model, z)
    sampler.n_codes = len(z)
    return sampler


@torch.no_grad()
def generate(model: Any, sampler: Sampler, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Items for n codes of `sampler` (the model's `draw`: decoder means, or a stochastic decoding of a
    sequence model), on the model's device."""
    if sampler.fitted_for["latent_dim"] != model.config.latent_dim:
        raise VaekitError(
            f"sampler fitted for {describe(sampler.fitted_for)} cannot draw codes for a model "
            f"with latent_dim {model.config.latent_dim}"
        )
    z = sampler.sample(n, generator)
    items: torch.Tensor = model.draw(z.to(next(model.parameters()).device), generator)
    return items


# -- files ---------------------------------------------------------------------------------------------
def _digest(tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True).encode())
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(sampler: Sampler, path: str | os.PathLike[str]) -> Path:
    """Write `sampler` to a safetensors file (learned state as tensors, options and model in a JSON header),
    atomically."""
    from safetensors.torch import save as to_bytes

    where = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in sampler.tensors().items()}
    header = {
        "format": FORMAT,
        "sampler": sampler.name,
        "config": dataclasses.asdict(sampler.config),
        "fitted_for": sampler.fitted_for,
        "n_codes": sampler.n_codes,
        "fitted_on": sampler.fitted_on,
    }
    header = json.loads(json.dumps(header))
    header["sha256"] = _digest(tensors, header)
    atomic_write_bytes(where, to_bytes(tensors, metadata={"vaekit-sampler": json.dumps(header)}))
    return where


def read(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and header of a sampler file, verified; VaekitError naming the file if anything is off."""
    from safetensors import SafetensorError
    from safetensors.torch import load as from_bytes

    path = Path(path)
    if not path.is_file():
        raise VaekitError(f"{path}: no sampler file here")
    try:
        data = path.read_bytes()
        n = int.from_bytes(data[:8], "little")
        if len(data) < 8 or n > len(data) - 8:
            raise ValueError("header length beyond the end of the file")
        raw = json.loads(data[8 : 8 + n]).get("__metadata__", {}).get("vaekit-sampler")
        tensors = from_bytes(data)
    except (SafetensorError, OSError, ValueError, RuntimeError, AttributeError) as e:
        raise VaekitError(f"{path}: corrupt or truncated sampler file ({str(e).splitlines()[0][:120]})") from None
    try:
        header = json.loads(raw)
        assert header.get("format") == FORMAT and isinstance(header.get("config"), dict)
        mid = header.get("fitted_for")
        assert isinstance(mid, dict) and {"model", "latent_dim", "digest"} <= set(mid)
    except Exception:
        raise VaekitError(f"{path}: not a vaekit sampler file (missing or bad 'vaekit-sampler' metadata)") from None
    if _digest(tensors, header) != header.get("sha256"):
        raise VaekitError(f"{path}: checksum mismatch, the sampler file is corrupt")
    return tensors, header


def load(path: str | os.PathLike[str], model: Any) -> Sampler:
    """The sampler saved in `path`, for `model`: an error if it was fitted for another model."""
    tensors, header = read(path)
    mine = model_id(model)
    if header["fitted_for"] != mine:
        raise VaekitError(
            f"{path}: sampler fitted for {describe(header['fitted_for'])} cannot draw codes for {describe(mine)}"
        )
    cls = get(header["sampler"])
    sampler = cls(model, _config(cls, header["config"]))
    sampler.n_codes = int(header.get("n_codes", 0))
    if sampler.uses_codes:  # files written before the field were all fitted on posterior means
        sampler.fitted_on = header.get("fitted_on", "mean")
    try:
        sampler.load_tensors(tensors)
    except (KeyError, RuntimeError, ValueError) as e:
        raise VaekitError(
            f"{path}: the {cls.name} sampler's tensors do not fit ({str(e).splitlines()[0][:120]})"
        ) from None
    return sampler


def cached(path: str | os.PathLike[str], name: str, model: Any, codes_fn: Callable[[], Any], **options: Any) -> Sampler:
    """Sampler `name` for `model`: the one saved in `path` when it was fitted for this model with these
    options on the codes the model asks for (`model.sampler_codes`), else one fitted on `codes_fn()` (those
    training codes, as `fit_codes` makes them, computed only then) and saved to `path`.  A sampler that fits
    nothing (the prior) is neither read nor written."""
    cls = get(name)
    if not cls.uses_codes:
        return fit(name, model, None, **options)
    want = json.loads(json.dumps(dataclasses.asdict(_config(cls, options))))

    def load_if_fitted(path: Path) -> Sampler:  # raises when unreadable or stale: fit again and replace it
        sampler = load(path, model)  # (raises for another model)
        options = json.loads(json.dumps(dataclasses.asdict(sampler.config)))
        if sampler.name != name or options != want or sampler.fitted_on != code_kind(model):
            raise VaekitError(f"{path}: fitted with other options or on other codes than the model asks for")
        return sampler

    def write(p: Path, s: Sampler) -> None:
        save(s, p)

    return cached_file(path, lambda: fit(name, model, codes_fn(), **options), write, load_if_fitted)


def kept(run_dir: str | os.PathLike[str], name: str) -> Path:
    """Where the run in `run_dir` keeps its fitted sampler `name`: beside its checkpoint,
    RUN/sampler-NAME.safetensors; for a model committed with vaekit (whose folder in the source checkout vaekit
    does not write into), in the cache, under samplers/ and the model's folder name (`cached` refits it when
    the committed weights change)."""
    from .data.core import cache_root
    from .models.pretrained import committed

    run_dir = Path(run_dir)
    home = cache_root() / "samplers" / run_dir.name if committed(run_dir) else run_dir
    return home / f"sampler-{name}.safetensors"


def _expect(tensors: dict[str, torch.Tensor], key: str, shape: tuple[int, ...]) -> torch.Tensor:
    t = tensors[key]
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"tensor {key} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    return t


# -- the samplers --------------------------------------------------------------------------------------
@register_sampler("prior")
class PriorSampler(Sampler):
    """The model's own prior p(z): exactly the codes `model.sample(n, generator)` decodes."""

    uses_codes = False

    def __init__(self, model: Any, config: Any):
        super().__init__(model, config)
        self.prior: Callable[[], torch.distributions.Distribution] = (
            model.prior
        )  # the module: whatever the model's prior is

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = _count(n)
        return prior_draws(self.prior(), n, generator).float().cpu()

    def log_prob(self, z: Any) -> torch.Tensor:
        z = check_codes(z, self.latent_dim, "codes to score")
        p = self.prior()
        try:
            return p.log_prob(z.to(p.mean.device if hasattr(p, "mean") else "cpu")).cpu()
        except NotImplementedError:
            raise VaekitError(f"the prior of {self.fitted_for['model']} has no log density") from None


@register_sampler("gmm")
class GaussianMixtureSampler(Sampler):
    """A Gaussian mixture with full covariances fitted by EM (scikit-learn's GaussianMixture) on the codes."""

    @dataclass
    class Config:
        # a count, or "bic": the count among BIC_COUNTS (those up to the number of codes) whose mixture has the
        # lowest Bayesian information criterion on the codes; full covariances have d(d+3)/2 parameters each, so
        # on a few thousand codes of 40 dimensions a large fixed count overfits them (see the fonts report)
        n_components: int | str = 10
        seed: int = 0
        max_iter: int = 200
        reg_covar: float = 1e-6  # added to every covariance's diagonal (codes in the encoder's units)

        def __post_init__(self) -> None:
            k = self.n_components
            if k != "bic" and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
                raise ValueError(f"n_components must be a positive integer or 'bic', got {k!r}")
            if not self.reg_covar >= 0:
                raise ValueError(f"reg_covar must be >= 0, got {self.reg_covar!r}")

    BIC_COUNTS = (1, 2, 4, 8, 16, 32, 64)
    bic: dict[int, float]  # n_components="bic": the criterion of every count tried

    def _fit(self, model: Any, z: torch.Tensor) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        k = self.config.n_components
        if isinstance(k, int) and len(z) < k:
            raise VaekitError(
                f"sampler 'gmm': {k} components need at least {k} codes, got {len(z)} "
                "(fewer components: n_components=...)"
            )
        x = z.double().numpy()

        def mixture(k: int) -> Any:
            gm = GaussianMixture(
                k,
                covariance_type="full",
                max_iter=self.config.max_iter,
                reg_covar=self.config.reg_covar,
                random_state=self.config.seed,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return gm.fit(x)

        if isinstance(k, int):
            gm = mixture(k)
        else:  # "bic"
            fits = {c: mixture(c) for c in self.BIC_COUNTS if c <= len(x)}
            self.bic = {c: float(gm.bic(x)) for c, gm in fits.items()}
            gm = fits[min(self.bic, key=self.bic.__getitem__)]
        self.set(torch.from_numpy(gm.weights_), torch.from_numpy(gm.means_), torch.from_numpy(gm.covariances_))

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    scale_tril: torch.Tensor

    def set(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor) -> None:
        """The mixture's parameters: weights (K,), means (K, d), covariances (K, d, d)."""
        self.weights = weights.double() / weights.double().sum()
        self.means, self.covariances = means.double(), covariances.double()
        try:
            self.scale_tril = torch.linalg.cholesky(self.covariances)
        except RuntimeError:
            raise ValueError("a covariance is not positive definite") from None

    def distribution(self) -> torch.distributions.Distribution:
        D = torch.distributions
        return D.MixtureSameFamily(
            D.Categorical(probs=self.weights), D.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = _count(n)
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.latent_dim, 1, generator=generator, dtype=torch.float64)
        return (self.means[k] + (self.scale_tril[k] @ eps).squeeze(-1)).float()

    def log_prob(self, z: Any) -> torch.Tensor:
        z = check_codes(z, self.latent_dim, "codes to score")
        return self.distribution().log_prob(z.double()).float()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        k, d = self.config.n_components, self.latent_dim
        if k == "bic":  # the count chosen when it was fitted
            k = int(tensors["weights"].shape[0])
            if k not in self.BIC_COUNTS:
                raise ValueError(f"tensor weights holds {k} components, not one of the counts 'bic' chooses from")
        self.set(
            _expect(tensors, "weights", (k,)),
            _expect(tensors, "means", (k, d)),
            _expect(tensors, "covariances", (k, d, d)),
        )


def _standardise(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of codes (a std of 0, an unused unit, counts as 1)."""
    loc, scale = z.mean(0), z.std(0)
    return loc, torch.where(scale > 1e-6, scale, torch.ones_like(scale))


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The second-stage nets are tiny (batches of 256 codes through 64-unit layers): intra-op threads only
    contend, badly so on a busy machine (200 steps: 4.6 s on one thread, 82 s on two sharing 2 loaded cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _train(net: nn.Module, x: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int) -> None:
    """The kit's training loop on `net` (which has `loss`), a fixed number of steps, the global RNG untouched."""
    from .train import TrainConfig
    from .train import fit as train_fit

    bs = min(batch_size, len(x))
    epochs = math.ceil(steps / math.ceil(len(x) / bs))
    cfg = TrainConfig(
        epochs=epochs,
        max_steps=steps,
        batch_size=bs,
        lr=lr,
        lr_schedule="cosine",
        seed=seed,
        device="cpu",
        progress=False,
        tensorboard=False,
    )
    with torch.random.fork_rng(devices=[]), _one_thread():
        train_fit(net, x, cfg)


@register_sampler("twostage")
class TwoStageSampler(Sampler):
    """A second VAE on the standardised codes (Dai & Wipf 2019): as many latent units as the codes have,
    a Gaussian decoder with learned variance, trained for a fixed number of steps on the ELBO.
    `log_prob` is its importance-sampled log-likelihood (k samples, seeded): a lower bound in expectation."""

    min_codes = 64

    @dataclass
    class Config:
        hidden: tuple[int, ...] = (64, 64)
        steps: int = 3000
        batch_size: int = 256
        lr: float = 1e-3
        seed: int = 0
        k: int = 1000  # importance samples of log_prob

        def __post_init__(self) -> None:
            self.hidden = tuple(self.hidden)
            for f in ("steps", "batch_size", "k"):
                v = getattr(self, f)
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"{f} must be a positive integer, got {v!r}")
            if not self.lr > 0:
                raise ValueError(f"lr must be positive, got {self.lr!r}")

    def __init__(self, model: Any, config: Any):
        super().__init__(model, config)
        from .models import build

        with seeded(config.seed):
            self.vae = build(
                "vae",
                data_shape=(self.latent_dim,),
                latent_dim=self.latent_dim,
                hidden=tuple(config.hidden),
                likelihood="gaussian",
            )
        self.loc, self.scale = torch.zeros(self.latent_dim), torch.ones(self.latent_dim)

    def _fit(self, model: Any, z: torch.Tensor) -> None:
        self.loc, self.scale = _standardise(z)
        _train(
            self.vae,
            (z - self.loc) / self.scale,
            self.config.steps,
            self.config.batch_size,
            self.config.lr,
            self.config.seed,
        )
        self.vae.eval()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.randn(_count(n), self.latent_dim, generator=generator)
        with _one_thread():
            p = self.vae.decode(u).base_dist
        codes: torch.Tensor = (p.loc + p.scale * torch.randn(p.loc.shape, generator=generator)) * self.scale + self.loc
        return codes

    @torch.no_grad()
    def log_prob(self, z: Any) -> torch.Tensor:
        z = check_codes(z, self.latent_dim, "codes to score")
        with seeded(self.config.seed), _one_thread():
            return log_likelihood(self.vae, (z - self.loc) / self.scale, k=self.config.k) - self.scale.log().sum()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"loc": self.loc, "scale": self.scale, **{f"vae.{k}": v for k, v in self.vae.state_dict().items()}}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        d = self.latent_dim
        self.loc, self.scale = _expect(tensors, "loc", (d,)).float(), _expect(tensors, "scale", (d,)).float()
        self.vae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vae.")})
        self.vae.eval()
