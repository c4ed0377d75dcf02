"""Hinton & Salakhutdinov (2006): curves data, RBMs with CD-1, PCA / logistic PCA, the quick report."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from vaekit.baselines import PCA, LogisticPCA, squared_error
from vaekit.data.curves import curves, make_curves, through_three_points
from vaekit.errors import VaekitError
from vaekit.rbm import RBM, CDConfig, pretrain_stack, unroll

DATA = os.environ.get("VAEKIT_DATA")


# -- curves --------------------------------------------------------------------------------------
def test_curves_shape_range_and_determinism():
    a = make_curves(50, seed=3)
    assert a.shape == (50, 28, 28) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert a.max() > 0.99  # the pen passes through pixel centres
    ink = a.reshape(50, -1).sum(1)
    assert (ink > 5).all() and (ink < 200).all()  # every image has a curve, none is filled
    np.testing.assert_array_equal(a, make_curves(50, seed=3))
    assert not np.array_equal(a, make_curves(50, seed=4))
    np.testing.assert_array_equal(a[:20], make_curves(20, seed=3))  # a prefix of the same stream


def test_curve_passes_through_its_three_points():
    pts = np.array([[[3.0, 4.0], [12.0, 20.0], [25.0, 6.0]]])
    path = through_three_points(pts, n_steps=2001)[0]
    for p in pts[0]:
        assert np.linalg.norm(path - p, axis=1).min() < 1e-2
    np.testing.assert_allclose(path[0], pts[0, 0], atol=1e-12)
    np.testing.assert_allclose(path[-1], pts[0, 2], atol=1e-12)


def test_curves_cache_and_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    small = curves("test", data_dir=tmp_path, n=30)  # a prefix is generated without caching
    assert small.x.shape == (30, 28, 28) and small.name == "curves"
    assert not list(tmp_path.rglob("*.npz"))
    with pytest.raises(VaekitError, match="split"):
        curves("valid", data_dir=tmp_path)
    with pytest.raises(VaekitError, match="n must be"):
        curves("test", data_dir=tmp_path, n=0)
    with pytest.raises(VaekitError, match="margin"):
        make_curves(5, margin=20)
    with pytest.raises(VaekitError, match="width"):
        make_curves(5, width=0)


# -- RBMs ----------------------------------------------------------------------------------------
def _digits_binary(n=600):
    from sklearn.datasets import load_digits

    x = load_digits().data[:n] / 16.0
    return torch.from_numpy((x > 0.5).astype(np.float32))


def test_cd1_lowers_reconstruction_error():
    x = _digits_binary()
    rbm = RBM(64, 32, generator=torch.Generator().manual_seed(0), init_std=0.01)
    before = rbm.reconstruction_error(x)
    errors = rbm.fit(x, CDConfig(epochs=15, batch_size=20, lr=0.1, seed=0))
    assert len(errors) == 15
    assert errors[-1] < 0.5 * before
    assert errors[-1] < errors[0]


def test_gaussian_visible_rbm_learns_standardised_data():
    x = _digits_binary() + 0.1 * torch.randn(600, 64, generator=torch.Generator().manual_seed(1))
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-3)
    rbm = RBM(64, 48, visible="gaussian", init_std=0.01, generator=torch.Generator().manual_seed(0))
    before = rbm.reconstruction_error(x)
    errors = rbm.fit(x, CDConfig(epochs=20, batch_size=20, lr=0.005, seed=0))
    assert errors[-1] < 0.8 * before


def test_rbm_conditionals_are_exact():
    rbm = RBM(3, 2, generator=torch.Generator().manual_seed(0))
    v = torch.tensor([[1.0, 0.0, 1.0]])
    expected = torch.sigmoid(v @ rbm.W + rbm.b)
    torch.testing.assert_close(rbm.hidden_mean(v), expected)
    lin = RBM(3, 2, hidden="gaussian")
    torch.testing.assert_close(lin.hidden_mean(v), v @ lin.W + lin.b)


def test_unrolled_autoencoder_computes_the_rbm_stack():
    x = _digits_binary(200)
    rbms = pretrain_stack(x, [20, 10, 3], config=CDConfig(epochs=1, batch_size=50))
    assert [r.hidden for r in rbms] == ["bernoulli", "bernoulli", "gaussian"]
    model = unroll(rbms, (64,))
    up = x
    for r in rbms:
        up = r.hidden_mean(up)
    torch.testing.assert_close(model.embed(x), up)
    down = up
    for r in reversed(rbms):
        down = r.visible_mean(down)
    torch.testing.assert_close(model.reconstruct(x), down)


def test_rbm_errors_name_the_problem():
    with pytest.raises(VaekitError, match="units"):
        RBM(4, 2, visible="poisson")
    with pytest.raises(VaekitError, match="4 visible units"):
        RBM(4, 2).fit(torch.zeros(10, 5), CDConfig(epochs=1))
    with pytest.raises(VaekitError, match="visible units"):
        unroll([RBM(4, 2)], (5,))
    with pytest.raises(VaekitError, match="chain"):
        unroll([RBM(4, 2), RBM(3, 1)], (4,))


# -- baselines -----------------------------------------------------------------------------------
def test_squared_error_is_summed_over_pixels_and_averaged_over_images():
    x = torch.zeros(2, 2, 2)
    x_hat = torch.stack([torch.full((2, 2), 0.5), torch.ones(2, 2)])
    assert squared_error(x, x_hat) == pytest.approx((4 * 0.25 + 4 * 1.0) / 2)
    with pytest.raises(VaekitError, match="shapes differ"):
        squared_error(torch.zeros(2, 3), torch.zeros(2, 4))


def test_logistic_pca_beats_pca_on_binary_data():
    g = torch.Generator().manual_seed(0)
    n, d, k = 1500, 60, 3
    logits = 4.0 * torch.randn(n, k, generator=g) @ torch.randn(k, d, generator=g) / k**0.5 - 1.0
    x = torch.bernoulli(torch.sigmoid(logits), generator=g)
    tr, te = x[:1000], x[1000:]
    pca = PCA(k).fit(tr)
    lpca = LogisticPCA(k, max_iter=200).fit(tr)
    e_pca = squared_error(te, torch.as_tensor(pca.reconstruct(te)).float())
    e_lpca = squared_error(te, lpca.reconstruct(te))
    assert e_lpca < 0.9 * e_pca
    assert lpca.score(te) > -d * np.log(2)  # better than a coin per pixel
    # with the basis fixed, `transform` finds codes at least as good as those learned in `fit`
    import torch.nn.functional as F

    def ce(codes):
        return float(F.binary_cross_entropy_with_logits(codes @ lpca.components_ + lpca.bias_, tr[:50]))

    assert ce(lpca.transform(tr[:50])) <= ce(lpca.train_codes_[:50]) + 1e-4


def test_logistic_pca_rejects_bad_input():
    with pytest.raises(VaekitError, match=r"\[0, 1\]"):
        LogisticPCA(2).fit(torch.full((10, 4), 2.0))
    with pytest.raises(VaekitError, match="n_components"):
        LogisticPCA(9).fit(torch.rand(10, 4))
    with pytest.raises(VaekitError, match="fit"):
        LogisticPCA(2).transform(torch.rand(3, 4))
    with pytest.raises(VaekitError, match="features"):
        LogisticPCA(2, max_iter=5).fit(torch.rand(10, 4)).transform(torch.rand(3, 5))


# -- Olivetti and the quick report -----------------------------------------------------------------
needs_data = pytest.mark.skipif(
    not DATA or not os.path.isdir(os.path.join(DATA or "", "mnist")),
    reason="VAEKIT_DATA with mnist/ and olivetti/ not available",
)


@needs_data
def test_olivetti_faces_and_variants():
    from vaekit.data import load
    from vaekit.data.olivetti import faces, variants

    d = faces(DATA)
    assert d.x.shape == (400, 64, 64) and 0 <= float(d.x.min()) and float(d.x.max()) <= 1
    assert torch.equal(d.y, torch.arange(40).repeat_interleave(10))
    tr, te = variants(d, "train", per_image=2), variants(d, "test", per_image=2)
    assert tr.x.shape == (500, 25, 25) and te.x.shape == (200, 25, 25)
    assert set(tr.y.tolist()).isdisjoint(te.y.tolist())  # split by person
    torch.testing.assert_close(variants(d, "test", per_image=2).x, te.x)  # deterministic
    assert load("olivetti", "all", DATA).x.shape == (400, 64, 64)
    with pytest.raises(VaekitError, match="split"):
        variants(d, "dev")
    with pytest.raises(VaekitError, match="crop"):
        variants(d, "test", per_image=1, crop=0)
    # the default crop is 50 pixels of the 1.4-1.8x scaled face: tighter than the whole frame
    whole = variants(d, "test", per_image=2, crop=None)
    assert not torch.equal(whole.x, te.x)


@needs_data
def test_olivetti_scaling_follows_the_paper():
    from types import SimpleNamespace

    from vaekit.reports.hinton2006 import QUICK, load_data

    ctx = SimpleNamespace(data_dir=DATA, seed=0, quick=True)
    tr, te, _, to_unit = load_data("olivetti", QUICK["olivetti"], ctx)
    assert float(tr.mean(0).abs().max()) < 1e-4  # every pixel has zero mean
    assert float(tr.pow(2).mean()) == pytest.approx(1.0, rel=1e-4)  # average pixel variance 1 ...
    var = tr.var(0)
    assert float(var.max() / var.min()) > 2  # ... by one number, not per pixel
    back = to_unit(te)
    assert float(back.min()) >= -1e-5 and float(back.max()) <= 1 + 1e-5


def test_cached_models_are_reused_only_for_the_same_settings(tmp_path):
    from types import SimpleNamespace

    from vaekit.models import build
    from vaekit.reports.hinton2006 import cached

    made = []

    def make():
        made.append(1)
        torch.manual_seed(len(made))
        return build("autoencoder", data_shape=(4,), latent_dim=2, hidden=(3,)), f"made {len(made)}"

    ctx = SimpleNamespace(quick=False, options={"run_root": str(tmp_path)})
    m1, i1 = cached(ctx, "t", {"epochs": (1, 2)}, make)
    m2, i2 = cached(ctx, "t", {"epochs": [1, 2]}, make)  # the same settings: loaded, not retrained
    assert len(made) == 1 and not i1["loaded"] and i2["loaded"] and i2["how"] == "made 1"
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert i2["cpu_seconds"] == pytest.approx(i1["cpu_seconds"])
    _, i3 = cached(ctx, "t", {"epochs": [1, 3]}, make)  # other settings: trained again
    assert len(made) == 2 and not i3["loaded"]
    ctx.options["retrain"] = "1"
    cached(ctx, "t", {"epochs": [1, 3]}, make)
    assert len(made) == 3
    (tmp_path / "report-hinton2006-t" / "training.json").write_text("{not json")
    ctx.options.pop("retrain")
    _, i5 = cached(ctx, "t", {"epochs": [1, 3]}, make)  # a damaged record is retrained, not an error
    assert len(made) == 4 and not i5["loaded"]
    quick = SimpleNamespace(quick=True, options={"run_root": str(tmp_path)})
    cached(quick, "q", {}, make)
    assert not (tmp_path / "report-hinton2006-q").exists()  # quick runs leave runs/ alone


@needs_data
def test_quick_report_has_every_row(tmp_path):
    from vaekit.reports import run_report

    run_report("hinton2006", out_root=tmp_path, quick=True, data_dir=DATA)
    out = tmp_path / "hinton2006"
    res = json.loads((out / "results.json").read_text())
    assert res["quick"] is True
    metrics = {(r["data"], r["metric"].split(":")[0]): r for r in res["rows"]}
    expected = [
        ("curves", "AE 784-400-200-100-50-25-6, paper recipe"),
        ("curves", "AE 784-400-200-100-50-25-6, modern recipe"),
        ("curves", "logistic PCA, 6 components"),
        ("curves", "logistic PCA, 18 components"),
        ("curves", "PCA, 6 components"),
        ("curves", "PCA, 18 components"),
        ("mnist", "AE 784-1000-500-250-30, paper recipe"),
        ("mnist", "AE 784-1000-500-250-30, modern recipe"),
        ("mnist", "logistic PCA, 30 components"),
        ("mnist", "PCA, 30 components"),
        ("olivetti", "AE 625-2000-1000-500-30, paper recipe"),
        ("olivetti", "AE 625-2000-1000-500-30, modern recipe"),
        ("olivetti", "PCA, 30 components"),
    ]
    for key in expected:
        row = metrics[key]
        assert row["ours"] is not None and np.isfinite(row["ours"]) and row["ours"] > 0, key
        assert row["seconds"] is not None
    assert "thresholded at 0.5" in metrics[("mnist", "logistic PCA, 30 components")]["note"]
    assert "average variance 1" in metrics[("olivetti", "PCA, 30 components")]["note"]
    papers = {k: metrics[k]["paper"] for k in expected}
    assert papers[("mnist", "PCA, 30 components")] == 13.87 and papers[("olivetti", "PCA, 30 components")] == 135
    for f in ("fig2_curves.png", "fig2_mnist.png", "fig2_olivetti.png", "fig3_mnist_codes.png", "index.html"):
        assert (out / f).stat().st_size > 1000, f
