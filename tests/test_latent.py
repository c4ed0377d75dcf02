"""Latent-space tools: interpolation, attribute vectors, neighbours, projections; the digits/Frey reports."""

import json
import math
import os

import numpy as np
import pytest
import torch

from vaekit import latent
from vaekit.errors import VaekitError
from vaekit.models import build

DATA = os.environ.get("VAEKIT_DATA")
HAS_FREY = bool(DATA) and any(
    os.path.isfile(os.path.join(DATA, "frey", f)) for f in ("frey_rawface.mat.gz", "frey_rawface.mat")
)


def test_lerp_ends_and_midpoint():
    z0, z1 = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 0.0, -0.5])
    p = latent.lerp(z0, z1, 5)
    assert p.shape == (5, 3)
    assert torch.allclose(p[0], z0) and torch.allclose(p[-1], z1)
    assert torch.allclose(p[2], (z0 + z1) / 2)


def test_slerp_stays_on_the_sphere_and_hits_the_analytic_midpoint():
    u0, u1 = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 2.0])
    p = latent.slerp(u0, u1, 9)
    assert torch.allclose(p[0], u0, atol=1e-6) and torch.allclose(p[-1], u1, atol=1e-6)
    assert torch.allclose(p.norm(dim=1), torch.full((9,), 2.0), atol=1e-5)
    assert torch.allclose(p[4], torch.tensor([math.sqrt(2), math.sqrt(2)]), atol=1e-5)
    # radius interpolates linearly when the norms differ; parallel vectors fall back to a line
    q = latent.slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 3.0]), 3)
    assert q[1].norm().item() == pytest.approx(2.0, abs=1e-5)
    assert torch.allclose(latent.slerp(u0, 3 * u0, 3), latent.lerp(u0, 3 * u0, 3))


def test_attribute_vector_recovers_a_planted_direction():
    g = torch.Generator().manual_seed(0)
    n, d = 4000, 10
    direction = torch.randn(d, generator=g)
    direction /= direction.norm()
    has = torch.rand(n, generator=g) < 0.3
    z = torch.randn(n, d, generator=g) + 2.5 * has[:, None].float() * direction
    v = latent.attribute_vector(z, has.numpy())
    cos = float(v @ direction / v.norm())
    assert cos > 0.98
    assert v.norm().item() == pytest.approx(2.5, rel=0.06)
    # with no planted effect the vector is only noise, of norm ~ sqrt(d (1/n1 + 1/n0))
    v0 = latent.attribute_vector(torch.randn(n, d, generator=g), has.numpy())
    assert v0.norm().item() < 0.2


def test_attribute_vector_rejects_one_sided_flags():
    z = torch.randn(5, 3)
    with pytest.raises(ValueError, match="with and without"):
        latent.attribute_vector(z, np.ones(5, bool))
    with pytest.raises(ValueError, match="shape"):
        latent.attribute_vector(z, np.ones(4, bool))


def test_apply_and_remove_attribute():
    z = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    v = torch.tensor([0.0, 2.0])
    out = latent.apply_attribute(z, v, [-1.0, 0.0, 0.5])
    assert out.shape == (3, 2, 2)
    assert torch.allclose(out[1], z) and torch.allclose(out[2], z + 0.5 * v) and torch.allclose(out[0], z - v)
    assert latent.apply_attribute(z[0], v, [1.0, 2.0]).shape == (2, 2)
    v = torch.tensor([1.0, 1.0])
    ref = torch.tensor([0.5, -0.5])  # coordinate 0 along v
    rm = latent.remove_attribute(z, v, ref)
    assert torch.allclose(rm @ v, torch.zeros(2), atol=1e-6)
    w = torch.tensor([1.0, -1.0])  # the orthogonal part is untouched
    assert torch.allclose(rm @ w, z @ w)


def test_spherical_attribute_edit_keeps_each_norm_and_moves_towards_v():
    z = torch.tensor([[3.0, 4.0], [1.0, -2.0]])
    v = torch.tensor([0.0, 1.0])
    out = latent.apply_attribute(z, v, [-1.0, 0.0, 2.0, 100.0], method="spherical")
    assert torch.allclose(out.norm(dim=-1), z.norm(dim=-1).expand(4, 2))  # every code stays on its own shell
    assert torch.allclose(out[1], z)  # alpha 0 is the code itself
    # the same direction as the straight-line edit, scaled: [3, 6] has norm sqrt(45), scaled to norm 5
    assert torch.allclose(out[2, 0], torch.tensor([3.0, 6.0]) * 5 / 45**0.5)
    assert (out[3] @ v / out[3].norm(dim=-1) > 0.999).all()  # far along v: turned towards v itself
    with pytest.raises(ValueError, match="spherical"):
        latent.apply_attribute(z, v, [1.0], method="curved")


def test_reencode_is_decode_then_encode_in_any_batch_and_shape():
    m = _tiny_vae(3)
    z = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0)) * 3
    out = latent.reencode(m, z, batch_size=4)
    assert out.shape == z.shape
    with torch.no_grad():
        direct = m.embed(m.generate(z.reshape(-1, 3))).reshape(z.shape)
    assert torch.allclose(out, direct, atol=1e-6)
    assert not torch.allclose(out, z, atol=0.1)  # an untrained model moves the codes: it is not the identity


def test_reencode_brings_far_codes_back_to_where_the_encoder_puts_data():
    # a trained VAE maps items to codes of prior-sized norm; codes 10x further out come back within that range
    torch.manual_seed(0)
    x = torch.rand(256, 4, 4)
    m = build("vae", data_shape=(4, 4), latent_dim=2, hidden=(32,))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        m.loss(x).value.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        data_norm = m.embed(x).norm(dim=-1).max()
    far = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    far = 10 * data_norm * far / far.norm(dim=-1, keepdim=True)
    assert latent.reencode(m, far).norm(dim=-1).max() < 2 * data_norm


def test_nearest_neighbours_match_brute_force():
    g = torch.Generator().manual_seed(1)
    bank, q = torch.randn(50, 4, generator=g), torch.randn(7, 4, generator=g)
    dist, idx = latent.nearest_neighbours(q, bank, k=3)
    d_full = ((q[:, None] - bank[None]) ** 2).sum(-1).sqrt()
    assert torch.equal(idx, d_full.argsort(1)[:, :3])
    assert torch.allclose(dist, d_full.sort(1).values[:, :3], atol=1e-5)
    _, idx_self = latent.nearest_neighbours(bank, bank, k=2, exclude_self=True)
    assert not (idx_self == torch.arange(50)[:, None]).any()


def test_project_axes_is_pca_scores():
    from sklearn.decomposition import PCA

    z = torch.randn(200, 5) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])
    p = latent.project(z)
    ref = PCA(2).fit_transform(z.numpy())
    for j in range(2):  # equal up to the sign of each axis
        assert min(np.abs(p[:, j].numpy() - ref[:, j]).max(), np.abs(p[:, j].numpy() + ref[:, j]).max()) < 1e-3
    z2 = torch.randn(10, 2)
    assert torch.equal(latent.project(z2), z2)
    with pytest.raises(ValueError, match="unknown projection"):
        latent.project(z, "umap")


def test_project_tsne_shape():
    z = torch.randn(40, 6)
    assert latent.project(z, "tsne").shape == (40, 2)


def _tiny_vae(d=2):
    torch.manual_seed(0)
    return build("vae", data_shape=(4, 4), latent_dim=d, hidden=(16,)).eval()


def test_manifold_and_interpolation_shapes_and_ends():
    m = _tiny_vae(2)
    assert latent.manifold(m, n=5).shape == (25, 4, 4)
    m3 = _tiny_vae(3)
    assert latent.manifold(m3, n=4, data=torch.rand(30, 4, 4)).shape == (16, 4, 4)
    x0, x1 = torch.rand(4, 4), torch.rand(4, 4)
    for method in ("linear", "spherical"):
        s = latent.interpolate(m, x0, x1, steps=6, method=method)
        assert s.shape == (6, 4, 4)
        assert torch.allclose(s[0], m.reconstruct(x0[None])[0], atol=1e-5)
        assert torch.allclose(s[-1], m.reconstruct(x1[None])[0], atol=1e-5)
    with pytest.raises(ValueError):
        latent.interpolate(m, x0, x1, method="cubic")
    strip = latent.attribute_strip(m, x0, torch.tensor([1.0, 0.0]), [0.0, 1.0])
    assert strip.shape == (2, 4, 4) and torch.allclose(strip[0], m.reconstruct(x0[None])[0], atol=1e-5)


def test_digits_quick_report_end_to_end(tmp_path):
    from vaekit.reports import run_report

    ctx = run_report("digits", out_root=tmp_path, quick=True, run_root=str(tmp_path / "runs"), epochs=5)
    res = json.loads((tmp_path / "digits" / "results.json").read_text())
    assert res["rows"][0]["data"] == "digits" and math.isfinite(res["rows"][0]["ours"])
    for f in ("digits_manifold.png", "digits_scatter.png", "digits_interpolation.png", "digits_neighbours.png"):
        assert (tmp_path / "digits" / f).stat().st_size > 1000
    # a second run finds the trained model in its run folder and loads it
    ctx2 = run_report("digits", out_root=tmp_path, quick=True, run_root=str(tmp_path / "runs"), epochs=5)
    assert "loaded" in ctx2.rows[0].note
    assert ctx2.rows[0].ours == pytest.approx(ctx.rows[0].ours)


@pytest.mark.skipif(
    not HAS_FREY, reason="Frey faces not found: set VAEKIT_DATA to a folder with frey/frey_rawface.mat.gz"
)
def test_frey_loader():
    from vaekit.data import frey

    ds = frey.frey("all")
    assert ds.x.shape == (1965, 28, 20)
    assert ds.x.min().item() == pytest.approx(8 / 255) and ds.x.max().item() == pytest.approx(238 / 255)
    tr, te = frey.frey("train"), frey.frey("test")
    assert len(tr) + len(te) == 1965 and len(te) == 196


def test_frey_missing_file_is_a_clear_error(tmp_path):
    from vaekit.data import frey
    from vaekit.errors import VaekitError

    with pytest.raises(VaekitError, match="frey"):
        frey.frey("train", data_dir=tmp_path)
    (tmp_path / "frey").mkdir()
    (tmp_path / "frey" / "frey_rawface.mat.gz").write_bytes(b"not gzip")
    with pytest.raises(VaekitError, match="gzip"):
        frey.frey("train", data_dir=tmp_path)


@pytest.mark.skipif(
    not HAS_FREY, reason="Frey faces not found: set VAEKIT_DATA to a folder with frey/frey_rawface.mat.gz"
)
def test_frey_quick_report_end_to_end(tmp_path):
    from vaekit.reports import run_report

    ctx = run_report("frey", out_root=tmp_path, quick=True, run_root=str(tmp_path / "runs"), epochs=3)
    assert all(math.isfinite(r.ours) for r in ctx.rows)
    assert (tmp_path / "frey" / "frey_manifold.png").is_file()


def test_refine_codes_finds_the_map_code_of_a_linear_gaussian_decoder():
    """p(x|z) = N(Wz, s^2 I), p(z) = N(0, I): the MAP code is (W^T W + s^2 I)^-1 W^T x in closed form."""
    torch.manual_seed(0)
    m = build(
        "vae", data_shape=(6,), latent_dim=2, hidden=(8,), likelihood="gaussian", sigma=0.5, activation="identity"
    )
    m.eval()
    x = torch.randn(4, 6)
    z = latent.refine_codes(m, x, steps=2000, lr=0.02)
    # the decoder is affine: read W and b off it
    b = m.generate(torch.zeros(1, 2))[0]
    W = torch.stack([m.generate(torch.eye(2)[i : i + 1])[0] - b for i in range(2)], 1)  # (6, 2)
    z_map = torch.linalg.solve(W.T @ W + 0.25 * torch.eye(2), W.T @ (x - b).T).T
    assert torch.allclose(z, z_map, atol=2e-3)
    assert all(p.requires_grad for p in m.parameters()), "weights are left trainable"


def test_ascend_climbs_to_the_maximum_with_prior_and_projection():
    """f(z) = -||z - c||^2 per code; with the prior term -w/2 ||z||^2 the maximum is 2c / (2 + w)."""
    c = torch.tensor([[1.0, -2.0], [0.5, 0.0]])

    def f(z):
        return -((z - c) ** 2).sum(1)

    path, values = latent.ascend(f, torch.zeros(2, 2), steps=600, lr=0.05, every=200)
    assert path.shape == (4, 2, 2) and values.shape == (4, 2)  # steps 0, 200, 400, 600
    assert torch.equal(path[0], torch.zeros(2, 2)) and torch.allclose(path[-1], c, atol=1e-3)
    assert torch.allclose(values[-1], f(path[-1]))
    path, _ = latent.ascend(f, torch.zeros(2, 2), steps=600, lr=0.05, prior_weight=1.0)
    assert path.shape[0] == 2 and torch.allclose(path[-1], 2 * c / 3, atol=1e-3)
    path, _ = latent.ascend(f, torch.ones(2, 2), steps=5, lr=0.05, project=True)
    assert torch.allclose(path[-1].norm(dim=1), torch.full((2,), 2**0.5))


def test_ascend_refuses_an_objective_without_gradient():
    with pytest.raises(VaekitError, match="returned 1 values for 2 codes"):
        latent.ascend(lambda z: z.sum(), torch.zeros(2, 3), steps=1)
    with pytest.raises(VaekitError, match="no_grad"):
        latent.ascend(torch.no_grad()(lambda z: z.sum(1)), torch.zeros(2, 3), steps=1)


def test_principal_axes_are_the_pca_of_baselines():
    from vaekit.baselines import PCA

    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 5, generator=g) @ torch.randn(5, 5, generator=g)
    axes = latent.principal_axes(z, 3)
    assert torch.equal(axes, torch.as_tensor(PCA(3).fit(z).components_))
    assert torch.allclose(axes @ axes.T, torch.eye(3), atol=1e-5)
    assert latent.principal_axes(torch.randn(10, 1, generator=g)).shape == (1, 1)  # at most D axes
