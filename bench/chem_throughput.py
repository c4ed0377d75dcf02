"""Training throughput of the chemical VAE: molecules per second of a training step, before and after
length-bucketed batches that skip the padding, at equal model size, in one interleaved run.

Rows (each through vaekit's one training loop, `vaekit.train.fit`, on the same MOSES molecules), for
each torch thread count asked for (default 1 and every core: the old step was run with one thread):
- before: random batches, the GRU decoder teacher-forced over every padded position (the old step);
- after: length-bucketed batches, teacher forcing stops at each batch's longest molecule;
- after, batch 512: the same with the MOSES VAE's batch size (at the largest thread count).

    python bench/chem_throughput.py [--molecules 20000] [--kind selfies] [--steps 20] [--repeats 3] [--threads 1,2]

Both clocks are recorded: molecules per wall second (what a quiet machine gives: the number that counts
for threads) and per CPU second of this process (steadier on a shared machine; with one thread it is the
step's cost alone, with more it adds every thread's time).  `ratio` is against the old step with one
thread, `ratio_same_threads` against the old step with the row's own thread count.

Needs the MOSES train split (`VAEKIT_DATA` or `vaekit data fetch moses`).  Writes
bench/results/chem_throughput.json and prints a table with the ratio to the old step.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from vaekit.chem.vocab import Vocab
from vaekit.data.smiles import load_molecules
from vaekit.models import build
from vaekit.train import TrainConfig, fit

from common import median, write


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--molecules", type=int, default=20000)
    ap.add_argument("--kind", default="selfies", choices=["smiles", "selfies"])
    ap.add_argument("--gru-hidden", type=int, default=256)
    ap.add_argument("--gru-layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="training steps per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads", default=f"1,{os.cpu_count() or 1}", help="comma-separated torch thread counts (default: 1 and all)"
    )
    args = ap.parse_args()
    threads = sorted({int(t) for t in str(args.threads).split(",") if t.strip()})
    if not threads or min(threads) < 1:
        ap.error(f"--threads: positive thread counts, got {args.threads!r}")

    mols = load_molecules("moses", "train", limit=args.molecules, seed=0)
    vocab = Vocab.build(mols.smiles, args.kind)
    x = vocab.encode(mols.smiles).float()
    lengths = (x != Vocab.pad).sum(1).float()

    def model():
        torch.manual_seed(0)
        return build(
            "chemvae",
            tokens=tuple(vocab.tokens),
            kind=args.kind,
            max_len=vocab.max_len,
            beta=0.05,
            gru_hidden=args.gru_hidden,
            gru_layers=args.gru_layers,
        )

    def run(batch_size: int, bucketed: bool, n_threads: int) -> tuple[float, float]:
        torch.set_num_threads(n_threads)
        m = model()
        if not bucketed:  # the old step: random batches, every padded position decoded
            m.item_lengths = None
            m.decoder_net.skip_padding = False
        cfg = TrainConfig(epochs=1, batch_size=batch_size, max_steps=args.steps, progress=False, tensorboard=False)
        t0, c0 = time.perf_counter(), time.process_time()
        fit(m, x, cfg)
        n = args.steps * batch_size
        return n / (time.perf_counter() - t0), n / (time.process_time() - c0)

    def name(step: str, bs: int, t: int) -> str:
        return f"{step} (batch {bs}, {t} thread{'s' if t > 1 else ''})"

    rows = {name(s, 128, t): (128, s == "after", t) for t in threads for s in ("before", "after")}
    rows[name("after", 512, threads[-1])] = (512, True, threads[-1])
    wall, cpu = {k: [] for k in rows}, {k: [] for k in rows}
    for _ in range(args.repeats):  # interleaved, so machine noise hits all rows alike
        for k, (bs, bucketed, t) in rows.items():
            w, c = run(bs, bucketed, t)
            wall[k].append(w)
            cpu[k].append(c)
    old = name("before", 128, threads[0])
    base, base_cpu = median(wall[old]), median(cpu[old])
    result = {
        "molecules": len(x),
        "kind": args.kind,
        "tokens_mean": float(lengths.mean()),
        "max_len": vocab.max_len,
        "gru_hidden": args.gru_hidden,
        "gru_layers": args.gru_layers,
        "steps": args.steps,
        "rows": {
            k: {
                "molecules_per_s": median(wall[k]),
                "threads": rows[k][2],
                "ratio": median(wall[k]) / base,
                "ratio_same_threads": median(wall[k]) / median(wall[name("before", 128, rows[k][2])]),
                "runs": wall[k],
                "molecules_per_cpu_s": median(cpu[k]),
                "ratio_cpu": median(cpu[k]) / base_cpu,
                "runs_cpu": cpu[k],
            }
            for k in rows
        },
    }
    table = [["step", "molecules/s", f"vs {old}", "vs before, same threads", "molecules/CPU-s", "vs before"]]
    table += [
        [
            k,
            f"{r['molecules_per_s']:.0f}",
            f"{r['ratio']:.2f}x",
            f"{r['ratio_same_threads']:.2f}x",
            f"{r['molecules_per_cpu_s']:.0f}",
            f"{r['ratio_cpu']:.2f}x",
        ]
        for k, r in result["rows"].items()
    ]
    write("chem_throughput", result, table)


if __name__ == "__main__":
    main()
