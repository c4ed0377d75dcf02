"""How far more training goes: MOSES metrics of the chemical VAE's prior samples at several checkpoints,
against the CPU-minutes of training each had seen, in one run.

    python bench/chem_fcd_curve.py models/chemvae-selfies:66 models/chemvae-selfies-continued:88 \
        runs/snaps/step900.safetensors:130 [--samples 10000] [--seed 0] [--name chem_fcd_curve] [--keep]

Each point is CHECKPOINT:CPU_MINUTES, a checkpoint file or run directory and the CPU-minutes of training
behind it (the training.json of a committed model says how many).  A run directory is read as
`load_model` reads it: its best.safetensors (lowest validation loss) where there is one, else its last
checkpoint; each point names the file in "weights".  For each point, `--samples` codes
drawn from the prior N(0, I) (the same codes for every point) are decoded stochastically and scored with
vaekit's MOSES metrics against the whole MOSES test split (FCD/Test, SNN/Test, ...) and the canonical
train split (novelty).  The issue's protocol for a curve is 10,000 samples a point; the MOSES table
uses 30,000, so FCD here sits a little above what 30,000 samples would give.

`--keep` adds the points to those already in bench/results/NAME.json (measured earlier with the same
`--samples` and `--seed`, on checkpoints that may be gone since), replacing any at the same CPU-minutes: a
curve that grows as training goes on over several sessions.

`--sampler gmm` (or any of vaekit.samplers) draws the codes ex-post instead, from a sampler fitted on the
codes of `--sampler-train` MOSES training molecules (seed 0): one draw from q(z|x) each, as the chemical VAE
says of itself (`model.sampler_codes`), or `--sampler-codes mean` for the posterior means (the ablation).
Not the protocol, whose codes come from
the prior.

The decoder follows SMILES branches and rings (its grammar mask, chem.vocab.Syntax); `--no-syntax` decodes
with only the specials masked and an atom first, as it did before: the ablation, and the like-for-like
comparison with MOSES's VAE, whose decoder follows no grammar.

`--clock gpu` reads the minutes as GPU-minutes (a model trained on a GPU, bench/gpu/train_chemvae.sh): the
points then carry `gpu_minutes` and the figure says so.

`--scaffolds` also scores each point against MOSES's scaffold test split (FCD/TestSF, SNN/TestSF, Frag/TestSF,
Scaf/TestSF: the whole MOSES table; its reference statistics take about 25 CPU-minutes the first time, then come
from the cache).  Every point carries the rest of the table too: Filters, the logP/SA/QED/weight distances,
IntDiv; the JSON holds the MOSES VAE's published row beside them.

Each point also counts why its invalid samples are invalid (`metrics.invalid_reasons`: syntax, aromaticity,
valence, other).

Needs the MOSES splits (`VAEKIT_DATA` or `vaekit data fetch moses`).  Writes
bench/results/NAME.json and NAME.png (FCD/Test against CPU-minutes) and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vaekit import samplers
from vaekit.checkpoint import load_model, weights_file
from vaekit.chem import metrics
from vaekit.data.smiles import load_molecules, moses_path
from vaekit.errors import VaekitError
from vaekit.io import save_figure

from common import RESULTS, checkpoint_point, earlier_points, write


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("points", nargs="+", type=checkpoint_point, metavar="CHECKPOINT:CPU_MINUTES")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="chem_fcd_curve")
    ap.add_argument("--keep", action="store_true", help="add to the points of the existing NAME.json")
    ap.add_argument("--clock", choices=["cpu", "gpu"], default="cpu", help="the minutes are CPU- or GPU-minutes")
    ap.add_argument("--sampler", default="prior", help="where the codes come from: prior (the protocol), gmm, ...")
    ap.add_argument("--sampler-train", type=int, default=20000, help="molecules an ex-post sampler is fitted on")
    ap.add_argument(
        "--sampler-codes",
        choices=["model", "mean", "draw"],
        default="model",
        help="an ex-post sampler's codes: as the model says (model.sampler_codes), posterior means, or draws",
    )
    ap.add_argument(
        "--no-syntax",
        action="store_true",
        help="decode without following SMILES branches and rings (only specials out and an atom first, the "
        "decoder's mask before they were followed): the ablation",
    )
    ap.add_argument("--scaffolds", action="store_true", help="also score against the scaffold test split (.../TestSF)")
    args = ap.parse_args()
    try:  # an unknown sampler or a missing checkpoint is refused before minutes of loading
        samplers.get(args.sampler)
        models = {path: load_model(path) for path, _ in args.points}
    except VaekitError as e:
        ap.error(str(e))
    key = f"{args.clock}_minutes"
    same = {"samples": args.samples, "seed": args.seed, "sampler": args.sampler}
    kept = earlier_points(RESULTS / f"{args.name}.json", same, missing={"sampler": "prior"}) if args.keep else []
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    ref = metrics.reference_stats(load_molecules("moses", "test").smiles)  # cached after the first run
    ref_sf = metrics.reference_stats(load_molecules("moses", "test_scaffolds").smiles) if args.scaffolds else None
    train = metrics.canonical_set(metrics.read_smiles_csv(moses_path("train")))
    print(f"reference statistics and the canonical train set in {time.perf_counter() - t0:.0f} s")
    head = ["checkpoint", f"{args.clock.upper()}-min", "FCD/Test", "SNN/Test", "valid", "unique@10k", "novelty"]
    rows, points = [head], []
    for path, minutes in sorted(args.points, key=lambda p: p[1]):
        model = models[path]
        if args.no_syntax:
            model.decoder_net.syntax = model.vocab.syntax(strict=False)
        g = torch.Generator().manual_seed(args.seed)
        z = torch.randn(args.samples, model.config.latent_dim, generator=g)
        if args.sampler != "prior":
            z = ex_post(model, args.sampler, args.sampler_train, args.sampler_codes).sample(args.samples, g)
        t0 = time.perf_counter()
        with torch.no_grad():
            gen = [s for i in range(0, len(z), 2000) for s in model.decode_smiles(z[i : i + 2000], generator=g)]
        decode_s = time.perf_counter() - t0
        mm = metrics.moses_metrics(gen, ref, train, k=(1000, min(10000, args.samples)), test_sf=ref_sf)
        name = Path(path).name if Path(path).is_absolute() else str(path)  # no machine paths in results
        points.append(
            {
                "checkpoint": name,
                "weights": weights_file(path).name,  # a run directory's best.safetensors, else its last checkpoint
                key: minutes,
                "samples": args.samples,
                "grammar": "tokens only (--no-syntax)" if args.no_syntax else "SMILES branches and rings",
                "decode_seconds": decode_s,
                "score_seconds": time.perf_counter() - t0 - decode_s,
                **mm,
                "invalid": metrics.invalid_reasons(gen),  # why the invalid samples are: syntax, aromaticity, ...
            }
        )
        rows.append(
            [
                name,
                f"{minutes:.0f}",
                f"{mm['FCD/Test']:.3f}",
                f"{mm['SNN/Test']:.3f}",
                f"{mm['valid']:.3f}",
                f"{mm.get('unique@10000', float('nan')):.3f}",
                f"{mm['Novelty']:.3f}",
            ]
        )
        print(" ".join(rows[-1]), flush=True)
    new = {p[key] for p in points}
    ex_post_fields = (
        {} if args.sampler == "prior" else {"sampler_codes": args.sampler_codes, "sampler_train": args.sampler_train}
    )
    points = sorted([p for p in kept if p[key] not in new] + points, key=lambda p: p[key])
    write(
        args.name,
        {
            "samples": args.samples,
            "seed": args.seed,
            "sampler": args.sampler,
            **ex_post_fields,
            "points": points,
            "published": {"MOSES VAE FCD/Test": 0.099, "CharRNN": 0.073, "NGram": 5.51, "Combinatorial": 4.24},
            "published_moses_vae": metrics.MOSES_VAE_ROW,
        },
        rows,
    )
    figure(points, RESULTS / f"{args.name}.png", key)


def ex_post(model, name: str, n_train: int, kind: str = "model"):
    """Sampler `name` fitted on the codes of n_train MOSES training molecules (seed 0): posterior means
    ("mean"), one draw each ("draw"), or as the model says ("model": `model.sampler_codes`)."""
    from vaekit.chem.dataset import unscored

    mols = unscored("moses", "train", limit=n_train, seed=0)
    items, _ = model.code_items(mols.smiles, skip=True)
    kind = model.sampler_codes if kind == "model" else kind
    sampler = samplers.fit(name, model, samplers.codes(model, items, draw=kind == "draw"))
    sampler.fitted_on = kind
    return sampler


def figure(points, path: Path, key: str = "cpu_minutes") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, av) = plt.subplots(1, 2, figsize=(10, 4))
    minutes = [p[key] for p in points]
    ax.plot(minutes, [p["FCD/Test"] for p in points], "o-", label="vaekit chemical VAE")
    for label, v, ls in (("NGram (MOSES)", 5.51, ":"), ("MOSES VAE", 0.099, "--")):
        ax.axhline(v, color="0.4", ls=ls, lw=1, label=label)
    ax.set_yscale("log")
    ax.set_xlabel(f"{key[:3].upper()}-minutes of training")
    ax.set_ylabel(f"FCD/Test ({points[0]['samples']} prior samples)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    av.plot(minutes, [p["valid"] for p in points], "o-")
    av.axhline(0.9767, color="0.4", ls="--", lw=1, label="MOSES VAE")
    av.set_xlabel(f"{key[:3].upper()}-minutes of training")
    av.set_ylabel("valid fraction of prior samples")
    av.set_ylim(0, 1)
    av.grid(True, alpha=0.3)
    av.legend(fontsize=8)
    save_figure(fig, path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
