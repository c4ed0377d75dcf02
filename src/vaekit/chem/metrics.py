"""How good are generated molecules? Validity, uniqueness, novelty, the MOSES metrics, and the two VAE protocols.

Definitions follow the MOSES benchmark (Polykovskiy et al. 2020, "Molecular Sets (MOSES)", Front. Pharmacol.
11:565644; its reference code is the `molsets` package, which we do not need):

- valid: fraction of generated strings RDKit parses; every later metric uses the *valid* molecules only
  (duplicates kept, as in MOSES), except unique@k and novelty which count distinct canonical SMILES.
- unique@k: distinct canonical SMILES among the first k valid molecules, divided by k.
- FCD/Test: Fréchet distance between Gaussians fitted to ChemNet's penultimate activations (fcd-torch).
- SNN/Test: mean over generated molecules of the largest Tanimoto similarity to a reference molecule
  (Morgan radius 2, 1024 bits).
- Frag/Test, Scaf/Test: cosine similarity of BRICS-fragment counts / Bemis–Murcko scaffold counts
  (scaffolds with fewer than 2 rings are not counted, as in MOSES).
- IntDiv_p: 1 - mean over generated x of (mean over generated y of T(x, y)^p)^(1/p); the mean includes x = y.
- Novelty: fraction of distinct valid generated molecules absent from the training set. We canonicalise the
  training set too (a few hundred MOSES training SMILES are not canonical under today's RDKit).
- Filters: fraction of valid generated molecules that pass the filters the MOSES data set was built with
  (`chem.filters`: allowed elements, no charge, no ring over 7 atoms, no MCF or PAINS match).
- logP, SA, QED, weight: Wasserstein-1 distance between the property's values over the valid generated
  molecules and over the reference set (Crippen logP, Ertl's SA score, QED, molecular weight in daltons).
- .../TestSF: FCD, SNN, Frag and Scaf against MOSES's scaffold test split, whose Bemis–Murcko scaffolds occur
  in neither the train nor the test split: how far a model goes beyond the scaffolds it was shown.

Reference statistics (ChemNet mean/covariance, fingerprints, fragment and scaffold counts of the test set) are
computed once and cached as .npz under `vaekit.data.core.cache_root()/chem`.

The two VAE protocols take callables, so any model plugs in:
`reconstruction_accuracy(encode, decode, smiles)` (JT-VAE, Jin et al. 2018, Table 1) and
`prior_validity(sample_z, decode)` (GVAE, Kusner et al. 2017; JT-VAE Table 1).
"""

from __future__ import annotations

import gzip
import hashlib
import math
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
import torch
from rdkit import Chem
from rdkit.Chem import QED, AllChem, Crippen, Descriptors, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

from ..errors import VaekitError
from ..frechet import frechet_distance
from ..io import atomic_write, cached, load_npz, save_npz
from . import filters
from .props import _sascorer, canonical, canonical_all, mol

FP_RADIUS, FP_BITS = 2, 1024
FCD_CHUNK = 8192  # molecules per fcd-torch subprocess
FCD_IN_PROCESS_MAX = 2048  # up to this many molecules, ChemNet runs in this process
_CACHE_VERSION = "1"


# ---------------------------------------------------------------------------------------------- counting


def _as_list(smiles, name: str = "smiles") -> list:
    if isinstance(smiles, str):
        raise VaekitError(f"{name}: expected a list of SMILES strings, got one string {smiles[:40]!r}")
    smiles = list(smiles)
    if not smiles:
        raise VaekitError(f"{name}: the list of SMILES is empty")
    return smiles


def validity(smiles: Iterable[str]) -> float:
    """Fraction of strings that RDKit parses into a molecule (empty strings count as invalid)."""
    smiles = _as_list(smiles)
    return sum(c is not None for c in canonical_all(smiles)) / len(smiles)


def invalid_reasons(smiles: Iterable[str]) -> dict[str, int]:
    """Why the strings RDKit does not read are invalid, counted: "syntax" (it cannot parse them: an unclosed
    ring or branch, a stray symbol, a string cut off at the decoder's length), "aromaticity" (an aromatic
    ring it cannot kekulize), "valence" (an atom with too many bonds) and "other" (any other refusal).
    The keys are always all four; valid strings are not counted."""
    counts = dict.fromkeys(("syntax", "aromaticity", "valence", "other"), 0)
    for s, c in zip(smiles := _as_list(smiles), canonical_all(smiles)):
        if c is not None:
            continue
        mol = Chem.MolFromSmiles(s, sanitize=False) if s else None
        if mol is None:
            counts["syntax"] += 1
            continue
        try:
            Chem.SanitizeMol(mol)
            counts["other"] += 1  # sanitizes, yet does not read back (a canonical string RDKit refuses)
        except (Chem.rdchem.KekulizeException, Chem.rdchem.AtomKekulizeException):
            counts["aromaticity"] += 1
        except Chem.rdchem.AtomValenceException:
            counts["valence"] += 1
        except Exception:  # RDKit's other sanitization errors
            counts["other"] += 1
    return counts


def uniqueness(smiles: Iterable[str], k: int | None = None) -> float:
    """unique@k: distinct canonical SMILES among the first `k` valid strings, divided by their number.

    With k=None all valid strings are used. If fewer than k are valid, the fraction is over those (with a
    warning, as MOSES does). NaN when nothing is valid."""
    valid = [c for c in canonical_all(_as_list(smiles)) if c is not None]
    if k is not None:
        if k < 1:
            raise VaekitError(f"uniqueness: k must be a positive integer, got {k}")
        if len(valid) < k:
            warnings.warn(f"unique@{k}: only {len(valid)} valid molecules", stacklevel=2)
        valid = valid[:k]
    return len(set(valid)) / len(valid) if valid else math.nan


def _key(strings: Sequence[str], tag: str) -> str:
    h = hashlib.sha256(f"{tag}:{_CACHE_VERSION}:{FP_RADIUS}:{FP_BITS}\n".encode())
    for s in strings:
        h.update(str(s).encode())
        h.update(b"\n")
    return h.hexdigest()[:20]


def _cache_dir() -> Path:
    from ..data.core import cache_root

    return cache_root() / "chem"


def _save_set(path: Path, strings: set) -> None:
    with atomic_write(path) as tmp, gzip.open(tmp, "wt") as f:
        f.write("\n".join(sorted(strings)))


def _load_set(path: Path) -> set[str]:
    with gzip.open(path, "rt") as f:
        return set(f.read().split("\n")) - {""}


def canonical_set(smiles: Iterable[str], *, n_jobs: int = 1, cache: bool = True) -> set[str]:
    """Set of canonical SMILES of the valid strings; for 10,000 strings or more, cached on disk by content."""
    smiles = list(smiles)
    return cached(
        _cache_dir() / f"canonical-{_key(smiles, 'canonical')}.txt.gz",
        lambda: {c for c in _map(canonical, smiles, n_jobs) if c is not None},
        _save_set,
        _load_set,
        use=cache and len(smiles) >= 10_000,
    )


def novelty(gen: Iterable[str], train: Iterable[str] | set, *, n_jobs: int = 1) -> float:
    """Fraction of distinct valid generated molecules whose canonical SMILES is not in the (canonicalised)
    training set. `train` may be a list of SMILES or the set returned by `canonical_set`. NaN if none valid."""
    gen_set = {c for c in canonical_all(_as_list(gen, "gen")) if c is not None}
    train_set = train if isinstance(train, (set, frozenset)) else canonical_set(train, n_jobs=n_jobs)
    return len(gen_set - train_set) / len(gen_set) if gen_set else math.nan


# ------------------------------------------------------------------------------------ per-molecule features

_FP_GEN = None


def _fingerprint(m) -> np.ndarray:
    global _FP_GEN
    if _FP_GEN is None:
        _FP_GEN = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)
    return _FP_GEN.GetFingerprintAsNumPy(m).astype(np.uint8)


def _fragments(m) -> list[str]:
    """BRICS fragments: break the molecule's BRICS bonds (dummy atoms mark the cuts), one SMILES per piece."""
    return Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(m)).split(".")


def _scaffold(m, min_rings: int = 2) -> str | None:
    """Bemis–Murcko scaffold SMILES, or None when it has fewer than `min_rings` rings."""
    try:
        s = MurckoScaffold.GetScaffoldForMol(m)
    except (ValueError, RuntimeError):
        return None
    smi = Chem.MolToSmiles(s)
    return smi if smi and s.GetRingInfo().NumRings() >= min_rings else None


def _features(smiles: str):
    """(canonical SMILES, fingerprint, fragments, scaffold) of one string, or None if invalid."""
    m = mol(smiles)
    if m is None:
        return None
    return Chem.MolToSmiles(m, isomericSmiles=True), _fingerprint(m), _fragments(m), _scaffold(m)


PROPERTIES = ("logP", "SA", "QED", "weight")  # MOSES's property distances, in its order


def _property_values(m) -> tuple[float, ...]:
    """PROPERTIES of one RDKit molecule, NaN where RDKit cannot score it."""
    out = []
    for f in (Crippen.MolLogP, _sascorer().calculateScore, QED.qed, Descriptors.MolWt):
        try:
            out.append(float(f(m)))
        except Exception:  # a parsed molecule RDKit cannot score (odd valences after sanitising)
            out.append(math.nan)
    return tuple(out)


def moses_properties(smiles: str) -> tuple[float, ...]:
    """PROPERTIES of one valid SMILES, NaN where RDKit cannot score it."""
    return _property_values(mol(smiles))


def _quality(smiles: str) -> tuple[tuple[float, ...], bool]:
    """PROPERTIES of one valid SMILES and whether it passes MOSES's filters (the string parsed once)."""
    m = mol(smiles)
    return _property_values(m), filters.failed(m) is None


def _wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import wasserstein_distance

    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(wasserstein_distance(a, b)) if len(a) and len(b) else math.nan


def _map(f, items, n_jobs: int):
    if n_jobs == 1 or len(items) < 2000:
        return [f(x) for x in items]
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(n_jobs) as pool:
        return pool.map(f, items, chunksize=1000)


def fingerprints(smiles: Iterable[str], *, n_jobs: int = 1) -> np.ndarray:
    """Morgan fingerprints (radius 2, 1024 bits) as a uint8 array (n, 1024); invalid strings raise VaekitError."""
    smiles = list(smiles)
    out = np.zeros((len(smiles), FP_BITS), np.uint8)
    for i, (s, m) in enumerate(zip(smiles, _map(mol, smiles, 1))):
        if m is None:
            raise VaekitError(f"fingerprints: item {i} is not a valid SMILES: {s!r}")
        out[i] = _fingerprint(m)
    return out


# ---------------------------------------------------------------------------------------- similarities


def _tanimoto_reduce(
    a: np.ndarray, b: np.ndarray, *, powers=(1,), agg: str = "max", chunk_a: int = 4096, chunk_b: int = 16384
) -> list[np.ndarray]:
    """For each row of `a` (uint8 bits), aggregate Tanimoto similarities to all rows of `b`.

    agg "max": max_j T(a_i, b_j); agg "mean": mean_j T(a_i, b_j)^p for each p in `powers`.
    Intersections come from a sparse (a) x dense (b^T) product: Morgan bits are ~4 % dense. Two all-zero
    fingerprints have similarity 1 (MOSES's convention for 0/0)."""
    a_sp = scipy.sparse.csr_matrix(a.astype(np.float32))
    na = np.asarray(a.sum(1), np.float32)[:, None]
    out = [np.zeros(len(a)) if agg == "mean" else np.full(len(a), -np.inf) for _ in powers]
    for j in range(0, len(b), chunk_b):
        bj = b[j : j + chunk_b]
        bt = np.ascontiguousarray(bj.T, dtype=np.float32)
        nb = bt.sum(0)[None, :]
        for i in range(0, len(a), chunk_a):
            inter = np.asarray(a_sp[i : i + chunk_a] @ bt)
            union = na[i : i + chunk_a] + nb - inter
            with np.errstate(invalid="ignore", divide="ignore"):
                t = np.where(union > 0, inter / union, np.float32(1.0))  # float32; sums below in float64
            for k, p in enumerate(powers):
                if agg == "max":
                    out[k][i : i + chunk_a] = np.maximum(out[k][i : i + chunk_a], t.max(1))
                else:
                    out[k][i : i + chunk_a] += (t if p == 1 else t**p).sum(1, dtype=np.float64)
    if agg == "mean":
        out = [o / len(b) for o in out]
    return out


def _fps_of(x, name: str) -> np.ndarray:
    if isinstance(x, dict):
        return x["fps"]
    if isinstance(x, np.ndarray):
        return x
    return fingerprints(_valid_only(x, name))


def _valid_only(smiles, name: str) -> list[str]:
    smiles = _as_list(smiles, name)
    valid = [c for c in canonical_all(smiles) if c is not None]
    if not valid:
        raise VaekitError(f"{name}: none of the {len(smiles)} SMILES is valid")
    return valid


def snn(gen, ref) -> float:
    """Similarity to nearest neighbour: mean over valid `gen` of max Tanimoto similarity to `ref`.

    `gen`, `ref`: lists of SMILES (invalid ones dropped), fingerprint arrays, or `reference_stats` dicts."""
    return float(_tanimoto_reduce(_fps_of(gen, "gen"), _fps_of(ref, "ref"), agg="max")[0].mean())


def int_div(gen, p: int = 1) -> float:
    """Internal diversity 1 - mean_x (mean_y T(x, y)^p)^(1/p) over the valid molecules of `gen` (pairs x = y
    included, as MOSES does; so a set of n distinct molecules has IntDiv at most 1 - 1/n)."""
    fps = _fps_of(gen, "gen")
    m = _tanimoto_reduce(fps, fps, powers=(p,), agg="mean")[0]
    return float(1 - (m ** (1 / p)).mean())


def _cosine(a: Counter, b: Counter) -> float:
    if not a or not b:
        return math.nan
    keys = sorted(set(a) | set(b))
    u = np.array([a.get(k, 0) for k in keys], np.float64)
    v = np.array([b.get(k, 0) for k in keys], np.float64)
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


def _counts_of(x, part: str, name: str) -> Counter:
    if isinstance(x, dict):
        return x[part]
    if isinstance(x, Counter):
        return x
    feats = [f for f in _map(_features, _valid_only(x, name), 1) if f is not None]
    if part == "frag":
        return Counter(fr for f in feats for fr in f[2])
    return Counter(f[3] for f in feats if f[3] is not None)


def frag(gen, ref) -> float:
    """Cosine similarity of BRICS-fragment count vectors of `gen` and `ref` (SMILES lists or stats dicts)."""
    return _cosine(_counts_of(gen, "frag", "gen"), _counts_of(ref, "frag", "ref"))


def scaf(gen, ref) -> float:
    """Cosine similarity of Bemis–Murcko scaffold count vectors (scaffolds with >= 2 rings)."""
    return _cosine(_counts_of(gen, "scaf", "gen"), _counts_of(ref, "scaf", "ref"))


# ------------------------------------------------------------------------------------------------- FCD


def _fcd_moments(smiles: list[str], device: str = "cpu") -> tuple[int, np.ndarray, np.ndarray]:
    """(n, sum, sum of outer products) of ChemNet's penultimate-layer activations, in float64."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fcd_torch import FCD

        model = FCD(device=device, n_jobs=1, batch_size=512)
        act = model.get_predictions(smiles).astype(np.float64)
    return len(act), act.sum(0), act.T @ act


def _fcd_worker(in_path: str, out_path: str, device: str = "cpu") -> None:
    """Child-process entry: moments of the SMILES in `in_path` (one a line) written to `out_path`."""
    torch.set_num_threads(1)
    n, s, ss = _fcd_moments(Path(in_path).read_text().split("\n"), device)
    save_npz(out_path, {"n": np.array(n), "s": s, "ss": ss})


def fcd_stats(
    smiles: Iterable[str],
    *,
    n_jobs: int = 1,
    device: str = "cpu",
    chunk: int | None = None,
    in_process_max: int | None = None,
    resume_dir: Path | None = None,
) -> dict[str, np.ndarray]:
    """Mean and covariance (ddof=1) of ChemNet activations of the valid molecules of `smiles`.

    fcd-torch's model can hold on to memory across calls, so beyond `in_process_max` (FCD_IN_PROCESS_MAX)
    molecules each chunk of `chunk` (FCD_CHUNK) molecules runs in a fresh Python subprocess (`n_jobs` at once)
    that returns the activations' sums and sums of outer products. With `resume_dir`, each chunk's moments are
    kept there (named by the chunk's content), so an interrupted run over a large set resumes where it stopped."""
    valid = _valid_only(smiles, "smiles")
    if len(valid) < 2:
        raise VaekitError(f"FCD needs at least 2 valid molecules, got {len(valid)}")
    chunk = FCD_CHUNK if chunk is None else chunk
    if len(valid) <= (FCD_IN_PROCESS_MAX if in_process_max is None else in_process_max):
        count, total, outer = _fcd_moments(valid, device)
        mean = total / count
        return {"mu": mean, "sigma": (outer - count * np.outer(mean, mean)) / (count - 1), "n": np.array(count)}
    chunks = [valid[i : i + chunk] for i in range(0, len(valid), chunk)]
    code = "import sys; from vaekit.chem.metrics import _fcd_worker; _fcd_worker(*sys.argv[1:])"
    n = 0
    s: Any = 0.0  # the sums over the chunks: arrays once the first chunk is in
    ss: Any = 0.0
    with tempfile.TemporaryDirectory(prefix="vaekit-fcd-") as tmp:
        running: list[tuple[subprocess.Popen, Path]] = []

        def collect(proc: subprocess.Popen, out: Path):
            nonlocal n, s, ss
            proc.wait()
            if proc.returncode != 0 or not out.exists():
                err = out.with_suffix(".err").read_text(errors="replace")
                tail = err.strip().splitlines()[-1:] or ["no output"]
                raise VaekitError(f"FCD subprocess failed (exit {proc.returncode}): {tail[0]}")
            with np.load(out) as z:
                n, s, ss = n + int(z["n"]), s + z["s"], ss + z["ss"]

        for i, c in enumerate(chunks):
            src, out = Path(tmp) / f"in{i}.txt", Path(tmp) / f"out{i}.npz"
            if resume_dir is not None:
                out = Path(resume_dir) / f"fcd-part-{_key(c, 'fcd-part')}.npz"
                if out.exists():
                    with np.load(out) as z:
                        n, s, ss = n + int(z["n"]), s + z["s"], ss + z["ss"]
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
            src.write_text("\n".join(c))
            if len(running) >= n_jobs:
                collect(*running.pop(0))
            with open(out.with_suffix(".err"), "wb") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-c", code, str(src), str(out), device], stdout=subprocess.DEVNULL, stderr=err
                )
            running.append((proc, out))
        for proc, out in running:
            collect(proc, out)
    mu = s / n
    sigma = (ss - n * np.outer(mu, mu)) / (n - 1)
    return {"mu": mu, "sigma": sigma, "n": np.array(n)}


def fcd(gen, ref, *, n_jobs: int = 1, device: str = "cpu") -> float:
    """Fréchet ChemNet Distance between valid `gen` and `ref` (either may be a SMILES list or an
    `fcd_stats`/`reference_stats` dict with "mu" and "sigma")."""
    g = gen if isinstance(gen, dict) else fcd_stats(gen, n_jobs=n_jobs, device=device)
    r = ref if isinstance(ref, dict) else fcd_stats(ref, n_jobs=n_jobs, device=device)
    return frechet_distance(r["mu"], r["sigma"], g["mu"], g["sigma"])


# ------------------------------------------------------------------------------------ reference statistics


def _counter_arrays(c: Counter, prefix: str) -> dict[str, np.ndarray]:
    keys = sorted(c)
    return {f"{prefix}_keys": np.array(keys, dtype=str), f"{prefix}_counts": np.array([c[k] for k in keys], np.int64)}


def _counter_from(z, prefix: str) -> Counter:
    return Counter(dict(zip(z[f"{prefix}_keys"].tolist(), z[f"{prefix}_counts"].tolist())))


def _rdkit_stats(valid: list[str], n_jobs: int) -> dict:
    feats = _map(_features, valid, n_jobs)
    fps = np.stack([f[1] for f in feats]) if feats else np.zeros((0, FP_BITS), np.uint8)
    return {
        "fps": fps,
        "frag": Counter(fr for f in feats for fr in f[2]),
        "scaf": Counter(f[3] for f in feats if f[3] is not None),
    }


def reference_stats(
    smiles: Iterable[str], *, n_jobs: int = 1, fcd: bool = True, cache: bool = True, device: str = "cpu"
) -> dict:
    """Everything the MOSES metrics need about a reference set, cached under cache_root()/chem by content.

    Returns {"fps": uint8 (n, 1024), "frag": Counter, "scaf": Counter, "props": float (n, 4) (PROPERTIES),
    "n": int} plus "mu", "sigma" when `fcd`. The ChemNet part of 176k MOSES test molecules takes ~20 min on
    one CPU core, the rest ~10 min."""
    valid = _valid_only(smiles, "ref")
    key = _key(valid, "ref")
    d = _cache_dir()
    out: dict = {"n": len(valid)}
    rdkit_part: dict = cached(
        d / f"ref-{key}-rdkit.npz", lambda: _rdkit_stats(valid, n_jobs), _save_rdkit, _load_rdkit, use=cache
    )
    out.update(rdkit_part)
    out["props"] = cached(
        d / f"ref-{key}-props.npz",
        lambda: {"props": np.array(_map(moses_properties, valid, n_jobs), np.float64).reshape(-1, len(PROPERTIES))},
        save_npz,
        lambda p: load_npz(p, ("props",)),
        use=cache,
    )["props"]
    if fcd:
        parts = d / "parts" / key  # chunk moments of an interrupted run, removed once the total is saved

        def moments():
            st = fcd_stats(valid, n_jobs=n_jobs, device=device, resume_dir=parts if cache else None)
            return {"mu": st["mu"], "sigma": st["sigma"]}

        fcd_part: dict = cached(
            d / f"ref-{key}-fcd.npz", moments, save_npz, lambda p: load_npz(p, ("mu", "sigma")), use=cache
        )
        out.update(fcd_part)
        if cache:
            shutil.rmtree(parts, ignore_errors=True)
    return out


def _save_rdkit(path: Path, st: dict) -> None:
    save_npz(
        path,
        {
            "fps_packed": np.packbits(st["fps"], axis=1),
            **_counter_arrays(st["frag"], "frag"),
            **_counter_arrays(st["scaf"], "scaf"),
        },
    )


def _load_rdkit(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {
            "fps": np.unpackbits(z["fps_packed"], axis=1, count=FP_BITS),
            "frag": _counter_from(z, "frag"),
            "scaf": _counter_from(z, "scaf"),
        }


def moses_metrics(
    gen: Sequence[str],
    test,
    train=None,
    *,
    n_jobs: int = 1,
    k=(1000, 10000),
    device: str = "cpu",
    with_fcd: bool = True,
    test_sf=None,
) -> dict[str, float]:
    """The MOSES table row for generated strings `gen` against `test` (SMILES list or `reference_stats` dict).

    Keys: valid, unique@k for each k, FCD/Test, SNN/Test, Frag/Test, Scaf/Test, the same four against
    `test_sf` (MOSES's scaffold test split, SMILES list or `reference_stats` dict) as .../TestSF when it is
    given, IntDiv, IntDiv2, Filters, the property distances logP, SA, QED, weight (against `test`), and
    Novelty when `train` (SMILES list or `canonical_set`) is given; the FCDs are left out when not `with_fcd`
    (ChemNet is the slow part: ~7 ms a molecule on one CPU core). MOSES scores 30,000 samples."""
    gen = _as_list(gen, "gen")
    canon = _map(canonical, gen, n_jobs)
    # valid: RDKit parses the string and reads back the canonical SMILES it writes for it (a few exotic
    # decodings do not round-trip; the statistics below are computed from the canonical strings)
    valid = [c for c in canon if c is not None and mol(c) is not None]
    out = {"valid": len(valid) / len(gen)}
    if not valid:
        raise VaekitError(f"gen: none of the {len(gen)} generated strings is a valid molecule")
    for kk in k if isinstance(k, (list, tuple)) else [k]:
        if len(valid) < kk:
            warnings.warn(f"unique@{kk}: only {len(valid)} valid molecules", stacklevel=2)
        out[f"unique@{kk}"] = len(set(valid[:kk])) / len(valid[:kk])
    given = {"Test": ("test", test)} if test_sf is None else {"Test": ("test", test), "TestSF": ("test_sf", test_sf)}
    refs = {}
    for name, (arg, r) in given.items():
        refs[name] = r if isinstance(r, dict) else reference_stats(r, n_jobs=n_jobs, device=device, fcd=with_fcd)
        if (with_fcd and "mu" not in refs[name]) or "fps" not in refs[name] or "props" not in refs[name]:
            raise VaekitError(f"{arg}: reference statistics lack a part; build them with reference_stats(smiles)")
    g = _rdkit_stats(valid, n_jobs)
    g_fcd = fcd_stats(valid, n_jobs=n_jobs, device=device) if with_fcd and len(valid) >= 2 else None
    for name, ref in refs.items():
        if with_fcd:
            out[f"FCD/{name}"] = math.nan if g_fcd is None else fcd(g_fcd, ref)
        out[f"SNN/{name}"] = float(_tanimoto_reduce(g["fps"], ref["fps"], agg="max")[0].mean())
        out[f"Frag/{name}"] = _cosine(g["frag"], ref["frag"])
        out[f"Scaf/{name}"] = _cosine(g["scaf"], ref["scaf"])
    m1, m2 = _tanimoto_reduce(g["fps"], g["fps"], powers=(1, 2), agg="mean")
    out["IntDiv"] = float(1 - m1.mean())
    out["IntDiv2"] = float(1 - np.sqrt(m2).mean())
    quality = _map(_quality, valid, n_jobs)
    out["Filters"] = float(np.mean([ok for _, ok in quality]))
    props = np.array([p for p, _ in quality], np.float64)
    for j, name in enumerate(PROPERTIES):
        out[name] = _wasserstein(props[:, j], refs["Test"]["props"][:, j])
    if train is not None:
        train_set = train if isinstance(train, (set, frozenset)) else canonical_set(train, n_jobs=n_jobs)
        distinct = set(valid)
        out["Novelty"] = len(distinct - train_set) / len(distinct)
    return out


# ------------------------------------------------------------------------------------------ VAE protocols


def _decoded(decode, z: torch.Tensor, what: str) -> list[str]:
    out = list(decode(z))
    if len(out) != len(z):
        raise VaekitError(f"{what}: decode returned {len(out)} strings for {len(z)} codes")
    return out


def reconstruction_accuracy(
    encode: Callable[[list[str]], torch.Tensor],
    decode: Callable[[torch.Tensor], list[str]],
    smiles: Sequence[str],
    n_encode: int = 10,
    n_decode: int = 10,
    batch_size: int = 1000,
) -> float:
    """JT-VAE Table 1 protocol: each molecule is encoded `n_encode` times (sampled codes), each code decoded
    `n_decode` times (sampled strings); the score is the fraction of all decodings whose canonical SMILES equals
    the input's. `encode(list[str]) -> Tensor (n, d)` samples one code per string; `decode(Tensor (n, d)) ->
    list[str]` samples one string per code. About `batch_size` decodings are made per `decode` call."""
    smiles = _as_list(smiles)
    target = canonical_all(smiles)
    for i, (s, c) in enumerate(zip(smiles, target)):
        if c is None:
            raise VaekitError(f"reconstruction_accuracy: input {i} is not a valid SMILES: {s!r}")
    if n_encode < 1 or n_decode < 1:
        raise VaekitError(f"reconstruction_accuracy: n_encode and n_decode must be >= 1, got {n_encode}, {n_decode}")
    per_batch = max(1, batch_size // (n_encode * n_decode))
    hits = total = 0
    for i in range(0, len(smiles), per_batch):
        batch = [s for s in smiles[i : i + per_batch] for _ in range(n_encode)]
        z = torch.as_tensor(encode(batch))
        if z.dim() != 2 or len(z) != len(batch):
            raise VaekitError(
                f"reconstruction_accuracy: encode returned shape {tuple(z.shape)} for {len(batch)} strings"
            )
        out = _decoded(decode, z.repeat_interleave(n_decode, dim=0), "reconstruction_accuracy")
        want = [c for c in target[i : i + per_batch] for _ in range(n_encode * n_decode)]
        hits += sum(canonical(o) == w for o, w in zip(out, want))
        total += len(out)
    return hits / total


def prior_validity(
    sample_z: Callable[[int], torch.Tensor],
    decode: Callable[[torch.Tensor], list[str]],
    n_z: int = 1000,
    n_decode: int = 100,
    train=None,
    batch_size: int = 1000,
) -> dict[str, float]:
    """GVAE/JT-VAE protocol: draw `n_z` codes from the prior, decode each `n_decode` times.

    Returns {"valid": fraction of the n_z * n_decode decodings that are molecules, "unique": distinct canonical
    molecules / valid decodings, "n": number of decodings} and "novel" (fraction of the distinct valid ones not in
    `train`) when `train` is given."""
    if n_z < 1 or n_decode < 1:
        raise VaekitError(f"prior_validity: n_z and n_decode must be >= 1, got {n_z}, {n_decode}")
    z = torch.as_tensor(sample_z(n_z))
    if z.dim() != 2 or len(z) != n_z:
        raise VaekitError(f"prior_validity: sample_z({n_z}) returned shape {tuple(z.shape)}")
    valid: list[str] = []
    per_batch = max(1, batch_size // n_decode)
    for i in range(0, n_z, per_batch):
        out = _decoded(decode, z[i : i + per_batch].repeat_interleave(n_decode, dim=0), "prior_validity")
        valid += [c for c in canonical_all(out) if c is not None]
    n = n_z * n_decode
    res = {"valid": len(valid) / n, "unique": len(set(valid)) / len(valid) if valid else math.nan, "n": n}
    if train is not None:
        distinct = set(valid)
        train_set = train if isinstance(train, (set, frozenset)) else canonical_set(train)
        res["novel"] = len(distinct - train_set) / len(distinct) if distinct else math.nan
    return res


# ------------------------------------------------------------------------------- sanity check vs the paper

# MOSES paper / molsets README, "Train" row: metrics of training molecules against the test set.
MOSES_TRAIN_ROW = {
    "valid": 1.0,
    "unique@1000": 1.0,
    "unique@10000": 1.0,
    "FCD/Test": 0.008,
    "FCD/TestSF": 0.4755,
    "SNN/Test": 0.6419,
    "SNN/TestSF": 0.5859,
    "Frag/Test": 1.0,
    "Frag/TestSF": 0.9986,
    "Scaf/Test": 0.9907,
    "Scaf/TestSF": 0.0,
    "IntDiv": 0.8567,
    "IntDiv2": 0.8508,
    "Filters": 1.0,
    "Novelty": 1.0,
}
# ... and the VAE row (mean of 3 runs), the target of the chemical VAE report.  The property distances are
# those printed in the legends of the README's distribution plots (images/logP.png, SA.png, QED.png,
# weight.png), one run.
MOSES_VAE_ROW = {
    "valid": 0.9767,
    "unique@1000": 1.0,
    "unique@10000": 0.9984,
    "FCD/Test": 0.099,
    "FCD/TestSF": 0.567,
    "SNN/Test": 0.6257,
    "SNN/TestSF": 0.5783,
    "Frag/Test": 0.9994,
    "Frag/TestSF": 0.9984,
    "Scaf/Test": 0.9386,
    "Scaf/TestSF": 0.0588,
    "IntDiv": 0.8558,
    "IntDiv2": 0.8498,
    "Filters": 0.997,
    "logP": 0.023,
    "SA": 0.014,
    "QED": 0.0006,
    "weight": 1.8,
    "Novelty": 0.6949,
}


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of MOSES metric `key` is the better one: the distances (FCD, the properties')."""
    return key.startswith("FCD/") or key in PROPERTIES


def read_smiles_csv(path) -> list[str]:
    """The SMILES column of a (gzipped) CSV such as the MOSES splits, as written (not canonicalised)."""
    from ..data.smiles import read_csv

    return read_csv(path, canonicalise=False).smiles


def moses_train_check(
    n: int = 30_000,
    seed: int = 0,
    data_dir=None,
    n_jobs: int = 1,
    n_test: int | None = None,
    with_fcd: bool = True,
    novelty_vs_train: bool = True,
) -> dict:
    """MOSES metrics of `n` random MOSES *training* molecules against the test and scaffold test splits, with
    wall times.

    The MOSES paper's "Train" row is the published counterpart (FCD/Test 0.008, SNN/Test 0.6419, ...); a correct
    implementation lands close to it. `n_test` scores against a random subset of the 176k test molecules
    (cheaper; FCD grows as samples shrink); the scaffold split is always whole (its statistics are cached).
    Returns {"ours": {...}, "paper": MOSES_TRAIN_ROW, "seconds": {...}}."""
    import time

    from ..data.core import data_root
    from ..data.smiles import load_molecules

    root = data_root(data_dir) / "moses"
    t0 = time.perf_counter()
    train = read_smiles_csv(root / "train.csv.gz")
    test = read_smiles_csv(root / "test.csv.gz")
    rng = np.random.default_rng(seed)
    gen = [train[i] for i in rng.choice(len(train), size=n, replace=False)]
    if n_test is not None:
        test = [test[i] for i in np.sort(rng.choice(len(test), size=n_test, replace=False))]
    t1 = time.perf_counter()
    ref = reference_stats(test, n_jobs=n_jobs, fcd=with_fcd)
    ref_sf = reference_stats(load_molecules("moses", "test_scaffolds", data_dir).smiles, n_jobs=n_jobs, fcd=with_fcd)
    t2 = time.perf_counter()
    train_set = canonical_set(train, n_jobs=n_jobs) if novelty_vs_train else None
    t3 = time.perf_counter()
    ours = moses_metrics(gen, ref, train_set, n_jobs=n_jobs, with_fcd=with_fcd, test_sf=ref_sf)
    t4 = time.perf_counter()
    return {
        "ours": ours,
        "paper": MOSES_TRAIN_ROW,
        "n": n,
        "n_test": len(test),
        "seed": seed,
        "noncanonical_in_sample": sum(canonical(s) != s for s in gen),
        "seconds": {"read": t1 - t0, "test_stats": t2 - t1, "train_canonical": t3 - t2, "metrics": t4 - t3},
    }
