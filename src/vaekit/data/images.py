"""A folder of PNG/JPEG images (optionally one sub-folder per class) read with Pillow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def load_image_folder(folder: str | Path, size: tuple[int, int] | None = None, mode: str = "L") -> Dataset:
    """Images as (N, H, W) in [0, 1] for greyscale (mode 'L') or (N, 3, H, W) for 'RGB'.

    Sub-folders become integer labels (sorted by name). Without `size`, every image must have the
    size of the first one; a differing image is an error naming it.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise VaekitError(f"{folder}: no images ({', '.join(sorted(SUFFIXES))}) found")
    classes = sorted({p.parent for p in files})
    label_of = {c: i for i, c in enumerate(classes)}
    arrays, labels = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                im = im.convert(mode)
                if size is not None:
                    im = im.resize((size[1], size[0]))
                a = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise VaekitError(f"{p}: cannot read image ({type(e).__name__})") from None
        if arrays and a.shape != arrays[0].shape:
            raise VaekitError(f"{p}: image shape {a.shape} differs from {files[0]} {arrays[0].shape}; pass a size")
        arrays.append(a if mode == "L" else a.transpose(2, 0, 1))
        labels.append(label_of[p.parent])
    y = torch.tensor(labels) if len(classes) > 1 else None
    return Dataset(torch.from_numpy(np.stack(arrays)), y, folder.name)
