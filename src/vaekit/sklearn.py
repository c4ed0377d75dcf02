"""scikit-learn estimators: a VAE and an auto-encoder with the `PCA`-like contract.

    est = VAEEstimator(latent_dim=2).fit(X)     # X: (n_samples, n_features)
    Z = est.transform(X)                        # posterior means
    X_hat = est.inverse_transform(Z)            # decoder means
    est.score_samples(X)                        # log p(x) per sample (importance sampled, nats)
    est.sample(16)                              # decoded codes from `sampler`: "prior", "gmm" or "twostage"

Parameters are stored as given; learned state ends in an underscore. `likelihood="auto"` picks a
Bernoulli decoder for data in [0, 1] and a Gaussian one with learned variance otherwise (data are
then standardised per feature, and scores are corrected back to the original units).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from . import samplers
from .bounds import log_likelihood
from .models import build
from .train import TrainConfig, fit


class _LatentEstimator(TransformerMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no types
    _model_name = "vae"

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        likelihood: str = "auto",
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        n_importance: int = 100,
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        sampler: str = "prior",
    ):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.activation = activation
        self.likelihood = likelihood
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.n_importance = n_importance
        self.random_state = random_state
        self.device = device
        self.sampler = sampler

    # -- helpers ----------------------------------------------------------------------------
    def _extra_config(self) -> dict[str, Any]:
        return {}

    def _to_model_space(self, X: ArrayLike) -> torch.Tensor:
        X = np.asarray(X, dtype=np.float32)
        return torch.from_numpy((X - self.mean_) / self.scale_).to(self.device)

    def _seed(self) -> int:
        rs = self.random_state
        if rs is None:
            return int(np.random.randint(0, 2**31 - 1))
        if isinstance(rs, (int, np.integer)):
            return int(rs)
        return int(rs.randint(0, 2**31 - 1))

    # -- the contract -------------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: object = None) -> _LatentEstimator:
        """Train on X, shape (n_samples, n_features); y is ignored. Returns the fitted estimator."""
        x: NDArray[np.float32] = validate_data(self, X, dtype=np.float32, ensure_min_samples=2)
        lik = self.likelihood
        if lik == "auto":
            lik = "bernoulli" if x.min() >= 0 and x.max() <= 1 else "gaussian"
        if lik == "bernoulli":
            self.mean_, self.scale_ = np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
        else:
            self.mean_ = x.mean(0)
            sd = x.std(0)
            self.scale_ = np.where(sd > 1e-8, sd, 1.0).astype(np.float32)
        self.likelihood_ = lik
        seed = self._seed()
        torch.manual_seed(seed)
        self.model_ = build(
            self._model_name,
            data_shape=(x.shape[1],),
            latent_dim=self.latent_dim,
            hidden=tuple(self.hidden),
            activation=self.activation,
            likelihood=lik,
            **self._extra_config(),
        )
        cfg = TrainConfig(
            epochs=self.epochs,
            batch_size=min(self.batch_size, len(x)),
            lr=self.lr,
            seed=seed,
            device=self.device,
            progress=False,
            tensorboard=False,
        )
        self.history_ = fit(self.model_, self._to_model_space(x), cfg)
        # where `sample` draws codes: the prior, or a density fitted now on the training codes (posterior means)
        uses_codes = samplers.get(self.sampler).uses_codes
        codes = samplers.fit_codes(self.model_, self._to_model_space(x), seed=seed) if uses_codes else None
        self.sampler_ = samplers.fit(self.sampler, self.model_, codes, seed=seed)
        return self

    def transform(self, X: ArrayLike) -> NDArray[np.float64]:
        """Posterior means E[z|x], shape (n_samples, latent_dim)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        codes: NDArray[np.float64] = self.model_.embed(self._to_model_space(X)).cpu().numpy().astype(np.float64)
        return codes

    def inverse_transform(self, Z: ArrayLike) -> NDArray[np.float64]:
        """Decoder means at codes Z, in the units of the training data, shape (n_samples, n_features)."""
        check_is_fitted(self)
        Z = torch.as_tensor(np.asarray(Z, dtype=np.float32)).reshape(-1, self.latent_dim).to(self.device)
        out = self.model_.generate(Z).cpu().numpy()
        x: NDArray[np.float64] = (out * self.scale_ + self.mean_).astype(np.float64)
        return x

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        """log p(x) per sample in nats (importance sampled with n_importance samples from q(z|x))."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        ll = (
            log_likelihood(self.model_, self._to_model_space(X), k=self.n_importance, noise_fn=self._item_noise)
            .cpu()
            .numpy()
        )
        scores: NDArray[np.float64] = (ll - np.log(self.scale_).sum()).astype(np.float64)
        return scores  # change of variables back to data units

    def _item_noise(self, xb: torch.Tensor, start: int, m: int) -> torch.Tensor:
        """Draws seeded by each item's bytes, so a sample's score does not depend on its batch or order."""
        d = self.latent_dim
        rows = []
        for item in xb.cpu().numpy():
            seed = int.from_bytes(hashlib.blake2b(item.tobytes(), digest_size=8).digest(), "little") >> 1
            rows.append(torch.randn(start + m, d, generator=torch.Generator().manual_seed(seed))[start:])
        return torch.stack(rows, 1).to(xb.device)

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Mean log-likelihood per sample (higher is better, as in sklearn's PCA)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_state: int | None = None) -> NDArray[np.float64]:
        """Decoder means of codes drawn from `sampler_` (the prior, or the density fitted on the training
        codes that `sampler` names), shape (n_samples, n_features)."""
        check_is_fitted(self)
        g = torch.Generator().manual_seed(0 if random_state is None else int(random_state))
        out = samplers.generate(self.model_, self.sampler_, n_samples, g).cpu().numpy()
        x: NDArray[np.float64] = (out * self.scale_ + self.mean_).astype(np.float64)
        return x

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


class VAEEstimator(_LatentEstimator):
    """Variational auto-encoder; `beta` weights the KL term.

    Parameters
    ----------
    latent_dim : int, default=2
        Size of the code z: `transform` returns (n_samples, latent_dim).
    hidden : tuple of int, default=(128,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
    activation : str, default="relu"
        Activation of the hidden layers.
    likelihood : {"auto", "bernoulli", "gaussian"}, default="auto"
        The decoder's distribution over x. "auto": Bernoulli for data in [0, 1], else a Gaussian with learned
        variance on features standardised with the training mean and standard deviation.
    epochs : int, default=50
        Passes over the training data.
    batch_size : int, default=64
        Items per Adam step (at most n_samples).
    lr : float, default=1e-3
        Adam's learning rate.
    n_importance : int, default=100
        Importance samples per item for `score_samples` (log p(x)).
    beta : float, default=1.0
        Weight of the KL term of the ELBO (beta-VAE).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the batches and the sampler.
    device : str, default="cpu"
        Torch device of the model.
    sampler : {"prior", "gmm", "twostage"}, default="prior"
        Where `sample` draws codes: the prior, or a density fitted on the training codes (`vaekit.samplers`).

    Attributes
    ----------
    model_ : vaekit.models.VAE
        The trained model.
    likelihood_ : str
        The likelihood chosen ("bernoulli" or "gaussian").
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation of the features (zeros and ones for the Bernoulli likelihood).
    history_ : vaekit.train.History
        Losses and timings of the training run.
    sampler_ : vaekit.samplers.Sampler
        The sampler of codes that `sample` uses.
    n_features_in_ : int
        Number of features seen by `fit`.
    """

    _model_name = "vae"

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        likelihood: str = "auto",
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        n_importance: int = 100,
        beta: float = 1.0,
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        sampler: str = "prior",
    ):
        super().__init__(
            latent_dim,
            hidden,
            activation,
            likelihood,
            epochs,
            batch_size,
            lr,
            n_importance,
            random_state,
            device,
            sampler,
        )
        self.beta = beta

    def _extra_config(self) -> dict[str, Any]:
        return {"beta": self.beta}


class AutoEncoderEstimator(_LatentEstimator):
    """Deterministic auto-encoder; `score_samples` is minus the summed squared reconstruction error.

    Parameters and attributes are those of `VAEEstimator` without `beta` and `n_importance`; `model_` is a
    `vaekit.models.AutoEncoder`, and `transform` returns its codes, shape (n_samples, latent_dim).
    """

    _model_name = "autoencoder"

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (128,),
        activation: str = "relu",
        likelihood: str = "auto",
        epochs: int = 50,
        batch_size: int = 64,
        lr: float = 1e-3,
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        sampler: str = "prior",
    ):
        super().__init__(
            latent_dim, hidden, activation, likelihood, epochs, batch_size, lr, 0, random_state, device, sampler
        )
        del self.n_importance

    def score_samples(self, X: ArrayLike) -> NDArray[np.float64]:
        X_hat = self.inverse_transform(self.transform(X))
        x: NDArray[np.float32] = validate_data(self, X, dtype=np.float32, reset=False)
        scores: NDArray[np.float64] = -((x - X_hat) ** 2).sum(1)
        return scores
