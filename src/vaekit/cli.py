"""The `vaekit` command line: fit, eval, sample, encode, data fetch, demo, report.

Every command takes a run directory; `vaekit COMMAND --help` lists all options.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import VaekitError


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _data_args(p, split="train"):
    p.add_argument("--data", default=None, help="digits (default), mnist, fashion_mnist, a registered name, "
                   "a .npy/.npz file or an image folder (default for eval/encode: the run's training data)")
    p.add_argument("--split", default=split, help=f"train or test (default {split})")
    p.add_argument("--data-dir", default=None, help="folder holding the data sets (default $VAEKIT_DATA or ~/.cache/vaekit)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vaekit", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"vaekit {__import__('vaekit').__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="train a model into a run directory")
    p.add_argument("run_dir")
    _data_args(p)
    m = p.add_argument_group("model")
    m.add_argument("--model", default="vae", help="registered model name: vae, iwae, autoencoder, ...")
    m.add_argument("--config", default=None, help="JSON file with model config fields (command-line flags override it)")
    m.add_argument("--latent-dim", type=int)
    m.add_argument("--hidden", type=_ints, help="encoder widths, e.g. 500,500 (the decoder mirrors them)")
    m.add_argument("--activation")
    m.add_argument("--arch", choices=["mlp", "conv"])
    m.add_argument("--channels", type=_ints)
    m.add_argument("--likelihood", choices=["bernoulli", "gaussian", "categorical"])
    m.add_argument("--sigma", type=float, help="fixed std of a Gaussian likelihood (default: learned)")
    m.add_argument("--beta", type=float, help="KL weight (beta-VAE)")
    m.add_argument("--warmup-steps", type=int, help="KL warm-up steps")
    m.add_argument("--k", type=int, help="importance samples of the IWAE bound")
    c = p.add_argument_group("molecules (--model chemvae; --data moses, zinc250k or a CSV with a SMILES column)")
    c.add_argument("--kind", choices=["smiles", "selfies"], default="smiles", help="string representation")
    c.add_argument("--molecules", type=int, default=None, help="train on a seeded random subset of this many")
    c.add_argument("--gru-hidden", type=int)
    c.add_argument("--gru-layers", type=int)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--lr-schedule", choices=["constant", "cosine", "step"], default="constant")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--val-fraction", type=float, default=0.0, help="hold out this fraction for early stopping")
    t.add_argument("--patience", type=int, default=None)
    t.add_argument("--binarize", action="store_true", help="dynamic binarization of [0, 1] pixels")
    t.add_argument("--on-nonfinite", choices=["raise", "skip"], default="raise")
    t.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: every epoch)")
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--max-seconds", type=float, default=None, help="training-time budget")
    t.add_argument("--device", default="auto")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="start from the weights of another run (a run directory or .safetensors file): its model "
                        "and config, with the model flags given here changing fields such as --beta; fresh "
                        "optimizer and step count")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in the directory")
    d = p.add_argument_group("distributed (torch.distributed; see README for several machines)")
    d.add_argument("--nproc", type=int, default=1, help="processes on this machine, launched with torchrun")
    d.add_argument("--max-restarts", type=int, default=0, help="torchrun restarts of a failed worker group; "
                   "a restarted group resumes from the last checkpoint")

    p = sub.add_parser("eval", help="ELBO, IWAE-k bound, NLL and reconstruction error on a data set")
    p.add_argument("run_dir")
    _data_args(p, "test")
    p.add_argument("--k", type=int, default=50, help="samples of the IWAE bound (default 50)")
    p.add_argument("--nll-k", type=int, default=0, help="importance samples for the NLL estimate (e.g. 5000; 0 = skip)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N items")
    p.add_argument("--binarize", action="store_true", help="evaluate on a fixed (seeded) binarization of the data")

    p = sub.add_parser("sample", help="decode draws from the prior")
    p.add_argument("run_dir")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output .png (image grid) or .npy (array); default RUN_DIR/samples.png")

    p = sub.add_parser("encode", help="posterior means of a data set, saved as .npy")
    p.add_argument("run_dir")
    _data_args(p, "test")
    p.add_argument("--out", required=True, help="output .npy file")

    p = sub.add_parser("data", help="data set utilities")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = dsub.add_parser("fetch", help="download a public data set and verify its SHA-256")
    f.add_argument("name", help="mnist, fashion_mnist, frey, zinc250k")
    f.add_argument("--data-dir", default=None)
    f.add_argument("--base-url", default=None, help="mirror serving <base-url>/<name>/<file>")

    p = sub.add_parser("demo", help="train a 2-D VAE on the embedded digits and write figures + metrics")
    p.add_argument("run_dir", nargs="?", default="runs/demo")
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("report", help="reproduce a paper: our numbers beside the paper's")
    p.add_argument("name", nargs="?", help="report name (see --list)")
    p.add_argument("--quick", action="store_true", help="small subsets, for tests (minutes)")
    p.add_argument("--pretrained", action="store_true", help="use the trained model committed under models/ (chemvae)")
    p.add_argument("--out", default="reports", help="reports folder (default ./reports)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="list the available reports")
    p.add_argument("--index", action="store_true", help="write OUT/index.html linking all reports")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="report-specific option")

    p = sub.add_parser("explore", help="interactive latent-space explorer in the browser (local web app)")
    p.add_argument("run_dir", nargs="+", help="one or more run directories")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--data", default=None, help="data set to encode for the map (default: the run's, test split)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    return ap


MODEL_FLAGS = ("latent_dim", "hidden", "activation", "arch", "channels", "likelihood", "sigma", "beta",
               "warmup_steps", "k", "gru_hidden", "gru_layers")


def _read_json(path) -> dict:
    try:
        d = json.loads(Path(path).read_text())
    except OSError as e:
        raise VaekitError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise VaekitError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise VaekitError(f"{path}: invalid JSON (not UTF-8 text)") from None
    if not isinstance(d, dict):
        raise VaekitError(f"{path}: expected a JSON object")
    return d


def _run_data(run_dir: Path, args):
    """The data a command should use: --data, else the run's training data spec."""
    from .data import load

    spec, data_dir = args.data, args.data_dir
    if spec is None:
        cfg = run_dir / "config.json"
        saved = _read_json(cfg).get("data", {}) if cfg.is_file() else {}
        spec = saved.get("spec", "digits")
        data_dir = data_dir or saved.get("data_dir")
    return load(spec, args.split, data_dir)


def launch_torchrun(argv: list[str], nproc: int, max_restarts: int) -> int:
    """Re-run this `vaekit fit` command under torchrun with nproc processes on this machine."""
    import subprocess

    rest, skip = [], False
    for a in argv:                       # drop our own --nproc/--max-restarts; torchrun gets them
        if skip:
            skip = False
            continue
        if a in ("--nproc", "--max-restarts"):
            skip = True
            continue
        if a.startswith(("--nproc=", "--max-restarts=")):
            continue
        rest.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           f"--max-restarts={max_restarts}", "-m", "vaekit", *rest]
    return subprocess.call(cmd)


def cmd_fit(args) -> None:
    import os

    if args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        code = launch_torchrun(args.argv, args.nproc, args.max_restarts)
        if code:
            raise VaekitError(f"torchrun exited with status {code}")
        return
    from . import models
    from .data import load
    from .train import TrainConfig, fit

    if args.init_from and (args.config or args.resume):
        raise VaekitError("--init-from takes the model config from that run: give it without --config and --resume")
    init = None
    if args.init_from:                 # read once: its header sets the config, its tensors the weights
        from .checkpoint import read, weights_file

        init_tensors, init_header = read(weights_file(args.init_from))
        init = init_header["model"]
    cfg = init or (_read_json(args.config) if args.config else {})
    if "config" in cfg and "model" in cfg:      # a saved {"model": ..., "config": ...} file or the --init-from run
        args.model = args.model if args.model != "vae" else cfg["model"]
        cfg = cfg["config"]
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    flags = {k: getattr(args, k) for k in MODEL_FLAGS if getattr(args, k) is not None}
    cfg.update(flags)
    cls = models.get(args.model)
    if args.model == "chemvae":
        data, cfg, spec = _molecules(args, cfg)
    else:
        spec = args.data or "digits"
        data = load(spec, args.split, args.data_dir)
        cfg["data_shape"] = data.shape
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls.Config)}
    ignored = sorted(k for k in cfg if k not in fields and k in MODEL_FLAGS)
    if ignored:
        raise VaekitError(f"model {args.model!r} has no config field(s) {ignored}")
    import torch

    torch.manual_seed(args.seed)          # the initial weights follow --seed too
    model = models.build(args.model, **cfg)
    if init is not None:
        _start_from(model, init, init_tensors, args.init_from, flags)
    if args.model == "chemvae":
        data = model.items(data.smiles, data.props)
    tc = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                     seed=args.seed, val_fraction=args.val_fraction, patience=args.patience, binarize=args.binarize,
                     on_nonfinite=args.on_nonfinite, checkpoint_every=args.checkpoint_every, max_steps=args.max_steps,
                     max_seconds=args.max_seconds, device=args.device, progress=not args.no_progress, tensorboard=not args.no_tensorboard)
    from .distributed import end_worker, teardown

    try:
        hist = fit(model, data, tc, args.run_dir, resume=args.resume, overwrite=args.overwrite,
                   meta={"spec": spec, "split": args.split, "data_dir": args.data_dir, "molecules": args.molecules,
                         **({"init_from": str(args.init_from)} if init else {})})
    except BaseException:
        teardown(wait=False)
        raise
    teardown()
    last = f"{hist.loss[-1]:.4f}" if hist.loss else "n/a"
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{args.run_dir}: {len(hist.loss)} steps in {hist.seconds:.1f} s ({hist.stopped}); last training loss {last}")
        from .checkpoint import atomic_write_text

        atomic_write_text(Path(args.run_dir) / "training.json", json.dumps(
            {"seconds": round(hist.seconds, 1), "steps": len(hist.steps), "stopped": hist.stopped,
             "resumed": bool(args.resume)}, indent=1))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        end_worker(0)                     # a torchrun worker: done; skip the interpreter's shutdown


def _start_from(model, init: dict, tensors: dict, path, flags: dict) -> None:
    """Load the weights of run `path` (header `init`, `tensors`) into `model`: the same model, and a config that
    differs only in the fields set by flags (a chemical VAE's vocabulary, rebuilt from --data, must come out the same)."""
    from .checkpoint import load_tensors
    from .models import config_dict

    want = json.loads(json.dumps(config_dict(model)))
    if want["model"] != init["model"]:
        raise VaekitError(f"--init-from {path}: holds a {init['model']} model, not {want['model']}")
    changed = sorted(k for k in set(want["config"]) | set(init["config"])
                     if want["config"].get(k) != init["config"].get(k) and k not in flags)
    if changed:
        raise VaekitError(f"--init-from {path}: this run's model differs in {changed} "
                          "(only the model flags given on the command line may change)")
    load_tensors(model, tensors, path)


def _molecules(args, cfg: dict):
    """Scored molecules and the chemical VAE's vocabulary/standardisation fields for `vaekit fit --model chemvae`."""
    from .chem.dataset import data_fields, scored

    spec = args.data or "moses"
    mols = scored(spec, args.split, args.data_dir, limit=args.molecules, seed=args.seed)
    if mols.invalid:
        print(f"{spec}: {len(mols.invalid)} SMILES are not valid molecules and were left out, e.g. line "
              f"{mols.invalid[0][0]}: {mols.invalid[0][1]!r}")
    return mols, {**cfg, **data_fields(mols, args.kind, conv_kernels=cfg.get("conv_kernels"))}, spec


def cmd_eval(args) -> None:
    import torch

    from .checkpoint import atomic_write_text, load_model
    from .evaluate import evaluate

    run_dir = Path(args.run_dir)
    model = load_model(run_dir)
    data = _run_data(run_dir, args)
    x = data.x[: args.limit] if args.limit else data.x
    if args.binarize:
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    res = evaluate(model, x, k=args.k, nll_k=args.nll_k)
    res.update({"data": args.data or "run", "split": args.split, "binarized": args.binarize,
                "seconds": time.perf_counter() - t0})
    out = run_dir / "metrics.json"
    all_metrics = _read_json(out) if out.is_file() else {}
    all_metrics[args.split + (f"[:{args.limit}]" if args.limit else "")] = res
    atomic_write_text(out, json.dumps(all_metrics, indent=2))
    for k_, v in res.items():
        print(f"{k_:>10}  {v:.4f}" if isinstance(v, float) else f"{k_:>10}  {v}")


def cmd_sample(args) -> None:
    import numpy as np
    import torch

    from .checkpoint import load_model

    model = load_model(args.run_dir)
    x = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed))
    out = Path(args.out) if args.out else Path(args.run_dir) / "samples.png"
    if out.suffix == ".npy":
        np.save(out, x.numpy())
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .latent import plot_images

        fig, ax = plt.subplots(figsize=(6, 6))
        plot_images(ax, x)
        fig.savefig(out, dpi=120, bbox_inches="tight")
    print(f"wrote {out}")


def cmd_encode(args) -> None:
    import numpy as np

    from .checkpoint import load_model

    model = load_model(args.run_dir)
    data = _run_data(Path(args.run_dir), args)
    z = model.embed(data.x).numpy()
    np.save(args.out, z)
    print(f"wrote {args.out}: {z.shape}")


def cmd_data(args) -> None:
    from .data import fetch

    folder = fetch(args.name, args.data_dir, args.base_url)
    print(f"{args.name}: verified files in {folder}")


def cmd_demo(args) -> None:
    from .demo import demo

    demo(args.run_dir, epochs=args.epochs, overwrite=True)


def cmd_report(args) -> None:
    from . import reports

    if args.list or (args.name is None and not args.index):
        print("\n".join(reports.available()))
        return
    if args.index:
        path = reports.write_index(args.out)
        print(f"wrote {path}")
        if args.name is None:
            return
    opts = {}
    for kv in args.option:
        if "=" not in kv:
            raise VaekitError(f"--option expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        opts[k.replace("-", "_")] = v
    if args.pretrained:
        opts["pretrained"] = "1"
    reports.run_report(args.name, args.out, quick=args.quick, data_dir=args.data_dir, seed=args.seed, **opts)


def cmd_explore(args) -> None:
    from .explore.server import serve

    if not 0 < args.port < 65536:
        raise VaekitError(f"--port must be from 1 to 65535, got {args.port}")
    serve(args.run_dir, host=args.host, port=args.port, open_browser=not args.no_browser, data=args.data,
          data_dir=args.data_dir)


COMMANDS = {"fit": cmd_fit, "eval": cmd_eval, "sample": cmd_sample, "encode": cmd_encode, "data": cmd_data,
            "demo": cmd_demo, "report": cmd_report, "explore": cmd_explore}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        COMMANDS[args.command](args)
    except VaekitError as e:
        print(f"vaekit: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("vaekit: interrupted", file=sys.stderr)
        sys.exit(130)
