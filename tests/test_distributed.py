"""Multi-process training with torch.distributed (gloo on CPU) and torchrun's elastic restarts."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from vaekit import checkpoint

COMMON = [
    "--data",
    "digits",
    "--model",
    "autoencoder",
    "--latent-dim",
    "3",
    "--hidden",
    "32",
    "--batch-size",
    "64",
    "--no-progress",
    "--no-tensorboard",
    "--seed",
    "3",
]


def vaekit(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vaekit", *args], capture_output=True, text=True, env=env, timeout=kw.get("timeout", 300)
    )


def weights(run_dir):
    tensors, _ = checkpoint.read(run_dir / "checkpoint.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def steps_logged(run_dir):
    with open(run_dir / "log.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r.get("loss")]


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    one = vaekit("fit", str(tmp_path / "one"), *COMMON, "--epochs", "2", "--val-fraction", "0.2")
    assert one.returncode == 0, one.stderr
    two = vaekit("fit", str(tmp_path / "two"), *COMMON, "--epochs", "2", "--val-fraction", "0.2", "--nproc", "2")
    assert two.returncode == 0, two.stderr[-2000:]
    w1, w2 = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert w1.keys() == w2.keys()
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-5, rtol=1e-4), k
    rows = lambda d: [r for r in csv.DictReader(open(d / "log.csv"))]  # noqa: E731
    l1, l2 = rows(tmp_path / "one"), rows(tmp_path / "two")
    assert len(l1) == len(l2)
    for a, b in zip(l1, l2):
        for key in ("loss", "val_loss"):
            if a.get(key):
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4), (key, a["step"])


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def test_killed_worker_is_restarted_and_resumes_without_gap(tmp_path):
    run = tmp_path / "elastic"
    # PYTHONFAULTHANDLER: a rank that aborts (SIGABRT from C++) prints the Python stack it died in
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vaekit",
            "fit",
            str(run),
            *COMMON,
            "--epochs",
            "40",
            "--checkpoint-every",
            "10",
            "--nproc",
            "2",
            "--max-restarts",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        _kill_a_worker_and_wait(proc, run)
    finally:
        if proc.poll() is None:  # never leave a hung process group behind
            os.killpg(proc.pid, signal.SIGKILL)


def _kill_a_worker_and_wait(proc, run):
    killed = None
    deadline = time.time() + 240
    while time.time() < deadline and killed is None and proc.poll() is None:
        time.sleep(0.2)
        ck = run / "checkpoint.safetensors"
        if ck.is_file():
            try:
                step = checkpoint.read(ck)[1]["meta"]["step"]
            except Exception:
                continue
            if step >= 30:
                torchrun = _children(proc.pid)
                workers = [c for t in torchrun for c in _children(t)]
                if workers:
                    killed = max(workers)
                    os.kill(killed, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, "the run finished before a worker could be killed"
    # the whole stderr: a restarted rank's own error comes before torchrun's long report
    assert proc.returncode == 0, err[-20000:]
    total = 40 * 23  # 40 epochs of ceil(1438 / 64) batches
    assert steps_logged(run) == list(range(1, total + 1))  # final step count, no gap, no duplicate
    assert checkpoint.read(run / "checkpoint.safetensors")[1]["meta"]["step"] == total
