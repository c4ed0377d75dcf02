"""Helpers shared by the benchmarks: interleaved timing and result files."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]


def shown_path(path) -> str:
    """A path as result files show it: relative to the repository when inside it, else only its last part (no
    machine's absolute paths in committed results)."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name


def interleaved(fns: dict, repeats: int = 3) -> dict[str, list[float]]:
    """Run each callable `repeats` times in the order A B C A B C ... so that machine noise hits all alike."""
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def write(name: str, result: dict, table_rows: list[list[str]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    widths = [max(len(r[i]) for r in table_rows) for i in range(len(table_rows[0]))]
    for r in table_rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"wrote {path}")
    return path


def checkpoint_point(text: str) -> tuple[str, float]:
    """CHECKPOINT:MINUTES, the argument of the training-curve benchmarks: a checkpoint file or run directory
    (its path may hold colons) and the minutes of training behind it."""
    path, sep, minutes = text.rpartition(":")
    try:
        if not sep:
            raise ValueError
        return path, float(minutes)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CHECKPOINT:CPU_MINUTES") from None


def earlier_points(path: Path, flags: dict, missing: dict | None = None) -> list[dict]:
    """The points of an earlier result file (for --keep), which must have been measured with the same `flags`
    ({"samples": 10000, ...}: option names without dashes and their values); `missing` gives the value a setting
    had in files written before it was recorded."""
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    was = {k: old.get(k, (missing or {}).get(k)) for k in flags}
    if was != flags:
        said = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in was.items())
        raise SystemExit(f"{path.name}: measured with {said}; --keep needs the same")
    return list(old.get("points", []))


median = statistics.median
