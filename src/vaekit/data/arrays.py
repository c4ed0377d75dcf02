"""NumPy `.npy` / `.npz` files, read with allow_pickle=False (object arrays are refused)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import SINGLE, SINGLE_HINT, Dataset, SplitError, check_array, check_single_split, register_format

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (the second: an empty one)


@register_format(".npz")
@register_format(".npy")
def load_array(path: str | Path, split_name: str = "train") -> Dataset:
    """`.npy`: the items, one set (split train or all). `.npz`: arrays `x_<split>` (with labels `y_<split>`),
    or one set under `x` (or `X`, `data`, or the only array; split train or all) with labels `y`."""
    path = Path(path)
    if not path.is_file():
        raise VaekitError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise VaekitError(f"{path}: cannot read ({e.strerror})") from None
    if head != NPY_MAGIC and head[:4] not in ZIP_MAGIC:  # else NumPy would talk of pickles
        raise VaekitError(
            f"{path}: not a NumPy {path.suffix or '.npy'} file (it does not start with the "
            f"{'zip' if path.suffix == '.npz' else 'NumPy'} signature)"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            check_single_split(str(path), split_name)
            x, y = loaded, None
        else:
            with loaded as f:
                keys = list(f.keys())
                splits = sorted(k[2:] for k in keys if k.startswith("x_") and k[2:])
                xk = f"x_{split_name}" if f"x_{split_name}" in keys else None
                single = next((k for k in ("x", "X", "data") if k in keys), None)
                if single is None and len(keys) == 1 and not splits:
                    single = keys[0]
                if xk is None and single is not None and split_name in SINGLE:
                    xk = single
                    yk = next((k for k in ("y", "labels") if k in keys), None)
                elif xk is None and (splits or single is not None):
                    raise SplitError(str(path), split_name, splits or SINGLE, "" if splits else SINGLE_HINT)
                elif xk is None:
                    raise VaekitError(f"{path}: no array named 'x' or 'x_{split_name}' (found {keys})")
                else:
                    yk = f"y_{split_name}" if f"y_{split_name}" in keys else None
                x, y = f[xk], (f[yk] if yk else None)
    except VaekitError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise VaekitError(
            f"{path}: cannot read NumPy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    xt = check_array(x, str(path))
    if x.dtype == np.uint8:
        xt = xt / 255.0
    yt = None
    if y is not None:
        if y.shape[:1] != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
            raise VaekitError(f"{path}: labels must be integers of shape ({len(x)},), got {y.dtype} {y.shape}")
        yt = torch.from_numpy(y.astype(np.int64))
    return Dataset(xt, yt, path.stem)
