"""Fuzzing the whole command line: every command (but the long-running demo, real reports, and explore where
it would serve) with
random flags and values, on run directories that are valid, half-valid, files or missing.

Each case runs in-process (`main(argv)`, SystemExit caught, output through capsys). A case passes when
nothing reaches the user as a traceback: exit status 0, or 2 with exactly one `vaekit: error: ...` line.
Exit status 1 (an unexpected exception, reported through a crash-report file) fails the test: it is a bug
to fix. The default run tries CLI_FUZZ_CASES cases (default 100); the slow test tries 2,000.
"""

import json
import os
import shutil
import signal
import time
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from vaekit.cli import main

CASES = int(os.environ.get("CLI_FUZZ_CASES", "100"))
CASE_SECONDS = int(os.environ.get("CLI_FUZZ_CASE_SECONDS", "300"))  # a case that runs longer counts as a hang
FIT_FIXED = [
    "--max-steps",
    "2",
    "--epochs",
    "1",
    "--hidden",
    "4",
    "--no-progress",
    "--no-tensorboard",
    "--device",
    "cpu",
]


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
    for name, doc in {
        "cfg-ok.json": {"latent_dim": 2},
        "cfg-float.json": {"latent_dim": 2.5},
        "cfg-model.json": {"model": "vae", "config": {"latent_dim": 1}},
        "cfg-list.json": [1, 2],
        "cfg-bad.json": None,
    }.items():
        (d / name).write_text("{not json" if doc is None else json.dumps(doc))
    runs = d / "runs"
    main(["fit", str(runs / "vae"), *FIT_FIXED, "--latent-dim", "2"])
    main(["fit", str(runs / "ae"), *FIT_FIXED, "--model", "autoencoder", "--data", str(d / "flat.npy")])
    main(
        [
            "fit",
            str(runs / "std"),
            *FIT_FIXED,
            "--likelihood",
            "gaussian",
            "--standardize",
            "--data",
            str(d / "real.npy"),
        ]
    )
    half = {"config-only": ["config.json"], "checkpoint-only": ["checkpoint.safetensors"]}
    for name, keep in half.items():
        (runs / name).mkdir()
        for f in keep:
            shutil.copy(runs / "vae" / f, runs / name / f)
    shutil.copytree(runs / "vae", runs / "corrupt")
    raw = bytearray((runs / "corrupt" / "checkpoint.safetensors").read_bytes())
    raw[-5] ^= 0xFF
    (runs / "corrupt" / "checkpoint.safetensors").write_bytes(bytes(raw))
    for name, data in {
        "data-number": 3,
        "data-null": None,
        "spec-object": {"spec": {"a": 1}},
        "spec-missing-file": {"spec": str(d / "gone.npy")},
    }.items():
        shutil.copytree(runs / "vae", runs / name)
        cfg = json.loads((runs / name / "config.json").read_text())
        (runs / name / "config.json").write_text(json.dumps({**cfg, "data": data}))
    yield d
    if old_cache is None:
        os.environ.pop("VAEKIT_CACHE", None)
    else:
        os.environ["VAEKIT_CACHE"] = old_cache


def pick(good, bad=()):
    """One of `good` (five times as likely) or of `bad`: most cases get past the flag checks and run."""
    return st.sampled_from(list(good) * 5 + list(bad))


GOOD_RUNS = ["runs/vae", "runs/ae", "runs/std"]
BAD_RUNS = [
    "runs/config-only",
    "runs/checkpoint-only",
    "runs/corrupt",
    "runs/data-number",
    "runs/data-null",
    "runs/spec-object",
    "runs/spec-missing-file",
    "runs/nowhere",
    "afile",
    "empty",
    "runs/vae/checkpoint.safetensors",
]
RUNS = pick(GOOD_RUNS, BAD_RUNS)
GOOD_DATA = ["digits", "unit.npy", "flat.npy", "real.npy", "levels.npy", "split.npz", "imgs"]
BAD_DATA = ["huge.npy", "fake.npy", "empty", "afile", "nowhere.npy", "mnist", ""]
LINKED = (
    GOOD_DATA[1:]
    + BAD_DATA[:4]
    + ["runs", "cfg-ok.json", "cfg-float.json", "cfg-model.json", "cfg-list.json", "cfg-bad.json"]
)
BAD_INTS = ["-1", "0", "x", "1e3", "99999999999999999999"]
BAD_REALS = ["-1", "nan", "inf", "x", "1e40"]


def ints(*good):
    return pick(good or ("1", "2", "3"), BAD_INTS)


def reals(*good):
    return pick(good or ("0.5", "1", "1e-3"), BAD_REALS)


def flag(name, values):
    return st.tuples(st.just(name), values)


def switch(name):
    return st.just((name,))


DATA_FLAGS = [
    flag("--data", pick(GOOD_DATA, BAD_DATA)),
    flag("--split", pick(["train", "test", "all"], ["bogus"])),
    flag("--data-dir", pick([], ["empty", "nowhere", "afile"])),
]
FIT_FLAGS = DATA_FLAGS + [
    # (not chemvae: without --data it scores all of MOSES first, minutes to hours; molecules are fuzzed elsewhere)
    flag("--model", pick(["vae", "iwae", "autoencoder", "aae", "avb", "gan"], ["nope"])),
    flag(
        "--config",
        pick(
            ["cfg-ok.json", "cfg-model.json"],
            ["cfg-float.json", "cfg-list.json", "cfg-bad.json", "nowhere.json", "empty"],
        ),
    ),
    flag("--latent-dim", ints()),
    flag("--hidden", pick(["4", "4,3"], ["0", "", "x", "70000"])),
    flag("--activation", pick(["relu", "tanh"], ["bogus"])),
    flag("--arch", pick(["mlp", "conv"])),
    flag("--channels", pick(["2", "2,2"], ["2,2,2,2", "0"])),
    flag("--likelihood", pick(["bernoulli", "gaussian", "categorical"], ["poisson"])),
    flag("--sigma", reals()),
    flag("--beta", reals("0", "0.5", "1")),
    flag("--warmup-steps", ints("0", "1", "5")),
    flag("--k", ints()),
    flag("--epochs", ints("0", "1", "2")),
    flag("--batch-size", ints("1", "7", "64")),
    flag("--lr", reals()),
    flag("--lr-schedule", pick(["constant", "cosine", "step"], ["x"])),
    flag("--seed", ints()),
    flag("--val-fraction", reals("0", "0.2", "0.5", "0.99")),
    flag("--patience", ints()),
    switch("--binarize"),
    switch("--standardize"),
    flag("--on-nonfinite", pick(["raise", "skip"])),
    flag("--checkpoint-every", ints("0", "1")),
    flag("--max-steps", pick(["1", "2"], ["-1", "x"])),
    flag("--max-seconds", reals("0.5", "5")),  # never 0: no limit
    switch("--resume"),
    switch("--overwrite"),
    flag("--init-from", RUNS),
    flag("--kind", pick([], ["smiles", "selfies"])),
    flag("--molecules", pick([], ["1", "0"])),
]
EVAL_FLAGS = DATA_FLAGS + [
    flag("--k", ints()),
    flag("--nll-k", ints("0", "2")),
    flag("--limit", ints("1", "5", "1000")),
    switch("--binarize"),
]
OUTS = pick(["out.png", "out.npy", "out.pdf"], ["out.txt", "nodir/out.png", "empty", "afile.npy", "out"])
SAMPLE_FLAGS = [
    flag("-n", ints("1", "3", "16")),
    flag("--seed", ints("0", "1", "99999999")),
    flag("--out", OUTS),
    flag("--sampler", pick(["prior", "gmm"], ["bogus"])),
]
ENCODE_FLAGS = DATA_FLAGS + [flag("--out", pick(["z.npy"], ["z.png", "nodir/z.npy", "empty"]))]


def command(name, run_dirs, flags, fixed=()):
    return st.builds(
        lambda rd, fl: [name, rd, *fixed, *[a for f in fl for a in f]],
        run_dirs,
        st.lists(st.one_of(*flags), max_size=4),
    )


ARGV = st.one_of(
    command("fit", pick(["new", "new/deeper", "copy"], ["afile"]), FIT_FLAGS, FIT_FIXED),
    command("eval", RUNS, EVAL_FLAGS, ["--k", "2"]),
    command("sample", RUNS, SAMPLE_FLAGS),
    command("encode", RUNS, ENCODE_FLAGS, ["--out", "z.npy"]),
    st.builds(
        lambda name, more: ["data", "fetch", name, *more],
        st.sampled_from(["nope", "mnist", ""]),
        st.sampled_from(
            [
                [],
                ["--data-dir", "empty", "--base-url", "http://127.0.0.1:9"],
                ["--base-url", "https://127.0.0.1:9", "--data-dir", "empty"],
            ]
        ),
    ),
    st.builds(lambda more: ["report", *more], st.sampled_from([["--list"], ["nope"], ["--option", "x"], []])),
    # loose words (not "fit": `fit WORD` is a complete, full-length training run)
    st.lists(
        st.sampled_from(["eval", "--help-me", "-n", "--", "x", "--version", "sample", "data", "--epochs"]), max_size=4
    ),
    # explore only where it stops before serving: run dirs that are not runs, ports out of range
    st.builds(
        lambda rd, more: ["explore", rd, "--no-browser", *more],
        st.sampled_from(["runs/nowhere", "afile", "empty", "runs/corrupt", "runs/vae/checkpoint.safetensors"]),
        st.sampled_from([[], ["--port", "0"], ["--port", "70000"], ["--port", "x"]]),
    ),
)


def run_case(world, capsys, argv) -> tuple[int, str]:
    """Run one command line (paths relative to the world folder); returns (exit status, stderr)."""
    fresh = world / "cases" / f"c{time.monotonic_ns()}"
    fresh.mkdir(parents=True)
    (world / "last-case.json").write_text(json.dumps(argv))  # the case running now, should it hang
    if argv[:2] == ["fit", "copy"]:
        shutil.copytree(world / "runs" / "vae", fresh / "copy")
    here = os.getcwd()
    os.chdir(fresh)
    for name in LINKED:
        if (world / name).exists() and not (fresh / name).exists():
            (fresh / name).symlink_to(world / name)

    def too_long(signum, frame):
        raise CaseTimeout

    old_handler = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(CASE_SECONDS)
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except CaseTimeout:
        pytest.fail(f"{argv} ran for more than {CASE_SECONDS} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        os.chdir(here)
    return code, capsys.readouterr().err


class CaseTimeout(BaseException):
    """A case that hangs (BaseException: the CLI's handlers let it through)."""


def check(code: int, err: str, argv) -> None:
    event(f"{argv[0] if argv else '(none)'}: exit {code}")  # --hypothesis-show-statistics lists how cases ended
    assert "Traceback" not in err, f"{argv}: {err}"
    assert code in (0, 2), f"{argv} exited {code}: {err}"
    if code == 2:
        errors = [line for line in err.splitlines() if line.startswith("vaekit: error:")]
        assert len(errors) == 1, f"{argv}: {err}"


SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=CASES, deadline=timedelta(seconds=60), suppress_health_check=SUPPRESS)
@given(ARGV)
def test_cli_never_shows_a_traceback(world, capsys, argv):
    check(*run_case(world, capsys, argv), argv)


@pytest.mark.slow
@seed(19)
@settings(max_examples=2000, deadline=None, suppress_health_check=SUPPRESS)
@given(ARGV)
def test_cli_never_shows_a_traceback_2000_cases(world, capsys, argv):
    check(*run_case(world, capsys, argv), argv)
