"""Molecules as SMILES strings: the MOSES splits, ZINC250k, or any CSV with a SMILES column.

    mols = read_csv("my.csv")                      # column found by name ("smiles", any case)
    mols = load_molecules("moses", "train")        # $VAEKIT_DATA/moses/train.csv.gz, or `vaekit data fetch moses`
    mols = load_molecules("zinc250k")              # `vaekit data fetch zinc250k` (checksum-verified)

Every SMILES is canonicalised with RDKit.  Rows RDKit cannot parse are kept aside in
`Molecules.invalid` as (row number, text) -- counted and listed by the reports, never dropped
silently.  Numeric columns named in `properties` come along as float arrays.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import VaekitError
from .core import data_root
from .download import verify_known

MOSES_SPLITS = ("train", "test", "test_scaffolds")
ZINC250K_FILE = "250k_rndm_zinc_drugs_clean_3.csv"


@dataclass
class Molecules:
    smiles: list[str]  # canonical SMILES of the valid rows
    props: dict[str, np.ndarray] = field(default_factory=dict)  # one float per valid row
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (1-based data row, text) RDKit rejected
    source: str = ""

    def __len__(self) -> int:
        return len(self.smiles)

    def subset(self, index) -> Molecules:
        index = np.asarray(index, dtype=np.int64)
        return Molecules(
            [self.smiles[i] for i in index], {k: v[index] for k, v in self.props.items()}, self.invalid, self.source
        )

    def sample(self, n: int, seed: int = 0) -> Molecules:
        """A seeded random subset of n molecules (all of them when n >= len)."""
        if n >= len(self):
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False)))


def _open_text(path: Path):
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return io.StringIO(raw.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as e:
        raise VaekitError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None


def read_csv(
    path,
    column: str | None = None,
    properties=(),
    *,
    limit: int | None = None,
    seed: int = 0,
    canonicalise: bool = True,
) -> Molecules:
    """Read SMILES (and numeric property columns) from a CSV file, plain or gzipped.

    `column` defaults to the header cell called "smiles" in any case.  `limit` keeps a seeded random
    subset of that many rows before canonicalisation (the MOSES training split has 1.58 M rows).
    """
    path = Path(path)
    if not path.is_file():
        raise VaekitError(f"{path}: no such file")
    rows = list(csv.reader(_open_text(path)))
    if not rows:
        raise VaekitError(f"{path}: the file is empty")
    header = [h.strip() for h in rows[0]]
    if column is None:
        column = next((h for h in header if h.lower() == "smiles"), None)
        if column is None:
            raise VaekitError(f"{path}: no SMILES column in the header {header}; name one with column=")
    missing = [c for c in (column, *properties) if c not in header]
    if missing:
        raise VaekitError(f"{path}: column {missing[0]!r} not in the header {header}")
    body = rows[1:]
    if not body:
        raise VaekitError(f"{path}: the {column!r} column is empty (no data rows)")
    numbers = np.arange(2, len(body) + 2)  # file line numbers of data rows (header is line 1)
    if limit is not None and limit < len(body):
        keep = np.sort(np.random.default_rng(seed).choice(len(body), limit, replace=False))
        body, numbers = [body[i] for i in keep], numbers[keep]
    ci, pi = header.index(column), [header.index(p) for p in properties]
    props: dict[str, list[float]] = {p: [] for p in properties}
    smiles, invalid = [], []
    canon = _canonical() if canonicalise else (lambda s: s or None)
    for line, row in zip(numbers, body):
        text = row[ci].strip() if ci < len(row) else ""
        c = canon(text) if text else None
        if c is None:
            invalid.append((int(line), text))
            continue
        smiles.append(c)
        for p, j in zip(properties, pi):
            try:
                props[p].append(float(row[j]))
            except (ValueError, IndexError):
                raise VaekitError(
                    f"{path}: line {line}: column {p!r} is not a number: {row[j] if j < len(row) else ''!r}"
                ) from None
    if not smiles:
        raise VaekitError(f"{path}: none of the {len(body)} SMILES in column {column!r} is a valid molecule")
    return Molecules(smiles, {p: np.asarray(v, dtype=np.float64) for p, v in props.items()}, invalid, str(path))


def _canonical():
    try:
        from ..chem.props import canonical
    except ImportError as e:  # RDKit missing
        raise VaekitError(f"reading molecules needs RDKit: pip install 'vaekit[chem]' ({e})") from None
    return canonical


def moses_path(split: str = "train", data_dir=None) -> Path:
    if split not in MOSES_SPLITS:
        raise VaekitError(f"MOSES split must be one of {', '.join(MOSES_SPLITS)}, got {split!r}")
    path = data_root(data_dir) / "moses" / f"{split}.csv.gz"
    if not path.is_file():
        raise VaekitError(f"{path}: not found; run `vaekit data fetch moses` (or set VAEKIT_DATA)")
    verify_known("moses", path)
    return path


def load_molecules(spec: str, split: str = "train", data_dir=None, **kw) -> Molecules:
    """ "moses" (split train/test/test_scaffolds), "zinc250k" (with its logP, qed, SAS columns) or a CSV path."""
    if spec == "moses":
        return read_csv(moses_path(split, data_dir), "SMILES", **kw)
    if spec == "zinc250k":
        path = data_root(data_dir) / "zinc250k" / ZINC250K_FILE
        if not path.is_file():
            raise VaekitError(f"{path}: not found; run `vaekit data fetch zinc250k`")
        verify_known("zinc250k", path)
        return read_csv(path, "smiles", kw.pop("properties", ("logP", "qed", "SAS")), **kw)
    return read_csv(spec, **kw)
