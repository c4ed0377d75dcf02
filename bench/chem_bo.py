"""Latent-space Bayesian optimisation of penalized logP, global against trust region, with several seeds in one run.

    python bench/chem_bo.py models/chemvae-smiles [models/chemvae-lowkl ...] [--seeds 5] [--first-seed 0]
        [--methods global,trust_region,trust_region_local] [--rounds 10] [--batch 50] [--train 2000] [--name chem_bo]

The task is the one of GVAE and JT-VAE, as `vaekit report chemvae` sets it up
(`vaekit.reports.chemvae.optimisation_problem`): a GP on the codes of `--train` scored MOSES training molecules,
`--rounds` batches of `--batch` proposals decoded greedily and scored.  Two methods on the same codes and seeds:

- global: q-log-EI maximised over the box the training codes span (the published protocol);
- trust region: the same GP and acquisition inside TuRBO-1's box around the best code so far
  (`vaekit.chem.bo.bayes_opt(..., trust_region=True)`);
- trust region, local fit: the same, with the GP's hyperparameters fitted on the 500 codes nearest to the best
  one instead of 500 random ones, which are mostly starting codes far from the search (`local_fit=True`).

The decoder follows SMILES branches and rings (chem.vocab.Syntax); `--no-syntax` decodes as it did before
(results written before the option existed were measured that way).

JT-VAE's 5.30 is the best molecule of 10 seeds; `--seeds 10` reproduces that protocol.  For scale, the best
molecule of the whole MOSES training split scores 3.48 (`python bench/chem_train_best.py`).

Writes bench/results/NAME.json and prints a table: per method and model the best score of each seed, the best
of all seeds, valid proposals, CPU-seconds, and the ratio of the trust region's best to the global one's.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from vaekit.checkpoint import load_model
from vaekit.chem import bo
from vaekit.chem.props import penalized_logp
from vaekit.data.smiles import moses_path
from vaekit.errors import VaekitError
from vaekit.reports.chemvae import BO_METHODS, optimisation_problem

from common import shown_path, write

METHODS = list(BO_METHODS)  # the report's BO methods: "global", "trust_region", "trust_region_local"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="committed model folders or run folders of chemvae models")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds run from this one on (more seeds in a later run)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--train", type=int, default=2000, help="scored training molecules the GP starts from")
    ap.add_argument("--name", default="chem_bo")
    ap.add_argument(
        "--no-syntax",
        action="store_true",
        help="decode without following SMILES branches and rings (the decoder's mask before they were followed)",
    )
    args = ap.parse_args()
    methods = args.methods.split(",")
    if not set(methods) <= set(METHODS):
        ap.error(f"--methods: unknown {sorted(set(methods) - set(METHODS))}; known: {', '.join(METHODS)}")
    try:  # a missing data set or model: one line, before minutes of work
        moses_path("train")
        models = {path: load_model(path).eval() for path in args.models}
    except VaekitError as e:
        ap.error(str(e))
    for model in models.values():
        if args.no_syntax:
            model.decoder_net.syntax = model.vocab.syntax(strict=False)
    runs = []
    for path, model in models.items():
        z0, smiles, y0, decode = optimisation_problem(model, None, args.train, seed=2)  # the report's seed 0 + 2
        for method in methods:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                cpu = time.process_time()
                res = bo.bayes_opt(
                    penalized_logp,
                    decode,
                    z0,
                    y0,
                    rounds=args.rounds,
                    batch=args.batch,
                    seed=seed,
                    strings_init=smiles,
                    **BO_METHODS[method][1],
                )
                top = bo.top_molecules(res, 3)
                runs.append(
                    {
                        "model": shown_path(path),
                        "method": method,
                        "seed": seed,
                        "best": top[0][1] if top else -math.inf,
                        "top3": top,
                        "best_by_round": res.best,
                        "start": res.start,
                        "valid": res.n_valid,
                        "new": res.n_new,
                        "proposed": res.n_proposed,
                        "trust_region_side": [side for side, _ in res.regions],
                        "cpu_seconds": time.process_time() - cpu,
                    }
                )
                print(f"{runs[-1]['model']} {method} seed {seed}: best {runs[-1]['best']:.2f}, valid {res.n_valid}")
    rows = [["model", "method", "best of seeds", "best per seed", "mean", "valid", "CPU s / seed", "vs global"]]
    summary = []
    for path in dict.fromkeys(r["model"] for r in runs):
        best_global = None
        for method in methods:
            mine = [r for r in runs if r["model"] == path and r["method"] == method]
            bests = [r["best"] for r in mine]
            best = max(bests)
            best_global = best if method == "global" else best_global
            ratio = best / best_global if best_global and best_global > 0 else None  # None: no global row
            summary.append(
                {"model": path, "method": method, "best": best, "mean": float(np.mean(bests)), "ratio": ratio}
            )
            rows.append(
                [
                    path,
                    method,
                    f"{best:.2f}",
                    " ".join(f"{b:.2f}" for b in bests),
                    f"{np.mean(bests):.2f}",
                    f"{np.mean([r['valid'] / r['proposed'] for r in mine]):.0%}",
                    f"{np.mean([r['cpu_seconds'] for r in mine]):.0f}",
                    "—" if ratio is None else f"{ratio:.2f}x",
                ]
            )
    write(
        args.name,
        {
            "task": f"penalized logP, GP on {args.train} MOSES training codes, {args.rounds} rounds of {args.batch}",
            "threads": torch.get_num_threads(),
            "grammar": "tokens only (--no-syntax)" if args.no_syntax else "SMILES branches and rings",
            "summary": summary,
            "runs": runs,
        },
        rows,
    )


if __name__ == "__main__":
    main()
