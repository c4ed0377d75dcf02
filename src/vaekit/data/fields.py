"""Snapshots of PDE fields for reduced-order models: deterministic NumPy generators, cached as `.npz`.

    advection(speeds)             u_t + c u_x = 0, a narrow Gaussian pulse on [0, 1), exact solution
    burgers(amplitudes, nus)      u_t + u u_x = nu u_xx on [0, 2 pi), u0 = m + a sin x,
                                  pseudo-spectral solver (integrating-factor RK4, 2/3 de-aliasing),
                                  checked against the Cole-Hopf exact solution `burgers_exact`

Every generator returns `Fields`: trajectories `u` of shape (n_traj, n_t, n_x) with the parameters
`params` (n_traj, n_params) of each trajectory and the common `times` (n_t,).  `Fields.snapshots`
flattens them to the matrix X[n_samples, n_x] that POD and the auto-encoders compress.

Train and test sets are made by calling a generator twice with disjoint parameter values, so a
test snapshot is an unseen parameter, not only an unseen time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VaekitError
from ..io import cached, load_npz, save_npz

CACHE_VERSION = 1


@dataclass
class Fields:
    """Trajectories of a parametrised PDE.  Shapes: u (n_traj, n_t, n_x); params (n_traj, n_params);
    times (n_t,); grid (n_x,) the sample points in space."""

    u: np.ndarray
    params: np.ndarray
    times: np.ndarray
    grid: np.ndarray
    name: str = "field"
    param_names: tuple[str, ...] = ()

    @property
    def snapshots(self) -> np.ndarray:
        """X[n_traj * n_t, n_x] (trajectory-major: row i * n_t + j is trajectory i at time j)."""
        return self.u.reshape(-1, *self.u.shape[2:])

    @property
    def snapshot_params(self) -> np.ndarray:
        """(n_traj * n_t, n_params): the parameters of each row of `snapshots`."""
        return np.repeat(self.params, len(self.times), axis=0)

    @property
    def snapshot_times(self) -> np.ndarray:
        """(n_traj * n_t,): the time of each row of `snapshots`."""
        return np.tile(self.times, len(self.params))


def _positive_1d(values, name: str) -> np.ndarray:
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise VaekitError(f"{name}: expected a non-empty list of finite numbers, got {values!r}")
    return v


# --------------------------------------------------------------------------------------------
# 1-D linear advection
# --------------------------------------------------------------------------------------------


def advection_exact(x, t, speed: float, x0: float = 0.2, width: float = 0.02, length: float = 1.0) -> np.ndarray:
    """u(x, t) = g(x - x0 - c t) with g a Gaussian of std `width`, made periodic by summing images.

    x: (n_x,), t: (n_t,) -> (n_t, n_x).
    """
    x, t = np.asarray(x, float), np.atleast_1d(np.asarray(t, float))
    centre = (x0 + speed * t) % length  # (n_t,)
    d = x[None, :] - centre[:, None]
    images = np.arange(-2, 3) * length  # enough for width << length
    return np.exp(-0.5 * ((d[..., None] + images) / width) ** 2).sum(-1)


def advection(
    speeds, n_x: int = 256, n_t: int = 64, t_end: float = 1.0, x0: float = 0.2, width: float = 0.02
) -> Fields:
    """A pulse carried at speed c for each c in `speeds` on the periodic unit interval."""
    speeds = _positive_1d(speeds, "advection speeds")
    if n_x < 8 or n_t < 2:
        raise VaekitError(f"advection: need n_x >= 8 and n_t >= 2, got n_x={n_x}, n_t={n_t}")
    x = np.arange(n_x) / n_x
    t = np.linspace(0.0, t_end, n_t)
    u = np.stack([advection_exact(x, t, c, x0, width) for c in speeds])
    return Fields(u.astype(np.float32), speeds[:, None], t, x, "advection", ("speed",))


# --------------------------------------------------------------------------------------------
# 1-D viscous Burgers' equation
# --------------------------------------------------------------------------------------------


def burgers_exact(x, t: float, amplitude: float, nu: float, mean: float = 0.0, n_quad: int = 4001) -> np.ndarray:
    """Cole-Hopf solution of u_t + u u_x = nu u_xx on the real line for u0(x) = mean + a sin x.

    With F(y) = int_0^y u0 = mean y + a (1 - cos y) and G(y) = F(y) + (x - y)^2 / (2 t),
        u(x, t) = int (x - y)/t exp(-G / 2 nu) dy  /  int exp(-G / 2 nu) dy.
    The weights are formed in log space (log-sum-exp), so small nu does not overflow; the
    integrand is smooth and peaked, and the trapezoid rule on a window around the peak(s)
    converges fast.  x: (n_x,) -> (n_x,).
    """
    x = np.asarray(x, float)
    if t <= 0:
        return mean + amplitude * np.sin(x)
    umax = abs(mean) + abs(amplitude)
    half = umax * t + 12.0 * np.sqrt(2 * nu * t)  # all mass of the kernel lies inside
    s = np.linspace(-half, half, n_quad)  # s = x - y
    y = x[:, None] - s[None, :]
    g = mean * y + amplitude * (1 - np.cos(y)) + s[None, :] ** 2 / (2 * t)
    logw = -g / (2 * nu)
    w = np.exp(logw - logw.max(1, keepdims=True))
    return (w * s[None, :]).sum(1) / (t * w.sum(1))


def burgers_solve(u0: np.ndarray, nu, times, dt: float | None = None, cfl: float = 0.2) -> np.ndarray:
    """Pseudo-spectral solution of u_t + (u^2/2)_x = nu u_xx on [0, 2 pi) (periodic).

    u0: (B, N) initial fields on x_j = 2 pi j / N; nu: scalar or (B,); times: (n_t,) increasing,
    starting at >= 0.  Diffusion is integrated exactly (integrating factor), the nonlinear term with
    classical RK4, 2/3-rule de-aliasing.  Returns (B, n_t, N).
    """
    u0 = np.atleast_2d(np.asarray(u0, float))
    b, n = u0.shape
    nu = np.broadcast_to(np.asarray(nu, float), (b,))[:, None]
    times = np.asarray(times, float)
    k = np.fft.rfftfreq(n, 1.0 / n)  # integer wave numbers 0..N/2
    keep = (k < n / 3).astype(float)  # 2/3 rule
    if dt is None:
        dt = cfl * (2 * np.pi / n) / max(np.abs(u0).max(), 1e-12)

    def nonlinear(uh):
        u = np.fft.irfft(uh * keep, n)
        return -0.5j * k * np.fft.rfft(u * u) * keep

    out = np.empty((b, len(times), n))
    uh, t = np.fft.rfft(u0), 0.0
    for i, t_out in enumerate(times):
        while t < t_out - 1e-12:
            h = min(dt, t_out - t)
            e = np.exp(-nu * k**2 * h / 2)
            e2 = e * e
            a = nonlinear(uh)
            b1 = nonlinear(e * (uh + h / 2 * a))
            c1 = nonlinear(e * uh + h / 2 * b1)
            d1 = nonlinear(e2 * uh + h * e * c1)
            uh = e2 * uh + h / 6 * (e2 * a + 2 * e * (b1 + c1) + d1)
            t += h
        out[:, i] = np.fft.irfft(uh, n)
    return out


def burgers(
    amplitudes, nus, n_x: int = 256, n_t: int = 50, t_end: float = 3.0, mean: float = 1.0, n_fine: int = 1024
) -> Fields:
    """Burgers trajectories for every (amplitude, nu) pair of the two lists (their outer product).

    u0 = mean + a sin x; the mean carries the shock around the domain at speed `mean`.  Solved on
    `n_fine` points and sampled every n_fine / n_x points.
    """
    amps = _positive_1d(amplitudes, "burgers amplitudes")
    nus = _positive_1d(nus, "burgers viscosities")
    if np.any(nus <= 0):
        raise VaekitError(f"burgers viscosities must be > 0, got {nus.tolist()}")
    if n_fine % n_x:
        raise VaekitError(f"burgers: n_fine={n_fine} must be a multiple of n_x={n_x}")
    params = np.array([(a, v) for a in amps for v in nus])
    xf = 2 * np.pi * np.arange(n_fine) / n_fine
    u0 = mean + params[:, :1] * np.sin(xf)[None, :]
    t = np.linspace(0.0, t_end, n_t)
    u = burgers_solve(u0, params[:, 1], t)[:, :, :: n_fine // n_x]
    return Fields(u.astype(np.float32), params, t, xf[:: n_fine // n_x], "burgers", ("amplitude", "nu"))


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------

GENERATORS: dict[str, Callable[..., Fields]] = {"advection": advection, "burgers": burgers}


def cache_dir(path=None) -> Path:
    """`path`, else $VAEKIT_CACHE/fields, else ~/.cache/vaekit/fields (generated data, not shared data)."""
    if path:
        return Path(path)
    from .core import cache_root

    return cache_root() / "fields"


def generate(name: str, cache=None, use_cache: bool = True, **kwargs) -> Fields:
    """Run generator `name` with `kwargs`, reading/writing `<cache>/<name>-<hash>.npz`."""
    if name not in GENERATORS:
        raise VaekitError(f"unknown field generator {name!r}; choose one of {sorted(GENERATORS)}")
    key = json.dumps(
        {"v": CACHE_VERSION, "name": name, **{k: np.asarray(v).tolist() for k, v in sorted(kwargs.items())}},
        sort_keys=True,
    )
    path = cache_dir(cache) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    return cached(path, lambda: GENERATORS[name](**kwargs), _save, lambda p: _load(p, name), use=use_cache)


def _save(path: Path, fields: Fields) -> None:
    save_npz(
        path,
        {
            "u": fields.u,
            "params": fields.params,
            "times": fields.times,
            "grid": fields.grid,
            "param_names": np.array(fields.param_names),
        },
        compressed=True,
    )


def _load(path: Path, name: str) -> Fields:
    f = load_npz(path)
    return Fields(f["u"], f["params"], f["times"], f["grid"], name, tuple(str(s) for s in f["param_names"]))
