"""Derivative pricing: the Greeks of an option are gradients of an expectation.

Under Black-Scholes the stock follows a geometric Brownian motion and, in the risk-neutral measure,
the price at maturity T (years) is log-normal:

    S_T = S0 exp((r - sigma^2/2) T + sigma sqrt(T) eps),   eps ~ N(0, 1)
    log S_T ~ N(log S0 + (r - sigma^2/2) T,  sigma^2 T)

An option paying g(S_T) at T is worth V = e^{-rT} E[g(S_T)].  Its delta dV/dS0 and vega dV/dsigma
are gradients of an expectation whose *distribution* depends on the parameter, so the two estimators
of `vaekit.estimators` apply as they do to a VAE's encoder:

    pathwise (re-parametrization)   delta = e^{-rT} E[ g'(S_T) S_T / S0 ]
    likelihood ratio (score)        delta = e^{-rT} E[ g(S_T) d log p(S_T; S0, sigma)/dS0 ]
                                          = e^{-rT} E[ g(S_T) eps / (S0 sigma sqrt(T)) ]

For a call, g(s) = (s - K)^+ is continuous with g' = 1[s > K] almost everywhere: both are unbiased,
and pathwise has the smaller variance.  For a digital (cash-or-nothing) call, g(s) = Q 1[s > K] is
discontinuous.  Its derivative is 0 wherever it exists, so the pathwise estimator is 0 on every path
(almost surely) although the true delta is not: moving S0 moves probability mass across the strike,
and that change is a delta-mass at s = K in g' which no sample ever lands on.  The likelihood ratio
never differentiates g, so it stays unbiased.  The closed forms (`Call.delta`, `Digital.delta`, ...)
say which is right.

Units: prices and strikes in currency units, `rate` per year (continuously compounded),
`volatility` per sqrt(year), `maturity` in years; delta is dimensionless (per currency unit of S0),
vega in currency units per unit of volatility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.stats import norm
from torch import distributions as D

from . import estimators as E
from .errors import VaekitError

__all__ = ["BlackScholes", "Call", "Digital", "GreekEstimate", "greeks", "PRICING_ESTIMATORS"]


def _positive(name: str, value) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise VaekitError(f"{name} must be a positive number, got {value!r}")
    return v


@dataclass(frozen=True)
class BlackScholes:
    """The market: spot S0, interest rate r, volatility sigma, maturity T (see the module docstring)."""

    spot: float = 100.0  # S0, currency units
    rate: float = 0.05  # r, per year
    volatility: float = 0.2  # sigma, per sqrt(year)
    maturity: float = 1.0  # T, years

    def __post_init__(self):
        _positive("spot", self.spot)
        _positive("volatility", self.volatility)
        _positive("maturity", self.maturity)
        if not math.isfinite(float(self.rate)):
            raise VaekitError(f"rate must be a finite number, got {self.rate!r}")

    @property
    def discount(self) -> float:
        return math.exp(-self.rate * self.maturity)

    def terminal(self, spot=None, volatility=None) -> D.LogNormal:
        """Law of S_T (scalar, currency units), a function of `spot` and `volatility`: pass tensors that
        require grad to differentiate through it (pathwise by rsample, likelihood ratio by log_prob)."""
        s0 = torch.as_tensor(self.spot if spot is None else spot, dtype=torch.float64)
        vol = torch.as_tensor(self.volatility if volatility is None else volatility, dtype=torch.float64)
        t = self.maturity
        return D.LogNormal(torch.log(s0) + (self.rate - vol**2 / 2) * t, vol * math.sqrt(t))

    def d1_d2(self, strike: float) -> tuple[float, float]:
        sd = self.volatility * math.sqrt(self.maturity)
        d1 = (math.log(self.spot / strike) + (self.rate + self.volatility**2 / 2) * self.maturity) / sd
        return d1, d1 - sd


@dataclass(frozen=True)
class Call:
    """European call: pays (S_T - strike)^+ at maturity.  Closed forms from Black-Scholes."""

    strike: float = 100.0

    def __post_init__(self):
        _positive("strike", self.strike)

    def payoff(self, s: torch.Tensor) -> torch.Tensor:
        """(S_T - K)^+ for S_T of any shape; differentiable, derivative 1[S_T > K]."""
        return torch.relu(s - self.strike)

    def price(self, m: BlackScholes) -> float:
        d1, d2 = self.d1_d2(m)
        return m.spot * norm.cdf(d1) - self.strike * m.discount * norm.cdf(d2)

    def delta(self, m: BlackScholes) -> float:
        return float(norm.cdf(self.d1_d2(m)[0]))

    def vega(self, m: BlackScholes) -> float:
        return float(m.spot * norm.pdf(self.d1_d2(m)[0]) * math.sqrt(m.maturity))

    def d1_d2(self, m: BlackScholes):
        return m.d1_d2(self.strike)


@dataclass(frozen=True)
class Digital:
    """Cash-or-nothing call: pays `cash` if S_T > strike at maturity, else nothing."""

    strike: float = 100.0
    cash: float = 1.0

    def __post_init__(self):
        _positive("strike", self.strike)
        _positive("cash", self.cash)

    def payoff(self, s: torch.Tensor) -> torch.Tensor:
        """Q 1[S_T > K], written with torch.sign so that autograd gives its derivative where it exists
        (0, everywhere but at K): the derivative a pathwise estimator takes path by path."""
        return self.cash * (1 + torch.sign(s - self.strike)) / 2

    def price(self, m: BlackScholes) -> float:
        return float(self.cash * m.discount * norm.cdf(self.d1_d2(m)[1]))

    def delta(self, m: BlackScholes) -> float:
        d2 = self.d1_d2(m)[1]
        return float(self.cash * m.discount * norm.pdf(d2) / (m.spot * m.volatility * math.sqrt(m.maturity)))

    def vega(self, m: BlackScholes) -> float:
        d1, d2 = self.d1_d2(m)
        return float(-self.cash * m.discount * norm.pdf(d2) * d1 / m.volatility)

    def d1_d2(self, m: BlackScholes):
        return m.d1_d2(self.strike)


@dataclass
class GreekEstimate:
    """Monte Carlo price, delta and vega with their standard errors and variances per sample."""

    estimator: str
    price: float
    delta: float
    vega: float
    standard_error: dict  # {"price", "delta", "vega"} -> standard error of the estimate
    variance_per_sample: dict  # {"delta", "vega"} -> variance of a one-path estimate
    n_samples: int


PRICING_ESTIMATORS = ("pathwise", "likelihood_ratio", "likelihood_ratio_loo")


def greeks(
    market: BlackScholes, option, estimator: str = "pathwise", n_samples: int = 100_000, per_call: int = 1000
) -> GreekEstimate:
    """Estimate the price, delta and vega of `option` (a `Call` or `Digital`, anything with `payoff`).

    estimator: "pathwise" (`estimators.reparam`), "likelihood_ratio" (`estimators.score_function`
    without a baseline, the textbook form) or "likelihood_ratio_loo" (with the leave-one-out
    baseline).  `n_samples` paths, `per_call` at a time; uses the global torch RNG.
    """
    spot = torch.tensor(market.spot, dtype=torch.float64, requires_grad=True)
    vol = torch.tensor(market.volatility, dtype=torch.float64, requires_grad=True)
    disc = market.discount

    def value(s):
        return disc * option.payoff(s)

    if estimator == "pathwise":

        def draw(n):
            return E.reparam(market.terminal(spot, vol), value, n)
    elif estimator in ("likelihood_ratio", "likelihood_ratio_loo"):
        baseline = "loo" if estimator.endswith("loo") else None

        def draw(n):
            return E.score_function(market.terminal(spot, vol), value, n, baseline)
    else:
        raise VaekitError(f"estimator must be one of {PRICING_ESTIMATORS}, got {estimator!r}")
    pg = E.pooled_gradient(draw, [spot, vol], n_samples, per_call)
    (d, v), (d_se, v_se), (d_var, v_var) = pg.mean, pg.standard_error, pg.variance_per_sample
    return GreekEstimate(
        estimator,
        pg.value,
        float(d),
        float(v),
        {"price": pg.value_se, "delta": float(d_se), "vega": float(v_se)},
        {"delta": float(d_var), "vega": float(v_var)},
        pg.n_samples,
    )
