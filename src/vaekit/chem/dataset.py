"""Molecules ready for the chemical VAE: canonical SMILES with logP, QED and SA scores, cached.

    mols = scored("moses", "train", limit=200_000)      # scores computed once, then read from the cache
    model = chem_model(mols, kind="selfies", latent_dim=56)
    x = model.items(mols.smiles, mols.props)            # rows for vaekit.train.fit

Scoring 200,000 molecules takes about 7 CPU-minutes (QED dominates), so the result is cached as
.npz under `vaekit.data.core.cache_root()/molecules/`, keyed by the source file's SHA-256 (not its path or
timestamp), the row limit and the seed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..data.core import cache_root
from ..data.smiles import Molecules, load_molecules
from ..errors import VaekitError
from ..io import UNREADABLE, cached, load_npz, save_npz

PROPERTIES = ("logP", "QED", "SAS")
# the ChemVAE config fields that the training molecules set (data_fields), which shape the model's weights
DATA_FIELDS = ("tokens", "kind", "max_len", "properties", "prop_mean", "prop_std")


def _key(spec: str, split: str, data_dir, limit, seed) -> str:
    from ..data.core import data_root
    from ..data.download import sha256_file
    from ..data.smiles import ZINC250K_FILE, moses_path

    if spec == "moses":
        path = moses_path(split, data_dir)
    elif spec == "zinc250k":
        path = data_root(data_dir) / "zinc250k" / ZINC250K_FILE
    else:
        path = Path(spec)
    # by content, not by path or timestamp: a copied or re-extracted data folder keeps its cache
    content = sha256_file(path) if path.is_file() else "missing"
    ident = f"{content}|{split}|{limit}|{seed}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def scored(
    spec: str = "moses",
    split: str = "train",
    data_dir=None,
    *,
    limit: int | None = None,
    seed: int = 0,
    cache: bool = True,
    n_jobs: int = 1,
) -> Molecules:
    """Molecules from `spec` (see data.smiles.load_molecules) with PROPERTIES computed by RDKit (in `n_jobs`
    processes; the cache does not depend on it).  Reading the cache needs no RDKit."""

    def score() -> Molecules:
        from .props import properties

        mols = load_molecules(spec, split, data_dir, limit=limit, seed=seed)
        props = properties(mols.smiles, n_jobs=n_jobs)
        bad = ~np.all([np.isfinite(props[p]) for p in PROPERTIES], 0)
        if bad.any():  # parsed by RDKit but not scorable: count them with the invalid ones
            i = np.flatnonzero(bad)
            mols.invalid += [(-1, mols.smiles[j]) for j in i]
            mols = mols.subset(np.flatnonzero(~bad))
            props = {p: v[~bad] for p, v in props.items()}
        mols.props.update({p: np.asarray(props[p], dtype=np.float64) for p in PROPERTIES})
        return mols

    return cached(_path(spec, split, data_dir, limit, seed), score, _save, _load, use=cache)


def unscored(
    spec: str = "moses", split: str = "train", data_dir=None, *, limit: int | None = None, seed: int = 0
) -> Molecules:
    """The molecules `scored` gives for the same arguments, for work that needs no properties (the codes an
    ex-post sampler is fitted on: the encoder reads the tokens alone): from `scored`'s cache when it holds them,
    else read and canonicalised without scoring (the 1.58 M MOSES training molecules: about 2 CPU-minutes,
    against half an hour to score them).  Uncached, a molecule RDKit reads but cannot score stays in (MOSES
    has none)."""
    path = _path(spec, split, data_dir, limit, seed)
    if path.is_file():
        try:
            return _load(path)
        except UNREADABLE:
            pass
    return load_molecules(spec, split, data_dir, limit=limit, seed=seed)


def _path(spec: str, split: str, data_dir, limit, seed) -> Path:
    name = f"{spec.replace('/', '_')[-40:]}-{split}-{_key(spec, split, data_dir, limit, seed)}.npz"
    return cache_root() / "molecules" / name


def _save(path: Path, mols: Molecules) -> None:
    save_npz(
        path,
        {
            "smiles": np.array(mols.smiles, dtype=str),
            "source": np.array(mols.source),
            "invalid_line": np.array([n for n, _ in mols.invalid], dtype=np.int64),
            "invalid_text": np.array([t for _, t in mols.invalid], dtype=str),
            **{p: mols.props[p] for p in PROPERTIES},
        },
        compressed=True,  # SMILES as fixed-width UTF-32: the MOSES train split's 400 MB become 50 MB
    )


def _load(path: Path) -> Molecules:
    z = load_npz(path)
    invalid = [(int(n), str(t)) for n, t in zip(z["invalid_line"], z["invalid_text"])]
    return Molecules([str(s) for s in z["smiles"]], {p: z[p] for p in PROPERTIES}, invalid, str(z["source"]))


def data_fields(
    mols: Molecules, kind: str = "smiles", max_len: int | None = None, properties=PROPERTIES, conv_kernels=None
) -> dict:
    """The ChemVAE config fields that come from the data: vocabulary, max_len, property standardisation."""
    from ..models.chemvae import ChemVAE, standardisation
    from .vocab import Vocab

    missing = [p for p in properties if p not in mols.props]
    if missing:
        raise VaekitError(
            f"molecules from {mols.source or 'the data'} have no property {missing[0]!r}; "
            f"score them with chem.dataset.scored"
        )
    vocab = Vocab.build(mols.smiles, kind, max_len)
    reach = sum(k - 1 for k in (conv_kernels or ChemVAE.Config.conv_kernels)) + 1
    if max_len is None and vocab.max_len < reach:  # short molecules: pad rows to the convolutions' reach
        vocab = Vocab(vocab.tokens, kind, reach)
    mean, std = standardisation(mols.props, properties)
    return dict(zip(DATA_FIELDS, (tuple(vocab.tokens), kind, vocab.max_len, tuple(properties), mean, std)))


def chem_model(mols: Molecules, kind: str = "smiles", max_len: int | None = None, properties=PROPERTIES, **config):
    """A ChemVAE whose vocabulary and property standardisation come from `mols`."""
    from ..models import build

    return build("chemvae", **data_fields(mols, kind, max_len, properties, config.get("conv_kernels")), **config)
