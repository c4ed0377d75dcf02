"""Reduced-order models of fields: POD (linear) and auto-encoders (nonlinear), and latent dynamics.

A *reducer* maps snapshots X (n, n_x) to coordinates Z (n, r) and back, with the estimator
contract of scikit-learn's PCA: `fit(X)`, `transform(X)`, `inverse_transform(Z)`, `reconstruct(X)`.

    POD(r)                       X ~ mean + Z V_r^T, V_r the first r right singular vectors of X - mean:
                                 the kit's PCA (`baselines.PCA`) of the snapshots
    AutoEncoderROM(r, arch=...)  X ~ decoder(encoder(X)), a core `autoencoder` with a Gaussian
                                 likelihood of fixed sigma (so its loss is a scaled squared error),
                                 trained by `vaekit.train.fit`

    reconstruction_error(reducer, X)  mean over snapshots of ||x - x_hat|| / ||x||

Latent dynamics advance the coordinates of a trajectory in time, z_{t+1} = z_t + g(z_t, mu), with a
small network g fitted to short unrolled windows of training trajectories (`LatentDynamics`) and
rolled out from the encoded initial condition of unseen parameters (`rollout_error`).

The kit's conv bodies are 2-D with kernel 4; a 1-D field cannot be fed to them as a (1, 1, n_x)
image (the height-1 axis vanishes under a stride-2 kernel-4 convolution), so 1-D fields take the
model config's `arch="conv1d"`: 1-D convolutional bodies (`nets.Conv1dEncoderBody`), saved with the
model's config like any other architecture, so a checkpoint rebuilds the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .baselines import PCA
from .bounds import Loss
from .errors import VaekitError
from .models import AutoEncoder, build
from .nets import mlp
from .train import TrainConfig, fit

# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------


def check_snapshots(X, name: str = "snapshots", n_modes: int | None = None, rank: int | None = 2) -> np.ndarray:
    """X as a finite float64 array of shape (n_samples, n_x) (rank 2; rank None allows (n, *space)).

    With `n_modes`, also checks that there are enough snapshots and features to define that many
    modes.  Errors are one-line `VaekitError`s naming `name` and the shape.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise VaekitError(f"{name}: cannot convert to a float array ({e})") from None
    if rank is not None and X.ndim != rank:
        raise VaekitError(f"{name}: expected an array of rank {rank} (n_samples, n_x), got shape {X.shape}")
    if X.ndim < 2 or X.shape[0] == 0 or 0 in X.shape[1:]:
        raise VaekitError(f"{name}: expected a non-empty array (n_samples, n_x, ...), got shape {X.shape}")
    bad = ~np.isfinite(X)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(len(X), -1).any(1))[0])
        raise VaekitError(f"{name}: contains NaN or inf (first in snapshot {i} of shape {X.shape})")
    if n_modes is not None:
        n_modes = int(n_modes)
        limit = min(X.shape[0], math.prod(X.shape[1:]))
        if n_modes < 1:
            raise VaekitError(f"{name}: the latent dimension must be >= 1, got {n_modes}")
        if n_modes > limit:
            raise VaekitError(
                f"{name}: {X.shape[0]} snapshots of {math.prod(X.shape[1:])} values cannot define "
                f"{n_modes} modes; give at least {n_modes} snapshots or lower the latent dimension"
            )
    return X


def relative_errors(X, X_hat) -> np.ndarray:
    """||x - x_hat|| / ||x|| for every snapshot (rows), shape (n,)."""
    X, X_hat = np.asarray(X, float), np.asarray(X_hat, float)
    if X.shape != X_hat.shape:
        raise VaekitError(f"reconstruction has shape {X_hat.shape} but the snapshots have shape {X.shape}")
    num = np.linalg.norm((X - X_hat).reshape(len(X), -1), axis=1)
    den = np.linalg.norm(X.reshape(len(X), -1), axis=1)
    return num / np.maximum(den, 1e-300)


def reconstruction_error(model, X) -> float:
    """Relative L2 error ||x - x_hat|| / ||x|| averaged over the snapshots X (n, n_x)."""
    X = check_snapshots(X, "test snapshots", rank=None)
    return float(relative_errors(X, model.reconstruct(X)).mean())


# --------------------------------------------------------------------------------------------
# POD
# --------------------------------------------------------------------------------------------


class POD(PCA):
    """Proper orthogonal decomposition: the kit's PCA (`baselines.PCA`, an exact SVD in float64) of snapshots
    (n, n_x), with `n_modes` modes and the energy of those it leaves out.

    Learned state: `mean_` (n_x,), `modes_` (n_modes, n_x) orthonormal rows (PCA's `components_`),
    `singular_values_` (all of them, descending) of the centred training snapshot matrix.
    """

    def __init__(self, n_modes: int):
        super().__init__(n_modes, svd_solver="full")
        self.n_modes = n_modes

    def fit(self, X, y=None) -> POD:
        super().fit(check_snapshots(X, "POD training snapshots", self.n_modes))
        self.modes_ = self.components_
        return self

    def transform(self, X) -> np.ndarray:
        X = check_snapshots(X, "POD input")
        self._check_width(X.shape[1])
        return super().transform(X)

    def inverse_transform(self, Z) -> np.ndarray:
        Z = check_snapshots(Z, "POD coefficients")
        if Z.shape[1] != self.n_modes:
            raise VaekitError(f"POD coefficients: expected {self.n_modes} per snapshot, got shape {Z.shape}")
        return super().inverse_transform(Z)

    def energy(self) -> np.ndarray:
        """Fraction of the snapshot energy sum(s^2) captured by the first r modes, for r = 1..len(s)."""
        e = self.singular_values_**2
        return np.cumsum(e) / e.sum()

    def tail_energy(self, r: int | None = None) -> float:
        """sqrt(sum_{i > r} s_i^2 / sum_i s_i^2): the relative Frobenius projection error on the training set."""
        r = self.n_modes if r is None else r
        e = self.singular_values_**2
        return float(np.sqrt(e[r:].sum() / e.sum()))

    def projection_error(self, X) -> float:
        """||X - X_r||_F / ||X - mean||_F over a whole snapshot set (equals `tail_energy` on the training set)."""
        X = check_snapshots(X, "POD input")
        return float(np.linalg.norm(X - self.reconstruct(X)) / np.linalg.norm(X - self.mean_))

    def _check_width(self, n_x):
        if not hasattr(self, "modes_"):
            raise VaekitError("POD: call fit(X) before transform or reconstruct")
        if n_x != self.modes_.shape[1]:
            raise VaekitError(f"POD input: snapshots have {n_x} values but the modes have {self.modes_.shape[1]}")


# --------------------------------------------------------------------------------------------
# auto-encoder reducer
# --------------------------------------------------------------------------------------------


def _train_config(est) -> TrainConfig:
    """The training recipe of the ROM's networks (auto-encoder and latent step): the estimator's epochs, batch
    size, learning rate and seed, a cosine schedule, quiet, on the CPU."""
    return TrainConfig(
        epochs=est.epochs,
        batch_size=est.batch_size,
        lr=est.lr,
        lr_schedule="cosine",
        seed=est.seed,
        progress=False,
        tensorboard=False,
        device="cpu",
    )


@dataclass(eq=False)
class AutoEncoderROM:
    """A core `autoencoder` (Gaussian likelihood, fixed sigma) as a reducer of snapshots (n, *space).

    Snapshots are standardised by one scalar shift and scale (stored as `shift_`, `scale_`) before
    they reach the network, so `sigma` is in units of the field's standard deviation.
    arch: "mlp", "conv" (2-D fields (H, W)) or "conv1d" (1-D fields), the model config's field.
    """

    latent_dim: int
    arch: str = "mlp"
    hidden: tuple[int, ...] = (256, 128)
    channels: tuple[int, ...] = (16, 32, 64)
    activation: str = "elu"
    sigma: float = 0.1
    epochs: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self):
        self.hidden, self.channels = tuple(self.hidden), tuple(self.channels)

    def build(self, data_shape) -> AutoEncoder:
        torch.manual_seed(self.seed)
        return build(
            "autoencoder",
            data_shape=tuple(data_shape),
            latent_dim=self.latent_dim,
            hidden=self.hidden,
            activation=self.activation,
            arch=self.arch,
            channels=self.channels,
            likelihood="gaussian",
            sigma=self.sigma,
        )

    def fit(self, X) -> AutoEncoderROM:
        X = check_snapshots(X, "auto-encoder training snapshots", self.latent_dim, rank=None)
        self.shift_, self.scale_ = float(X.mean()), float(X.std()) or 1.0
        self.model_ = self.build(X.shape[1:])
        cfg = _train_config(self)
        self.history_ = fit(self.model_, torch.from_numpy(self._scaled(X)), cfg)
        return self

    def _scaled(self, X) -> np.ndarray:
        return ((X - self.shift_) / self.scale_).astype(np.float32)

    def _check_fitted(self, X):
        if not hasattr(self, "model_"):
            raise VaekitError("AutoEncoderROM: call fit(X) before transform or reconstruct")
        want = tuple(self.model_.config.data_shape)
        if tuple(X.shape[1:]) != want:
            raise VaekitError(
                f"auto-encoder input: snapshots have shape {tuple(X.shape[1:])}, the model expects {want}"
            )

    def transform(self, X) -> np.ndarray:
        X = check_snapshots(X, "auto-encoder input", rank=None)
        self._check_fitted(X)
        return self.model_.embed(torch.from_numpy(self._scaled(X))).double().numpy()

    def inverse_transform(self, Z) -> np.ndarray:
        Z = check_snapshots(Z, "auto-encoder latents")
        if Z.shape[1] != self.latent_dim:
            raise VaekitError(f"auto-encoder latents: expected {self.latent_dim} per snapshot, got shape {Z.shape}")
        x = self.model_.generate(torch.from_numpy(Z.astype(np.float32))).double().numpy()
        return x * self.scale_ + self.shift_

    def reconstruct(self, X) -> np.ndarray:
        return self.inverse_transform(self.transform(X))


# --------------------------------------------------------------------------------------------
# latent dynamics
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class StepConfig:
    data_shape: tuple[int, ...] = (3,)  # one training row: [z_t, mu, z_{t+1}, ..., z_{t+horizon}] (normalised)
    latent_dim: int = 1
    n_params: int = 1
    horizon: int = 1  # steps unrolled in the loss
    noise: float = 0.0  # std of Gaussian noise added to the starting z_t while training
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "elu"


class LatentStep(nn.Module):
    """z_{t+1} = z_t + g(z_t, mu) in normalised units.

    `loss` unrolls the step `horizon` times from z_t and averages the squared errors against
    z_{t+1} .. z_{t+horizon} (horizon 1 is the plain one-step fit; longer horizons penalise drift).
    Trained with the kit's one training loop: a data row is the concatenation
    [z_t, mu, z_{t+1}, ..., z_{t+horizon}].
    """

    name = "latent_step"

    def __init__(self, config: StepConfig):
        super().__init__()
        self.config = config
        d, p = config.latent_dim, config.n_params
        self.g = mlp([d + p, *config.hidden, d], config.activation)

    def forward(self, z, mu):
        return z + self.g(torch.cat([z, mu], -1))

    def loss(self, rows, step: int = 0) -> Loss:
        d, p, h = self.config.latent_dim, self.config.n_params, self.config.horizon
        z, mu = rows[:, :d], rows[:, d : d + p]
        if self.training and self.config.noise > 0:  # learn to return to the data from nearby states
            z = z + self.config.noise * torch.randn_like(z)
        targets = rows[:, d + p :].reshape(len(rows), h, d)
        errs = []
        for k in range(h):
            z = self(z, mu)
            errs.append((z - targets[:, k]).pow(2).sum(1).mean())
        err = torch.stack(errs).mean()
        return Loss(err, {"rollout_sq_err": err.detach(), "step_sq_err": errs[0].detach()})


@dataclass
class LatentDynamics:
    """Fits g on trajectories of latent coordinates Z (n_traj, n_t, d) with parameters mu (n_traj, p).

    Latents and parameters are standardised per coordinate (`z_mean_`, `z_std_`, `mu_mean_`, `mu_std_`).
    """

    hidden: tuple[int, ...] = (64, 64)
    horizon: int = 4
    noise: float = 0.0
    epochs: int = 400
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0

    def __post_init__(self):
        self.hidden = tuple(self.hidden)

    def fit(self, Z, mu) -> LatentDynamics:
        Z = np.asarray(Z, float)
        mu = check_snapshots(mu, "trajectory parameters")
        h = int(self.horizon)
        if h < 1:
            raise VaekitError(f"latent dynamics: horizon must be >= 1, got {self.horizon}")
        if Z.ndim != 3 or Z.shape[1] < h + 1 or len(Z) != len(mu):
            raise VaekitError(
                f"latent trajectories: expected shape (n_traj, n_t >= horizon + 1 = {h + 1}, d) with "
                f"n_traj = {len(mu)}, got {Z.shape}"
            )
        check_snapshots(Z.reshape(-1, Z.shape[-1]), "latent trajectories")
        d, p = Z.shape[-1], mu.shape[-1]
        self.z_mean_, self.z_std_ = Z.reshape(-1, d).mean(0), Z.reshape(-1, d).std(0) + 1e-8
        self.mu_mean_, self.mu_std_ = mu.mean(0), mu.std(0) + 1e-8
        z = (Z - self.z_mean_) / self.z_std_
        n_win = Z.shape[1] - h  # windows z_t .. z_{t+h} of every trajectory
        m = np.broadcast_to(((mu - self.mu_mean_) / self.mu_std_)[:, None], (len(Z), n_win, p))
        rows = np.concatenate([z[:, :n_win], m] + [z[:, k : k + n_win] for k in range(1, h + 1)], -1)
        rows = rows.reshape(-1, (h + 1) * d + p)
        torch.manual_seed(self.seed)
        self.model_ = LatentStep(StepConfig(((h + 1) * d + p,), d, p, h, self.noise, self.hidden))
        cfg = _train_config(self)
        self.history_ = fit(self.model_, torch.from_numpy(rows.astype(np.float32)), cfg)
        return self

    @torch.no_grad()
    def rollout(self, z0, mu, n_steps: int) -> np.ndarray:
        """From z0 (B, d) with parameters mu (B, p): the trajectory (B, n_steps + 1, d)."""
        z0 = check_snapshots(z0, "initial latents")
        mu = check_snapshots(mu, "trajectory parameters")
        z = torch.from_numpy(((z0 - self.z_mean_) / self.z_std_).astype(np.float32))
        m = torch.from_numpy(((mu - self.mu_mean_) / self.mu_std_).astype(np.float32))
        out = [z]
        for _ in range(n_steps):
            out.append(self.model_(out[-1], m))
        return torch.stack(out, 1).double().numpy() * self.z_std_ + self.z_mean_


def rollout_error(reducer, dynamics: LatentDynamics, u, mu) -> tuple[np.ndarray, np.ndarray]:
    """Roll out from the encoded first snapshot of each trajectory u (n_traj, n_t, n_x).

    Returns (error over time (n_t,) averaged over trajectories, predicted fields (n_traj, n_t, n_x)).
    """
    u = np.asarray(u, float)
    n_traj, n_t = u.shape[:2]
    z = dynamics.rollout(reducer.transform(u[:, 0]), mu, n_t - 1)
    pred = reducer.inverse_transform(z.reshape(n_traj * n_t, -1)).reshape(u.shape)
    err = relative_errors(u.reshape(n_traj * n_t, -1), pred.reshape(n_traj * n_t, -1)).reshape(n_traj, n_t)
    return err.mean(0), pred
