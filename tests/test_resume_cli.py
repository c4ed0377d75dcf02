"""`vaekit fit RUN --resume`: config.json is the source of truth of a run (model, training settings, data);
a run killed with SIGKILL resumes bit-exactly; a start that fails leaves no run directory behind."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vaekit import checkpoint
from vaekit.cli import main
from vaekit.errors import VaekitError

QUIET = ["--no-progress", "--no-tensorboard"]


def log_rows(run_dir):
    """log.csv without its clock columns (none today; wall or CPU time would differ between runs)."""
    with open(run_dir / "log.csv", newline="") as f:
        return [{k: v for k, v in r.items() if "second" not in k and "time" not in k} for r in csv.DictReader(f)]


def step_of(run_dir) -> int:
    try:
        return checkpoint.read(run_dir / "checkpoint.safetensors")[1]["meta"]["step"]
    except VaekitError:  # not written yet
        return -1


def kill_after_first_checkpoint(argv, cwd, env=None, timeout=120.0) -> int:
    """Run `vaekit fit ...` in a new process, SIGKILL it as soon as a checkpoint after step 0 exists; the step
    of the checkpoint it leaves."""
    env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same arithmetic as here
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaekit", "fit", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    run_dir, end = cwd / argv[0], time.monotonic() + timeout
    try:
        while step_of(run_dir) <= 0:
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(
                    f"no checkpoint after step 0 before the run ended: {proc.communicate()[1][-2000:]}"
                )
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return step_of(run_dir)


def npy_data(folder):
    np.save(folder / "x.npy", np.random.default_rng(0).random((64, 4, 4)).astype(np.float32))
    return ["--data", "x.npy", "--hidden", "8", "--latent-dim", "2", "--batch-size", "8"], 8


def image_folder(folder):
    from PIL import Image

    (folder / "pics").mkdir()
    pixels = np.random.default_rng(1).integers(0, 256, (24, 5, 4), dtype=np.uint8)
    for i, a in enumerate(pixels):
        Image.fromarray(a, mode="L").save(folder / "pics" / f"{i:02d}.png")
    return ["--data", "pics", "--hidden", "8", "--latent-dim", "2", "--batch-size", "3"], 8


def molecules(folder):
    pytest.importorskip("rdkit")
    pytest.importorskip("selfies")
    mols = [
        "CCO",
        "c1ccccc1O",
        "CC(=O)Oc1ccccc1C(=O)O",
        "ClC(Cl)Br",
        "C[C@H](N)C(=O)O",
        "O=C1CCCN1",
        "CC#N",
        "c1ccc2[nH]ccc2c1",
        "FC(F)(F)c1ccncc1",
        "CCN(CC)CC",
    ]
    (folder / "mols.csv").write_text("smiles\n" + "\n".join(mols) + "\n")
    return [
        "--model",
        "chemvae",
        "--data",
        "mols.csv",
        "--kind",
        "selfies",
        "--molecules",
        "8",
        "--latent-dim",
        "2",
        "--gru-hidden",
        "8",
        "--gru-layers",
        "1",
        "--batch-size",
        "2",
    ], 4


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and every process of a test must use as many threads as the others)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize(
    "make_data, epochs", [(npy_data, 10), (image_folder, 10), (molecules, 20)], ids=["npy", "image-folder", "chemvae"]
)
def test_a_killed_cli_run_resumes_bit_exactly(tmp_path, monkeypatch, one_thread, make_data, epochs):
    """Started with relative paths and non-default settings, killed with SIGKILL after its first checkpoint, then
    resumed from another folder with `--resume --epochs N` alone: the log equals an uninterrupted run's."""
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    data_args, steps_per_epoch = make_data(tmp_path)
    settings = [*data_args, "--lr", "0.002", "--seed", "3", "--checkpoint-every", "10", "--epochs", str(epochs), *QUIET]
    monkeypatch.chdir(tmp_path)
    main(["fit", str(tmp_path / "full"), *settings])
    total = epochs * steps_per_epoch
    assert int(log_rows(tmp_path / "full")[-1]["step"]) == total

    cut = kill_after_first_checkpoint(["cut", *settings], tmp_path)
    assert 0 < cut < total, "the run was killed after its first checkpoint and before its end"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    main(["fit", str(tmp_path / "cut"), "--resume", "--epochs", str(epochs)])
    assert log_rows(tmp_path / "cut") == log_rows(tmp_path / "full")
    full, cut_cfg = (json.loads((tmp_path / r / "config.json").read_text()) for r in ("full", "cut"))
    assert cut_cfg == full and os.path.isabs(full["data"]["spec"])
    assert not list((tmp_path / "cut").glob(".*.tmp"))  # the killed writer's temp files are swept


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run trained on a .npy file given by a relative path, with non-default settings."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 4, 4)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "runs/a",
            "--data",
            "x.npy",
            "--epochs",
            "1",
            "--lr",
            "0.002",
            "--batch-size",
            "16",
            "--hidden",
            "8",
            "--latent-dim",
            "3",
            "--beta",
            "0.5",
            "--seed",
            "4",
            *QUIET,
        ]
    )
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    return tmp_path / "runs" / "a"


def test_resume_restores_model_training_settings_and_data(run, capsys):
    main(["fit", str(run), "--resume", "--epochs", "2"])  # from another folder: the data path is absolute
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["lr"] == 0.002 and cfg["train"]["batch_size"] == 16 and cfg["train"]["seed"] == 4
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["tensorboard"] is False
    assert cfg["model"]["config"]["hidden"] == [8] and cfg["model"]["config"]["beta"] == 0.5
    assert cfg["data"]["spec"] == str(run.parent.parent / "x.npy")
    rows = log_rows(run)
    per_epoch = [sum(r["epoch"] == e for r in rows) for e in ("0", "1")]
    assert per_epoch == [3, 3] and {r["lr"] for r in rows} == {"0.002"}  # 40 items in batches of 16, both epochs


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--lr", "0.001"],
            "runs/a was trained with lr 0.002; --resume cannot change it to 0.001 (start a new run, or --init-from)",
        ),
        (["--batch-size", "128"], "trained with batch_size 16; --resume cannot change it to 128"),
        (["--seed", "0"], "trained with seed 4; --resume cannot change it to 0"),
        (["--binarize"], "trained with binarize False; --resume cannot change it to True"),
        (["--hidden", "64"], "runs/a holds a vae with hidden (8,), the flags ask for (64,); --resume cannot change it"),
        (["--beta", "1"], "holds a vae with beta 0.5, the flags ask for 1.0"),
        (["--model", "iwae"], "trained with model vae; --resume cannot change it to iwae"),
        (["--data", "digits"], "x.npy; --resume cannot change it to digits"),
        (["--split", "test"], "trained with split train; --resume cannot change it to test"),
        (["--overwrite"], "--resume continues the run in the directory and --overwrite replaces it"),
    ],
)
def test_resume_refuses_flags_that_change_the_run_and_names_the_field(run, capsys, flags, message):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(SystemExit) as e:
        main(["fit", str(run), "--resume", "--epochs", "3", *flags])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing written


def test_resume_accepts_the_recorded_values_and_what_may_change(run):
    main(
        [
            "fit",
            str(run),
            "--resume",
            "--epochs",
            "2",
            "--lr",
            "0.002",
            "--hidden",
            "8",
            "--data",
            str(run.parent.parent / "x.npy"),
            "--max-steps",
            "5",
            "--checkpoint-every",
            "1",
            "--max-seconds",
            "60",
        ]
    )
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert cfg["max_steps"] == 5 and cfg["checkpoint_every"] == 1 and cfg["max_seconds"] == 60
    assert step_of(run) == 5


def test_resume_refuses_data_that_changed(run, capsys):
    x = np.load(run.parent.parent / "x.npy")
    x[0, 0, 0] = 1 - x[0, 0, 0]
    np.save(run.parent.parent / "x.npy", x)
    with pytest.raises(SystemExit):
        main(["fit", str(run), "--resume", "--epochs", "2"])
    assert "was trained on other items than" in capsys.readouterr().err and step_of(run) == 3


def test_resume_without_a_run_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main(["fit", str(tmp_path / "empty"), "--resume"])
    assert "nothing to resume" in capsys.readouterr().err


def test_a_model_config_file_cannot_change_a_resumed_run(run, tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"latent_dim": 5}))
    with pytest.raises(SystemExit):
        main(["fit", str(run), "--resume", "--config", str(tmp_path / "c.json")])
    assert "holds a vae with latent_dim 3, the flags ask for 5" in capsys.readouterr().err
    (tmp_path / "c.json").write_text(json.dumps({"latent_dim": 3}))  # the same value: accepted
    main(["fit", str(run), "--resume", "--config", str(tmp_path / "c.json"), "--epochs", "2"])
    assert step_of(run) == 6


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--lr", "-1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--config", "{bad}"], "invalid JSON"),
        (["--config", "{wrong}"], "latent_dim"),
        (["--device", "no-such-device"], "device"),
        (["--kind", "selfies"], "--model chemvae"),
        (["--data", "nowhere.npy"], "nowhere.npy"),
    ],
)
def test_a_failed_start_leaves_no_run_directory(tmp_path, capsys, flags, match):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "wrong.json").write_text(json.dumps({"latent_dim": 0}))
    flags = [f.format(bad=tmp_path / "bad.json", wrong=tmp_path / "wrong.json") for f in flags]
    with pytest.raises(SystemExit) as e:
        main(["fit", str(tmp_path / "runs" / "r"), "--epochs", "1", *tiny(tmp_path), *QUIET, *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and match in err, err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def tiny(folder):
    """Flags of a small model on 32 items of 4x4 pixels."""
    np.save(folder / "tiny.npy", np.random.default_rng(2).random((32, 4, 4)).astype(np.float32))
    return ["--data", str(folder / "tiny.npy"), "--hidden", "8", "--batch-size", "8"]


def test_zero_epochs_writes_the_initial_checkpoint_which_resumes(tmp_path, capsys):
    main(["fit", str(tmp_path / "r"), "--epochs", "0", *tiny(tmp_path), *QUIET])
    assert step_of(tmp_path / "r") == 0
    main(["fit", str(tmp_path / "r"), "--resume", "--epochs", "2"])
    main(["fit", str(tmp_path / "s"), "--epochs", "2", *tiny(tmp_path), *QUIET])
    assert log_rows(tmp_path / "r") == log_rows(tmp_path / "s")


def test_the_leftovers_of_a_start_that_failed_before_training_are_not_a_run(tmp_path, capsys):
    """Older versions wrote config.json, log.csv and tb/ before training began; such a folder is no run to protect."""
    left = tmp_path / "r"
    (left / "tb").mkdir(parents=True)
    (left / "config.json").write_text("{}")
    (left / "log.csv").write_text("step,epoch,loss\n")
    (tmp_path / ".r.12345.tmp").mkdir()  # a start killed before it renamed its folder into place
    main(["fit", str(left), "--epochs", "1", *tiny(tmp_path), *QUIET])
    assert step_of(left) > 0 and not (tmp_path / ".r.12345.tmp").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a run")
    with pytest.raises(SystemExit):
        main(["fit", str(tmp_path / "mine"), "--epochs", "1", *tiny(tmp_path), *QUIET])
    assert "not empty" in capsys.readouterr().err
    main(["fit", str(tmp_path / "mine"), "--epochs", "1", "--overwrite", *tiny(tmp_path), *QUIET])
    assert (tmp_path / "mine" / "notes.txt").is_file() and step_of(tmp_path / "mine") > 0


def test_resume_of_a_chem_run_whose_data_brings_a_new_token_names_it(tmp_path, monkeypatch, capsys, one_thread):
    pytest.importorskip("rdkit")
    mols = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "O=C1CCCN1", "CC#N", "CCN(CC)CC"]
    (tmp_path / "mols.csv").write_text("smiles\n" + "\n".join(mols) + "\n")
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "chem",
            "--model",
            "chemvae",
            "--data",
            "mols.csv",
            "--latent-dim",
            "2",
            "--gru-hidden",
            "8",
            "--gru-layers",
            "1",
            "--batch-size",
            "3",
            "--epochs",
            "1",
            *QUIET,
        ]
    )
    (tmp_path / "mols.csv").write_text("smiles\n" + "\n".join(mols + ["CCBr"]) + "\n")
    with pytest.raises(SystemExit) as e:
        main(["fit", "chem", "--resume", "--epochs", "2"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "'Br'" in err and "vocabulary" in err
    assert step_of(tmp_path / "chem") == 2


def test_init_from_a_chem_model_keeps_its_vocabulary_on_new_molecules(tmp_path, monkeypatch, capsys, one_thread):
    """Fine-tuning on other molecules keeps the model's vocabulary and property scales (its weights are shaped by
    them); molecules it cannot write are left out and counted, and a flag that would change them is refused."""
    pytest.importorskip("rdkit")
    mols = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "O=C1CCCN1", "CC#N", "CCN(CC)CC"]
    (tmp_path / "mols.csv").write_text("smiles\n" + "\n".join(mols) + "\n")
    (tmp_path / "more.csv").write_text("smiles\n" + "\n".join(mols + ["CCBr", "CCCO", "OCCN"]) + "\n")
    monkeypatch.chdir(tmp_path)
    small = ["--batch-size", "3", "--epochs", "1", *QUIET]
    main(["fit", "a", "--model", "chemvae", "--data", "mols.csv", "--latent-dim", "2", "--gru-hidden", "8",
          "--gru-layers", "1", *small])  # fmt: skip
    capsys.readouterr()
    main(["fit", "b", "--init-from", "a", "--data", "more.csv", *small])
    out = capsys.readouterr().out
    assert "1 of 9 molecules do not fit the vocabulary of a" in out
    a, b = (json.loads((tmp_path / r / "config.json").read_text()) for r in "ab")
    assert a["model"] == b["model"] and b["data"]["init_from"] == "a" and b["data"]["kind"] == "smiles"
    assert step_of(tmp_path / "b") == 3  # the 8 molecules that fit, in batches of 3
    main(["fit", "b", "--resume", "--epochs", "2", *QUIET[:1]])  # the same molecules are left out again
    assert step_of(tmp_path / "b") == 6
    with pytest.raises(SystemExit) as e:
        main(["fit", "c", "--init-from", "a", "--data", "more.csv", "--kind", "selfies", *small])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "keeps that model's kind (smiles)" in err
    assert not (tmp_path / "c").exists()


def test_resume_may_change_the_time_budget_and_its_clock(run):
    main(["fit", str(run), "--resume", "--epochs", "2", "--max-seconds", "60", "--budget-clock", "cpu"])
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert cfg["budget_clock"] == "cpu" and cfg["max_seconds"] == 60 and step_of(run) == 6
