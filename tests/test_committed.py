"""What is committed beside the code (benchmark results, reports, models' provenance) must not carry the paths of
the machine that made it: they mean nothing on a reader's machine and leak where a run happened."""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMITTED = sorted(
    p for pattern in ("bench/results/*.json", "reports/*/results.json", "models/*/*.json") for p in REPO.glob(pattern)
)
# first components of absolute paths on the machines such files come from
MACHINE_ROOTS = {"home", "root", "tmp", "work", "Users", "mnt", "var", "opt", "srv", "private", "scratch"}


def machine_paths(value, where: str = ""):
    """(where, string) of every string in a JSON value that is an absolute path under MACHINE_ROOTS."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from machine_paths(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from machine_paths(v, f"{where}[{i}]")
    elif isinstance(value, str):
        for word in value.replace("=", " ").replace("'", " ").replace('"', " ").split():
            parts = word.split("/")
            if word.startswith("/") and len(parts) > 2 and parts[1] in MACHINE_ROOTS:
                yield where, word


def test_the_scan_finds_a_machine_path():
    found = list(machine_paths({"a": ["x", {"cmd": "vaekit fit /work/main/runs/x --epochs 3"}], "b": "/api/decode"}))
    assert found == [(".a[1].cmd", "/work/main/runs/x")]


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_json_has_no_machine_paths(path):
    found = list(machine_paths(json.loads(path.read_text())))
    assert not found, f"{path.relative_to(REPO)}: machine paths {found[:3]}"


def test_there_are_committed_files_to_check():
    assert len(COMMITTED) >= 10
