"""The gradient lab: how noisy are the three estimators of grad E_q[f(z)], and what does it cost a VAE?

    vaekit report estimators [--quick]

1. Variance of each estimator against the number of function evaluations per estimate (log-log), on
   a 10-D Gaussian q with a quadratic f (all three apply) and a step f (no re-parametrization), and on
   the encoder parameters of a VAE on MNIST (f = log p(x|z) of a minibatch).  Bias is checked against
   the closed-form gradient on the toy problems.
2. Training curves of the same VAE trained with each estimator for the same CPU time, from the same
   initialisation, through the one training loop (`vaekit.train.fit`).
3. KL(q(z) || p(z)) of the re-parametrized VAE's aggregate posterior, by density-ratio estimation.

There are no paper numbers to match: the targets are the statements of the lecture (unbiased;
re-parametrization has the lowest variance; variance falls as 1/N).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import distributions as D

from .. import bounds, ratio
from .. import estimators as E
from ..data import load
from ..errors import VaekitError
from ..evaluate import mean_elbo
from ..models import build
from ..train import TrainConfig, fit
from . import report

LABELS = {
    "reparam": "re-parametrization",
    "score_loo": "score function, leave-one-out baseline",
    "score_ma": "score function, moving-average baseline",
    "es": "evolution strategies (antithetic)",
}
COLORS = {"reparam": "C0", "score_loo": "C1", "score_ma": "C2", "es": "C3"}


# -- toy problem: q = N(mu, diag s^2) in 10-D --------------------------------------------------------
def toy_problem(d: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = (0.5 * torch.randn(d, generator=g)).requires_grad_()
    s = torch.exp(0.3 * torch.randn(d, generator=g)).requires_grad_()
    c = torch.randn(d, generator=g)
    a = ((mu - c) / s).detach()
    phi = torch.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    problems = {
        "quadratic": (lambda z: (z - c).pow(2).sum(-1), [2 * (mu - c).detach(), 2 * s.detach()]),
        "step": (lambda z: (z > c).float().sum(-1), [phi / s.detach(), -phi * a / s.detach()]),
    }
    return mu, s, problems


def gaussian(theta):
    return D.Independent(D.Normal(theta[0], theta[1]), 1)


def toy_estimator(name: str, mu, s, f, n_evals: int, sigma: float):
    """A zero-argument function drawing one estimate that uses `n_evals` evaluations of f."""
    if name == "reparam":
        return lambda: E.reparam(gaussian([mu, s]), f, n_evals)
    if name == "score_loo":
        return lambda: E.score_function(gaussian([mu, s]), f, n_evals, "loo")
    if name == "score_ma":
        ma = E.MovingAverage(0.9)
        return lambda: E.score_function(gaussian([mu, s]), f, n_evals, ma)
    return lambda: E.evolution_strategies(gaussian, [mu, s], f, n_pairs=max(1, n_evals // 2), sigma=sigma)


def log_axes(ax, ns, title):
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title(title)
    ax.set_xlabel("evaluations of f per estimate (N)")
    ax.set_ylabel("total variance of the gradient estimate")
    ax.grid(True, which="both", alpha=0.3)


def shared_legend(fig, axes):
    """One legend under the panels, with every labelled line once."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=3, fontsize=9, bbox_to_anchor=(0.5, -0.12))


def slope(ns, vs) -> float:
    return float(np.polyfit(np.log(ns), np.log(vs), 1)[0])


# -- VAE encoder on MNIST -------------------------------------------------------------------------------
def fit_for(model, objective, x, budget: float, tcfg: dict):
    """Train `model` on `objective` (None: its own loss) for `budget` seconds of this process's CPU time (one thread:
    runs compare at equal cost even when other processes share the machine).  Returns the History, whose `clock`
    holds the CPU seconds at every step."""
    return fit(model, x, TrainConfig(epochs=10**6, max_seconds=budget, budget_clock="cpu", **tcfg), objective=objective)


TRAIN_SETTINGS = {  # each estimator with its natural setting; all use the same network and optimizer
    "reparam": dict(estimator="reparam", n_samples=1),
    "score_loo": dict(estimator="score", n_samples=4, baseline="loo"),
    "score_ma": dict(estimator="score", n_samples=1),  # baseline object added per run
    "es": dict(estimator="es", n_pairs=4, sigma=0.01),
}


def vae_estimate(model, x, name: str, n_evals: int, ma=None):
    """One draw of the estimate of E_q(z|x)[log p(x|z)] (summed over the batch) for the encoder's parameters."""

    def f(z):
        return model.decode(z).log_prob(x)

    if name == "reparam":
        return lambda: E.reparam(model.encode(x), f, n_evals)
    if name == "score_loo":
        return lambda: E.score_function(model.encode(x), f, n_evals, "loo")
    if name == "score_ma":
        return lambda: E.score_function(model.encode(x), f, n_evals, ma)
    q_fn, params = E.module_q(model.encoder, x)
    return lambda: E.evolution_strategies(q_fn, params, f, n_pairs=max(1, n_evals // 2), sigma=0.01)


@torch.no_grad()
def avb_check(model, x, steps: int = 1000, seed: int = 0) -> dict:
    """Re-estimate an AVB model's KL term with a fresh critic trained on an endless stream of its own
    (x, z) pairs (x drawn from `x`), so that it cannot over-fit; evaluated on fresh pairs."""
    contrast = model.config.contrast
    n = model.config.n_moments if contrast else 1

    def draws(xb):
        zs = model.encode(xb).rsample((n,))
        return model.standardise(zs) if contrast else (zs, torch.zeros(zs.shape[:-1]))

    with bounds.seeded(seed):
        exact_parts, rec_parts, t_model_parts = [], [], []
        for xb in x.split(1000):
            zt, ex = draws(xb)
            rec_parts.append(model.decode(model.encode(xb).rsample((n,))).log_prob(xb).mean(0))
            t_model_parts.append((model.log_ratio(xb, zt) + ex).mean(0))
            exact_parts.append(ex.mean(0))
        exact, rec, t_model = (torch.cat(v) for v in (exact_parts, rec_parts, t_model_parts))

        def pairs(m):  # (x, z) with z from the model's q(z|x) (standardised with contrast)
            with torch.no_grad():
                xb = x[torch.randint(len(x), (m,))]
                return torch.cat([xb.flatten(1), draws(xb)[0][0]], 1)

        def reference(m):  # (x, z) with z ~ N(0, I)
            xb = x[torch.randint(len(x), (m,))]
            return torch.cat([xb.flatten(1), torch.randn(m, model.config.latent_dim)], 1)

        with torch.enable_grad():
            fresh = ratio.kl_divergence(
                pairs, reference, steps=steps, batch_size=256, hidden=(128, 128), lr=1e-3, n_eval=10000
            )
    kl_checked = float(exact.mean()) + fresh.kl
    return {
        "rec": float(rec.mean()),
        "kl_model": float(t_model.mean()),
        "kl_checked": kl_checked,
        "kl_se": fresh.standard_error,
        "accuracy": fresh.accuracy,
        "elbo_model": float(bounds.ElboTerms(rec, t_model).elbo.mean()),
        "elbo_checked": float(rec.mean()) - kl_checked,
    }


def proposal_bound(model, x, k: int = 200, n_moments: int = 32, widen: float = 1.5, batch: int = 50) -> float:
    """Mean IWAE-k lower bound on log p(x) (nats) for any model with a decoder and prior, using as proposal
    a Gaussian r(z|x) with the mean of `n_moments` draws of q(z|x) and their std times `widen`.

    It is a true lower bound whatever r is, so models with implicit posteriors (AVB) can be compared
    with the VAE on the same footing.
    """

    def proposal(xb):
        zq = model.encode(xb).rsample((n_moments,))
        return D.Independent(D.Normal(zq.mean(0), widen * zq.std(0).clamp_min(1e-3)), 1)

    return float(bounds.log_likelihood(model, x, k, batch_size=batch, proposal=proposal).double().mean())


def smooth(v, w):
    v = np.asarray(v, dtype=float)
    w = max(1, min(w, len(v)))
    return np.convolve(v, np.ones(w) / w, mode="valid")


@report("estimators")
def run(ctx):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quick = ctx.quick
    if ctx.option("only", "", str) == "problems":
        return problem_sections(ctx)
    torch.manual_seed(ctx.seed)
    names = list(LABELS)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))

    # 1. toy problems -------------------------------------------------------------------------
    ns = [2, 4, 8, 16, 32, 64]
    repeats = 150 if quick else 500
    sigma = 0.05
    mu, s, problems = toy_problem(10, ctx.seed)
    for ax, (pname, (f, truth)) in zip(axes[:2], problems.items()):
        t0 = time.perf_counter()
        for name in names:
            if pname == "step" and name == "reparam":
                try:
                    E.reparam(gaussian([mu, s]), f, 2)
                    refused = False
                except VaekitError:
                    refused = True
                ctx.row(
                    f"toy 10-D, {pname} f",
                    "re-parametrization refuses non-differentiable f",
                    float(refused),
                    target="refuses (1)",
                    met=refused,
                    note="VaekitError: f(z) has no gradient with respect to z",
                )
                continue
            var, worst, t1 = [], 0.0, time.perf_counter()
            for n in ns:
                st = E.gradient_variance(toy_estimator(name, mu, s, f, n, sigma), [mu, s], repeats)
                var.append(st.total_variance())
                worst = max(
                    worst,
                    max(float(((m - t) / se).abs().max()) for m, t, se in zip(st.mean, truth, st.standard_error())),
                )
            ax.loglog(ns, var, "o-", color=COLORS[name], label=LABELS[name])
            exact = pname == "quadratic" or name != "es"  # ES on a non-quadratic F: bias O(sigma^2)
            ctx.row(
                f"toy 10-D, {pname} f",
                f"{LABELS[name]}: total gradient variance at N=16",
                var[ns.index(16)],
                seconds=time.perf_counter() - t1,
                note=f"log-log slope {slope(ns, var):.2f}; largest |mean - closed form| = {worst:.1f} SE "
                f"over {len(ns)} N x 20 parameters ({repeats} repeats)" + ("" if exact else f"; sigma = {sigma}"),
                target="unbiased (< 4.5 SE)" if exact else "bias O(sigma^2) (< 4.5 SE)",
                met=worst < 4.5,
            )
            ctx.extra.setdefault("toy", {}).setdefault(pname, {})[name] = {
                "n": ns,
                "total_variance": var,
                "max_bias_in_se": worst,
            }
        log_axes(ax, ns, f"toy: q = N(mu, diag s^2) in 10-D, {pname} f")
        ctx.extra["toy_seconds_" + pname] = time.perf_counter() - t0
    tv = ctx.extra["toy"]["quadratic"]
    best = min(tv, key=lambda k: tv[k]["total_variance"][ns.index(16)])
    ctx.row(
        "toy 10-D, quadratic f",
        "lowest variance estimator (N=16)",
        None,
        note=LABELS[best],
        target="re-parametrization",
        met=best == "reparam",
    )

    # 1b. the trick where it matters: option Greeks, the newsvendor, a policy-gradient bandit ----------
    problem_sections(ctx)

    # 2. VAE encoder on MNIST ---------------------------------------------------------------------
    try:
        train = load("mnist", "train", ctx.data_dir)
        test = load("mnist", "test", ctx.data_dir)
    except (VaekitError, FileNotFoundError, OSError) as e:
        ctx.row("MNIST", "VAE parts skipped", None, note=f"MNIST not found: {e}")
        axes[2].set_visible(False)
        shared_legend(fig, axes[:2])
        ctx.figure(fig, "variance_vs_samples.png", "Gradient variance against the number of samples.")
        return
    x_train = train.x[:5000] if quick else train.x
    g = torch.Generator().manual_seed(ctx.seed + 1)
    x_test = torch.bernoulli(test.x[:2000] if quick else test.x, generator=g)
    cfg = dict(data_shape=(28, 28), latent_dim=10, hidden=(200,), likelihood="bernoulli")
    pre_epochs = 1 if quick else 3
    tcfg = dict(batch_size=100, lr=1e-3, binarize=True, progress=False, tensorboard=False, seed=ctx.seed)

    torch.manual_seed(ctx.seed)
    vae = build("vae", **cfg)
    h = fit(vae, x_train, TrainConfig(epochs=pre_epochs, **tcfg))
    ctx.row(
        "MNIST",
        f"test ELBO of the VAE whose encoder gradients are measured ({pre_epochs} epochs, re-param.)",
        mean_elbo(vae, x_test),
        seconds=h.seconds,
        note="nats; 784-200-10 MLP, Bernoulli",
    )

    ax = axes[2]
    xb = x_test[:100]
    enc = [p for p in vae.encoder.parameters()]
    n_enc = sum(p.numel() for p in enc)
    vn = [2, 8, 32] if quick else [2, 4, 8, 16, 32]
    vrep = 10 if quick else 30
    t0 = time.perf_counter()
    signal = None
    for name in names:
        var = []
        for n in vn:
            ma = E.MovingAverage(0.9)
            if name == "score_ma":  # warm the moving average up on this batch first
                warm = vae_estimate(vae, xb, name, n, ma)
                for _ in range(20):
                    warm()
            st = E.gradient_variance(vae_estimate(vae, xb, name, n, ma), enc, vrep)
            var.append(st.total_variance())
            if name == "reparam" and n == vn[-1]:
                signal = st.mean_norm2()
        ax.loglog(vn, var, "o-", color=COLORS[name], label=LABELS[name])
        ctx.row(
            "MNIST",
            f"{LABELS[name]}: total variance of the encoder gradient at N={vn[-1]}",
            var[-1],
            note=f"{n_enc} encoder parameters, batch of 100 test images, {vrep} repeats; "
            f"log-log slope {slope(vn, var):.2f}",
        )
        ctx.extra.setdefault("mnist_variance", {})[name] = {"n": vn, "total_variance": var}
    ax.axhline(signal, color="k", ls="--", lw=1, label="|mean gradient|^2 (re-param., largest N)")
    ctx.extra["mnist_signal_norm2"] = signal
    log_axes(ax, vn, f"VAE encoder on MNIST ({n_enc} parameters), f = log p(x|z)")
    ctx.extra["mnist_variance_seconds"] = time.perf_counter() - t0
    shared_legend(fig, axes)
    ctx.figure(
        fig,
        "variance_vs_samples.png",
        "Total variance (trace of the covariance) of each gradient estimator against the number of "
        "evaluations of f per estimate, log-log. Left, middle: 10-D Gaussian q, closed-form gradient "
        "known; the step f has no path-wise gradient. Right: the encoder of a VAE on MNIST; the dashed "
        "line is the squared norm of the true gradient, so curves above it are mostly noise.",
    )

    # 3. aggregate-posterior KL by density ratio ---------------------------------------------------
    t0 = time.perf_counter()
    with torch.no_grad():
        avg_kl = float(bounds.kl(vae.encode(x_test), vae.prior()).mean())
    agg = ratio.aggregate_kl(vae, x_test, steps=300 if quick else 1500, batch_size=512, hidden=(64, 64), lr=3e-3)
    ctx.row(
        "MNIST",
        "KL(q(z) || p(z)) of the aggregate posterior, by density ratio",
        agg.kl,
        seconds=time.perf_counter() - t0,
        target=f"between 0 and E_x KL(q(z|x)||p(z)) = {avg_kl:.2f}",
        met=-3 * agg.standard_error < agg.kl < avg_kl,
        note=f"nats; critic accuracy {agg.accuracy:.3f}; MC standard error {agg.standard_error:.3f}",
    )

    # 4. training with each estimator for the same CPU time --------------------------------------------
    budget = 8.0 if quick else 60.0
    fig2, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.6))
    w = 10 if quick else 50
    x_bound, k_bound = x_test[: 200 if quick else 1000], 50 if quick else 200

    def make(name):
        torch.manual_seed(ctx.seed + 7)  # the same initial weights for every estimator
        kw = dict(TRAIN_SETTINGS[name], **({"baseline": E.MovingAverage(0.9)} if name == "score_ma" else {}))
        return build("vae", **cfg), lambda m, x, step: bounds.elbo(m, x, **kw)  # the ELBO with estimator E

    for name in names:
        model, objective = make(name)
        h = fit_for(model, objective, x_train, budget, tcfg)
        t = np.asarray(h.clock)
        a1.plot(t[w - 1 :], -smooth(h.loss, w), color=COLORS[name], label=LABELS[name])
        a2.plot(np.arange(w, len(h.loss) + 1), -smooth(h.loss, w), color=COLORS[name], label=LABELS[name])
        te = mean_elbo(model, x_test)
        cpu = float(t[-1])
        settings = {k: v for k, v in TRAIN_SETTINGS[name].items()}
        ctx.row(
            "MNIST",
            f"test ELBO after {cpu:.0f} CPU-s of training with {LABELS[name]}",
            te,
            seconds=h.seconds,
            note=f"nats; {len(h.steps)} steps of batch 100; settings {settings}; seconds = wall time (shared machine)",
        )
        if name == "reparam":
            t0 = time.perf_counter()
            lb = proposal_bound(model, x_bound, k_bound)
            ctx.row(
                "MNIST",
                f"re-parametrized VAE: IWAE-{k_bound} lower bound on log p(x), {len(x_bound)} test images",
                lb,
                seconds=time.perf_counter() - t0,
                note="nats; proposal N(mean, (1.5 std)^2) of q(z|x) draws; the same bound as for the AVB rows below",
            )
            ctx.extra["bound_vae"] = lb
        ctx.extra.setdefault("training", {})[name] = {
            "steps": len(h.steps),
            "cpu_seconds": cpu,
            "wall_seconds": h.seconds,
            "test_elbo": te,
            "settings": settings,
        }
    # 5. the ratio in place of the KL: AVB with an implicit posterior, same budget -------------------
    from ..models import avb  # noqa: F401  (registers "avb")

    for contrast, color in ((True, "C4"), (False, "C5")):
        label = "AVB (implicit q), " + ("adaptive contrast" if contrast else "plain critic")

        torch.manual_seed(ctx.seed + 7)
        model = build("avb", **cfg, contrast=contrast, n_moments=6, critic_hidden=(128, 128))
        h = fit_for(model, None, x_train, budget, tcfg)
        t = np.asarray(h.clock)
        neg_elbo = h.terms["elbo/loss"]  # the game's ELBO phase (the run's loss is the critic's)
        a1.plot(t[w - 1 :], -smooth(neg_elbo, w), "--", color=color, label=label + " (its own ELBO estimate)")
        a2.plot(np.arange(w, len(neg_elbo) + 1), -smooth(neg_elbo, w), "--", color=color, label=label)
        t0 = time.perf_counter()
        chk = avb_check(model, x_test, steps=300 if quick else 1000)
        cpu = float(t[-1])
        ctx.row(
            "MNIST",
            f"{label}: test ELBO by its own critic after {cpu:.0f} CPU-s",
            chk["elbo_model"],
            seconds=h.seconds,
            note=f"nats; {len(h.steps)} steps; KL term {chk['kl_model']:.2f} by the model's critic",
        )
        ctx.row(
            "MNIST",
            f"{label}: test ELBO with the KL re-estimated by a fresh critic",
            chk["elbo_checked"],
            seconds=time.perf_counter() - t0,
            note=f"nats; fresh critic trained on a stream of fresh (x, z) pairs: KL {chk['kl_checked']:.2f} "
            f"(+- {chk['kl_se']:.2f} MC), accuracy {chk['accuracy']:.3f}; not a bound: both are estimates",
        )
        t0 = time.perf_counter()
        lb = proposal_bound(model, x_bound, k_bound)
        ctx.row(
            "MNIST",
            f"{label}: IWAE-{k_bound} lower bound on log p(x), {len(x_bound)} test images",
            lb,
            seconds=time.perf_counter() - t0,
            note="nats; a true bound (Gaussian proposal from q's draws), comparable with the VAE's",
        )
        chk["iwae_bound"] = lb
        ctx.extra.setdefault("avb", {})["contrast" if contrast else "plain"] = {
            **chk,
            "steps": len(h.steps),
            "cpu_seconds": cpu,
        }

    for a in (a1, a2):
        a.set_ylabel(f"training ELBO (nats, running mean of {w} batches)")
        a.grid(True, alpha=0.3)
        a.set_ylim(-260, -80)
    a1.set_xlabel("CPU seconds (one thread)")
    a2.set_xlabel("optimizer steps")
    a1.set_title(f"VAE on MNIST, each estimator for ~{budget:.0f} CPU-s")
    a2.set_title("the same runs against steps")
    handles, labels = a1.get_legend_handles_labels()
    fig2.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.1))
    ctx.figure(
        fig2,
        "training_curves.png",
        "The same VAE (784-200-10, Bernoulli, Adam 1e-3, batch 100, same initial weights) trained with each "
        "estimator for the encoder's gradient for the same CPU time (one thread); the decoder always gets its exact "
        "gradient and the KL term is analytic. Dashed: adversarial variational Bayes (implicit posterior, KL "
        "replaced by a critic's density-ratio estimate), whose curve is its own (critic-based) ELBO estimate. "
        "Left against CPU seconds, right against steps.",
    )


# -- the trick where the lecture says it matters: pricing, inventory, policy learning ------------------
def problem_sections(ctx):
    """Derivative pricing, inventory control and policy learning, each against its closed form.

    Runs alone with `vaekit report estimators --option only=problems` (a few CPU-minutes at full size).
    """
    for section in (pricing_section, inventory_section, policy_section):
        t0, c0 = time.perf_counter(), time.process_time()
        section(ctx)
        ctx.extra[f"{section.__name__}_cpu_seconds"] = time.process_time() - c0
        ctx.log(f"{section.__name__}: {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} CPU-s")


PW, LR, LR_LOO = "pathwise", "likelihood_ratio", "likelihood_ratio_loo"
PROBLEM_LABELS = {
    PW: "pathwise (re-param.)",
    LR: "likelihood ratio",
    LR_LOO: "likelihood ratio, leave-one-out baseline",
    "reinforce": "REINFORCE",
    "reinforce_baseline": "REINFORCE, leave-one-out baseline",
    "es": "evolution strategies",
}
PROBLEM_COLORS = {PW: "C0", LR: "C1", LR_LOO: "C2", "reinforce": "C1", "reinforce_baseline": "C2", "es": "C3"}


def tail_mean(path) -> np.ndarray:
    """For every k, the mean of the iterates k // 2 .. k: the Polyak-Ruppert average that SGD reports."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(path, dtype=float))])
    k = np.arange(len(path))
    return (c[k + 1] - c[k // 2]) / (k + 1 - k // 2)


def _z(est, se, truth) -> float:
    return abs(est - truth) / se if se > 0 else (0.0 if est == truth else math.inf)


def pricing_section(ctx):
    """Delta and vega of a European call and a cash-or-nothing call under Black-Scholes."""
    import matplotlib.pyplot as plt

    from ..pricing import BlackScholes, Call, Digital, greeks

    n = 20_000 if ctx.quick else 100_000
    market = BlackScholes(spot=100.0, rate=0.05, volatility=0.2, maturity=1.0)
    data = "Black-Scholes S0=100 r=5% sigma=20% T=1y"
    cite = "closed form (Black-Scholes)"
    torch.manual_seed(ctx.seed)
    out = {}
    for option, name in ((Call(100.0), "call K=100"), (Digital(100.0, cash=1.0), "digital K=100 (pays 1)")):
        res = {}
        for est in (PW, LR, LR_LOO):
            t0 = time.perf_counter()
            g = greeks(market, option, est, n)
            res[est] = g
            for greek in ("delta", "vega"):
                truth, value, se = getattr(option, greek)(market), getattr(g, greek), g.standard_error[greek]
                z = _z(value, se, truth)
                wrong = isinstance(option, Digital) and est == PW
                ctx.row(
                    data,
                    f"{name}: {greek}, {PROBLEM_LABELS[est]}",
                    value,
                    paper=truth,
                    citation=cite,
                    seconds=time.perf_counter() - t0 if greek == "delta" else None,
                    note=f"s.e. {se:.3g}; variance per sample {g.variance_per_sample[greek]:.4g}; {n:,} paths"
                    + ("; 0 on every path: the payoff's derivative misses the mass at the strike" if wrong else ""),
                    target="0 (wrong, as the theory says)" if wrong else "within 4 s.e.",
                    met=(value == 0.0) if wrong else z < 4,
                )
        out[name] = {
            est: {
                "delta": g.delta,
                "delta_se": g.standard_error["delta"],
                "vega": g.vega,
                "vega_se": g.standard_error["vega"],
                "variance_per_sample": g.variance_per_sample,
            }
            for est, g in res.items()
        }
        out[name]["closed_form"] = {
            "price": option.price(market),
            "delta": option.delta(market),
            "vega": option.vega(market),
        }
        if isinstance(option, Call):
            ratio = res[LR].variance_per_sample["delta"] / res[PW].variance_per_sample["delta"]
            ctx.row(
                data,
                "call delta: variance per sample, likelihood ratio / pathwise",
                ratio,
                note=f"pathwise {res[PW].variance_per_sample['delta']:.3g}, likelihood ratio "
                f"{res[LR].variance_per_sample['delta']:.3g}; vega ratio "
                f"{res[LR].variance_per_sample['vega'] / res[PW].variance_per_sample['vega']:.1f}",
                target="> 1 (pathwise lower)",
                met=ratio > 1,
            )
    ctx.extra["pricing"] = out

    # delta against the strike, both options --------------------------------------------------------
    strikes = [80.0, 90.0, 100.0, 110.0, 120.0] if ctx.quick else [70.0, 80.0, 90.0, 100.0, 110.0, 120.0, 130.0]
    m = 10_000 if ctx.quick else 50_000
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), sharex=True)
    fine = np.linspace(strikes[0], strikes[-1], 200)
    for col, make in enumerate((Call, Digital)):
        top, bottom = axes[0, col], axes[1, col]
        top.plot(fine, [make(k).delta(market) for k in fine], "k-", lw=1.2, label="closed form")
        for i, est in enumerate((PW, LR)):
            gs = [greeks(market, make(k), est, m) for k in strikes]
            shift = (i - 0.5) * 0.8
            top.errorbar(
                np.array(strikes) + shift,
                [g.delta for g in gs],
                yerr=[2 * g.standard_error["delta"] for g in gs],
                fmt="o",
                ms=4,
                capsize=2,
                color=PROBLEM_COLORS[est],
                label=PROBLEM_LABELS[est] + " (± 2 s.e.)",
            )
            var = [g.variance_per_sample["delta"] for g in gs]
            if any(v > 0 for v in var):
                bottom.semilogy(
                    strikes, [max(v, 1e-300) for v in var], "o-", color=PROBLEM_COLORS[est], label=PROBLEM_LABELS[est]
                )
            else:
                bottom.plot([], [], "o-", color=PROBLEM_COLORS[est], label=PROBLEM_LABELS[est] + ": 0 (and wrong)")
        top.set_title(("European call" if make is Call else "digital (cash-or-nothing) call, pays 1") + ": delta")
        top.set_ylabel("delta = dV/dS0")
        bottom.set_ylabel("variance per path of the delta estimate")
        bottom.set_xlabel("strike K (S0 = 100)")
        for a in (top, bottom):
            a.grid(True, alpha=0.3)
            a.legend(fontsize=8)
    ctx.figure(
        fig,
        "pricing_greeks.png",
        f"Delta of a European call (left) and a digital call (right) under Black-Scholes (S0 = 100, r = 5 %, "
        f"sigma = 20 %, T = 1 year) against the strike: closed form (line), pathwise and likelihood-ratio "
        f"estimates from {m:,} paths (points, ± 2 standard errors). Bottom: variance per path. The digital's "
        f"payoff is a step; its derivative is 0 on every path, so the pathwise delta is 0 for every strike.",
    )


def inventory_section(ctx):
    """Newsvendor: gradient estimates against J'(theta), SGD against the critical fractile."""
    import matplotlib.pyplot as plt

    from ..inventory import Newsvendor

    n = 20_000 if ctx.quick else 100_000
    steps, batch = 2000, 1024

    def f64(x):
        return torch.tensor(x, dtype=torch.float64)

    laws = {
        "normal demand N(100, 20^2), h=1, p=4": Newsvendor(1.0, 4.0, D.Normal(f64(100.0), f64(20.0))),
        "exponential demand (mean 50), h=2, p=3": Newsvendor(2.0, 3.0, D.Exponential(f64(1 / 50))),
    }
    torch.manual_seed(ctx.seed)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    out = {}
    for ax, (data, nv) in zip(axes, laws.items()):
        star = nv.optimum()
        res = {"optimum": star, "change": nv.change}
        for theta in (0.7 * star, 1.3 * star):
            for est in (PW, LR, LR_LOO):
                pg = nv.estimate_gradient(theta, est, n)
                g, se, truth = float(pg.mean[0]), float(pg.standard_error[0]), nv.gradient(theta)
                ctx.row(
                    data,
                    f"J'({theta:.1f}) by {PROBLEM_LABELS[est]} ({nv.change}: Y = "
                    f"{'D - theta' if nv.change == 'shift' else 'D / theta'})",
                    g,
                    paper=truth,
                    citation="closed form (h + p) F(theta) - p",
                    note=f"s.e. {se:.3g}; variance per sample {float(pg.variance_per_sample[0]):.4g}; {n:,} draws",
                    target="within 4 s.e.",
                    met=_z(g, se, truth) < 4,
                )
                res.setdefault("gradients", []).append(
                    {"theta": theta, "estimator": est, "estimate": g, "se": se, "closed_form": truth}
                )
        for est in (PW, LR, LR_LOO):
            c0 = time.process_time()
            path = nv.sgd(est, steps=steps, batch=batch)
            err = path.final / star - 1
            ctx.row(
                data,
                f"SGD with {PROBLEM_LABELS[est]}: order after {steps} steps of {path.evaluations_per_step}",
                path.final,
                paper=star,
                citation="critical fractile F^-1(p/(p+h))",
                seconds=time.process_time() - c0,
                note=f"{100 * err:+.2f} % (mean of the second half of the iterates); seconds = CPU",
                target="within 1 %",
                met=abs(err) < 0.01,
            )
            k = np.arange(1, len(path.theta) + 1)
            ax.plot(k, path.theta, color=PROBLEM_COLORS[est], lw=0.5, alpha=0.35)
            ax.plot(k, tail_mean(path.theta), color=PROBLEM_COLORS[est], lw=1.8, label=PROBLEM_LABELS[est])
            res.setdefault("sgd", {})[est] = {"final": path.final, "relative_error": err, "steps": steps}
        ax.axhline(star, color="k", ls="--", lw=1, label="critical fractile theta*")
        ax.set_xscale("log")
        ax.set_ylim(star * 0.75, star * 1.25)
        ax.set_title(data)
        ax.set_xlabel("SGD step + 1")
        ax.set_ylabel("order quantity theta (units)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        out[data] = res
    # the lesson of the support: the shift on a demand bounded below misses the boundary term
    nv = Newsvendor(2.0, 3.0, D.Exponential(f64(1 / 50)), change="shift")
    theta = 60.0
    pg = nv.estimate_gradient(theta, LR, n)
    g, se = float(pg.mean[0]), float(pg.standard_error[0])
    ctx.row(
        "exponential demand (mean 50), h=2, p=3",
        f"J'({theta:.0f}) by likelihood ratio with the shift Y = D - theta (support moves with theta)",
        g,
        paper=nv.gradient(theta),
        citation="closed form (h + p) F(theta) - p",
        note=f"s.e. {se:.3g}; biased by the missed boundary term h theta p_D(0) = {nv.holding * theta / 50:.3f}: "
        f"truth - that = {nv.gradient(theta) - nv.holding * theta / 50:.4f}",
        target="biased (the score needs a fixed support)",
        met=_z(g, se, nv.gradient(theta)) > 4,
    )
    ctx.extra["inventory"] = out
    ctx.figure(
        fig,
        "newsvendor_sgd.png",
        f"Newsvendor: SGD on the expected cost h (theta - D)^+ + p (D - theta)^+ with each gradient estimator "
        f"({batch} demand draws a step, step size decaying as k^-0.6): thin, the iterates; thick, the mean of the "
        f"second half of the iterates so far (what is reported); against the critical fractile "
        f"theta* = F^-1(p / (p + h)) (dashed). Left: normal demand (shift Y = D - theta); right: "
        f"exponential demand (scale Y = D / theta, so that the support does not move with theta).",
    )


def policy_section(ctx):
    """Gaussian-policy bandit: learning curves at equal reward evaluations, gradient variance at the start."""
    import matplotlib.pyplot as plt

    from ..policy import POLICY_METHODS, Bumps, Quadratic, learn, policy_gradient

    sigma, per_step = 0.5, 8
    budget = 4000 if ctx.quick else 8000
    quad, bumps = Quadratic(optimum=2.0, curvature=1.0), Bumps()
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4))
    out = {"sigma": sigma, "evaluations": budget, "per_step": per_step}

    # gradient variance at the start, equal evaluations -------------------------------------------------
    mu0 = 0.0
    mu = torch.tensor(mu0, dtype=torch.float64, requires_grad=True)
    truth = -2 * quad.curvature * (mu0 - quad.optimum)
    repeats = 500 if ctx.quick else 2000
    var = {}
    torch.manual_seed(ctx.seed)
    for method in POLICY_METHODS:
        t0 = time.perf_counter()
        st = E.gradient_variance(
            lambda method=method: policy_gradient(quad, mu, sigma, method, per_step), [mu], repeats
        )
        m, se, v = float(st.mean[0]), float(st.standard_error()[0]), float(st.variance[0])
        var[method] = v
        ctx.row(
            "bandit: quadratic reward -(a - 2)^2, policy N(mu, 0.5^2), mu = 0",
            f"dJ/dmu by {PROBLEM_LABELS[method]} ({per_step} rewards per estimate)",
            m,
            paper=truth,
            citation="closed form -2 (mu - 2)",
            seconds=time.perf_counter() - t0,
            note=f"s.e. {se:.3g}; variance of one estimate {v:.4g}; {repeats} estimates",
            target="within 4 s.e.",
            met=_z(m, se, truth) < 4,
        )
    order = var["pathwise"] < var["reinforce_baseline"] < var["reinforce"]
    ctx.row(
        "bandit: quadratic reward, mu = 0",
        "variance ordering at equal rewards",
        None,
        note=", ".join(f"{PROBLEM_LABELS[k]} {v:.3g}" for k, v in var.items()),
        target="pathwise < REINFORCE + baseline < REINFORCE",
        met=order,
    )
    out["start_variance"] = var
    ax = axes[2]
    ax.bar(range(len(var)), list(var.values()), color=[PROBLEM_COLORS[k] for k in var])
    ax.set_xticks(range(len(var)))
    ax.set_xticklabels([PROBLEM_LABELS[k].replace(", ", ",\n") for k in var], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(f"variance of dJ/dmu from {per_step} rewards")
    ax.set_title("quadratic reward: gradient variance at the start (mu = 0)")
    ax.grid(True, axis="y", alpha=0.3)

    # learning curves ----------------------------------------------------------------------------------
    for ax, bandit, name in (
        (axes[0], quad, "quadratic reward -(a - 2)^2"),
        (axes[1], bumps, "two bumps, at -1 (0.6) and 2 (1.0)"),
    ):
        local, best = bandit.best_mean(sigma, start=mu0), bandit.best_mean(sigma)
        for method in POLICY_METHODS:
            torch.manual_seed(ctx.seed + 1)
            c0 = time.process_time()
            curve = learn(bandit, method, sigma=sigma, mu0=mu0, evaluations=budget, per_step=per_step)
            seconds = time.process_time() - c0
            avg = tail_mean(curve.mu)
            if bandit is quad:  # the gap of each iterate, and its mean over a window of 25 steps
                gap = float(bandit.value(best, sigma)) - bandit.value(np.asarray(curve.mu), sigma)
                ax.semilogy(curve.evaluations, np.maximum(gap, 1e-8), color=PROBLEM_COLORS[method], lw=0.5, alpha=0.25)
                w = 25
                ax.semilogy(
                    curve.evaluations[w - 1 :],
                    smooth(gap, w),
                    color=PROBLEM_COLORS[method],
                    lw=1.8,
                    label=PROBLEM_LABELS[method],
                )
            else:
                ax.plot(curve.evaluations, curve.mu, color=PROBLEM_COLORS[method], lw=0.5, alpha=0.3)
                ax.plot(curve.evaluations, avg, color=PROBLEM_COLORS[method], lw=1.8, label=PROBLEM_LABELS[method])
            ctx.row(
                f"bandit: {name}, policy N(mu, 0.5^2), from mu = 0",
                f"{PROBLEM_LABELS[method]}: mu after {budget} rewards",
                curve.final,
                paper=local,
                citation="closed-form J, its maximum" + ("" if local == best else " uphill of the start"),
                seconds=seconds,
                note=f"mean of the second half of {len(curve.mu) - 1} steps of {per_step} rewards; "
                "seconds = CPU" + ("" if local == best else f"; the global maximum is at {best:.2f}"),
                target="within 0.05" if bandit is quad else "",
                met=abs(curve.final - local) < 0.05 if bandit is quad else None,
            )
            out.setdefault(name, {})[method] = {"final": curve.final, "target": local, "global": best}
        ax.set_xlabel("reward evaluations")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        if bandit is quad:
            ax.set_ylabel("J(mu*) - J(mu_k), closed form")
            ax.set_title(name)
        else:
            for v, lab in ((local, "local maximum of J (uphill of the start)"), (best, "global maximum of J")):
                ax.axhline(v, color="k", ls="--" if v == local else ":", lw=1, label=lab)
            ax.set_ylabel("policy mean mu")
            ax.set_title(name)
            ax.legend(fontsize=8)
    ctx.extra["policy"] = out
    ctx.figure(
        fig,
        "bandit_learning.png",
        f"One-step bandit with a Gaussian policy N(mu, 0.5^2), each method given {per_step} reward evaluations "
        f"a step. Left: gap J(mu*) - J(mu_k) of each iterate to the best expected reward (closed form; thin) "
        f"and its mean over 25 steps (thick) against reward evaluations, quadratic reward. Middle: thin lines the "
        f"iterates, thick lines the mean of the second half of the iterates so far (what is reported), on a "
        f"two-bump reward: every gradient method climbs the smoothed objective J to the maximum uphill of its "
        f"start (dashed), not to the global one (dotted). Right: variance of one gradient estimate at the "
        f"start.",
    )
