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
    main(
        [
            "fit",
            str(rd),
            "--data",
            "digits",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--epochs",
            "2",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    assert {"config.json", "checkpoint.safetensors", "log.csv"} <= {p.name for p in rd.iterdir()}
    main(["eval", str(rd), "--k", "5", "--nll-k", "20"])
    metrics = json.loads((rd / "metrics.json").read_text())["test"]
    assert metrics["n"] == 359 and metrics["nll"] > 0 and metrics["elbo"] <= metrics["iwae5"] + 1.0
    main(["sample", str(rd), "-n", "9", "--out", str(tmp_path / "s.npy")])
    assert np.load(tmp_path / "s.npy").shape == (9, 8, 8)
    main(["encode", str(rd), "--out", str(tmp_path / "z.npy")])
    assert np.load(tmp_path / "z.npy").shape == (359, 2)
    main(
        [
            "fit",
            str(rd),
            "--epochs",
            "3",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--resume",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    assert "steps" in capsys.readouterr().out


def test_init_from_starts_a_new_run_from_another_runs_weights(tmp_path, capsys, monkeypatch):
    import csv

    from vaekit.checkpoint import load_model

    base = ["--no-progress", "--no-tensorboard", "--batch-size", "64"]
    main(["fit", str(tmp_path / "a"), "--latent-dim", "2", "--hidden", "32", "--epochs", "30", *base])
    main(
        ["fit", str(tmp_path / "fresh"), "--latent-dim", "2", "--hidden", "32", "--beta", "0.5", "--epochs", "1", *base]
    )
    monkeypatch.chdir(tmp_path)  # a relative --init-from stays relative in config.json: no absolute path to commit
    main(["fit", str(tmp_path / "b"), "--init-from", "a", "--beta", "0.5", "--epochs", "1", *base])
    b = load_model(tmp_path / "b")
    assert b.name == "vae" and b.config.beta == 0.5 and b.config.latent_dim == 2 and b.config.hidden == (32,)

    def first_loss(run):
        return float(next(csv.DictReader(open(tmp_path / run / "log.csv")))["loss"])

    assert first_loss("b") < 0.8 * first_loss("fresh")  # it starts where run a ended, not from scratch
    assert json.loads((tmp_path / "b" / "config.json").read_text())["data"]["init_from"] == "a"
    np.save(tmp_path / "small.npy", np.random.default_rng(0).random((20, 4, 4)).astype(np.float32))
    for args, match in [
        (["--init-from", str(tmp_path / "a"), "--data", str(tmp_path / "small.npy")], "differs in ['data_shape']"),
        (["--init-from", str(tmp_path / "a"), "--latent-dim", "3"], "weights do not fit"),
        (["--init-from", str(tmp_path / "a"), "--resume"], "without --config and --resume"),
        (["--init-from", str(tmp_path / "nowhere")], "no checkpoint"),
    ]:
        with pytest.raises(SystemExit):
            main(["fit", str(tmp_path / "c"), *args, *base])
        assert match in capsys.readouterr().err
    assert not (tmp_path / "c" / "checkpoint.safetensors").exists()


def test_fit_precision_is_recorded_and_resume_keeps_it(tmp_path, capsys):
    base = ["--latent-dim", "2", "--hidden", "16", "--no-progress", "--no-tensorboard", "--batch-size", "64"]
    main(["fit", str(tmp_path / "r"), "--epochs", "1", "--precision", "bfloat16", *base])
    assert json.loads((tmp_path / "r" / "config.json").read_text())["train"]["precision"] == "bfloat16"
    main(["fit", str(tmp_path / "r"), "--resume", "--epochs", "2", "--no-progress"])  # goes on in bfloat16
    with pytest.raises(SystemExit) as e:  # what a run computes is not changed by --resume
        main(["fit", str(tmp_path / "r"), "--resume", "--epochs", "3", "--precision", "float32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "precision bfloat16; --resume cannot change it to float32" in err[-1]


@pytest.mark.parametrize(
    "args, match",
    [
        (["fit", "{rd}", "--model", "diffusion"], "unknown model 'diffusion'"),
        (["fit", "{rd}", "--data", "nowhere.npz"], "nowhere.npz"),
        (["fit", "{rd}", "--config", "{bad}"], "invalid JSON"),
        (["fit", "{rd}", "--precision", "half"], "argument --precision: invalid choice: 'half'"),
        (["fit", "{rd}", "--model", "autoencoder", "--beta", "2"], "--beta is not a field of model 'autoencoder'"),
        (["eval", "{empty}"], "no checkpoint"),
        (["data", "fetch", "nope"], "unknown data set 'nope'"),
        (["report", "nope"], "unknown report 'nope'"),
    ],
)
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
    assert argv == [
        "vaekit",
        "report",
        "iwae2015",
        "--quick",
        "--option",
        "budget_minutes=0.02",
        "--option",
        "nll_k=20",
    ]
    args = build_parser().parse_args(argv[1:])  # the CLI accepts it as written
    assert args.quick and args.option == ["budget_minutes=0.02", "nll_k=20"]


def test_a_report_option_that_cannot_be_read_is_a_one_line_error(tmp_path, capsys):
    from vaekit.cli import main

    with pytest.raises(SystemExit) as e:
        main(["report", "iwae2015", "--quick", "--out", str(tmp_path), "--option", "workers=abc"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "vaekit: error: report iwae2015: option workers must be int, got 'abc'"


def test_a_report_that_fails_on_bad_input_leaves_no_empty_output_folder(tmp_path, capsys):
    from vaekit.cli import main

    out = tmp_path / "new" / "iwae"
    with pytest.raises(SystemExit) as e:
        main(["report", "iwae2015", "--quick", "--out", str(out), "--option", "workers=abc"])
    assert e.value.code == 2 and not out.exists()
    out.mkdir()  # a folder the user already had stays
    with pytest.raises(SystemExit):
        main(["report", "iwae2015", "--quick", "--out", str(out), "--option", "workers=abc"])
    assert out.is_dir()


# -- no traceback reaches a user: one line for every error a user can fix ----------------------------
TINY = ["--hidden", "8", "--latent-dim", "2", "--max-steps", "2", "--no-progress", "--no-tensorboard"]


def one_line_error(capsys, argv, code=2):
    """Run the CLI in-process; return its one stderr line, asserting the exit status."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A run on digits (8 x 8) and data files to feed it."""
    d = tmp_path_factory.mktemp("tiny")
    main(["fit", str(d / "run"), *TINY])
    rng = np.random.default_rng(0)
    np.save(d / "flat.npy", rng.random((20, 6)).astype(np.float32))
    np.save(d / "unit.npy", rng.random((20, 8, 8)).astype(np.float32))
    np.save(d / "real.npy", rng.normal(100, 5, (40, 6)).astype(np.float32))
    np.save(d / "signed.npy", rng.normal(0, 1, (40, 6)).astype(np.float32))
    np.save(d / "huge.npy", np.full((4, 3), 1e300))
    (d / "fake.npy").write_bytes(b"these bytes are not a NumPy file")
    (d / "afile").write_text("x")
    (d / "half.json").write_text(json.dumps({"latent_dim": 2.5}))
    return d


@pytest.mark.parametrize(
    "argv, match",
    [
        (["sample", "{run}", "-n", "0"], "argument -n: must be >= 1, got 0"),
        (["sample", "{run}", "-n", "-3"], "argument -n: must be >= 1, got -3"),
        (["sample", "{run}", "-n", "99999999999999999999"], "argument -n: must be <= 100,000"),
        (["sample", "{run}", "--out", "{d}/x.txt"], "unsupported output type '.txt'"),
        (["sample", "{run}", "--out", "{d}/nodir/x.png"], "nodir does not exist"),
        (["encode", "{run}", "--out", "{d}/nodir/z.npy"], "nodir does not exist"),
        (["encode", "{run}", "--out", "{d}/z.txt"], "unsupported output type '.txt'; use .npy"),
        (["eval", "{run}", "--k", "0"], "argument --k: must be >= 1, got 0"),
        (["eval", "{run}", "--k", "-1"], "argument --k: must be >= 1, got -1"),
        (["eval", "{run}", "--limit", "0"], "argument --limit: must be >= 1, got 0"),
        (["eval", "{run}", "--limit", "-5"], "argument --limit: must be >= 1, got -5"),
        (["eval", "{run}", "--nll-k", "x"], "argument --nll-k: expected an integer, got 'x'"),
        (["eval", "{run}", "--data", "{d}/flat.npy", "--split", "train"], "items have shape (6,) but the model"),
        (
            ["encode", "{run}", "--data", "{d}/flat.npy", "--split", "train", "--out", "{d}/z.npy"],
            "items have shape (6,) but the model",
        ),
        (["eval", "{run}/checkpoint.safetensors"], "not a run directory"),
        (["eval", "{d}/nowhere"], "no such run directory"),
        (["fit", "{d}/afile", *TINY], "not a directory"),
        (["fit", "{d}/r", "--config", "{d}/half.json", *TINY[:2], *TINY[4:]], "latent_dim"),
        (
            ["fit", "{d}/r", "--data", "{d}/signed.npy", "--likelihood", "categorical", *TINY],
            "the categorical likelihood needs whole numbers from 0 to 255",
        ),
        (["fit", "{d}/r", "--data", "{d}/real.npy", *TINY], "use the gaussian likelihood (--likelihood gaussian)"),
        (["fit", "{d}/r", "--data", "{d}/huge.npy", "--likelihood", "gaussian", *TINY], "out of float32 range"),
        (["fit", "{d}/r", "--data", "{d}/fake.npy", *TINY], "not a NumPy .npy file"),
        (["fit", "{d}/r", "--data", "{d}/unit.npy", "--split", "test", *TINY], "no split 'test'; it has train, all"),
        (["eval", "{run}", "--data", "{d}/unit.npy"], "no split 'test'; it has train, all"),
        (["eval", "{run}", "--data", "{d}/imgs"], "no split 'test'; it has train, all"),
        (["eval", "{run}", "--split", "bogus"], "digits: no split 'bogus'; it has all, test, train"),
        (["fit", "{d}/r", "--epochs", "-1"], "fit: argument --epochs: must be >= 0"),
        (["fit", "{d}/r", "--lr", "nan"], "fit: argument --lr: must be a finite number"),
        (["fit", "{d}/r", "--hidden", "0"], "fit: argument --hidden: expected comma-separated integers >= 1"),
        (["fitt", "{d}/r"], "invalid choice: 'fitt'"),
    ],
)
def test_bad_input_is_one_line(tiny, capsys, argv, match):
    from PIL import Image

    (tiny / "imgs").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tiny / "imgs" / "a.png")
    line = one_line_error(capsys, [a.format(run=tiny / "run", d=tiny) for a in argv])
    assert line.startswith("vaekit: error:") and match in line, line
    assert not (tiny / "r" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize(
    "data, match",
    [
        (3, "field 'data' must be a JSON object"),
        (None, "field 'data' must be a JSON object"),
        ({"spec": 3}, "field 'data.spec' must be a data set name or path"),
        ({"spec": None}, "field 'data.spec'"),
        ({"spec": {"a": 1}}, "field 'data.spec'"),
        ({"spec": "digits", "data_dir": 7}, "field 'data.data_dir'"),
    ],
)
def test_a_runs_config_json_with_bad_data_fields_is_one_line(tiny, tmp_path, capsys, data, match):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny / "run", run)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "data": data}))
    for argv in (["eval", run, "--k", "2"], ["encode", run, "--out", tmp_path / "z.npy"]):
        line = one_line_error(capsys, argv)
        assert match in line and str(run / "config.json") in line, line


def test_an_unexpected_error_names_a_crash_report(tiny, tmp_path, capsys, monkeypatch):
    from vaekit import cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(cli.COMMANDS, "sample", broken)
    line = one_line_error(capsys, ["sample", tiny / "run"], code=1)
    assert line.startswith("vaekit: internal error (ZeroDivisionError: division by zero)")
    reports = list((tmp_path / "cache" / "crashes").iterdir())
    assert len(reports) == 1 and str(reports[0]) in line  # one finished file, no temp file left
    text = reports[0].read_text()
    assert "Traceback" in text and "in broken" in text and json.dumps(["sample", str(tiny / "run")]) in text


def test_interrupt_and_os_errors_are_one_line(tiny, capsys, monkeypatch):
    from vaekit import cli

    def interrupted(args):
        raise KeyboardInterrupt

    def denied(args):
        raise PermissionError(13, "Permission denied", "/some/where")

    monkeypatch.setitem(cli.COMMANDS, "sample", interrupted)
    assert one_line_error(capsys, ["sample", tiny / "run"], code=130) == "vaekit: error: interrupted"
    monkeypatch.setitem(cli.COMMANDS, "sample", denied)
    assert one_line_error(capsys, ["sample", tiny / "run"]) == "vaekit: error: /some/where: Permission denied"

    def too_big(args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried "
            "to allocate 8000000000000 bytes."
        )

    monkeypatch.setitem(cli.COMMANDS, "sample", too_big)
    assert one_line_error(capsys, ["sample", tiny / "run"]).startswith("vaekit: error: out of memory; use fewer")


def test_sample_writes_npy_for_items_that_are_not_images(tiny, tmp_path, capsys):
    run = tmp_path / "flat"
    main(["fit", str(run), "--data", str(tiny / "flat.npy"), *TINY])
    main(["sample", str(run), "-n", "5"])
    assert np.load(run / "samples.npy").shape == (5, 6)
    line = one_line_error(capsys, ["sample", run, "--out", tmp_path / "s.png"])
    assert "items of shape (6,) cannot be drawn as an image grid; write them as .npy" in line
    main(["sample", str(tiny / "run"), "-n", "4", "--out", str(tmp_path / "s.png")])
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_gaussian_on_unscaled_data_warns_and_standardize_trains_in_unit_scale(tiny, tmp_path, capsys):
    import torch

    from vaekit import bounds
    from vaekit.checkpoint import load_model
    from vaekit.data import Standardization, load

    base = ["--data", str(tiny / "real.npy"), "--likelihood", "gaussian", *TINY]
    main(["fit", str(tmp_path / "raw"), *base])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vaekit: warning:") and "--standardize" in err[0], err
    run = tmp_path / "std"
    main(["fit", str(run), *base, "--standardize"])
    assert "warning" not in capsys.readouterr().err
    x = load(str(tiny / "real.npy")).x
    st = Standardization.from_json(json.loads((run / "config.json").read_text())["data"]["standardize"], (6,))
    assert torch.allclose(st.mean, x.mean(0), atol=1e-4) and torch.allclose(st.std, x.std(0, unbiased=False), atol=1e-4)
    model = load_model(run)
    # eval gives log-likelihoods and squared error in the data's own units: log p(x) = log p(x_std) - sum log std
    main(["eval", str(run), "--split", "train", "--k", "4"])
    res = json.loads((run / "metrics.json").read_text())["train"]
    xs = (x - x.mean(0)) / x.std(0, unbiased=False)
    torch.manual_seed(0)
    with torch.no_grad():
        r, kl = bounds.elbo_terms(model, xs)
    assert res["elbo"] == pytest.approx(float((r - kl).mean() - x.std(0, unbiased=False).log().sum()), rel=1e-4)
    rec = model.reconstruct(xs) * x.std(0, unbiased=False) + x.mean(0)
    assert res["sq_err"] == pytest.approx(float((rec - x).pow(2).sum(1).mean()), rel=1e-4)
    # encode standardises, sample undoes it: draws come out on the data's scale
    main(["encode", str(run), "--split", "train", "--out", str(tmp_path / "z.npy")])
    assert np.allclose(np.load(tmp_path / "z.npy"), model.embed(xs).numpy(), atol=1e-5)
    main(["sample", str(run), "-n", "200"])
    s = np.load(run / "samples.npy")
    assert abs(s.mean() - 100) < 10 and s.shape == (200, 6)
    # the explorer too: the map is of standardised codes, decodings and encodings are in the data's own units
    from vaekit.explore.server import load_run

    ex = load_run(run, split="train")
    assert torch.allclose(ex.z, model.embed(xs[: len(ex.z)]), atol=1e-5)
    assert torch.allclose(ex.encode_items(x[:3].tolist()), model.embed(xs[:3]), atol=1e-5)
    with torch.no_grad():
        mean = model.generate(ex.z[:2]) * x.std(0, unbiased=False) + x.mean(0)
    assert np.allclose(ex.decode(ex.z[:2], "array"), mean.numpy(), rtol=1e-4)


def test_a_relative_data_path_is_found_from_any_folder(tiny, tmp_path, monkeypatch, capsys):
    import shutil

    (tmp_path / "a").mkdir()
    shutil.copy(tiny / "unit.npy", tmp_path / "a" / "unit.npy")
    monkeypatch.chdir(tmp_path / "a")
    main(["fit", "run", "--data", "unit.npy", *TINY])
    spec = json.loads((tmp_path / "a" / "run" / "config.json").read_text())["data"]["spec"]
    assert spec == str(tmp_path / "a" / "unit.npy")
    monkeypatch.chdir(tmp_path)
    main(["eval", "a/run", "--split", "train", "--k", "2"])
    assert json.loads((tmp_path / "a" / "run" / "metrics.json").read_text())["train"]["n"] == 20


def test_squared_error_of_a_categorical_model_is_in_pixel_units():
    import torch

    from vaekit import models
    from vaekit.evaluate import evaluate

    torch.manual_seed(0)
    model = models.build("vae", data_shape=(5,), latent_dim=2, hidden=(4,), likelihood="categorical", n_categories=4)
    x = torch.randint(0, 4, (30, 5)).float()  # level indices 0..3, pixels 0, 1/3, 2/3, 1
    res = evaluate(model, x, k=2)
    want = (model.reconstruct(x) - x / 3).pow(2).sum(1).mean()
    assert res["sq_err"] == pytest.approx(float(want), rel=1e-5) and res["sq_err"] <= 5
