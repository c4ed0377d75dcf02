"""Decode latency of `vaekit explore` through its HTTP API, as the browser sees it.

Starts `vaekit explore RUN_DIR --no-browser` in its own process on a free port of 127.0.0.1
(default run: runs/mnist-vae, the 784-500-500-50 MNIST VAE; without it a small one is trained
for a few epochs on MNIST, or on the embedded digits when $VAEKIT_DATA has no MNIST), then sends
a bounded loop of decode requests from one keep-alive client:

    single   1,000 requests of one latent vector -> one PNG (what a hover or a slider step costs)
    batch      100 requests of 64 vectors -> 64 PNGs (a path or a grid in one request)

Writes bench/results/explore_latency.json with p50/p95/max per request. Target: p95 < 50 ms
for single decodes on 2 cores.

    python bench/explore_latency.py [--run runs/mnist-vae] [--n 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, shown_path, write  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_run(run_dir: Path) -> Path:
    """Train a small MNIST VAE (digits if MNIST is absent) when no trained run is at hand."""
    from vaekit.data import load
    from vaekit.models import build
    from vaekit.train import TrainConfig, fit

    try:
        spec, data = "mnist", load("mnist", "train")
    except Exception:  # no MNIST on this machine: the embedded digits still exercise the server
        spec, data = "digits", load("digits", "train")
    model = build("vae", data_shape=tuple(data.x.shape[1:]), latent_dim=50, hidden=(500, 500))
    fit(
        model,
        data,
        TrainConfig(epochs=2, batch_size=100, progress=False, tensorboard=False),
        run_dir=run_dir,
        overwrite=True,
        meta={"spec": spec, "split": "train"},
    )
    return run_dir


def post(conn, path: str, body: dict) -> tuple[float, dict]:
    data = json.dumps(body).encode()
    t0 = time.perf_counter()
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    dt = time.perf_counter() - t0
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}: {payload[:200]!r}")
    return dt, json.loads(payload)


def stats(times: list[float]) -> dict:
    ms = np.asarray(times) * 1000
    return {
        "n": len(ms),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "mnist-vae"))
    ap.add_argument("--n", type=int, default=1000, help="single-vector decode requests (default 1000)")
    ap.add_argument("--batches", type=int, default=100, help="64-vector decode requests (default 100)")
    args = ap.parse_args()

    run = Path(args.run)
    tmp = None
    if not (run / "checkpoint.safetensors").is_file():
        tmp = tempfile.TemporaryDirectory()
        print(f"{run} has no trained model: training a small MNIST VAE", flush=True)
        run = small_run(Path(tmp.name) / "mnist-vae")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vaekit", "explore", str(run), "--no-browser", "--port", str(port)],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        conn = None
        deadline = time.time() + 300  # loading the run encodes its test set
        while time.time() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server stopped: {server.stdout.read()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/api/info")
                info = json.loads(conn.getresponse().read())
                break
            except OSError:
                conn = None
                time.sleep(0.5)
        if conn is None:
            raise RuntimeError("the server did not answer within 300 s")
        d = info["latent_dim"]
        rng = np.random.default_rng(0)
        for _ in range(20):  # warm-up
            post(conn, "/api/decode", {"z": rng.standard_normal((1, d)).tolist()})
        single = [post(conn, "/api/decode", {"z": rng.standard_normal((1, d)).tolist()})[0] for _ in range(args.n)]
        batch = [
            post(conn, "/api/decode", {"z": rng.standard_normal((64, d)).tolist()})[0] for _ in range(args.batches)
        ]
        interp = [post(conn, "/api/interpolate", {"a": 0, "b": 1 + i, "steps": 16})[0] for i in range(args.batches)]
    finally:
        server.terminate()
        server.wait(20)
        if tmp is not None:
            tmp.cleanup()
    res = {
        "run": shown_path(run),
        "model": info["model"],
        "latent_dim": d,
        "data_shape": info["data_shape"],
        "cpus": os.cpu_count(),
        "host": "127.0.0.1",
        "client": "http.client keep-alive, one request at a time",
        "single_decode": stats(single),
        "batch64_decode": stats(batch),
        "interpolate16": stats(interp),
        "target_p95_ms": 50.0,
        "met": stats(single)["p95_ms"] < 50.0,
    }
    rows = [["request", "n", "p50 ms", "p95 ms", "max ms"]]
    for name in ("single_decode", "batch64_decode", "interpolate16"):
        s = res[name]
        rows.append([name, str(s["n"]), f"{s['p50_ms']:.1f}", f"{s['p95_ms']:.1f}", f"{s['max_ms']:.1f}"])
    write("explore_latency", res, rows)


if __name__ == "__main__":
    main()
