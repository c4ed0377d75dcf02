"""vaekit's MOSES filters and property scores beside MOSES's own, molecule by molecule, in one run.

    python bench/vs_moses_filters.py --venv VENV [models/chemvae-selfies models/chemvae-smiles] [--samples 6000]

The metric "Filters" is the fraction of generated molecules that pass the filters the MOSES data set was built
with, and logP, SA, QED and weight are distances between property distributions; `bench/vs_moses_vae.py`
compares the aggregate numbers.  This one compares the pieces under them, on molecules that fail often: for each
model, `--samples` codes from the prior (seeded) decoded once each, their distinct valid canonical SMILES
scored by `vaekit.chem.filters.passes` and `vaekit.chem.metrics.moses_properties`, and by MOSES's
`mol_passes_filters`, `logP`, `SA`, `QED`, `weight` in the venv of bench/moses/setup.sh
(`bench/moses/moses_vae.py molecules`).  The default models are the kit's SELFIES model, far from drug-like
(many of its molecules fail), and its SMILES model.

Writes bench/results/vs_moses_filters.json (pass fractions, the molecules judged differently with vaekit's
reason, the largest property differences) and prints a table; the SMILES files stay under `--work`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from vaekit.checkpoint import load_model
from vaekit.chem import filters, metrics
from vaekit.chem.props import canonical, mol
from vaekit.errors import VaekitError
from vs_moses_vae import DRIVER, thread_env, venv_python

from common import shown_path, write


def molecules_of(model, n: int, seed: int) -> list[str]:
    """The distinct valid canonical SMILES among n prior samples of `model`, in the order first drawn."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.latent_dim, generator=g)
    with torch.no_grad():
        gen = [s for i in range(0, n, 2000) for s in model.decode_smiles(z[i : i + 2000], generator=g)]
    return list(dict.fromkeys(c for c in map(canonical, gen) if c is not None))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=["models/chemvae-selfies", "models/chemvae-smiles"])
    ap.add_argument("--venv", default=os.environ.get("MOSES_VENV"), help="the venv of bench/moses/setup.sh")
    ap.add_argument("--samples", type=int, default=6000, help="prior samples a model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/vs_moses_filters", help="where the SMILES and MOSES's answers go")
    ap.add_argument("--name", default="vs_moses_filters")
    args = ap.parse_args()
    python = venv_python(args.venv, "vs_moses_filters")
    try:  # a missing model is refused in one line before any sampling
        models = {path: load_model(path) for path in args.models}
    except VaekitError as e:
        ap.error(str(e))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    rows, table = {}, [["model", "molecules", "pass (vaekit)", "pass (MOSES)", "judged differently", "max |Δ| props"]]
    for path in args.models:
        smiles = molecules_of(models[path], args.samples, args.seed)
        smi_file, theirs_file = work / f"{Path(path).name}.smi", work / f"{Path(path).name}-moses.json"
        smi_file.write_text("\n".join(smiles) + "\n")
        done = subprocess.run(
            [str(python), str(DRIVER), "molecules", "--smiles", str(smi_file), "--out", str(theirs_file)],
            env=thread_env(1),
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(f"vs_moses_filters: MOSES failed on {smi_file} ({done.returncode}):\n{done.stderr[-3000:]}")
        theirs = json.loads(theirs_file.read_text())
        ours_pass = [filters.passes(s) for s in smiles]
        ours_props = np.array([metrics.moses_properties(s) for s in smiles])
        their_props = np.array([t[1:] for t in theirs], dtype=float)
        differ = [
            {"smiles": s, "vaekit": a, "moses": t[0], "vaekit_reason": filters.failed(mol(s))}
            for s, a, t in zip(smiles, ours_pass, theirs)
            if a != t[0]
        ]
        delta = np.nanmax(np.abs(ours_props - their_props), axis=0)
        rows[path] = {
            "molecules": len(smiles),
            "pass_vaekit": float(np.mean(ours_pass)),
            "pass_moses": float(np.mean([t[0] for t in theirs])),
            "judged_differently": len(differ),
            "differ": differ[:50],
            "max_abs_difference": dict(zip(metrics.PROPERTIES, map(float, delta))),
        }
        table.append(
            [
                shown_path(path),
                str(len(smiles)),
                f"{rows[path]['pass_vaekit']:.4f}",
                f"{rows[path]['pass_moses']:.4f}",
                str(len(differ)),
                f"{float(delta.max()):.2g}",
            ]
        )
    write(
        args.name,
        {"samples": args.samples, "seed": args.seed, "rows": {shown_path(p): r for p, r in rows.items()}},
        table,
    )


if __name__ == "__main__":
    main()
