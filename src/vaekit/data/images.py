"""A folder of PNG/JPEG images (optionally one sub-folder per class) read with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset, check_single_split, register_format

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load_image_folder(folder: str | Path, size: tuple[int, int] | None = None, mode: str | None = None) -> Dataset:
    """Images as (N, H, W) in [0, 1] for greyscale (mode 'L') or (N, 3, H, W) for 'RGB'; by default
    (mode None) RGB when any image has colour, else greyscale.

    Sub-folders become integer labels (sorted by name). Without `size`, every image must have the
    size of the first one; a differing image is an error naming it.
    """
    from PIL import Image, UnidentifiedImageError

    if mode not in (None, "L", "RGB"):
        raise VaekitError(f"image mode must be 'L' or 'RGB', got {mode!r}")
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise VaekitError(f"{folder}: no images ({', '.join(sorted(SUFFIXES))}) found")
    classes = sorted({p.parent for p in files})
    label_of = {c: i for i, c in enumerate(classes)}
    arrays: list[np.ndarray] = []
    labels, colour = [], False
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert(mode or "RGB")
                if size is not None:
                    im = im.resize((size[1], size[0]))
                a = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise VaekitError(f"{p}: cannot read image ({type(e).__name__})") from None
        if arrays and a.shape != arrays[0].shape:
            raise VaekitError(f"{p}: image shape {a.shape} differs from {files[0]} {arrays[0].shape}; pass a size")
        if a.ndim == 3 and not colour:
            colour = not ((a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all())
        arrays.append(a)
        labels.append(label_of[p.parent])
    x = np.stack(arrays)
    if mode == "RGB" or (mode is None and colour):
        x = x.transpose(0, 3, 1, 2)  # (N, 3, H, W), the layout conv models take
    elif mode is None:
        x = np.ascontiguousarray(x[..., 0])  # grey: R = G = B, which is what mode 'L' gives too
    y = torch.tensor(labels) if len(classes) > 1 else None
    return Dataset(torch.from_numpy(np.ascontiguousarray(x)), y, folder.name)


@register_format("folder")
def _load(path: Path, split_name: str) -> Dataset:
    check_single_split(str(path), split_name)  # a folder holds one set of items
    return load_image_folder(path)
