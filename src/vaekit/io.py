"""Files the kit writes: atomically, and disk caches of things it computed (leaf module).

An atomic write goes to a temporary file `.NAME.<random>.tmp` in the same folder, which is synced and
renamed over NAME only once it is complete; on any error it is removed and the old NAME is left as it
was. A writer killed mid-write leaves only a `.*.tmp` file, which the run folder's sweep removes.

A disk cache is one file per key, read back with `cached`; a file that cannot be read (truncated,
corrupt, from an older version) is computed again and replaced. Cache files are .npz (read with
allow_pickle=False), JSON, text or safetensors: nothing is ever unpickled. Processes that want the same
entry at once take turns (an advisory lock on `.NAME.lock` beside it): the first computes it, the others
wait and read it, instead of all computing it and racing on its scratch files.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .errors import VaekitError

T = TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import: os.umask can only be read by setting it, which races with other threads


@contextmanager
def atomic_write(path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; once the block ends without error it is
    synced, given the usual permissions (0666 less the umask) and renamed over `path`."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp creates files 0600
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_npz(path, arrays: dict, compressed: bool = False) -> None:
    """Write `arrays` to the .npz file `path` atomically."""
    import numpy as np

    with atomic_write(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no suffix
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def load_npz(path, keys=None) -> dict:
    """The arrays of an .npz file (only `keys` when given: KeyError if one is missing), never unpickled."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in (z.files if keys is None else keys)}


def save_figure(fig, path, **savefig_options) -> Path:
    """Save a matplotlib figure atomically (its format from the suffix of `path`) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lower()[1:], **savefig_options)
    plt.close(fig)
    return path


# what reading a damaged or stale cache file raises
UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, VaekitError)


def cached(
    path, compute: Callable[[], T], save: Callable[[Path, T], None], load: Callable[[Path], T], use: bool = True
) -> T:
    """`load(path)` when that file is there and readable, else `compute()`, saved with `save(path, value)`
    (an atomic writer such as `save_npz`). With use=False the cache is neither read nor written.

    A file `load` cannot read (it raises one of UNREADABLE) is computed again and replaced; a folder
    that cannot be written only costs the cache."""
    path = Path(path)
    if not use:
        return compute()
    with _turn(path):
        if path.is_file():
            try:
                return load(path)
            except UNREADABLE:
                pass
        value = compute()
        try:
            save(path, value)
        except OSError:
            pass
        return value


@contextmanager
def _turn(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `.NAME.lock` beside `path`, waiting while another process holds it;
    the holder removes the lock file before it lets go, so none is left behind.  Without a lock (a folder that
    cannot be written, a system without flock) go on unlocked."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.parent / f".{path.name}.lock"
        while True:
            f = open(lock, "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX)
                if os.stat(lock).st_ino == os.fstat(f.fileno()).st_ino:
                    break  # the lock file is still the one in the folder: ours
            except FileNotFoundError:
                pass  # its holder removed it while we waited: take the next one
            except OSError:
                f.close()
                raise
            f.close()
    except (ImportError, OSError):
        yield
        return
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        f.close()  # releases the lock
