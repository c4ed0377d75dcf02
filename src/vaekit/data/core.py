"""`Dataset` and `load(spec)`: one entry point for every source the CLI and reports accept; `Standardization`
of items per feature.

The loaders live in their own modules and register themselves here (`register_dataset`, `register_format`);
this module imports none of them: `vaekit.data` imports them all."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from ..names import Registry


@dataclass
class Dataset:
    """Items `x` (N, *shape) as float32 (pixels in [0, 1]), optional integer labels `y` (N,)."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    name: str = "data"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index) -> Dataset:
        index = torch.as_tensor(index)
        return Dataset(self.x[index], None if self.y is None else self.y[index], self.name)


def check_array(x, name: str = "data", *, min_rank: int = 2) -> torch.Tensor:
    """Validate items as a finite float32 tensor of rank >= min_rank; one-line errors naming `name`."""
    if isinstance(x, Dataset):
        x = x.x
    if not isinstance(x, torch.Tensor):
        try:
            x = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise VaekitError(f"{name}: cannot convert to an array ({e})") from None
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise VaekitError(f"{name}: expected numbers, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if x.is_complex() or not (
        x.is_floating_point() or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
    ):
        raise VaekitError(f"{name}: expected a real-valued array, got dtype {x.dtype}")
    if x.dim() < min_rank:
        raise VaekitError(f"{name}: expected shape (n_items, ...) of rank >= {min_rank}, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise VaekitError(f"{name}: the data set is empty (shape {tuple(x.shape)})")
    if any(s == 0 for s in x.shape[1:]):
        raise VaekitError(f"{name}: items have an empty dimension (shape {tuple(x.shape)})")
    bad = ~torch.isfinite(x)
    if bad.any():
        i = int(bad.flatten(1).any(1).nonzero()[0])
        raise VaekitError(f"{name}: contains NaN or inf (first at item {i})")
    x = x.float()
    bad = ~torch.isfinite(x)  # finite as float64, beyond float32's +-3.4e38
    if bad.any():
        i = int(bad.flatten(1).any(1).nonzero()[0])
        raise VaekitError(
            f"{name}: values out of float32 range (magnitude above 3.4e38; first at item {i}); scale the data"
        )
    return x


@dataclass
class Standardization:
    """Per-feature standardisation x -> (x - mean) / std, fitted on training items; `mean` and `std` have the
    item shape. A feature that (all but) never varies gets std 1. Saved in a run's config.json ("data": {"standardize":
    {"mean": [...], "std": [...]}}, flat lists) so every command can apply and undo it."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardization:
        x = x.double()
        std = x.std(0, unbiased=False) if len(x) > 1 else torch.ones(x.shape[1:], dtype=x.dtype)
        return cls(x.mean(0).float(), torch.where(std > 1e-6 * (1 + x.mean(0).abs()), std, 1.0).float())

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def undo(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x.device) + self.mean.to(x.device)

    def to_json(self) -> dict:
        return {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}

    @classmethod
    def from_json(cls, d, shape, name: str = "config.json") -> Standardization:
        """From `to_json`'s dict, for items of `shape`; VaekitError naming `name` if anything is off."""
        n = int(np.prod(shape))
        try:
            assert isinstance(d, dict)
            mean, std = (torch.tensor([float(v) for v in d[k]], dtype=torch.float32) for k in ("mean", "std"))
        except (AssertionError, KeyError, TypeError, ValueError, OverflowError):
            raise VaekitError(
                f"{name}: field 'data.standardize' must be an object with lists 'mean' and 'std'"
            ) from None
        if len(mean) != n or len(std) != n:
            raise VaekitError(
                f"{name}: field 'data.standardize' holds {len(mean)} means and {len(std)} stds for items "
                f"of shape {tuple(shape)} ({n} features)"
            )
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise VaekitError(f"{name}: field 'data.standardize' needs finite means and positive finite stds")
        return cls(mean.reshape(shape), std.reshape(shape))


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where data sets live: `data_dir`, else $VAEKIT_DATA, else ~/.cache/vaekit."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("VAEKIT_DATA"):
        return Path(os.environ["VAEKIT_DATA"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vaekit"


def cache_root() -> Path:
    """Where generated data (curves, PDE fields) is cached: $VAEKIT_CACHE, else ~/.cache/vaekit.
    Never the data folder: shared data sets stay read-only."""
    if os.environ.get("VAEKIT_CACHE"):
        return Path(os.environ["VAEKIT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vaekit"


def split(data: Dataset, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Deterministic random split into (1 - fraction, fraction) parts."""
    n = len(data)
    n_b = int(round(n * fraction))
    if not 0 < n_b < n:
        raise VaekitError(f"cannot split {n} items into parts of fraction {fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[n_b:]), data.subset(perm[:n_b])


class SplitError(VaekitError):
    """A data set has no split of the name asked for; `splits` are the ones it has."""

    def __init__(self, name: str, split_name: str, splits, hint: str = ""):
        self.name, self.split_name, self.splits = name, split_name, tuple(splits)
        super().__init__(f"{name}: no split {split_name!r}; it has {', '.join(self.splits)}{hint}")


def _pick(split_name, parts, name: str = "data"):
    if split_name not in parts:
        raise SplitError(name, split_name, sorted(parts))
    return parts[split_name]


#: what a source holding one set of items (a .npy file, an image folder) answers to: there is no test split
SINGLE = ("train", "all")
SINGLE_HINT = (
    "; it holds one set of items, so --split train scores the training items, and held-out items "
    "need a file or folder of their own (--data)"
)


def check_single_split(name: str, split_name: str) -> None:
    """Refuse a split other than train/all for a source that holds one set of items."""
    if split_name not in SINGLE:
        raise SplitError(name, split_name, SINGLE, SINGLE_HINT)


#: the data sets by name: each loader module registers its loaders `f(split_name, data_dir) -> Dataset`
DATASETS = Registry("data set")
register_dataset = DATASETS.register

#: the file types by suffix (".npy"), and "folder" for a folder: `f(path, split_name) -> Dataset`
FORMATS = Registry("data file type")
register_format = FORMATS.register


def load(spec: str, split_name: str = "train", data_dir=None) -> Dataset:
    """A registered name (digits, mnist, ...), a file of a registered type (.npy, .npz) or a folder of images."""
    if spec in DATASETS:
        try:
            return DATASETS[spec](split_name, data_dir)
        except SplitError as e:  # name the data set, whatever its loader called it
            if e.name == spec:
                raise
            raise SplitError(spec, e.split_name, e.splits) from None
    path = Path(spec)
    kind = path.suffix if path.suffix in FORMATS else "folder" if path.is_dir() else None
    if kind is not None and kind in FORMATS:
        return FORMATS[kind](path, split_name)
    if not path.exists():
        raise VaekitError(
            f"unknown data set {spec!r}: not a built-in name ({', '.join(sorted(DATASETS))}) "
            "nor an existing file or folder"
        )
    types = ", ".join(sorted(k for k in FORMATS if k != "folder"))
    raise VaekitError(f"{spec}: unsupported data file; use {types} or a folder of images")
