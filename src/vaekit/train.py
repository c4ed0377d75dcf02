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
step, then generator step).  A plain objective is one phase over all the parameters.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import checkpoint, distributed
from .bounds import seeded
from .data.core import Dataset, check_array, split
from .errors import NonFiniteLossError, VaekitError
from .models import config_dict
from .objective import Phase


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"        # "constant" | "cosine" | "step" (x0.1 at 50 % and 75 %), over the run:
                                          # its steps, or its max_seconds where the time budget ends it first
    lr_final: float = 0.0                 # cosine: learning rate at the run's end
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float | None = None        # max gradient norm
    seed: int = 0
    val_fraction: float = 0.0             # held out from the training data for early stopping
    patience: int | None = None           # epochs without validation improvement before stopping
    binarize: bool = False                # dynamic binarization: x ~ Bernoulli(pixel) every batch
    on_nonfinite: str = "raise"           # "raise" (stop, save the batch index) or "skip"
    checkpoint_every: int = 0             # steps between checkpoints; 0 = end of every epoch only
    max_steps: int | None = None
    max_seconds: float | None = None      # a training-time budget (checked after every step)
    budget_clock: str = "wall"            # max_seconds counts "wall" seconds or this process's "cpu" seconds
    device: str = "auto"
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.budget_clock not in ("wall", "cpu"):
            raise VaekitError(f"train config field budget_clock must be wall or cpu, got {self.budget_clock!r}")
        if self.lr_schedule not in ("constant", "cosine", "step"):
            raise VaekitError(f"train config field lr_schedule must be constant, cosine or step, got {self.lr_schedule!r}")
        if self.on_nonfinite not in ("raise", "skip"):
            raise VaekitError(f"train config field on_nonfinite must be 'raise' or 'skip', got {self.on_nonfinite!r}")
        for name, (ok, want) in _RULES.items():       # before anything is read or written
            value = getattr(self, name)
            if not ok(value):
                raise VaekitError(f"train config field {name} must be {want}, got {value!r}")


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


_RULES = {      # TrainConfig field: (test, what it must be)
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


def resolve_phases(model, objective=None) -> list[Phase]:
    """The phases `fit` runs: `objective` (a function, or a sequence of Phases), else `model.phases()`
    when the model defines it, else one phase of `model.loss`."""
    if objective is None and callable(getattr(model, "phases", None)):
        objective = model.phases()
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

    def __call__(self, model, x, step):
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


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, lengths: torch.Tensor | None = None,
                  pool: int = 50) -> list[torch.Tensor]:
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
    terms: dict[str, list[float]] = dataclasses.field(default_factory=dict)   # logged terms, one per step
    stopped: str = "completed"
    seconds: float = 0.0                  # wall seconds
    cpu_seconds: float = 0.0              # CPU seconds of this process (all its threads)


@torch.no_grad()
def evaluate_loss(model, x: torch.Tensor, batch_size: int = 1000, seed: int = 1234, dd=None, objective=None) -> float:
    """Mean training loss over x (`objective`, else model.loss; each rank takes a share and the sums
    are reduced), with its own fixed noise so the training RNG stream is untouched."""
    dd = dd or distributed.Dist()
    was = model.training
    model.eval()
    mine = x[dd.rank::dd.world]
    with seeded(seed + dd.rank):
        loss = model.loss if objective is None else (lambda xb: objective(model, xb, 0))
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
        self.rows: list[dict] = []
        self.tb = None
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

                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_step)
            except ImportError:
                self.tb = None

    def add(self, row: dict) -> None:
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
        checkpoint.atomic_write_text(self.path, text.getvalue())     # via .log.csv.*.tmp, swept when left behind
        if self.tb is not None:
            self.tb.flush()


RUN_FILES = ("checkpoint.safetensors", "best.safetensors", "config.json", "log.csv", "training.json",
             "metrics.json", "nonfinite_batch.json")      # what a run writes (and tb/); overwrite removes them


def show(value) -> str:
    """A config value as an error message shows it: tuples and lists as (32,), the rest as str()."""
    return repr(tuple(value)) if isinstance(value, (list, tuple)) else str(value)


def model_difference(saved: dict, model_cfg: dict) -> str | None:
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
    return f"holds a {model_cfg['model']} with {diff[0]} {show(a.get(diff[0]))}, this model has {show(b.get(diff[0]))}{more}"


def _never_started(run_dir: Path) -> bool:
    """A folder left by a start that failed before training began (older versions wrote config.json, log.csv and tb/
    first): no checkpoint, and nothing but those."""
    return not (run_dir / "checkpoint.safetensors").exists() and all(
        p.name in ("config.json", "log.csv", "tb") or p.name.endswith(".tmp") for p in run_dir.iterdir())


def check_run_dir(run_dir, model, *, resume: bool, overwrite: bool) -> None:
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
                raise VaekitError(f"{cfg_file}: the run directory {diff}; resume it with its own model, or choose "
                                  "another run directory")
    elif run_dir.exists() and any(run_dir.iterdir()) and not overwrite and not _never_started(run_dir):
        raise VaekitError(f"{run_dir}: run directory is not empty; pass overwrite=True (--overwrite) or resume=True (--resume)")


def _sweep(folder: Path) -> None:
    """Remove the temporary files of a writer killed mid-write (they all match .*.tmp)."""
    for stale in folder.glob(".*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def init_run_dir(run_dir, model, train_cfg: TrainConfig, *, resume: bool, meta: dict | None = None,
                 start: Callable[[Path], None] | None = None) -> Path:
    """Make `run_dir` a run directory: config.json (the model's config, `train_cfg` and `meta` as "data") and,
    for a new run, whatever `start(folder)` writes into it (`fit`: the step-0 checkpoint).

    A new run is written into a hidden sibling folder (.NAME.PID.tmp) and renamed into place, so the run
    directory appears complete, with a checkpoint to resume from, or not at all.  In a folder that exists already
    the files are written in place, a run it replaces (overwrite) losing its files first (RUN_FILES and tb/; other
    files stay); there a start killed between config.json and the checkpoint leaves no run (see check_run_dir).  Resuming rewrites config.json, keeping its
    "data" when `meta` is None.  Temporary files of a writer killed mid-write are swept."""
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
    for p in where.parent.iterdir():                       # left by a start killed before its rename
        if stale.fullmatch(p.name):
            shutil.rmtree(p, ignore_errors=True)
    if run_dir.is_dir():                  # a folder that exists already (maybe the cwd) is written in place
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)       # the checkpoint first: the old run is no longer resumable
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


def _write_config(folder: Path, model, train_cfg: TrainConfig, meta: dict | None) -> None:
    checkpoint.atomic_write_text(folder / "config.json", json.dumps(
        {"model": config_dict(model), "train": dataclasses.asdict(train_cfg), "data": meta or {}}, indent=2))


def fit(model, data, config: TrainConfig | None = None, run_dir=None, *, resume: bool = False,
        overwrite: bool = False, val_data=None, meta: dict | None = None, objective=None) -> History:
    """Train `model` on `data` (a Dataset or tensor (N, *shape)); returns the History.

    The loss is `objective(model, x, step) -> bounds.Loss` when given (e.g.
    `lambda m, x, s: bounds.iwae_bound(m, x, k=50)`), else the model's own `model.loss(x, step)`.
    `objective` may also be a sequence of `Phase`s (a game; the model's own `phases()` when it has
    them), run in order on every batch, each with its own optimiser; then `loss` in the logs and the
    History is the first phase's, validation uses the first phase, and every phase's value and terms
    are logged as "<phase>/loss", "<phase>/<term>".

    With `run_dir`, writes config.json, log.csv, tb/, checkpoint.safetensors (latest) and
    best.safetensors (best validation loss, when there is a validation split). `meta` (JSON-able,
    e.g. where the data came from) is stored in config.json under "data". The directory appears
    only when training starts, already holding config.json and a step-0 checkpoint (see
    `init_run_dir`): a start that fails writes nothing.

    Under torchrun every process calls fit; a restarted worker group (torchrun --max-restarts)
    resumes from the last checkpoint by itself.
    """
    cfg = config or TrainConfig()
    x = check_array(data, "training data")
    if tuple(x.shape[1:]) != tuple(model.config.data_shape):
        raise VaekitError(f"training data: items have shape {tuple(x.shape[1:])} but the model expects "
                          f"data_shape {tuple(model.config.data_shape)}")
    if val_data is not None:
        x_val = check_array(val_data, "validation data")
    elif cfg.val_fraction > 0:
        tr, va = split(Dataset(x), cfg.val_fraction, seed=cfg.seed)
        x, x_val = tr.x, va.x
    else:
        x_val = None

    dd = distributed.setup()
    if run_dir is not None:
        run_dir = Path(run_dir)
        if distributed.restart_count() > 0:       # torchrun restarted us: continue, or start again
            resume = (run_dir / "checkpoint.safetensors").is_file()
            overwrite = not resume
        check_run_dir(run_dir, model, resume=resume, overwrite=overwrite)
    # everything that can fail at the start fails here, before the run directory is written
    try:
        device = pick_device(cfg.device, dd)
        model.to(device).train()
    except (RuntimeError, AssertionError, ValueError) as e:
        raise VaekitError(f"train config field device: cannot train on {cfg.device!r} "
                          f"({(str(e).splitlines() or [type(e).__name__])[0][:120]})") from None
    torch.manual_seed(cfg.seed + 7919 * dd.rank)       # ranks draw independent noise
    phases = resolve_phases(model, objective)
    game = len(phases) > 1
    current = CurrentPhase(phases)
    if game and dd.world > 1:     # each phase leaves the other players' parameters without gradients
        ids = [device.index] if device.type == "cuda" else None
        step_fn = nn.parallel.DistributedDataParallel(distributed.LossModule(model, current), device_ids=ids,
                                                      find_unused_parameters=True)
    else:
        step_fn = distributed.wrap(model, dd, device, current if game else objective)
    x = x.to(device)
    x_val = None if x_val is None else x_val.to(device)
    params = [list(model.parameters() if p.parameters is None else p.parameters(model)) for p in phases]
    fused = device.type in ("cpu", "cuda")      # one kernel per step instead of one per parameter and op
    opts = [torch.optim.Adam(ps, lr=cfg.lr if p.lr is None else p.lr, betas=p.betas or cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, fused=fused) for p, ps in zip(phases, params)]
    opt = dict(zip((p.name for p in phases), opts)) if game else opts[0]   # what checkpoints hold

    # a model of sequences says how long each item is; its batches are then length buckets
    lengths = model.item_lengths(x).cpu() if callable(getattr(model, "item_lengths", None)) else None
    n_batches = math.ceil(len(x) / cfg.batch_size)
    total = cfg.epochs * n_batches if cfg.max_steps is None else min(cfg.epochs * n_batches, cfg.max_steps)
    state = {"step": 0, "epoch": 0, "batch": 0, "best_val": math.inf, "bad_epochs": 0, "skipped": 0}
    if resume:
        state.update(checkpoint.restore(run_dir / "checkpoint.safetensors", model, opt, rng=True, rank=dd.rank))
    if run_dir is not None:        # training starts: the run directory appears, with a step-0 checkpoint if new
        rng = dd.gather(torch.get_rng_state())        # (every rank has checked the directory by now)

        def initial_checkpoint(folder):
            checkpoint.save(folder / "checkpoint.safetensors", model, opt, rng_states=rng, **state)

        if dd.main:
            init_run_dir(run_dir, model, cfg, resume=resume, meta=meta, start=initial_checkpoint)
        dd.barrier()
    log = RunLog(run_dir if dd.main else None, state["step"] if resume else None, cfg.tensorboard)
    hist = History()
    t0, cpu0 = time.perf_counter(), time.process_time()
    clock, start = (time.perf_counter, t0) if cfg.budget_clock == "wall" else (time.process_time, cpu0)

    def save(name="checkpoint.safetensors"):
        rng = dd.gather(torch.get_rng_state())
        if run_dir is not None and dd.main:
            log.flush()
            checkpoint.save(run_dir / name, model, opt, rng_states=rng, **state)
        dd.barrier()

    bar = None
    if cfg.progress and dd.main and sys.stderr.isatty() and not os.environ.get("CI"):
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=state["step"], unit="step", leave=False)
    try:
        out_of_time, spent = False, 0.0   # spent: the fraction of max_seconds used, agreed by all ranks
        while state["epoch"] < cfg.epochs and (cfg.max_steps is None or state["step"] < cfg.max_steps):
            batches = epoch_batches(len(x), cfg.batch_size, cfg.seed, state["epoch"], lengths)
            while state["batch"] < len(batches):
                idx = batches[state["batch"]]
                xb = x[dd.shard(idx).to(device)]
                if cfg.binarize:
                    xb = torch.bernoulli(xb)
                state["batch"] += 1
                row, skip = {}, False
                for i, (phase, ps, o) in enumerate(zip(phases, params, opts)):
                    lr = lr_at(cfg, state["step"], total, phase.lr, spent)
                    for g in o.param_groups:
                        g["lr"] = lr
                    current.index = i
                    value_t, terms = step_fn(xb, state["step"])
                    names = list(terms)
                    used = 0.0 if cfg.max_seconds is None else (clock() - start) / max(cfg.max_seconds, 1e-9)
                    stats = torch.stack([value_t.detach(), *(terms[k].detach() for k in names)]).float().cpu()
                    stats = dd.mean(torch.cat([stats, torch.tensor([float(used > 1), used])]))   # ranks agree on the budget
                    out_of_time, spent = float(stats[-2]) > 0, float(stats[-1])
                    value = float(stats[0])
                    if not math.isfinite(value):
                        if cfg.on_nonfinite == "raise":
                            where = None
                            if run_dir is not None and dd.main:
                                where = run_dir / "nonfinite_batch.json"
                                checkpoint.atomic_write_text(where, json.dumps(
                                    {"step": state["step"], "epoch": state["epoch"], "batch_index": idx.tolist(),
                                     **({"phase": phase.name} if game else {})}))
                            raise NonFiniteLossError(state["step"], idx.tolist(), str(where) if where else None)
                        skip = True            # the rest of this batch's phases are skipped too
                        break
                    model.zero_grad(set_to_none=True)    # also drops gradients that reached other players
                    value_t.backward()
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(ps, cfg.grad_clip)
                    o.step()
                    if i == 0:
                        first = value
                    prefix = f"{phase.name}/" if game else ""
                    if game:
                        row[prefix + "loss"] = value
                    row.update({prefix + k: float(v) for k, v in zip(names, stats[1:-2])})
                    row[prefix + "lr"] = lr
                if skip:
                    state["skipped"] += 1
                    continue
                value = first                     # the first phase's value is the run's `loss`
                state["step"] += 1
                hist.steps.append(state["step"])
                hist.loss.append(value)
                for k, v in row.items():
                    hist.terms.setdefault(k, []).append(v)
                log.add({"step": state["step"], "epoch": state["epoch"], "loss": value, **row})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.3f}", refresh=False)
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0:
                    save()
                if out_of_time or (cfg.max_steps is not None and state["step"] >= cfg.max_steps):
                    break
            if state["batch"] < len(batches):   # stopped by max_steps or max_seconds inside the epoch
                hist.stopped = "max_seconds" if out_of_time else "max_steps"
                save()
                break
            state["epoch"] += 1
            state["batch"] = 0
            if x_val is not None:
                v = evaluate_loss(model, x_val, dd=dd, objective=phases[0].loss if game else objective)
                hist.val.append(v)
                log.add({"step": state["step"], "epoch": state["epoch"], "val_loss": v})
                if v < state["best_val"]:
                    state["best_val"], state["bad_epochs"] = v, 0
                    save("best.safetensors")
                else:
                    state["bad_epochs"] += 1
            save()
            if cfg.patience is not None and state["bad_epochs"] >= cfg.patience:
                hist.stopped = "early_stopping"
                break
            if out_of_time:
                hist.stopped = "max_seconds"
                break
        else:
            if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
                hist.stopped = "max_steps"
    finally:
        if bar is not None:
            bar.close()
        log.flush()
        if log.tb is not None:
            log.tb.close()
    dd.barrier()                                       # every rank is done writing and reading
    if x_val is not None and run_dir is not None and (run_dir / "best.safetensors").is_file():
        checkpoint.restore(run_dir / "best.safetensors", model)
    hist.seconds, hist.cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    model.eval()
    return hist
