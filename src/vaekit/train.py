"""The one training loop: read it top to bottom.

    fit(model, data, TrainConfig(...), run_dir="runs/x")

Device-agnostic, seeded, Adam with an optional learning-rate schedule, KL warm-up through the
model's own objective, a NaN/inf guard, early stopping on a validation split, CSV + TensorBoard
logs, and atomic checkpoints from which `resume=True` continues bit-exactly on CPU.

Batches are drawn from a per-epoch permutation seeded by (seed, epoch), so a resumed run sees the
same batches in the same order; the torch RNG state (re-parametrization noise, binarization) is
saved in every checkpoint.

Games (GANs, adversarial auto-encoders) are objectives with *phases*: a list of `Phase(name, loss,
parameters)`, each with its own Adam optimiser, run in order on every batch (e.g. discriminator
step, then generator step).  A plain objective is one phase ("loss") over all the parameters, so a
checkpoint always holds {phase: optimiser}.

`fit` is the loop; its pieces are named below it: `make_optimisers`, `train_step` (every phase of
one batch, with the non-finite guard `check_finite`), the time `Budget`, `validate` and
`save_checkpoint`.  Every step's process CPU seconds are recorded (History.clock, log.csv's
`cpu_seconds`) and passed to `on_step`, so callers time and watch training without wrapping it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import numbers
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from . import checkpoint, distributed
from .bounds import seeded
from .data.core import Dataset, check_array, split
from .errors import NonFiniteLossError, VaekitError
from .io import atomic_write_text
from .models import config_dict
from .objective import Loss, Phase

Row = dict[str, Any]  # a logged row: step, epoch, loss, the terms, lr, cpu_seconds


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # "constant" | "cosine" | "step" (x0.1 at 50 % and 75 %), over the run:
    # its steps, or its max_seconds where the time budget ends it first
    lr_final: float = 0.0  # cosine: learning rate at the run's end
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = None  # max gradient norm
    seed: int = 0
    val_fraction: float = 0.0  # held out from the training data for early stopping
    patience: int | None = None  # epochs without validation improvement before stopping
    binarize: bool = False  # dynamic binarization: x ~ Bernoulli(pixel) every batch
    on_nonfinite: str = "raise"  # "raise" (stop, save the batch index) or "skip"
    checkpoint_every: int = 0  # steps between checkpoints; 0 = end of every epoch only
    max_steps: int | None = None
    max_seconds: float | None = None  # a training-time budget (checked after every step)
    budget_clock: str = "wall"  # max_seconds counts "wall" seconds or this process's "cpu" seconds
    device: str = "auto"
    # "bfloat16": the loss and its gradient are computed under torch.autocast (matrix products and convolutions in
    # bfloat16; weights, optimiser state and validation stay float32); bench/precision.py measures the speed
    precision: str = "float32"
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        self.betas = cast(tuple[float, float], tuple(self.betas))  # a list in JSON; its length is checked below
        if self.budget_clock not in ("wall", "cpu"):
            raise VaekitError(f"train config field budget_clock must be wall or cpu, got {self.budget_clock!r}")
        if self.lr_schedule not in ("constant", "cosine", "step"):
            raise VaekitError(
                f"train config field lr_schedule must be constant, cosine or step, got {self.lr_schedule!r}"
            )
        if self.precision not in ("float32", "bfloat16"):
            raise VaekitError(f"train config field precision must be float32 or bfloat16, got {self.precision!r}")
        if self.on_nonfinite not in ("raise", "skip"):
            raise VaekitError(f"train config field on_nonfinite must be 'raise' or 'skip', got {self.on_nonfinite!r}")
        for name, (ok, want) in _RULES.items():  # before anything is read or written
            value = getattr(self, name)
            if not ok(value):
                raise VaekitError(f"train config field {name} must be {want}, got {value!r}")


def _integer(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _number(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {  # TrainConfig field: (test, what it must be)
    "epochs": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "lr_final": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "betas": (lambda v: len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "eps": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "grad_clip": (lambda v: v is None or _number(v) and v > 0, "None or a finite number > 0"),
    "seed": (_integer, "an integer"),
    "val_fraction": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "patience": (lambda v: v is None or _integer(v) and v >= 1, "None or an integer >= 1"),
    "checkpoint_every": (lambda v: _integer(v) and v >= 0, "an integer >= 0 (0: at the end of every epoch)"),
    "max_steps": (lambda v: v is None or _integer(v) and v >= 0, "None or an integer >= 0"),
    "max_seconds": (lambda v: v is None or _number(v) and v > 0, "None or a finite number > 0"),
}


def resolve_phases(
    model: Any,
    objective: Callable[[Any, torch.Tensor, int], Loss] | Sequence[Phase] | None = None,
) -> list[Phase]:
    """The phases `fit` runs: `objective` (a function, or a sequence of Phases), else `model.phases()`
    when the model defines it, else one phase of `model.loss`."""
    if objective is None and callable(getattr(model, "phases", None)):
        objective = cast(Sequence[Phase], model.phases())
    if objective is None:
        return [Phase("loss", lambda m, x, step: m.loss(x, step))]
    if callable(objective):
        return [Phase("loss", objective)]
    phases = list(objective)
    if not phases or not all(isinstance(p, Phase) for p in phases):
        raise VaekitError("objective must be a function (model, x, step) -> Loss or a non-empty sequence of Phase")
    names = [p.name for p in phases]
    if len(set(names)) < len(names) or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise VaekitError(f"phase names must be distinct identifiers, got {names}")
    return phases


class CurrentPhase:
    """objective(model, x, step) running the phase at `index`: one (DDP) module serves every phase."""

    def __init__(self, phases: list[Phase]):
        self.phases, self.index = phases, 0

    def __call__(self, model: Any, x: torch.Tensor, step: int) -> Loss:
        return self.phases[self.index].loss(model, x, step)


def pick_device(name: str = "auto", dd: distributed.Dist | None = None) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", dd.local_rank if dd is not None else torch.cuda.current_device())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def lr_at(cfg: TrainConfig, step: int, total: int, lr: float | None = None, spent: float = 0.0) -> float:
    """The learning rate at `step` of `total`, starting from `lr` (default cfg.lr). `spent` is the fraction of
    a time budget used so far: the schedule follows whichever of steps and budget is further along, so a
    budgeted run ends its schedule when its time ends, however fast the machine turns out to be."""
    lr = cfg.lr if lr is None else lr
    t = min(max(step / max(total, 1), spent), 1.0)
    if cfg.lr_schedule == "cosine":
        return cfg.lr_final + 0.5 * (lr - cfg.lr_final) * (1 + math.cos(math.pi * t))
    if cfg.lr_schedule == "step":
        return lr * (0.1 ** sum(t >= f for f in (0.5, 0.75)))
    return lr


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: torch.Tensor | None = None, pool: int = 50
) -> list[torch.Tensor]:
    """Index batches of one epoch, a permutation fixed by (seed, epoch).

    With `lengths` (one per item, e.g. tokens per molecule) the batches are length buckets: the
    permutation is cut into pools of `pool` batches, each pool sorted by length and cut into batches,
    and the batches shuffled, so a batch holds items of similar length and a sequence model skips
    most of the padding, while every item is still seen once per epoch in a seeded order."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if lengths is None:
        return list(perm.split(batch_size))
    batches = []
    for chunk in perm.split(batch_size * pool):
        order = torch.argsort(lengths[chunk], stable=True)
        batches += list(chunk[order].split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


@dataclass
class History:
    steps: list[int] = dataclasses.field(default_factory=list)
    loss: list[float] = dataclasses.field(default_factory=list)
    val: list[float] = dataclasses.field(default_factory=list)
    terms: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # logged terms, one per step
    clock: list[float] = dataclasses.field(default_factory=list)  # CPU seconds since the run began, at each step
    stopped: str = "completed"
    seconds: float = 0.0  # wall seconds
    cpu_seconds: float = 0.0  # CPU seconds of this process (all its threads)

    def record(self, row: Row) -> None:
        """A step's logged row: its step, loss and cpu_seconds, and the rest (but the epoch) as terms."""
        self.steps.append(row["step"])
        self.loss.append(row["loss"])
        self.clock.append(row["cpu_seconds"])
        for k, v in row.items():
            if k not in ("step", "epoch", "loss", "cpu_seconds"):
                self.terms.setdefault(k, []).append(v)


@torch.no_grad()
def evaluate_loss(
    model: Any,
    x: torch.Tensor,
    batch_size: int = 1000,
    seed: int = 1234,
    dd: distributed.Dist | None = None,
    objective: Callable[[Any, torch.Tensor, int], Loss] | None = None,
) -> float:
    """Mean training loss over x (`objective`, else model.loss; each rank takes a share and the sums
    are reduced), with its own fixed noise so the training RNG stream is untouched."""
    dd = dd or distributed.Dist()
    was = model.training
    model.eval()
    mine = x[dd.rank :: dd.world]
    with seeded(seed + dd.rank):
        loss: Callable[[torch.Tensor], Loss] = model.loss if objective is None else (lambda xb: objective(model, xb, 0))
        total = sum(float(loss(xb).value) * len(xb) for xb in mine.split(batch_size))
    model.train(was)
    tot = dd.sum(torch.tensor([total, float(len(mine))], dtype=torch.float64))
    return float(tot[0] / tot[1])


class RunLog:
    """CSV (always) and TensorBoard (when installed and asked for) logs in the run directory.

    `resume_step`: None for a new log; else the step of the checkpoint a resumed run starts from (rows
    logged after it, by a run killed before its next checkpoint, are dropped)."""

    def __init__(self, run_dir: Path | None, resume_step: int | None, tensorboard: bool):
        self.path = run_dir / "log.csv" if run_dir else None
        self.rows: list[Row] = []
        self.tb: Any = None  # a SummaryWriter, when TensorBoard is there and asked for
        if self.path is None:
            return
        if resume_step is not None and self.path.is_file():
            try:
                with open(self.path, newline="") as f:
                    self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            except (KeyError, TypeError, ValueError, UnicodeDecodeError, csv.Error):
                raise VaekitError(f"{self.path}: not a vaekit training log (a 'step' column of integers)") from None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.path.parent / "tb"), purge_step=resume_step)
            except ImportError:
                self.tb = None

    def add(self, row: Row) -> None:
        self.rows.append(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and v != "":
                    self.tb.add_scalar(k, float(v), int(row["step"]))

    def flush(self) -> None:
        if self.path is None:
            return
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=keys)
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())  # via .log.csv.*.tmp, swept when left behind
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        self.flush()
        if self.tb is not None:
            self.tb.close()


RUN_FILES = (
    "checkpoint.safetensors",
    "best.safetensors",
    "config.json",
    "log.csv",
    "training.json",
    "metrics.json",
    "nonfinite_batch.json",
)  # what a run writes (and tb/); overwrite removes them


def show(value: object) -> str:
    """A config value as an error message shows it: tuples and lists as (32,), the rest as str()."""
    return repr(tuple(value)) if isinstance(value, (list, tuple)) else str(value)


def model_difference(saved: object, model_cfg: dict[str, Any]) -> str | None:
    """How the model config `saved` ({"model", "config"}, as read from JSON) differs from `model_cfg`, in words
    ("holds a vae with hidden (32,), this model has (64,)"); None when they are the same."""
    model_cfg = json.loads(json.dumps(model_cfg))
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        return "holds no readable model config"
    if saved.get("model") != model_cfg["model"]:
        return f"holds a different model ({saved.get('model')}; this one is {model_cfg['model']})"
    a, b = saved["config"], model_cfg["config"]
    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if not diff:
        return None
    more = f" (and {len(diff) - 1} more fields differ: {diff[1:]})" if len(diff) > 1 else ""
    return (
        f"holds a {model_cfg['model']} with {diff[0]} {show(a.get(diff[0]))}, "
        f"this model has {show(b.get(diff[0]))}{more}"
    )


def _never_started(run_dir: Path) -> bool:
    """A folder left by a start that failed before training began (older versions wrote config.json, log.csv and tb/
    first): no checkpoint, and nothing but those."""
    return not (run_dir / "checkpoint.safetensors").exists() and all(
        p.name in ("config.json", "log.csv", "tb") or p.name.endswith(".tmp") for p in run_dir.iterdir()
    )


def check_run_dir(run_dir: str | os.PathLike[str], model: Any, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber a run (unless `overwrite`) or to resume a different model. Writes nothing."""
    run_dir = Path(run_dir)
    cfg_file = run_dir / "config.json"
    if run_dir.exists() and not run_dir.is_dir():
        raise VaekitError(f"{run_dir}: exists and is not a directory")
    if resume:
        if not (run_dir / "checkpoint.safetensors").is_file():
            raise VaekitError(f"{run_dir}: nothing to resume (no checkpoint.safetensors)")
        if cfg_file.is_file():
            try:
                saved = json.loads(cfg_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise VaekitError(f"{cfg_file}: invalid JSON") from None
            diff = model_difference(saved.get("model") if isinstance(saved, dict) else None, config_dict(model))
            if diff:
                raise VaekitError(
                    f"{cfg_file}: the run directory {diff}; resume it with its own model, or choose "
                    "another run directory"
                )
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite and not _never_started(run_dir):
        raise VaekitError(
            f"{run_dir}: run directory is not empty; pass overwrite=True (--overwrite) or resume=True (--resume)"
        )


def _sweep(folder: Path) -> None:
    """Remove the temporary files of a writer killed mid-write (they all match .*.tmp)."""
    for stale in folder.glob(".*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def init_run_dir(
    run_dir: str | os.PathLike[str],
    model: Any,
    train_cfg: TrainConfig,
    *,
    resume: bool,
    meta: dict[str, Any] | None = None,
    start: Callable[[Path], None] | None = None,
) -> Path:
    """Make `run_dir` a run directory: config.json (the model's config, `train_cfg` and `meta` as "data") and,
    for a new run, whatever `start(folder)` writes into it (`fit`: the step-0 checkpoint).

    A new run is written into a hidden sibling folder (.NAME.PID.tmp) and renamed into place, so the run
    directory appears complete, with a checkpoint to resume from, or not at all.  In a folder that exists already
    the files are written in place, a run it replaces (overwrite) losing its files first (RUN_FILES and tb/; other
    files stay); there a start killed between config.json and the checkpoint leaves no run (see check_run_dir).
    Resuming rewrites config.json, keeping its "data" when `meta` is None.  Temporary files of a writer killed
    mid-write are swept."""
    run_dir = Path(run_dir)
    if resume:
        cfg_file = run_dir / "config.json"
        if meta is None and cfg_file.is_file():
            try:
                meta = json.loads(cfg_file.read_text()).get("data")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                meta = None
        _sweep(run_dir)
        _write_config(run_dir, model, train_cfg, meta)
        return run_dir
    where = Path(os.path.abspath(run_dir))
    where.parent.mkdir(parents=True, exist_ok=True)
    stale = re.compile(re.escape(f".{where.name}.") + r"\d+\.tmp")
    for p in where.parent.iterdir():  # left by a start killed before its rename
        if stale.fullmatch(p.name):
            shutil.rmtree(p, ignore_errors=True)
    if run_dir.is_dir():  # a folder that exists already (maybe the cwd) is written in place
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)  # the checkpoint first: the old run is no longer resumable
        shutil.rmtree(run_dir / "tb", ignore_errors=True)
        _sweep(run_dir)
        folder = run_dir
    else:
        folder = where.parent / f".{where.name}.{os.getpid()}.tmp"
        folder.mkdir()
    try:
        _write_config(folder, model, train_cfg, meta)
        if start is not None:
            start(folder)
        if folder != run_dir:
            os.rename(folder, run_dir)
    except BaseException:
        if folder != run_dir:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return run_dir


def _write_config(folder: Path, model: Any, train_cfg: TrainConfig, meta: dict[str, Any] | None) -> None:
    atomic_write_text(
        folder / "config.json",
        json.dumps({"model": config_dict(model), "train": dataclasses.asdict(train_cfg), "data": meta or {}}, indent=2),
    )


# -- the pieces of the loop ---------------------------------------------------------------------------
def make_optimisers(
    model: nn.Module, phases: list[Phase], cfg: TrainConfig, device: torch.device
) -> dict[str, torch.optim.Optimizer]:
    """One Adam per phase over the phase's parameters (its own lr and betas where it sets them), by phase name:
    what checkpoints hold."""
    fused = device.type in ("cpu", "cuda")  # one kernel per step instead of one per parameter and op
    return {
        p.name: torch.optim.Adam(
            list(model.parameters() if p.parameters is None else p.parameters(model)),
            lr=cfg.lr if p.lr is None else p.lr,
            betas=p.betas or cfg.betas,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            fused=fused,
        )
        for p in phases
    }


def step_module(model: nn.Module, current: CurrentPhase, dd: distributed.Dist, device: torch.device) -> nn.Module:
    """A callable (x, step) -> (value, terms) running the current phase; DDP-wrapped under torchrun, where each
    phase of a game leaves the other players' parameters without gradients."""
    module = distributed.LossModule(model, current)
    if dd.world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=len(current.phases) > 1)


class Budget:
    """The time budget: `max_seconds` on the `budget_clock` (wall, or this process's CPU seconds).  `spent` is the
    fraction used and `over` whether it has run out, as all ranks agree (they average `used()` with each step's
    numbers)."""

    def __init__(self, cfg: TrainConfig):
        self.seconds = cfg.max_seconds
        self.clock = time.perf_counter if cfg.budget_clock == "wall" else time.process_time
        self.start, self.spent, self.over = self.clock(), 0.0, False

    def used(self) -> torch.Tensor:
        used = 0.0 if self.seconds is None else (self.clock() - self.start) / max(self.seconds, 1e-9)
        return torch.tensor([float(used > 1), used])

    def agree(self, mean: torch.Tensor) -> None:
        self.over, self.spent = float(mean[0]) > 0, float(mean[1])


@dataclass
class Run:
    """What the pieces of one `fit` share: the model, its phases and optimisers, and where the run is written."""

    model: nn.Module
    cfg: TrainConfig
    phases: list[Phase]
    opts: dict[str, torch.optim.Optimizer]
    step_fn: Callable[[torch.Tensor, int], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    current: CurrentPhase
    dd: distributed.Dist
    run_dir: Path | None
    state: dict[str, Any]  # the loop's counters (step, epoch, batch, ...), saved in checkpoints
    total: int  # the steps planned
    budget: Budget | None = None  # (both set when training starts)
    log: RunLog | None = None

    @property
    def game(self) -> bool:
        return len(self.phases) > 1


def check_finite(run: Run, value: float, idx: torch.Tensor, phase: Phase) -> bool:
    """The non-finite guard: True for a finite loss; else False (on_nonfinite "skip"), or NonFiniteLossError ("raise")
    with the step and the batch's item indices, also saved in RUN_DIR/nonfinite_batch.json."""
    if math.isfinite(value):
        return True
    if run.cfg.on_nonfinite == "skip":
        return False
    where = None
    if run.run_dir is not None and run.dd.main:
        where = run.run_dir / "nonfinite_batch.json"
        atomic_write_text(
            where,
            json.dumps(
                {
                    "step": run.state["step"],
                    "epoch": run.state["epoch"],
                    "batch_index": idx.tolist(),
                    **({"phase": phase.name} if run.game else {}),
                }
            ),
        )
    raise NonFiniteLossError(run.state["step"], idx.tolist(), str(where) if where else None)


def train_step(run: Run, xb: torch.Tensor, idx: torch.Tensor) -> tuple[float, Row] | None:
    """One step of every phase, in order, on the batch xb (items idx): the loss, the non-finite guard, the gradient
    (clipped to grad_clip), the phase's optimiser step.  Returns the first phase's loss (the run's `loss`) and the
    row to log: terms and lr (a game's as "<phase>/loss", "<phase>/<term>", "<phase>/lr"); None when a non-finite
    loss is skipped (with the rest of the batch's phases)."""
    assert run.budget is not None  # set when training starts
    first: float | None = None
    row: Row = {}
    for i, phase in enumerate(run.phases):
        opt = run.opts[phase.name]
        lr = lr_at(run.cfg, run.state["step"], run.total, phase.lr, run.budget.spent)
        for g in opt.param_groups:
            g["lr"] = lr
        run.current.index = i
        with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=run.cfg.precision == "bfloat16"):
            value_t, terms = run.step_fn(xb, run.state["step"])
        stats = torch.stack([value_t.detach(), *(t.detach() for t in terms.values())]).float().cpu()
        stats = run.dd.mean(torch.cat([stats, run.budget.used()]))  # the ranks agree on the budget too
        run.budget.agree(stats[-2:])
        value = float(stats[0])
        if not check_finite(run, value, idx, phase):
            return None
        run.model.zero_grad(set_to_none=True)  # also drops gradients that reached other players
        value_t.backward()
        if run.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], run.cfg.grad_clip)
        opt.step()
        first = value if first is None else first
        prefix = f"{phase.name}/" if run.game else ""
        if run.game:
            row[prefix + "loss"] = value
        row.update({prefix + k: float(v) for k, v in zip(terms, stats[1:-2])})
        row[prefix + "lr"] = lr
    assert first is not None  # a run has at least one phase
    return first, row


def save_checkpoint(run: Run, name: str = "checkpoint.safetensors") -> None:
    """Weights, {phase: optimiser}, every rank's RNG state and the loop's counters into RUN_DIR/name, the log first."""
    rng = run.dd.gather(torch.get_rng_state())
    if run.run_dir is not None and run.dd.main:
        assert run.log is not None  # set when training starts
        run.log.flush()
        checkpoint.save(run.run_dir / name, run.model, run.opts, rng_states=rng, **run.state)
    run.dd.barrier()


def validate(run: Run, x_val: torch.Tensor) -> float:
    """The first phase's mean loss on the validation items at the end of an epoch: logged, and the best one's
    weights kept in best.safetensors; counts the epochs without improvement (for `patience`)."""
    v = evaluate_loss(run.model, x_val, dd=run.dd, objective=run.phases[0].loss)
    assert run.log is not None  # set when training starts
    run.log.add({"step": run.state["step"], "epoch": run.state["epoch"], "val_loss": v})
    if v < run.state["best_val"]:
        run.state["best_val"], run.state["bad_epochs"] = v, 0
        save_checkpoint(run, "best.safetensors")
    else:
        run.state["bad_epochs"] += 1
    return v


def progress_bar(cfg: TrainConfig, dd: distributed.Dist, total: int, initial: int) -> Any:
    if cfg.progress and dd.main and sys.stderr.isatty() and not os.environ.get("CI"):
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, unit="step", leave=False)
    return None


def split_data(
    model: Any, data: Dataset | torch.Tensor, val_data: Dataset | torch.Tensor | None, cfg: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Training and validation items (val_data, else a val_fraction split of data, else none), shapes checked."""
    x = check_array(data, "training data")
    if tuple(x.shape[1:]) != tuple(model.config.data_shape):
        raise VaekitError(
            f"training data: items have shape {tuple(x.shape[1:])} but the model expects "
            f"data_shape {tuple(model.config.data_shape)}"
        )
    if val_data is not None:
        return x, check_array(val_data, "validation data")
    if cfg.val_fraction > 0:
        tr, va = split(Dataset(x), cfg.val_fraction, seed=cfg.seed)
        return tr.x, va.x
    return x, None


def prepare(
    model: nn.Module,
    cfg: TrainConfig,
    run_dir: str | os.PathLike[str] | None,
    resume: bool,
    overwrite: bool,
    dd: distributed.Dist,
) -> tuple[Path | None, bool, torch.device]:
    """Everything that can fail at the start fails here, before the run directory is written: the run directory
    checked (a torchrun restart resumes), the model moved to its device.  Returns (run_dir, resume, device)."""
    folder = None if run_dir is None else Path(run_dir)
    if folder is not None:
        if distributed.restart_count() > 0:  # torchrun restarted us: continue, or start again
            resume = (folder / "checkpoint.safetensors").is_file()
            overwrite = not resume
        check_run_dir(folder, model, resume=resume, overwrite=overwrite)
    try:
        device = pick_device(cfg.device, dd)
        model.to(device).train()
    except (RuntimeError, AssertionError, ValueError) as e:
        raise VaekitError(
            f"train config field device: cannot train on {cfg.device!r} "
            f"({(str(e).splitlines() or [type(e).__name__])[0][:120]})"
        ) from None
    return folder, resume, device


def fit(
    model: Any,
    data: Dataset | torch.Tensor,
    config: TrainConfig | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    val_data: Dataset | torch.Tensor | None = None,
    meta: dict[str, Any] | None = None,
    objective: Callable[[Any, torch.Tensor, int], Loss] | Sequence[Phase] | None = None,
    on_step: Callable[[int, Row], None] | None = None,
) -> History:
    """Train `model` on `data` (a Dataset or tensor `(N, *shape)`); returns the History.

    The loss is `objective(model, x, step) -> Loss` when given (e.g.
    `lambda m, x, s: bounds.iwae_bound(m, x, k=50)`), else the model's own `model.loss(x, step)`.
    `objective` may also be a sequence of `Phase`s (a game; the model's own `phases()` when it has
    them), run in order on every batch, each with its own optimiser; then `loss` in the logs and the
    History is the first phase's, validation uses the first phase, and every phase's value and terms
    are logged as "<phase>/loss", "<phase>/<term>".

    `on_step(step, row)` is called after every step with the row logged for it: "loss", the terms, "lr" and
    "cpu_seconds" (this process's CPU seconds since the run began, counted on across a resume; also in log.csv
    and History.clock).

    With `run_dir`, writes config.json, log.csv, tb/, checkpoint.safetensors (latest) and
    best.safetensors (best validation loss, when there is a validation split). `meta` (JSON-able,
    e.g. where the data came from) is stored in config.json under "data". The directory appears
    only when training starts, already holding config.json and a step-0 checkpoint (see
    `init_run_dir`): a start that fails writes nothing.

    Under torchrun every process calls fit; a restarted worker group (torchrun --max-restarts)
    resumes from the last checkpoint by itself.
    """
    cfg = config or TrainConfig()
    x, x_val = split_data(model, data, val_data, cfg)
    dd = distributed.setup()
    run_path, resume, device = prepare(model, cfg, run_dir, resume, overwrite, dd)
    torch.manual_seed(cfg.seed + 7919 * dd.rank)  # ranks draw independent noise
    phases = resolve_phases(model, objective)
    current = CurrentPhase(phases)
    x, x_val = x.to(device), None if x_val is None else x_val.to(device)
    # a model of sequences says how long each item is; its batches are then length buckets
    lengths = model.item_lengths(x).cpu() if callable(getattr(model, "item_lengths", None)) else None
    steps = cfg.epochs * math.ceil(len(x) / cfg.batch_size)
    state: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch": 0,
        "best_val": math.inf,
        "bad_epochs": 0,
        "skipped": 0,
        "cpu_seconds": 0.0,
    }
    run = Run(
        model,
        cfg,
        phases,
        make_optimisers(model, phases, cfg, device),
        step_module(model, current, dd, device),
        current,
        dd,
        run_path,
        state,
        steps if cfg.max_steps is None else min(steps, cfg.max_steps),
    )
    if resume:
        if run_path is None:
            raise VaekitError("resume=True needs the run directory to resume (run_dir)")
        state.update(checkpoint.restore(run_path / "checkpoint.safetensors", model, run.opts, rng=True, rank=dd.rank))
    if run_path is not None:  # training starts: the run directory appears, with a step-0 checkpoint if new
        rng = dd.gather(torch.get_rng_state())  # (every rank has checked the directory by now)
        if dd.main:
            init_run_dir(
                run_path,
                model,
                cfg,
                resume=resume,
                meta=meta,
                start=lambda folder: checkpoint.save(
                    folder / "checkpoint.safetensors", model, run.opts, rng_states=rng, **state
                ),
            )
        dd.barrier()
    run.log = log = RunLog(run_path if dd.main else None, state["step"] if resume else None, cfg.tensorboard)
    hist, bar = History(), progress_bar(cfg, dd, run.total, state["step"])
    t0, cpu0 = time.perf_counter(), time.process_time()
    cpu_start = cpu0 - state["cpu_seconds"]  # CPU seconds count on from the checkpoint's
    run.budget = Budget(cfg)
    max_steps = math.inf if cfg.max_steps is None else cfg.max_steps
    try:
        while state["epoch"] < cfg.epochs and state["step"] < max_steps:
            batches = epoch_batches(len(x), cfg.batch_size, cfg.seed, state["epoch"], lengths)
            while state["batch"] < len(batches):
                idx, state["batch"] = batches[state["batch"]], state["batch"] + 1
                xb = x[dd.shard(idx).to(device)]
                out = train_step(run, torch.bernoulli(xb) if cfg.binarize else xb, idx)
                if out is None:
                    state["skipped"] += 1
                    continue
                loss, row = out
                cpu = state["cpu_seconds"] = time.process_time() - cpu_start
                state["step"] += 1
                row = {"step": state["step"], "epoch": state["epoch"], "loss": loss, **row, "cpu_seconds": cpu}
                hist.record(row)
                log.add(row)
                if on_step is not None:
                    on_step(state["step"], dict(row))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    save_checkpoint(run)
                if run.budget.over or state["step"] >= max_steps:
                    break
            if state["batch"] < len(batches):  # stopped by max_steps or max_seconds inside the epoch
                hist.stopped = "max_seconds" if run.budget.over else "max_steps"
                if x_val is not None:  # the last weights compete for best.safetensors too, not an epoch behind
                    hist.val.append(validate(run, x_val))
                save_checkpoint(run)
                break
            state["epoch"], state["batch"] = state["epoch"] + 1, 0
            if x_val is not None:
                hist.val.append(validate(run, x_val))
            save_checkpoint(run)
            if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
                hist.stopped = "early_stopping"
                break
            if run.budget.over:
                hist.stopped = "max_seconds"
                break
        else:
            if state["step"] >= max_steps:
                hist.stopped = "max_steps"
    finally:
        if bar is not None:
            bar.close()
        log.close()
    dd.barrier()  # every rank is done writing and reading
    if x_val is not None and run_path is not None and (run_path / "best.safetensors").is_file():
        checkpoint.restore(run_path / "best.safetensors", model)
    hist.seconds, hist.cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    model.eval()
    return hist
