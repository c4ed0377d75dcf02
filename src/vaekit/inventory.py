"""Inventory control: the newsvendor's order quantity by stochastic gradient descent.

Order theta units before the demand D (units) is known; pay h per unit left over and p per unit
short:

    c(theta, D) = h (theta - D)^+ + p (D - theta)^+,     J(theta) = E[c(theta, D)]
    J'(theta)   = (h + p) F(theta) - p,                   theta* = F^{-1}(p / (p + h))

where F is the demand's CDF (theta* is the "critical fractile").  Both estimators of J' come from
one change of variables that moves theta into a distribution:

    shift (demand on the whole real line):  Y = D - theta,  density p_D(y + theta),
                                             c = h (-Y)^+ + p Y^+
    scale (demand >= 0):                     Y = D / theta, density theta p_D(theta y),
                                             c = theta [h (1 - Y)^+ + p (Y - 1)^+]

* pathwise (infinitesimal perturbation analysis, IPA): `estimators.reparam` on the law of Y.  Its
  sample Y = D - theta (or D / theta) is differentiated through, and gives h 1[D < theta] - p 1[D > theta]
  either way.
* likelihood ratio: `estimators.score_function` on the law of Y: E[c(Y) d log q(Y; theta)/dtheta]
  (plus E[dc/dtheta] for the factor theta in the scale form).

The score trick needs a support that does not move with theta.  With the shift, the law of Y for a
demand bounded below (exponential: Y >= -theta) has an edge that moves with theta, and the score
misses the boundary term c(-theta) p_D(0) = h theta p_D(0) of Leibniz's rule: it is biased.  The scale
keeps the support [0, inf) fixed, so `Newsvendor` uses it for such demand (`change="auto"`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import distributions as D

from . import estimators as E
from .errors import VaekitError

__all__ = ["Newsvendor", "SGDPath", "INVENTORY_ESTIMATORS"]

INVENTORY_ESTIMATORS = ("pathwise", "likelihood_ratio", "likelihood_ratio_loo")


@dataclass
class SGDPath:
    """Iterates theta_k (units) of one SGD run, k = 0..steps, and the final (averaged) order."""

    theta: list[float]
    final: float
    evaluations_per_step: int


@dataclass
class Newsvendor:
    """Holding cost h and shortage cost p (currency per unit), demand D a scalar torch Distribution.

    `change`: "shift" (Y = D - theta), "scale" (Y = D / theta, for demand >= 0) or "auto" (shift when
    the demand's support is the real line, else scale).
    """

    holding: float = 1.0
    shortage: float = 4.0
    demand: D.Distribution = field(
        default_factory=lambda: D.Normal(
            torch.tensor(100.0, dtype=torch.float64), torch.tensor(20.0, dtype=torch.float64)
        )
    )
    change: str = "auto"

    def __post_init__(self):
        for name in ("holding", "shortage"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v <= 0:
                raise VaekitError(f"{name} cost must be a positive number, got {getattr(self, name)!r}")
        if not isinstance(self.demand, D.Distribution) or self.demand.event_shape or self.demand.batch_shape:
            raise VaekitError("demand must be a scalar torch Distribution (empty batch and event shape)")
        if self.change == "auto":
            self.change = "shift" if self.demand.support is D.constraints.real else "scale"
        if self.change not in ("shift", "scale"):
            raise VaekitError(f"change must be 'shift', 'scale' or 'auto', got {self.change!r}")

    # -- closed forms ------------------------------------------------------------------------------
    def cost(self, theta, d) -> torch.Tensor:
        """c(theta, d), currency; broadcasts."""
        return self.holding * torch.relu(theta - d) + self.shortage * torch.relu(d - theta)

    def _law(self, method: str, x: float) -> float:
        try:
            return float(getattr(self.demand, method)(torch.tensor(float(x), dtype=self.demand.mean.dtype)))
        except NotImplementedError:
            raise VaekitError(
                f"the closed form needs the demand's {method}, which {type(self.demand).__name__} does not implement"
            ) from None

    def gradient(self, theta: float) -> float:
        """J'(theta) = (h + p) F(theta) - p, currency per unit ordered."""
        return (self.holding + self.shortage) * self._law("cdf", theta) - self.shortage

    def optimum(self) -> float:
        """theta* = F^{-1}(p / (p + h)), units."""
        return self._law("icdf", self.shortage / (self.shortage + self.holding))

    # -- the change of variables -------------------------------------------------------------------
    def law_of_y(self, theta: torch.Tensor) -> D.Distribution:
        """The law of Y = D - theta ("shift") or Y = D / theta ("scale"); differentiable in theta."""
        if self.change == "shift":
            return D.TransformedDistribution(self.demand, [D.AffineTransform(-theta, 1.0)])
        return D.TransformedDistribution(self.demand, [D.AffineTransform(0.0, 1.0 / theta)])

    def cost_of_y(self, theta: torch.Tensor):
        """c written in Y: a function of samples y (any shape) -> cost, same shape."""
        h, p = self.holding, self.shortage
        if self.change == "shift":
            return lambda y: h * torch.relu(-y) + p * torch.relu(y)
        return lambda y: theta * (h * torch.relu(1 - y) + p * torch.relu(y - 1))

    def estimate(self, theta: torch.Tensor, estimator: str = "pathwise", n_samples: int = 1) -> E.Estimate:
        """One estimate of J(theta) whose surrogate's gradient in `theta` (a scalar tensor that requires
        grad) estimates J'(theta) from `n_samples` demand draws."""
        q, f = self.law_of_y(theta), self.cost_of_y(theta)
        if estimator == "pathwise":
            return E.reparam(q, f, n_samples)
        if estimator in ("likelihood_ratio", "likelihood_ratio_loo"):
            return E.score_function(q, f, n_samples, "loo" if estimator.endswith("loo") else None)
        raise VaekitError(f"estimator must be one of {INVENTORY_ESTIMATORS}, got {estimator!r}")

    def estimate_gradient(
        self, theta: float, estimator: str = "pathwise", n_samples: int = 100_000, per_call: int = 1000
    ) -> E.PooledGradient:
        """J'(theta) from n_samples draws with its standard error (`estimators.pooled_gradient`)."""
        t = torch.tensor(float(theta), dtype=self.demand.mean.dtype, requires_grad=True)
        return E.pooled_gradient(lambda n: self.estimate(t, estimator, n), [t], n_samples, per_call)

    # -- optimisation ------------------------------------------------------------------------------
    def sgd(
        self,
        estimator: str = "pathwise",
        steps: int = 2000,
        batch: int = 1024,
        theta0: float | None = None,
        lr: float | None = None,
        decay: float = 100.0,
        power: float = 0.6,
    ) -> SGDPath:
        """Stochastic gradient descent on J with step lr (1 + k / decay)^-power, and Polyak-Ruppert averaging.

        `batch` demand draws per step; theta0 defaults to E[D]; lr (units^2 / currency) defaults to
        2 std(D) / (h + p), twice the inverse of the typical curvature J'' ~ (h + p) / std(D) (no density
        is needed).  `final` is the mean of the iterates of the second half, whose error falls as
        1 / sqrt(steps * batch) whatever lr is.  For the scale change theta is kept >= 1e-3 std(D).
        """
        steps = int(steps)
        if steps < 2:
            raise VaekitError(f"steps must be an integer >= 2, got {steps}")
        spread = float(self.demand.stddev)
        lr = 2 * spread / (self.holding + self.shortage) if lr is None else float(lr)
        if not lr > 0:
            raise VaekitError(f"lr must be > 0, got {lr}")
        theta = float(self.demand.mean) if theta0 is None else float(theta0)
        path = [theta]
        for k in range(steps):
            t = torch.tensor(theta, dtype=self.demand.mean.dtype, requires_grad=True)
            est = self.estimate(t, estimator, batch)
            (g,) = torch.autograd.grad(est.surrogate.sum(), [t])
            theta = theta - lr * (1 + k / decay) ** -power * float(g)
            if self.change == "scale":
                theta = max(theta, 1e-3 * spread)
            path.append(theta)
        tail = path[len(path) // 2 :]
        return SGDPath(path, sum(tail) / len(tail), batch)
