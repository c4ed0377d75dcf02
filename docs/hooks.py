"""Pages of the site made from the repository while it is built (an MkDocs hook, named in mkdocs.yml).

* Tutorials: every notebooks/NN_*.py is a page of the same name, which mkdocs-jupyter executes and renders.
* Reports: every committed reports/NAME/results.json becomes reports/NAME/index.md, with its table, notes and
  figures (the PNGs themselves are served from reports/NAME/); reports/index.md lists them.
* Command line: cli.md, the `--help` of `vaekit` and of each sub-command, from vaekit.cli's parser.

Nothing here holds a number, a report name or an option: all of it is read from the files, so a report rerun
or a new flag shows up on the next build. A figure listed in results.json but missing is a warning, which
the strict build turns into a failure.
"""
from __future__ import annotations

import argparse
import ast
import html
import json
import logging
import os
import re
import sys
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("mkdocs.hooks.vaekit")

# argparse wraps help text to the terminal's width; a fixed one keeps the page the same on every machine
HELP_COLUMNS = "88"


# ---------------------------------------------------------------------------------------------- what exists
def tutorials() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9]*.py"))


def report_dirs() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "reports").glob("*/results.json"))


def tutorial_title(path: Path) -> str:
    """The notebook's first Markdown heading (`# # Title` in the percent format), numbered as its file."""
    match = re.search(r"^# # (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    number = path.name.split("_", 1)[0].lstrip("0")
    return f"{number}. {match.group(1).strip() if match else path.stem}"


# -------------------------------------------------------------------------------------------------- config
def on_config(config):
    # The tutorials' quick mode (each well under a minute on 2 cores) unless the caller asked otherwise, and
    # the inline backend, so that their figures land in the page whatever MPLBACKEND the shell has.
    os.environ.setdefault("QUICK", "1")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # document this checkout, installed or not: here, and in the kernels that execute the tutorials
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT / "src")]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *paths])

    generated = {
        "Tutorials": [{tutorial_title(p): f"notebooks/{p.name}"} for p in tutorials()],
        "Reports": ["reports/index.md"] + [{d.name: f"reports/{d.name}/index.md"} for d in report_dirs()],
    }
    for entry in config["nav"] or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if value == "GENERATED":
                    if key not in generated:
                        raise ValueError(f"mkdocs.yml: nothing generates the nav section {key!r}")
                    entry[key] = generated[key]
    return config


# --------------------------------------------------------------------------------------------------- files
@event_priority(100)       # before mkdocs-jupyter looks for notebooks among the files
def on_files(files: Files, config) -> Files:
    for path in tutorials():
        # served as notebooks/NN_*.py, as in the repository; a plain File (not a generated one), which is what
        # mkdocs-jupyter's wrapper of notebook files reads from
        files.append(File(f"notebooks/{path.name}", src_dir=str(ROOT), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    rows = []
    for folder in report_dirs():
        result = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        page, figures = report_page(folder, result)
        files.append(File.generated(config, f"reports/{folder.name}/index.md", content=page))
        for name in figures:
            files.append(File.generated(config, f"reports/{folder.name}/{name}", abs_src_path=str(folder / name)))
        rows.append((folder.name, result))
    files.append(File.generated(config, "reports/index.md", content=reports_index(rows)))
    files.append(File.generated(config, "cli.md", content=cli_page()))
    return files


# ------------------------------------------------------------------------------------------------- reports
def number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"


def report_summary(name: str) -> str:
    """The first paragraph of the report module's docstring (src/vaekit/reports/NAME.py), as Markdown."""
    source = ROOT / "src" / "vaekit" / "reports" / f"{name}.py"
    if not source.is_file():
        return ""
    doc = ast.get_docstring(ast.parse(source.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def figure_captions(folder: Path) -> dict[str, str]:
    """Captions as the report wrote them into its own index.html (the alt text of each figure)."""
    page = folder / "index.html"
    if not page.is_file():
        return {}
    found = re.findall(r'<img src="([^"]+)" alt="([^"]*)"', page.read_text(encoding="utf-8"))
    return {html.unescape(src): html.unescape(alt) for src, alt in found}


def rows_table(rows: list[dict]) -> str:
    """The rows as an HTML table (a cell's text is escaped, never read as Markdown); each row's citation and
    note, often a paragraph long, go in a numbered list under it, so that the columns stay readable."""
    head = ["", "data", "metric", "paper", "ours", "target", "seconds"]
    lines = ['<div class="report-rows" markdown="0">', "<table>",
             "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>", "<tbody>"]
    notes = []
    for i, r in enumerate(rows, 1):
        met = {True: " ✓", False: " ✗"}.get(r.get("met"), "")
        cells = [str(i), r.get("data", ""), r.get("metric", ""), number(r.get("paper")), number(r.get("ours")),
                 (str(r.get("target") or "") + met).strip(), number(r.get("seconds"))]
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        text = "; ".join(t for t in (r.get("citation"), r.get("note")) if t)
        if text:
            notes.append(f"<li value=\"{i}\">{html.escape(text)}</li>")
    lines += ["</tbody>", "</table>"]
    if notes:
        lines += ["<p>Per row (citation; how the number was made):</p>", "<ol>", *notes, "</ol>"]
    lines.append("</div>")
    return "\n".join(lines)


def report_page(folder: Path, result: dict) -> tuple[str, list[str]]:
    name = result.get("report", folder.name)
    minutes = (result.get("seconds") or 0) / 60
    out = [f"# Report: {folder.name}", ""]
    summary = report_summary(name)
    if summary:
        out += [summary, ""]
    out += [f"Made by `{result.get('command', '')}` in {minutes:.1f} min of wall time"
            f"{' (quick mode: subsets)' if result.get('quick') else ''}; Python {result.get('python', '?')} on "
            f"{result.get('machine', '?')}. The numbers below are read from the committed "
            f"`reports/{folder.name}/results.json`; the paper's protocol is in the docstring of "
            f"`vaekit.reports.{name}`.", "", rows_table(result.get("rows", [])), ""]
    notes = {k: v for k, v in result.items() if isinstance(v, str) and " " in v.strip()
             and k not in ("report", "command", "python", "machine")}   # prose the report added, as its page shows
    for key, text in notes.items():
        out += [f"## {key.replace('_', ' ').capitalize()}", "", html.escape(text), ""]
    figures, captions = [], figure_captions(folder)
    if result.get("figures"):
        out += ["## Figures", ""]
    for fig in result.get("figures", []):
        if not (folder / fig).is_file():
            log.warning("reports/%s/results.json lists the figure %s, which is not in the folder", folder.name, fig)
            continue
        figures.append(fig)
        caption = captions.get(fig, "")
        out += [f'<figure markdown="span">', f"  ![{html.escape(caption or fig)}]({fig})",
                f"  <figcaption>{html.escape(caption)}</figcaption>" if caption else "", "</figure>", ""]
    return "\n".join(out), figures


def reports_index(rows: list[tuple[str, dict]]) -> str:
    out = ["# Reports", "",
           "Each report reproduces a paper (or a lecture's example) with the kit and prints our numbers beside "
           "the paper's: `vaekit report NAME` writes `reports/NAME/results.json`, an offline `index.html` and "
           "the figures. The folders committed under `reports/` are shown here, one page each; "
           "`vaekit report --list` names every report.", "",
           "| folder | command | rows | wall time |", "|---|---|---|---|"]
    for folder, result in rows:
        command = str(result.get("command", "")).replace("|", "\\|")
        out.append(f"| [{folder}]({folder}/index.md) | `{command}` | {len(result.get('rows', []))} "
                   f"| {(result.get('seconds') or 0) / 60:.1f} min |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------- CLI
def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command, in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            found += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return found


def cli_page() -> str:
    from vaekit.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser = build_parser()
        out = ["# Command line", "",
               "`vaekit COMMAND --help` prints each of these; this page is made from the same parser "
               "(`vaekit.cli.build_parser`) when the site is built. Every command takes a run directory; "
               "errors you can fix are one line, `vaekit: error: ...`, with exit status 2.", "",
               "```text", parser.format_help().rstrip(), "```", ""]
        todo = [(f"vaekit {name}", text, sub) for name, text, sub in subcommands(parser)]
        while todo:
            title, text, sub = todo.pop(0)
            out += [f"## `{title}`", "", (text[:1].upper() + text[1:] + ".") if text else "", "",
                    "```text", sub.format_help().rstrip(), "```", ""]
            todo[:0] = [(f"{title} {name}", t, s) for name, t, s in subcommands(sub)]
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return "\n".join(out)
