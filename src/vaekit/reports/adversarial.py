"""Adversarial games run by the one training loop: a GAN on 2-D points and adversarial auto-encoders.

    vaekit report adversarial [--quick] [--option seeds=N] [--option gan_steps=N] [--option steps=N]

Games are sensitive to the seed and to the machine's thread count, so every number is measured over
several seeds (5 by default, 2 with --quick; seeds --seed, --seed + 1, ...) and given as the mean,
with the standard deviation, minimum and maximum beside it; the figures show the first seed.

1. GAN (`models.gan.GAN`) on the usual 2-D benchmark, a mixture of 8 Gaussians (std 0.02) on a
   circle of radius 2: samples against data at several points of training (the run is stopped and
   resumed from its checkpoint between snapshots), the discriminator's accuracy on real and on fake
   points over training (it should approach 0.5), modes covered (>= 1 % of samples within 3 std of
   the mode) and the fraction of high-quality samples (within 3 std of some mode), on 2,500 samples.
2. Adversarial auto-encoders (Makhzani et al. 2015) on MNIST with a 2-D code and three priors: a
   Gaussian, a mixture of 10 Gaussians on a circle, a ring; and a plain auto-encoder with the same
   networks as the baseline.  For each: test codes coloured by digit beside prior samples, the test
   reconstruction error (squared error summed over pixels, averaged over test images), and how well
   q(z) matches p(z): the squared MMD between test codes and prior samples, and the held-out
   accuracy of a classifier telling the two apart (`vaekit.ratio`; 0.5 = indistinguishable).

Paper number for context only: Makhzani et al. report a Parzen-window log-likelihood of 340 +- 2
nats on MNIST for the AAE (Table 1), a kernel density fitted to the model's samples.  We do not
measure Parzen likelihoods, so we make no claim against it.
"""

from __future__ import annotations

import csv
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import adversarial as A
from .. import ratio
from ..bounds import seeded
from ..data import load
from ..errors import VaekitError
from ..models import build
from ..train import TrainConfig, fit
from . import report, trained, training_note

CITATION = "Makhzani et al. 2015, Table 1 (Parzen window, MNIST)"
PRIOR_LABELS = {"gaussian": "Gaussian N(0, I)", "mixture": "10 Gaussians on a circle", "ring": "ring"}


def smooth(v, w):
    v = np.asarray(v, dtype=float)
    w = max(1, min(w, len(v)))
    return np.convolve(v, np.ones(w) / w, mode="valid")


def seeds(ctx) -> list[int]:
    n = ctx.option("seeds", 2 if ctx.quick else 5, int)
    if n < 1:
        raise VaekitError(f"report {ctx.name}: option seeds must be >= 1, got {n}")
    return [ctx.seed + i for i in range(n)]


def spread(values) -> dict:
    v = np.asarray(values, dtype=float)
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
        "per_seed": [float(a) for a in v],
    }


def spread_note(values, digits=3) -> str:
    """'mean ± sd over n seeds (min .. max)': how far the game's outcome moves with the seed."""
    d = spread(values)
    f = f"{{:.{digits}f}}"
    return (
        f"{f.format(d['mean'])} ± {f.format(d['sd'])} (sd) over {len(values)} seeds, "
        f"min {f.format(d['min'])}, max {f.format(d['max'])}"
    )


# -- 1. the 2-D GAN -------------------------------------------------------------------------------------
def train_gan(seed, steps, snaps, hidden, centres, std, radius):
    """One GAN game from seed `seed`: samples at every snapshot step (the same noise each time), the
    discriminator's per-step terms, the training seconds, and the data it was trained on."""
    torch.manual_seed(seed)
    data = A.mixture_on_circle(len(centres), radius, std).sample((50000,))
    torch.manual_seed(seed + 1)
    gan = build("gan", noise_dim=4, hidden=hidden, disc_hidden=hidden)
    tcfg = dict(epochs=10**6, batch_size=256, lr=1e-3, betas=(0.5, 0.999), seed=seed, progress=False, tensorboard=False)
    eps = torch.randn(2500, 4, generator=torch.Generator().manual_seed(seed + 2))
    samples, terms, seconds = {}, {}, 0.0
    with tempfile.TemporaryDirectory() as run:
        for i, s in enumerate(snaps):
            if s > 0:  # train on to step s, resuming the same run (every phase's optimiser included)
                h = fit(gan, data, TrainConfig(max_steps=s, **tcfg), run, resume=i > 1, overwrite=True)
                seconds += h.seconds
                for k, v in h.terms.items():
                    terms.setdefault(k, []).extend(v)
            with torch.no_grad():
                samples[s] = gan.generate(eps)
    return samples, terms, seconds, data


def gan_part(ctx, plt):
    quick = ctx.quick
    steps = ctx.option("gan_steps", 200 if quick else 10000, int)
    snaps = sorted({0, *(int(f * steps) for f in ((0.5, 1.0) if quick else (0.025, 0.1, 0.25, 0.5, 1.0)))})
    radius, std, n_modes = 2.0, 0.02, 8
    centres = A.circle_points(n_modes, radius)
    hidden = (32, 32) if quick else (128, 128)
    w = 20 if quick else 200
    per_seed, first = (
        {"modes": [], "high_quality": [], "disc_acc": [], "acc_real": [], "acc_fake": [], "seconds": []},
        None,
    )
    for seed in seeds(ctx):
        ctx.log(f"GAN, seed {seed}")
        samples, terms, seconds, data = train_gan(seed, steps, snaps, hidden, centres, std, radius)
        modes, hq = A.mode_coverage(samples[steps], centres, std)
        acc_r, acc_f = np.mean(terms["disc/acc_real"][-w:]), np.mean(terms["disc/acc_fake"][-w:])
        for k, v in (
            ("modes", modes),
            ("high_quality", hq),
            ("disc_acc", 0.5 * (acc_r + acc_f)),
            ("acc_real", acc_r),
            ("acc_fake", acc_f),
            ("seconds", seconds),
        ):
            per_seed[k].append(float(v))
        first = first or (samples, terms, data)
    samples, terms, data = first
    n = len(per_seed["modes"])
    ctx.row(
        "2-D ring of 8 Gaussians",
        f"GAN: modes covered after {steps} steps (of {n_modes}), mean of {n} seeds",
        np.mean(per_seed["modes"]),
        seconds=sum(per_seed["seconds"]),
        target=f"{n_modes} in every seed",
        met=min(per_seed["modes"]) == n_modes,
        note=f"{spread_note(per_seed['modes'], 1)}; a mode is covered if >= 1 % of 2,500 samples lie within "
        f"3 std (0.06) of it; non-saturating loss, G and D {hidden} ReLU, Adam 1e-3 (0.5, 0.999), batch 256",
    )
    ctx.row(
        "2-D ring of 8 Gaussians",
        f"GAN: fraction of high-quality samples, mean of {n} seeds",
        np.mean(per_seed["high_quality"]),
        note=f"{spread_note(per_seed['high_quality'])}; within 3 std of the nearest mode; exact samples of the "
        "data give 1 - e^-4.5 = 0.989",
    )
    final = np.mean(per_seed["disc_acc"])
    ctx.row(
        "2-D ring of 8 Gaussians",
        f"GAN: discriminator accuracy, mean of the last {w} steps and of {n} seeds",
        final,
        target="near 0.5 (< 0.75)",
        met=bool(final < 0.75),
        note=f"{spread_note(per_seed['disc_acc'])}; on real points {np.mean(per_seed['acc_real']):.3f}, on "
        f"fakes {np.mean(per_seed['acc_fake']):.3f} (means over seeds)",
    )
    ctx.extra["gan"] = {
        "steps": steps,
        "snapshots": snaps,
        "seeds": seeds(ctx),
        **{k: spread(v) for k, v in per_seed.items()},
        "first_seed_snapshot_quality": {s: A.mode_coverage(samples[s], centres, std) for s in snaps},
    }

    fig, axes = plt.subplots(1, len(snaps), figsize=(3.2 * len(snaps), 3.4))
    for ax, s in zip(axes, snaps):
        ax.scatter(*data[:2500].T, s=2, c="0.6", label="data")
        ax.scatter(*samples[s].T, s=2, c="C3", alpha=0.5, label="GAN samples")
        m, q = A.mode_coverage(samples[s], centres, std)
        ax.set_title(f"step {s}: {m}/8 modes, {100 * q:.0f} % good", fontsize=9)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="lower left", fontsize=7, markerscale=4)
    ctx.figure(
        fig,
        "gan_snapshots.png",
        f"GAN samples (red, 2,500, the same noise each time) against data (grey) over training on a ring of "
        f"8 Gaussians (std 0.02), seed {ctx.seed}; the run is stopped and resumed from its checkpoint at "
        "every snapshot.",
    )
    return terms, w


# -- 2. adversarial auto-encoders on MNIST -----------------------------------------------------------------
def read_log(run_dir: Path) -> dict[str, list[float]]:
    with open(run_dir / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss")]
    return {k: [float(r[k]) for r in rows] for k in rows[0] if k not in ("step", "epoch") and rows[0][k] != ""}


@torch.no_grad()
def test_reconstruction(model, x) -> float:
    """Squared error summed over pixels, averaged over test images (pixels in [0, 1])."""
    return float(sum((model.reconstruct(xb) - xb).pow(2).flatten(1).sum(1).sum() for xb in x.split(1000)) / len(x))


def prior_match(codes, kind, n, steps, seed) -> tuple[float, float]:
    """(squared MMD, held-out two-sample classifier accuracy) between codes and samples of prior `kind`."""
    p = A.prior(kind, 2)
    g = torch.Generator().manual_seed(seed)
    sub = codes[torch.randperm(len(codes), generator=g)[:n]]
    with seeded(seed):
        mmd = A.mmd2(sub, p.sample((n,)))
        acc = ratio.kl_divergence(
            codes, lambda m: p.sample((m,)), steps=steps, batch_size=256, hidden=(64, 64), lr=3e-3, seed=seed
        ).accuracy
    return mmd, acc


def aae_part(ctx, plt):
    quick = ctx.quick
    try:
        train, test = load("mnist", "train", ctx.data_dir), load("mnist", "test", ctx.data_dir)
    except (VaekitError, FileNotFoundError, OSError) as e:
        ctx.row("MNIST", "adversarial auto-encoder parts skipped", None, note=f"MNIST not found: {e}")
        return None
    n_train, n_test = (2000, 500) if quick else (len(train), len(test))
    x, x_test, y_test = train.x[:n_train], test.x[:n_test], test.y[:n_test]
    steps = ctx.option("steps", 40 if quick else 3000, int)
    hidden = (64,) if quick else (512, 256)
    cfg = dict(data_shape=(28, 28), latent_dim=2, hidden=hidden, likelihood="bernoulli")
    batch = 100
    tcfg = TrainConfig(
        epochs=-(-steps // -(-n_train // batch)),
        max_steps=steps,
        batch_size=batch,
        lr=1e-3,
        seed=ctx.seed,
        progress=False,
        tensorboard=False,
    )
    run_root = Path(ctx.options.get("run_root") or "runs")
    suffix = "-quick" if quick else ""
    match_n, match_steps = (500, 100) if quick else (2000, 1000)
    kinds = list(PRIOR_LABELS)
    recon, match, seconds = {}, {}, {}  # per model (and prior): one value per seed
    codes, logs, notes = {}, {}, {}  # the first seed's, for the figures
    for seed in seeds(ctx):
        tcfg_s = TrainConfig(**{**asdict(tcfg), "seed": seed})
        for kind in ["ae", *kinds]:
            torch.manual_seed(seed + 11)  # the same initial encoder and decoder for every model
            if kind == "ae":
                name, mcfg = "autoencoder", cfg
            else:
                name, mcfg = "aae", dict(cfg, prior=kind, disc_hidden=(64, 64) if quick else (256, 256))
            ctx.log(f"training {name} {mcfg.get('prior', '')} for {steps} steps, seed {seed}")
            tag = f"adversarial-{kind}-seed{seed}{suffix}"
            model, info = trained(ctx, tag, name, mcfg, x, tcfg_s)
            z = model.embed(x_test)
            if kind not in codes:
                codes[kind], logs[kind], notes[kind] = z, read_log(run_root / f"report-{tag}"), training_note(info)
            recon.setdefault(kind, []).append(test_reconstruction(model, x_test))
            seconds.setdefault(kind, []).append(info["seconds"])
            for p in kinds if kind == "ae" else [kind]:
                mmd, acc = prior_match(z, p, match_n, match_steps, seed)
                match.setdefault((kind, p), {"mmd2": [], "classifier_acc": []})
                match[kind, p]["mmd2"].append(mmd)
                match[kind, p]["classifier_acc"].append(acc)
    n = len(seeds(ctx))
    arch = f"784-{'-'.join(map(str, hidden))}-2 MLP, Bernoulli"
    for kind in ["ae", *kinds]:
        label = "plain auto-encoder" if kind == "ae" else f"AAE, {PRIOR_LABELS[kind]} prior"
        ctx.row(
            "MNIST",
            f"{label}: test reconstruction error, mean of {n} seeds",
            np.mean(recon[kind]),
            seconds=sum(seconds[kind]),
            note=f"{spread_note(recon[kind], 2)}; squared error summed over pixels, "
            f"mean over {n_test} test images; {arch}; first seed {notes[kind]}",
        )
        for p in kinds if kind == "ae" else [kind]:
            m = match[kind, p]
            ctx.row(
                "MNIST",
                f"{label}: MMD^2 of test codes vs {PRIOR_LABELS[p]} prior, mean of {n} seeds",
                np.mean(m["mmd2"]),
                note=f"{spread_note(m['mmd2'], 4)}; {match_n} codes vs {match_n} prior "
                "samples, Gaussian kernels h = 0.25..4",
            )
    ctx.extra["prior_match"] = {
        kind: {p: {k: spread(v) for k, v in match[kind, p].items()} for p in (kinds if kind == "ae" else [kind])}
        for kind in ["ae", *kinds]
    }
    ctx.extra["reconstruction"] = {kind: spread(v) for kind, v in recon.items()}
    for p in kinds:
        ae, aae = match["ae", p], match[p, p]
        wins = sum(
            a < b and c < d for a, b, c, d in zip(aae["classifier_acc"], ae["classifier_acc"], aae["mmd2"], ae["mmd2"])
        )
        ctx.row(
            "MNIST",
            f"{PRIOR_LABELS[p]} prior: two-sample classifier accuracy of the AAE's codes, mean of {n} seeds",
            np.mean(aae["classifier_acc"]),
            target=f"below the plain AE's ({np.mean(ae['classifier_acc']):.3f}) in every seed",
            met=wins == n,
            note=f"AAE {spread_note(aae['classifier_acc'])}; plain AE {spread_note(ae['classifier_acc'])}; held "
            f"out, 0.5 = indistinguishable; the AAE's accuracy and MMD^2 are both below the plain AE's in "
            f"{wins} of {n} seeds",
        )
    ctx.row(
        "MNIST",
        "AAE Parzen-window log-likelihood (paper, for context)",
        None,
        paper=340,
        citation=CITATION,
        note="paper: 340 +- 2 nats with a deeper model; not measured here (we report prior match instead)",
    )
    # figures: codes beside prior samples, one column per prior, and the plain AE
    cols, drawn = [*kinds, "ae"], {}
    fig, axes = plt.subplots(2, len(cols), figsize=(4.2 * len(cols), 8.4))
    for j, kind in enumerate(cols):
        z = codes[kind].numpy()
        ax = axes[0, j]
        sc = ax.scatter(z[:, 0], z[:, 1], c=y_test.numpy(), cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        ax.set_title(
            ("plain auto-encoder codes" if kind == "ae" else f"AAE codes, {PRIOR_LABELS[kind]} prior"), fontsize=10
        )
        ax = axes[1, j]
        if kind == "ae":
            ax.set_visible(False)
            continue
        torch.manual_seed(ctx.seed)
        drawn[kind] = A.prior(kind, 2).sample((len(z),))
        ax.scatter(*drawn[kind].T, s=3, c="0.4")
        ax.set_title(f"samples of the prior: {PRIOR_LABELS[kind]}", fontsize=10)
    for j, kind in enumerate(cols):  # a column's code and prior panels share one square scale
        shown = [codes[kind]] + ([drawn[kind]] if kind in drawn else [])
        lim = 1.05 * float(max(t.abs().max() for t in shown))
        for r in (0, 1):
            axes[r, j].set_xlim(-lim, lim)
            axes[r, j].set_ylim(-lim, lim)
            axes[r, j].set_aspect("equal")
            axes[r, j].grid(True, alpha=0.3)
    fig.colorbar(sc, cax=fig.add_axes([0.92, 0.56, 0.012, 0.3]), ticks=range(10), label="digit")
    ctx.figure(
        fig,
        "aae_latent.png",
        f"Top: 2-D codes of {n_test} MNIST test images coloured by digit (seed {ctx.seed}), for adversarial "
        "auto-encoders matching three priors and for a plain auto-encoder with the same networks (right). "
        "Bottom: samples of each prior, on the same axes as the codes above them.",
    )
    return logs


def accuracy_figure(ctx, plt, gan_terms, gan_w, logs):
    """Discriminator accuracy over training: the GAN and (when MNIST was there) the three AAEs."""
    fig, axes = plt.subplots(1, 2 if logs else 1, figsize=(13 if logs else 6.5, 4.2), squeeze=False)
    a1 = axes[0, 0]
    for key, color in (("disc/acc_real", "C0"), ("disc/acc_fake", "C1")):
        v = smooth(gan_terms[key], gan_w)
        a1.plot(np.arange(gan_w, len(v) + gan_w), v, color=color, label=key.split("/")[1])
    a1.set_title(f"GAN on the 8-Gaussian ring (running mean of {gan_w} steps)")
    if logs:
        a2 = axes[0, 1]
        w = 5 if ctx.quick else 50
        for i, kind in enumerate(PRIOR_LABELS):
            for key, ls in (("disc/acc_real", "-"), ("disc/acc_fake", "--")):
                v = smooth(logs[kind][key], w)
                a2.plot(
                    np.arange(w, len(v) + w), v, ls, color=f"C{i}", label=f"{PRIOR_LABELS[kind]}: {key.split('/')[1]}"
                )
        a2.set_title(f"AAE discriminators on z, MNIST (running mean of {w} steps)")
    for a in axes.flat:
        a.axhline(0.5, color="k", lw=0.8, ls=":")
        a.set_xlabel("step")
        a.set_ylabel("discriminator accuracy")
        a.set_ylim(0, 1.02)
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    ctx.figure(
        fig,
        "disc_accuracy.png",
        "Discriminator accuracy on real samples (data for the GAN; prior samples, solid, for the AAE) and on "
        "fakes (generator samples; encoder codes, dashed) over training. 0.5 (dotted) is the equilibrium.",
    )


@report("adversarial")
def run(ctx):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds(ctx)  # a bad --option seeds fails before any training
    torch.manual_seed(ctx.seed)
    cpu0 = time.process_time()
    ctx.log("2-D GAN")
    terms, w = gan_part(ctx, plt)
    logs = aae_part(ctx, plt)
    accuracy_figure(ctx, plt, terms, w, logs)
    ctx.extra["cpu_minutes"] = (time.process_time() - cpu0) / 60  # this process, all of its threads
    ctx.extra["threads"] = torch.get_num_threads()  # the games' outcomes depend on it, and on the versions
    ctx.extra["versions"] = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
