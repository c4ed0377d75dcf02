"""The trained models committed with vaekit: run folders under `models/` of a source checkout."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import VaekitError

#: where the committed models live: models/ at the top of the source checkout this package is imported from
ROOT = Path(__file__).resolve().parents[3] / "models"


def pretrained(name: str) -> Path:
    """The run folder of the committed model `name` (e.g. "chemvae-selfies"): load it with
    `checkpoint.load_model(pretrained(name))`, or pass it to `vaekit explore`.  The models ship with a source
    checkout, not with an installed wheel; a name with no such folder is a one-line VaekitError."""
    folder = ROOT / str(name)
    if isinstance(name, str) and name and Path(name).name == name and (folder / "config.json").is_file():
        return folder
    known = sorted(p.parent.name for p in ROOT.glob("*/config.json"))
    raise VaekitError(
        f"no pretrained model {str(name)!r:.60} in {ROOT} "
        f"({'committed: ' + ', '.join(known) if known else 'a source checkout of vaekit has them'})"
    )


def committed(run_dir: str | os.PathLike[str]) -> bool:
    """Whether `run_dir` is one of the models committed with vaekit (a folder of `models/`)."""
    return Path(run_dir).resolve().parent == ROOT.resolve()
