"""The `vaekit` command line: fit, eval, sample, encode, data fetch, demo, report.

Every command takes a run directory; `vaekit COMMAND --help` lists all options.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
import warnings
from pathlib import Path

from .errors import VaekitError, VaekitWarning


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, `vaekit: error: ...`, with exit status 2 (sub-commands'
    parsers are of the same class)."""

    def error(self, message):
        where = self.prog.partition(" ")[2]
        print(
            f"vaekit: error: {where + ': ' if where else ''}{' '.join(str(message).split())} (see {self.prog} --help)",
            file=sys.stderr,
        )
        sys.exit(2)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def _count(lo: int, hi: int = 2**31 - 1):
    """argparse type: an integer from lo to hi."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        if value > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi:,}, got {value:,}")
        return value

    return parse


def _real(lo: float = -math.inf, hi: float = math.inf, *, above: bool = False, below: bool = False):
    """argparse type: a finite float in [lo, hi] (`above`/`below`: excluding that end)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        in_range = (value > lo if above else value >= lo) and (value < hi if below else value <= hi)
        if not (math.isfinite(value) and in_range):
            left, right = "(" if above else "[", ")" if below else "]"
            raise argparse.ArgumentTypeError(f"must be a finite number in {left}{lo:g}, {hi:g}{right}, got {text!r}")
        return value

    return parse


def _data_args(p, split="train"):
    p.add_argument(
        "--data",
        default=None,
        help="digits (default), mnist, fashion_mnist, a registered name, "
        "a .npy/.npz file or an image folder (default for eval/encode: the run's training data)",
    )
    p.add_argument(
        "--split",
        default=split,
        help=f"train, test or all (default {split}; a .npy file or an image folder has one set of items: train)",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder holding the data sets (default $VAEKIT_DATA or ~/.cache/vaekit)"
    )


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="vaekit", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"vaekit {__import__('vaekit').__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # fit's flags default to None (not given): a new run takes TrainConfig's and the model's defaults, and
    # --resume takes the run's config.json, refusing a flag that would change it (see RESUMABLE)
    p = sub.add_parser("fit", help="train a model into a run directory")
    p.add_argument("run_dir")
    _data_args(p)
    p.set_defaults(split=None)
    m = p.add_argument_group("model")
    m.add_argument("--model", default=None, help="registered model name: vae (default), iwae, autoencoder, ...")
    m.add_argument("--config", default=None, help="JSON file with model config fields (command-line flags override it)")
    _add_model_fields(p)
    c = p.add_argument_group("molecules (--model chemvae; --data moses, zinc250k or a CSV with a SMILES column)")
    c.add_argument("--molecules", type=_count(1), default=None, help="train on a seeded random subset of this many")
    t = p.add_argument_group(
        "training (with --resume only --epochs, --max-steps, --max-seconds, --budget-clock, "
        "--checkpoint-every, "
        "--device and the display flags may differ from the run's)"
    )
    t.add_argument("--epochs", type=_count(0), help="passes over the data (default 10; --resume: the run's)")
    t.add_argument("--batch-size", type=_count(1), help="(default 128)")
    t.add_argument("--lr", type=_real(0, above=True), help="Adam's learning rate (default 0.001)")
    t.add_argument("--lr-schedule", choices=["constant", "cosine", "step"], help="(default constant)")
    t.add_argument("--lr-final", type=_real(0), help="cosine: the learning rate at the run's end (default 0)")
    t.add_argument(
        "--grad-clip", type=_real(0, above=True), help="clip the gradient norm to this (default: no clipping)"
    )
    t.add_argument(
        "--seed", type=_count(0, 2**63 - 1), help="seeds the weights, the batches and a --molecules subset (default 0)"
    )
    t.add_argument("--val-fraction", type=_real(0, 1, below=True), help="hold out this fraction for early stopping")
    t.add_argument("--patience", type=_count(1))
    t.add_argument("--binarize", action="store_true", default=None, help="dynamic binarization of [0, 1] pixels")
    t.add_argument(
        "--standardize",
        action="store_true",
        help="train on the items standardised per feature (the "
        "statistics are saved in config.json; eval, encode and sample apply and undo them); for a "
        "gaussian likelihood on data far from unit scale",
    )
    t.add_argument("--on-nonfinite", choices=["raise", "skip"], help="(default raise)")
    t.add_argument("--checkpoint-every", type=_count(0), help="steps between checkpoints (default 0: every epoch)")
    t.add_argument("--max-steps", type=_count(0))
    t.add_argument("--max-seconds", type=_real(0, above=True), help="training-time budget")
    t.add_argument(
        "--budget-clock",
        choices=["wall", "cpu"],
        help="--max-seconds counts wall seconds (default) "
        "or this process's CPU seconds, which a busy machine does not eat into",
    )
    t.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps")
    t.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        help="bfloat16: the training step's products and convolutions in bfloat16 under autocast "
        "(weights, optimiser and validation stay float32; bench/precision.py measures the speed-up; default float32)",
    )
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-tensorboard", action="store_true")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run directory's last checkpoint, with "
        "the model, training settings and data its config.json records",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="RUN",
        help="start from the weights of another run (a run directory or .safetensors file): its model "
        "and config, with the model flags given here changing fields such as --beta; fresh "
        "optimizer and step count",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in the directory")
    d = p.add_argument_group("distributed (torch.distributed; see README for several machines)")
    d.add_argument("--nproc", type=_count(1), default=1, help="processes on this machine, launched with torchrun")
    d.add_argument(
        "--max-restarts",
        type=_count(0),
        default=0,
        help="torchrun restarts of a failed worker group; a restarted group resumes from the last checkpoint",
    )

    p = sub.add_parser(
        "eval",
        help="the numbers defined for the model on a data set: ELBO, IWAE-k bound, NLL, "
        "reconstruction error, prior match",
    )
    p.add_argument("run_dir")
    _data_args(p, "test")
    p.add_argument("--k", type=_count(1, 100_000), default=50, help="samples of the IWAE bound (default 50)")
    p.add_argument(
        "--nll-k",
        type=_count(0, 1_000_000),
        default=0,
        help="importance samples for the NLL estimate (e.g. 5000; 0 = skip)",
    )
    p.add_argument(
        "--limit",
        type=_count(1),
        default=None,
        help="use only the first N items (N >= 1; molecules: a seeded random subset of N)",
    )
    p.add_argument("--binarize", action="store_true", help="evaluate on a fixed (seeded) binarization of the data")

    p = sub.add_parser(
        "sample", help="decode codes drawn from the prior or from a density fitted on the training codes"
    )
    p.add_argument("run_dir")
    p.add_argument(
        "--sampler",
        default="prior",
        help="where the codes come from: prior (the model's own, default), "
        "gmm (a Gaussian mixture fitted on the training codes) or twostage (a second VAE fitted on them); "
        "a fitted sampler is kept in RUN_DIR/sampler-<name>.safetensors (a committed model's: in the cache)",
    )
    p.add_argument("-n", type=_count(1, 100_000), default=64, help="how many to draw (default 64)")
    p.add_argument("--seed", type=_count(0, 2**63 - 1), default=0)
    p.add_argument(
        "--out",
        default=None,
        help="output .png (image grid) or .npy (array), default RUN_DIR/samples.png; "
        "a molecule model (chemvae) writes SMILES: .smi or .txt (one a line) or .csv (columns smiles, "
        "valid), default RUN_DIR/samples.smi",
    )

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
    p.add_argument("--epochs", type=_count(1), default=150)
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("report", help="reproduce a paper: our numbers beside the paper's")
    p.add_argument("name", nargs="?", help="report name (see --list)")
    p.add_argument("--quick", action="store_true", help="small subsets, for tests (minutes)")
    p.add_argument("--pretrained", action="store_true", help="use the trained model committed under models/ (chemvae)")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write the report into DIR itself (default reports/NAME); with --index alone, the "
        "folder of reports to link (default reports)",
    )
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=_count(0, 2**63 - 1), default=0)
    p.add_argument("--list", action="store_true", help="list the available reports")
    p.add_argument(
        "--index",
        action="store_true",
        help="write index.html linking all reports in the reports folder (that of NAME's when given)",
    )
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="report-specific option")

    p = sub.add_parser("explore", help="interactive latent-space explorer in the browser (local web app)")
    p.add_argument("run_dir", nargs="+", help="one or more run directories")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--data", default=None, help="data set to encode for the map (default: the run's, test split)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-browser", action="store_true", help="do not open a browser window")
    return ap


# -- the model flags of `fit`: one per field of the registered models' config dataclasses ------------------------
# A field `latent_dim` is the flag --latent-dim, parsed as its annotation says: int, float (finite), str, bool
# (--contrast / --no-contrast), `X | None` (also "none"), tuple[int, ...] (comma-separated sizes, each >= 1) or
# tuple[T, ...] (comma-separated T).  Ranges are the config's to check, when the model is built.


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _as_text(value) -> str:
    """A config value as it is written on the command line."""
    if isinstance(value, (tuple, list)):
        return ",".join(_as_text(v) for v in value)
    if value is None or isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _field_parser(hint):
    """The argparse type of a config field annotated `hint`: text -> value."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _field_parser(rest[0]) if len(rest) == 1 else json.loads

        def optional(text: str):
            return None if text.strip().lower() in ("none", "null") else inner(text)

        return optional
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if args[0] is int:
            return _ints
        item = _field_parser(args[0])

        def items(text: str) -> tuple:
            return tuple(item(t.strip()) for t in text.split(",") if t.strip())

        return items
    if origin is typing.Literal:

        def literal(text: str):
            for a in args:
                if text == str(a):
                    return a
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(map(str, args))}, got {text!r}")

        return literal
    if hint is int:
        return _count(-(2**63), 2**63 - 1)
    if hint is float:
        return _real()
    if hint is str:
        return str

    def as_json(text: str):  # any other annotation: a JSON value, checked against it when the model is built
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise argparse.ArgumentTypeError(f"expected a JSON value, got {text!r}") from None

    return as_json


@functools.cache
def _field_comments(config_cls: type) -> dict[str, str]:
    """{field: the comment on its line} of a config dataclass and the dataclasses it extends (read from their source;
    a field a subclass redeclares without a comment keeps its base's)."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    out: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
            comments = {
                t.start[0]: t.string.lstrip("#").strip()
                for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT
            }
            tree = ast.parse(source).body[0]
        except (OSError, TypeError, SyntaxError, tokenize.TokenError):
            continue
        for node in tree.body if isinstance(tree, ast.ClassDef) else []:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                said = [comments[n] for n in range(node.lineno, (node.end_lineno or node.lineno) + 1) if n in comments]
                if said:
                    out[node.target.id] = said[0]
    return out


def model_fields() -> dict[str, dict[str, tuple]]:
    """{field: {model name: (annotation, default, comment)}} over the config dataclasses of all registered models."""
    import typing

    from . import models

    table: dict[str, dict[str, tuple]] = {}
    for name, cls in sorted(models.REGISTRY.items()):
        hints, comments = typing.get_type_hints(cls.Config), _field_comments(cls.Config)
        for f in dataclasses.fields(cls.Config):
            if f.init:
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                table.setdefault(f.name, {})[name] = (hints[f.name], default, comments.get(f.name, ""))
    return table


def _add_model_fields(p: argparse.ArgumentParser) -> None:
    """fit's model flags, generated from the registered models' configs: one argument group per set of models that
    share fields, each flag with the field's comment and its defaults."""
    table = model_fields()
    groups: dict[tuple, list] = {}
    for field, per_model in table.items():
        groups.setdefault(tuple(per_model), []).append(field)
    for owners in sorted(groups, key=lambda o: (-len(o), o)):
        g = p.add_argument_group(f"config fields of model{'s' * (len(owners) > 1)} {', '.join(owners)}")
        for field in groups[owners]:
            per_model = table[field]
            hints = {str(h) for h, _, _ in per_model.values()}
            if len(hints) > 1:
                raise TypeError(f"config field {field} has different types in models {sorted(per_model)}: {hints}")
            hint = next(iter(per_model.values()))[0]
            comment = next((c for _, _, c in per_model.values() if c), "")
            defaults: dict[str, list] = {}
            for model, (_, default, _) in per_model.items():
                defaults.setdefault(_as_text(default) or "empty", []).append(model)
            common = max(defaults, key=lambda d: len(defaults[d]))
            others = "".join(f"; {', '.join(ms)}: {d}" for d, ms in defaults.items() if d != common)
            shown = f"default {common}{others}"
            text = f"{comment} ({shown})" if comment else f"({shown})"
            kw = dict(dest=field, default=None, help=text.replace("%", "%%"))
            if hint is bool:
                g.add_argument(_flag(field), action=argparse.BooleanOptionalAction, **kw)
            else:
                g.add_argument(_flag(field), type=_field_parser(hint), metavar=field.upper(), **kw)


def _fields_given(args) -> dict:
    """{field: value} of the model flags given on the command line."""
    return {k: getattr(args, k) for k in model_fields() if getattr(args, k, None) is not None}


def _check_fields(name: str, cls, given: dict) -> None:
    """Every model flag given is a field of model `name`'s config, else a one-line error naming its fields."""
    fields = [f.name for f in dataclasses.fields(cls.Config) if f.init]
    for k in given:
        if k not in fields:
            owners = sorted(model_fields().get(k, {}))
            hint = f"a field of --model {' or '.join(', '.join(owners).rsplit(', ', 1))}; " if owners else ""
            raise VaekitError(
                f"{_flag(k)} is not a field of model {name!r} ({hint}its fields: {' '.join(_flag(f) for f in fields)})"
            )


TRAIN_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "lr_schedule",
    "lr_final",
    "grad_clip",
    "seed",
    "val_fraction",
    "patience",
    "binarize",
    "on_nonfinite",
    "checkpoint_every",
    "max_steps",
    "max_seconds",
    "budget_clock",
    "device",
    "precision",
)  # TrainConfig fields
# what `fit --resume` may change: how long, how often it checkpoints and where it runs, not what it computes
RESUMABLE = ("epochs", "max_steps", "max_seconds", "budget_clock", "checkpoint_every", "device")


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


def _run_dir(path) -> Path:
    """The directory of a trained run, as eval, sample and encode take it: an existing folder."""
    run_dir = Path(path)
    if not run_dir.exists():
        raise VaekitError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise VaekitError(
            f"{run_dir}: not a run directory (give the folder that holds config.json and checkpoint.safetensors)"
        )
    return run_dir


def _saved_data(run_dir: Path) -> dict:
    """The "data" record of a run's config.json: where its training data came from (checked field by field)."""
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        raise VaekitError(f"{run_dir}: no config.json, so the run's data is unknown; give --data")
    saved = _read_json(cfg).get("data", {})
    if not isinstance(saved, dict):
        raise VaekitError(f"{cfg}: field 'data' must be a JSON object, got {json.dumps(saved)[:40]}")
    for key, may_be_null in (("spec", False), ("data_dir", True)):
        value = saved.get(key)
        if key in saved and not ((isinstance(value, str) and value) or (may_be_null and value is None)):
            raise VaekitError(
                f"{cfg}: field 'data.{key}' must be a data set name or path, got {json.dumps(value)[:40]}"
            )
    return saved


def _run_data(run_dir: Path, args, model=None):
    """The data a command should use: --data, else the run's training data spec; items checked against the
    model's data_shape."""
    from .data import load

    spec, data_dir = args.data, args.data_dir
    if spec is None:
        saved = _saved_data(run_dir)
        spec = saved.get("spec", "digits")
        data_dir = data_dir or saved.get("data_dir")
    data = load(spec, args.split, data_dir)
    shape = getattr(getattr(model, "config", None), "data_shape", None)
    if shape is not None and tuple(data.shape) != tuple(shape):
        raise VaekitError(
            f"data {spec} ({args.split}): items have shape {tuple(data.shape)} but the model of "
            f"{run_dir} expects {tuple(shape)}"
        )
    return data


IMAGE_SUFFIXES = (".png", ".pdf", ".svg")


def _out_file(path, suffixes) -> Path:
    """An output file a command will write: one of `suffixes`, in an existing folder (checked before any work)."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise VaekitError(f"{out}: unsupported output type {out.suffix or '(none)'!r}; use {', '.join(suffixes)}")
    if out.is_dir():
        raise VaekitError(f"{out}: is a folder; give a file name")
    if not out.parent.is_dir():
        raise VaekitError(f"{out}: folder {out.parent} does not exist")
    return out


def _shows_as_images(shape) -> bool:
    """Items that `latent.plot_images` can tile: (H, W), (1 or 3, H, W) or square flat vectors."""
    shape = tuple(shape)
    return (
        len(shape) == 2
        or (len(shape) == 3 and shape[0] in (1, 3))
        or (len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0])
    )


def launch_torchrun(argv: list[str], nproc: int, max_restarts: int) -> int:
    """Re-run this `vaekit fit` command under torchrun with nproc processes on this machine."""
    import subprocess

    rest, skip = [], False
    for a in argv:  # drop our own --nproc/--max-restarts; torchrun gets them
        if skip:
            skip = False
            continue
        if a in ("--nproc", "--max-restarts"):
            skip = True
            continue
        if a.startswith(("--nproc=", "--max-restarts=")):
            continue
        rest.append(a)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}",
        "-m",
        "vaekit",
        *rest,
    ]
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
    if args.resume and args.overwrite:
        raise VaekitError("--resume continues the run in the directory and --overwrite replaces it: give one of them")
    init = None
    if args.resume:  # config.json is the source of truth: model, training settings, data
        saved, train, spec = _resumed(Path(args.run_dir), args)
        name, cfg, flags = saved["model"], dict(saved["config"]), {}
    else:
        train = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
        if args.init_from:  # read once: its header sets the config, its tensors the weights
            from .checkpoint import read, weights_file

            init_tensors, init_header = read(weights_file(args.init_from))
            init = init_header["model"]
        name, cfg = _model_file(init or (_read_json(args.config) if args.config else {}), args.init_from or args.config)
        name = args.model or name or "vae"
        flags = _fields_given(args)
        _check_fields(name, models.get(name), flags)
        cfg.update(flags)
    for shown, off in (("progress", args.no_progress), ("tensorboard", args.no_tensorboard)):
        if off:
            train[shown] = False
    tc = TrainConfig(**train)
    cls = models.get(name)
    molecules = cls.item_kind == "molecule"  # the model says what its items are
    if not args.resume:  # (TrainConfig has checked the training flags: nothing is read or written yet)
        spec = _data_spec(args, molecules, tc.seed)
        if init is not None:
            spec["init_from"] = args.init_from  # as given: no machine's absolute path in a committable config
    mols = None
    if molecules:
        mols = data = _molecules(spec, Path(args.run_dir) / "invalid_smiles.csv")
        if init is not None:
            spec["kind"] = _kept_vocabulary(init["config"], flags, args.init_from)
        elif not args.resume:
            from .chem.dataset import PROPERTIES, data_fields

            _set_by_data(
                cfg,
                flags,
                data_fields(
                    data,
                    spec["kind"],
                    flags.get("max_len"),
                    flags.get("properties", PROPERTIES),
                    cfg.get("conv_kernels"),
                ),
            )
    else:
        data = load(spec["spec"], spec["split"], spec["data_dir"])
        data = _standardized(data, spec, args, tc.binarize)
        if not args.resume:
            _set_by_data(cfg, flags, {"data_shape": tuple(data.shape)})
    import torch

    torch.manual_seed(tc.seed)  # the initial weights follow --seed too
    model = models.build(name, **cfg)
    if init is not None:
        _start_from(model, init, init_tensors, args.init_from, flags)
    if molecules:
        data = _molecule_items(model, data, spec)
    else:
        _check_likelihood(model, data.x, f"training data {spec['spec']} ({spec['split']})")
    digest = _fingerprint(data)
    if spec.get("sha256", digest) != digest:
        raise VaekitError(
            f"{args.run_dir} was trained on other items than {spec['spec']} ({spec['split']}) now holds "
            f"(SHA-256 {spec['sha256'][:12]}..., now {digest[:12]}...); --resume cannot change the data "
            "(start a new run, or --init-from)"
        )
    spec["sha256"] = digest
    from .distributed import end_worker, teardown

    try:
        hist = fit(model, data, tc, args.run_dir, resume=args.resume, overwrite=args.overwrite, meta=spec)
    except BaseException:
        teardown(wait=False)
        raise
    finally:  # a run directory exists once training has started (fit creates it): list the rows left out
        if mols is not None and mols.invalid and Path(args.run_dir).is_dir() and int(os.environ.get("RANK", "0")) == 0:
            _save_invalid(Path(args.run_dir) / "invalid_smiles.csv", mols)
    teardown()
    last = f"{hist.loss[-1]:.4f}" if hist.loss else "n/a"
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"{args.run_dir}: {len(hist.loss)} steps in {hist.seconds:.1f} s ({hist.stopped}); "
            f"last training loss {last}"
        )
        from .io import atomic_write_text

        atomic_write_text(
            Path(args.run_dir) / "training.json",
            json.dumps(
                {
                    "seconds": round(hist.seconds, 1),
                    "steps": len(hist.steps),
                    "stopped": hist.stopped,
                    "resumed": bool(args.resume),
                },
                indent=1,
            ),
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        end_worker(0)  # a torchrun worker: done; skip the interpreter's shutdown


def _kept_vocabulary(cfg: dict, flags: dict, path) -> str:
    """A chemical VAE started --init-from keeps the vocabulary, length and property scales of that model (config
    `cfg`; its weights are shaped by them): a flag given for one of them must agree.  Returns the vocabulary's
    kind."""
    from .chem.dataset import DATA_FIELDS

    for k in DATA_FIELDS:
        if flags.get(k) is not None and not _same(flags[k], cfg[k]):
            raise VaekitError(
                f"--init-from {path}: keeps that model's {k} ({_as_text(cfg[k])}); {_flag(k)} {_as_text(flags[k])} "
                "cannot change it (start a new run without --init-from)"
            )
    return cfg["kind"]


def _molecule_items(model, mols, spec: dict):
    """The model rows of a run's training molecules.  A run started --init-from keeps that model's vocabulary, so
    the molecules it cannot write (a token it lacks, or too long) are left out, and counted."""
    if not spec.get("init_from"):
        return model.items(mols.smiles, mols.props)
    x, kept = model.items(mols.smiles, mols.props, skip=True)
    if not kept:
        raise VaekitError(f"{spec['spec']}: none of its molecules fit the vocabulary of {spec['init_from']}")
    if len(kept) < len(mols.smiles):
        print(
            f"{spec['spec']}: {len(mols.smiles) - len(kept)} of {len(mols.smiles)} molecules do not fit the "
            f"vocabulary of {spec['init_from']} (a token it lacks, or longer than {model.vocab.max_len - 1} tokens) "
            "and were left out"
        )
    return x


def _set_by_data(cfg: dict, flags: dict, derived: dict) -> None:
    """Put the config fields that the training data sets (an item's shape; a vocabulary, ...) into `cfg`; a model
    flag given for one of them must agree with the data."""
    for k, v in derived.items():
        if k in flags and not _same(flags[k], v):
            raise VaekitError(f"{_flag(k)} {_as_text(flags[k])}: the training data sets {k} to {_as_text(v)}")
    cfg.update(derived)


_NAMED_MOLECULES = ("moses", "zinc250k")  # the names data.smiles.load_molecules knows


def _spec_path(spec: str) -> str:
    """A data spec as config.json records it: a registered name as it is, an existing file or folder as an
    absolute path (so the run's data is found from any folder)."""
    import os

    from .data import DATASETS

    if spec in DATASETS or spec in _NAMED_MOLECULES or not os.path.exists(spec):
        return spec
    return os.path.abspath(spec)


def _data_spec(args, molecules: bool, seed: int) -> dict:
    """config.json's "data" for a new run: every option that picks the training items."""
    import os

    if not molecules and (args.kind is not None or args.molecules is not None):
        raise VaekitError("--kind and --molecules are options of --model chemvae")
    return {
        "spec": _spec_path(args.data or ("moses" if molecules else "digits")),
        "split": args.split or "train",
        "data_dir": os.path.abspath(args.data_dir) if args.data_dir else None,
        "molecules": args.molecules,
        "kind": (args.kind or "smiles") if molecules else None,
        "seed": seed,
    }


def _model_file(d: dict, source) -> tuple[str | None, dict]:
    """(model name or None, config fields) of a --config file or an --init-from header: the fields themselves, or
    a saved {"model": name, "config": {...}}."""
    name = None
    if "config" in d and "model" in d:
        name, d = d["model"], d["config"]
        if not isinstance(name, str) or not isinstance(d, dict):
            raise VaekitError(f"{source}: 'model' must be a model name and 'config' an object of config fields")
    return name, {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _same(a, b) -> bool:
    """Equal as config.json stores them (tuples as lists, 1 == 1.0)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def _resumed(run_dir: Path, args) -> tuple[dict, dict, dict]:
    """What `fit --resume` continues with: the model ({"model", "config"}), the training config and the data spec
    that the run's config.json records.  A flag given on the command line must agree with them, except the
    RESUMABLE training flags, which replace the recorded values (and --no-progress, --no-tensorboard)."""
    import os

    from . import models
    from .train import TrainConfig, show

    cfg_file = run_dir / "config.json"
    if not (run_dir / "checkpoint.safetensors").is_file():
        raise VaekitError(f"{run_dir}: nothing to resume (no checkpoint.safetensors)")
    if not cfg_file.is_file():
        raise VaekitError(f"{cfg_file}: not found; a run resumes with the settings recorded there")
    saved = _read_json(cfg_file)
    model, train, data = saved.get("model"), saved.get("train"), saved.get("data") or {}
    if not (
        isinstance(model, dict)
        and isinstance(model.get("model"), str)
        and isinstance(model.get("config"), dict)
        and isinstance(train, dict)
        and isinstance(data, dict)
    ):
        raise VaekitError(
            f"{cfg_file}: needs the objects 'model' (with 'model' and 'config'), 'train' and 'data' to resume the run"
        )
    unknown = sorted(set(train) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise VaekitError(f"{cfg_file}: unknown training field(s) {unknown}")

    def refuse(field, old, new):
        raise VaekitError(
            f"{run_dir} was trained with {field} {show(old)}; --resume cannot change it to {show(new)} "
            "(start a new run, or --init-from)"
        )

    name = model["model"]
    file_name, given = _model_file(_read_json(args.config), args.config) if args.config else (None, {})
    for asked in (args.model, file_name):
        if asked is not None and asked != name:
            refuse("model", name, asked)
    flags = _fields_given(args)
    _check_fields(name, models.get(name), flags)
    given.update(flags)
    for k, v in given.items():
        if k not in model["config"]:
            raise VaekitError(f"{run_dir} holds a {name}, which has no config field {k}")
        if not _same(v, model["config"][k]):
            raise VaekitError(
                f"{run_dir} holds a {name} with {k} {show(model['config'][k])}, the flags ask for "
                f"{show(v)}; --resume cannot change it (start a new run, or --init-from)"
            )

    train = {**dataclasses.asdict(TrainConfig()), **train}
    for k in TRAIN_FLAGS:
        v = getattr(args, k)
        if v is None:
            continue
        if k in RESUMABLE:
            train[k] = v
        elif not _same(v, train[k]):
            refuse(k, train[k], v)

    molecules = models.get(name).item_kind == "molecule"
    if "spec" not in data:  # a run made with the Python API records no data: it must be given
        if args.data is None:
            raise VaekitError(f"{cfg_file}: records no training data (a run made with the Python API?); give --data")
        return model, train, _data_spec(args, molecules, train["seed"])
    spec = {
        "split": "train",
        "data_dir": None,
        "molecules": None,
        "seed": train["seed"],
        "kind": model["config"].get("kind") if molecules else None,
        **data,
    }
    spec["spec"] = _spec_path(spec["spec"])
    if spec["data_dir"]:
        spec["data_dir"] = os.path.abspath(spec["data_dir"])
    asked = {
        "data": _spec_path(args.data) if args.data else None,
        "split": args.split,
        "molecules": args.molecules,
        "data_dir": os.path.abspath(args.data_dir) if args.data_dir else None,
        "kind": args.kind,
    }
    for k, v in asked.items():
        old = spec["spec" if k == "data" else k]
        if v is not None and v != old:
            refuse(k, old, v)
    return model, train, spec


def _standardized(data, spec: dict, args, binarize: bool):
    """`fit --standardize`: the items standardised per feature, with the statistics recorded in `spec` (config.json's
    "data"), so that eval, encode and sample apply and undo them; a resumed run uses the recorded statistics."""
    from .data import Dataset, Standardization

    if "standardize" in spec:
        st = Standardization.from_json(spec["standardize"], data.shape, str(Path(args.run_dir) / "config.json"))
    elif args.standardize and args.resume:
        raise VaekitError(f"{args.run_dir} was trained without --standardize; --resume cannot add it")
    elif args.standardize:
        st = Standardization.fit(data.x)
        spec["standardize"] = st.to_json()
    else:
        return data
    if binarize:
        raise VaekitError("--binarize draws 0/1 pixels from values in [0, 1]; it does not go with --standardize")
    return Dataset(st.apply(data.x), data.y, data.name)


def _standardization(run_dir: Path, model):
    """The `Standardization` a run was trained with (fit --standardize), or None."""
    from .data import Standardization

    if not (run_dir / "config.json").is_file():
        return None
    saved = _saved_data(run_dir)
    if "standardize" not in saved:
        return None
    return Standardization.from_json(saved["standardize"], tuple(model.config.data_shape), str(run_dir / "config.json"))


def _fingerprint(data) -> str:
    """SHA-256 of the training items (their shape and float32 values), recorded so --resume refuses other data."""
    import hashlib

    from .data.core import check_array

    x = check_array(data, "training data").contiguous()
    h = hashlib.sha256(repr(tuple(x.shape)).encode())
    h.update(x.numpy().data)
    return h.hexdigest()


def _start_from(model, init: dict, tensors: dict, path, flags: dict) -> None:
    """Load the weights of run `path` (header `init`, `tensors`) into `model`: the same model, and a config that
    differs only in the fields set by flags (a chemical VAE's vocabulary, rebuilt from --data, must come out the
    same)."""
    from .checkpoint import load_tensors
    from .models import config_dict

    want = json.loads(json.dumps(config_dict(model)))
    if want["model"] != init["model"]:
        raise VaekitError(f"--init-from {path}: holds a {init['model']} model, not {want['model']}")
    changed = sorted(
        k
        for k in set(want["config"]) | set(init["config"])
        if want["config"].get(k) != init["config"].get(k) and k not in flags
    )
    if changed:
        raise VaekitError(
            f"--init-from {path}: this run's model differs in {changed} "
            "(only the model flags given on the command line may change)"
        )
    load_tensors(model, tensors, path)


def _molecules(spec: dict, listed_in: Path | None = None, *, properties: bool = True):
    """The scored molecules a `vaekit fit --model chemvae` run's data spec names (see _data_spec); the invalid
    ones are counted in one line, which names `listed_in` (where fit writes them, see _save_invalid);
    properties=False: unscored (codes need only the tokens)."""
    from .chem.dataset import scored, unscored

    read = scored if properties else unscored
    mols = read(spec["spec"], spec["split"], spec["data_dir"], limit=spec["molecules"], seed=spec["seed"])
    if mols.invalid:
        print(
            f"{spec['spec']}: {len(mols.invalid)} SMILES are not valid molecules and were left out, e.g. line "
            f"{mols.invalid[0][0]}: {mols.invalid[0][1]!r}" + (f"; all are listed in {listed_in}" if listed_in else "")
        )
    return mols


def _save_invalid(path: Path, mols) -> None:
    """The invalid SMILES of a molecule file as CSV (columns line, smiles; line empty where unknown), atomically."""
    import csv
    import io

    from .io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["line", "smiles"])
    w.writerows([(line if line >= 0 else "", text) for line, text in mols.invalid])
    atomic_write_text(path, buf.getvalue())


def _run_molecules(run_dir: Path, args, limit: int | None = None, *, properties: bool = True):
    """The scored molecules eval and encode use for a molecule model: --data (moses, zinc250k or a CSV file), else
    the run's training data as its config.json records it, in the split --split names (a CSV file has one set);
    `limit`: a seeded random subset of that many; properties=False: unscored (codes need only the tokens)."""
    from .chem.dataset import scored, unscored

    spec, data_dir = args.data, args.data_dir
    if spec is None:
        saved = _saved_data(run_dir)
        if "spec" not in saved:
            raise VaekitError(
                f"{run_dir / 'config.json'}: records no training data (a run made with the Python API?); give --data"
            )
        spec, data_dir = saved["spec"], data_dir or saved.get("data_dir")
    else:
        spec = _spec_path(spec)
    mols = (scored if properties else unscored)(spec, args.split, data_dir, limit=limit, seed=0)
    if mols.invalid:
        print(
            f"{spec}: {len(mols.invalid)} SMILES are not valid molecules and were left out, e.g. line "
            f"{mols.invalid[0][0]}: {mols.invalid[0][1]!r}"
        )
    if not mols.smiles:
        raise VaekitError(f"{spec}: no valid molecules to use")
    return mols


def cmd_eval(args) -> None:
    from .checkpoint import load_model
    from .io import atomic_write_text

    run_dir = _run_dir(args.run_dir)
    model = load_model(run_dir)
    if model.item_kind == "molecule":
        res = _eval_molecules(run_dir, args, model)
    else:
        res = _eval_arrays(run_dir, args, model)
    res.update({"data": args.data or "run", "split": args.split, "binarized": args.binarize})
    out = run_dir / "metrics.json"
    all_metrics = _read_json(out) if out.is_file() else {}
    all_metrics[args.split + (f"[:{args.limit}]" if args.limit else "")] = res
    atomic_write_text(out, json.dumps(all_metrics, indent=2))
    for k_, v in res.items():
        print(f"{k_:>10}  {v:.4f}" if isinstance(v, float) else f"{k_:>10}  {v}")


def _eval_molecules(run_dir: Path, args, model) -> dict:
    """eval of a molecule model: ELBO terms, property-head errors and reconstruction accuracy (see
    evaluate.evaluate_molecules) on the molecules of --data, or of the run's data."""
    from .evaluate import evaluate_molecules

    if args.binarize:
        raise VaekitError(f"--binarize draws 0/1 pixels; {run_dir} holds a molecule model")
    mols = _run_molecules(run_dir, args, args.limit)
    t0 = time.perf_counter()
    res = evaluate_molecules(model, mols.smiles, mols.props)
    res["seconds"] = time.perf_counter() - t0
    return res


def _eval_arrays(run_dir: Path, args, model) -> dict:
    import torch

    from .evaluate import evaluate

    data = _run_data(run_dir, args, model)
    x = data.x[: args.limit] if args.limit else data.x
    st = _standardization(run_dir, model)
    if args.binarize:
        if st is not None:
            raise VaekitError(f"{run_dir} was trained with --standardize; --binarize does not go with it")
        if float(x.min()) < 0 or float(x.max()) > 1:
            raise VaekitError(f"--binarize needs values in [0, 1], got {float(x.min()):.4g} to {float(x.max()):.4g}")
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    if st is not None:
        x = st.apply(x)
    _check_likelihood(model, x, f"data {args.data or 'of the run'} ({args.split})")
    t0 = time.perf_counter()
    res = evaluate(model, x, k=args.k, nll_k=args.nll_k, standardization=st)
    res["seconds"] = time.perf_counter() - t0
    return res


def _run_sampler(run_dir: Path, model, name: str, st=None):
    """Sampler `name` for the run's model: kept in RUN_DIR/sampler-<name>.safetensors (a committed model's in the
    cache: samplers.kept), fitted (when it fits anything) on the codes of the run's training data (read from
    its config.json; at most `samplers.FIT_CODES` items of it, a seeded subset; molecules unscored)."""
    from . import samplers

    if not samplers.get(name).uses_codes and not model.can_sample:  # (an unknown name fails here too)
        raise VaekitError(
            f"{model.name} models fit no prior, so decoded prior draws are not their samples: use "
            "--sampler gmm or twostage (fitted on the codes of the training items)"
        )
    if samplers.get(name).uses_codes and not model.has_encoder:  # before any "fitting" line
        raise VaekitError(
            f"{model.name} models infer no codes from items, so there is nothing to fit the {name} sampler on: "
            "use --sampler prior"
        )

    def training_codes():
        saved = _saved_data(run_dir)
        if model.item_kind == "molecule":  # the tokens of its molecules, as fit read them: codes need no properties
            x, _ = model.code_items(_molecules(saved, properties=False).smiles, skip=True)
        else:
            data = _run_data(
                run_dir, argparse.Namespace(data=None, split=saved.get("split") or "train", data_dir=None), model
            )
            x = data.x if st is None else st.apply(data.x)
        n = min(len(x), samplers.FIT_CODES)
        of = f" (of {len(x)})" if n < len(x) else ""
        print(f"fitting the {name} sampler on the posterior {samplers.code_kind(model)}s of {n} training items{of}")
        return samplers.fit_codes(model, x)

    return samplers.cached(samplers.kept(run_dir, name), name, model, training_codes)


def cmd_sample(args) -> None:
    import torch

    from . import samplers
    from .checkpoint import load_model

    run_dir = _run_dir(args.run_dir)
    model = load_model(run_dir)
    if model.item_kind == "molecule":
        out = Path(args.out or run_dir / "samples.smi")
        if out.suffix.lower() not in SMILES_SUFFIXES:
            raise VaekitError(
                f"{out}: {run_dir} holds a molecule model, whose samples are SMILES: write them as "
                f"{', '.join(SMILES_SUFFIXES)}, not {out.suffix or '(no suffix)'!r}"
            )
        out = _out_file(out, SMILES_SUFFIXES)
        sampler = _run_sampler(run_dir, model, args.sampler)
        ids = samplers.generate(model, sampler, args.n, torch.Generator().manual_seed(args.seed)).cpu()
        valid = _write_smiles(out, model.vocab.decode(ids))
        print(f"wrote {out}: {args.n} SMILES, {valid} valid")
        return
    shape = tuple(getattr(model.config, "data_shape", ()))
    images = _shows_as_images(shape)
    out = _out_file(args.out or run_dir / ("samples.png" if images else "samples.npy"), (".npy", *IMAGE_SUFFIXES))
    if out.suffix.lower() != ".npy" and not images:
        raise VaekitError(f"{out}: items of shape {shape} cannot be drawn as an image grid; write them as .npy")
    st = _standardization(run_dir, model)
    sampler = _run_sampler(run_dir, model, args.sampler, st)
    x = samplers.generate(model, sampler, args.n, torch.Generator().manual_seed(args.seed)).cpu()
    if st is not None:
        x = st.undo(x)
    if out.suffix.lower() == ".npy":
        _save_npy(out, x.numpy())
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .io import save_figure
        from .latent import plot_images

        fig, ax = plt.subplots(figsize=(6, 6))
        plot_images(ax, x)
        save_figure(fig, out, dpi=120, bbox_inches="tight")
    print(f"wrote {out}")


SMILES_SUFFIXES = (".smi", ".txt", ".csv")


def _write_smiles(out: Path, smiles: list[str]) -> int:
    """SMILES strings to `out`, atomically: one a line (.smi, .txt), or CSV with the columns smiles and valid
    (1 when RDKit parses it as a molecule); returns how many are valid."""
    import csv
    import io

    from .chem.props import canonical
    from .io import atomic_write_text

    valid = [bool(s) and canonical(s) is not None for s in smiles]
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["smiles", "valid"])
        w.writerows((s, int(v)) for s, v in zip(smiles, valid))
        text = buf.getvalue()
    else:
        text = "".join(s + "\n" for s in smiles)
    atomic_write_text(out, text)
    return sum(valid)


def _save_npy(out: Path, array) -> None:
    """np.save, written atomically (temp file, then rename)."""
    import io

    import numpy as np

    from .io import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(out, buf.getvalue())


def _check_likelihood(model, x, name: str) -> None:
    """Data within the support of the model's likelihood (when its config names one), else a one-line error."""
    from .likelihoods import check_data

    kind = getattr(model.config, "likelihood", None)
    if kind is not None:
        check_data(kind, x, name, getattr(model.config, "n_categories", 256))


def cmd_encode(args) -> None:
    from .checkpoint import load_model

    run_dir = _run_dir(args.run_dir)
    out = _out_file(args.out, (".npy",))
    model = load_model(run_dir)
    if model.item_kind == "molecule":
        from .samplers import codes

        mols = _run_molecules(run_dir, args, properties=False)
        x, kept = model.code_items(mols.smiles, skip=True)
        if not kept:
            raise VaekitError(f"none of the {len(mols.smiles)} molecules fits the vocabulary of the model of {run_dir}")
        z = codes(model, x).numpy()
        _save_npy(out, z)
        left = len(mols.smiles) - len(kept)
        print(
            f"wrote {out}: {z.shape}"
            + (
                f"; {left} molecules that do not fit the model's vocabulary (tokens it "
                "lacks, or too long) were left out"
                if left
                else ""
            )
        )
        return
    data = _run_data(run_dir, args, model)
    st = _standardization(run_dir, model)
    z = model.embed(data.x if st is None else st.apply(data.x)).numpy()
    _save_npy(out, z)
    print(f"wrote {out}: {z.shape}")


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
    out_dir = Path(args.out) if args.out else None
    if args.index and args.name is None:
        print(f"wrote {reports.write_index(out_dir or 'reports')}")
        return
    opts = {}
    for kv in args.option:
        if "=" not in kv:
            raise VaekitError(f"--option expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        opts[k.replace("-", "_")] = v
    if args.pretrained:
        opts["pretrained"] = "1"
    ctx = reports.run_report(
        args.name, quick=args.quick, data_dir=args.data_dir, seed=args.seed, out_dir=out_dir, **opts
    )
    if args.index:  # the folder holding this report's folder
        print(f"wrote {reports.write_index(ctx.out_dir.parent)}")


def cmd_explore(args) -> None:
    from .explore.server import serve

    if not 0 < args.port < 65536:
        raise VaekitError(f"--port must be from 1 to 65535, got {args.port}")
    serve(
        args.run_dir,
        host=args.host,
        port=args.port,
        open_browser=not args.no_browser,
        data=args.data,
        data_dir=args.data_dir,
    )


COMMANDS = {
    "fit": cmd_fit,
    "eval": cmd_eval,
    "sample": cmd_sample,
    "encode": cmd_encode,
    "data": cmd_data,
    "demo": cmd_demo,
    "report": cmd_report,
    "explore": cmd_explore,
}


def _one_line_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """Show a VaekitWarning as `vaekit: warning: ...` (other warnings as Python shows them)."""
    if issubclass(category, VaekitWarning):
        print(f"vaekit: warning: {' '.join(str(message).split())}", file=sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def crash_report(argv, exc: BaseException) -> Path | None:
    """Write the traceback and the command line of an unexpected error to a new file under
    $VAEKIT_CACHE/crashes (default ~/.cache/vaekit/crashes; the system's temp folder if that cannot be
    written), atomically; returns its path, or None if no file could be written."""
    import os
    import tempfile
    import traceback

    from . import __version__
    from .io import atomic_write_text

    text = (
        f"vaekit {__version__}, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
        f"argv: {json.dumps(list(argv))}\n\n" + "".join(traceback.format_exception(exc))
    )
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    folders = []
    try:
        from .data.core import cache_root

        folders.append(cache_root() / "crashes")
    except Exception:
        pass
    folders.append(Path(tempfile.gettempdir()))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / name, text)
            return folder / name
        except OSError:
            pass
    return None


def main(argv=None) -> None:
    """Run one command. Every error a user can fix is one line, `vaekit: error: ...`, exit status 2
    (130 when interrupted); an unexpected one is one line naming a crash report, exit status 1."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            args = build_parser().parse_args(argv)
            args.argv = argv
            COMMANDS[args.command](args)
        except VaekitError as e:
            print(f"vaekit: error: {e}", file=sys.stderr)
            sys.exit(2)
        except OSError as e:  # a path the user gave: missing, a folder, not writable, disk full
            what = f"{e.filename}: {e.strerror}" if e.filename and e.strerror else (e.strerror or str(e))
            print(f"vaekit: error: {' '.join(str(what).split())}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("vaekit: error: interrupted", file=sys.stderr)
            sys.exit(130)
        except (MemoryError, RuntimeError) as e:
            if isinstance(e, RuntimeError) and not ("not enough memory" in str(e) or "out of memory" in str(e)):
                _crash(argv, e)
            print(
                "vaekit: error: out of memory; use fewer items at a time (-n, --k, --nll-k, --batch-size, "
                "--limit) or a smaller model",
                file=sys.stderr,
            )
            sys.exit(2)
        except Exception as e:
            _crash(argv, e)


def _crash(argv, e: Exception):
    """An unexpected exception: one line naming its crash report; exit status 1."""
    path = crash_report(argv, e)
    where = f"the details are in {path}" if path else "no crash report could be written"
    first = " ".join(str(e).split())[:200]
    print(
        f"vaekit: internal error ({type(e).__name__}{': ' + first if first else ''}); {where}; please report it",
        file=sys.stderr,
    )
    sys.exit(1)
