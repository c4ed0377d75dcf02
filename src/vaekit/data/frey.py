"""Brendan Frey's face images: 1,965 greyscale frames of 28 x 20 pixels (Kingma & Welling 2013, Fig. 4).

Read from `frey/frey_rawface.mat.gz` (or `.mat`) under the data root: one MATLAB variable `ff`,
uint8, shape (560, 1965), each column an upright 28 x 20 image stored row-major.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset, _pick, data_root, register_dataset, split

SHAPE = (28, 20)
FILES = ("frey_rawface.mat.gz", "frey_rawface.mat")


def find(data_dir=None) -> Path:
    root = data_root(data_dir)
    for folder in (root / "frey", root):
        for name in FILES:
            if (folder / name).is_file():
                return folder / name
    raise VaekitError(f"{root / 'frey'}: no {' or '.join(FILES)} found (set VAEKIT_DATA or pass data_dir)")


def read_frey(path) -> np.ndarray:
    """The faces as uint8 (1965, 28, 20)."""
    from scipy.io import loadmat

    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise VaekitError(f"{path}: not a readable gzip file ({e})") from None
    try:
        mat = loadmat(io.BytesIO(raw))
    except Exception as e:  # scipy raises several types for a bad MAT file
        raise VaekitError(f"{path}: not a readable MAT file ({type(e).__name__})") from None
    if "ff" not in mat:
        raise VaekitError(f"{path}: no variable 'ff' (found {sorted(k for k in mat if not k.startswith('__'))})")
    ff = np.asarray(mat["ff"])
    if ff.ndim != 2 or ff.shape[0] != SHAPE[0] * SHAPE[1]:
        raise VaekitError(f"{path}: variable 'ff' has shape {ff.shape}, expected ({SHAPE[0] * SHAPE[1]}, n_images)")
    return np.ascontiguousarray(ff.T.reshape(-1, *SHAPE))


@register_dataset("frey")
def frey(split_name: str = "train", data_dir=None) -> Dataset:
    """Frey faces in [0, 1], shape (N, 28, 20), no labels; a fixed 90/10 train/test split ('all' for every face)."""
    ff = read_frey(find(data_dir))
    full = Dataset(torch.from_numpy(ff.astype(np.float32) / 255.0), None, "frey")
    train, test = split(full, 0.1, seed=0)
    return _pick(split_name, {"train": train, "test": test, "all": full})
