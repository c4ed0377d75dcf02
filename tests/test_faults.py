"""Faults a user meets: a killed process, a crash while writing, corrupt files. Nothing is lost."""

import csv
import os
import signal
import subprocess
import sys
import time

from vaekit import checkpoint

ARGS = [
    "--data",
    "digits",
    "--latent-dim",
    "2",
    "--hidden",
    "32",
    "--batch-size",
    "64",
    "--epochs",
    "30",
    "--checkpoint-every",
    "10",
    "--no-progress",
    "--no-tensorboard",
    "--seed",
    "5",
]


def fit(run_dir, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "vaekit", "fit", str(run_dir), *ARGS, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def log(run_dir):
    with open(run_dir / "log.csv") as f:
        return [(int(r["step"]), r["loss"]) for r in csv.DictReader(f) if r.get("loss")]


def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path):
    ref = fit(tmp_path / "ref")
    victim = fit(tmp_path / "victim")
    killed_at = None
    deadline = time.time() + 240
    while time.time() < deadline and victim.poll() is None:
        ck = tmp_path / "victim" / "checkpoint.safetensors"
        if ck.is_file():
            step = checkpoint.read(ck)[1]["meta"]["step"]
            if step >= 100:
                os.kill(victim.pid, signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.05)
    victim.wait()
    assert killed_at is not None and victim.returncode == -signal.SIGKILL
    assert ref.wait(timeout=300) == 0
    resumed = fit(tmp_path / "victim", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    total = 30 * 23
    assert log(tmp_path / "victim") == log(tmp_path / "ref")  # bit-exact losses, every step once
    assert [s for s, _ in log(tmp_path / "victim")] == list(range(1, total + 1))
    files = sorted(p.name for p in (tmp_path / "victim").iterdir())
    assert files == ["checkpoint.safetensors", "config.json", "log.csv", "training.json"]  # no partial files left


def test_kill_during_checkpoint_write_keeps_the_previous_one(tmp_path):
    """A child process dies in the middle of writing the temporary file: the old checkpoint stays valid."""
    import vaekit

    model = vaekit.build("vae", data_shape=(4,), latent_dim=2, hidden=(8,))
    path = tmp_path / "checkpoint.safetensors"
    checkpoint.save(path, model, step=1)
    code = f"""
import os, signal, vaekit
from vaekit import checkpoint
from pathlib import Path
real = Path.write_bytes
def dying(self, data):
    real(self, data[:100])                    # half-written
    os.kill(os.getpid(), signal.SIGKILL)
Path.write_bytes = dying
m = vaekit.build("vae", data_shape=(4,), latent_dim=2, hidden=(8,))
checkpoint.save({str(path)!r}, m, step=2)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert res.returncode == -signal.SIGKILL
    assert checkpoint.read(path)[1]["meta"]["step"] == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.safetensors"]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")  # the dead writer's temp file ...
    vaekit.train.init_run_dir(tmp_path, model, vaekit.train.TrainConfig(), resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "config.json"]  # ... is swept
