"""Gomez-Bombarelli et al. (2016/2018), the chemical VAE, measured by the protocols of its successors.

    vaekit report chemvae [--quick] [--pretrained] [--option run=RUN_DIR] [--option key=value ...]

The model is a `chemvae` trained with the kit's loop on a seeded subset of the MOSES training split
(ZINC Clean Leads), e.g.

    vaekit fit runs/chemvae-long --model chemvae --data moses --molecules 150000 --kind selfies \\
        --gru-hidden 256 --gru-layers 2 --beta 0.05 --warmup-steps 1000 --epochs 20 --max-steps 9000 \\
        --batch-size 128 --lr-schedule cosine --val-fraction 0.02

(9,000 steps, 7.8 epochs, about an hour on one core; `--resume` continues it;
`--option run=runs/chemvae-long` reports on it, and is the default).  The KL weight 0.05 is the
MOSES VAE's; with beta = 1 the GRU decoder ignores the code (KL about 1 nat per molecule, 11 active
units, no reconstructions: posterior collapse).  `--pretrained` uses the SMILES model committed under
models/chemvae-smiles/ (the best recipe of `vaekit report chemrecipes`), with the prior-validity row of the
SELFIES one (models/chemvae-selfies/) beside it.
The report measures, each beside the published numbers:
- reconstruction accuracy, JT-VAE's protocol (Jin et al. 2018, Table 1): every test molecule encoded 10
  times, every code decoded 10 times, fraction of decodings equal to the input (canonical SMILES); the note
  adds what JT-VAE's released script measures (a sampled code decoded greedily) and greedy decoding of
  the posterior mean;
- validity of prior samples (1,000 codes from N(0, I), each decoded 100 times), with uniqueness and novelty;
  `--option prior_runs=runs/chemvae-smiles-3k` adds the same row for other trained models (a SMILES one,
  trained as above with `--kind smiles --max-steps 3000`: the issue asks for both representations);
- the MOSES table (Polykovskiy et al. 2020) on 30,000 prior samples against the MOSES test split (the
  protocol), and the same table for codes from ex-post samplers fitted on posterior draws of the training
  molecules (`--option samplers=gmm,twostage`, the default; `samplers=` for none), in rows of their own marked
  as not the protocol;
- a diagnostic: the FCD of the reconstruction distribution (test molecules, each encoded by one draw from
  q(z|x) and decoded stochastically) beside the FCD of as many prior samples and of the test molecules
  themselves; a decoder that reproduces the data distribution from posterior codes but not from prior codes
  points at the mismatch between the prior and the aggregate posterior, not at the decoder;
- the property head's mean absolute error on test molecules;
- latent-space optimisation of penalized logP: Bayesian optimisation with a GP on the codes of training
  molecules (10 rounds of 50, as in GVAE/JT-VAE; `--option bo_seeds=10` repeats it with 10 seeds, as they did,
  and adds a row for the best molecules of any run), the same BO inside a trust region around the best code
  (TuRBO-1), and that trust region with the GP's hyperparameters fitted on the codes nearest to the best one
  (`--option bo_methods=global` leaves both out), gradient ascent on the property head, random prior samples;
- JT-VAE's similarity-constrained optimisation (Table 3): the 800 test molecules with the lowest penalized
  logP, each improved by gradient ascent from its code while the Tanimoto similarity to it stays >= delta.
The low-KL model for reconstruction and optimisation (JT-VAE found beta > 0.01 damages reconstruction) is
models/chemvae-lowkl: the SMILES model fine-tuned with KL weight 0.005, then 0.001 (a weight, not free
bits: one knob that keeps the ELBO's form).  reports/chemvae-lowkl is

    vaekit report chemvae --option run=models/chemvae-lowkl --out reports/chemvae-lowkl \
        --option samplers= --option n_samples=10000

and its training.json gives the fine-tuning command.

The published reconstruction/validity/BO numbers were measured on ZINC250k; ours are on MOSES (a ZINC
subset with a narrower weight range), which every such row says.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import VaekitError
from . import report

C_JTVAE = "Jin et al. 2018 (JT-VAE), Table 1"
C_BO = "Kusner et al. 2017 (GVAE) Table 2; Jin et al. 2018 (JT-VAE) Table 2"
C_CON = "Jin et al. 2018 (JT-VAE), Table 3"
# JT-VAE's similarity-constrained task: delta -> (mean improvement, its std, success rate in %)
JTVAE_CONSTRAINED = {0.0: (1.91, 2.04, 97.5), 0.2: (1.68, 1.85, 97.1), 0.4: (0.84, 1.45, 83.6), 0.6: (0.21, 0.71, 46.4)}
C_MOSES = "Polykovskiy et al. 2020 (MOSES), Tables: VAE row; CharRNN best FCD"
ON_MOSES = "measured on MOSES test (published: ZINC250k)"
PRETRAINED = "chemvae-smiles"  # the committed model `--pretrained` uses (`models.pretrained`)
ALSO_PRETRAINED = "chemvae-selfies"  # with --pretrained, its prior validity is given beside (--option prior_runs)


def _train_quick(ctx):
    """A tiny SELFIES model on 2,000 MOSES training molecules for a few seconds: checks the machinery only."""
    from ..chem.dataset import chem_model, scored
    from ..train import TrainConfig, fit

    mols = scored("moses", "train", ctx.data_dir, limit=2000, seed=ctx.seed)
    torch.manual_seed(ctx.seed)
    model = chem_model(mols, "selfies", latent_dim=16, dense=64, gru_hidden=64, gru_layers=1, prop_hidden=(32,))
    t0 = time.perf_counter()
    fit(
        model,
        model.items(mols.smiles, mols.props),
        TrainConfig(
            epochs=50,
            batch_size=64,
            lr=3e-3,
            max_seconds=ctx.option("train_seconds", 20, float),
            seed=ctx.seed,
            progress=False,
            tensorboard=False,
        ),
    )
    return model.eval(), {"molecules": len(mols), "seconds": time.perf_counter() - t0, "source": "quick"}


def _load(ctx, run=None):
    """The trained model of `run` (default: --option run=..., --pretrained, or runs/chemvae-long) and what
    its run folder says about its training."""
    from ..checkpoint import load_model
    from ..models import pretrained
    from ..models.pretrained import committed

    if run is None and ctx.quick and "run" not in ctx.options:
        return _train_quick(ctx)
    run = Path(
        run or ctx.options.get("run", pretrained(PRETRAINED) if ctx.options.get("pretrained") else "runs/chemvae-long")
    )
    if not run.exists():
        raise VaekitError(
            f"{run}: no trained chemical VAE; train one (see `vaekit report chemvae` docs) or use --pretrained"
        )
    model = load_model(run)
    # its fitted ex-post samplers are kept where `vaekit sample --sampler` keeps them (samplers.kept)
    info = {"source": f"models/{run.name}" if committed(run) else str(run), "run_dir": str(run)}
    log = run / "log.csv"
    if log.is_file():
        import csv

        rows = [r for r in csv.DictReader(log.open()) if r.get("loss")]  # training steps (not val rows)
        if rows:
            info.update(steps=int(rows[-1]["step"]), epochs=int(rows[-1]["epoch"]) + 1)
    import json

    cfg, timing = run / "config.json", run / "training.json"  # training.json: written by `vaekit fit`
    if cfg.is_file():
        info["data"] = json.loads(cfg.read_text()).get("data", {})
    if timing.is_file():  # a committed model's says how much training it saw, its parents' included
        record = json.loads(timing.read_text())
        info["seconds"] = record.get("seconds", math.nan)
        for key in ("cpu_minutes", "molecules_seen"):
            if f"{key}_including_parent" in record or key in record:
                info[key] = record.get(f"{key}_including_parent", record.get(key))
    return model, info


# latent-space BO methods (`--option bo_methods=...`): the name of each one's row and its settings of bo.bayes_opt
BO_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "global": ("BO (GP, qLogEI)", {}),
    "trust_region": ("BO, trust region (TuRBO-1)", {"trust_region": True}),
    "trust_region_local": (
        "BO, trust region, GP fitted near the best code",
        {"trust_region": True, "local_fit": True},
    ),
}


@report("chemvae")
def run(ctx) -> None:
    from ..chem import bo, metrics
    from ..chem.dataset import scored, unscored
    from ..chem.props import canonical, penalized_logp
    from ..models import pretrained

    q = ctx.quick
    n_recon = ctx.option("n_recon", 20 if q else 1000, int)
    n_z, n_dec = ctx.option("n_z", 20 if q else 1000, int), ctx.option("n_decode", 10 if q else 100, int)
    n_samples = ctx.option("n_samples", 500 if q else 30000, int)
    n_fcd_ref = ctx.option("fcd_ref", 2000 if q else 176074, int)
    rounds, batch, n_gp = (
        ctx.option("bo_rounds", 2 if q else 10, int),
        ctx.option("bo_batch", 10 if q else 50, int),
        ctx.option("bo_train", 200 if q else 2000, int),
    )
    bo_seeds = ctx.option("bo_seeds", 1, int)  # GVAE and JT-VAE repeat BO with 10 seeds (the best of any run counts)
    if bo_seeds < 1:
        raise VaekitError(f"report chemvae: option bo_seeds must be >= 1, got {bo_seeds}")
    chosen = str(ctx.options.get("bo_methods", ",".join(BO_METHODS))).split(",")
    bad = [m for m in chosen if m not in BO_METHODS]
    if bad:
        raise VaekitError(f"report chemvae: option bo_methods: unknown {bad}; known: {', '.join(BO_METHODS)}")
    bo_methods = {m: BO_METHODS[m] for m in chosen}
    g = torch.Generator().manual_seed(ctx.seed)
    torch.manual_seed(ctx.seed)

    model, info = _load(ctx)
    cfg = model.config
    ctx.extra["model"] = {
        "config": {
            k: getattr(cfg, k) for k in ("kind", "latent_dim", "max_len", "gru_hidden", "gru_layers", "properties")
        },
        **{k: v for k, v in info.items() if k != "run_dir"},  # "source" names it, a committed one relatively
    }
    data = info.get("data", {})
    molecules = data.get("molecules") or info.get("molecules")  # None: the whole split
    ctx.row(
        "MOSES train",
        "training",
        info.get("steps", float("nan")),
        note=f"{cfg.kind} {model.name}: latent {cfg.latent_dim}, GRU {cfg.gru_layers}x{cfg.gru_hidden}, "
        + (f"{molecules:,} training molecules, " if molecules else "the whole training split, ")
        + (
            f"{info['molecules_seen']:,} molecules seen in {info['cpu_minutes']:.0f} CPU-min ({info['source']})"
            if "cpu_minutes" in info and "molecules_seen" in info
            else f"{info.get('epochs', 'up to 50')} epochs, {info.get('seconds', float('nan')) / 60:.1f} min "
            f"({info['source']})"
        ),
        seconds=info.get("seconds"),
    )

    test = scored("moses", "test", ctx.data_dir, limit=max(n_recon, 5000 if not q else 500), seed=ctx.seed + 1)
    _, kept = model.vocab.encode(test.smiles, skip=True)
    fits = [test.smiles[i] for i in kept]
    ctx.log(f"{len(fits)}/{len(test)} test molecules fit the vocabulary")

    with torch.no_grad():  # how much the code says about the molecule: KL and active units (posterior collapse?)
        from .. import bounds
        from ..evaluate import active_units

        items = model.items(fits[:1000], {p: v[kept[:1000]] for p, v in test.props.items()})
        terms = bounds.elbo(model, items, n_samples=4).terms
        active = active_units(model, items)
    ctx.row(
        "MOSES test",
        "ELBO per molecule (nats)",
        float(terms["elbo"]),
        note=f"reconstruction log-likelihood {float(terms['rec']):.2f}, "
        f"KL(q(z|x) || p(z)) {float(terms['kl']):.2f} nats, "
        f"{active} of {cfg.latent_dim} latent units active (Var_x E_q[z_j|x] > 0.01); beta = {cfg.beta}; "
        f"{len(items)} test molecules",
    )

    def encode(smiles):
        return model.encode_smiles(smiles, sample=True)

    def decode(z):
        return model.decode_smiles(z, generator=g)

    # -- reconstruction ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    recon = metrics.reconstruction_accuracy(encode, decode, fits[:n_recon])
    greedy = np.mean(
        [
            canonical(a) == b
            for a, b in zip(model.decode_smiles(model.encode_smiles(fits[:n_recon]), greedy=True), fits[:n_recon])
        ]
    )
    # what JT-VAE's released molvae/reconstruct.py measures: one sampled code, decoded greedily (10 codes here)
    released = metrics.reconstruction_accuracy(
        encode, lambda z: model.decode_smiles(z, greedy=True), fits[:n_recon], n_decode=1
    )
    ctx.row(
        "MOSES test",
        "reconstruction accuracy (10 encodings x 10 decodings)",
        100 * recon,
        paper=76.7,
        citation=C_JTVAE,
        seconds=time.perf_counter() - t0,
        target=">= 77",
        met=None if q else 100 * recon >= 77,
        note=f"{n_recon} test molecules; {ON_MOSES}; published CVAE 44.6, GVAE 53.7, SD-VAE 76.2, JT-VAE 76.7 "
        f"(%); sampled codes decoded greedily (JT-VAE's released reconstruct.py): {100 * released:.1f} %; "
        f"greedy decoding of the posterior mean: {100 * greedy:.1f} %",
    )

    # -- prior samples -------------------------------------------------------------------------------
    if q:  # novelty against a 2,000-molecule stand-in; the full run canonicalises all 1.58 M (cached)
        train_set = set(scored("moses", "train", ctx.data_dir, limit=2000, seed=ctx.seed).smiles)
    else:
        from ..data.smiles import moses_path

        train_set = metrics.canonical_set(metrics.read_smiles_csv(moses_path("train", ctx.data_dir)))
    # the main model, then any others named by --option prior_runs=DIR[,DIR] (e.g. a SMILES model)
    default_others = str(pretrained(ALSO_PRETRAINED)) if ctx.options.get("pretrained") else ""
    others = [r for r in ctx.option("prior_runs", default_others, str).split(",") if r]
    loaded = [(model, None)]
    for r in others:
        other, other_info = _load(ctx, r)
        loaded.append((other, other_info["source"]))
    for m, source in loaded:
        t0 = time.perf_counter()
        kind = m.config.kind

        def draw_codes(n, m=m):
            return torch.randn(n, m.config.latent_dim, generator=g)

        def decode_codes(z, m=m):
            return m.decode_smiles(z, generator=g)

        pv = metrics.prior_validity(draw_codes, decode_codes, n_z, n_dec, train=train_set)
        ctx.row(
            "prior",
            f"validity of prior samples ({n_z} z x {n_dec} decodings)" + (f", {kind} model" if source else ""),
            100 * pv["valid"],
            paper=100.0 if kind == "selfies" else 0.7,
            citation=C_JTVAE,
            seconds=time.perf_counter() - t0,
            target="100 % with SELFIES" if kind == "selfies" else "",
            met=None if (q or kind != "selfies") else pv["valid"] >= 1.0,
            note=f"{kind}{' model ' + source if source else ''}; unique {100 * pv['unique']:.1f} %, "
            f"novel {100 * pv.get('novel', math.nan):.1f} %; the decoder's grammar mask (chem.vocab.Syntax) "
            "lets no decoding be empty and, for SMILES, closes every branch and ring; published CVAE 0.7 "
            "(SMILES), GVAE 7.2, SD-VAE 43.5, JT-VAE 100 (%, ZINC250k)",
        )

    # -- MOSES metrics -------------------------------------------------------------------------------
    t0 = time.perf_counter()
    z = torch.randn(n_samples, cfg.latent_dim, generator=g)
    gen = [s for i in range(0, n_samples, 2000) for s in decode(z[i : i + 2000])]
    ctx.log(
        f"decoded {n_samples} prior samples in {time.perf_counter() - t0:.0f} s; scoring (FCD reference: "
        f"{n_fcd_ref} test molecules)"
    )
    ref_mols = unscored("moses", "test", ctx.data_dir, limit=n_fcd_ref if n_fcd_ref < 176074 else None).smiles
    ref = metrics.reference_stats(ref_mols)
    mm = metrics.moses_metrics(gen, ref, train_set)
    secs = time.perf_counter() - t0
    targets = {
        "valid": ">= 0.9767",
        "FCD/Test": "<= 0.099 (stretch 0.073)",
        "SNN/Test": ">= 0.6257",
        "Novelty": ">= 0.6949",
    }
    for key, value in mm.items():
        paper, target = metrics.MOSES_VAE_ROW.get(key), targets.get(key)
        better = None if paper is None else (value <= paper) if metrics.lower_is_better(key) else (value >= paper)
        ctx.row(
            "MOSES",
            key,
            value,
            paper=paper,
            citation=C_MOSES if paper is not None else "",
            seconds=secs if key == "valid" else None,
            target=target or "",
            met=None if (q or target is None) else better,
            note=f"{n_samples} prior samples (the MOSES protocol); reference: {len(ref_mols)} MOSES test molecules"
            + ("; CharRNN 0.0732" if key == "FCD/Test" else ""),
        )
    _reconstruction_fcd(ctx, model, fits, gen, ref, len(ref_mols), g)
    if ctx.options.get("pretrained"):
        _curve_rows(ctx, mm["FCD/Test"])
    _expost_rows(ctx, model, info, n_samples, ref, len(ref_mols), train_set, g, test.subset(kept), mm)

    # -- property head -------------------------------------------------------------------------------
    sub = test.subset([i for i in kept[: max(n_recon, 1000)]])
    pred = model.predict_properties(model.encode_smiles(sub.smiles)).cpu().numpy()
    for j, p in enumerate(cfg.properties):
        mae = float(np.mean(np.abs(pred[:, j] - sub.props[p])))
        ctx.row(
            "MOSES test",
            f"property head MAE: {p}",
            mae,
            note=f"{len(sub)} test molecules, posterior mean; spread of {p} in them: std {np.std(sub.props[p]):.3f}",
        )

    # -- latent-space optimisation -------------------------------------------------------------------
    z0, pool_smiles, y0, decode_greedy = optimisation_problem(model, ctx.data_dir, n_gp, ctx.seed + 2)
    results = {}
    t0 = time.perf_counter()
    bo_runs = {
        name: [
            bo.bayes_opt(
                penalized_logp,
                decode_greedy,
                z0,
                y0,
                rounds=rounds,
                batch=batch,
                seed=ctx.seed + k,
                strings_init=pool_smiles,
                log=ctx.log,
                **settings,
            )
            for k in range(bo_seeds)
        ]
        for name, settings in bo_methods.values()
    }
    results.update({name: runs[0] for name, runs in bo_runs.items()})
    results["random prior samples"] = bo.random_search(
        penalized_logp, decode_greedy, cfg.latent_dim, rounds, batch, seed=ctx.seed, strings_init=pool_smiles
    )
    head = cfg.properties.index("logP") if "logP" in cfg.properties else None
    if head is not None:
        start = torch.argsort(y0, descending=True)[:batch]

        def predict(zz):  # the property head's logP minus its SA: the differentiable part of the score
            out = model.predict_properties(zz, grad=True)
            return out[:, head] - out[:, cfg.properties.index("SAS")]

        results["gradient ascent (head)"] = bo.gradient_ascent(
            predict,
            z0[start],
            decode_greedy,
            penalized_logp,
            steps=100 if not q else 10,
            lr=0.05,
            prior_weight=0.1,
            every=10 if not q else 5,
            strings_init=pool_smiles,
        )
    for name, res in results.items():
        top = bo.top_molecules(res, 3)
        best = top[0][1] if top else float("nan")
        ctx.row(
            "optimisation",
            f"best penalized logP: {name}",
            best,
            paper=5.30 if name.startswith("BO") else None,
            citation=C_BO if name.startswith("BO") else "",
            seconds=res.seconds,
            target=">= 5.30" if name.startswith("BO") else "",
            met=None if (q or not name.startswith("BO")) else best >= 5.30,
            note=f"top-3 {[(s, round(v, 2)) for s, v in top]}; {res.n_proposed} proposals, {res.n_valid} valid, "
            f"{res.n_new} new; start (best of the {len(pool_smiles)} training molecules) {float(y0.max()):.2f}; "
            "published CVAE 1.98, GVAE 2.94, SD-VAE 4.04, JT-VAE 5.30 (ZINC250k)",
        )
    for name, runs in bo_runs.items():
        if len(runs) == 1:
            continue
        tops = [bo.top_molecules(r, 3) for r in runs]
        bests = [t[0][1] if t else float("nan") for t in tops]
        top = sorted({s: v for t in tops for s, v in t}.items(), key=lambda t: -t[1])[:3]  # a molecule counts once
        ctx.row(
            "optimisation",
            f"best penalized logP: {name}, best of {len(runs)} seeds",
            top[0][1] if top else float("nan"),
            paper=5.30,
            citation=C_BO,
            seconds=sum(r.seconds for r in runs),
            target=">= 5.30",
            met=None if q else bool(top) and top[0][1] >= 5.30,
            note=f"top-3 {[(s, round(v, 2)) for s, v in top]}; best of each seed (from {ctx.seed}) "
            + " ".join(f"{b:.2f}" for b in bests)
            + f", mean {np.nanmean(bests):.2f}; the row above is seed {ctx.seed}'s run (the published protocol: "
            "10 seeds, the best molecules of any)",
        )
    ctx.log(f"optimisation took {time.perf_counter() - t0:.0f} s")
    constrained = (
        None if head is None else _constrained(ctx, model, bo, predict, fits, decode_greedy, penalized_logp, q)
    )
    _figures(ctx, model, results, sub, fits, bo, constrained)


def optimisation_problem(model, data_dir, n: int, seed: int):
    """The latent-space optimisation task of GVAE and JT-VAE on a chemical VAE: the posterior means z0 (n, d)
    of `n` scored MOSES training molecules (drawn with `seed`; those outside the vocabulary are left out),
    their SMILES and penalized logP y0, and decode(z): greedy decodings as canonical SMILES (None where they
    do not parse), so that "new" and "unique" count molecules, not spellings."""
    from ..chem.dataset import scored
    from ..chem.props import canonical, penalized_logp

    pool = scored("moses", "train", data_dir, limit=n, seed=seed)
    z0, kept = model.encode_smiles(pool.smiles, skip=True)
    smiles = [pool.smiles[i] for i in kept]
    y0 = torch.tensor([penalized_logp(s) for s in smiles], dtype=torch.float64)

    def decode(zz):
        return [canonical(s) if s else None for s in model.decode_smiles(zz.float(), greedy=True)]

    return z0.double(), smiles, y0, decode


def _reconstruction_fcd(ctx, model, fits, prior_gen, ref, n_ref, g) -> None:
    """Diagnostic rows: FCD/Test of decodings of test molecules' own posterior samples (one z ~ q(z|x) each,
    decoded stochastically), beside the FCD of as many prior samples and of the test molecules themselves."""
    from ..chem import metrics
    from ..chem.props import canonical

    m = min(len(fits), len(prior_gen))
    t0 = time.perf_counter()
    z = model.encode_smiles(fits[:m], sample=True)
    decoded = [s for i in range(0, m, 2000) for s in model.decode_smiles(z[i : i + 2000], generator=g)]

    def valid(smiles):
        return [c for c in map(canonical, smiles) if c is not None]

    rec, prior = valid(decoded), valid(prior_gen[:m])
    fcd = {
        what: metrics.fcd(sm, ref) if len(sm) >= 2 else math.nan
        for what, sm in (("rec", rec), ("prior", prior), ("self", fits[:m]))
    }
    secs = time.perf_counter() - t0
    common = (
        f"diagnostic, not a published protocol; reference: {n_ref} MOSES test molecules; the test molecules "
        f"themselves score {fcd['self']:.3f} (they come from the reference's split: the floor at this count)"
    )
    ctx.row(
        "diagnostic",
        f"FCD/Test of the reconstruction distribution ({m} test molecules, z ~ q(z|x))",
        fcd["rec"],
        seconds=secs,
        note=f"each test molecule encoded by one draw from q(z|x) and decoded stochastically; {len(rec)} of {m} "
        f"valid; prior samples of the same count: {fcd['prior']:.3f}. Near the floor while the prior's is "
        f"far above it: the decoder is fine and the prior's codes are the problem (prior mismatch); far "
        f"above it too: the decoder; {common}",
    )
    ctx.row(
        "diagnostic",
        f"FCD/Test of prior samples ({m}, the same count)",
        fcd["prior"],
        note=f"{len(prior)} of {m} valid; the first {m} of the MOSES rows' prior samples; {common}",
    )


def _training_molecules(ctx, info):
    """The molecules the model was trained on, as its run's config.json records them (the quick model: its
    2,000 MOSES molecules; a run without that record: a seeded subset of MOSES train), unscored: their codes
    need no properties."""
    from ..chem.dataset import unscored

    d = info.get("data") or {}
    if info["source"] == "quick":
        return unscored("moses", "train", ctx.data_dir, limit=2000, seed=ctx.seed)
    if not d.get("spec"):
        return unscored("moses", "train", ctx.data_dir, limit=ctx.option("sampler_train", 20000, int), seed=0)
    return unscored(
        d["spec"],
        d.get("split") or "train",
        d.get("data_dir") or ctx.data_dir,
        limit=d.get("molecules"),
        seed=d.get("seed", 0),
    )


# FCD against CPU-minutes, measured by bench/chem_fcd_curve.py on the committed models' checkpoints
CURVES = {
    "chem_fcd_curve_smiles": "KL weight 0.05 (the recipe of models/chemvae-smiles)",
    "chem_fcd_kl_weight": "continued with a larger KL weight",
}


def _curve_rows(ctx, fcd_now: float) -> None:
    """How far training goes: the FCD/Test curves in bench/results (10k prior samples a point), as rows and a
    figure, so that a missed target comes with how the gap moved with compute."""
    import json

    import matplotlib.pyplot as plt

    from ..models.pretrained import ROOT as COMMITTED

    found = {}
    for name, what in CURVES.items():
        path = COMMITTED.parent / "bench" / "results" / f"{name}.json"
        if path.is_file():
            found[name] = (what, sorted(json.loads(path.read_text())["points"], key=lambda p: p["cpu_minutes"]))
    if not found:
        return
    fig, (ax_f, ax_v) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, (what, points) in found.items():
        for p in points:
            ctx.row(
                "FCD curve",
                f"FCD/Test after {p['cpu_minutes']:g} CPU-min ({what})",
                p["FCD/Test"],
                target="<= 1.0",
                met=p["FCD/Test"] <= 1.0,
                note=f"{p['samples']} prior samples vs the whole test split; valid {p['valid']:.3f}, "
                f"SNN/Test {p['SNN/Test']:.3f}; checkpoint {p['checkpoint']}; bench/results/{name}.json "
                "(python bench/chem_fcd_curve.py)"
                + (f"; the target is missed by {p['FCD/Test'] - 1.0:.2f}" if p["FCD/Test"] > 1.0 else ""),
            )
        x = [p["cpu_minutes"] for p in points]
        ax_f.plot(x, [p["FCD/Test"] for p in points], marker="o", label=what)
        ax_v.plot(x, [p["valid"] for p in points], marker="o", label=what)
    ax_f.axhline(1.0, color="grey", ls="--", lw=0.8, label="target (CPU)")
    ax_f.axhline(fcd_now, color="k", ls=":", lw=0.8, label="this report's model (30k samples)")
    ax_f.set(xlabel="CPU-minutes of training", ylabel="FCD/Test (10k prior samples)", ylim=(0, None))
    ax_v.axhline(0.95, color="grey", ls="--", lw=0.8, label="target (CPU)")
    ax_v.set(xlabel="CPU-minutes of training", ylabel="valid fraction", ylim=(0, 1))
    ax_f.legend(fontsize=7)
    ctx.figure(
        fig,
        "fcd_curve.png",
        "FCD/Test and validity of 10,000 prior samples against the CPU-minutes of training behind each "
        "checkpoint (bench/chem_fcd_curve.py).",
    )


def _expost_rows(ctx, model, info, n, ref, n_ref, train_set, g, held_out, prior_mm) -> None:
    """The MOSES table for codes from ex-post samplers (vaekit.samplers) fitted on the codes of the training
    molecules (as `model.sampler_codes` says: one draw from q(z|x) each, for this model), each code decoded
    stochastically (model.draw), in rows of their own; before them, each sampler's log density of held-out
    codes over the prior's (`samplers.gain`), which says whether there is anything for it to fix."""
    from .. import samplers
    from ..chem import metrics

    names = [s.strip() for s in ctx.option("samplers", "gmm,twostage", str).split(",") if s.strip()]
    for name in names:
        samplers.get(name)  # an unknown name fails before any work
    codes: list = []
    kind = f"posterior {samplers.code_kind(model)}s"

    def training_codes():
        if not codes:
            mols = _training_molecules(ctx, info)
            x, _ = model.code_items(mols.smiles, skip=True)
            n = min(len(x), samplers.FIT_CODES)
            ctx.log(f"encoding {n} of {len(x)} training molecules for the ex-post samplers")
            codes.append(samplers.fit_codes(model, x, seed=ctx.seed))
        return codes[0]

    if names:
        x_held, _ = model.code_items(held_out.smiles, skip=True)
        z_held = samplers.fit_codes(model, x_held, seed=ctx.seed + 1)
    for name in names:
        t0 = time.perf_counter()
        opts = {"steps": 300} if (ctx.quick and name == "twostage") else {}
        if info.get("run_dir"):
            sampler = samplers.cached(samplers.kept(info["run_dir"], name), name, model, training_codes, **opts)
        else:
            sampler = samplers.fit(name, model, training_codes(), **opts)
        fitted = f"fitted on the posterior {sampler.fitted_on}s of {sampler.n_codes} training molecules"
        ctx.row(
            f"MOSES, {name} sampler",
            "log density of held-out codes over the prior's (nats a code)",
            samplers.gain(model, sampler, z_held),
            note=f"{len(z_held)} test molecules' {kind}, mean log density under the {name} sampler ({fitted}) "
            "less under the prior N(0, I); near 0 or below: the prior already is the aggregate posterior, and no "
            "ex-post sampler has anything to fix"
            + ("; the two-stage VAE's is a lower bound (importance-sampled)" if name == "twostage" else ""),
        )
        gen = [
            s
            for i in range(0, n, 2000)
            for s in model.vocab.decode(samplers.generate(model, sampler, min(2000, n - i), g).cpu())
        ]
        mm = metrics.moses_metrics(gen, ref, train_set)
        secs = time.perf_counter() - t0
        for key, value in mm.items():
            fcd = key == "FCD/Test"
            ctx.row(
                f"MOSES, {name} sampler",
                key,
                value,
                seconds=secs if key == "valid" else None,
                target=f"< {prior_mm[key]:.3f} (the prior row)" if fcd else "",
                met=(value < prior_mm[key]) if fcd and not ctx.quick else None,
                note=f"ex-post (not the MOSES protocol): {n} codes from the {name} sampler ({fitted}), each "
                f"decoded stochastically; reference: {n_ref} MOSES test molecules; compare with the prior "
                "rows above",
            )


def _constrained(ctx, model, bo, predict, fits, decode, score, q) -> dict:
    """JT-VAE's similarity-constrained optimisation: the test molecules with the lowest penalized logP, each
    improved by gradient ascent on the property head from its posterior mean, keeping the best decoding
    whose Tanimoto similarity to the start is >= delta. One row per delta, beside JT-VAE's Table 3."""
    n = ctx.option("constrained", 20 if q else 800, int)
    scores = np.array([v if (v := score(smi)) is not None else np.nan for smi in fits], dtype=float)
    order = [i for i in np.argsort(scores) if np.isfinite(scores[i])][:n]
    starts = [fits[i] for i in order]
    t0 = time.perf_counter()
    steps, every = (10, 5) if q else (80, 4)
    out = bo.similarity_constrained(
        predict,
        model.encode_smiles(starts).double(),
        starts,
        decode,
        score,
        deltas=tuple(JTVAE_CONSTRAINED),
        steps=steps,
        lr=0.05,
        prior_weight=0.1,
        every=every,
    )
    secs = time.perf_counter() - t0
    for dl, (paper, paper_std, paper_ok) in JTVAE_CONSTRAINED.items():
        r = out[dl]
        ctx.row(
            "MOSES test",
            f"constrained optimisation, sim >= {dl}: mean improvement",
            r["improvement"],
            paper=paper,
            citation=C_CON,
            seconds=secs if dl == 0 else None,
            note=f"+/- {r['improvement_std']:.2f} (published +/- {paper_std}); success {100 * r['success']:.1f} % "
            f"(published {paper_ok} %); the {len(starts)} test molecules with the lowest penalized logP "
            f"(from {len(fits)}; mean {np.nanmean(scores[order]):.2f}); {steps} ascent steps, decoded every "
            f"{every}; {ON_MOSES}",
        )
    return out


def _constrained_figure(ctx, bo, out, delta=0.4) -> None:
    best = sorted((r for r in out[delta]["best"] if r[1] is not None), key=lambda r: -r[2])[:3]
    if not best:
        return
    mols = [m for r in best for m in r[:2]]
    labels = [lab for r in best for lab in ("start", f"+{r[2]:.2f}, similarity {r[3]:.2f}")]
    ctx.figure(
        bo.draw_molecules(mols, labels, per_row=2),
        "constrained.png",
        f"similarity-constrained optimisation (sim >= {delta}): the three largest improvements, "
        "each start molecule beside the molecule found",
    )


def _figures(ctx, model, results, sub, fits, bo, constrained=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..latent import principal_axes

    ctx.figure(
        bo.plot_trajectory(results),
        "optimisation.png",
        "best penalized logP found so far against the number of scored proposals",
    )
    if constrained is not None:
        _constrained_figure(ctx, bo, constrained)
    best = [m for res in results.values() for m in bo.top_molecules(res, 3)]
    best = sorted(dict(best).items(), key=lambda t: -t[1])[:6]
    if best:
        ctx.figure(
            bo.draw_molecules([s for s, _ in best], [f"{v:.2f}" for _, v in best]),
            "top_molecules.png",
            "the best molecules found by all optimisers, with their penalized logP",
        )
    z = model.encode_smiles(sub.smiles)
    xy = ((z - z.mean(0)) @ principal_axes(z).T).numpy()
    fig, axs = plt.subplots(1, len(model.config.properties), figsize=(4.5 * len(model.config.properties), 4))
    for ax, p in zip(np.atleast_1d(axs), model.config.properties):
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=sub.props[p], s=4, cmap="viridis")
        fig.colorbar(sc, ax=ax)
        ax.set_title(f"test molecules coloured by {p}")
        ax.set_xlabel("principal axis 1")
        ax.set_ylabel("principal axis 2")
    fig.tight_layout()
    ctx.figure(fig, "latent_properties.png", "posterior means of test molecules on the first two principal axes")
    centre = fits[0]
    # noise in units of the encoder's own uncertainty about the query (at most the prior's unit): a unit of the
    # prior is far away for a low-KL model (posterior spreads of a few hundredths) and decodes to unrelated
    # molecules; growing multiples, the nearest neighbours first
    with torch.no_grad():
        q = model.encode(model.code_items([centre]).to(next(model.parameters()).device))
    zc, sd = q.mean.cpu(), q.stddev.cpu()
    g = torch.Generator().manual_seed(ctx.seed)
    out, seen = [centre], {centre}
    from ..chem.props import canonical

    for scale in (1.0, 2.0, 4.0, 8.0, 16.0):
        noise = (scale * sd).clamp(max=1.0) * torch.randn(30, zc.shape[1], generator=g)
        for s in model.decode_smiles(zc + noise, greedy=True):
            c = canonical(s)
            if c and c not in seen and len(out) < 12:
                seen.add(c)
                out.append(c)
    ctx.figure(
        bo.draw_molecules(out, ["query"] + [f"neighbour {i}" for i in range(1, len(out))], per_row=4),
        "neighbours.png",
        f"greedy decodings of codes near the query molecule {centre}, nearest first: its posterior mean plus "
        f"Gaussian noise of 1, 2, 4, 8 and 16 times its posterior standard deviation (median {float(sd.median()):.2g}; "
        "at most 1, the prior's), 30 codes each",
    )
