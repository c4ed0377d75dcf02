"""Data loading: IDX, arrays, image folders, digits, and downloads against a loopback server."""

import functools
import gzip
import hashlib
import http.server
import json
import shutil
import struct
import threading

import numpy as np
import pytest
import torch

from conftest import shared_data
from vaekit.data import Dataset, fetch, load, read_idx
from vaekit.data import download as fetch_mod
from vaekit.data.download import Remote
from vaekit.errors import VaekitError


def idx_bytes(array: np.ndarray) -> bytes:
    return (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + b"".join(struct.pack(">I", s) for s in array.shape)
        + array.astype(np.uint8).tobytes()
    )


def test_idx_round_trip_plain_and_gzipped(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(a))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(a)))
    assert np.array_equal(read_idx(tmp_path / "a"), a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b"\x08\x03" + b[2:], "bad magic number"),
        (lambda b: b[:-5], "truncated or corrupt"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: b"", "bad magic"),
        (lambda b: gzip.compress(b)[:-12], "cannot read IDX"),
    ],
)
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


def test_numpy_file_errors_say_what_is_wrong(tmp_path):
    (tmp_path / "text.npy").write_bytes(b"a,b\n1,2\n")
    with pytest.raises(VaekitError) as e:
        load(str(tmp_path / "text.npy"))
    assert "not a NumPy .npy file" in str(e.value) and "pickle" not in str(e.value)
    (tmp_path / "text.npz").write_bytes(b"a,b\n1,2\n")
    with pytest.raises(VaekitError, match="text.npz: not a NumPy .npz file"):
        load(str(tmp_path / "text.npz"))
    np.save(tmp_path / "huge.npy", np.array([[1.0, 2.0], [3.0, -1e300]]))
    with pytest.raises(VaekitError, match=r"huge.npy: values out of float32 range .*first at item 1"):
        load(str(tmp_path / "huge.npy"))
    np.save(tmp_path / "fits.npy", np.array([[1.0, 2.0], [3.0, -3e38]]))  # float64 within float32's range
    assert float(load(str(tmp_path / "fits.npy")).x.min()) == pytest.approx(-3e38)


def test_splits_a_file_has_and_has_not(tmp_path):
    from vaekit.data.core import SplitError

    x, xt = np.random.rand(5, 3).astype(np.float32), np.random.rand(2, 3).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "one.npz", x=x, y=np.arange(5))
    np.savez(tmp_path / "two.npz", x_train=x, x_test=xt, y_test=np.arange(2))
    for name in ("a.npy", "one.npz"):
        assert torch.equal(load(str(tmp_path / name), "all").x, load(str(tmp_path / name), "train").x)
        with pytest.raises(SplitError, match=f"{name}: no split 'test'; it has train, all") as e:
            load(str(tmp_path / name), "test")  # no held-out items: refused, never the training items
        assert e.value.splits == ("train", "all")
    assert torch.equal(load(str(tmp_path / "two.npz"), "test").x, torch.from_numpy(xt))
    assert load(str(tmp_path / "two.npz"), "test").y.tolist() == [0, 1] and load(str(tmp_path / "two.npz")).y is None
    with pytest.raises(SplitError, match="two.npz: no split 'all'; it has test, train"):
        load(str(tmp_path / "two.npz"), "all")
    with pytest.raises(SplitError, match="digits: no split 'bogus'; it has all, test, train"):
        load("digits", "bogus")


def test_colour_images_keep_their_channels(tmp_path):
    from PIL import Image

    rgb = np.zeros((6, 5, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    Image.fromarray(np.full((6, 5), 128, np.uint8)).save(tmp_path / "grey.png")
    d = load(str(tmp_path))
    assert d.x.shape == (2, 3, 6, 5)  # a colour image makes the folder RGB
    red = d.x[1]  # files sorted: grey.png, red.png
    assert red[0].eq(1).all() and red[1:].eq(0).all() and d.x[0].eq(128 / 255).all()
    (tmp_path / "red.png").unlink()
    Image.fromarray(np.stack([np.full((6, 5), 7, np.uint8)] * 3, -1)).save(tmp_path / "rgb_grey.png")
    assert load(str(tmp_path)).x.shape == (2, 6, 5)  # grey pixels stored as RGB stay one channel


def test_standardization_round_trip(tmp_path):
    from vaekit.data import Standardization

    x = torch.randn(50, 3, 2, dtype=torch.float64).float() * torch.tensor([1.0, 100.0, 0.01])[:, None] + 5
    x[:, 0, 0] = 3.0  # a constant feature keeps std 1
    st = Standardization.fit(x)
    xs = st.apply(x)
    assert torch.allclose(xs.mean(0), torch.zeros(3, 2), atol=1e-4) and st.std[0, 0] == 1
    assert torch.allclose(xs.std(0, unbiased=False)[1:], torch.ones(2, 2), atol=1e-4)
    assert torch.allclose(st.undo(xs), x, rtol=1e-5, atol=1e-5)
    again = Standardization.from_json(json.loads(json.dumps(st.to_json())), (3, 2))
    assert torch.equal(again.mean, st.mean) and torch.equal(again.std, st.std)
    for bad, match in [
        ({"mean": [0.0] * 6}, "lists 'mean' and 'std'"),
        ({"mean": [0.0] * 5, "std": [1.0] * 5}, "5 means"),
        ({"mean": [0.0] * 6, "std": [1.0] * 5 + [0.0]}, "positive"),
        ([1], "lists"),
    ]:
        with pytest.raises(VaekitError, match=match):
            Standardization.from_json(bad, (3, 2))


def test_likelihood_support(tmp_path):
    import warnings

    from vaekit.errors import VaekitWarning
    from vaekit.likelihoods import check_data

    check_data("bernoulli", torch.rand(4, 3))
    with pytest.raises(VaekitError, match="from -1 to 2.*--likelihood gaussian"):
        check_data("bernoulli", torch.tensor([[-1.0, 2.0]]), "d")
    check_data("categorical", torch.tensor([[0.0, 3.0]]), n_categories=4)
    for x in ([[0.0, 4.0]], [[0.5, 1.0]], [[-1.0, 0.0]]):
        with pytest.raises(VaekitError, match="whole numbers from 0 to 3"):
            check_data("categorical", torch.tensor(x), n_categories=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_data("gaussian", torch.randn(100, 3))  # unit scale: no warning
    with pytest.warns(VaekitWarning, match=r"mean (99|100)[.0-9]* and .*--standardize"):
        check_data("gaussian", torch.randn(100, 3) + 100)


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


def test_loaders_register_themselves(tmp_path):
    from vaekit.data import DATASETS, FORMATS
    from vaekit.data.core import register_dataset, register_format

    assert {"digits", "mnist", "fashion_mnist", "frey", "olivetti", "curves", "fonts"} <= set(DATASETS)
    assert {".npy", ".npz", "folder"} <= set(FORMATS)
    try:
        register_dataset("ones")(lambda split_name, data_dir: Dataset(torch.ones(3, 2), None, f"ones_{split_name}"))
        assert load("ones", "test").name == "ones_test"
        with pytest.raises(ValueError, match="registered twice"):
            register_dataset("ones")(lambda split_name, data_dir: None)
        register_format(".txt")(lambda path, split_name: Dataset(torch.from_numpy(np.loadtxt(path, ndmin=2)).float()))
        (tmp_path / "a.txt").write_text("1 2\n3 4\n")
        assert load(str(tmp_path / "a.txt")).x.tolist() == [[1, 2], [3, 4]]
    finally:
        DATASETS.pop("ones", None)
        FORMATS.pop(".txt", None)
    with pytest.raises(VaekitError, match="unsupported data file; use .npy, .npz or a folder"):
        load(str(tmp_path / "a.txt"))


def test_data_core_imports_none_of_its_loaders():
    """core is the leaf of the data package: no import of a sibling module, not even inside a function."""
    import ast

    import vaekit.data.core as core

    tree = ast.parse(open(core.__file__, encoding="utf-8").read())
    siblings = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1]
    assert siblings == []


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
    fetch("mnist", tmp_path, base_url="http://127.0.0.1:9")  # already there and valid: no download


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
