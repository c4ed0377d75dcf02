"""Choosing the chemical VAE's recipe by measured FCD per CPU-minute: short runs of several recipes, each
trained from scratch for the same CPU budget and scored on prior samples with the MOSES metrics.

    vaekit report chemrecipes [--quick] [--option minutes=6] [--option samples=10000]
        [--option recipes=base,smiles,...] [--option threads=1]

Every recipe changes one thing of `base` (the recipe of models/chemvae-selfies: SELFIES, latent 56, a
2 x 256 GRU decoder, KL weight 0.05, batch 128, Adam 1e-3 on a cosine schedule over the budget):
the representation (SMILES, Kekulé SMILES), the decoder's width and depth, the KL weight, word dropout, and the
batch size with its learning rate.  Each is trained on the same 150,000 MOSES training molecules for `minutes` of this
process's CPU time (one thread by default), and `samples` codes from N(0, I) are decoded stochastically
and scored against the whole MOSES test split (FCD/Test, SNN/Test, validity, novelty).

Runs and their scores are kept in runs/report-chemrecipe-NAME (NAME-quick with --quick), so the report can
be built in parts: run it with disjoint `recipes=` subsets in two processes (one per core), then once with
all of them; that last run only reads what the others trained and scored.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from ..io import atomic_write_text
from . import report, trained

C_MOSES = "Polykovskiy et al. 2020 (MOSES), VAE row"
BASE_MODEL = {"kind": "selfies", "latent_dim": 56, "gru_hidden": 256, "gru_layers": 2, "beta": 0.05}
BASE_TRAIN = {"batch_size": 128, "lr": 1e-3}
# name -> (what it changes, model overrides, training overrides)
RECIPES: dict[str, tuple[str, dict, dict]] = {
    "base": ("models/chemvae-selfies's recipe", {}, {}),
    "smiles": ("SMILES instead of SELFIES", {"kind": "smiles"}, {}),
    "kekule": ("Kekulé SMILES instead of SELFIES", {"kind": "kekule"}, {}),
    "wide": ("decoder 2 x 512", {"gru_hidden": 512}, {}),
    "deep": ("decoder 3 x 256", {"gru_layers": 3}, {}),
    "beta0.01": ("KL weight 0.01", {"beta": 0.01}, {}),
    "wdrop": ("word dropout 0.25", {"word_dropout": 0.25}, {}),
    "batch512": ("batch 512, lr 2e-3", {}, {"batch_size": 512, "lr": 2e-3}),
}


def _recipe_config(name: str, quick: bool) -> tuple[dict, dict]:
    _, model_over, train_over = RECIPES[name]
    model = {**BASE_MODEL, **model_over}
    if quick:  # machinery only
        model.update(latent_dim=8, dense=32, gru_hidden=32 * model["gru_hidden"] // 256, prop_hidden=(16,))
    return model, {**BASE_TRAIN, **train_over}


def _tag(ctx, name: str) -> str:
    """The run folder runs/report-TAG of a recipe (quick runs apart from full ones)."""
    return f"chemrecipe-{name}" + ("-quick" if ctx.quick else "")


def _run_dir(ctx, name: str) -> Path:
    """Where `reports.trained` keeps a recipe's run."""
    return Path(ctx.options.get("run_root") or "runs") / f"report-{_tag(ctx, name)}"


def _curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(CPU-minutes, reconstruction NLL per molecule) of a run's training steps, from its log.csv."""
    rows = [r for r in csv.DictReader((run_dir / "log.csv").open()) if r.get("rec") and r.get("cpu_seconds")]
    return np.array([float(r["cpu_seconds"]) / 60 for r in rows]), np.array([-float(r["rec"]) for r in rows])


@report("chemrecipes")
def run(ctx) -> None:
    from ..chem import metrics
    from ..chem.dataset import chem_model, scored
    from ..data.smiles import load_molecules, moses_path
    from ..models import config_dict
    from ..train import TrainConfig

    q = ctx.quick
    minutes = ctx.option("minutes", 0.15 if q else 6.0, float)
    n_samples = ctx.option("samples", 300 if q else 10000, int)
    n_mols = ctx.option("molecules", 3000 if q else 150000, int)
    names = [n for n in str(ctx.options.get("recipes") or ",".join(RECIPES)).split(",") if n]
    unknown = [n for n in names if n not in RECIPES]
    if unknown or not names or minutes <= 0 or n_samples < 2:
        raise VaekitError(
            f"report chemrecipes: recipes must be among {', '.join(RECIPES)}, minutes > 0 and samples >= 2; "
            f"got recipes={','.join(names)}, minutes={minutes}, samples={n_samples}"
        )
    torch.set_num_threads(ctx.option("threads", 1, int))

    mols = scored("moses", "train", ctx.data_dir, limit=n_mols, seed=ctx.seed)
    test = load_molecules("moses", "test", ctx.data_dir, limit=2000 if q else None).smiles
    ref, train_set = None, None
    results, curves = {}, {}
    for name in names:
        model_cfg, train_over = _recipe_config(name, q)
        torch.manual_seed(ctx.seed)
        model = chem_model(mols, **model_cfg)
        tcfg = TrainConfig(
            epochs=1000,
            lr_schedule="cosine",
            max_seconds=minutes * 60,
            budget_clock="cpu",
            checkpoint_every=200,
            seed=ctx.seed,
            progress=False,
            tensorboard=False,
            **train_over,
        )
        ctx.log(f"recipe {name}: training for {minutes} CPU-min")
        full = config_dict(model)["config"]
        cfg = {k: v for k, v in full.items() if k not in ("tokens", "prop_mean", "prop_std")}
        x = model.items(mols.smiles, mols.props)
        model, info = trained(ctx, _tag(ctx, name), "chemvae", full, x, tcfg)
        run_dir = _run_dir(ctx, name)
        score_file = run_dir / f"scores-{n_samples}-{ctx.seed}-{len(test)}.json"
        if info["loaded"] and score_file.is_file():
            scores = json.loads(score_file.read_text())
        else:
            if ref is None:
                ref = metrics.reference_stats(test)
                train_set = metrics.canonical_set(metrics.read_smiles_csv(moses_path("train", ctx.data_dir)))
            ctx.log(f"recipe {name}: scoring {n_samples} prior samples")
            g = torch.Generator().manual_seed(ctx.seed)
            z = torch.randn(n_samples, model.config.latent_dim, generator=g)
            model.eval()
            gen = [s for i in range(0, n_samples, 2000) for s in model.decode_smiles(z[i : i + 2000], generator=g)]
            scores = metrics.moses_metrics(gen, ref, train_set, k=(min(1000, n_samples),))
            atomic_write_text(score_file, json.dumps(scores, indent=1))
        cpu_min = info["cpu_seconds"] / 60
        molecules_seen = info["steps"] * tcfg.batch_size
        results[name] = {
            "config": cfg,
            "train": train_over,
            "cpu_minutes": cpu_min,
            "steps": info["steps"],
            "molecules_seen": molecules_seen,
            **scores,
        }
        curves[name] = _, rec = _curve(run_dir)
        results[name]["final_rec_nll"] = float(rec[-max(1, len(rec) // 10) :].mean()) if len(rec) else float("nan")
        ctx.row(
            "MOSES test",
            f"FCD/Test, {n_samples} prior samples: {name} ({RECIPES[name][0]})",
            scores["FCD/Test"],
            0.099,
            C_MOSES,
            info["cpu_seconds"],
            f"{info['steps']} steps, {molecules_seen:,} molecules in {cpu_min:.1f} CPU-min; "
            f"valid {scores['valid']:.3f}, "
            f"SNN/Test {scores['SNN/Test']:.3f}, novelty {scores['Novelty']:.3f}; training reconstruction NLL "
            f"{results[name]['final_rec_nll']:.1f} nats (last 10 % of steps)",
        )
    best = min(results, key=lambda n: results[n]["FCD/Test"])
    ctx.extra["recipes"] = results
    ctx.extra["choice"] = (
        f"Lowest FCD/Test after {minutes} CPU-min: {best} ({RECIPES[best][0]}), {results[best]['FCD/Test']:.2f}, "
        f"with {results[best]['valid']:.1%} of its samples valid. FCD, SNN and novelty are measured on the valid "
        "samples (MOSES's protocol), so a SMILES model's invalid samples count only in 'valid'. The training "
        "reconstruction NLL compares recipes of one representation: SMILES and SELFIES token sequences differ. "
        "Short runs rank recipes by how fast they learn; the ranking after hours of CPU may differ."
    )
    _figure(ctx, results, curves)


def _figure(ctx, results: dict, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results)
    fcd = [results[n]["FCD/Test"] for n in names]
    a.barh(names, fcd, color=["C3" if f == min(fcd) else "C0" for f in fcd])
    a.set_xlabel("FCD/Test of prior samples (lower is better)")
    a.invert_yaxis()
    for n, (x, rec) in curves.items():
        if len(rec):
            k = max(1, len(rec) // 30)
            smooth = np.convolve(rec, np.ones(k) / k, mode="valid")
            b.plot(x[k - 1 :], smooth, label=n)
    b.set_xlabel("CPU-minutes")
    b.set_ylabel("training reconstruction NLL (nats per molecule)")
    b.legend(fontsize=8)
    ctx.figure(fig, "recipes.png", "FCD/Test per recipe at equal CPU, and the training reconstruction loss")
    plt.close(fig)
