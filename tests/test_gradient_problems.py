"""The re-parametrization trick outside VAEs, against closed forms: option Greeks (Black-Scholes),
the newsvendor's critical fractile, and a Gaussian-policy bandit.  Fixed seeds, 1e5 samples."""

import math

import pytest
import torch
from torch import distributions as D

from vaekit import estimators as E
from vaekit.errors import VaekitError
from vaekit.inventory import INVENTORY_ESTIMATORS, Newsvendor
from vaekit.policy import POLICY_METHODS, Bumps, Quadratic, gaussian_policy, learn, policy_gradient
from vaekit.pricing import PRICING_ESTIMATORS, BlackScholes, Call, Digital, greeks

N = 100_000


def within(estimate, se, truth, what, k=4.0):
    assert se > 0, f"{what}: standard error {se}"
    z = abs(estimate - truth) / se
    assert z < k, f"{what}: estimate {estimate:.6g} vs closed form {truth:.6g} ({z:.1f} standard errors)"


def f64(x):
    return torch.tensor(x, dtype=torch.float64)


# -- derivative pricing --------------------------------------------------------------------------------
MARKETS = [BlackScholes(), BlackScholes(spot=90.0, rate=0.02, volatility=0.35, maturity=0.5)]


@pytest.mark.parametrize("market", MARKETS)
@pytest.mark.parametrize("estimator", PRICING_ESTIMATORS)
def test_call_price_delta_vega_match_black_scholes(market, estimator):
    torch.manual_seed(0)
    call = Call(105.0)
    g = greeks(market, call, estimator, N)
    within(g.price, g.standard_error["price"], call.price(market), f"{estimator} call price")
    within(g.delta, g.standard_error["delta"], call.delta(market), f"{estimator} call delta")
    within(g.vega, g.standard_error["vega"], call.vega(market), f"{estimator} call vega")


def test_call_delta_pathwise_has_lower_variance_than_likelihood_ratio():
    torch.manual_seed(1)
    m, call = BlackScholes(), Call(100.0)
    pw, lr = greeks(m, call, "pathwise", N), greeks(m, call, "likelihood_ratio", N)
    ratio = lr.variance_per_sample["delta"] / pw.variance_per_sample["delta"]
    assert ratio > 2, f"likelihood-ratio / pathwise variance of the call delta = {ratio:.2f}"
    # pathwise delta per path: e^{-rT} 1[S_T > K] S_T / S0, whose second moment is closed-form:
    # E[1[S_T > K] S_T^2] = S0^2 e^{(2r + sigma^2) T} Phi(d1 + sigma sqrt(T))
    from scipy.stats import norm

    d1, _ = call.d1_d2(m)
    second = (
        m.discount**2
        * math.exp((2 * m.rate + m.volatility**2) * m.maturity)
        * norm.cdf(d1 + m.volatility * math.sqrt(m.maturity))
    )
    assert pw.variance_per_sample["delta"] == pytest.approx(second - call.delta(m) ** 2, rel=0.1)


@pytest.mark.parametrize("strike", [90.0, 110.0])
def test_digital_delta_pathwise_is_zero_likelihood_ratio_is_right(strike):
    torch.manual_seed(2)
    m, dig = BlackScholes(), Digital(strike, cash=10.0)
    truth = dig.delta(m)
    assert truth > 1e-3
    pw = greeks(m, dig, "pathwise", N)
    assert pw.delta == 0.0 and pw.vega == 0.0  # the derivative of the indicator is 0 on every path
    within(pw.price, pw.standard_error["price"], dig.price(m), "digital price")
    for est in ("likelihood_ratio", "likelihood_ratio_loo"):
        g = greeks(m, dig, est, N)
        within(g.delta, g.standard_error["delta"], truth, f"{est} digital delta")
        within(g.vega, g.standard_error["vega"], dig.vega(m), f"{est} digital vega")


def test_closed_forms_agree_with_finite_differences():
    m, h = BlackScholes(volatility=0.3), 1e-4
    for opt in (Call(95.0), Digital(95.0)):
        up, down = (
            BlackScholes(m.spot + h, m.rate, m.volatility, m.maturity),
            BlackScholes(m.spot - h, m.rate, m.volatility, m.maturity),
        )
        assert opt.delta(m) == pytest.approx((opt.price(up) - opt.price(down)) / (2 * h), rel=1e-5)
        up, down = (
            BlackScholes(m.spot, m.rate, m.volatility + h, m.maturity),
            BlackScholes(m.spot, m.rate, m.volatility - h, m.maturity),
        )
        assert opt.vega(m) == pytest.approx((opt.price(up) - opt.price(down)) / (2 * h), rel=1e-5)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(volatility=-0.2), "volatility"),
        (dict(volatility=0.0), "volatility"),
        (dict(maturity=-1.0), "maturity"),
        (dict(spot=0.0), "spot"),
        (dict(rate=float("nan")), "rate"),
    ],
)
def test_bad_market_is_a_one_line_error(kw, name):
    with pytest.raises(VaekitError, match=name) as e:
        BlackScholes(**kw)
    assert "\n" not in str(e.value)


def test_bad_option_and_estimator_are_one_line_errors():
    with pytest.raises(VaekitError, match="strike"):
        Call(-5.0)
    with pytest.raises(VaekitError, match="cash"):
        Digital(100.0, cash=0.0)
    with pytest.raises(VaekitError, match="estimator"):
        greeks(BlackScholes(), Call(), "finite_differences", 2000)


# -- inventory control ------------------------------------------------------------------------------------
def normal_demand():
    return Newsvendor(1.0, 4.0, D.Normal(f64(100.0), f64(20.0)))


def exponential_demand():
    return Newsvendor(2.0, 3.0, D.Exponential(f64(1 / 50)))


@pytest.mark.parametrize("make", [normal_demand, exponential_demand])
@pytest.mark.parametrize("estimator", INVENTORY_ESTIMATORS)
def test_newsvendor_gradient_matches_closed_form(make, estimator):
    torch.manual_seed(3)
    nv = make()
    for theta in (0.7 * nv.optimum(), 1.3 * nv.optimum()):
        pg = nv.estimate_gradient(theta, estimator, N)
        within(float(pg.mean[0]), float(pg.standard_error[0]), nv.gradient(theta), f"{estimator} J'({theta:.1f})")


def test_critical_fractile_is_where_the_gradient_vanishes():
    for nv in (normal_demand(), exponential_demand()):
        t = nv.optimum()
        assert nv.gradient(t) == pytest.approx(0.0, abs=1e-9)
        assert nv.gradient(0.99 * t) < 0 < nv.gradient(1.01 * t)


def test_shift_on_demand_bounded_below_misses_the_boundary_term():
    """With Y = D - theta the exponential law's edge moves with theta; the score misses h theta p_D(0)."""
    torch.manual_seed(4)
    lam = 1 / 50
    nv = Newsvendor(2.0, 3.0, D.Exponential(f64(lam)), change="shift")
    theta = 60.0
    pg = nv.estimate_gradient(theta, "likelihood_ratio", N)
    boundary = nv.holding * theta * lam  # c(theta, D = 0) * p_D(0)
    within(float(pg.mean[0]), float(pg.standard_error[0]), nv.gradient(theta) - boundary, "shift score")
    assert abs(float(pg.mean[0]) - nv.gradient(theta)) > 10 * float(pg.standard_error[0])
    assert exponential_demand().change == "scale" and normal_demand().change == "shift"


@pytest.mark.parametrize("make", [normal_demand, exponential_demand])
@pytest.mark.parametrize("estimator", INVENTORY_ESTIMATORS)
def test_newsvendor_sgd_reaches_the_critical_fractile(make, estimator):
    torch.manual_seed(5)
    nv = make()
    path = nv.sgd(estimator, steps=2000)
    assert len(path.theta) == 2001
    assert abs(path.final / nv.optimum() - 1) < 0.01, (estimator, path.final, nv.optimum())


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(holding=0.0), "holding"),
        (dict(shortage=-1.0), "shortage"),
        (dict(holding=float("nan")), "holding"),
        (dict(change="rotate"), "change"),
    ],
)
def test_bad_newsvendor_is_a_one_line_error(kw, name):
    with pytest.raises(VaekitError, match=name) as e:
        Newsvendor(**kw)
    assert "\n" not in str(e.value)


def test_demand_without_closed_form_is_a_one_line_error():
    nv = Newsvendor(1.0, 4.0, D.Gamma(f64(2.0), f64(0.04)))
    assert nv.change == "scale"
    with pytest.raises(VaekitError, match="icdf"):
        nv.optimum()


# -- policy learning ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", POLICY_METHODS)
def test_bandit_every_method_reaches_the_quadratic_optimum(method):
    torch.manual_seed(6)
    q = Quadratic(optimum=1.5, curvature=1.0)
    curve = learn(q, method, sigma=0.5, mu0=-0.5, evaluations=8000, per_step=8)
    assert curve.evaluations[-1] == 8000
    assert abs(curve.final - q.best_mean(0.5)) < 0.05, (method, curve.final)


def test_bandit_gradients_unbiased_and_variance_ordering_at_equal_samples():
    torch.manual_seed(7)
    q, sigma, mu0 = Quadratic(optimum=2.0), 0.5, 0.0
    truth = -2 * q.curvature * (mu0 - q.optimum)  # dJ/dmu
    mu = f64(mu0).requires_grad_()
    var = {}
    for method in POLICY_METHODS:  # ES loops over pairs in Python: 1e4 draws
        n = 10_000 if method == "es" else N
        pg = E.pooled_gradient(lambda k, method=method: policy_gradient(q, mu, sigma, method, k), [mu], n, per_call=100)
        within(float(pg.mean[0]), float(pg.standard_error[0]), truth, method)
        var[method] = float(pg.variance_per_sample[0])
    assert var["pathwise"] < var["reinforce_baseline"] < var["reinforce"], var


def test_bumps_closed_form_and_local_optimum():
    b, sigma = Bumps(), 0.5
    torch.manual_seed(8)
    a = gaussian_policy(f64(0.3), sigma).sample((N,))
    r = b.reward(a)
    within(float(r.mean()), float(r.std()) / math.sqrt(N), float(b.value(0.3, sigma)), "E r under the policy")
    glob, local = b.best_mean(sigma), b.best_mean(sigma, start=0.0)
    assert b.value(glob, sigma) > b.value(local, sigma) and abs(glob - local) > 1
    eps = 1e-4
    for m in (glob, local):
        assert b.value(m, sigma) >= max(b.value(m - eps, sigma), b.value(m + eps, sigma))
    torch.manual_seed(9)
    curve = learn(b, "pathwise", sigma=sigma, mu0=0.0, evaluations=2000)
    assert abs(curve.final - local) < 0.1


def test_bad_policy_is_a_one_line_error():
    for s in (0.0, -1.0):
        with pytest.raises(VaekitError, match="sigma") as e:
            learn(Quadratic(), "pathwise", sigma=s)
        assert "\n" not in str(e.value)
    with pytest.raises(VaekitError, match="method"):
        learn(Quadratic(), "q_learning")


@pytest.mark.slow
def test_report_sections_meet_their_targets(tmp_path):
    """`vaekit report estimators --quick --option only=problems`: every row with a target meets it."""
    from vaekit.reports import run_report

    ctx = run_report("estimators", out_root=tmp_path, quick=True, only="problems")
    missed = [f"{r.data}: {r.metric}" for r in ctx.rows if r.met is False]
    assert not missed, missed
    for name in ("pricing_greeks.png", "newsvendor_sgd.png", "bandit_learning.png"):
        assert (tmp_path / "estimators" / name).stat().st_size > 10_000
