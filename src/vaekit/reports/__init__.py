"""Reproductions of papers: `vaekit report NAME` runs one and prints our numbers beside the paper's.

A report module registers a function `run(ctx) -> None` with `@report("name")`; it adds rows with
`ctx.row(...)` and figures with `ctx.figure(...)`. `run_report` times it, prints the table, and
writes `results.json` and `index.html` (readable offline) into the report's folder: `reports/NAME`
by default, or the folder given as `out_dir` (`vaekit report NAME --out DIR` writes into DIR itself).
"""

from __future__ import annotations

import html
import importlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import VaekitError
from ..io import atomic_write_text, save_figure

REPORTS: dict[str, Callable[[Context], object]] = {}
MODULES = (
    "hinton2006",
    "rom",
    "digits",
    "frey",
    "fonts",
    "estimators",
    "iwae2015",
    "chemvae",
    "chemrecipes",
    "adversarial",
)


def report(name: str):
    def deco(f):
        REPORTS[name] = f
        return f

    return deco


def available() -> list[str]:
    for m in MODULES:
        try:
            importlib.import_module(f"{__name__}.{m}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{m}":
                raise
    return sorted(REPORTS)


@dataclass
class Row:
    data: str
    metric: str
    ours: float | None
    paper: float | None = None
    citation: str = ""
    seconds: float | None = None
    note: str = ""
    target: str = ""
    met: bool | None = None


@dataclass
class Context:
    """What a report function gets: options, an output folder, and places to put rows and figures."""

    name: str
    out_dir: Path
    quick: bool = False
    data_dir: str | None = None
    seed: int = 0
    options: dict = field(default_factory=dict)
    command: str = ""
    rows: list[Row] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def row(self, data, metric, ours, paper=None, citation="", seconds=None, note="", target="", met=None) -> Row:
        r = Row(
            data,
            metric,
            None if ours is None else float(ours),
            None if paper is None else float(paper),
            citation,
            None if seconds is None else float(seconds),
            note,
            target,
            met,
        )
        self.rows.append(r)
        return r

    def option(self, key: str, default, kind=float):
        """Option `key` (from --option key=value) converted by `kind`, or `default` when not given;
        a value `kind` cannot read is a one-line error naming the option."""
        value = self.options.get(key)
        if value is None:
            return default
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise VaekitError(f"report {self.name}: option {key} must be {kind.__name__}, got {value!r}") from None

    def log(self, message: str) -> None:
        """A progress line, so that a long report is not silent."""
        if not hasattr(self, "_t0"):
            self._t0 = time.perf_counter()
        print(f"[{self.name} {time.perf_counter() - self._t0:7.1f} s] {message}", flush=True)

    def figure(self, fig, filename: str, caption: str = "") -> Path:
        """Save a matplotlib figure into the report folder (atomically) and list it in the HTML page."""
        path = save_figure(fig, self.out_dir / filename, dpi=110, bbox_inches="tight")
        self.figures.append((filename, caption))
        return path


def trained(ctx, tag: str, model_name: str, cfg: dict, data, train_cfg, init=None):
    """Load the model of `runs/report-<tag>` when its model and training configs match, else train it there
    (from the weights of the model `init` when given: a fine-tune, which `tag` must tell apart).

    Returns (model, info): info says whether it was loaded and how long its training took
    (wall seconds, process CPU seconds, steps), kept in the run folder as training.json.
    """
    import torch

    from ..checkpoint import load_model
    from ..models import build, config_dict
    from ..train import fit

    run_dir = Path(ctx.options.get("run_root") or "runs") / f"report-{tag}"
    model = build(model_name, **cfg)
    info_file = run_dir / "training.json"
    recipe = json.loads(json.dumps(asdict(train_cfg)))
    if info_file.is_file() and not ctx.options.get("retrain"):
        try:
            saved, info = load_model(run_dir), json.loads(info_file.read_text())
            if config_dict(saved) == config_dict(model) and info.get("train_config") == recipe:
                return saved, {**info, "loaded": True}
        except (VaekitError, ValueError):
            pass
    # a run stopped before it finished (no training.json yet) goes on from its last checkpoint
    resume = (
        not info_file.is_file() and (run_dir / "checkpoint.safetensors").is_file() and _same_run(run_dir, model, recipe)
    )
    if init is not None and not resume:
        try:
            model.load_state_dict(init.state_dict())
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1].strip()
            raise VaekitError(f"report-{tag}: the model to start from does not fit this one ({first[:200]})") from None
    hist = fit(model, data, train_cfg, run_dir=run_dir, overwrite=not resume, resume=resume)
    info = {
        "seconds": hist.seconds,
        "cpu_seconds": hist.cpu_seconds,
        "steps": len(hist.steps),
        "threads": torch.get_num_threads(),
        "train_config": recipe,
        "resumed": resume,
    }
    atomic_write_text(info_file, json.dumps(info, indent=2))
    return model, {**info, "loaded": False}


def _same_run(run_dir: Path, model, recipe: dict) -> bool:
    """Whether the run folder was started with this model config and training recipe."""
    from ..models import config_dict

    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        saved.get("model", {}).get("config") == json.loads(json.dumps(config_dict(model)))
        and saved.get("train") == recipe
    )


def training_note(info) -> str:
    loaded = f"loaded from {info.get('source', 'runs/')}; " if info["loaded"] else ""
    return f"{loaded}trained {info['steps']} steps in {info['cpu_seconds'] / 60:.1f} CPU-min ({info['threads']} thread)"


def _fmt(v):
    if v is None:
        return "—"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"


def table(rows: list[Row]) -> str:
    head = ["data", "metric", "paper", "ours", "target", "seconds", "note"]
    body = [
        [
            r.data,
            r.metric,
            _fmt(r.paper),
            _fmt(r.ours),
            (r.target + (" ✓" if r.met else " ✗" if r.met is False else "")).strip(),
            _fmt(r.seconds),
            r.note,
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def html_page(ctx: Context, seconds: float) -> str:
    esc = html.escape
    cols = ["data", "metric", "paper", "citation", "ours", "target", "seconds", "note"]
    trs = "".join(
        "<tr>"
        + "".join(
            f"<td>{esc(str(c))}</td>"
            for c in [
                r.data,
                r.metric,
                _fmt(r.paper),
                r.citation,
                _fmt(r.ours),
                (r.target + (" ✓" if r.met else " ✗" if r.met is False else "")).strip(),
                _fmt(r.seconds),
                r.note,
            ]
        )
        + "</tr>"
        for r in ctx.rows
    )
    notes = "".join(
        f"<h2>{esc(k.replace('_', ' '))}</h2><p>{esc(v)}</p>" for k, v in ctx.extra.items() if isinstance(v, str)
    )
    figs = "".join(
        f'<figure><img src="{esc(f)}" alt="{esc(c or f)}"><figcaption>{esc(c)}</figcaption></figure>'
        for f, c in ctx.figures
    )
    quick = " — quick mode (subsets)" if ctx.quick else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>vaekit report: {esc(ctx.name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:left}}img{{max-width:100%}}figure{{margin:1.5em 0}}
code{{background:#f4f4f4;padding:.1em .3em}}</style></head><body>
<h1>vaekit report: {esc(ctx.name)}</h1>
<p>Command: <code>{esc(ctx.command)}</code> — wall time {seconds:.1f} s{quick}</p>
<table><tr>{"".join(f"<th>{c}</th>" for c in cols)}</tr>{trs}</table>
{notes}{figs}</body></html>"""


def run_report(
    name: str, out_root="reports", quick=False, data_dir=None, seed=0, *, out_dir=None, **options
) -> Context:
    """Run report `name` and write its results, page and figures into `out_dir` itself when given,
    else into `out_root`/NAME."""
    names = available()
    if name not in REPORTS:
        raise VaekitError(f"unknown report {name!r}; available: {', '.join(names)}")
    out_dir = Path(out_root) / name if out_dir is None else Path(out_dir)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = ["vaekit", "report", name] + (["--quick"] if quick else [])
    for k, v in options.items():  # the command line that reruns this report
        if v is not None:
            argv += ["--pretrained"] if k == "pretrained" else ["--option", f"{k}={v}"]
    ctx = Context(name, out_dir, quick, data_dir, seed, options, shlex.join(argv))
    t0 = time.perf_counter()
    try:
        REPORTS[name](ctx)
    except BaseException:
        if created and not any(out_dir.iterdir()):  # a report that fails before writing leaves no empty folder
            out_dir.rmdir()
        raise
    seconds = time.perf_counter() - t0
    print(f"\n{name}: {ctx.command}  ({seconds:.1f} s)\n" + table(ctx.rows))
    result = {
        "report": name,
        "command": ctx.command,
        "quick": quick,
        "seconds": seconds,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "rows": [asdict(r) for r in ctx.rows],
        "figures": [f for f, _ in ctx.figures],
        **ctx.extra,
    }
    atomic_write_text(out_dir / "results.json", json.dumps(result, indent=2))
    atomic_write_text(out_dir / "index.html", html_page(ctx, seconds))
    return ctx


def write_index(out_root="reports") -> Path:
    """A page linking every report found under out_root (from their results.json)."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    items = []
    for res in sorted(out_root.glob("*/results.json")):
        try:
            d = json.loads(res.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        items.append(
            f'<li><a href="{html.escape(res.parent.name)}/index.html">'
            f"{html.escape(d.get('report', res.parent.name))}</a>"
            f" — {len(d.get('rows', []))} rows, {d.get('seconds', 0):.0f} s"
            f"{' (quick)' if d.get('quick') else ''}"
            f" — <code>{html.escape(d.get('command', ''))}</code></li>"
        )
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>vaekit reports</title></head>'
        f'<body style="font-family:sans-serif"><h1>vaekit reports</h1><ul>{"".join(items)}</ul></body></html>'
    )
    path = out_root / "index.html"
    atomic_write_text(path, page)
    return path
