"""chem.props and chem.metrics: property scores against RDKit's own calls and closed forms, metric definitions
on hand-made sets, the two VAE protocols with stub encoders/decoders, and the errors users get."""

import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")
from rdkit import Chem, DataStructs  # noqa: E402
from rdkit.Chem import QED, Crippen, rdFingerprintGenerator  # noqa: E402

from vaekit.chem import metrics as M  # noqa: E402
from vaekit.chem import props as P  # noqa: E402
from vaekit.errors import VaekitError  # noqa: E402

BENZENE, ASPIRIN, CAFFEINE = "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"
CYCLODODECANE = "C1CCCCCCCCCCC1"
DRUGS = [
    BENZENE,
    ASPIRIN,
    CAFFEINE,
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "CC(=O)Nc1ccc(O)cc1",
    "CN1CCC[C@H]1c1cccnc1",
    "O=C(O)c1ccccc1O",
    "c1ccc2ccccc2c1",
    "CCN(CC)CCOC(=O)c1ccc(N)cc1",
    "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",
    "Clc1ccc(cc1)C(c1ccccc1)N1CCN(CC1)CCOCC(=O)O",
    "CCO",
]


# ------------------------------------------------------------------------------------------------ props


def test_canonical_makes_equivalent_smiles_equal_and_rejects_invalid():
    assert P.canonical("OCC") == P.canonical("C(O)C") == "CCO"
    assert P.canonical("C1=CC=CC=C1") == BENZENE
    assert P.canonical("C[C@H](N)C(=O)O") != P.canonical("C[C@@H](N)C(=O)O")  # isomeric: stereo kept
    assert P.canonical_all(["OCC", "not a molecule", "", "C1CC", None]) == ["CCO", None, None, None, None]


@pytest.mark.parametrize("smi", [BENZENE, ASPIRIN, CAFFEINE])
def test_logp_qed_match_rdkit_and_sa_in_range(smi):
    m = Chem.MolFromSmiles(smi)
    assert P.logp(smi) == pytest.approx(Crippen.MolLogP(m))
    assert P.qed(smi) == pytest.approx(QED.qed(m))
    assert 0 < P.qed(smi) < 1
    assert 1 <= P.sa_score(smi) <= 10
    assert P.ring_penalty(smi) == 0


def test_known_values_and_orderings():
    assert P.logp(BENZENE) == pytest.approx(1.6866, abs=1e-4)  # Crippen atom contributions, 6 aromatic CH
    assert P.logp(CAFFEINE) < 0 < P.logp(ASPIRIN) < P.logp(BENZENE)
    assert P.sa_score(BENZENE) < P.sa_score(CAFFEINE)  # benzene is the easiest molecule there is
    assert P.sa_score("CCO") < P.sa_score("C[C@H]1C[C@@H]2C[C@H](C1)C2(C)C")  # stereocentres cost


def test_ring_penalty_counts_atoms_beyond_six():
    assert P.ring_penalty(CYCLODODECANE) == 6
    assert P.ring_penalty("C1CCCCCC1") == 1
    assert P.ring_penalty("c1ccc2ccccc2c1") == 0  # fused six-rings: SSSR, not the 10-atom perimeter
    assert P.ring_penalty("CCCCCCCCCC") == 0


def test_penalized_logp_is_the_standardised_sum():
    for smi in [BENZENE, ASPIRIN, CYCLODODECANE]:
        lp, sa, cyc = P.logp(smi), P.sa_score(smi), P.ring_penalty(smi)
        assert P.penalized_logp_raw(smi) == pytest.approx(lp - sa - cyc)
        expected = (
            (lp - 2.4570953396190123) / 1.434324401111988
            + (-sa + 3.0525811293166134) / 0.8335207024513095
            + (-cyc + 0.0485696876403053) / 0.2860212110245455
        )
        assert P.penalized_logp(smi) == pytest.approx(expected)
    # a molecule at the ZINC250k means scores ~0; the macrocycle is penalised by 6 / 0.286 ≈ 21 standard units
    assert P.penalized_logp(CYCLODODECANE) < P.penalized_logp("CCCCCCCCCCCC") - 15


def test_invalid_smiles_give_nan():
    for f in (P.logp, P.qed, P.sa_score, P.ring_penalty, P.penalized_logp, P.penalized_logp_raw):
        assert math.isnan(f("C1CC")) and math.isnan(f("")) and math.isnan(f("xyz"))
    out = P.properties([ASPIRIN, "bad", CAFFEINE])
    assert set(out) == {"logP", "QED", "SAS"}
    for v in out.values():
        assert v.shape == (3,) and np.isnan(v[1]) and np.isfinite(v[[0, 2]]).all()
    assert out["logP"][0] == pytest.approx(P.logp(ASPIRIN)) and out["SAS"][2] == pytest.approx(P.sa_score(CAFFEINE))


# ----------------------------------------------------------------------------------------------- counting


def test_validity_uniqueness_novelty_on_hand_made_lists():
    gen = ["OCC", "C(O)C", BENZENE, "C1=CC=CC=C1", "xx", "", "CCN", "C1CC"]
    assert M.validity(gen) == pytest.approx(5 / 8)
    assert M.uniqueness(gen) == pytest.approx(3 / 5)  # CCO, benzene, CCN among 5 valid
    assert M.uniqueness(gen, k=2) == pytest.approx(1 / 2)  # first two valid are both ethanol
    assert M.uniqueness(gen, k=3) == pytest.approx(2 / 3)
    with pytest.warns(UserWarning, match="unique@10"):
        assert M.uniqueness(gen, k=10) == pytest.approx(3 / 5)
    assert math.isnan(M.uniqueness(["xx"]))
    # training SMILES written non-canonically still count as seen
    assert M.novelty(gen, ["C(O)C", "C1=CC=CC=C1"]) == pytest.approx(1 / 3)
    assert M.novelty(gen, set()) == 1.0
    assert M.novelty(gen, M.canonical_set(["NCC", "OCC", BENZENE])) == 0.0


def test_invalid_strings_are_counted_by_reason():
    gen = ["OCC", BENZENE, "C1CC", "CC(C", "", "c1cccc1", "c1ccnc1", "C(C)(C)(C)(C)C", "FC(F)(F)(F)F"]
    reasons = M.invalid_reasons(gen)
    assert reasons == {"syntax": 3, "aromaticity": 2, "valence": 2, "other": 0}
    assert sum(reasons.values()) == round(len(gen) * (1 - M.validity(gen)))  # every invalid string, once


def test_bad_lists_raise_one_line_errors():
    with pytest.raises(VaekitError, match="empty"):
        M.validity([])
    with pytest.raises(VaekitError, match="one string"):
        M.uniqueness("CCO")
    with pytest.raises(VaekitError, match="positive"):
        M.uniqueness(["CCO"], k=0)
    with pytest.raises(VaekitError, match="none of the 2"):
        M.snn(["xx", "yy"], ["CCO"])


# ------------------------------------------------------------------------------------------- similarities


def _rdkit_tanimoto(a, b):
    g = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    fa, fb = g.GetFingerprint(Chem.MolFromSmiles(a)), g.GetFingerprint(Chem.MolFromSmiles(b))
    return DataStructs.TanimotoSimilarity(fa, fb)


def test_fingerprints_are_morgan_r2_1024():
    fps = M.fingerprints([ASPIRIN, "OCC"])
    assert fps.shape == (2, 1024) and fps.dtype == np.uint8
    g = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    on = list(g.GetFingerprint(Chem.MolFromSmiles(ASPIRIN)).GetOnBits())
    assert sorted(np.flatnonzero(fps[0])) == on
    with pytest.raises(VaekitError, match="item 1"):
        M.fingerprints(["CCO", "C1CC"])


def test_snn_matches_pairwise_rdkit_tanimoto():
    gen, ref = DRUGS[:5], DRUGS[5:]
    expected = np.mean([max(_rdkit_tanimoto(g, r) for r in ref) for g in gen])
    assert M.snn(gen, ref) == pytest.approx(expected, abs=1e-6)
    assert M.snn(DRUGS, DRUGS) == pytest.approx(1.0)
    assert M.snn(DRUGS + ["bad"], DRUGS) == pytest.approx(1.0)  # invalid generated strings are dropped


def test_tanimoto_chunking_and_empty_fingerprints():
    rng = np.random.default_rng(0)
    a = (rng.random((37, 64)) < 0.2).astype(np.uint8)
    b = (rng.random((53, 64)) < 0.2).astype(np.uint8)
    a[0] = 0
    b[0] = 0
    inter = a.astype(float) @ b.T.astype(float)
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    t = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    (mx,) = M._tanimoto_reduce(a, b, agg="max", chunk_a=5, chunk_b=7)
    m1, m2 = M._tanimoto_reduce(a, b, powers=(1, 2), agg="mean", chunk_a=8, chunk_b=11)
    np.testing.assert_allclose(mx, t.max(1))
    np.testing.assert_allclose(m1, t.mean(1))
    np.testing.assert_allclose(m2, (t**2).mean(1))
    assert mx[0] == 1.0  # 0/0 counts as identical, as in MOSES


def test_int_div_closed_forms():
    assert M.int_div([ASPIRIN] * 4) == pytest.approx(0.0)
    t = _rdkit_tanimoto(ASPIRIN, CAFFEINE)
    # the mean runs over all ordered pairs including (x, x): (1 + t) / 2
    assert M.int_div([ASPIRIN, CAFFEINE]) == pytest.approx(1 - (1 + t) / 2)
    assert M.int_div([ASPIRIN, CAFFEINE], p=2) == pytest.approx(1 - math.sqrt((1 + t * t) / 2))


def test_frag_and_scaf_cosines():
    assert M.frag(DRUGS, DRUGS) == pytest.approx(1.0)
    assert M.scaf(DRUGS, DRUGS) == pytest.approx(1.0)
    # aspirin breaks into acetyl and benzoic pieces; they share nothing with ethanol's single fragment
    assert M.frag([ASPIRIN], ["CCO"]) == pytest.approx(0.0)
    assert 0 < M.frag([ASPIRIN], [ASPIRIN, "CCO"]) < 1
    # scaffolds need >= 2 rings: naphthalene counts, benzene and acyclic molecules do not
    assert math.isnan(M.scaf([BENZENE, "CCO"], DRUGS))
    assert M.scaf(["Cc1ccc2ccccc2c1", "Oc1ccc2ccccc2c1"], ["c1ccc2ccccc2c1"]) == pytest.approx(1.0)
    from collections import Counter

    assert M._cosine(Counter(a=1, b=1), Counter(a=2)) == pytest.approx(1 / math.sqrt(2))


def test_reference_stats_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    first = M.reference_stats(DRUGS, fcd=False)
    files = list((tmp_path / "chem").glob("ref-*-rdkit.npz"))
    assert len(files) == 1
    second = M.reference_stats(DRUGS, fcd=False)
    np.testing.assert_array_equal(first["fps"], second["fps"])
    assert first["frag"] == second["frag"] and first["scaf"] == second["scaf"] and second["n"] == len(DRUGS)
    assert M.snn(DRUGS, second) == pytest.approx(1.0) and M.frag(DRUGS, second) == pytest.approx(1.0)
    monkeypatch.setattr(M, "FCD_IN_PROCESS_MAX", 0)  # take the chunked subprocess path
    monkeypatch.setattr(M, "FCD_CHUNK", 7)
    with_fcd = M.reference_stats(DRUGS)
    assert with_fcd["mu"].shape == (512,) and with_fcd["sigma"].shape == (512, 512)
    assert len(list((tmp_path / "chem").glob("ref-*-fcd.npz"))) == 1
    assert not list((tmp_path / "chem").rglob("fcd-part-*"))  # chunk moments cleaned up once saved


def test_fcd_of_a_set_with_itself_is_zero_and_positive_otherwise():
    st1 = M.fcd_stats(DRUGS)
    assert abs(M.fcd(DRUGS, st1)) < 1e-4
    assert M.fcd(DRUGS[:6], st1) > 0.5
    with pytest.raises(VaekitError, match="at least 2"):
        M.fcd(["CCO"], st1)


@pytest.mark.slow
def test_fcd_chunked_subprocesses_and_resume(tmp_path):  # ~1 min: four fresh Python processes
    # two subprocesses' moments equal one-shot moments
    st = M.fcd_stats(DRUGS, chunk=7, in_process_max=0, resume_dir=tmp_path)
    st1 = M.fcd_stats(DRUGS)
    np.testing.assert_allclose(st["mu"], st1["mu"], atol=1e-10)
    np.testing.assert_allclose(st["sigma"], st1["sigma"], atol=1e-10)
    # resuming: chunks kept in resume_dir are not recomputed
    first = st
    parts = sorted(tmp_path.glob("fcd-part-*.npz"))
    assert len(parts) == 2
    parts[0].unlink()  # as if interrupted after one chunk: only the missing chunk is recomputed
    again = M.fcd_stats(DRUGS, chunk=7, in_process_max=0, resume_dir=tmp_path)
    np.testing.assert_allclose(again["sigma"], first["sigma"], atol=1e-10)
    assert len(list(tmp_path.glob("fcd-part-*.npz"))) == 2


# ------------------------------------------------------------------------------------------ VAE protocols


class _Table:
    """A 'model' that encodes molecule i as the code (i, noise) and decodes back by the first coordinate."""

    def __init__(self, smiles):
        self.smiles = list(smiles)

    def encode(self, batch):
        idx = torch.tensor([self.smiles.index(s) for s in batch], dtype=torch.float32)
        return torch.stack([idx, torch.randn(len(batch))], 1)

    def decode(self, z):
        # non-canonical spelling on purpose: the protocol must canonicalise
        return [Chem.MolToSmiles(Chem.MolFromSmiles(self.smiles[int(i)]), canonical=False) for i in z[:, 0]]


def test_reconstruction_accuracy_perfect_garbage_and_half():
    mols = ["OCC", ASPIRIN, CAFFEINE]
    t = _Table(mols)
    assert M.reconstruction_accuracy(t.encode, t.decode, mols) == 1.0
    assert M.reconstruction_accuracy(t.encode, lambda z: ["C1CC"] * len(z), mols) == 0.0
    assert M.reconstruction_accuracy(t.encode, lambda z: [BENZENE] * len(z), mols, 2, 3) == 0.0

    calls = {"n": 0}

    def every_other(z):  # right on even decodings, wrong on odd ones
        out = t.decode(z)
        calls["n"] += len(z)
        return [s if k % 2 == 0 else "CCCl" for k, s in enumerate(out)]

    assert M.reconstruction_accuracy(t.encode, every_other, mols, n_encode=3, n_decode=4, batch_size=12) == 0.5
    assert calls["n"] == 3 * 3 * 4


def test_reconstruction_accuracy_bad_input():
    t = _Table(["CCO"])
    with pytest.raises(VaekitError, match="input 1 is not a valid SMILES"):
        M.reconstruction_accuracy(t.encode, t.decode, ["CCO", "C1CC"])
    with pytest.raises(VaekitError, match="decode returned 1 strings for 100 codes"):
        M.reconstruction_accuracy(t.encode, lambda z: ["CCO"], ["CCO"])
    with pytest.raises(VaekitError, match="encode returned shape"):
        M.reconstruction_accuracy(lambda b: torch.zeros(3), t.decode, ["CCO"])


def test_prior_validity_counts_decodings():
    pool = ["CCO", "OCC", "CCN", "bad", "C1CC"]

    def decode(z):  # decoding depends on the code's sign pattern: deterministic per code
        return [pool[int(abs(v[0]) * 100) % len(pool)] for v in z]

    torch.manual_seed(0)
    res = M.prior_validity(lambda n: torch.randn(n, 4), decode, n_z=50, n_decode=10, train=["C(C)O"])
    torch.manual_seed(0)
    z = torch.randn(50, 4)
    names = [pool[int(abs(v[0]) * 100) % len(pool)] for v in z]
    z_valid = sum(n in ("CCO", "OCC", "CCN") for n in names)
    assert res["n"] == 500 and res["valid"] == pytest.approx(z_valid / 50)
    distinct = {P.canonical(n) for n in names} - {None}
    assert res["unique"] == pytest.approx(len(distinct) / (10 * z_valid))
    assert res["novel"] == pytest.approx(len(distinct - {"CCO"}) / len(distinct))
    with pytest.raises(VaekitError, match="sample_z"):
        M.prior_validity(lambda n: torch.randn(n + 1, 4), decode, n_z=5)


def test_moses_metrics_small_set_against_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    gen = DRUGS + ["bad", "C1CC"]
    with pytest.warns(UserWarning):
        out = M.moses_metrics(gen, DRUGS, train=DRUGS[:6], k=(5, 100))
    assert out["valid"] == pytest.approx(len(DRUGS) / len(gen))
    assert out["unique@5"] == 1.0 and out["unique@100"] == 1.0
    assert abs(out["FCD/Test"]) < 1e-4
    assert out["SNN/Test"] == pytest.approx(1.0) and out["Frag/Test"] == pytest.approx(1.0)
    assert out["Scaf/Test"] == pytest.approx(1.0)
    assert out["IntDiv"] == pytest.approx(M.int_div(DRUGS)) and 0 < out["IntDiv2"] < 1
    assert out["Novelty"] == pytest.approx(6 / 12)
    no_fcd = M.moses_metrics(DRUGS, DRUGS, k=5, with_fcd=False)
    assert "FCD/Test" not in no_fcd and no_fcd["SNN/Test"] == pytest.approx(1.0)


def test_moses_metrics_counts_a_canonical_smiles_rdkit_cannot_read_back_as_invalid(tmp_path, monkeypatch):
    """RDKit writes, for a few exotic decodings, a canonical SMILES it cannot parse again: such a sample is
    invalid, not a crash in the fingerprint step."""
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    ref = M.reference_stats(DRUGS, fcd=False)
    stuck = P.canonical(DRUGS[0])
    real = M.mol
    monkeypatch.setattr(M, "mol", lambda s: None if s == stuck else real(s))  # its canonical form does not re-parse
    out = M.moses_metrics(DRUGS, ref, k=5, with_fcd=False)
    assert out["valid"] == pytest.approx((len(DRUGS) - 1) / len(DRUGS)) and out["SNN/Test"] > 0.5


def test_read_smiles_csv_needs_a_smiles_column(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("smi\nCCO\n")
    with pytest.raises(VaekitError, match="no SMILES column"):
        M.read_smiles_csv(p)
    p.write_text("SMILES,SPLIT\nCCO,train\n c1ccccc1 ,train\n")
    assert M.read_smiles_csv(p) == ["CCO", BENZENE]


# --------------------------------------------------------------------------------- against the MOSES paper


@pytest.mark.slow
def test_moses_train_sample_matches_the_papers_train_row():
    if not os.environ.get("VAEKIT_DATA") or not os.path.exists(os.path.join(os.environ["VAEKIT_DATA"], "moses")):
        pytest.skip("MOSES splits not found: set VAEKIT_DATA to the folder holding moses/*.csv.gz")
    r = M.moses_train_check(n=30_000, seed=0)
    ours, paper = r["ours"], r["paper"]
    assert ours["valid"] == 1.0 and ours["unique@10000"] > 0.999
    # paper 0.008. FCD of finite samples is biased upwards by about c (1/n_gen + 1/n_test) with c ~ 1275 here
    # (measured: 0.255 for 10k vs 10k), so a 30k sample sits near 0.05; the paper's 0.008 is what the whole
    # 1.58M training set would give. A broken FCD (wrong canonicalisation, wrong covariance) is far above 0.1.
    assert ours["FCD/Test"] < 0.08
    assert abs(ours["SNN/Test"] - paper["SNN/Test"]) < 0.01
    # Scaf: the cosine of scaffold counts of a 30k sample is limited by sampling noise (measured 0.9475 for
    # seed 0; the paper's 0.9907 fits a much larger training sample, like its FCD)
    assert ours["Frag/Test"] > 0.999 and 0.93 < ours["Scaf/Test"] < 1
    assert abs(ours["IntDiv"] - paper["IntDiv"]) < 0.005 and abs(ours["IntDiv2"] - paper["IntDiv2"]) < 0.005
    assert ours["Novelty"] == 0.0  # the sample is drawn from train: canonicalising both sides finds every one
    # the scaffold split: its scaffolds occur nowhere in train, so Scaf/TestSF is 0 as published, and FCD/TestSF
    # sits above the paper's 0.4755 by the same finite-sample bias as FCD/Test above
    assert abs(ours["SNN/TestSF"] - paper["SNN/TestSF"]) < 0.01 and ours["Frag/TestSF"] > 0.998
    assert ours["Scaf/TestSF"] == 0.0 and 0.4755 < ours["FCD/TestSF"] < 0.6
    # every MOSES molecule passed the filters the data set was built with (the paper's 1.0); 4 of these 30,000
    # raise RDKit's edited PAINS alert thiaz_ene_A, which the original that MOSES used does not (measured)
    assert 0.9995 < ours["Filters"] <= 1.0
    assert ours["logP"] < 0.02 and ours["SA"] < 0.01 and ours["QED"] < 0.002 and ours["weight"] < 0.5
