"""IDX files (the MNIST format), gzipped or not, parsed with full header and size checks; the MNIST and
Fashion-MNIST data sets read from them."""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset, SplitError, data_root, register_dataset
from .download import verify_known

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def find_idx(folder: Path, stem: str, name: str = "data") -> Path:
    for cand in (folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")):
        if cand.is_file():
            return cand
    raise VaekitError(
        f"{name}: {folder / (stem + '.gz')} not found; set --data-dir or VAEKIT_DATA, or run `vaekit data fetch {name}`"
    )


def read_idx(path: str | Path, max_bytes: int = 2**31) -> np.ndarray:
    """Read an IDX file; raises VaekitError naming the file on a bad magic number or a truncated body."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
                raw = f.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise VaekitError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) > max_bytes:
        raise VaekitError(f"{path}: IDX file larger than {max_bytes} bytes")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise VaekitError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise VaekitError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    need = dtype.itemsize * math.prod(dims)  # Python ints: a forged header cannot overflow
    if dtype.itemsize * math.prod(d or 1 for d in dims) > max_bytes:
        raise VaekitError(f"{path}: IDX header claims dimensions {dims}, larger than {max_bytes} bytes")
    if len(raw) - header != need:
        raise VaekitError(
            f"{path}: IDX body has {len(raw) - header} bytes, header {dims} needs {need} (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def mnist(split_name: str = "train", data_dir=None, name: str = "mnist") -> Dataset:
    """MNIST (or Fashion-MNIST with name='fashion_mnist') from IDX files, pixels scaled to [0, 1]."""
    root = data_root(data_dir)
    prefix = {"train": "train", "test": "t10k"}
    if split_name not in prefix:
        raise SplitError(name, split_name, prefix)
    flat = any(root.glob(f"{prefix[split_name]}-images*"))  # files directly in the folder given
    folder = root if flat and not (root / name).is_dir() else root / name
    files = [
        find_idx(folder, f"{prefix[split_name]}-{kind}", name) for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    ]
    for f in files:
        verify_known(name, f)
    images, labels = (read_idx(f) for f in files)
    if len(images) != len(labels):
        raise VaekitError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return Dataset(torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64)), name)


register_dataset("mnist")(lambda split_name, data_dir: mnist(split_name, data_dir))
register_dataset("fashion_mnist")(lambda split_name, data_dir: mnist(split_name, data_dir, "fashion_mnist"))
