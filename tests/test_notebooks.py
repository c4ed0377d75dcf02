"""Every tutorial in notebooks/ (jupytext percent scripts) runs to the end as a plain script in quick mode.

Running them all takes minutes, so that test carries the `tutorials` marker and is left out of the default
run: `python -m pytest -m tutorials` (or `make tutorials`) runs it; CI does.  The two checks of the
machinery itself stay in the default run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))
TIMEOUT = 300  # seconds per tutorial; QUICK=1 asks each for well under a minute on 2 cores


def test_there_are_tutorials():
    assert NOTEBOOKS, "no notebooks/*.py found"


def run_tutorial(path: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run one tutorial as a script, in quick mode with a non-interactive matplotlib backend."""
    env = {**os.environ, "QUICK": "1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    try:
        return subprocess.run(
            [sys.executable, str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} did not finish within {TIMEOUT} s with QUICK=1")


def test_a_failing_tutorial_is_caught(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("# %%\nimport os\nassert os.environ['QUICK'] == '1'\nraise SystemExit(3)\n")
    assert run_tutorial(bad, tmp_path).returncode == 3


@pytest.mark.tutorials
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_tutorial_runs_in_quick_mode(path, tmp_path):
    done = run_tutorial(path, tmp_path)
    assert done.returncode == 0, f"{path.name} exited with {done.returncode}:\n{done.stderr[-4000:]}"
