"""The CLI on a chemical VAE run: fit on a CSV (its invalid rows listed), eval, encode, sample and explore take
the run's molecules (its CSV by default, or --data moses) and write SMILES."""

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit")
pytest.importorskip("selfies")

from vaekit.checkpoint import load_model  # noqa: E402
from vaekit.chem.props import canonical  # noqa: E402
from vaekit.cli import main  # noqa: E402

SMILES = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Oc1ccccc1C(=O)O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "ClC(Cl)Br",
    "C[C@H](N)C(=O)O",
    "O=C1CCCN1",
    "CC#N",
    "c1ccc2[nH]ccc2c1",
    "FC(F)(F)c1ccncc1",
    "CCN(CC)CC",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "OC(=O)c1ccccc1O",
    "CCOC(=O)C",
    "c1ccncc1",
    "C1CCCCC1",
    "CC(=O)Nc1ccc(O)cc1",
    "NC(=O)c1cccnc1",
    "CCCCO",
    "CC(C)O",
    "O=C(O)CC(O)(CC(=O)O)C(=O)O",
    "c1ccc(cc1)C(=O)O",
    "CN1CCCC1c1cccnc1",
    "CCc1ccccc1",
    "Brc1ccccc1",
    "Clc1ccc(Cl)cc1",
    "COc1ccccc1",
    "CC(=O)C",
    "OCC(O)CO",
    "NCCO",
    "C=CC(=O)O",
    "CSC",
    "c1ccsc1",
    "c1ccoc1",
    "CC1=CC(=O)CC(C)(C)C1",
    "O=C1NC(=O)C(N1)c1ccccc1",
    "CCN",
    "OC1CCCCC1",
    "Cc1ccccc1C",
    "N#Cc1ccccc1",
]
INVALID = ["C1CC", "c1ccc"]  # an unclosed ring; an aromatic ring RDKit cannot kekulise


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    """One scored-molecule cache for the module (eval and encode score the CSV again)."""
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "chem-cache"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chemrun")
    rows = SMILES[:20] + INVALID[:1] + SMILES[20:] + INVALID[1:]
    (folder / "mols.csv").write_text("smiles\n" + "\n".join(rows) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VAEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "chem-cache"))
        mp.chdir(folder)
        main(
            [
                "fit",
                "run",
                "--model",
                "chemvae",
                "--data",
                "mols.csv",
                "--kind",
                "selfies",
                "--latent-dim",
                "3",
                "--gru-hidden",
                "16",
                "--gru-layers",
                "1",
                "--epochs",
                "3",
                "--batch-size",
                "8",
                "--no-progress",
                "--no-tensorboard",
            ]
        )
    return folder / "run"


def test_fit_lists_the_invalid_smiles_of_a_csv(run):
    with open(run / "invalid_smiles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # line numbers of the file (the header is line 1)
    assert rows == [{"line": "22", "smiles": "C1CC"}, {"line": str(len(SMILES) + 3), "smiles": "c1ccc"}]
    assert not list(run.glob(".*tmp*"))


def test_fit_names_the_count_and_the_file_in_one_line(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("smiles\n" + "\n".join(SMILES[:12] + INVALID) + "\n")
    main(
        [
            "fit",
            str(tmp_path / "r"),
            "--model",
            "chemvae",
            "--data",
            str(tmp_path / "m.csv"),
            "--latent-dim",
            "2",
            "--gru-hidden",
            "8",
            "--gru-layers",
            "1",
            "--epochs",
            "0",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    line = [s for s in capsys.readouterr().out.splitlines() if "not valid" in s]
    assert len(line) == 1 and "2 SMILES are not valid molecules" in line[0]
    assert str(tmp_path / "r" / "invalid_smiles.csv") in line[0]
    assert (tmp_path / "r" / "invalid_smiles.csv").read_text().count("\n") == 3


def test_eval_reports_the_numbers_of_a_molecule_model(run, capsys):
    main(["eval", str(run)])  # the run's own CSV by default
    res = json.loads((run / "metrics.json").read_text())["test"]
    model = load_model(run)
    assert res["n"] + res["skipped"] == len(SMILES)
    assert res["elbo"] == pytest.approx(res["rec"] - res["kl"], abs=1e-4) and res["kl"] >= 0 and res["rec"] <= 0
    assert {f"mse_{p}" for p in model.config.properties} <= set(res) and all(
        res[f"mse_{p}"] >= 0 for p in model.config.properties
    )
    # reconstruction accuracy: greedy decodings of the posterior means, recomputed through the SMILES interface
    fits = [s for s in SMILES if canonical(s)]
    _, kept = model.vocab.encode([canonical(s) for s in fits], skip=True)
    mols = [canonical(fits[i]) for i in kept]
    decoded = model.decode_smiles(model.encode_smiles(mols), greedy=True)
    assert res["recon_acc"] == pytest.approx(np.mean([canonical(d) == m for d, m in zip(decoded, mols)]))
    # the property head's squared error, in natural units
    from vaekit.chem.props import properties

    pred = model.predict_properties(model.encode_smiles(mols)).numpy()
    truth = properties(mols)
    for j, p in enumerate(model.config.properties):
        assert res[f"mse_{p}"] == pytest.approx(np.mean((pred[:, j] - truth[p]) ** 2), rel=1e-4)
    out = capsys.readouterr().out
    assert "recon_acc" in out and "iwae" not in out


def test_eval_and_encode_take_another_csv(run, tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("smiles\n" + "\n".join(SMILES[:10] + ["C1CC"]) + "\n")
    main(["eval", str(run), "--data", str(other)])
    res = json.loads((run / "metrics.json").read_text())["test"]
    assert res["n"] + res["skipped"] == 10
    main(["encode", str(run), "--data", str(other), "--out", str(tmp_path / "z.npy")])
    z = np.load(tmp_path / "z.npy")
    model = load_model(run)
    mols = [canonical(s) for s in SMILES[:10]]
    _, kept = model.vocab.encode(mols, skip=True)
    assert z.shape == (len(kept), 3)
    assert np.allclose(z, model.encode_smiles([mols[i] for i in kept]).numpy(), atol=1e-5)
    assert "1 SMILES are not valid" in capsys.readouterr().out


def test_encode_scores_no_properties(run, tmp_path, monkeypatch):
    """Codes need the tokens alone: encoding a file of molecules computes none of their properties."""
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("vaekit.chem.props.properties", lambda *a, **k: pytest.fail("scored the molecules"))
    other = tmp_path / "other.csv"
    other.write_text("smiles\n" + "\n".join(SMILES[:6]) + "\n")
    main(["encode", str(run), "--data", str(other), "--out", str(tmp_path / "z.npy")])
    mols = [canonical(s) for s in SMILES[:6]]
    _, kept = load_model(run).vocab.encode(mols, skip=True)
    assert np.load(tmp_path / "z.npy").shape == (len(kept), 3)


def test_eval_refuses_binarize_on_molecules(run, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", str(run), "--binarize"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "molecule model" in err


@pytest.mark.skipif(
    not (Path(os.environ.get("VAEKIT_DATA", "")) / "moses" / "test.csv.gz").is_file(),
    reason="MOSES splits not found (set VAEKIT_DATA)",
)
def test_eval_takes_moses(run, capsys):
    # a vocabulary of 40 molecules covers few MOSES molecules: numbers for those that fit, or a one-line error
    # that none fit; never a crash
    try:
        main(["eval", str(run), "--data", "moses", "--limit", "200"])
    except SystemExit as e:
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and len(err.splitlines()) == 1 and "vocabulary" in err
    else:
        res = json.loads((run / "metrics.json").read_text())["test[:200]"]
        assert res["n"] >= 1 and res["n"] + res["skipped"] <= 200 and 0 <= res["recon_acc"] <= 1


@pytest.mark.parametrize("suffix", [".smi", ".txt", ".csv"])
def test_sample_writes_smiles(run, tmp_path, capsys, suffix):
    out = tmp_path / f"s{suffix}"
    main(["sample", str(run), "-n", "12", "--seed", "3", "--out", str(out)])
    if suffix == ".csv":
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        smiles = [r["smiles"] for r in rows]
        assert [int(r["valid"]) for r in rows] == [int(bool(s) and canonical(s) is not None) for s in smiles]
    else:
        smiles = out.read_text().split("\n")[:-1]
    assert len(smiles) == 12 and not any(s.isdigit() for s in smiles if s)
    # the same seed draws the same molecules, whatever the file type
    main(["sample", str(run), "-n", "12", "--seed", "3", "--out", str(tmp_path / "again.smi")])
    assert (tmp_path / "again.smi").read_text().split("\n")[:-1] == smiles
    assert f"12 SMILES, {sum(bool(s) and canonical(s) is not None for s in smiles)} valid" in capsys.readouterr().out


def test_sample_defaults_to_smi_and_keeps_the_gmm_sampler(run, capsys):
    main(["sample", str(run), "-n", "5", "--sampler", "gmm"])
    assert len((run / "samples.smi").read_text().split("\n")[:-1]) == 5
    assert (run / "sampler-gmm.safetensors").is_file()


def test_sample_from_a_committed_model_keeps_its_sampler_in_the_cache(run, tmp_path, monkeypatch, capsys):
    """A model committed with vaekit lives in the source checkout: its fitted sampler goes to the cache."""
    import sys

    monkeypatch.setattr(sys.modules["vaekit.models.pretrained"], "ROOT", run.parent)
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    before = sorted(p.name for p in run.iterdir())
    main(["sample", str(run), "-n", "5", "--sampler", "gmm", "--out", str(tmp_path / "s.smi")])
    assert (tmp_path / "cache" / "samplers" / run.name / "sampler-gmm.safetensors").is_file()
    assert sorted(p.name for p in run.iterdir()) == before
    main(["sample", str(run), "-n", "5", "--sampler", "gmm", "--out", str(tmp_path / "t.smi")])
    assert capsys.readouterr().out.count("fitting the gmm sampler") == 1  # the second run reads it


@pytest.mark.parametrize("name", ["x.png", "x.npy", "x"])
def test_sample_refuses_image_and_array_files(run, tmp_path, capsys, name):
    with pytest.raises(SystemExit) as e:
        main(["sample", str(run), "-n", "4", "--out", str(tmp_path / name)])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert all(s in err for s in (".smi", ".txt", ".csv")) and not (tmp_path / name).exists()


def test_explorer_serves_a_chemvae_run(run):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from vaekit.explore.server import create_app, load_run

    explorer = load_run(run)  # the run's CSV, recorded in config.json
    client = TestClient(create_app(explorer, port=8765), base_url="http://127.0.0.1:8765")
    info = client.get("/api/info").json()
    model = load_model(run)
    assert info["kind"] == "molecule" and info["latent_dim"] == 3
    assert info["properties"] == list(model.config.properties)
    assert 1 <= info["n"] <= len(SMILES)
    out = client.post("/api/decode", json={"z": [[0.0, 0.0, 0.0]]}).json()
    assert len(out["items"]) == 1
    torch.testing.assert_close(
        torch.tensor(info["plane"]) @ torch.tensor(info["plane"]).T, torch.eye(2), atol=1e-5, rtol=0
    )
