"""bench/vs_moses_vae.py: the vaekit side of the MOSES comparison (a `vaekit fit` whose time budget counts CPU
seconds, the molecules it saw, its prior samples), the sample files and the 1e-3 check between two metric
implementations.  MOSES itself runs in its own venv (bench/moses/setup.sh) and is not needed here."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("rdkit", reason="the chemical VAE needs RDKit (pip install 'vaekit[chem]')")
pytest.importorskip("selfies", reason="the chemical VAE needs selfies (pip install 'vaekit[chem]')")

BENCH = Path(__file__).resolve().parents[1] / "bench"
MOLS = [
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
]


@pytest.fixture(scope="module")
def vs():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("vs_moses_vae", BENCH / "vs_moses_vae.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(BENCH))


def test_disagreements_flag_only_differences_over_the_tolerance(vs):
    ours = {"valid": 0.5, "FCD/Test": 1.0, "SNN/Test": 0.6, "Novelty": 0.9, "IntDiv": math.nan, "only_ours": 1.0}
    theirs = {"valid": 0.5 + 0.5e-3, "FCD/Test": 1.0 + 2e-3, "SNN/Test": 0.6, "Novelty": 0.8, "IntDiv": 0.85}
    d = vs.disagreements(ours, theirs)
    assert set(d) == {"FCD/Test", "Novelty", "IntDiv"}  # a NaN on one side is a disagreement too
    assert d["Novelty"]["diff"] == pytest.approx(0.1) and d["FCD/Test"]["moses_metrics"] == 1.0 + 2e-3
    assert vs.disagreements({"Scaf/Test": math.nan}, {"Scaf/Test": math.nan}) == {}  # undefined for both


def test_sample_files_keep_empty_samples(vs, tmp_path):
    f = tmp_path / "s.smi"
    vs.write_lines(f, ["CCO", "", "C1CC", ""])
    assert vs.read_lines(f) == ["CCO", "", "C1CC", ""]
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_vaekit_fit_stops_at_the_cpu_budget_and_counts_molecules(vs, tmp_path, monkeypatch):
    import vaekit.train

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "mols.csv"
    data.write_text("smiles\n" + "\n".join(MOLS) + "\n")
    real_fit = vaekit.train.fit
    out, samples, run = tmp_path / "vaekit.json", tmp_path / "samples.smi", tmp_path / "run"
    vs.vaekit_fit_cpu(
        [
            str(out),
            str(samples),
            "7",
            "0",
            "--",
            str(run),
            "--model",
            "chemvae",
            "--data",
            str(data),
            "--kind",
            "selfies",
            "--latent-dim",
            "3",
            "--gru-hidden",
            "8",
            "--gru-layers",
            "1",
            "--epochs",
            "10000",
            "--batch-size",
            "4",
            "--max-seconds",
            "0.3",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    assert vaekit.train.fit is real_fit  # the wrapper is undone
    r = json.loads(out.read_text())
    assert json.loads((run / "config.json").read_text())["train"]["budget_clock"] == "cpu"
    assert r["stopped"] == "max_seconds" and r["cpu_seconds"] >= 0.3 and r["train_molecules"] == 10
    full, rest = divmod(r["steps"], 3)  # an epoch: 10 molecules in batches of 4, 4, 2
    assert 10 * full + 2 * rest <= r["molecules_seen"] <= 10 * full + 4 * rest
    assert r["epochs"] == pytest.approx(r["molecules_seen"] / 10)
    assert len(vs.read_lines(samples)) == 7 == r["samples"]


def test_the_recorded_command_names_no_folder_of_this_machine(vs):
    argv = ["--venv", "/somewhere/venv", "--budget-minutes", "1", "--work=/else/where", "--samples", "500"]
    assert vs.portable(argv) == ["--venv", "VENV", "--budget-minutes", "1", "--work=WORK", "--samples", "500"]


def bench_script(name: str):
    """bench/NAME.py as a module (it imports bench/common.py beside it)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_fcd_curve_reads_checkpoint_and_minutes_and_draws_its_figure(tmp_path):
    """bench/chem_fcd_curve.py: CHECKPOINT:CPU_MINUTES points (a path may hold colons), and its figure."""
    import argparse

    curve = bench_script("chem_fcd_curve")
    common = bench_script("common")  # the helpers the curve scripts share
    assert common.checkpoint_point("models/chemvae-selfies:66") == ("models/chemvae-selfies", 66.0)
    assert common.checkpoint_point("a:b/run:12.5") == ("a:b/run", 12.5)
    for bad in ("models/chemvae-selfies", "run:soon"):
        with pytest.raises(argparse.ArgumentTypeError, match="CHECKPOINT:CPU_MINUTES"):
            common.checkpoint_point(bad)
    points = [
        {"cpu_minutes": m, "FCD/Test": f, "valid": v, "samples": 10} for m, f, v in ((66, 11.8, 0.5), (88, 10.9, 0.6))
    ]
    curve.figure(points, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG" and not list(tmp_path.glob(".*"))
    gpu = [{"gpu_minutes" if k == "cpu_minutes" else k: v for k, v in p.items()} for p in points]
    curve.figure(gpu, tmp_path / "gpu.png", "gpu_minutes")  # --clock gpu: a GPU-trained model's points
    assert (tmp_path / "gpu.png").read_bytes()[:4] == b"\x89PNG"
    # --keep: the points of an earlier file measured the same way, or a clear refusal
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"samples": 10, "seed": 0, "points": points}))  # written before "sampler" was
    prior = {"missing": {"sampler": "prior"}}
    assert common.earlier_points(old, {"samples": 10, "seed": 0, "sampler": "prior"}, **prior) == points
    assert common.earlier_points(tmp_path / "none.json", {"samples": 10, "seed": 0}) == []
    with pytest.raises(SystemExit, match="old.json: measured with --samples 10 --seed 0 --sampler prior; --keep needs"):
        common.earlier_points(old, {"samples": 500, "seed": 0, "sampler": "prior"}, **prior)
    with pytest.raises(SystemExit, match="--sampler prior; --keep needs the same"):  # ex-post points are not prior ones
        common.earlier_points(old, {"samples": 10, "seed": 0, "sampler": "gmm"}, **prior)


def test_recon_curve_measures_the_three_protocols_and_draws_its_figure(tmp_path):
    """bench/chem_recon_curve.py on a stand-in model whose codes are the molecules' indices: a decoder right only
    when greedy scores 1 on the greedy protocols and 0 on the sampled one; one right only on even-indexed
    molecules scores a half everywhere (written non-canonically, so canonical SMILES are compared)."""
    import torch

    recon = bench_script("chem_recon_curve")
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN"]
    written = {"CCO": "OCC", "c1ccccc1": "C1=CC=CC=C1", "CC(=O)O": "OC(C)=O", "CCN": "NCC"}

    class StandIn:
        def __init__(self, right):
            self.right = right

        def encode_smiles(self, s, sample=False):
            return torch.tensor([[float(smiles.index(x))] for x in s])

        def decode_smiles(self, z, greedy=False, generator=None):
            return [written[smiles[int(i)]] if self.right(int(i), greedy) else "CCCC" for i in z[:, 0]]

    assert recon.measure(StandIn(lambda i, greedy: greedy), smiles, 0) == {
        "recon": 0.0,
        "released": 1.0,
        "greedy_mean": 1.0,
    }
    half = recon.measure(StandIn(lambda i, greedy: i % 2 == 0), smiles, 0)
    assert half == {"recon": 0.5, "released": 0.5, "greedy_mean": 0.5}
    points = [{"cpu_minutes": m, "recon": r, "released": 0.5, "molecules": 4} for m, r in ((275, 0.34), (350, 0.41))]
    recon.figure(points, tmp_path / "recon.png")
    assert (tmp_path / "recon.png").read_bytes()[:4] == b"\x89PNG" and not list(tmp_path.glob(".*"))


def test_fcd_curve_refuses_an_unknown_sampler_in_one_line_before_loading_anything():
    import subprocess

    out = subprocess.run(
        [sys.executable, str(BENCH / "chem_fcd_curve.py"), "no/such/run:1", "--sampler", "nope"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith("unknown sampler 'nope'; known samplers: gmm, prior, twostage")


def test_train_best_finds_the_exact_top_molecules_by_their_bound():
    """bench/chem_train_best.py scores molecules in full only in the order of an upper bound (logP and SA, no
    cycle penalty) and stops when none left can enter the top: its answer is the brute-force one."""
    from vaekit.chem import props
    from vaekit.data.smiles import Molecules

    tb = bench_script("chem_train_best")
    smiles = [props.canonical(s) for s in [*MOLS, "C1CCCCCCCCCCC1", "CCCCCCCCCCCCCC", "c1ccc(-c2ccccc2)cc1"]]
    mols = Molecules(smiles, props.properties(smiles))
    exact = [props.penalized_logp(s) for s in smiles]
    brute = sorted(zip(exact, smiles), key=lambda t: -t[0])
    for top in (1, 3, len(smiles)):
        best, checked, bound = tb.best_of(mols, top)
        assert [s for _, s in best] == [s for _, s in brute[:top]] and top <= checked <= len(smiles)
        assert all(b >= e - 1e-9 for b, e in zip(bound, exact))  # an upper bound indeed
    assert tb.best_of(mols, 1)[1] < len(smiles)  # the bound spares most molecules the full score


def test_chem_bo_refuses_a_missing_model_in_one_line_before_any_work(tmp_path):
    import subprocess

    out = subprocess.run(
        [sys.executable, str(BENCH / "chem_bo.py"), str(tmp_path / "no-model")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("chem_bo.py: error: ") and ("no-model" in last or "moses" in last)
    out = subprocess.run(
        [sys.executable, str(BENCH / "chem_bo.py"), str(tmp_path / "no-model"), "--methods", "global,tpe"],
        capture_output=True,
        text=True,
    )
    known = "known: global, trust_region, trust_region_local"
    assert out.returncode == 2 and out.stderr.strip().endswith(f"unknown ['tpe']; {known}")


def test_recon_curve_refuses_a_missing_checkpoint_in_one_line():
    import subprocess

    out = subprocess.run(
        [sys.executable, str(BENCH / "chem_recon_curve.py"), "no/such/run:1"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith("no/such/run: no checkpoint here")


def test_vs_moses_filters_names_itself_when_the_venv_is_missing(tmp_path):
    """Without MOSES's venv the molecule-by-molecule check stops in one line that says how to make it, before
    any model is loaded or sampled."""
    import subprocess

    out = subprocess.run(
        [sys.executable, str(BENCH / "vs_moses_filters.py"), "no/such/model", "--venv", str(tmp_path / "venv")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        f"vs_moses_filters: {tmp_path / 'venv' / 'bin' / 'python'} not found; make the venv with "
        f"`bash bench/moses/setup.sh {tmp_path / 'venv'}`"
    )


def test_vs_moses_filters_refuses_a_missing_model_in_one_line(tmp_path):
    import subprocess

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")  # a venv is named; the model is what is missing
    out = subprocess.run(
        [sys.executable, str(BENCH / "vs_moses_filters.py"), "no/such/model", "--venv", str(venv)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith("no/such/model: no checkpoint here")
