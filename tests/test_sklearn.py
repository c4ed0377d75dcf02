"""The sklearn estimator contract."""

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from vaekit.data import load
from vaekit.sklearn import AutoEncoderEstimator, VAEEstimator


@pytest.mark.parametrize("Est", [VAEEstimator, AutoEncoderEstimator])
def test_check_estimator_all_applicable_checks_pass(Est):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(Est(epochs=2, random_state=0), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = [r["check_name"] for r in results if r["status"] == "skipped"]
    assert failed == []
    assert skipped == ["check_array_api_input"]  # needs SCIPY_ARRAY_API; not applicable to torch models


def digits_flat():
    d = load("digits", "all")
    return d.x.reshape(len(d), -1).numpy(), d.y.numpy()


def test_transform_inverse_score_sample():
    X, _ = digits_flat()
    est = VAEEstimator(latent_dim=4, hidden=(64,), epochs=10, random_state=0).fit(X[:500])
    Z = est.transform(X[:50])
    assert Z.shape == (50, 4) and est.likelihood_ == "bernoulli"
    assert est.inverse_transform(Z).shape == (50, 64)
    s = est.score_samples(X[:50])
    assert s.shape == (50,) and np.all(s < 0)
    assert np.allclose(est.score_samples(X[:50][::-1]), s[::-1])  # same value per item, any order
    assert est.sample(7, random_state=1).shape == (7, 64)


def test_gaussian_scores_are_in_data_units():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(400, 3))
    est = VAEEstimator(latent_dim=1, hidden=(16,), epochs=40, random_state=0).fit(X)
    assert est.likelihood_ == "gaussian"
    # an isotropic Gaussian of std 3 in 3-D has entropy 3 * (0.5 * log(2 pi e) + log 3) = 7.55 nats
    assert -est.score(X) == pytest.approx(3 * (0.5 * np.log(2 * np.pi * np.e) + np.log(3.0)), abs=0.5)


def test_pipeline_and_grid_search():
    X, y = digits_flat()
    pipe = make_pipeline(
        AutoEncoderEstimator(latent_dim=8, hidden=(64,), epochs=15, random_state=0), LogisticRegression(max_iter=500)
    )
    pipe.fit(X[:1200], y[:1200])
    assert pipe.score(X[1200:], y[1200:]) > 0.6
    gs = GridSearchCV(VAEEstimator(hidden=(32,), epochs=3, random_state=0), {"latent_dim": [2, 6]}, cv=2)
    gs.fit(X[:300])
    assert gs.best_params_["latent_dim"] in (2, 6)
    # PCA-like usage: the same call sequence works for both
    for est in (PCA(2), VAEEstimator(latent_dim=2, epochs=2, random_state=0)):
        assert est.fit(X[:100]).transform(X[:5]).shape == (5, 2)
