"""NumPy `.npy` / `.npz` files, read with allow_pickle=False (object arrays are refused)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset, check_array


def load_array(path: str | Path, split_name: str = "train") -> Dataset:
    """`.npy`: the items. `.npz`: key `x` (or `x_train`/`x_test` by split, or the only array), labels `y`."""
    path = Path(path)
    if not path.is_file():
        raise VaekitError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            x, y = loaded, None
        else:
            with loaded as f:
                keys = list(f.keys())
                xk = next((k for k in (f"x_{split_name}", "x", "X", "data") if k in keys), None)
                if xk is None and len(keys) == 1:
                    xk = keys[0]
                if xk is None:
                    raise VaekitError(f"{path}: no array named 'x' (found {keys})")
                yk = next((k for k in (f"y_{split_name}", "y", "labels") if k in keys), None)
                x, y = f[xk], (f[yk] if yk else None)
    except VaekitError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise VaekitError(f"{path}: cannot read NumPy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    xt = check_array(x, str(path))
    if x.dtype == np.uint8:
        xt = xt / 255.0
    yt = None
    if y is not None:
        if y.shape[:1] != x.shape[:1] or not np.issubdtype(y.dtype, np.integer):
            raise VaekitError(f"{path}: labels must be integers of shape ({len(x)},), got {y.dtype} {y.shape}")
        yt = torch.from_numpy(y.astype(np.int64))
    return Dataset(xt, yt, path.stem)
