"""How far more training goes for reconstruction: JT-VAE's reconstruction protocol at several checkpoints of
a low-KL chemical VAE, against the CPU-minutes of training each had seen, in one run.

    python bench/chem_recon_curve.py models/chemvae-lowkl:275 runs/chemvae-lowkl-more:350 \
        [--molecules 1000] [--seed 0] [--name chem_recon_curve] [--keep]

Each point is CHECKPOINT:CPU_MINUTES, as in bench/chem_fcd_curve.py (a run directory is read as `load_model`
reads it: its best.safetensors where there is one).  For each point, the same `--molecules` MOSES test
molecules as `vaekit report chemvae` draws (seed 1, those that fit the vocabulary) are measured three ways:

- `recon`: JT-VAE's Table 1 protocol, 10 sampled codes per molecule, each decoded 10 times by sampling
  (`chem.metrics.reconstruction_accuracy`), the number the papers compare;
- `released`: a sampled code decoded greedily, 10 codes per molecule (what JT-VAE's released script measures);
- `greedy_mean`: the posterior mean decoded greedily, once per molecule.

`--keep` adds the points to those of bench/results/NAME.json measured with the same `--molecules` and
`--seed`, replacing any at the same CPU-minutes.  Needs the MOSES splits (`VAEKIT_DATA` or `vaekit data fetch
moses`).  Writes bench/results/NAME.json and NAME.png and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vaekit.checkpoint import load_model, weights_file
from vaekit.chem import metrics
from vaekit.chem.dataset import scored
from vaekit.errors import VaekitError
from vaekit.io import save_figure

from common import RESULTS, checkpoint_point, earlier_points, write

PUBLISHED = {"JT-VAE": 76.7, "SD-VAE": 76.2, "GVAE": 53.7, "CVAE": 44.6}  # % (Jin et al. 2018, Table 1; ZINC250k)


def measure(model, smiles: list[str], seed: int) -> dict:
    """The three reconstruction fractions of `smiles` (all must fit the model's vocabulary)."""
    torch.manual_seed(seed)  # the encoder's sampled codes
    g = torch.Generator().manual_seed(seed)  # the decoder's sampled tokens

    def encode(s):
        return model.encode_smiles(s, sample=True)

    with torch.no_grad():
        recon = metrics.reconstruction_accuracy(encode, lambda z: model.decode_smiles(z, generator=g), smiles)
        released = metrics.reconstruction_accuracy(
            encode, lambda z: model.decode_smiles(z, greedy=True), smiles, n_decode=1
        )
        mean = model.decode_smiles(model.encode_smiles(smiles), greedy=True)
    target = metrics.canonical_all(smiles)
    return {
        "recon": recon,
        "released": released,
        "greedy_mean": sum(metrics.canonical(a) == b for a, b in zip(mean, target)) / len(smiles),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("points", nargs="+", type=checkpoint_point, metavar="CHECKPOINT:CPU_MINUTES")
    ap.add_argument("--molecules", type=int, default=1000, help="MOSES test molecules (the report's 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="chem_recon_curve")
    ap.add_argument("--keep", action="store_true", help="add to the points of the existing NAME.json")
    args = ap.parse_args()
    if args.molecules < 1:
        ap.error(f"--molecules must be at least 1, got {args.molecules}")
    same = {"molecules": args.molecules, "seed": args.seed}
    kept = earlier_points(RESULTS / f"{args.name}.json", same) if args.keep else []
    torch.set_num_threads(1)

    try:  # a missing or foreign checkpoint is refused in one line, before any minutes of work
        models = {path: load_model(path).eval() for path, _ in args.points}
        test = scored("moses", "test", limit=max(args.molecules, 5000), seed=1)  # the report's draw
    except VaekitError as e:
        ap.error(str(e))
    head = ["checkpoint", "CPU-min", "recon 10x10 %", "sampled code, greedy %", "mean, greedy %"]
    rows, points = [head], []
    for path, minutes in sorted(args.points, key=lambda p: p[1]):
        model = models[path]
        _, fit = model.vocab.encode(test.smiles, skip=True)
        smiles = [test.smiles[i] for i in fit][: args.molecules]
        t0 = time.perf_counter()
        m = measure(model, smiles, args.seed)
        name = Path(path).name if Path(path).is_absolute() else str(path)  # no machine paths in results
        points.append(
            {
                "checkpoint": name,
                "weights": weights_file(path).name,
                "cpu_minutes": minutes,
                "molecules": len(smiles),
                "beta": model.config.beta,
                "seconds": time.perf_counter() - t0,
                **m,
            }
        )
        rows.append([name, f"{minutes:.0f}", *(f"{100 * m[k]:.1f}" for k in ("recon", "released", "greedy_mean"))])
        print(" ".join(rows[-1]), flush=True)
    new = {p["cpu_minutes"] for p in points}
    points = sorted([p for p in kept if p["cpu_minutes"] not in new] + points, key=lambda p: p["cpu_minutes"])
    write(args.name, {**same, "points": points, "published_percent": PUBLISHED}, rows)
    figure(points, RESULTS / f"{args.name}.png")


def figure(points, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    minutes = [p["cpu_minutes"] for p in points]
    for key, label in (
        ("recon", "10 codes x 10 sampled decodings (the protocol)"),
        ("released", "sampled code, greedy decoding"),
    ):
        ax.plot(minutes, [100 * p[key] for p in points], "o-", label=label)
    groups: list[list[tuple[str, float]]] = []  # published numbers within 2 points share a line and a label
    for name, v in sorted(PUBLISHED.items(), key=lambda t: t[1]):
        if groups and v - groups[-1][-1][1] < 2:
            groups[-1].append((name, v))
        else:
            groups.append([(name, v)])
    for group in groups:
        v = max(value for _, value in group)
        ax.axhline(v, color="0.5", ls="--", lw=0.8)
        text = ", ".join(f"{name} {value:g}" for name, value in reversed(group))
        ax.annotate(text, (0.01, v), xycoords=("axes fraction", "data"), va="top", fontsize=7, color="0.3")
    ax.plot([], [], color="0.5", ls="--", lw=0.8, label="published, 10 x 10 on ZINC250k")
    ax.set_xlabel("CPU-minutes of training")
    ax.set_ylabel(f"reconstructed, % of {points[0]['molecules']} MOSES test molecules")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
