"""Molecule property scores from SMILES: canonical form, logP, QED, SA score, ring penalty, penalized logP.

Every function takes SMILES strings; invalid SMILES give `None` (canonical) or NaN (scores), never an error,
because a generative model's samples are often not molecules and we count them rather than crash.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from rdkit import Chem, RDConfig, RDLogger
from rdkit.Chem import QED as _QED
from rdkit.Chem import Crippen

RDLogger.DisableLog("rdApp.*")  # sampled strings are often invalid; RDKit would print one line per failure

# Statistics of logP, -SA and -cycle penalty over the ZINC250k file (250k_rndm_zinc_drugs_clean.smi) as
# hard-coded in JT-VAE's successors (wengong-jin/hgraph2graph props/properties.py; the same numbers are in
# bowenliu16/rl_graph_generation, reward_penalized_log_p). JT-VAE's own bo/gen_latent.py and GVAE's
# latent_features_and_targets.py compute them from that file at run time. The SA and cycle means are negative
# because those codes standardise the *negated* scores.
LOGP_MEAN, LOGP_STD = 2.4570953396190123, 1.434324401111988
NEG_SA_MEAN, NEG_SA_STD = -3.0525811293166134, 0.8335207024513095
NEG_CYCLE_MEAN, NEG_CYCLE_STD = -0.0485696876403053, 0.2860212110245455


def mol(smiles: str):
    """RDKit molecule or None (unparseable, empty or not a string)."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    return Chem.MolFromSmiles(smiles.strip())


def canonical(smiles: str) -> str | None:
    """RDKit canonical isomeric SMILES, or None when RDKit cannot parse `smiles`."""
    m = mol(smiles)
    return None if m is None else Chem.MolToSmiles(m, isomericSmiles=True)


def canonical_all(smiles: Iterable[str]) -> list[str | None]:
    """`canonical` of each string, in order."""
    return [canonical(s) for s in smiles]


def _score(f, smiles: str) -> float:
    m = mol(smiles)
    if m is None:
        return math.nan
    try:
        return float(f(m))
    except Exception:  # RDKit can parse some molecules it cannot score (e.g. odd valences after sanitising)
        return math.nan


def logp(smiles: str) -> float:
    """Wildman-Crippen logP (RDKit `Crippen.MolLogP`); NaN if invalid."""
    return _score(Crippen.MolLogP, smiles)


def qed(smiles: str) -> float:
    """Quantitative estimate of drug-likeness in [0, 1] (Bickerton et al. 2012, RDKit `QED.qed`); NaN if invalid."""
    return _score(_QED.qed, smiles)


@lru_cache(maxsize=1)
def _sascorer():
    """RDKit's own Contrib/SA_Score/sascorer.py (Ertl & Schuffenhauer 2009), imported from the RDKit install."""
    path = os.path.join(RDConfig.RDContribDir, "SA_Score", "sascorer.py")
    if not os.path.exists(path):
        raise ImportError(f"{path}: RDKit's SA_Score contrib module is missing from this RDKit installation")
    spec = importlib.util.spec_from_file_location("vaekit_rdkit_sascorer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sa_score(smiles: str) -> float:
    """Synthetic accessibility score, 1 (easy) .. 10 (hard); NaN if invalid."""
    return _score(_sascorer().calculateScore, smiles)


def _ring_penalty(m) -> float:
    sizes = [len(r) for r in m.GetRingInfo().AtomRings()]
    return float(max(0, max(sizes, default=0) - 6))


def ring_penalty(smiles: str) -> float:
    """Long-cycle penalty max(0, largest ring size - 6), rings from RDKit's smallest set of smallest rings.

    (JT-VAE/GVAE code takes the largest cycle of networkx's `cycle_basis`, which depends on atom order and
    can differ from the SSSR on cage molecules; for drug-like molecules the two agree.) NaN if invalid."""
    return _score(_ring_penalty, smiles)


def _terms(smiles: str) -> tuple[float, float, float]:
    m = mol(smiles)
    if m is None:
        return math.nan, math.nan, math.nan
    try:
        return float(Crippen.MolLogP(m)), float(_sascorer().calculateScore(m)), _ring_penalty(m)
    except Exception:
        return math.nan, math.nan, math.nan


def penalized_logp(smiles: str) -> float:
    """Standardised penalized logP: z(logP) + z(-SA) + z(-cycle penalty), z-scores with the ZINC250k statistics.

    This is the objective of the latent-space BO tables of GVAE (Kusner et al. 2017, Table 2: CVAE 1.98,
    GVAE 2.94) and JT-VAE (Jin et al. 2018, Table 2: SD-VAE 4.04, JT-VAE 5.30). NaN if invalid.
    For the unnormalised score see `penalized_logp_raw`."""
    return standardised_penalized_logp(*_terms(smiles))


def standardised_penalized_logp(logp, sa, cycle=0.0):
    """`penalized_logp` from its terms: logP, SA score and cycle penalty (floats, arrays or tensors alike),
    each z-scored with the ZINC250k statistics. With cycle 0 (no ring above six atoms) it bounds the score from
    above, since the penalty only lowers it."""
    return (logp - LOGP_MEAN) / LOGP_STD + (-sa - NEG_SA_MEAN) / NEG_SA_STD + (-cycle - NEG_CYCLE_MEAN) / NEG_CYCLE_STD


def penalized_logp_raw(smiles: str) -> float:
    """Unnormalised penalized logP: logP - SA - cycle penalty (no standardisation).

    This is the formula as written in the GVAE paper (Kusner et al. 2017, J(m) = logP - SA - ring penalty; its
    code then standardises each term, see `penalized_logp`) and the score of the constrained-optimisation
    tables (JT-VAE, Jin et al. 2018, Table 3, whose property files are named "logP-SA"; also GCPN and
    MolDQN-style "penalized logP" values). The chemical VAE paper itself (Gómez-Bombarelli et al. 2018)
    optimised 5 x QED - SAS; its 1.98 BO entry comes from the GVAE paper's standardised score. NaN if invalid."""
    lp, sa, cyc = _terms(smiles)
    return lp - sa - cyc


def properties(smiles: Iterable[str], *, n_jobs: int = 1) -> dict[str, np.ndarray]:
    """The chemical VAE's property targets for each string: {"logP", "QED", "SAS"} as float64 arrays, NaN if invalid.

    About 2 ms per molecule on one core (QED dominates); `n_jobs` > 1 scores chunks in that many processes."""
    smiles = list(smiles)
    if n_jobs > 1 and len(smiles) >= 2000:
        import multiprocessing as mp

        size = -(-len(smiles) // (8 * n_jobs))
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(n_jobs) as pool:
            parts = pool.map(properties, [smiles[i : i + size] for i in range(0, len(smiles), size)])
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out = {
        "logP": np.full(len(smiles), np.nan),
        "QED": np.full(len(smiles), np.nan),
        "SAS": np.full(len(smiles), np.nan),
    }
    scorer = _sascorer()
    for i, s in enumerate(smiles):
        m = mol(s)
        if m is None:
            continue
        for key, f in (("logP", Crippen.MolLogP), ("QED", _QED.qed), ("SAS", scorer.calculateScore)):
            try:
                out[key][i] = float(f(m))
            except Exception:
                pass
    return out
