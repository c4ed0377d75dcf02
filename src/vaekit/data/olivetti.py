"""Olivetti faces (400 images of 40 people, 64 x 64) and the 25 x 25 variants of Hinton &
Salakhutdinov (2006).

The paper's supporting material builds 165,600 images of 25 x 25 pixels by rotating (-90 to +90
degrees), scaling (1.4 to 1.8), cropping and subsampling the 400 faces, and splits them *by
person*: the first 30 people for training (103,500 images of 25 people to fit, 20,700 of 5 people
for validation) and the last 10 people (41,400 images, 414 per face) for testing.  `variants`
draws `per_image` such images of every face: a rotation uniform in [-max_angle, max_angle]
degrees about the image centre, a scale uniform in `zoom`, then a square of `crop` pixels of the
scaled image (default 50, so that subsampling by two gives 25 x 25; i.e. 50 / zoom source pixels)
centred on the face (plus an optional random shift of the centre of up to `shift` source pixels),
resampled bilinearly.  With these defaults PCA with 30 components reconstructs the test people
within 2 % of the paper's error (see reports/hinton2006); a crop of the whole 64 x 64 frame gives
about 14 % more.

    >>> from vaekit.data.olivetti import faces, variants
    >>> d = faces(data_dir)                          # Dataset x (400, 64, 64) in [0, 1], y = person
    >>> train = variants(d, "train", per_image=30)   # x (7500, 25, 25)
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset, data_root, register_dataset

PEOPLE = {"train": range(0, 25), "valid": range(25, 30), "test": range(30, 40)}
FILE = "olivetti/olivettifaces.mat.gz"


def faces(data_dir=None) -> Dataset:
    """The 400 upright 64 x 64 faces as float32 in [0, 1] (grey level / 255), labels = person 0..39."""
    from scipy.io import loadmat

    path = data_root(data_dir) / FILE
    if not path.is_file():
        raise VaekitError(f"{path}: Olivetti faces not found; set VAEKIT_DATA to the folder holding {FILE}")
    try:
        with gzip.open(path, "rb") as f:
            mat = loadmat(io.BytesIO(f.read()))
    except (OSError, ValueError, EOFError) as e:
        raise VaekitError(f"{path}: cannot read the MAT file ({type(e).__name__}: {e})") from None
    raw = mat.get("faces")
    if raw is None or raw.shape != (4096, 400):
        raise VaekitError(
            f"{path}: expected a variable 'faces' of shape (4096, 400), got {None if raw is None else raw.shape}"
        )
    x = raw.T.reshape(400, 64, 64).transpose(0, 2, 1).astype(np.float32) / 255.0  # columns are column-major
    y = np.repeat(np.arange(40), 10)
    return Dataset(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), "olivetti")


def transform(
    image: np.ndarray, angle: float, zoom: float, centre: tuple[float, float], size: int = 25, crop: float | None = None
) -> np.ndarray:
    """One (H, W) image -> (size, size): rotate by `angle` degrees about `centre` (row, col), crop a
    square of side crop / zoom source pixels around it (crop defaults to min(H, W)), and resample
    bilinearly (edges repeat the border)."""
    from scipy.ndimage import map_coordinates

    side = (min(image.shape) if crop is None else crop) / zoom
    u = (np.arange(size) + 0.5) / size * side - side / 2  # offsets of output pixel centres
    rr, cc = np.meshgrid(u, u, indexing="ij")
    a = np.deg2rad(angle)
    rows = centre[0] + np.cos(a) * rr - np.sin(a) * cc
    cols = centre[1] + np.sin(a) * rr + np.cos(a) * cc
    return map_coordinates(image, [rows - 0.5, cols - 0.5], order=1, mode="nearest").astype(np.float32)


def variants(
    data: Dataset,
    split_name: str = "train",
    per_image: int = 30,
    seed: int = 0,
    size: int = 25,
    max_angle: float = 90.0,
    zoom: tuple[float, float] = (1.4, 1.8),
    shift: float = 0.0,
    crop: float | None = 50.0,
) -> Dataset:
    """`per_image` random rotated/scaled 25 x 25 crops of every face of the split's people.

    `crop`: side of the square cut from the scaled image, in its pixels (None: the whole frame)."""
    if split_name not in PEOPLE:
        raise VaekitError(f"unknown split {split_name!r} for olivetti; choose one of {sorted(PEOPLE)}")
    if crop is not None and not 0 < crop <= 2 * min(data.x.shape[-2:]):
        raise VaekitError(f"olivetti: crop must be in (0, {2 * min(data.x.shape[-2:])}] pixels, got {crop}")
    if per_image < 1:
        raise VaekitError(f"olivetti: per_image must be >= 1, got {per_image}")
    if data.y is None:
        raise VaekitError("olivetti: variants need the faces' labels (data.y)")
    labels = data.y
    people = set(PEOPLE[split_name])
    keep = [i for i in range(len(data)) if int(labels[i]) in people]
    rng = np.random.default_rng([seed, sorted(PEOPLE).index(split_name)])
    xs, ys = [], []
    for i in keep:
        img = data.x[i].numpy()
        h, w = img.shape
        for _ in range(per_image):
            centre = (h / 2 + rng.uniform(-shift, shift), w / 2 + rng.uniform(-shift, shift))
            xs.append(transform(img, rng.uniform(-max_angle, max_angle), rng.uniform(*zoom), centre, size, crop))
            ys.append(int(labels[i]))
    return Dataset(torch.from_numpy(np.stack(xs)), torch.tensor(ys), f"olivetti_{split_name}")


@register_dataset("olivetti")
def _load(split_name, data_dir):
    """'all': the 400 raw 64 x 64 faces; 'train' / 'valid' / 'test': 30 25 x 25 variants per face."""
    d = faces(data_dir)
    if split_name == "all":
        return d
    return variants(d, split_name)
