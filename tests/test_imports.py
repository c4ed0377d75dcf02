"""Dependencies point down: no import cycle among vaekit's modules.

Only module-level imports count (those run when a module is imported); an import inside a function is
the documented way to defer a heavy optional dependency and is not an edge of the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vaekit

ROOT = Path(vaekit.__file__).parent
PACKAGE = "vaekit"


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def top_level_imports(tree: ast.Module):
    """Import nodes run at import time: the module body, including under if/try/with, not inside defs."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.ClassDef):
            todo.extend(node.body)  # a class body runs at import time
        else:
            todo.extend(ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The vaekit modules `name` imports at module level (a package counts as its __init__)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in top_level_imports(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import sub` imports the submodule sub if there is one, else a name of pkg
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        for target in targets:
            # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c: all are edges, except the importer's
            # own enclosing packages, which Python has begun to import before it; but a name taken from an
            # enclosing package's __init__ (`from . import register`) is an edge to it
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in known and mod != name and (i == len(parts) or not name.startswith(mod + ".")):
                    out.add(mod)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported_modules(name, path, known) for name, path in mods.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a -> ... -> a) per strongly connected component with more than one module."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []

    def strongconnect(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in comps:  # a shortest cycle through each module not on one reported yet
        covered: set[str] = set()
        for start in sorted(comp):
            if start not in covered:
                cycles.append(shortest_cycle(graph, comp, start))
                covered.update(cycles[-1])
    return cycles


def shortest_cycle(graph: dict[str, set[str]], comp: set[str], start: str) -> list[str]:
    """start -> ... -> start, by breadth-first search inside the strongly connected component `comp`."""
    parent, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is on no cycle of its component")


def test_find_cycles_reports_a_cycle_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"a"}}) == [["a", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve(tmp_path):
    known = {"vaekit", "vaekit.models", "vaekit.models.gan", "vaekit.models.base", "vaekit.objective"}
    src = tmp_path / "gan.py"
    src.write_text(
        "from ..objective import Phase\nfrom . import base\ndef f():\n    from .. import later\n", encoding="utf-8"
    )
    assert imported_modules("vaekit.models.gan", src, known) == {"vaekit.objective", "vaekit.models.base"}
    src.write_text("from . import register\n", encoding="utf-8")  # a name from the package's own __init__
    assert imported_modules("vaekit.models.gan", src, known) == {"vaekit.models"}


def test_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles among vaekit modules:\n" + "\n".join(" -> ".join(c) for c in cycles)
