"""scikit-learn's embedded 8x8 digits: the data set that needs no download."""

from __future__ import annotations

import numpy as np
import torch

from .core import Dataset, _pick, register_dataset, split


@register_dataset("digits")
def digits(split_name: str = "train", data_dir=None) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 items), scaled to [0, 1]; a fixed 80/20 train/test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    full = Dataset(torch.from_numpy(d.images.astype(np.float32) / 16.0), torch.from_numpy(d.target), "digits")
    train, test = split(full, 0.2, seed=0)
    return _pick(split_name, {"train": train, "test": test, "all": full}, "digits")
