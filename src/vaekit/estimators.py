"""Gradient estimators: three ways to differentiate an expectation E_{q(z;theta)}[f(z)].

    re-parametrization (path-wise)    z = g(eps; theta)             grad = E[ df/dz dz/dtheta ]
    score function (REINFORCE)        z ~ q, no path through z      grad = E[ (f(z) - b) d log q(z;theta)/dtheta ]
    evolution strategies (VO)         theta' = theta +- sigma*e     grad = E[ (F(theta') - F(theta'')) e ] / (2 sigma)

Each estimator returns an `Estimate`: `value`, a Monte Carlo estimate of E_q[f(z)] per batch item,
and `surrogate`, a tensor with the same *value* whose *gradient* is the estimator (Pyro's rule).
So any objective can use them: put `surrogate` where the expectation would go and call backward.
The convention for batches: `grad(surrogate.sum())` estimates `grad(sum_b E_q[f_b(z)])`.

`f` maps a sample z of shape `(S, *batch_shape, *event_shape)` to values of shape `(S, *batch_shape)`;
it may depend on parameters of its own (a decoder); their gradient is E_q[df/dphi] in all three.

`encoder_expectation` picks one of them by name for a model's encoder: the ELBO's choice of estimator
(`bounds.elbo(model, x, estimator=...)`).  `gradient_variance` repeats an estimator and returns
per-parameter means and variances, which is what the gradient lab (`vaekit report estimators`)
plots against the number of samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import distributions as D

from .errors import VaekitError

Fn = Callable[[torch.Tensor], torch.Tensor]  # f(z), one value per sample and batch item
QFn = Callable[[list[torch.Tensor]], D.Distribution]  # q rebuilt from (perturbed) parameters theta
Baseline = str | Callable[[torch.Tensor], torch.Tensor] | None

__all__ = [
    "Estimate",
    "MovingAverage",
    "reparam",
    "score_function",
    "evolution_strategies",
    "module_q",
    "GradientStats",
    "gradient_variance",
    "PooledGradient",
    "pooled_gradient",
    "encoder_expectation",
    "ESTIMATORS",
]


@dataclass
class Estimate:
    value: torch.Tensor  # MC estimate of E_q[f(z)] per batch item (no gradient)
    surrogate: torch.Tensor  # same value; its gradient is the estimator


def _check_samples(n: int, name: str, least: int = 1) -> int:
    if int(n) != n or n < least:
        raise VaekitError(f"{name} must be an integer >= {least}, got {n!r}")
    return int(n)


def _values(f: Fn, z: torch.Tensor, sample_shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    fz = f(z)
    if not isinstance(fz, torch.Tensor) or tuple(fz.shape) != tuple(sample_shape):
        got = tuple(fz.shape) if isinstance(fz, torch.Tensor) else type(fz).__name__
        raise VaekitError(
            f"f(z) must return one value per sample and batch item, shape {tuple(sample_shape)}; got {got}"
        )
    return fz


# -- re-parametrization ---------------------------------------------------------------------------
def reparam(q: D.Distribution, f: Fn, n_samples: int = 1) -> Estimate:
    """Path-wise estimator: z = q.rsample(), gradients flow through f into q's parameters.

    Lowest variance when it applies; needs a re-parametrizable q and an f differentiable in z.
    """
    n = _check_samples(n_samples, "n_samples")
    if not q.has_rsample:
        raise VaekitError(
            f"re-parametrization is unavailable: {type(q).__name__} has no rsample; "
            "use score_function or evolution_strategies"
        )
    z = q.rsample((n,))
    fz = _values(f, z, z.shape[: z.dim() - len(q.event_shape)])
    if z.requires_grad and not fz.requires_grad:
        raise VaekitError(
            "re-parametrization is unavailable: f(z) has no gradient with respect to z "
            "(not differentiable, e.g. a step function); use score_function or evolution_strategies"
        )
    v = fz.mean(0)
    return Estimate(v.detach(), v)


# -- score function -------------------------------------------------------------------------------
class MovingAverage:
    """Control-variate baseline b = exponential moving average of past mean values of f.

    Uses only *past* values, so the estimator stays unbiased.  Keep one instance per objective.
    """

    def __init__(self, decay: float = 0.9):
        if not 0.0 <= decay < 1.0:
            raise VaekitError(f"MovingAverage decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.value: float | None = None

    def __call__(self, fz: torch.Tensor) -> torch.Tensor:
        b = (
            torch.zeros((), dtype=fz.dtype, device=fz.device)
            if self.value is None
            else torch.tensor(self.value, dtype=fz.dtype, device=fz.device)
        )
        m = float(fz.detach().mean())
        self.value = m if self.value is None else self.decay * self.value + (1 - self.decay) * m
        return b


def _baseline(baseline: Baseline, fz: torch.Tensor) -> torch.Tensor:
    if baseline is None or baseline == "none":
        return torch.zeros((), dtype=fz.dtype, device=fz.device)
    if isinstance(baseline, str):
        if baseline != "loo":
            raise VaekitError(f"baseline must be None, 'loo' or a MovingAverage, got {baseline!r}")
        s = fz.shape[0]
        if s < 2:
            raise VaekitError("the leave-one-out baseline needs n_samples >= 2")
        return (fz.sum(0, keepdim=True) - fz) / (s - 1)  # mean of the *other* samples: independent of z_i
    if callable(baseline):
        return baseline(fz)
    raise VaekitError(f"baseline must be None, 'loo' or a MovingAverage, got {type(baseline).__name__}")


def score_function(q: D.Distribution, f: Fn, n_samples: int = 2, baseline: Baseline = "loo") -> Estimate:
    """REINFORCE / likelihood-ratio estimator with a control-variate baseline.

    grad E_q[f] = E_q[(f(z) - b) grad log q(z)] for any b independent of z.  `baseline`:
    "loo" (leave-one-out: the mean of the other n_samples - 1 draws), a `MovingAverage`, or None.
    Works for any f, differentiable or not, and any q with `log_prob`.
    """
    n = _check_samples(n_samples, "n_samples")
    z = q.sample((n,))  # no path from z to theta
    fz = _values(f, z, z.shape[: z.dim() - len(q.event_shape)])
    b = _baseline(baseline, fz.detach())
    logq = q.log_prob(z)
    weight = (fz.detach() - b).detach()
    # value: mean f; gradient: E[df/dphi] (f's own parameters) + E[(f - b) dlog q/dtheta]
    v = fz.mean(0) + (weight * (logq - logq.detach())).mean(0)
    return Estimate(fz.detach().mean(0), v)


# -- evolution strategies / variational optimization ------------------------------------------------
def _rng_state(devices: Sequence[int]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices]


def _set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor]], devices: Sequence[int]) -> None:
    torch.set_rng_state(state[0])
    for d, s in zip(devices, state[1]):
        torch.cuda.set_rng_state(s, d)


def _evaluate(q_fn: QFn, theta: list[torch.Tensor], f: Fn, n: int) -> torch.Tensor:
    q = q_fn(theta)
    z = q.sample((n,))
    return _values(f, z, z.shape[: z.dim() - len(q.event_shape)])


def evolution_strategies(
    q_fn: QFn, params: Sequence[torch.Tensor], f: Fn, n_pairs: int = 8, sigma: float = 0.05, n_samples: int = 1
) -> Estimate:
    """Antithetic Gaussian perturbations of theta; no back-propagation through f or q.

    Estimates the gradient of F(theta) = sum_b E_{q(z;theta)}[f_b(z)] smoothed by N(0, sigma^2 I):
        g = 1/(2 sigma n_pairs) sum_j [F^(theta + sigma e_j) - F^(theta - sigma e_j)] e_j,  e_j ~ N(0, I)
    Each pair evaluates F^ with the *same* random numbers on both sides (common random numbers),
    which removes most of the Monte Carlo noise of F^ from the difference.  For an F quadratic in
    theta the estimate is unbiased; otherwise the bias is O(sigma^2).

    q_fn(list of tensors) -> Distribution rebuilds q from perturbed parameters (see `module_q`);
    `params` are the current theta (leaf parameters, or tensors computed from them: the estimate is
    then chained back by autograd).  `value` is the mean of f over all 2 * n_pairs evaluations.
    """
    n_pairs = _check_samples(n_pairs, "n_pairs")
    n = _check_samples(n_samples, "n_samples")
    if not sigma > 0:
        raise VaekitError(f"sigma must be > 0, got {sigma}")
    params = list(params)
    theta = [p.detach() for p in params]
    devices = sorted({t.device.index or 0 for t in theta if t.device.type == "cuda"})
    grads = [torch.zeros_like(t) for t in theta]
    evals = []
    for _ in range(n_pairs):
        eps = [torch.randn_like(t) for t in theta]
        state = _rng_state(devices)  # replay the same noise on both sides
        f_plus = _evaluate(q_fn, [t + sigma * e for t, e in zip(theta, eps)], f, n)
        _set_rng_state(state, devices)
        f_minus = _evaluate(q_fn, [t - sigma * e for t, e in zip(theta, eps)], f, n)
        diff = (f_plus.detach().mean(0).sum() - f_minus.detach().mean(0).sum()) / (2 * sigma * n_pairs)
        for g, e in zip(grads, eps):
            g.add_(e, alpha=float(diff))
        evals += [f_plus, f_minus]
    v = torch.cat(evals).mean(0)  # carries the gradient of f's own parameters
    link = sum((g * p).sum() for g, p in zip(grads, params) if p.requires_grad)
    if isinstance(link, torch.Tensor):
        v = v + (link - link.detach()) / max(v.numel(), 1)
    return Estimate(v.detach(), v)


def module_q(module: torch.nn.Module, *inputs: Any) -> tuple[QFn, list[torch.Tensor]]:
    """(q_fn, params) for `evolution_strategies` when q = module(*inputs), theta = module's parameters."""
    names, params = zip(*[(n, p) for n, p in module.named_parameters() if p.requires_grad])

    def q_fn(theta: list[torch.Tensor]) -> D.Distribution:
        q: D.Distribution = torch.func.functional_call(module, dict(zip(names, theta)), inputs)
        return q

    return q_fn, list(params)


# -- measuring estimators ---------------------------------------------------------------------------
@dataclass
class GradientStats:
    """Per-parameter mean and (unbiased) variance of a gradient estimator over `n` repeats."""

    mean: list[torch.Tensor]
    variance: list[torch.Tensor]
    n: int

    def standard_error(self) -> list[torch.Tensor]:
        return [(v / self.n).sqrt() for v in self.variance]

    def total_variance(self) -> float:
        """Trace of the covariance: the expected squared distance of one estimate from the mean."""
        return float(sum(v.sum() for v in self.variance))

    def mean_norm2(self) -> float:
        return float(sum(m.pow(2).sum() for m in self.mean))


def gradient_variance(
    estimate: Callable[[], Estimate | torch.Tensor], params: Sequence[torch.Tensor], n_repeats: int = 100
) -> GradientStats:
    """Call `estimate()` n_repeats times and collect d surrogate.sum() / d params (Welford's running moments).

    `estimate` returns an `Estimate` (or a tensor to differentiate); `params` require grad.
    """
    n_repeats = _check_samples(n_repeats, "n_repeats", least=2)
    params = list(params)
    if not params or not all(p.requires_grad for p in params):
        raise VaekitError("gradient_variance needs parameters that require grad")
    mean = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    m2 = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    for i in range(1, n_repeats + 1):
        est = estimate()
        s = est.surrogate if isinstance(est, Estimate) else est
        gs = torch.autograd.grad(s.sum(), params, allow_unused=True)
        for g, m, m2_ in zip(gs, mean, m2):
            g = torch.zeros_like(m) if g is None else g.detach().double()
            d = g - m
            m.add_(d / i)
            m2_.add_(d * (g - m))
    return GradientStats([m.float() for m in mean], [(v / (n_repeats - 1)).float() for v in m2], n_repeats)


@dataclass
class PooledGradient:
    """A gradient estimated from `n_samples` draws, taken `per_call` at a time (see `pooled_gradient`).

    `value`, `value_se`: E_q[f] and its standard error; `mean`, `standard_error`: the gradient and its
    standard error, per parameter; `variance_per_sample`: per_call times the variance of one call's
    estimate, i.e. the variance of a one-draw estimate when the draws of a call are independent.
    """

    value: float
    value_se: float
    mean: list[torch.Tensor]
    standard_error: list[torch.Tensor]
    variance_per_sample: list[torch.Tensor]
    n_samples: int
    per_call: int


def pooled_gradient(
    estimate: Callable[[int], Estimate], params: Sequence[torch.Tensor], n_samples: int = 100_000, per_call: int = 1000
) -> PooledGradient:
    """`gradient_variance` over n_samples // per_call calls of `estimate(per_call)`, each using per_call draws.

    The mean of the calls uses all the draws; the spread between calls gives the standard errors.
    `estimate(n)` returns an `Estimate` whose value is a scalar (or sums to one) from n draws.
    """
    per_call = _check_samples(per_call, "per_call")
    n_calls = _check_samples(n_samples // per_call, "n_samples // per_call", least=2)
    values = []

    def draw() -> Estimate:
        est = estimate(per_call)
        values.append(float(est.value.sum()))
        return est

    st = gradient_variance(draw, params, n_calls)
    v = torch.tensor(values, dtype=torch.float64)
    return PooledGradient(
        float(v.mean()),
        float(v.std() / math.sqrt(n_calls)),
        st.mean,
        st.standard_error(),
        [var * per_call for var in st.variance],
        n_calls * per_call,
        per_call,
    )


# -- the expectation in the ELBO ---------------------------------------------------------------------
def encoder_expectation(
    model: Any,
    x: torch.Tensor,
    q: D.Distribution,
    f: Fn,
    estimator: str = "reparam",
    n_samples: int = 1,
    baseline: Baseline = "loo",
    n_pairs: int = 4,
    sigma: float = 0.01,
) -> Estimate:
    """E_q[f(z)] per item for the model's encoder q = model.encode(x), differentiated by the named estimator.

    estimator: "reparam" | "score" (with `baseline`) | "es" (perturbs the encoder's parameters;
    `n_pairs` antithetic pairs, `sigma` perturbation scale).  f's own parameters (a decoder) always
    get their exact gradient E_q[df/dphi]; only the path into the encoder differs.
    """
    choices: dict[str, Callable[[], Estimate]] = {
        "reparam": lambda: reparam(q, f, n_samples),
        "score": lambda: score_function(q, f, n_samples, baseline),
        "es": lambda: evolution_strategies(
            *module_q(model.encoder, x), f, n_pairs=n_pairs, sigma=sigma, n_samples=n_samples
        ),
    }
    if estimator not in choices:
        raise VaekitError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    return choices[estimator]()


ESTIMATORS = ("reparam", "score", "es")
