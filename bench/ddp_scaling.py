"""Data-parallel scaling: samples/s of `vaekit fit` with 1 process and with 2 (torchrun, gloo) on this machine.

784-500-500-50 MLP VAE, global batch 500, MNIST-shaped data. Each configuration uses all cores:
1 process x 2 threads vs 2 processes x 1 thread. Runs alternate and the median is reported.

    python bench/ddp_scaling.py [--n 20000] [--epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

from common import interleaved, median, write


def fit(data, run_dir, nproc, threads, epochs):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [
        sys.executable,
        "-m",
        "vaekit",
        "fit",
        run_dir,
        "--data",
        data,
        "--latent-dim",
        "50",
        "--hidden",
        "500,500",
        "--batch-size",
        "500",
        "--epochs",
        str(epochs),
        "--no-progress",
        "--no-tensorboard",
        "--overwrite",
        "--nproc",
        str(nproc),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return float(re.search(r"steps in ([\d.]+) s", out).group(1))  # training time, as fit measures it


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    data = os.path.join(tmp, "x.npy")
    np.save(data, np.random.default_rng(0).random((args.n, 784), dtype=np.float32))
    seconds = {"1 process x 2 threads": [], "2 processes x 1 thread": []}
    fns = {
        "1 process x 2 threads": lambda: seconds["1 process x 2 threads"].append(
            fit(data, f"{tmp}/a", 1, 2, args.epochs)
        ),
        "2 processes x 1 thread": lambda: seconds["2 processes x 1 thread"].append(
            fit(data, f"{tmp}/b", 2, 1, args.epochs)
        ),
    }
    wall = interleaved(fns, args.repeats)
    items = args.n * args.epochs
    rate = {k: items / median(v) for k, v in seconds.items()}
    ratio = rate["2 processes x 1 thread"] / rate["1 process x 2 threads"]
    result = {
        "config": vars(args),
        "training_seconds": seconds,
        "wall_seconds_incl_startup": wall,
        "samples_per_s": rate,
        "ratio_2proc_vs_1proc": ratio,
        "notes": (
            "This machine has 2 cores, and both configurations use both of them: the ratio weighs "
            "one process's intra-op threading against data parallelism with a gloo all-reduce of "
            "~1.3M gradients per step. No hardware is added, so it is not a scaling curve; that "
            "needs more cores per process, several GPUs or several machines."
        ),
    }
    rows = [["configuration", "samples/s (median)", "ratio"]] + [
        [k, f"{v:.0f}", f"{v / rate['1 process x 2 threads']:.2f}"] for k, v in rate.items()
    ]
    write("ddp_scaling", result, rows)


if __name__ == "__main__":
    main()
