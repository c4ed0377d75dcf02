import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# The staged public data sets (../shared/data beside the clone) unless the user points elsewhere.
if not os.environ.get("VAEKIT_DATA") and SHARED.is_dir():
    os.environ["VAEKIT_DATA"] = str(SHARED)

torch.set_num_threads(min(2, torch.get_num_threads()))


def shared_data(name: str) -> Path:
    root = Path(os.environ.get("VAEKIT_DATA", SHARED))
    if not (root / name).is_dir():
        pytest.skip(f"data set {name!r} not found under $VAEKIT_DATA (set it to the folder of the staged data sets)")
    return root / name
