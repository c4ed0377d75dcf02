"""The contract of every registered model with every face: `vaekit fit` (a few steps on tiny data of the model's
item kind), `eval`, `sample`, `encode`, and the explorer's /api/info and /api/decode.  Each runs, or refuses with
one line (`vaekit: error: ...`, exit status 2, no traceback); which of the two follows from what the model says it
can do (has_encoder, encoder_density, has_likelihood, can_sample), and `eval` prints only the numbers defined for it.

A model registered later is covered by adding nothing but, for a new item kind, its tiny data (DATA)."""

import contextlib
import io
import json
import warnings

import numpy as np
import pytest

from vaekit.cli import main
from vaekit.errors import VaekitError
from vaekit.models import REGISTRY

SMILES = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Oc1ccccc1C(=O)O",
    "ClC(Cl)Br",
    "O=C1CCCN1",
    "CC#N",
    "CCN(CC)CC",
    "CCOC(=O)C",
    "c1ccncc1",
    "C1CCCCC1",
    "CCCCO",
    "CC(C)O",
    "NCCO",
    "CSC",
    "c1ccsc1",
    "OCC(O)CO",
]

# the smallest networks of each model (fields its config has); item-kind data below
TINY = {
    "hidden": (4,),
    "latent_dim": 2,
    "channels": (2,),
    "disc_hidden": (4,),
    "critic_hidden": (4,),
    "noise_dim": 2,
    "n_moments": 3,
    "glyph_features": 2,
    "glyph_hidden": 4,
    "char_dim": 2,
    "gru_hidden": 4,
    "gru_layers": 1,
    "conv_channels": (2, 2),
    "conv_kernels": (3, 3),
    "dense": 4,
    "embed_dim": 2,
    "prop_hidden": (4,),
    "k": 2,
}
CASES = {name: (name, {}) for name in sorted(REGISTRY)} | {"aae-ring": ("aae", {"prior": "ring"})}


def write_data(kind: str, folder):
    """Tiny training data of an item kind: the --data argument (and the fit flags it needs)."""
    rng = np.random.default_rng(0)
    if kind in ("array", "font"):  # a font: 3 glyphs of 8 x 8
        shape = (4, 4) if kind == "array" else (3, 8, 8)
        np.savez(folder / "items.npz", x_train=rng.random((24, *shape)), x_test=rng.random((8, *shape)))
        return ["--data", str(folder / "items.npz")]
    if kind == "molecule":
        pytest.importorskip("rdkit")
        (folder / "mols.csv").write_text("smiles\n" + "\n".join(SMILES) + "\n")
        return ["--data", str(folder / "mols.csv"), "--kind", "smiles"]
    raise AssertionError(f"no tiny data for item kind {kind!r}: add it to write_data")


def outcome(capsys, argv) -> tuple[int, str]:
    """(exit status, stdout) of one command; a refusal must be one line on stderr, never a traceback."""
    capsys.readouterr()
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    assert code in (0, 2), f"{argv}: exit status {code}: {err}"
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("vaekit: error: "), err
    return code, (out if code == 0 else err)


def metrics(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines() if line.strip()}


@pytest.fixture(scope="module", params=sorted(CASES))
def trained(request, tmp_path_factory, monkeypatch_module):
    """A run of each registered model (and of the AAE with the ring prior): `vaekit fit` for 3 steps."""
    name, extra = CASES[request.param]
    cls = REGISTRY[name]
    folder = tmp_path_factory.mktemp(request.param)
    fields = {f for f in cls.Config.__dataclass_fields__}
    config = {k: v for k, v in TINY.items() if k in fields} | extra
    (folder / "model.json").write_text(json.dumps({"model": name, "config": config}))
    argv = [
        "fit",
        folder / "run",
        "--config",
        folder / "model.json",
        *write_data(cls.item_kind, folder),
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        "--no-progress",
        "--no-tensorboard",
        "--device",
        "cpu",
    ]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main([str(a) for a in argv])
        except SystemExit as e:
            raise AssertionError(f"vaekit fit of a tiny {request.param}: exit status {e.code}: {err.getvalue()}") from e
    return cls, folder


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    """One cache for the module's runs (molecules are scored once), on one thread."""
    import torch

    mp, threads = pytest.MonkeyPatch(), torch.get_num_threads()
    mp.setenv("VAEKIT_CACHE", str(tmp_path_factory.getbasetemp() / "contract-cache"))
    torch.set_num_threads(1)
    yield mp
    mp.undo()
    torch.set_num_threads(threads)


def test_eval_prints_the_numbers_defined_for_the_model(trained, capsys):
    cls, folder = trained
    code, out = outcome(capsys, ["eval", folder / "run", "--k", "2", "--limit", "8"])
    assert code == (0 if cls.has_encoder and cls.has_likelihood else 2), out
    if code:
        return
    shown = metrics(out)
    if cls.item_kind == "molecule":
        assert {"elbo", "rec", "kl", "recon_acc"} <= shown
        return
    assert "sq_err" in shown
    assert ("elbo" in shown) == ("iwae2" in shown) == cls.encoder_density  # a bound only where q(z|x) has a density
    assert ("rec_nll" in shown) != cls.encoder_density
    assert ("prior_mmd2" in shown) == (cls.can_sample and not cls.encoder_density)
    assert all(
        np.isfinite(float(line.split()[1]))
        for line in out.splitlines()
        if line.split()[0] not in ("data", "split", "binarized")
    )
    code, out = outcome(capsys, ["eval", folder / "run", "--nll-k", "2", "--limit", "4"])
    assert code == (0 if cls.encoder_density else 2) and ("nll" in metrics(out)) == (code == 0)


def test_sample_draws_from_the_prior_where_the_model_fits_one(trained, capsys):
    cls, folder = trained
    code, out = outcome(capsys, ["sample", folder / "run", "-n", "4", "--seed", "1"])
    assert code == (0 if cls.can_sample else 2), out
    if code == 0:
        assert out.startswith("wrote ")
    else:
        assert "--sampler gmm" in out


def test_a_sampler_fitted_on_codes_needs_an_encoder(trained, capsys):
    cls, folder = trained
    out_file = folder / ("gmm.smi" if cls.item_kind == "molecule" else "gmm.npy")
    code, out = outcome(capsys, ["sample", folder / "run", "-n", "3", "--sampler", "gmm", "--out", out_file])
    assert code == (0 if cls.has_encoder else 2), out


def test_encode_writes_codes_where_the_model_has_an_encoder(trained, capsys):
    cls, folder = trained
    code, out = outcome(capsys, ["encode", folder / "run", "--out", folder / "z.npy"])
    assert code == (0 if cls.has_encoder else 2), out
    if code == 0:
        z = np.load(folder / "z.npy")
        assert z.ndim == 2 and np.isfinite(z).all()


def test_the_explorer_serves_info_and_decodes_or_refuses_in_one_line(trained):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from vaekit.explore.server import create_app, load_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    cls, folder = trained
    try:
        explorer = load_run(folder / "run", n_molecules=len(SMILES))
    except VaekitError as e:
        assert not cls.has_encoder and len(str(e).splitlines()) == 1, e
        return
    assert cls.has_encoder
    client = TestClient(create_app(explorer, port=8765), base_url="http://127.0.0.1:8765")
    info = client.get("/api/info")
    assert info.status_code == 200, info.text
    dim, chars = len(info.json()["centre"]), info.json()["chars"]
    word = {"word": chars[:2]} if chars else {}  # a font model draws the characters it knows
    for fmt in ({}, {"format": "array"}):  # the item kind's default format, and numbers
        r = client.post("/api/decode", json={"z": [[0.0] * dim, [0.5] * dim], **fmt, **word})
        assert r.status_code == 200 and len(r.json()["items"]) == 2, r.text
