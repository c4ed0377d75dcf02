"""Data sets as tensors of known shape: the embedded sklearn digits, MNIST-style IDX files,
NumPy arrays, image folders, and checksum-verified downloads (`vaekit data fetch`).

Each loader module registers its data sets (`core.register_dataset`) or file types (`core.register_format`);
importing them here is what makes `load` know them all."""

from . import arrays, curves, digits, fonts, frey, idx, images, olivetti  # noqa: F401  (register their loaders)
from .core import DATASETS, FORMATS, Dataset, Standardization, check_array, data_root, load, split
from .download import fetch
from .idx import read_idx

__all__ = [
    "DATASETS",
    "FORMATS",
    "Dataset",
    "Standardization",
    "check_array",
    "data_root",
    "load",
    "split",
    "fetch",
    "read_idx",
]
