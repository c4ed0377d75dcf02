"""Data sets as tensors of known shape: the embedded sklearn digits, MNIST-style IDX files,
NumPy arrays, image folders, and checksum-verified downloads (`vaekit data fetch`)."""
from .core import Dataset, Standardization, check_array, data_root, load, split
from .download import fetch
from .idx import read_idx
from . import curves, fonts, frey, olivetti  # noqa: E402,F401  (register their loaders)

__all__ = ["Dataset", "Standardization", "check_array", "data_root", "load", "split", "fetch", "read_idx"]
