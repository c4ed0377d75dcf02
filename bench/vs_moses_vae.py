"""Side by side with MOSES's own VAE: the same CPU-minutes, the same training molecules, the same metrics.

    bash bench/moses/setup.sh "$MOSES_VENV"            # once: MOSES 0.3.1 (molsets) in its own venv
    VAEKIT_DATA=... nice -n 10 python bench/vs_moses_vae.py --venv "$MOSES_VENV" \\
        [--budget-minutes 60] [--molecules 150000] [--samples 30000] [--vaekit-recipe "..."]

Two trainings, each one process with `--threads` torch threads (OMP_NUM_THREADS too), run side by side (or one
after the other with `--sequential`), each stopped once *its process* has used `--budget-minutes` of CPU time:
- MOSES: its VAE with its published configuration (the defaults of molsets' `vae` config: GRU encoder 256,
  3-layer GRU decoder 512, z 128, batch 512, Adam 3e-4, KL weight annealed 0 -> 0.05 over its 100 epochs,
  gradient clipping 50), trained by its own `VAETrainer`; bench/moses/moses_vae.py wraps the trainer's data
  loader to stop at the budget (checked after every step) and samples with the model's own `sample`;
- vaekit: `vaekit fit RUN --model chemvae --data moses --molecules N --seed S <recipe> --max-seconds B` with
  the budget counted on the cpu clock (TrainConfig.budget_clock, as `vaekit fit --budget-clock cpu` sets it; the
  wrapper below sets it too), then `--samples` codes from N(0, I) decoded by sampling (temperature 1, as MOSES does).
Both train on the same molecules: the seeded `--molecules` subset of the MOSES training split that `vaekit fit`
reads (vaekit.chem.dataset.scored), handed to MOSES as a SMILES file.

Evaluation: `--samples` prior samples of each scored by vaekit.chem.metrics.moses_metrics against the MOSES test
split (`--test-limit K`: a seeded subset of K test molecules, much cheaper, FCD then reads higher) and the
whole scaffold test split (.../TestSF, as MOSES always scores), novelty against the whole training split; then
MOSES's own `moses.get_all_metrics` on the same sample files, in its venv, and every metric where the two
implementations differ by more than 1e-3 is listed.

`--throughput` instead measures MOSES's training step (molecules per CPU second at its own size and batch,
the given thread count) and writes bench/results/vs_moses_vae_throughput.json; other benchmarks can call
`moses_step_throughput(...)`.

Writes bench/results/<--name>.json (default vs_moses_vae) and prints a table; the run folders, logs, sample
files and the MOSES model stay under `--work` (default runs/vs_moses_vae).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "moses" / "moses_vae.py"
# the best recipe of `vaekit report chemrecipes` (SMILES), on a cosine schedule over the budget
DEFAULT_RECIPE = (
    "--kind smiles --gru-hidden 256 --gru-layers 2 --beta 0.05 --batch-size 128 --lr 1e-3 --lr-schedule cosine"
    " --lr-final 1e-5 --val-fraction 0.02 --checkpoint-every 500"
)
SHOWN = (
    "valid",
    "unique@1000",
    "unique@10000",
    "Novelty",
    "FCD/Test",
    "SNN/Test",
    "Frag/Test",
    "Scaf/Test",
    "FCD/TestSF",
    "SNN/TestSF",
    "Frag/TestSF",
    "Scaf/TestSF",
    "IntDiv",
    "IntDiv2",
    "Filters",
    "logP",
    "SA",
    "QED",
    "weight",
)
TOLERANCE = 1e-3


# --- the pieces that run in other processes ----------------------------------------------------------------


def thread_env(threads: int) -> dict:
    """The environment of a child that must use `threads` threads (torch reads OMP_NUM_THREADS at start)."""
    n = str(threads)
    return {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def venv_python(venv, who: str = "vs_moses_vae") -> Path:
    """The interpreter of MOSES's venv, or a one-line exit naming the benchmark `who` and what to do."""
    if venv is None:
        sys.exit(f"{who}: give --venv VENV (or set MOSES_VENV), a venv made by `bash bench/moses/setup.sh VENV`")
    py = Path(venv) / "bin" / "python"
    if not py.is_file():
        sys.exit(f"{who}: {py} not found; make the venv with `bash bench/moses/setup.sh {venv}`")
    return py


def training_subset(molecules: int, seed: int, out: Path, data_dir=None) -> int:
    """Write the SMILES `vaekit fit --data moses --molecules N --seed S` trains on, one a line; return how many."""
    from vaekit.chem.dataset import scored

    smiles = scored("moses", "train", data_dir, limit=molecules, seed=seed).smiles
    write_lines(out, smiles)
    return len(smiles)


def write_lines(path: Path, lines) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{s}\n" for s in lines))
    os.replace(tmp, path)


def read_lines(path: Path) -> list[str]:
    """One string a line; an empty line is an empty (invalid) sample and is kept."""
    return path.read_text().split("\n")[:-1]


def vaekit_fit_cpu(argv: list[str]) -> None:
    """`vaekit fit` with its time budget on the cpu clock, then prior samples: the vaekit child process.

    argv: OUT_JSON SAMPLES N_SAMPLES SEED -- <vaekit fit arguments>.  The trained model is used as `fit` leaves it
    (the last step's weights); samples are written one SMILES a line."""
    import torch

    import vaekit.cli
    import vaekit.train

    out_json, samples_path, n_samples, seed = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3])
    fit_argv = argv[argv.index("--") + 1 :]
    real_fit, real_batches = vaekit.train.fit, vaekit.train.epoch_batches
    sizes, got = [], {}

    def batches(*a, **kw):  # called once an epoch: the batch sizes, to count molecules seen
        b = real_batches(*a, **kw)
        sizes.extend(len(i) for i in b)
        return b

    def fit(model, data, config=None, *a, **kw):
        config = dataclasses.replace(config, budget_clock="cpu")
        hist = real_fit(model, data, config, *a, **kw)
        got.update(model=model, hist=hist, items=len(data), batch_size=config.batch_size)
        return hist

    vaekit.train.fit, vaekit.train.epoch_batches = fit, batches
    try:
        vaekit.cli.main(["fit", *fit_argv])
    finally:
        vaekit.train.fit, vaekit.train.epoch_batches = real_fit, real_batches
    model, hist = got["model"], got["hist"]
    steps = len(hist.steps)
    g = torch.Generator().manual_seed(seed + 1)
    t0, c0 = time.perf_counter(), time.process_time()
    gen = []
    with torch.no_grad():
        while len(gen) < n_samples:
            z = torch.randn(min(1000, n_samples - len(gen)), model.config.latent_dim, generator=g)
            gen += model.decode_smiles(z, generator=g)
    sample_cpu, sample_wall = time.process_time() - c0, time.perf_counter() - t0
    write_lines(samples_path, gen)
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_molecules": got["items"],
        "steps": steps,
        "molecules_seen": sum(sizes[:steps]),
        "epochs": sum(sizes[:steps]) / got["items"],
        "stopped": hist.stopped,
        "cpu_seconds": hist.cpu_seconds,
        "wall_seconds": hist.seconds,
        "sample_cpu_seconds": sample_cpu,
        "sample_wall_seconds": sample_wall,
        "samples": len(gen),
        "parameters": sum(p.numel() for p in model.parameters()),
        "recipe": shlex.join(fit_argv[1:]),
    }
    tmp = out_json.with_name(f".{out_json.name}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out_json)


def moses_step_throughput(
    venv, molecules: int = 20000, steps: int = 3, threads: int = 1, seed: int = 0, work: Path | None = None
) -> dict:
    """MOSES's VAE training step, molecules per CPU second (and per wall second), at its published size and batch,
    on the seeded `molecules` subset of the MOSES training split, in a child process with `threads` threads."""
    py = venv_python(venv)
    work = Path(work or "runs/vs_moses_vae")
    work.mkdir(parents=True, exist_ok=True)
    subset = work / f"train-{molecules}-seed{seed}.smi"
    training_subset(molecules, seed, subset)
    cmd = [
        str(py),
        str(DRIVER),
        "throughput",
        "--smiles",
        str(subset),
        "--steps",
        str(steps),
        "--threads",
        str(threads),
        "--seed",
        str(seed),
    ]
    done = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"MOSES throughput failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the comparison --------------------------------------------------------------------------------------


def start_trainings(args, work: Path, subset: Path):
    """Popen both trainings (MOSES, vaekit); with --sequential the second starts when the first ends."""
    budget = args.budget_minutes * 60
    recipe = shlex.split(args.vaekit_recipe)
    if "--epochs" not in recipe:
        recipe += ["--epochs", "10000"]  # the CPU budget, not the epochs, ends the run
    moses_cmd = [
        str(venv_python(args.venv)),
        str(DRIVER),
        "train",
        "--smiles",
        str(subset),
        "--out",
        str(work / "moses"),
        "--budget-seconds",
        str(budget),
        "--samples",
        str(args.samples),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    vaekit_cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--vaekit-fit-cpu",
        str(work / "vaekit.json"),
        str(work / "vaekit-samples.smi"),
        str(args.samples),
        str(args.seed),
        "--",
        str(work / "vaekit-run"),
        "--model",
        "chemvae",
        "--data",
        "moses",
        "--molecules",
        str(args.molecules),
        "--seed",
        str(args.seed),
        *recipe,
        "--max-seconds",
        str(budget),
        "--no-progress",
        "--no-tensorboard",
        "--overwrite",
    ]
    jobs = {"moses": moses_cmd, "vaekit": vaekit_cmd}
    order = ["moses", "vaekit"] if args.first == "moses" else ["vaekit", "moses"]
    env = thread_env(args.threads)
    procs = {}
    for name in order:
        log = open(work / f"{name}.log", "w")
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {shlex.join(jobs[name])}", flush=True)
        procs[name] = (subprocess.Popen(jobs[name], env=env, stdout=log, stderr=subprocess.STDOUT), log)
        if args.sequential:
            wait(name, *procs[name], work)
    for name in order:
        wait(name, *procs[name], work)
    return recipe


def wait(name, proc, log, work):
    code = proc.wait()
    log.close()
    if code:
        tail = (work / f"{name}.log").read_text()[-3000:]
        sys.exit(f"vs_moses_vae: the {name} training failed (exit {code}); end of {work / f'{name}.log'}:\n{tail}")


def moses_metrics_of(args, samples: Path, test_file: Path, out: Path) -> dict:
    from vaekit.data.smiles import moses_path

    cmd = [
        str(venv_python(args.venv)),
        str(DRIVER),
        "metrics",
        "--samples",
        str(samples),
        "--test",
        str(test_file),
        "--train",
        str(moses_path("train", None)),
        "--out",
        str(out),
        "--threads",
        str(args.threads),
    ]
    done = subprocess.run(cmd, env=thread_env(args.threads), capture_output=True, text=True)
    if done.returncode:
        sys.exit(
            f"vs_moses_vae: moses.get_all_metrics failed on {samples} ({done.returncode}):\n"
            f"{done.stderr.strip()[-3000:]}"
        )
    return json.loads(out.read_text())


def portable(argv: list[str]) -> list[str]:
    """The command line with this machine's folders (the venv, --work) replaced by placeholders."""
    out, hide = [], {"--venv": "VENV", "--work": "WORK"}
    for i, a in enumerate(argv):
        flag, eq, _ = a.partition("=")
        if eq and flag in hide:
            a = f"{flag}={hide[flag]}"
        elif i and argv[i - 1] in hide:
            a = hide[argv[i - 1]]
        out.append(a)
    return out


def disagreements(ours: dict, theirs: dict) -> dict:
    """Metrics both compute whose values differ by more than TOLERANCE: name -> {ours, moses, diff}."""
    out = {}
    for k in SHOWN:
        if k in ours and k in theirs:
            a, b = float(ours[k]), float(theirs[k])
            if not (abs(a - b) <= TOLERANCE or (math.isnan(a) and math.isnan(b))):  # both NaN: both undefined
                out[k] = {"vaekit_metrics": a, "moses_metrics": b, "diff": a - b}
    return out


def compare(args) -> None:
    import numpy as np
    import torch

    from vaekit.chem import metrics
    from vaekit.data.smiles import load_molecules, moses_path
    from vaekit.errors import VaekitError

    torch.set_num_threads(args.threads)
    venv_python(args.venv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    subset = work / f"train-{args.molecules}-seed{args.seed}.smi"
    t0 = time.perf_counter()
    n_train = training_subset(args.molecules, args.seed, subset)
    if args.score_only:  # the trainings of an earlier call with the same --work
        missing = [p for p in (work / "vaekit.json", work / "moses" / "train.json") if not p.is_file()]
        if missing:
            sys.exit(f"vs_moses_vae: --score-only: {missing[0]} not found; train first (without --score-only)")
    else:
        start_trainings(args, work, subset)
    t_train = time.perf_counter() - t0
    runs = {
        "moses": json.loads((work / "moses" / "train.json").read_text()),
        "vaekit": json.loads((work / "vaekit.json").read_text()),
    }
    sample_files = {"moses": work / "moses" / "samples.smi", "vaekit": work / "vaekit-samples.smi"}

    test = metrics.read_smiles_csv(moses_path("test", None))
    if args.test_limit:
        rng = np.random.default_rng(args.seed)
        test = [test[i] for i in np.sort(rng.choice(len(test), size=args.test_limit, replace=False))]
        test_file = work / f"test-{args.test_limit}-seed{args.seed}.smi"
        write_lines(test_file, test)
    else:
        test_file = moses_path("test", None)
    t1 = time.perf_counter()
    ref = metrics.reference_stats(test, n_jobs=args.jobs)
    # the scaffold split as bench/chem_fcd_curve.py reads it (canonical), so that both share its cached statistics
    ref_sf = metrics.reference_stats(load_molecules("moses", "test_scaffolds").smiles, n_jobs=args.jobs)
    train_set = metrics.canonical_set(metrics.read_smiles_csv(moses_path("train", None)), n_jobs=args.jobs)
    rows = {}
    for name, path in sample_files.items():
        gen = read_lines(path)
        try:
            ours = metrics.moses_metrics(gen, ref, train_set, n_jobs=args.jobs, test_sf=ref_sf)
        except VaekitError as e:  # no valid molecule: the validity alone
            ours = {"valid": metrics.validity(gen), "error": str(e)}
        theirs_file = work / f"{name}-moses-metrics.json"
        old = json.loads(theirs_file.read_text()) if args.score_only and theirs_file.is_file() else {}
        if (
            old
            and theirs_file.stat().st_mtime > path.stat().st_mtime
            and old.get("n") == len(gen)
            and Path(old.get("test", test_file)).name == Path(test_file).name
        ):
            theirs = old  # scored by MOSES, against this test set, since these samples were drawn
        else:
            theirs = moses_metrics_of(args, path, test_file, theirs_file)
        rows[name] = {
            "metrics": ours,
            "moses_get_all_metrics": theirs["metrics"],
            "moses_used_shipped_test_statistics": theirs["shipped_test"],
            "moses_get_all_metrics_error": theirs.get("error"),
            "disagreements_over_1e-3": disagreements(ours, theirs["metrics"]),
            "training": runs[name],
            "cpu_minutes": runs[name]["cpu_seconds"] / 60,
            "molecules_seen": runs[name]["molecules_seen"],
            "samples": len(gen),
        }
    t_eval = time.perf_counter() - t1
    result = {
        "budget_cpu_minutes": args.budget_minutes,
        "threads": args.threads,
        "molecules": args.molecules,
        "train_molecules": n_train,
        "seed": args.seed,
        "samples": args.samples,
        "test_molecules": len(test),
        "test_subset": bool(args.test_limit),
        "vaekit_recipe": args.vaekit_recipe,
        "vaekit_fit": runs["vaekit"].get("recipe"),
        "moses_version": runs["moses"].get("moses"),
        "moses_patch": "bench/moses/molsets.patch",
        "sequential": args.sequential,
        "wall_seconds": {"training": t_train, "evaluation": t_eval},
        "command": "python bench/vs_moses_vae.py " + shlex.join(portable(sys.argv[1:])),
        "rows": rows,
    }
    table = [
        [
            "model",
            "valid",
            "unique@10k",
            "novelty",
            "FCD/Test",
            "SNN/Test",
            "mols seen",
            "steps",
            "CPU-min",
            "MOSES metrics differ (>1e-3)",
        ]
    ]
    for name, r in rows.items():
        m = r["metrics"]
        diff = ", ".join(f"{k} {v['diff']:+.4f}" for k, v in r["disagreements_over_1e-3"].items()) or "none"
        nan = math.nan
        table.append(
            [
                name,
                f"{m['valid']:.4f}",
                f"{m.get('unique@10000', nan):.4f}",
                f"{m.get('Novelty', nan):.4f}",
                f"{m.get('FCD/Test', nan):.3f}",
                f"{m.get('SNN/Test', nan):.4f}",
                f"{r['molecules_seen']:,}",
                str(r["training"]["steps"]),
                f"{r['cpu_minutes']:.2f}",
                diff,
            ]
        )
    if args.no_write:
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for r in table:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    else:
        sys.path.insert(0, str(HERE))
        from common import write

        write(args.name, result, table)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--vaekit-fit-cpu":  # the vaekit child (see vaekit_fit_cpu)
        return vaekit_fit_cpu(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", default=os.environ.get("MOSES_VENV"), help="the venv bench/moses/setup.sh made")
    ap.add_argument("--budget-minutes", type=float, default=60, help="CPU-minutes of training for each (default 60)")
    ap.add_argument("--molecules", type=int, default=150000, help="seeded subset of the MOSES train split")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=30000, help="prior samples of each model to score")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each training process")
    ap.add_argument("--vaekit-recipe", default=DEFAULT_RECIPE, help="vaekit fit flags of the vaekit model")
    ap.add_argument("--test-limit", type=int, default=None, help="score against this many test molecules")
    ap.add_argument("--jobs", type=int, default=1, help="processes for vaekit's metrics")
    ap.add_argument("--sequential", action="store_true", help="train one after the other (default: side by side)")
    ap.add_argument("--first", choices=["moses", "vaekit"], default="moses")
    ap.add_argument("--work", default="runs/vs_moses_vae", help="folder for runs, samples and logs")
    ap.add_argument("--name", default="vs_moses_vae", help="result file bench/results/NAME.json")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--score-only", action="store_true", help="no training: score the samples an earlier call left in --work"
    )
    ap.add_argument("--throughput", action="store_true", help="only MOSES's training-step molecules/s")
    ap.add_argument("--steps", type=int, default=3, help="timed steps of --throughput")
    args = ap.parse_args()
    for flag in ("budget_minutes", "molecules", "samples", "threads", "steps", "jobs"):
        if not getattr(args, flag) > 0:
            ap.error(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    if not args.name.startswith("vs_moses_vae"):
        ap.error(f"--name must start with vs_moses_vae, got {args.name!r}")
    if args.throughput:
        import torch

        torch.set_num_threads(args.threads)  # the "threads" common.write records: the child's count
        r = moses_step_throughput(args.venv, args.molecules, args.steps, args.threads, args.seed, args.work)
        print(
            f"MOSES VAE training step: {r['molecules_per_cpu_s']:.1f} molecules per CPU second "
            f"({r['molecules_per_s']:.1f} per wall second) at batch {r['batch_size']}, "
            f"{r['parameters']:,} parameters, {r['threads']} thread(s), over {r['steps']} timed steps"
        )
        if not args.no_write:
            sys.path.insert(0, str(HERE))
            from common import write

            write(
                f"{args.name}_throughput",
                {"moses_vae_step": r, "molecules": args.molecules},
                [
                    ["step", "molecules/CPU-s", "molecules/s"],
                    [
                        f"MOSES VAE (batch {r['batch_size']})",
                        f"{r['molecules_per_cpu_s']:.1f}",
                        f"{r['molecules_per_s']:.1f}",
                    ],
                ],
            )
        return
    compare(args)


def run():
    from vaekit.errors import VaekitError

    try:
        main()
    except VaekitError as e:  # e.g. the MOSES splits not found: one line
        sys.exit(f"vs_moses_vae: {e}")


if __name__ == "__main__":
    run()
