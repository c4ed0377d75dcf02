"""Atomic writes and disk caches (vaekit.io)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vaekit.io import atomic_write, atomic_write_text, cached, load_npz, save_npz


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "a.npz"
    save_npz(path, {"x": np.arange(3)})
    with pytest.raises(RuntimeError):
        with atomic_write(path) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".a.npz.") and tmp.name.endswith(".tmp")
            tmp.write_bytes(b"half a file")
            raise RuntimeError("killed")
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]
    np.testing.assert_array_equal(load_npz(path)["x"], np.arange(3))


def test_written_files_get_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def _counting_cache(path, calls):
    def compute():
        calls.append(1)
        return {"x": np.arange(4.0)}

    return cached(path, compute, save_npz, load_npz)


def test_the_cache_computes_once_then_reads(tmp_path):
    calls = []
    path = tmp_path / "sub" / "c.npz"
    first = _counting_cache(path, calls)
    second = _counting_cache(path, calls)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["x"], second["x"])
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.npz"]


SLOW_ENTRY = """
import sys, time
import numpy as np
from vaekit.io import cached, load_npz, save_npz
def compute():
    with open(sys.argv[2], "a") as f:
        f.write("computed\\n")
    time.sleep(1.0)
    return {"x": np.arange(4.0)}
print(cached(sys.argv[1], compute, save_npz, load_npz)["x"].sum())
"""


def test_processes_wanting_one_entry_at_once_compute_it_once(tmp_path):
    """Two processes ask for the same cache entry at the same moment: one computes it, the other waits and
    reads it (they used to both compute it, racing on its scratch files), and no lock file is left."""
    import subprocess
    import sys

    path, log = tmp_path / "c.npz", tmp_path / "log.txt"
    procs = [
        subprocess.Popen([sys.executable, "-c", SLOW_ENTRY, str(path), str(log)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs == ["6.0", "6.0"]
    assert log.read_text() == "computed\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "log.txt"]


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04 truncated"])
def test_a_corrupt_cache_file_is_computed_again(tmp_path, content):
    calls = []
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    np.testing.assert_array_equal(_counting_cache(path, calls)["x"], np.arange(4.0))
    assert len(calls) == 1
    np.testing.assert_array_equal(load_npz(path)["x"], np.arange(4.0))  # and replaced


def test_a_stale_cache_file_missing_a_key_is_computed_again(tmp_path):
    path = tmp_path / "c.npz"
    save_npz(path, {"y": np.zeros(1)})
    calls = []
    out = cached(path, lambda: calls.append(1) or {"x": np.ones(2)}, save_npz, lambda p: load_npz(p, ("x",)))
    assert calls == [1] and out["x"].tolist() == [1.0, 1.0]


def test_an_unwritable_cache_folder_only_costs_the_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the cache folder should be
    out = cached(blocker / "c.npz", lambda: {"x": np.ones(1)}, save_npz, load_npz)
    assert out["x"].tolist() == [1.0]


def test_use_false_neither_reads_nor_writes(tmp_path):
    path = tmp_path / "c.npz"
    cached(path, lambda: {"x": np.ones(1)}, save_npz, load_npz, use=False)
    assert not path.exists()


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    calls = []
    cached(path, lambda: calls.append(1) or {"x": np.ones(1)}, save_npz, load_npz)
    assert calls == [1]
