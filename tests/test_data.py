"""Data loading: IDX, arrays, image folders, digits, and downloads against a loopback server."""
import functools
import gzip
import hashlib
import http.server
import shutil
import struct
import threading

import numpy as np
import pytest
import torch

from conftest import shared_data
from vaekit.data import fetch, load, read_idx
from vaekit.data import download as fetch_mod
from vaekit.data.download import Remote
from vaekit.errors import VaekitError


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", s) for s in array.shape) \
        + array.astype(np.uint8).tobytes()


def test_idx_round_trip_plain_and_gzipped(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(a))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(a)))
    assert np.array_equal(read_idx(tmp_path / "a"), a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)


@pytest.mark.parametrize("mutate, match", [
    (lambda b: b"\x08\x03" + b[2:], "bad magic number"),
    (lambda b: b[:-5], "truncated or corrupt"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b"", "bad magic"),
    (lambda b: gzip.compress(b)[:-12], "cannot read IDX"),
])
def test_idx_errors_name_the_file(tmp_path, mutate, match):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(mutate(idx_bytes(np.zeros((2, 3, 3)))))
    with pytest.raises(VaekitError, match=match) as e:
        read_idx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_digits_split_is_fixed_and_in_unit_range():
    tr, te = load("digits", "train"), load("digits", "test")
    assert tr.x.shape[1:] == (8, 8) and len(tr) + len(te) == 1797
    assert 0 <= float(tr.x.min()) and float(tr.x.max()) <= 1
    assert torch.equal(load("digits", "test").x, te.x)


def test_mnist_from_shared_data():
    shared_data("mnist")
    te = load("mnist", "test")
    assert te.x.shape == (10000, 28, 28) and te.y.shape == (10000,)
    assert float(te.x.max()) == 1.0 and te.y[:3].tolist() == [7, 2, 1]


def test_missing_mnist_says_how_to_get_it(tmp_path):
    with pytest.raises(VaekitError, match="vaekit data fetch mnist"):
        load("mnist", "train", data_dir=tmp_path)


def test_numpy_files(tmp_path):
    x = np.random.rand(5, 3, 4).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x=x, y=np.arange(5))
    assert torch.allclose(load(str(tmp_path / "a.npy")).x, torch.from_numpy(x))
    assert load(str(tmp_path / "b.npz")).y.tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(VaekitError, match="obj.npy"):
        load(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(VaekitError, match="NaN"):
        load(str(tmp_path / "nan.npy"))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(VaekitError, match="junk.npz"):
        load(str(tmp_path / "junk.npz"))


def test_image_folder(tmp_path):
    from PIL import Image

    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((6, 5), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = load(str(tmp_path))
    assert d.x.shape == (4, 6, 5) and d.y.tolist() == [0, 0, 1, 1]
    Image.fromarray(np.zeros((7, 5), np.uint8)).save(tmp_path / "dogs" / "odd.png")
    with pytest.raises(VaekitError, match="odd.png"):
        load(str(tmp_path))
    (tmp_path / "dogs" / "odd.png").write_bytes(b"not a png")
    with pytest.raises(VaekitError, match="odd.png: cannot read image"):
        load(str(tmp_path))


def test_unknown_data_spec():
    with pytest.raises(VaekitError, match="unknown data set 'nope'"):
        load("nope")


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving a folder; yields (start(folder) -> base_url)."""
    servers = []

    def start(folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a: None
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()


def test_fetch_mnist_from_loopback_and_verify(tmp_path, server):
    src = shared_data("mnist").parent
    folder = fetch("mnist", tmp_path, base_url=server(src))
    assert sorted(p.name for p in folder.iterdir()) == sorted(r.filename for r in fetch_mod.SOURCES["mnist"])
    assert load("mnist", "test", data_dir=tmp_path).x.shape == (10000, 28, 28)
    fetch("mnist", tmp_path, base_url="http://127.0.0.1:9")   # already there and valid: no download


def test_fetch_checksum_mismatch_leaves_nothing(tmp_path, server, monkeypatch):
    (tmp_path / "www" / "toy").mkdir(parents=True)
    (tmp_path / "www" / "toy" / "f.bin").write_bytes(b"tampered")
    monkeypatch.setitem(fetch_mod.SOURCES, "toy", [Remote("f.bin", hashlib.sha256(b"original").hexdigest(), ())])
    with pytest.raises(VaekitError, match="f.bin: checksum mismatch"):
        fetch("toy", tmp_path / "data", base_url=server(tmp_path / "www"))
    assert list((tmp_path / "data" / "toy").iterdir()) == []


def test_fetch_refuses_plain_http_to_other_hosts(tmp_path):
    with pytest.raises(VaekitError, match="only https"):
        fetch("mnist", tmp_path, base_url="http://example.com/data")


def test_fetch_unknown_name(tmp_path):
    with pytest.raises(VaekitError, match="unknown data set 'nope'"):
        fetch("nope", tmp_path)


def test_bit_flipped_mnist_file_is_caught(tmp_path):
    src = shared_data("mnist")
    (tmp_path / "mnist").mkdir()
    for f in src.iterdir():
        shutil.copy(f, tmp_path / "mnist" / f.name)
    victim = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    victim.write_bytes(bytes(raw))
    with pytest.raises(VaekitError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        load("mnist", "test", data_dir=tmp_path)
