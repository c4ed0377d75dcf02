"""Samplers of codes: the prior, a Gaussian mixture and a two-stage VAE fitted on codes; their files and errors."""

import math

import numpy as np
import pytest
import torch

import vaekit
from vaekit import samplers
from vaekit.errors import VaekitError


def model(latent_dim=2, seed=0, **kw):
    torch.manual_seed(seed)
    return vaekit.build("vae", data_shape=(6,), latent_dim=latent_dim, hidden=(8,), **kw)


def two_clusters(n, seed, means=((-3.0, 1.0), (2.0, -1.0)), std=0.4, weight=0.3):
    g = torch.Generator().manual_seed(seed)
    which = (torch.rand(n, generator=g) < weight).long()
    return torch.tensor(means)[which] + std * torch.randn(n, 2, generator=g)


def ring(n, seed):
    g = torch.Generator().manual_seed(seed)
    r = 2.0 + 0.15 * torch.randn(n, generator=g)
    a = 2 * math.pi * torch.rand(n, generator=g)
    return torch.stack([r * a.cos(), r * a.sin()], 1)


# -- numerics ----------------------------------------------------------------------------------------
def test_gmm_recovers_the_means_and_weights_of_a_known_mixture():
    m = model()
    gmm = samplers.fit("gmm", m, two_clusters(4000, 0), n_components=2)
    order = gmm.means[:, 0].argsort()
    assert torch.allclose(gmm.means[order].float(), torch.tensor([[-3.0, 1.0], [2.0, -1.0]]), atol=0.05)
    assert torch.allclose(gmm.weights[order].float(), torch.tensor([0.7, 0.3]), atol=0.03)
    assert torch.allclose(gmm.covariances[order].float(), 0.16 * torch.eye(2).expand(2, 2, 2), atol=0.02)
    # and its draws have the mixture's moments
    z = gmm.sample(20000, torch.Generator().manual_seed(1))
    assert torch.allclose(z.mean(0), torch.tensor([0.7 * -3 + 0.3 * 2, 0.7 * 1 + 0.3 * -1]), atol=0.06)


def test_gmm_bic_picks_the_true_count_and_its_file_reloads(tmp_path):
    m = model()
    g = torch.Generator().manual_seed(5)
    centres = torch.tensor([[-3.0, 1.0], [2.0, -1.0], [0.0, 4.0], [4.0, 4.0]])
    codes = centres[torch.arange(2000) % 4] + 0.4 * torch.randn(2000, 2, generator=g)  # four round clusters
    gmm = samplers.fit("gmm", m, codes, n_components="bic")
    assert set(gmm.bic) == {1, 2, 4, 8, 16, 32, 64}
    assert min(gmm.bic, key=gmm.bic.get) == 4 == len(gmm.weights)  # too few and too many both lose
    path = samplers.save(gmm, tmp_path / "g.safetensors")
    back = samplers.load(path, m)
    assert back.config.n_components == "bic" and torch.equal(back.means, gmm.means)
    small = samplers.fit("gmm", m, codes[:5], n_components="bic")  # only the counts up to the number of codes
    assert set(small.bic) == {1, 2, 4}


@pytest.mark.parametrize("name,opts", [("prior", {}), ("gmm", {"n_components": 3}), ("twostage", {"steps": 20})])
def test_samples_have_the_codes_shape_and_follow_the_generator(name, opts):
    m = model(latent_dim=3)
    s = samplers.fit(name, m, torch.randn(200, 3), **opts)
    a = s.sample(5, torch.Generator().manual_seed(7))
    b = s.sample(5, torch.Generator().manual_seed(7))
    c = s.sample(5, torch.Generator().manual_seed(8))
    assert a.shape == (5, 3) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert s.log_prob(a).shape == (5,)
    x = samplers.generate(m, s, 4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 6)


def test_the_prior_sampler_decodes_exactly_what_model_sample_does():
    m = model()
    s = samplers.fit("prior", m)
    got = samplers.generate(m, s, 9, torch.Generator().manual_seed(3))
    assert torch.equal(got, m.sample(9, generator=torch.Generator().manual_seed(3)))
    z = torch.randn(4, 2)
    assert torch.allclose(s.log_prob(z), m.prior().log_prob(z))


def _integral(sampler, lo=-12.0, hi=12.0, n=4001):
    grid = torch.linspace(lo, hi, n)
    p = sampler.log_prob(grid[:, None]).double().exp()
    return float(torch.trapezoid(p, grid.double()))


def test_log_prob_integrates_to_one_in_one_dimension():
    m = model(latent_dim=1)
    g = torch.Generator().manual_seed(0)
    z = torch.cat([torch.randn(300, 1, generator=g) * 0.5 - 2, torch.randn(200, 1, generator=g) + 3])
    assert _integral(samplers.fit("prior", m)) == pytest.approx(1.0, abs=1e-6)
    assert _integral(samplers.fit("gmm", m, z, n_components=3)) == pytest.approx(1.0, abs=1e-4)
    # the two-stage VAE's log_prob is an importance-sampled bound: close to a density, never far above one
    two = samplers.fit("twostage", m, z, steps=300, k=200)
    assert 0.8 < _integral(two, -8, 8, 801) < 1.05


def test_gmm_log_prob_is_the_mixture_density():
    m = model()
    gmm = samplers.fit("gmm", m, two_clusters(500, 0), n_components=2)
    z = torch.tensor([[0.5, -0.25]], dtype=torch.float64)
    dens = sum(
        float(w) * math.exp(float(torch.distributions.MultivariateNormal(mu, c).log_prob(z)))
        for w, mu, c in zip(gmm.weights, gmm.means, gmm.covariances)
    )
    assert float(gmm.log_prob(z)) == pytest.approx(math.log(dens), rel=1e-5)


def test_two_stage_vae_beats_one_gaussian_on_a_ring():
    """Held-out log-likelihood (nats per code) on a non-Gaussian 2-D distribution."""
    m = model()
    train, test = ring(2000, 0), ring(1000, 1)
    gauss = float(samplers.fit("gmm", m, train, n_components=1).log_prob(test).mean())
    two = float(samplers.fit("twostage", m, train, steps=800, k=200).log_prob(test).mean())
    assert two > gauss + 0.2


# -- files -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,opts", [("prior", {}), ("gmm", {"n_components": 2}), ("twostage", {"steps": 20})])
def test_save_load_round_trip(tmp_path, name, opts):
    m = model()
    s = samplers.fit(name, m, two_clusters(300, 0), **opts)
    path = samplers.save(s, tmp_path / "s.safetensors")
    back = samplers.load(path, m)
    assert type(back) is type(s) and back.config == s.config and back.n_codes == s.n_codes
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(back.sample(6, g()), s.sample(6, g()))
    z = torch.randn(6, 2)
    assert torch.allclose(back.log_prob(z), s.log_prob(z))
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, nothing half-written left


def test_the_gmm_file_holds_its_parameters_as_tensors(tmp_path):
    from safetensors.torch import load_file

    m = model()
    samplers.save(samplers.fit("gmm", m, two_clusters(300, 0), n_components=2), tmp_path / "g.safetensors")
    t = load_file(tmp_path / "g.safetensors")
    assert {k: tuple(v.shape) for k, v in t.items()} == {"weights": (2,), "means": (2, 2), "covariances": (2, 2, 2)}


def counted_codes():
    """Training codes for `samplers.cached`, and the list that counts how often they were asked for."""
    calls: list[int] = []

    def codes():
        calls.append(1)
        return two_clusters(200, 0)

    return codes, calls


def test_cached_refits_only_when_the_model_or_options_change(tmp_path):
    m = model()
    codes, calls = counted_codes()
    path = tmp_path / "sampler-gmm.safetensors"
    a = samplers.cached(path, "gmm", m, codes, n_components=2)
    b = samplers.cached(path, "gmm", m, codes, n_components=2)
    assert len(calls) == 1 and torch.equal(a.means, b.means)
    samplers.cached(path, "gmm", m, codes, n_components=3)  # other options: fitted again
    samplers.cached(path, "gmm", model(seed=1), codes, n_components=3)  # another model: fitted again
    assert len(calls) == 3
    path.write_bytes(b"garbage")  # a broken cache is replaced
    samplers.cached(path, "gmm", m, codes, n_components=3)
    assert len(calls) == 4 and samplers.load(path, m).config.n_components == 3


def test_cached_refits_a_sampler_fitted_on_other_codes_than_the_model_asks_for(tmp_path):
    """A sampler file records whether it was fitted on posterior means or draws; a model that asks for the
    other kind gets one fitted again."""
    import json

    from safetensors import safe_open

    m = model()
    codes, calls = counted_codes()
    path = tmp_path / "sampler-gmm.safetensors"
    samplers.cached(path, "gmm", m, codes, n_components=2)
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["vaekit-sampler"])["fitted_on"] == "mean"
    m.sampler_codes = "draw"  # what the chemical VAE asks for
    s = samplers.cached(path, "gmm", m, codes, n_components=2)
    assert len(calls) == 2 and s.fitted_on == "draw" and samplers.load(path, m).fitted_on == "draw"
    samplers.cached(path, "gmm", m, codes, n_components=2)
    assert len(calls) == 2
    assert "(draw)" in repr(s)


def test_a_committed_model_keeps_its_samplers_in_the_cache_not_in_the_source_tree(tmp_path, monkeypatch):
    from vaekit.models.pretrained import ROOT

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    assert samplers.kept(tmp_path / "run", "gmm") == tmp_path / "run" / "sampler-gmm.safetensors"
    assert samplers.kept(ROOT / "chemvae-smiles", "gmm") == (
        tmp_path / "cache" / "samplers" / "chemvae-smiles" / "sampler-gmm.safetensors"
    )


# -- errors ------------------------------------------------------------------------------------------
def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_unknown_sampler_lists_the_known_ones():
    with pytest.raises(VaekitError) as e:
        samplers.fit("flowz", model(), torch.randn(100, 2))
    assert "unknown sampler 'flowz'" in one_line(e) and "gmm, prior, twostage" in one_line(e)


def test_too_few_codes():
    m = model()
    with pytest.raises(VaekitError) as e:
        samplers.fit("gmm", m, torch.randn(5, 2))
    assert "10 components need at least 10 codes, got 5" in one_line(e)
    with pytest.raises(VaekitError) as e:
        samplers.fit("twostage", m, torch.randn(20, 2))
    assert "needs at least 64 codes to fit, got 20" in one_line(e)


def test_non_finite_and_misshapen_codes():
    m = model()
    z = torch.randn(50, 2)
    z[7, 1] = float("nan")
    z[9, 0] = float("inf")
    with pytest.raises(VaekitError) as e:
        samplers.fit("gmm", m, z)
    assert "2 codes are NaN or inf (first: code 7)" in one_line(e)
    with pytest.raises(VaekitError) as e:
        samplers.fit("gmm", m, torch.randn(50, 3))
    assert "expected shape (n_codes, 2), got (50, 3)" in one_line(e)
    with pytest.raises(VaekitError) as e:
        samplers.fit("gmm", m)
    assert "pass the training set's codes" in one_line(e)


def test_bad_options_and_counts():
    m = model()
    with pytest.raises(VaekitError) as e:
        samplers.fit("gmm", m, torch.randn(50, 2), components=3)
    assert "unknown option(s) ['components'] for sampler 'gmm'" in one_line(e)
    with pytest.raises(VaekitError) as e:
        samplers.fit("gmm", m, torch.randn(50, 2), n_components=0)
    assert "n_components must be a positive integer or 'bic', got 0" in one_line(e)
    s = samplers.fit("prior", m)
    with pytest.raises(VaekitError) as e:
        s.sample(0)
    assert "positive integer, got 0" in one_line(e)


def test_a_sampler_file_from_another_model_is_refused(tmp_path):
    a, b = model(seed=0), model(seed=1)
    path = samplers.save(samplers.fit("gmm", a, torch.randn(50, 2), n_components=2), tmp_path / "s.safetensors")
    with pytest.raises(VaekitError) as e:
        samplers.load(path, b)
    msg = one_line(e)
    ida, idb = samplers.model_id(a), samplers.model_id(b)
    assert (
        f"sampler fitted for vae (latent_dim 2, weights {ida['digest'][:12]}) cannot draw codes for "
        f"vae (latent_dim 2, weights {idb['digest'][:12]})" in msg
    )
    with pytest.raises(VaekitError) as e:
        samplers.load(path, model(latent_dim=3))
    assert "cannot draw codes for vae (latent_dim 3" in one_line(e)


def test_corrupt_and_foreign_files(tmp_path):
    m = model()
    path = samplers.save(samplers.fit("gmm", m, torch.randn(50, 2), n_components=2), tmp_path / "s.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(VaekitError) as e:
        samplers.load(path, m)
    assert "checksum mismatch" in one_line(e)
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(VaekitError) as e:
        samplers.load(path, m)
    assert "corrupt or truncated sampler file" in one_line(e)
    vaekit.checkpoint.save(tmp_path / "ckpt.safetensors", m)
    with pytest.raises(VaekitError) as e:
        samplers.load(tmp_path / "ckpt.safetensors", m)
    assert "not a vaekit sampler file" in one_line(e)
    with pytest.raises(VaekitError) as e:
        samplers.load(tmp_path / "missing.safetensors", m)
    assert "no sampler file here" in one_line(e)


# -- faces: the command line and the sklearn estimator ------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from vaekit.cli import main

    rd = tmp_path_factory.mktemp("samplers") / "run"
    main(
        [
            "fit",
            str(rd),
            "--data",
            "digits",
            "--latent-dim",
            "2",
            "--hidden",
            "32",
            "--epochs",
            "3",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    return rd


def test_fit_codes_takes_a_seeded_subset_of_at_most_limit_items():
    m = model(latent_dim=3)
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    all_codes = samplers.codes(m, x)
    assert torch.equal(samplers.fit_codes(m, x), all_codes)  # below the limit: every item, in order
    some = samplers.fit_codes(m, x, limit=20, seed=1)
    assert some.shape == (20, 3) and torch.equal(some, samplers.fit_codes(m, x, limit=20, seed=1))
    # each one an item's own code, none twice
    dist, rows = torch.cdist(some, all_codes, compute_mode="donot_use_mm_for_euclid_dist").min(1)
    assert dist.max() < 1e-5 and len(set(rows.tolist())) == 20
    assert not torch.equal(some, samplers.fit_codes(m, x, limit=20, seed=2))


def test_fit_codes_are_draws_where_the_model_says_so():
    m = model(latent_dim=3)
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samplers.fit_codes(m, x), samplers.codes(m, x))  # an image VAE: posterior means
    m.sampler_codes = "draw"  # as the chemical VAE says of itself
    drawn = samplers.fit_codes(m, x, seed=4)
    assert torch.equal(drawn, samplers.codes(m, x, draw=True, seed=4)) and not torch.equal(drawn, samplers.codes(m, x))


def test_gain_over_the_prior_is_the_kl_of_a_shifted_gaussian():
    """Codes from N(2, 0.5^2) in each of 2 dimensions, a one-component mixture fitted on them: its gain over
    the prior N(0, I) on held-out codes is KL(N(2, 0.25) || N(0, 1)) = 2 (log 2 + 4.25 / 2 - 1 / 2) nats; the
    prior's own gain is exactly 0."""
    m = model(latent_dim=2)
    g = torch.Generator().manual_seed(0)
    fit_on, held = (2 + 0.5 * torch.randn(20000, 2, generator=g) for _ in range(2))
    gmm = samplers.fit("gmm", m, fit_on, n_components=1)
    assert samplers.gain(m, gmm, held) == pytest.approx(2 * (math.log(2) + 4.25 / 2 - 0.5), abs=0.05)
    assert samplers.gain(m, samplers.fit("prior", m), held) == 0.0


def test_cli_sample_with_a_fitted_gmm(digits_run, tmp_path, capsys):
    from vaekit.checkpoint import load_model
    from vaekit.cli import main
    from vaekit.data import load

    main(["sample", str(digits_run), "--sampler", "gmm", "-n", "12", "--out", str(tmp_path / "g.npy")])
    n_train = len(load("digits", "train"))
    assert f"fitting the gmm sampler on the posterior means of {n_train} training items" in capsys.readouterr().out
    cache = digits_run / "sampler-gmm.safetensors"
    m = load_model(digits_run)
    s = samplers.load(cache, m)  # fitted for this run's model, on its training codes
    assert s.n_codes == n_train
    want = samplers.fit("gmm", m, samplers.codes(m, load("digits", "train").x))
    assert torch.allclose(s.means, want.means)
    x = np.load(tmp_path / "g.npy")
    assert x.shape == (12, 8, 8)
    assert np.allclose(x, samplers.generate(m, want, 12, torch.Generator().manual_seed(0)).numpy(), atol=1e-6)
    stamp = cache.stat().st_mtime_ns
    main(["sample", str(digits_run), "--sampler", "gmm", "-n", "12", "--out", str(tmp_path / "g2.npy")])
    assert "fitting" not in capsys.readouterr().out and cache.stat().st_mtime_ns == stamp  # the cached one
    assert np.array_equal(np.load(tmp_path / "g2.npy"), x)


def test_cli_sample_prior_is_unchanged_and_fits_nothing(digits_run, tmp_path):
    from vaekit.checkpoint import load_model
    from vaekit.cli import main

    main(["sample", str(digits_run), "-n", "5", "--seed", "2", "--out", str(tmp_path / "p.npy")])
    m = load_model(digits_run)
    assert np.array_equal(np.load(tmp_path / "p.npy"), m.sample(5, generator=torch.Generator().manual_seed(2)).numpy())
    assert not (digits_run / "sampler-prior.safetensors").exists()


def test_cli_unknown_sampler_is_one_line(digits_run, capsys):
    from vaekit.cli import main

    with pytest.raises(SystemExit) as e:
        main(["sample", str(digits_run), "--sampler", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown sampler 'nope'; known samplers: gmm, prior, twostage" in err


def test_sklearn_sample_with_a_sampler():
    from vaekit.data import load
    from vaekit.sklearn import AutoEncoderEstimator, VAEEstimator

    d = load("digits", "all")
    X = d.x.reshape(len(d), -1).numpy()[:400]
    est = VAEEstimator(latent_dim=2, hidden=(32,), epochs=3, random_state=0, sampler="gmm").fit(X)
    assert est.get_params()["sampler"] == "gmm" and est.sampler_.n_codes == 400
    a = est.sample(6, random_state=1)
    assert a.shape == (6, 64) and np.array_equal(a, est.sample(6, random_state=1))
    assert np.allclose(
        a, est.inverse_transform(est.sampler_.sample(6, torch.Generator().manual_seed(1)).numpy()), atol=1e-5
    )
    # the codes it was fitted on are the training set's posterior means
    ref = samplers.fit("gmm", est.model_, est.transform(X), seed=0)
    assert torch.allclose(est.sampler_.means, ref.means, atol=1e-4)
    ae = AutoEncoderEstimator(latent_dim=2, hidden=(32,), epochs=2, random_state=0, sampler="gmm").fit(X)
    assert ae.sample(3).shape == (3, 64)
    with pytest.raises(VaekitError, match="unknown sampler 'nope'"):
        VAEEstimator(epochs=1, sampler="nope").fit(X[:50])


def test_a_sequence_model_draws_its_items_stochastically_from_sampler_codes():
    pytest.importorskip("rdkit")
    pytest.importorskip("selfies")
    from vaekit.chem.dataset import chem_model
    from vaekit.data.smiles import Molecules

    mols = Molecules(
        ["CCO", "c1ccccc1O", "CC(=O)N", "CCCCN"] * 20, {p: np.arange(80.0) for p in ("logP", "QED", "SAS")}
    )
    model = chem_model(mols, kind="selfies", latent_dim=3, gru_hidden=16, gru_layers=1).eval()
    s = samplers.fit("gmm", model, torch.randn(40, 3, generator=torch.Generator().manual_seed(0)), n_components=2)
    a = samplers.generate(model, s, 30, torch.Generator().manual_seed(1))
    b = samplers.generate(model, s, 30, torch.Generator().manual_seed(1))
    c = samplers.generate(model, s, 30, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)  # seeded, and not the greedy mode of each code
    z = s.sample(30, torch.Generator().manual_seed(1))
    assert not torch.equal(a, model.generate(z))
