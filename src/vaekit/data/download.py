"""Checksum-verified downloads of the public data sets: only when a user asks (`vaekit data fetch`).

Files are fetched over HTTPS from the listed URLs (plain HTTP is allowed only for a loopback
`base_url`, which tests use), written to a temporary file, verified against SHA-256 and then
renamed into place, so a failed or tampered download never leaves a file behind.
"""

from __future__ import annotations

import hashlib
import ipaddress
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import VaekitError
from ..io import atomic_write
from .core import data_root


@dataclass(frozen=True)
class Remote:
    filename: str
    sha256: str
    urls: tuple[str, ...]


def _mnist_like(base_urls, sums):
    return [Remote(f, s, tuple(u + f for u in base_urls)) for f, s in sums.items()]


SOURCES: dict[str, list[Remote]] = {
    "mnist": _mnist_like(
        ("https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    "fashion_mnist": _mnist_like(
        ("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
    "frey": [
        Remote(
            "frey_rawface.mat",
            "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
            ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",),
        )
    ],
    "zinc250k": [
        Remote(
            "250k_rndm_zinc_drugs_clean_3.csv",
            "35e3f1a52b1badc0697e373d73a18ad773f415936ff992f4c6baa2e067b3e6ae",
            (
                "https://raw.githubusercontent.com/aspuru-guzik-group/chemical_vae/master/models/zinc_properties/250k_rndm_zinc_drugs_clean_3.csv",
            ),
        )
    ],
    # the MOSES splits as shipped in the molsets 0.3.1 wheel (moses/dataset/data/)
    "moses": [
        Remote(
            f,
            s,
            tuple(
                u + f
                for u in (
                    "https://raw.githubusercontent.com/molecularsets/moses/master/moses/dataset/data/",
                    "https://media.githubusercontent.com/media/molecularsets/moses/master/moses/dataset/data/",
                )
            ),
        )
        for f, s in {
            "train.csv.gz": "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c",
            "test.csv.gz": "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2",
            "test_scaffolds.csv.gz": "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde",
        }.items()
    ],
}


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not (parts.scheme == "http" and loopback):
        raise VaekitError(f"refusing to download {url}: only https (or http on a loopback address) is allowed")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_known(name: str, path: Path) -> None:
    """If `path` is one of the published files of data set `name`, check its SHA-256 (catches bit flips)."""
    for remote in SOURCES.get(name, []):
        if Path(path).name == remote.filename:
            if sha256_file(Path(path)) != remote.sha256:
                raise VaekitError(
                    f"{path}: checksum mismatch with the published {name} file (corrupt copy?); "
                    f"delete it and run `vaekit data fetch {name}`"
                )
            return


def _download(url: str, dest: Path, sha256: str, timeout: float) -> None:
    _check_url(url)
    with atomic_write(dest) as tmp:
        h = hashlib.sha256()
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            _check_url(resp.geturl())  # a redirect must not leave the allowed schemes either
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                out.write(block)
        if h.hexdigest() != sha256:
            raise VaekitError(
                f"{dest.name}: checksum mismatch from {url} (expected sha256 {sha256[:12]}..., "
                f"got {h.hexdigest()[:12]}...); nothing was saved"
            )


def fetch(name: str, data_dir=None, base_url: str | None = None, timeout: float = 60.0) -> Path:
    """Download data set `name` into `<data_dir>/<name>/`; files already present and valid are kept.

    `base_url` replaces the listed URLs by `<base_url>/<name>/<file>` (a mirror, or a local server).
    Returns the folder.
    """
    if name not in SOURCES:
        raise VaekitError(f"unknown data set {name!r} for fetch; choose one of {', '.join(sorted(SOURCES))}")
    folder = data_root(data_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for remote in SOURCES[name]:
        dest = folder / remote.filename
        if dest.is_file() and sha256_file(dest) == remote.sha256:
            continue
        urls = (f"{base_url.rstrip('/')}/{name}/{remote.filename}",) if base_url else remote.urls
        errors = []
        for url in urls:
            try:
                _download(url, dest, remote.sha256, timeout)
                break
            except VaekitError as e:
                if "checksum" in str(e) or "refusing" in str(e):
                    raise
                errors.append(str(e))
            except OSError as e:  # URLError, HTTPError, timeouts
                errors.append(f"{url}: {e}")
        else:
            raise VaekitError(f"could not download {remote.filename}: {'; '.join(errors)}")
    return folder
