"""Fuzzing the whole command line: every command (but the long-running demo, explore and real reports) with
random flags and values, on run directories that are valid, half-valid, files or missing.

Each case runs in-process (`main(argv)`, SystemExit caught, output through capsys). A case passes when
nothing reaches the user as a traceback: exit status 0, or 2 with exactly one `vaekit: error: ...` line.
Exit status 1 (an unexpected exception, reported through a crash-report file) fails the test: it is a bug
to fix. The default run tries CLI_FUZZ_CASES cases (default 100); the slow test tries 2,000.
"""
import json
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from vaekit.cli import main

CASES = int(os.environ.get("CLI_FUZZ_CASES", "100"))
FIT_FIXED = ["--max-steps", "2", "--epochs", "1", "--hidden", "4", "--no-progress", "--no-tensorboard",
             "--device", "cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Run directories and data files shared by all cases (built once); crash reports go under it."""
    d = tmp_path_factory.mktemp("cli-fuzz")
    old_cache = os.environ.get("VAEKIT_CACHE")
    os.environ["VAEKIT_CACHE"] = str(d / "cache")
    rng = np.random.default_rng(0)
    np.save(d / "unit.npy", rng.random((30, 8, 8)).astype(np.float32))
    np.save(d / "flat.npy", rng.random((30, 6)).astype(np.float32))
    np.save(d / "real.npy", rng.normal(100, 5, (30, 6)).astype(np.float32))
    np.save(d / "levels.npy", rng.integers(0, 4, (30, 6)).astype(np.uint8) * 1.0)
    np.save(d / "huge.npy", np.full((3, 4), 1e300))
    np.savez(d / "split.npz", x_train=rng.random((20, 6)), x_test=rng.random((5, 6)))
    (d / "fake.npy").write_bytes(b"not numpy")
    (d / "afile").write_text("x")
    (d / "empty").mkdir()
    (d / "imgs").mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / "imgs" / f"{i}.png")
    for name, doc in {"cfg-ok.json": {"latent_dim": 2}, "cfg-float.json": {"latent_dim": 2.5},
                      "cfg-model.json": {"model": "vae", "config": {"latent_dim": 1}}, "cfg-list.json": [1, 2],
                      "cfg-bad.json": None}.items():
        (d / name).write_text("{not json" if doc is None else json.dumps(doc))
    runs = d / "runs"
    main(["fit", str(runs / "vae"), *FIT_FIXED, "--latent-dim", "2"])
    main(["fit", str(runs / "ae"), *FIT_FIXED, "--model", "autoencoder", "--data", str(d / "flat.npy")])
    main(["fit", str(runs / "std"), *FIT_FIXED, "--likelihood", "gaussian", "--standardize", "--data",
          str(d / "real.npy")])
    half = {"config-only": ["config.json"], "checkpoint-only": ["checkpoint.safetensors"]}
    for name, keep in half.items():
        (runs / name).mkdir()
        for f in keep:
            shutil.copy(runs / "vae" / f, runs / name / f)
    shutil.copytree(runs / "vae", runs / "corrupt")
    raw = bytearray((runs / "corrupt" / "checkpoint.safetensors").read_bytes())
    raw[-5] ^= 0xFF
    (runs / "corrupt" / "checkpoint.safetensors").write_bytes(bytes(raw))
    for name, data in {"data-number": 3, "data-null": None, "spec-object": {"spec": {"a": 1}},
                       "spec-missing-file": {"spec": str(d / "gone.npy")}}.items():
        shutil.copytree(runs / "vae", runs / name)
        cfg = json.loads((runs / name / "config.json").read_text())
        (runs / name / "config.json").write_text(json.dumps({**cfg, "data": data}))
    yield d
    if old_cache is None:
        os.environ.pop("VAEKIT_CACHE", None)
    else:
        os.environ["VAEKIT_CACHE"] = old_cache


RUNS = ["runs/vae", "runs/ae", "runs/std", "runs/config-only", "runs/checkpoint-only", "runs/corrupt",
        "runs/data-number", "runs/data-null", "runs/spec-object", "runs/spec-missing-file", "runs/nowhere",
        "afile", "empty", "runs/vae/checkpoint.safetensors"]
DATA = ["digits", "unit.npy", "flat.npy", "real.npy", "levels.npy", "huge.npy", "split.npz", "fake.npy", "imgs",
        "empty", "afile", "nowhere.npy", "mnist", ""]
ints = st.sampled_from(["-1", "0", "1", "2", "3", "x", "1e3", "99999999999999999999"])
reals = st.sampled_from(["-1", "0", "0.5", "1", "2.5", "nan", "inf", "1e-3", "x"])


def flag(name, values):
    return st.tuples(st.just(name), values)


def switch(name):
    return st.just((name,))


DATA_FLAGS = [flag("--data", st.sampled_from(DATA)), flag("--split", st.sampled_from(["train", "test", "all", "bogus"])),
              flag("--data-dir", st.sampled_from(["empty", "nowhere", "afile"]))]
FIT_FLAGS = DATA_FLAGS + [
    flag("--model", st.sampled_from(["vae", "iwae", "autoencoder", "aae", "avb", "gan", "nope"])),
    flag("--config", st.sampled_from(["cfg-ok.json", "cfg-float.json", "cfg-model.json", "cfg-list.json",
                                      "cfg-bad.json", "nowhere.json", "empty"])),
    flag("--latent-dim", ints), flag("--hidden", st.sampled_from(["4", "4,3", "0", "", "x", "70000"])),
    flag("--activation", st.sampled_from(["relu", "tanh", "bogus"])), flag("--arch", st.sampled_from(["mlp", "conv"])),
    flag("--channels", st.sampled_from(["2", "2,2", "2,2,2,2", "0"])),
    flag("--likelihood", st.sampled_from(["bernoulli", "gaussian", "categorical", "poisson"])),
    flag("--sigma", reals), flag("--beta", reals), flag("--warmup-steps", ints), flag("--k", ints),
    flag("--epochs", ints), flag("--batch-size", ints), flag("--lr", reals),
    flag("--lr-schedule", st.sampled_from(["constant", "cosine", "step", "x"])), flag("--seed", ints),
    flag("--val-fraction", reals), flag("--patience", ints), switch("--binarize"), switch("--standardize"),
    flag("--on-nonfinite", st.sampled_from(["raise", "skip"])), flag("--checkpoint-every", ints),
    flag("--max-steps", st.sampled_from(["0", "1", "2", "-1"])), flag("--max-seconds", reals),
    switch("--resume"), switch("--overwrite"), flag("--init-from", st.sampled_from(RUNS)),
    flag("--kind", st.sampled_from(["smiles", "selfies"])), flag("--molecules", ints),
]
EVAL_FLAGS = DATA_FLAGS + [flag("--k", ints), flag("--nll-k", st.sampled_from(["0", "2", "-1", "x"])),
                           flag("--limit", ints), switch("--binarize")]
OUTS = st.sampled_from(["out.png", "out.npy", "out.txt", "out.pdf", "nodir/out.png", "empty", "afile.npy", "out"])
SAMPLE_FLAGS = [flag("-n", ints), flag("--seed", ints), flag("--out", OUTS),
                flag("--sampler", st.sampled_from(["prior", "gmm", "bogus"]))]
ENCODE_FLAGS = DATA_FLAGS + [flag("--out", OUTS)]


def command(name, run_dirs, flags, fixed=()):
    return st.builds(lambda rd, fl: [name, rd, *fixed, *[a for f in fl for a in f]],
                     run_dirs, st.lists(st.one_of(*flags), max_size=6))


ARGV = st.one_of(
    command("fit", st.sampled_from(["new", "new/deeper", "afile", "copy"]), FIT_FLAGS, FIT_FIXED),
    command("eval", st.sampled_from(RUNS), EVAL_FLAGS, ["--k", "2"]),
    command("sample", st.sampled_from(RUNS), SAMPLE_FLAGS),
    command("encode", st.sampled_from(RUNS), ENCODE_FLAGS, ["--out", "z.npy"]),
    st.builds(lambda name, more: ["data", "fetch", name, *more], st.sampled_from(["nope", "mnist", ""]),
              st.sampled_from([[], ["--data-dir", "empty", "--base-url", "http://127.0.0.1:9"],
                               ["--base-url", "https://127.0.0.1:9", "--data-dir", "empty"]])),
    st.builds(lambda more: ["report", *more], st.sampled_from([["--list"], ["nope"], ["--option", "x"], []])),
    st.lists(st.sampled_from(["fit", "eval", "--help-me", "-n", "--", "x", "--version", "sample", "data"]), max_size=4),
)


def run_case(world, capsys, argv) -> tuple[int, str]:
    """Run one command line (paths relative to the world folder); returns (exit status, stderr)."""
    fresh = world / "cases" / f"c{time.monotonic_ns()}"
    fresh.mkdir(parents=True)
    if argv[:2] == ["fit", "copy"]:
        shutil.copytree(world / "runs" / "vae", fresh / "copy")
    here = os.getcwd()
    os.chdir(fresh)
    for name in ("runs", *DATA[1:-1], "cfg-ok.json", "cfg-float.json", "cfg-model.json", "cfg-list.json", "cfg-bad.json"):
        if (world / name).exists() and not (fresh / name).exists():
            (fresh / name).symlink_to(world / name)
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        os.chdir(here)
    return code, capsys.readouterr().err


def check(code: int, err: str, argv) -> None:
    assert "Traceback" not in err, f"{argv}: {err}"
    assert code in (0, 2), f"{argv} exited {code}: {err}"
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("vaekit: error:")]
        assert len(errors) == 1, f"{argv}: {err}"


SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=CASES, deadline=timedelta(seconds=20), suppress_health_check=SUPPRESS)
@given(ARGV)
def test_cli_never_shows_a_traceback(world, capsys, argv):
    check(*run_case(world, capsys, argv), argv)


@pytest.mark.slow
@seed(19)
@settings(max_examples=2000, deadline=None, suppress_health_check=SUPPRESS)
@given(ARGV)
def test_cli_never_shows_a_traceback_2000_cases(world, capsys, argv):
    check(*run_case(world, capsys, argv), argv)
