"""The command line end to end on the embedded digits, and its one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from vaekit.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "vaekit", *args], capture_output=True, text=True, timeout=300)


def test_fit_eval_sample_encode(tmp_path, capsys):
    rd = tmp_path / "run"
    main(["fit", str(rd), "--data", "digits", "--latent-dim", "2", "--hidden", "32", "--epochs", "2",
          "--no-progress", "--no-tensorboard"])
    assert {"config.json", "checkpoint.safetensors", "log.csv"} <= {p.name for p in rd.iterdir()}
    main(["eval", str(rd), "--k", "5", "--nll-k", "20"])
    metrics = json.loads((rd / "metrics.json").read_text())["test"]
    assert metrics["n"] == 359 and metrics["nll"] > 0 and metrics["elbo"] <= metrics["iwae5"] + 1.0
    main(["sample", str(rd), "-n", "9", "--out", str(tmp_path / "s.npy")])
    assert np.load(tmp_path / "s.npy").shape == (9, 8, 8)
    main(["encode", str(rd), "--out", str(tmp_path / "z.npy")])
    assert np.load(tmp_path / "z.npy").shape == (359, 2)
    main(["fit", str(rd), "--epochs", "3", "--latent-dim", "2", "--hidden", "32", "--resume", "--no-progress",
          "--no-tensorboard"])
    assert "steps" in capsys.readouterr().out


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path, capsys):
    import csv

    from vaekit.checkpoint import load_model

    base = ["--no-progress", "--no-tensorboard", "--batch-size", "64"]
    main(["fit", str(tmp_path / "a"), "--latent-dim", "2", "--hidden", "32", "--epochs", "30", *base])
    main(["fit", str(tmp_path / "fresh"), "--latent-dim", "2", "--hidden", "32", "--beta", "0.5", "--epochs", "1",
          *base])
    main(["fit", str(tmp_path / "b"), "--init-from", str(tmp_path / "a"), "--beta", "0.5", "--epochs", "1", *base])
    b = load_model(tmp_path / "b")
    assert b.name == "vae" and b.config.beta == 0.5 and b.config.latent_dim == 2 and b.config.hidden == (32,)

    def first_loss(run):
        return float(next(csv.DictReader(open(tmp_path / run / "log.csv")))["loss"])

    assert first_loss("b") < 0.8 * first_loss("fresh")      # it starts where run a ended, not from scratch
    assert json.loads((tmp_path / "b" / "config.json").read_text())["data"]["init_from"] == str(tmp_path / "a")
    np.save(tmp_path / "small.npy", np.random.default_rng(0).random((20, 4, 4)).astype(np.float32))
    for args, match in [(["--init-from", str(tmp_path / "a"), "--data", str(tmp_path / "small.npy")],
                         "differs in ['data_shape']"),
                        (["--init-from", str(tmp_path / "a"), "--latent-dim", "3"], "weights do not fit"),
                        (["--init-from", str(tmp_path / "a"), "--resume"], "without --config and --resume"),
                        (["--init-from", str(tmp_path / "nowhere")], "no checkpoint")]:
        with pytest.raises(SystemExit):
            main(["fit", str(tmp_path / "c"), *args, *base])
        assert match in capsys.readouterr().err
    assert not (tmp_path / "c" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("args, match", [
    (["fit", "{rd}", "--model", "diffusion"], "unknown model 'diffusion'"),
    (["fit", "{rd}", "--data", "nowhere.npz"], "nowhere.npz"),
    (["fit", "{rd}", "--config", "{bad}"], "invalid JSON"),
    (["fit", "{rd}", "--model", "autoencoder", "--beta", "2"], "no config field"),
    (["eval", "{empty}"], "no checkpoint"),
    (["data", "fetch", "nope"], "unknown data set 'nope'"),
    (["report", "nope"], "unknown report 'nope'"),
])
def test_errors_are_one_line(tmp_path, capsys, args, match):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "empty").mkdir()
    args = [a.format(rd=tmp_path / "r", bad=tmp_path / "bad.json", empty=tmp_path / "empty") for a in args]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaekit: error:") and match in lines[0], err
    assert not (tmp_path / "r" / "checkpoint.safetensors").exists()


def test_help_lists_every_command():
    out = run("--help").stdout
    for cmd in ("fit", "eval", "sample", "encode", "data", "demo", "report"):
        assert cmd in out
    assert "--latent-dim" in run("fit", "--help").stdout


def test_a_report_records_the_command_line_that_reruns_it(tmp_path):
    import shlex

    from vaekit.cli import build_parser
    from vaekit.reports import run_report

    run_report("iwae2015", out_root=tmp_path, quick=True, budget_minutes="0.02", nll_k="20")
    cmd = json.loads((tmp_path / "iwae2015" / "results.json").read_text())["command"]
    argv = shlex.split(cmd)
    assert argv == ["vaekit", "report", "iwae2015", "--quick", "--option", "budget_minutes=0.02", "--option", "nll_k=20"]
    args = build_parser().parse_args(argv[1:])        # the CLI accepts it as written
    assert args.quick and args.option == ["budget_minutes=0.02", "nll_k=20"]


def test_a_report_option_that_cannot_be_read_is_a_one_line_error(tmp_path, capsys):
    from vaekit.cli import main

    with pytest.raises(SystemExit) as e:
        main(["report", "iwae2015", "--quick", "--out", str(tmp_path), "--option", "workers=abc"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "vaekit: error: report iwae2015: option workers must be int, got 'abc'"
