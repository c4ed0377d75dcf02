"""Policy learning: a one-step bandit with continuous actions and a Gaussian policy.

The agent draws an action a ~ pi(a; mu) = N(mu, sigma^2) (sigma fixed: the exploration noise) and gets
a reward r(a).  It climbs the expected reward

    J(mu) = E_{a ~ N(mu, sigma^2)}[r(a)]

with one of four gradient estimators from `vaekit.estimators`, each given the same number of reward
evaluations per step:

    "reinforce"           score function, no baseline   E[r(a) (a - mu) / sigma^2]
    "reinforce_baseline"  score function, leave-one-out baseline b: E[(r(a) - b) (a - mu) / sigma^2]
    "pathwise"            a = mu + sigma eps, differentiate r:      E[r'(mu + sigma eps)]
    "es"                  evolution strategies: antithetic perturbations of mu, no derivative at all

REINFORCE needs only the reward's values (a simulator, a game); the pathwise gradient needs r to be
differentiable in the action, and pays back with a much smaller variance.

Two rewards whose J is known in closed form:
* `Quadratic`:  r(a) = peak - curvature (a - optimum)^2,   J(mu) = peak - curvature ((mu - optimum)^2 + sigma^2)
* `Bumps`:      r(a) = sum_i w_i exp(-(a - m_i)^2 / (2 s_i^2)),
                J(mu) = sum_i w_i s_i / sqrt(s_i^2 + sigma^2) exp(-(mu - m_i)^2 / (2 (s_i^2 + sigma^2)))
  (multimodal: gradient ascent finds the local maximum of J uphill of its start.)
Actions and mu are scalars (units of the action); rewards in reward units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import distributions as D

from . import estimators as E
from .errors import VaekitError

__all__ = ["Quadratic", "Bumps", "gaussian_policy", "policy_gradient", "LearningCurve", "learn", "POLICY_METHODS"]

POLICY_METHODS = ("pathwise", "reinforce_baseline", "reinforce", "es")


def _check_sigma(sigma) -> float:
    s = float(sigma)
    if not math.isfinite(s) or s <= 0:
        raise VaekitError(f"sigma (the policy's standard deviation) must be > 0, got {sigma!r}")
    return s


def gaussian_policy(mu, sigma: float) -> D.Normal:
    """pi(a; mu) = N(mu, sigma^2), a scalar action; `mu` may be a tensor that requires grad."""
    return D.Normal(torch.as_tensor(mu, dtype=torch.float64), _check_sigma(sigma))


@dataclass(frozen=True)
class Quadratic:
    """r(a) = peak - curvature (a - optimum)^2; the best policy mean is `optimum` for every sigma."""

    optimum: float = 2.0
    curvature: float = 1.0
    peak: float = 0.0

    def __post_init__(self):
        if not float(self.curvature) > 0:
            raise VaekitError(f"curvature must be > 0, got {self.curvature!r}")

    def reward(self, a: torch.Tensor) -> torch.Tensor:
        return self.peak - self.curvature * (a - self.optimum) ** 2

    def value(self, mu, sigma: float) -> np.ndarray:
        """J(mu) in closed form, for mu a float or an array."""
        mu = np.asarray(mu, dtype=float)
        return self.peak - self.curvature * ((mu - self.optimum) ** 2 + _check_sigma(sigma) ** 2)

    def best_mean(self, sigma: float, start: float | None = None) -> float:
        return float(self.optimum)


@dataclass(frozen=True)
class Bumps:
    """r(a) = sum_i weights_i exp(-(a - centres_i)^2 / (2 widths_i^2)): several peaks."""

    centres: tuple = (-1.0, 2.0)
    widths: tuple = (0.4, 0.3)
    weights: tuple = (0.6, 1.0)

    def __post_init__(self):
        if not len(self.centres) == len(self.widths) == len(self.weights) >= 1:
            raise VaekitError("Bumps needs centres, widths and weights of the same length >= 1")
        if not all(float(w) > 0 for w in self.widths):
            raise VaekitError(f"widths must be > 0, got {self.widths!r}")

    def reward(self, a: torch.Tensor) -> torch.Tensor:
        m, s, w = (torch.tensor(v, dtype=a.dtype) for v in (self.centres, self.widths, self.weights))
        return (w * torch.exp(-((a.unsqueeze(-1) - m) ** 2) / (2 * s**2))).sum(-1)

    def value(self, mu, sigma: float) -> np.ndarray:
        sigma = _check_sigma(sigma)
        mu = np.asarray(mu, dtype=float)[..., None]
        m, s, w = (np.asarray(v, dtype=float) for v in (self.centres, self.widths, self.weights))
        v2 = s**2 + sigma**2
        return (w * s / np.sqrt(v2) * np.exp(-((mu - m) ** 2) / (2 * v2))).sum(-1)

    def best_mean(self, sigma: float, start: float | None = None) -> float:
        """argmax J (the global maximum), or with `start` the local maximum that exact gradient ascent
        from `start` reaches: a fine grid, then a bounded scalar search around the chosen grid point."""
        from scipy.optimize import minimize_scalar

        lo = min(self.centres) - 4 * max(self.widths) - 4 * sigma
        hi = max(self.centres) + 4 * max(self.widths) + 4 * sigma
        grid = np.linspace(lo, hi, 4001)
        j = self.value(grid, sigma)
        if start is None:
            i = int(np.argmax(j))
        else:
            i = int(np.clip(np.searchsorted(grid, start), 1, len(grid) - 2))
            step = 1 if j[i + 1] > j[i] else -1
            while 0 < i < len(grid) - 1 and j[i + step] > j[i]:
                i += step
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        return float(
            minimize_scalar(
                lambda x: -float(self.value(x, sigma)), bounds=(a, b), method="bounded", options={"xatol": 1e-10}
            ).x
        )


def policy_gradient(
    bandit, mu: torch.Tensor, sigma: float, method: str, n_evals: int = 8, es_sigma: float = 0.1
) -> E.Estimate:
    """One estimate of J(mu) whose surrogate's gradient in `mu` (a scalar tensor that requires grad)
    estimates dJ/dmu from exactly `n_evals` reward evaluations (`es`: n_evals // 2 antithetic pairs,
    perturbation scale `es_sigma`)."""
    sigma = _check_sigma(sigma)
    if method == "pathwise":
        return E.reparam(gaussian_policy(mu, sigma), bandit.reward, n_evals)
    if method == "reinforce":
        return E.score_function(gaussian_policy(mu, sigma), bandit.reward, n_evals, None)
    if method == "reinforce_baseline":
        return E.score_function(gaussian_policy(mu, sigma), bandit.reward, n_evals, "loo")
    if method == "es":
        return E.evolution_strategies(
            lambda th: gaussian_policy(th[0], sigma),
            [mu],
            bandit.reward,
            n_pairs=max(1, n_evals // 2),
            sigma=es_sigma,
            n_samples=1,
        )
    raise VaekitError(f"method must be one of {POLICY_METHODS}, got {method!r}")


@dataclass
class LearningCurve:
    """mu after each step, the reward evaluations used so far, and the final (averaged) mean."""

    method: str
    evaluations: list[int]
    mu: list[float]
    final: float


def learn(
    bandit,
    method: str,
    sigma: float = 0.5,
    mu0: float = 0.0,
    evaluations: int = 8000,
    per_step: int = 8,
    lr: float = 0.1,
    decay: float = 100.0,
    power: float = 0.6,
    es_sigma: float = 0.1,
) -> LearningCurve:
    """Stochastic gradient ascent on J from mu0, `per_step` reward evaluations a step, `evaluations` in all.

    Step size lr (1 + k / decay)^-power; `final` is the mean of the iterates of the second half
    (Polyak-Ruppert averaging).  Uses the global torch RNG.
    """
    sigma = _check_sigma(sigma)
    steps = int(evaluations) // int(per_step)
    if steps < 2:
        raise VaekitError(f"evaluations must be at least 2 * per_step, got {evaluations} and {per_step}")
    mu, path, used = float(mu0), [float(mu0)], [0]
    for k in range(steps):
        t = torch.tensor(mu, dtype=torch.float64, requires_grad=True)
        est = policy_gradient(bandit, t, sigma, method, per_step, es_sigma)
        (g,) = torch.autograd.grad(est.surrogate.sum(), [t])
        mu = mu + lr * (1 + k / decay) ** -power * float(g)
        path.append(mu)
        used.append(used[-1] + per_step)
    tail = path[len(path) // 2 :]
    return LearningCurve(method, used, path, sum(tail) / len(tail))
