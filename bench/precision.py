"""Training steps in float32 and under bfloat16 autocast (`TrainConfig.precision`), side by side in one run.

    python bench/precision.py [--steps 10] [--repeats 3] [--threads 1]

Rows, each through vaekit's one training loop (`vaekit.train.fit`), interleaved so that machine noise hits
both precisions alike:
- the font VAE of `vaekit report fonts` (conv glyph nets, 64 x 64, 40-D latent, batch 32 fonts, 8 characters
  decoded a step) on random binary glyphs (a step's cost does not depend on the pixels);
- the chemical VAE of `models/chemvae-smiles` (latent 56, GRU 2 x 256, batch 128) on the first 5,000 MOSES
  training molecules, when the MOSES splits are there (`VAEKIT_DATA`).

Both clocks: CPU seconds of this process a step (with one thread: the step's own cost, steady on a shared
machine) and wall seconds.  `ratio` is float32's CPU seconds a step over bfloat16's: above 1, bfloat16 is
faster.  The speed-up needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX): elsewhere autocast
emulates them and can be slower, so measure before choosing it.  Quality at equal CPU-minutes is a separate
question; the fonts README row gives the measurement.

Writes bench/results/precision.json and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vaekit.models import build
from vaekit.reports.fonts import model_config
from vaekit.train import TrainConfig, fit

from common import median, write


def cases(n_molecules: int):
    """{name: (build the model, data, batch size)}; the chemical VAE only when MOSES is there."""
    g = torch.Generator().manual_seed(0)
    glyphs = (torch.rand(256, 62, 64, 64, generator=g) > 0.8).float()
    out = {"font VAE (conv, 64 x 64, batch 32)": (lambda: build("fontvae", **model_config(64, False)), glyphs, 32)}
    try:
        from vaekit.chem.vocab import Vocab
        from vaekit.data.smiles import load_molecules

        mols = load_molecules("moses", "train", limit=n_molecules, seed=0)
    except Exception as e:  # no MOSES here: the font row alone
        print(f"chemical VAE row skipped ({str(e).splitlines()[0][:120]})")
        return out
    vocab = Vocab.build(mols.smiles, "smiles")
    x = vocab.encode(mols.smiles).float()

    def chem():
        return build(
            "chemvae", tokens=tuple(vocab.tokens), kind="smiles", max_len=vocab.max_len, latent_dim=56,
            gru_hidden=256, gru_layers=2, beta=1.0,
        )  # fmt: skip

    out["chemical VAE (GRU 2 x 256, batch 128)"] = (chem, x, 128)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--molecules", type=int, default=5000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = cases(args.molecules)
    cpu = {(k, p): [] for k in runs for p in ("float32", "bfloat16")}
    wall = {k: [] for k in cpu}
    for _ in range(args.repeats):
        for name, precision in cpu:
            make, data, batch = runs[name]
            torch.manual_seed(0)
            model = make()
            cfg = TrainConfig(
                epochs=1000, batch_size=batch, max_steps=args.steps, precision=precision, progress=False,
                tensorboard=False,
            )  # fmt: skip
            t0, c0 = time.perf_counter(), time.process_time()
            fit(model, data, cfg)
            cpu[name, precision].append((time.process_time() - c0) / args.steps)
            wall[name, precision].append((time.perf_counter() - t0) / args.steps)
    rows = {}
    for name in runs:
        f32, b16 = median(cpu[name, "float32"]), median(cpu[name, "bfloat16"])
        rows[name] = {
            "float32_cpu_s_per_step": f32,
            "bfloat16_cpu_s_per_step": b16,
            "ratio": f32 / b16,
            "float32_wall_s_per_step": median(wall[name, "float32"]),
            "bfloat16_wall_s_per_step": median(wall[name, "bfloat16"]),
            "runs_cpu": {p: cpu[name, p] for p in ("float32", "bfloat16")},
        }
    info = Path("/proc/cpuinfo")
    flags = set(info.read_text().split()) if info.is_file() else set()
    result = {
        "steps": args.steps,
        "repeats": args.repeats,
        "cpu_bfloat16_flags": sorted(flags & {"avx512_bf16", "amx_bf16"}) if flags else None,
        "rows": rows,
    }
    table = [["model", "float32 CPU-s/step", "bfloat16 CPU-s/step", "ratio"]]
    table += [
        [k, f"{r['float32_cpu_s_per_step']:.3f}", f"{r['bfloat16_cpu_s_per_step']:.3f}", f"{r['ratio']:.2f}x"]
        for k, r in rows.items()
    ]
    write("precision", result, table)


if __name__ == "__main__":
    main()
