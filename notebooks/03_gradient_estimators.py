# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The re-parametrization trick where it matters
#
# Many problems ask for the gradient of an expectation whose *distribution* depends on the parameter:
#
# $$\nabla_\theta\, \mathbb{E}_{x \sim p(x;\theta)}[f(x)].$$
#
# A VAE's encoder is one; so are the Greeks of an option (finance), the order quantity of a shop
# (operations research) and a stochastic policy (reinforcement learning).  `vaekit.estimators` has the
# two classical answers, and this tutorial applies them to three problems whose answers are known in
# closed form, so that every estimate can be checked.
#
# * **Pathwise (re-parametrization).**  Write $x = g(\varepsilon;\theta)$ with $\varepsilon$ free of
#   $\theta$; then $\nabla_\theta \mathbb{E}[f(x)] = \mathbb{E}_\varepsilon[f'(g(\varepsilon;\theta))\,
#   \nabla_\theta g(\varepsilon;\theta)]$.  Needs $f$ differentiable (and, as we will see, *continuous*).
# * **Likelihood ratio (score function, REINFORCE).**  Differentiate the density instead:
#   $\nabla_\theta \mathbb{E}[f(x)] = \mathbb{E}[f(x)\, \nabla_\theta \log p(x;\theta)]$.  Needs only the
#   values of $f$, but the density's support must not move with $\theta$.  Any $b$ independent of $x$ can
#   be subtracted from $f$ (a *baseline*) without bias.
#
# `QUICK=1` in the environment makes every cell small (the whole notebook runs in well under a minute).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import distributions as D

from vaekit.inventory import Newsvendor
from vaekit.policy import POLICY_METHODS, Bumps, Quadratic, learn, policy_gradient
from vaekit.estimators import pooled_gradient
from vaekit.pricing import BlackScholes, Call, Digital, greeks

QUICK = os.environ.get("QUICK", "") not in ("", "0")
N = 20_000 if QUICK else 100_000          # Monte Carlo draws per estimate
torch.manual_seed(0)

# %% [markdown]
# ## 1. Derivative pricing: delta and vega under Black–Scholes
#
# Under the risk-neutral measure the stock at maturity $T$ is
#
# $$S_T = S_0 \exp\!\big((r - \tfrac12\sigma^2)T + \sigma\sqrt{T}\,\varepsilon\big),\qquad \varepsilon\sim\mathcal N(0,1),$$
#
# and an option paying $g(S_T)$ is worth $V = e^{-rT}\,\mathbb{E}[g(S_T)]$.  The **delta** is
# $\partial V/\partial S_0$, the **vega** $\partial V/\partial\sigma$.
#
# *Pathwise:* $\partial S_T/\partial S_0 = S_T/S_0$, so $\Delta = e^{-rT}\,\mathbb{E}[g'(S_T)\,S_T/S_0]$.
#
# *Likelihood ratio:* $\log S_T \sim \mathcal N(\log S_0 + (r-\sigma^2/2)T,\ \sigma^2 T)$, so
# $\partial_{S_0}\log p(S_T) = \varepsilon/(S_0\sigma\sqrt T)$ and
# $\Delta = e^{-rT}\,\mathbb{E}[g(S_T)\,\varepsilon/(S_0\sigma\sqrt T)]$.
#
# For a call, $g(s) = (s-K)^+$ and $\Delta = \Phi(d_1)$, $\text{vega} = S_0\varphi(d_1)\sqrt T$ with
# $d_1 = \frac{\log(S_0/K) + (r+\sigma^2/2)T}{\sigma\sqrt T}$.

# %%
market = BlackScholes(spot=100.0, rate=0.05, volatility=0.2, maturity=1.0)
call = Call(strike=100.0)
print(f"closed form: delta {call.delta(market):.4f}  vega {call.vega(market):.3f}")
for estimator in ("pathwise", "likelihood_ratio"):
    g = greeks(market, call, estimator, N)
    print(f"{estimator:17s} delta {g.delta:.4f} ± {g.standard_error['delta']:.4f}  "
          f"vega {g.vega:.3f} ± {g.standard_error['vega']:.3f}  "
          f"variance per path: delta {g.variance_per_sample['delta']:.3f}, vega {g.variance_per_sample['vega']:.0f}")

# %% [markdown]
# Both are unbiased; the pathwise estimator's variance per path is several times smaller, because it
# uses the payoff's slope instead of correlating the payoff with the noise.
#
# ### The digital option: where the pathwise estimator fails
#
# A cash-or-nothing call pays $Q\,\mathbb 1[S_T > K]$.  Its derivative is $0$ wherever it exists, so the
# pathwise estimate is **0 on every path**.  Yet the true delta
# $\Delta = Q e^{-rT}\varphi(d_2)/(S_0\sigma\sqrt T)$ is positive: raising $S_0$ pushes probability mass
# over the strike.  In distribution terms $g'(s) = Q\,\delta(s - K)$, a point mass that no sample ever
# hits; the interchange of derivative and expectation is invalid for a discontinuous $g$.
# The likelihood ratio never differentiates $g$, so it is still right.

# %%
strikes = np.linspace(80, 120, 5 if QUICK else 9)
m = N // 4
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, make, title in ((axes[0], Call, "call"), (axes[1], Digital, "digital call (pays 1)")):
    fine = np.linspace(strikes[0], strikes[-1], 200)
    ax.plot(fine, [make(k).delta(market) for k in fine], "k-", label="closed form")
    for shift, estimator in ((-0.5, "pathwise"), (0.5, "likelihood_ratio")):
        gs = [greeks(market, make(k), estimator, m) for k in strikes]
        ax.errorbar(strikes + shift, [g.delta for g in gs], yerr=[2 * g.standard_error["delta"] for g in gs],
                    fmt="o", ms=4, capsize=2, label=f"{estimator} (± 2 s.e.)")
    ax.set_title(f"{title}: delta against the strike")
    ax.set_xlabel("strike K")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Inventory control: the newsvendor
#
# Order $\theta$ units; demand $D$ is random; pay $h$ per unit left over and $p$ per unit short:
#
# $$J(\theta) = \mathbb{E}\big[h(\theta - D)^+ + p(D-\theta)^+\big],\qquad
# J'(\theta) = (h+p)F(\theta) - p,\qquad \theta^* = F^{-1}\!\Big(\frac{p}{p+h}\Big).$$
#
# Here $\theta$ is not in the distribution at all; the pathwise estimator (infinitesimal perturbation
# analysis) just differentiates the cost: $h\,\mathbb 1[D<\theta] - p\,\mathbb 1[D>\theta]$.
# To use the likelihood ratio we **move $\theta$ into the distribution** by a change of variables:
#
# * *shift* $Y = D - \theta$, density $p_D(y+\theta)$, cost $h(-Y)^+ + pY^+$;
#   score $\partial_\theta \log p_D(Y+\theta)$.
# * *scale* $Y = D/\theta$, density $\theta\,p_D(\theta y)$, cost $\theta\,[h(1-Y)^+ + p(Y-1)^+]$.
#
# The shift is fine for demand on the whole line.  For demand bounded below (exponential) the law of
# $Y = D-\theta$ lives on $[-\theta,\infty)$: its edge moves with $\theta$, Leibniz's rule adds a boundary
# term $c(-\theta)\,p_D(0) = h\theta\,p_D(0)$, and the score estimator misses it.  The scale keeps the
# support $[0,\infty)$ fixed, so `Newsvendor` uses it for such demand.

# %%
f64 = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
shops = {"normal demand": Newsvendor(1.0, 4.0, D.Normal(f64(100.0), f64(20.0))),
         "exponential demand": Newsvendor(2.0, 3.0, D.Exponential(f64(1 / 50)))}
for name, nv in shops.items():
    theta = 0.8 * nv.optimum()
    print(f"{name} ({nv.change}): J'({theta:.1f}) closed form {nv.gradient(theta):+.4f}")
    for estimator in ("pathwise", "likelihood_ratio"):
        pg = nv.estimate_gradient(theta, estimator, N)
        print(f"   {estimator:17s} {float(pg.mean[0]):+.4f} ± {float(pg.standard_error[0]):.4f}")

wrong = Newsvendor(2.0, 3.0, D.Exponential(f64(1 / 50)), change="shift")
pg = wrong.estimate_gradient(60.0, "likelihood_ratio", N)
boundary = wrong.holding * 60.0 / 50          # h theta p_D(0), p_D(0) = 1 / 50
print(f"shift on exponential demand: {float(pg.mean[0]):+.3f} (closed form {wrong.gradient(60.0):+.3f}, "
      f"minus the missed boundary term {boundary:.3f}: {wrong.gradient(60.0) - boundary:+.3f})")

# %% [markdown]
# Stochastic gradient descent with either estimator finds the critical fractile.

# %%
steps = 500 if QUICK else 2000
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, (name, nv) in zip(axes, shops.items()):
    for estimator in ("pathwise", "likelihood_ratio"):
        path = nv.sgd(estimator, steps=steps)
        ax.plot(path.theta, lw=0.7, label=f"{estimator}: final {path.final:.2f}")
    ax.axhline(nv.optimum(), color="k", ls="--", label=f"theta* = {nv.optimum():.2f}")
    ax.set_title(name)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("order quantity")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Policy learning: a continuous-action bandit
#
# A Gaussian policy $a\sim\pi(a;\mu) = \mathcal N(\mu,\sigma^2)$ earns reward $r(a)$; we climb
# $J(\mu) = \mathbb{E}_{a\sim\pi}[r(a)]$.
#
# * REINFORCE: $\nabla_\mu J = \mathbb{E}\big[(r(a) - b)\,(a-\mu)/\sigma^2\big]$, with $b=0$ or the
#   leave-one-out mean of the other rewards;
# * pathwise: $a = \mu + \sigma\varepsilon$, $\nabla_\mu J = \mathbb{E}[r'(\mu+\sigma\varepsilon)]$;
# * evolution strategies: perturb $\mu$ itself, compare returns, no derivative at all.
#
# For $r(a) = -(a-a^*)^2$, $J(\mu) = -(\mu-a^*)^2 - \sigma^2$.  For a sum of Gaussian bumps
# $r(a) = \sum_i w_i e^{-(a-m_i)^2/2s_i^2}$, $J(\mu) = \sum_i w_i \frac{s_i}{\sqrt{s_i^2+\sigma^2}}
# e^{-(\mu-m_i)^2/2(s_i^2+\sigma^2)}$: the policy sees the reward smoothed by its own noise.

# %%
quad, bumps, sigma = Quadratic(optimum=2.0), Bumps(), 0.5
mu = f64(0.0).requires_grad_()
print("gradient at mu = 0, closed form", -2 * (0.0 - quad.optimum))
for method in POLICY_METHODS:
    draws = 2_000 if method == "es" else N // 5
    pg = pooled_gradient(lambda k: policy_gradient(quad, mu, sigma, method, k), [mu], draws, per_call=100)
    print(f"   {method:19s} {float(pg.mean[0]):.3f} ± {float(pg.standard_error[0]):.3f}"
          f"   variance per reward {float(pg.variance_per_sample[0]):.3f}")

# %%
budget = 2000 if QUICK else 8000
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, bandit, title in ((axes[0], quad, "quadratic reward"), (axes[1], bumps, "two bumps")):
    for method in POLICY_METHODS:
        torch.manual_seed(1)
        curve = learn(bandit, method, sigma=sigma, mu0=0.0, evaluations=budget)
        ax.plot(curve.evaluations, curve.mu, lw=0.8, label=f"{method}: {curve.final:.3f}")
    for target, style in ((bandit.best_mean(sigma, start=0.0), "--"), (bandit.best_mean(sigma), ":")):
        ax.axhline(target, color="k", ls=style, lw=1)
    ax.set_title(f"{title}: policy mean against reward evaluations")
    ax.set_xlabel("reward evaluations")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# On the quadratic every method reaches $a^* = 2$; the pathwise gradient's variance is the smallest
# by far, REINFORCE's the largest, and a baseline closes much of the gap.  On the two bumps, each method
# climbs the *smoothed* objective $J$ to the maximum uphill of its start (dashed), not the global one
# (dotted): a gradient estimator answers "which way is up", not "where is the top".
