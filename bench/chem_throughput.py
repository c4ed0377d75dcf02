"""Training throughput of the chemical VAE: molecules per second of a training step, before and after
length-bucketed batches that skip the padding, at equal model size, in one interleaved run.

Rows (each through vaekit's one training loop, `vaekit.train.fit`, on the same MOSES molecules):
- before: random batches, the GRU decoder teacher-forced over every padded position (the old step);
- after: length-bucketed batches, teacher forcing stops at each batch's longest molecule;
- after, batch 512: the same with the MOSES VAE's batch size.

    python bench/chem_throughput.py [--molecules 20000] [--kind selfies] [--steps 20] [--repeats 3] [--threads 1]

Both clocks are recorded: molecules per wall second (what a quiet machine gives) and per CPU second of
this process (steadier on a shared machine; with one thread it is the step's cost alone).

Needs the MOSES train split (`VAEKIT_DATA` or `vaekit data fetch moses`).  Writes
bench/results/chem_throughput.json and prints a table with the ratio to the old step.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, all cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

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

    def run(batch_size: int, bucketed: bool) -> tuple[float, float]:
        m = model()
        if not bucketed:  # the old step: random batches, every padded position decoded
            m.item_lengths = None
            m.decoder_net.skip_padding = False
        cfg = TrainConfig(epochs=1, batch_size=batch_size, max_steps=args.steps, progress=False, tensorboard=False)
        t0, c0 = time.perf_counter(), time.process_time()
        fit(m, x, cfg)
        n = args.steps * batch_size
        return n / (time.perf_counter() - t0), n / (time.process_time() - c0)

    rows = {"before (batch 128)": (128, False), "after (batch 128)": (128, True), "after (batch 512)": (512, True)}
    wall, cpu = {k: [] for k in rows}, {k: [] for k in rows}
    for _ in range(args.repeats):  # interleaved, so machine noise hits all rows alike
        for name, (bs, bucketed) in rows.items():
            w, c = run(bs, bucketed)
            wall[name].append(w)
            cpu[name].append(c)
    base, base_cpu = median(wall["before (batch 128)"]), median(cpu["before (batch 128)"])
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
                "ratio": median(wall[k]) / base,
                "runs": wall[k],
                "molecules_per_cpu_s": median(cpu[k]),
                "ratio_cpu": median(cpu[k]) / base_cpu,
                "runs_cpu": cpu[k],
            }
            for k in rows
        },
    }
    table = [["step", "molecules/s", "vs before", "molecules/CPU-s", "vs before"]]
    table += [
        [
            k,
            f"{r['molecules_per_s']:.0f}",
            f"{r['ratio']:.2f}x",
            f"{r['molecules_per_cpu_s']:.0f}",
            f"{r['ratio_cpu']:.2f}x",
        ]
        for k, r in result["rows"].items()
    ]
    write("chem_throughput", result, table)


if __name__ == "__main__":
    main()
