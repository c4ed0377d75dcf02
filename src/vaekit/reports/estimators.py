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
from torch import nn

from .. import bounds, estimators as E, ratio
from ..data import load
from ..errors import VaekitError
from ..models import build
from ..train import TrainConfig, fit
from . import report

LABELS = {"reparam": "re-parametrization", "score_loo": "score function, leave-one-out baseline",
          "score_ma": "score function, moving-average baseline", "es": "evolution strategies (antithetic)"}
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
class Clocked(nn.Module):
    """Wraps a model so `fit` trains it on `objective(model, x)` and the CPU time of every step is recorded.

    Process CPU time (one thread) lets runs be compared at equal cost even when other processes share
    the machine.  `Clocked(vae, estimators.elbo-settings)` is "a VAE trained with estimator E".
    """

    def __init__(self, model, objective=None, **kw):
        super().__init__()
        self.model, self.kw, self.config = model, kw, model.config
        self.objective = objective or (lambda m, x, **k: E.elbo(m, x, **k))
        self.clock: list[float] = []
        self.t0 = time.process_time()

    def loss(self, x, step: int = 0):
        out = self.objective(self.model, x, **self.kw)
        if self.training:
            self.clock.append(time.process_time() - self.t0)
        return out


def fit_for(make, x, budget: float, tcfg: dict):
    """Train `make()` for about `budget` CPU seconds: a 30-step pilot sizes the run. Returns (model, history)."""
    pilot = make()
    fit(pilot, x, TrainConfig(epochs=1, max_steps=30, **tcfg))
    per_step = (pilot.clock[-1] - pilot.clock[9]) / 20
    steps = max(10, int(budget / per_step))
    model = make()
    h = fit(model, x, TrainConfig(epochs=math.ceil(steps / math.ceil(len(x) / tcfg["batch_size"])),
                                  max_steps=steps, **tcfg))
    return model, h


TRAIN_SETTINGS = {   # each estimator with its natural setting; all use the same network and optimizer
    "reparam": dict(estimator="reparam", n_samples=1),
    "score_loo": dict(estimator="score", n_samples=4, baseline="loo"),
    "score_ma": dict(estimator="score", n_samples=1),           # baseline object added per run
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

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        exact, rec, t_model = [], [], []
        for xb in x.split(1000):
            zt, ex = draws(xb)
            rec.append(model.decode(model.encode(xb).rsample((n,))).log_prob(xb).mean(0))
            t_model.append((model.log_ratio(xb, zt) + ex).mean(0))
            exact.append(ex.mean(0))
        exact, rec, t_model = (torch.cat(v) for v in (exact, rec, t_model))

        def pairs(m):              # (x, z) with z from the model's q(z|x) (standardised with contrast)
            with torch.no_grad():
                xb = x[torch.randint(len(x), (m,))]
                return torch.cat([xb.flatten(1), draws(xb)[0][0]], 1)

        def reference(m):          # (x, z) with z ~ N(0, I)
            xb = x[torch.randint(len(x), (m,))]
            return torch.cat([xb.flatten(1), torch.randn(m, model.config.latent_dim)], 1)

        with torch.enable_grad():
            fresh = ratio.kl_divergence(pairs, reference, steps=steps, batch_size=256, hidden=(128, 128), lr=1e-3,
                                        n_eval=10000)
    kl_checked = float(exact.mean()) + fresh.kl
    return {"rec": float(rec.mean()), "kl_model": float(t_model.mean()), "kl_checked": kl_checked,
            "kl_se": fresh.standard_error, "accuracy": fresh.accuracy,
            "elbo_model": float((rec - t_model).mean()), "elbo_checked": float(rec.mean()) - kl_checked}


@torch.no_grad()
def proposal_bound(model, x, k: int = 200, n_moments: int = 32, widen: float = 1.5, batch: int = 50) -> float:
    """Mean IWAE-k lower bound on log p(x) (nats) for any model with a decoder and prior, using as proposal
    a Gaussian r(z|x) with the mean of `n_moments` draws of q(z|x) and their std times `widen`.

    It is a true lower bound whatever r is, so models with implicit posteriors (AVB) can be compared
    with the VAE on the same footing.
    """
    out = []
    for xb in x.split(batch):
        zq = model.encode(xb).rsample((n_moments,))
        r = D.Independent(D.Normal(zq.mean(0), widen * zq.std(0).clamp_min(1e-3)), 1)
        z = r.sample((k,))
        lw = model.decode(z).log_prob(xb) + model.prior().log_prob(z) - r.log_prob(z)
        out.append(torch.logsumexp(lw.double(), 0) - math.log(k))
    return float(torch.cat(out).mean())


@torch.no_grad()
def test_elbo(model, x, seed: int = 0) -> float:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return float(sum(bounds.elbo(model, xb, n_samples=1).terms["elbo"] * len(xb) for xb in x.split(1000)) / len(x))


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
                ctx.row(f"toy 10-D, {pname} f", "re-parametrization refuses non-differentiable f", float(refused),
                        target="refuses (1)", met=refused, note="VaekitError: f(z) has no gradient with respect to z")
                continue
            var, worst, t1 = [], 0.0, time.perf_counter()
            for n in ns:
                st = E.gradient_variance(toy_estimator(name, mu, s, f, n, sigma), [mu, s], repeats)
                var.append(st.total_variance())
                worst = max(worst, max(float(((m - t) / se).abs().max()) for m, t, se in
                                       zip(st.mean, truth, st.standard_error())))
            ax.loglog(ns, var, "o-", color=COLORS[name], label=LABELS[name])
            exact = pname == "quadratic" or name != "es"   # ES on a non-quadratic F: bias O(sigma^2)
            ctx.row(f"toy 10-D, {pname} f", f"{LABELS[name]}: total gradient variance at N=16", var[ns.index(16)],
                    seconds=time.perf_counter() - t1,
                    note=f"log-log slope {slope(ns, var):.2f}; largest |mean - closed form| = {worst:.1f} SE "
                         f"over {len(ns)} N x 20 parameters ({repeats} repeats)"
                         + ("" if exact else f"; sigma = {sigma}"),
                    target="unbiased (< 4.5 SE)" if exact else "bias O(sigma^2) (< 4.5 SE)", met=worst < 4.5)
            ctx.extra.setdefault("toy", {}).setdefault(pname, {})[name] = {"n": ns, "total_variance": var,
                                                                          "max_bias_in_se": worst}
        log_axes(ax, ns, f"toy: q = N(mu, diag s^2) in 10-D, {pname} f")
        ctx.extra["toy_seconds_" + pname] = time.perf_counter() - t0
    tv = ctx.extra["toy"]["quadratic"]
    best = min(tv, key=lambda k: tv[k]["total_variance"][ns.index(16)])
    ctx.row("toy 10-D, quadratic f", "lowest variance estimator (N=16)", None, note=LABELS[best],
            target="re-parametrization", met=best == "reparam")

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
    ctx.row("MNIST", f"test ELBO of the VAE whose encoder gradients are measured ({pre_epochs} epochs, re-param.)",
            test_elbo(vae, x_test), seconds=h.seconds, note="nats; 784-200-10 MLP, Bernoulli")

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
            if name == "score_ma":        # warm the moving average up on this batch first
                warm = vae_estimate(vae, xb, name, n, ma)
                for _ in range(20):
                    warm()
            st = E.gradient_variance(vae_estimate(vae, xb, name, n, ma), enc, vrep)
            var.append(st.total_variance())
            if name == "reparam" and n == vn[-1]:
                signal = st.mean_norm2()
        ax.loglog(vn, var, "o-", color=COLORS[name], label=LABELS[name])
        ctx.row("MNIST", f"{LABELS[name]}: total variance of the encoder gradient at N={vn[-1]}", var[-1],
                note=f"{n_enc} encoder parameters, batch of 100 test images, {vrep} repeats; "
                     f"log-log slope {slope(vn, var):.2f}")
        ctx.extra.setdefault("mnist_variance", {})[name] = {"n": vn, "total_variance": var}
    ax.axhline(signal, color="k", ls="--", lw=1, label="|mean gradient|^2 (re-param., largest N)")
    ctx.extra["mnist_signal_norm2"] = signal
    log_axes(ax, vn, f"VAE encoder on MNIST ({n_enc} parameters), f = log p(x|z)")
    ctx.extra["mnist_variance_seconds"] = time.perf_counter() - t0
    shared_legend(fig, axes)
    ctx.figure(fig, "variance_vs_samples.png",
               "Total variance (trace of the covariance) of each gradient estimator against the number of "
               "evaluations of f per estimate, log-log. Left, middle: 10-D Gaussian q, closed-form gradient "
               "known; the step f has no path-wise gradient. Right: the encoder of a VAE on MNIST; the dashed "
               "line is the squared norm of the true gradient, so curves above it are mostly noise.")

    # 3. aggregate-posterior KL by density ratio ---------------------------------------------------
    t0 = time.perf_counter()
    with torch.no_grad():
        avg_kl = float(bounds.kl(vae.encode(x_test), vae.prior()).mean())
    agg = ratio.aggregate_kl(vae, x_test, steps=300 if quick else 1500, batch_size=512, hidden=(64, 64), lr=3e-3)
    ctx.row("MNIST", "KL(q(z) || p(z)) of the aggregate posterior, by density ratio", agg.kl,
            seconds=time.perf_counter() - t0, target=f"between 0 and E_x KL(q(z|x)||p(z)) = {avg_kl:.2f}",
            met=-3 * agg.standard_error < agg.kl < avg_kl,
            note=f"nats; critic accuracy {agg.accuracy:.3f}; MC standard error {agg.standard_error:.3f}")

    # 4. training with each estimator for the same CPU time --------------------------------------------
    budget = 8.0 if quick else 60.0
    fig2, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.6))
    w = 10 if quick else 50
    x_bound, k_bound = x_test[: 200 if quick else 1000], 50 if quick else 200

    def make(name):
        torch.manual_seed(ctx.seed + 7)          # the same initial weights for every estimator
        kw = dict(TRAIN_SETTINGS[name], **({"baseline": E.MovingAverage(0.9)} if name == "score_ma" else {}))
        return Clocked(build("vae", **cfg), **kw)

    for name in names:
        model, h = fit_for(lambda: make(name), x_train, budget, tcfg)
        t = np.asarray(model.clock[: len(h.loss)])
        a1.plot(t[w - 1:], -smooth(h.loss, w), color=COLORS[name], label=LABELS[name])
        a2.plot(np.arange(w, len(h.loss) + 1), -smooth(h.loss, w), color=COLORS[name], label=LABELS[name])
        te = test_elbo(model.model, x_test)
        cpu = float(t[-1])
        settings = {k: v for k, v in TRAIN_SETTINGS[name].items()}
        ctx.row("MNIST", f"test ELBO after {cpu:.0f} CPU-s of training with {LABELS[name]}", te, seconds=h.seconds,
                note=f"nats; {len(h.steps)} steps of batch 100; settings {settings}; seconds = wall time (shared machine)")
        if name == "reparam":
            t0 = time.perf_counter()
            lb = proposal_bound(model.model, x_bound, k_bound)
            ctx.row("MNIST", f"re-parametrized VAE: IWAE-{k_bound} lower bound on log p(x), {len(x_bound)} test images",
                    lb, seconds=time.perf_counter() - t0, note="nats; proposal N(mean, (1.5 std)^2) of q(z|x) draws; "
                    "the same bound as for the AVB rows below")
            ctx.extra["bound_vae"] = lb
        ctx.extra.setdefault("training", {})[name] = {"steps": len(h.steps), "cpu_seconds": cpu,
                                                      "wall_seconds": h.seconds, "test_elbo": te, "settings": settings}
    # 5. the ratio in place of the KL: AVB with an implicit posterior, same budget -------------------
    from ..models import avb  # noqa: F401  (registers "avb")

    for contrast, color in ((True, "C4"), (False, "C5")):
        label = "AVB (implicit q), " + ("adaptive contrast" if contrast else "plain critic")

        def make_avb():
            torch.manual_seed(ctx.seed + 7)
            return Clocked(build("avb", **cfg, contrast=contrast, n_moments=6, critic_hidden=(128, 128)),
                           objective=lambda m, x: m.loss(x))

        model, h = fit_for(make_avb, x_train, budget, tcfg)
        t = np.asarray(model.clock[: len(h.loss)])
        a1.plot(t[w - 1:], -smooth(h.loss, w), "--", color=color, label=label + " (its own ELBO estimate)")
        a2.plot(np.arange(w, len(h.loss) + 1), -smooth(h.loss, w), "--", color=color, label=label)
        t0 = time.perf_counter()
        chk = avb_check(model.model, x_test, steps=300 if quick else 1000)
        cpu = float(t[-1])
        ctx.row("MNIST", f"{label}: test ELBO by its own critic after {cpu:.0f} CPU-s", chk["elbo_model"],
                seconds=h.seconds, note=f"nats; {len(h.steps)} steps; KL term {chk['kl_model']:.2f} by the model's critic")
        ctx.row("MNIST", f"{label}: test ELBO with the KL re-estimated by a fresh critic", chk["elbo_checked"],
                seconds=time.perf_counter() - t0,
                note=f"nats; fresh critic trained on a stream of fresh (x, z) pairs: KL {chk['kl_checked']:.2f} "
                     f"(+- {chk['kl_se']:.2f} MC), accuracy {chk['accuracy']:.3f}; not a bound: both are estimates")
        t0 = time.perf_counter()
        lb = proposal_bound(model.model, x_bound, k_bound)
        ctx.row("MNIST", f"{label}: IWAE-{k_bound} lower bound on log p(x), {len(x_bound)} test images", lb,
                seconds=time.perf_counter() - t0, note="nats; a true bound (Gaussian proposal from q's draws), "
                "comparable with the VAE's")
        chk["iwae_bound"] = lb
        ctx.extra.setdefault("avb", {})["contrast" if contrast else "plain"] = {**chk, "steps": len(h.steps),
                                                                               "cpu_seconds": cpu}

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
    ctx.figure(fig2, "training_curves.png",
               "The same VAE (784-200-10, Bernoulli, Adam 1e-3, batch 100, same initial weights) trained with each "
               "estimator for the encoder's gradient for the same CPU time (one thread); the decoder always gets its exact "
               "gradient and the KL term is analytic. Dashed: adversarial variational Bayes (implicit posterior, KL "
               "replaced by a critic's density-ratio estimate), whose curve is its own (critic-based) ELBO estimate. "
               "Left against CPU seconds, right against steps.")
