"""chem.filters: MOSES's construction filters, each rule on a molecule made to break it, and the metric
"Filters" and the property distances of chem.metrics.moses_metrics."""

import math

import numpy as np
import pytest

pytest.importorskip("rdkit")
from rdkit.Chem import Descriptors  # noqa: E402

from vaekit.chem import filters as F  # noqa: E402
from vaekit.chem import metrics as M  # noqa: E402
from vaekit.chem.props import mol  # noqa: E402

# MOSES training molecules: every one passed the filters when the data set was built
MOSES_LIKE = [
    "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1",
    "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
    "Cc1c(Cl)cccc1Nc1ncccc1C(=O)OCC(O)CO",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "Nc1ccccc1",  # an aniline: the MCF pattern for an amine on a ring is written with single and double bonds
]


@pytest.mark.parametrize("smiles", MOSES_LIKE)
def test_drug_like_molecules_pass(smiles):
    assert F.failed(mol(smiles)) is None and F.passes(smiles)


@pytest.mark.parametrize(
    "smiles, reason",
    [
        ("CC[NH3+]", "a charged atom"),
        ("CCP(C)C", "element P"),
        ("CCI", "element I"),
        ("C1CCCCCCC1", "a ring of more than 7 atoms"),  # cyclooctane
        ("CCCC=O", "MCF: formyl group"),  # an aldehyde
        ("C=CC#N", "MCF: alpha,beta-unsaturated nitrile"),
        ("CC1CO1", "MCF: epoxide"),
        ("CSSC", "MCF: S-S bond"),
        ("CCN=NCC", "MCF: acyclic N-N chain between carbons"),  # azoethane
        ("CCN=NO", "MCF: acyclic N=N"),
        ("BrC(Br)C(Br)c1ccccc1", "MCF: three or more bromines"),
        ("O=C1C=CC(=O)C=C1", "PAINS: quinone"),  # p-benzoquinone, a redox cycler
    ],
)
def test_each_rule_fails_a_molecule_made_to_break_it(smiles, reason):
    assert F.failed(mol(smiles)).startswith(reason) and not F.passes(smiles)


def test_an_invalid_string_does_not_pass():
    assert not F.passes("C1CC") and not F.passes("")


def test_moses_metrics_filters_and_property_distances(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    ref = M.reference_stats(MOSES_LIKE, fcd=False)
    assert ref["props"].shape == (len(MOSES_LIKE), 4)
    assert ref["props"][3, 3] == pytest.approx(Descriptors.MolWt(mol(MOSES_LIKE[3])))  # caffeine's weight
    assert len(list((tmp_path / "chem").glob("ref-*-props.npz"))) == 1
    np.testing.assert_array_equal(M.reference_stats(MOSES_LIKE, fcd=False)["props"], ref["props"])  # from the cache

    same = M.moses_metrics(MOSES_LIKE, ref, k=5, with_fcd=False)
    assert same["Filters"] == 1.0
    assert all(same[p] == 0.0 for p in M.PROPERTIES)  # the same molecules: every distribution distance is 0
    gen = MOSES_LIKE[:4] + ["CCCC=O", "CC[NH3+]", "not a molecule"]
    out = M.moses_metrics(gen, ref, k=5, with_fcd=False)
    assert out["Filters"] == pytest.approx(4 / 6)  # over the valid molecules, as in MOSES
    # W1 between two equally weighted samples of sizes 6 and 5 on the line, by the quantile functions
    a, b = np.sort([Descriptors.MolWt(mol(s)) for s in gen[:6]]), np.sort(ref["props"][:, 3])
    grid = np.linspace(0, 1, 6 * 5 + 1)[:-1] + 1 / (2 * 6 * 5)
    w1 = np.mean(np.abs(a[(grid * 6).astype(int)] - b[(grid * 5).astype(int)]))
    assert out["weight"] == pytest.approx(w1)


def test_moses_metrics_against_a_scaffold_split(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    out = M.moses_metrics(MOSES_LIKE, MOSES_LIKE, k=5, with_fcd=False, test_sf=MOSES_LIKE[:2])
    assert out["SNN/Test"] == pytest.approx(1.0) and out["Frag/Test"] == pytest.approx(1.0)
    assert 0 < out["SNN/TestSF"] < 1 and out["Frag/TestSF"] < 1  # only two of the five molecules are there
    assert "FCD/TestSF" not in out and "Scaf/TestSF" in out
    assert "SNN/TestSF" not in M.moses_metrics(MOSES_LIKE, MOSES_LIKE, k=5, with_fcd=False)
    bad = {k: v for k, v in M.reference_stats(MOSES_LIKE, fcd=False).items() if k != "props"}
    with pytest.raises(M.VaekitError, match="test_sf: reference statistics lack"):
        M.moses_metrics(MOSES_LIKE, MOSES_LIKE, k=5, with_fcd=False, test_sf=bad)


def test_lower_is_better_names_the_distances():
    assert M.lower_is_better("FCD/TestSF") and M.lower_is_better("weight")
    assert not M.lower_is_better("SNN/Test") and not M.lower_is_better("Filters")
    assert all(not math.isnan(v) for v in M.MOSES_VAE_ROW.values())
