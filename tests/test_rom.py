"""Snapshot generators against exact solutions, POD against its singular values, AE vs POD, bad input."""

import numpy as np
import pytest
import torch

from vaekit.data import fields
from vaekit.errors import VaekitError
from vaekit.rom import POD, AutoEncoderROM, LatentDynamics, reconstruction_error, relative_errors, rollout_error


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# -- generators -------------------------------------------------------------------------------


def test_advection_is_a_periodic_translate_of_the_initial_pulse():
    f = fields.advection([0.75], n_x=200, n_t=5, t_end=1.0)
    x, t = f.grid, f.times
    # after t the pulse has moved c t; on the grid a shift of c t = k / n_x is a roll by k points
    u0 = f.u[0, 0]
    for j, tj in enumerate(t):
        k = 0.75 * tj * 200
        if abs(k - round(k)) < 1e-9:
            np.testing.assert_allclose(f.u[0, j], np.roll(u0, int(round(k))), atol=1e-6)
    # the pulse is the Gaussian of the given width, peak 1 at x0 + c t (mod 1)
    assert np.isclose(f.u[0, 0].max(), 1.0, atol=1e-6) and np.isclose(x[f.u[0, 0].argmax()], 0.2)
    assert f.snapshots.shape == (5, 200) and f.snapshot_params.shape == (5, 1) and f.snapshot_times.shape == (5,)


def test_burgers_exact_matches_initial_condition_and_heat_limit():
    x = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    np.testing.assert_allclose(fields.burgers_exact(x, 0.0, 0.8, 0.05, mean=0.3), 0.3 + 0.8 * np.sin(x))
    # tiny amplitude: Burgers is the heat equation, u = a e^{-nu t} sin x
    u = fields.burgers_exact(x, 1.0, 1e-4, 0.1)
    np.testing.assert_allclose(u, 1e-4 * np.exp(-0.1) * np.sin(x), rtol=1e-3, atol=1e-10)


@pytest.mark.parametrize("nu", [0.02, 0.05])
def test_burgers_solver_matches_cole_hopf(nu):
    n = 512
    x = 2 * np.pi * np.arange(n) / n
    times = np.array([0.5, 1.5, 2.5])  # before and after the shock forms (t = 1 / a)
    u = fields.burgers_solve(1.0 + np.sin(x)[None], nu, times)[0]
    for i, t in enumerate(times):
        assert rel(u[i], fields.burgers_exact(x, t, 1.0, nu, mean=1.0)) < 1e-3


def test_burgers_generator_shapes_parameters_and_cache(tmp_path):
    kw = dict(amplitudes=[0.8, 1.2], nus=[0.05], n_x=64, n_t=4, t_end=1.0, n_fine=256)
    f = fields.generate("burgers", cache=tmp_path, **kw)
    assert f.u.shape == (2, 4, 64) and f.params.tolist() == [[0.8, 0.05], [1.2, 0.05]]
    assert len(list(tmp_path.glob("burgers-*.npz"))) == 1
    g = fields.generate("burgers", cache=tmp_path, **kw)  # read back from the cache
    np.testing.assert_array_equal(f.u, g.u)
    assert g.param_names == ("amplitude", "nu")
    # Galilean invariance: the mean only carries the solution, u(x, t) = m + v(x - m t, t)
    v = fields.burgers([0.8], [0.05], n_x=256, n_t=2, t_end=np.pi / 2, mean=0.0, n_fine=256).u[0, -1]
    w = fields.burgers([0.8], [0.05], n_x=256, n_t=2, t_end=np.pi / 2, mean=1.0, n_fine=256).u[0, -1]
    np.testing.assert_allclose(w, 1.0 + np.roll(v, 64), atol=1e-4)  # shift pi/2 = 64 points


def test_generators_reject_bad_parameters():
    with pytest.raises(VaekitError, match="viscosities"):
        fields.burgers([1.0], [0.0])
    with pytest.raises(VaekitError, match="speeds"):
        fields.advection([np.nan])
    with pytest.raises(VaekitError, match="unknown field generator"):
        fields.generate("kdv")


# -- POD --------------------------------------------------------------------------------------


def test_pod_error_is_the_tail_energy_of_the_singular_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 30)) @ np.diag(0.7 ** np.arange(30)) + 3.0
    for r in (1, 4, 10):
        pod = POD(r).fit(X)
        s = pod.singular_values_
        expected = np.sqrt((s[r:] ** 2).sum() / (s**2).sum())
        assert np.isclose(pod.projection_error(X), expected, rtol=1e-10)
        assert np.isclose(pod.tail_energy(), expected)
        assert np.isclose(pod.energy()[r - 1], 1 - expected**2)
    # full rank: exact reconstruction; modes orthonormal
    pod = POD(30).fit(X)
    assert reconstruction_error(pod, X) < 1e-12
    np.testing.assert_allclose(pod.modes_ @ pod.modes_.T, np.eye(30), atol=1e-12)


def test_pod_is_the_kits_pca_of_the_snapshots():
    from vaekit.baselines import PCA

    X = np.random.default_rng(1).normal(size=(40, 12)) @ np.diag(0.8 ** np.arange(12))
    pod, pca = POD(3).fit(X), PCA(3, svd_solver="full").fit(X)
    assert isinstance(pod, PCA) and pod.transform(X).dtype == np.float64
    np.testing.assert_allclose(pod.reconstruct(X), pca.reconstruct(X), atol=1e-12)
    assert len(pod.singular_values_) == 12 and np.all(np.diff(pod.singular_values_) <= 0)


def test_relative_error_definition():
    X = np.array([[3.0, 4.0], [1.0, 0.0]])
    X_hat = np.array([[3.0, 4.0 - 0.5], [0.0, 0.0]])
    np.testing.assert_allclose(relative_errors(X, X_hat), [0.1, 1.0])


# -- bad input ---------------------------------------------------------------------------------


def test_bad_snapshot_input_gives_clear_errors():
    with pytest.raises(VaekitError, match=r"rank 2 .*shape \(10,\)"):
        POD(2).fit(np.zeros(10))
    with pytest.raises(VaekitError, match=r"rank 2 .*shape \(2, 3, 4\)"):
        POD(2).fit(np.zeros((2, 3, 4)))
    X = np.ones((10, 8))
    X[3, 5] = np.nan
    with pytest.raises(VaekitError, match="NaN or inf .*snapshot 3"):
        POD(2).fit(X)
    with pytest.raises(VaekitError, match="3 snapshots .* cannot define 5 modes"):
        POD(5).fit(np.random.default_rng(0).normal(size=(3, 8)))
    with pytest.raises(VaekitError, match="3 snapshots .* cannot define 5 modes"):
        AutoEncoderROM(5, epochs=1).fit(np.random.default_rng(0).normal(size=(3, 8)))
    with pytest.raises(VaekitError, match="latent dimension must be >= 1"):
        POD(0).fit(np.ones((4, 4)))
    pod = POD(2).fit(np.random.default_rng(0).normal(size=(10, 8)))
    with pytest.raises(VaekitError, match="8"):
        pod.transform(np.ones((3, 7)))
    with pytest.raises(VaekitError, match="call fit"):
        POD(2).transform(np.ones((3, 7)))
    with pytest.raises(VaekitError, match="arch"):
        AutoEncoderROM(2, arch="rnn", epochs=1).fit(np.ones((4, 8)))


# -- auto-encoder vs POD ------------------------------------------------------------------------


def test_autoencoder_beats_pod_on_quick_advection():
    torch.set_num_threads(1)
    train = fields.advection(np.linspace(0.5, 1.0, 8), n_x=64, n_t=32, width=0.04)
    test = fields.advection(np.linspace(0.5, 1.0, 8)[:-1] + 1 / 28, n_x=64, n_t=32, width=0.04)
    pod = POD(2).fit(train.snapshots)
    ae = AutoEncoderROM(2, hidden=(128, 64), epochs=60, batch_size=32).fit(train.snapshots)
    e_pod, e_ae = reconstruction_error(pod, test.snapshots), reconstruction_error(ae, test.snapshots)
    assert e_pod > 0.5  # a pulse at a new place is far from any 2-D subspace
    assert e_ae < 0.3 * e_pod, (e_ae, e_pod)
    # the auto-encoder reducer round-trips shapes
    z = ae.transform(test.snapshots[:5])
    assert z.shape == (5, 2) and ae.inverse_transform(z).shape == (5, 64)


def test_latent_dynamics_learns_a_rotation_and_rolls_out():
    # z_{t+1} = R(mu) z_t: rotation by angle mu; an exact linear dynamics the network must learn
    mus = np.linspace(0.1, 0.3, 6)[:, None]
    t = np.arange(20)
    Z = np.stack([np.stack([np.cos(m * t), np.sin(m * t)], -1) for m in mus[:, 0]])
    dyn = LatentDynamics(hidden=(32, 32), epochs=150, batch_size=32).fit(Z, mus)
    mu_test = np.array([[0.22]])
    pred = dyn.rollout(np.array([[1.0, 0.0]]), mu_test, 10)
    truth = np.stack([np.cos(0.22 * np.arange(11)), np.sin(0.22 * np.arange(11))], -1)
    assert pred.shape == (1, 11, 2)
    assert np.abs(pred[0] - truth).max() < 0.1
    with pytest.raises(VaekitError, match="latent trajectories"):
        dyn.fit(Z[:, :1], mus)


def test_rollout_error_with_pod_is_zero_for_exact_dynamics():
    # a field that lives in a 2-D subspace, advanced by an exact rotation: roll-out error ~ 0
    x = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    mus = np.linspace(0.1, 0.3, 5)[:, None]
    t = np.arange(15)
    u = np.stack([np.sin(x[None] - m * t[:, None]) + 2.0 for m in mus[:, 0]])
    pod = POD(2).fit(u.reshape(-1, 32))
    Z = pod.transform(u.reshape(-1, 32)).reshape(5, 15, 2)
    dyn = LatentDynamics(hidden=(32, 32), epochs=150, batch_size=32).fit(Z, mus)
    err, pred = rollout_error(pod, dyn, u[1:3], mus[1:3])
    assert err.shape == (15,) and pred.shape == u[1:3].shape
    assert err[0] < 1e-6 and err.max() < 0.05


def test_conv_autoencoders_on_1d_and_2d_fields():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X1 = rng.normal(size=(16, 40))  # odd sizes on purpose (40 -> 20 -> 10 -> 5)
    ae = AutoEncoderROM(3, arch="conv1d", channels=(4, 8, 8), hidden=(16,), epochs=1, batch_size=8).fit(X1)
    assert ae.transform(X1).shape == (16, 3) and ae.reconstruct(X1).shape == (16, 40)
    X2 = rng.normal(size=(8, 12, 10))  # 2-D fields use the core's conv bodies
    ae2 = AutoEncoderROM(2, arch="conv", channels=(4, 8), hidden=(16,), epochs=1, batch_size=4).fit(X2)
    assert ae2.reconstruct(X2).shape == (8, 12, 10)
    assert np.isfinite(reconstruction_error(ae2, X2))
    with pytest.raises(VaekitError, match="conv1d"):
        AutoEncoderROM(2, arch="conv1d", epochs=1).fit(X2)


@pytest.mark.slow
def test_quick_report(tmp_path):
    import json

    from vaekit.reports import run_report

    run_report("rom", out_root=tmp_path, quick=True)
    d = json.loads((tmp_path / "rom" / "results.json").read_text())
    rows = {(r["data"], r["metric"]): r for r in d["rows"]}
    assert rows[("burgers", "solver vs Cole-Hopf, max rel. L2")]["met"]
    assert rows[("advection", "AE / POD error ratio, r=2")]["ours"] < 0.3
    for f in d["figures"]:
        assert (tmp_path / "rom" / f).is_file()


def test_a_conv1d_auto_encoder_is_rebuilt_from_its_checkpoint(tmp_path):
    """The 1-D convolutional bodies are the model config's arch, so the saved config rebuilds the same model."""
    from vaekit import checkpoint

    torch.set_num_threads(1)
    X = np.random.default_rng(1).normal(size=(16, 24))
    ae = AutoEncoderROM(2, arch="conv1d", channels=(4, 4), hidden=(8,), epochs=1, batch_size=8).fit(X)
    assert ae.model_.config.arch == "conv1d"
    checkpoint.save(tmp_path / "rom.safetensors", ae.model_)
    again = checkpoint.load_model(tmp_path / "rom.safetensors")
    x = torch.from_numpy(ae._scaled(X))
    assert again.config == ae.model_.config
    assert torch.equal(again.embed(x), ae.model_.embed(x)) and torch.equal(
        again.generate(again.embed(x)), ae.model_.generate(ae.model_.embed(x))
    )
    with pytest.raises(VaekitError, match="n >= 5"):  # three stride-2 convolutions need 5 values
        AutoEncoderROM(2, arch="conv1d", channels=(4, 4, 4), epochs=1).fit(np.ones((4, 4)))
