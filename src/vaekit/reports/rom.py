"""`vaekit report rom`: auto-encoders vs POD as reduced-order models of advection and Burgers fields.

For each problem, train snapshots come from some parameter values and test snapshots from others
(unseen parameters, all times).  For latent dimension r = 1..10 we fit POD(r) and an MLP
auto-encoder with r latent coordinates and report the test relative L2 error
mean ||x - x_hat|| / ||x||, and the ratio AE / POD; the claim checked is Lee & Carlberg (2020):
on advection-dominated problems a nonlinear manifold needs far fewer coordinates than a subspace
(target here: ratio <= 0.1 at r = 2..4).  Then a small network advances the r = 3 coordinates in
time, z_{t+1} = z_t + g(z_t, mu), for POD and for the AE, rolled out from the initial condition of
every test trajectory (g is fitted on 4-step unrolled windows with input noise of 0.05 standard
deviations, which keeps roll-outs near the training manifold).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data import fields
from ..rom import POD, AutoEncoderROM, LatentDynamics, reconstruction_error, rollout_error
from . import report

CITATION = "Lee & Carlberg 2020, J. Comput. Phys. 404:108973"
RATIO_TARGET = 0.1
TARGET_DIMS = (2, 3, 4)


def problems(quick: bool) -> dict:
    """name -> (generator name, train kwargs, test kwargs); test parameters lie between train ones."""
    if quick:
        speeds = np.linspace(0.5, 1.0, 8)
        adv = dict(n_x=64, n_t=32, width=0.04)
        bur = dict(n_x=128, n_t=30, t_end=3.0, n_fine=512)
        return {
            "advection": ("advection", dict(speeds=speeds, **adv), dict(speeds=speeds[:-1] + 1 / 28, **adv)),
            "burgers": (
                "burgers",
                dict(amplitudes=[0.6, 1.0, 1.4], nus=[0.02, 0.04], **bur),
                dict(amplitudes=[0.8, 1.2], nus=[0.03], **bur),
            ),
        }
    speeds = np.linspace(0.5, 1.0, 16)
    adv = dict(n_x=256, n_t=64, width=0.02)
    bur = dict(n_x=256, n_t=50, t_end=3.0, n_fine=1024)
    return {
        "advection": ("advection", dict(speeds=speeds, **adv), dict(speeds=speeds[:-1] + 1 / 60, **adv)),
        "burgers": (
            "burgers",
            dict(amplitudes=np.linspace(0.6, 1.4, 5), nus=[0.01, 0.02, 0.04], **bur),
            dict(amplitudes=[0.7, 0.9, 1.1, 1.3], nus=[0.015, 0.03], **bur),
        ),
    }


def settings(quick: bool) -> dict:
    if quick:
        return dict(
            dims=(2, 3),
            dyn_dim=2,
            ae={
                "advection": dict(hidden=(128, 64), epochs=60, batch_size=32),
                "burgers": dict(hidden=(128, 64), epochs=60, batch_size=32),
            },
            dyn=dict(epochs=200, batch_size=32, horizon=4, noise=0.05),
        )
    return dict(
        dims=tuple(range(1, 11)),
        dyn_dim=3,
        ae={
            "advection": dict(hidden=(256, 128), epochs=120, batch_size=64),
            "burgers": dict(hidden=(256, 128), epochs=300, batch_size=32),
        },
        dyn=dict(epochs=250, batch_size=32, horizon=4, noise=0.05),
    )


def cole_hopf_check(test: fields.Fields, n_times: int = 5) -> float:
    """Largest relative L2 error of the solver's snapshots against Cole-Hopf over test trajectories."""
    worst = 0.0
    idx = np.linspace(1, len(test.times) - 1, n_times).astype(int)
    for (a, nu), u in zip(test.params, test.u):
        for j in idx:
            exact = fields.burgers_exact(test.grid, test.times[j], a, nu, mean=1.0)
            worst = max(worst, float(np.linalg.norm(u[j] - exact) / np.linalg.norm(exact)))
    return worst


@report("rom")
def run(ctx):
    import matplotlib

    matplotlib.use("Agg")
    torch.set_num_threads(1)
    cpu0 = time.process_time()
    st = settings(ctx.quick)
    results = {}
    for name, (gen, train_kw, test_kw) in problems(ctx.quick).items():
        t0 = time.perf_counter()
        train = fields.generate(gen, **train_kw)
        test = fields.generate(gen, **test_kw)
        gen_s = time.perf_counter() - t0
        X, Xt = train.snapshots, test.snapshots
        res = results[name] = {
            "train_params": train.params.tolist(),
            "test_params": test.params.tolist(),
            "n_train": len(X),
            "n_test": len(Xt),
            "n_x": X.shape[1],
            "generate_seconds": gen_s,
            "dims": list(st["dims"]),
            "pod": [],
            "ae": [],
            "ratio": [],
            "ae_seconds": [],
        }
        if gen == "burgers":
            t0 = time.perf_counter()
            err = cole_hopf_check(test)
            ctx.row(
                name,
                "solver vs Cole-Hopf, max rel. L2",
                err,
                seconds=time.perf_counter() - t0,
                note=f"test trajectories, 5 times, n_fine={test_kw['n_fine']}",
                target="< 1e-3",
                met=err < 1e-3,
            )
        pod_full = POD(1).fit(X)
        res["singular_values"] = pod_full.singular_values_.tolist()
        models = {}
        for r in st["dims"]:
            pod = POD(r).fit(X)
            t0 = time.perf_counter()
            ae = AutoEncoderROM(r, seed=ctx.seed, **st["ae"][name]).fit(X)
            sec = time.perf_counter() - t0
            e_pod, e_ae = reconstruction_error(pod, Xt), reconstruction_error(ae, Xt)
            ratio = e_ae / e_pod
            res["pod"].append(e_pod)
            res["ae"].append(e_ae)
            res["ratio"].append(ratio)
            res["ae_seconds"].append(sec)
            models[r] = (pod, ae)
            ctx.row(name, f"POD test rel. L2, r={r}", e_pod, note=f"train tail energy {pod.tail_energy():.3g}")
            ctx.row(name, f"AE test rel. L2, r={r}", e_ae, seconds=sec, note="MLP auto-encoder")
            in_target = r in TARGET_DIMS
            ctx.row(
                name,
                f"AE / POD error ratio, r={r}",
                ratio,
                citation=CITATION,
                target=f"<= {RATIO_TARGET}" if in_target else "",
                met=(ratio <= RATIO_TARGET) if in_target else None,
            )
        # latent dynamics at one dimension, for both reducers
        r = st["dyn_dim"]
        res["rollout"] = {"dim": r, "times": test.times.tolist()}
        for label, reducer in zip(("POD", "AE"), models[r]):
            Z = reducer.transform(X).reshape(*train.u.shape[:2], r)
            t0 = time.perf_counter()
            dyn = LatentDynamics(seed=ctx.seed, **st["dyn"]).fit(Z, train.params)
            err, pred = rollout_error(reducer, dyn, test.u, test.params)
            sec = time.perf_counter() - t0
            floor = reconstruction_error(reducer, Xt)
            res["rollout"][label] = err.tolist()
            res["rollout"][label + "_latents"] = {
                "train": Z[:, :, :2].tolist(),
                "test_encoded": reducer.transform(Xt).reshape(*test.u.shape[:2], r)[:, :, :2].tolist(),
                "test_rollout": dyn.rollout(reducer.transform(test.u[:, 0]), test.params, len(test.times) - 1)[
                    :, :, :2
                ].tolist(),
            }
            res["rollout"][label + "_pred_example"] = pred[0].tolist()
            ctx.row(
                name,
                f"{label} roll-out rel. L2, r={r}, mean over time",
                float(err.mean()),
                seconds=sec,
                note=f"final time {err[-1]:.3g}; reconstruction floor {floor:.3g}",
            )
        res["example"] = {
            "truth": test.u[0].tolist(),
            "grid": test.grid.tolist(),
            **{
                f"{lab}_{r}": red.reconstruct(test.u[0]).tolist()
                for r in sorted(set(st["dims"]) & {2, 3})
                for lab, red in zip(("POD", "AE"), models[r])
            },
        }
    ctx.extra["rom"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("example",)} for k, v in results.items()}
    for v in ctx.extra["rom"].values():
        v["rollout"] = {kk: vv for kk, vv in v["rollout"].items() if "latents" not in kk and "pred" not in kk}
    figures(ctx, results)
    cpu = ctx.extra["cpu_seconds"] = time.process_time() - cpu0
    limit = 2 if ctx.quick else 20
    ctx.row(
        "all",
        "CPU minutes for the whole report",
        cpu / 60,
        target=f"<= {limit}",
        met=cpu / 60 <= limit,
        note="time.process_time of this process, single-threaded torch",
    )


def panels(ctx, plt, results, draw, xlabel: str, ylabel: str, filename: str, caption: str) -> None:
    """One panel per problem, side by side: `draw(ax, results[name])` plots its lines on a log scale."""
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6))
    for ax, name in zip(np.atleast_1d(axes), results):
        draw(ax, results[name])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    ctx.figure(fig, filename, caption)


def figures(ctx, results):
    import matplotlib.pyplot as plt

    names = list(results)

    def error_vs_dim(ax, res):
        ax.semilogy(res["dims"], res["pod"], "o-", label="POD")
        ax.semilogy(res["dims"], res["ae"], "s-", label="auto-encoder (MLP)")

    panels(
        ctx,
        plt,
        results,
        error_vs_dim,
        "latent dimension r",
        "test relative L2 error",
        "error_vs_dim.png",
        "Test relative L2 error (unseen parameters) against latent dimension.",
    )

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name in names:
        s = np.asarray(results[name]["singular_values"])
        ax.semilogy(np.arange(1, min(len(s), 100) + 1), (s / s[0])[:100], label=name)
    ax.set_xlabel("mode i")
    ax.set_ylabel("singular value s_i / s_1")
    ax.set_title("POD singular value decay (centred training snapshots)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ctx.figure(fig, "singular_values.png", "POD singular values: slow decay for advection-dominated fields.")

    for name in names:
        ex, res = results[name]["example"], results[name]
        truth = np.asarray(ex["truth"])
        keys = [k for k in ex if k not in ("truth", "grid")]
        n_t = len(truth)
        cols = np.linspace(0, n_t - 1, 4).astype(int)
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.2), sharey=True)
        times = res["rollout"]["times"]
        for ax, j in zip(axes, cols):
            ax.plot(ex["grid"], truth[j], "k-", lw=2, label="snapshot")
            for k in keys:
                ax.plot(
                    ex["grid"],
                    np.asarray(ex[k])[j],
                    "--" if k.startswith("POD") else "-",
                    lw=1,
                    label=k.replace("_", ", r="),
                )
            ax.set_title(f"t = {times[j]:.2f}")
            ax.set_xlabel("x")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{name}: test trajectory {np.round(res['test_params'][0], 4).tolist()}")
        fig.tight_layout()
        ctx.figure(
            fig, f"reconstructions_{name}.png", f"{name}: snapshots of an unseen parameter and their reconstructions."
        )

    fig, axes = plt.subplots(len(names), 2, figsize=(10, 4 * len(names)), squeeze=False)

    def y(a):  # the second coordinate, zeros for a one-dimensional latent
        return a[:, 1] if a.shape[1] > 1 else np.zeros(len(a))

    for row, name in zip(axes, names):
        ro = results[name]["rollout"]
        for ax, label in zip(row, ("POD", "AE")):
            lat = ro[label + "_latents"]
            for tr in np.asarray(lat["train"]):
                ax.plot(tr[:, 0], tr[:, 1] if tr.shape[1] > 1 else np.zeros(len(tr)), color="0.8", lw=0.8)
            for i, (enc, pred) in enumerate(zip(np.asarray(lat["test_encoded"]), np.asarray(lat["test_rollout"]))):
                c = f"C{i % 10}"
                ax.plot(enc[:, 0], y(enc), "-", color=c, lw=1.5)
                ax.plot(pred[:, 0], y(pred), ":", color=c, lw=1.5)
            ax.set_title(f"{name}, {label} coordinates (z1, z2), r={ro['dim']}")
            ax.set_xlabel("z1")
            ax.set_ylabel("z2")
    fig.tight_layout()
    ctx.figure(
        fig,
        "latent_trajectories.png",
        "Latent trajectories: training (grey), test encoded (solid) and rolled out by the latent dynamics (dotted).",
    )

    def rollout(ax, res):
        ro = res["rollout"]
        for label in ("POD", "AE"):
            ax.semilogy(ro["times"], ro[label], label=f"{label}, r={ro['dim']}")

    panels(
        ctx,
        plt,
        results,
        rollout,
        "time",
        "roll-out relative L2 error",
        "rollout_error.png",
        "Error of the latent-dynamics roll-out over time (mean over test trajectories).",
    )
