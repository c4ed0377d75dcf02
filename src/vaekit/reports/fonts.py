"""`vaekit report fonts`: a latent space of fonts with bold / italic / condensed directions, measured.

After the lecture's example from distill.pub (Carter & Nielsen 2017, "Using Artificial
Intelligence to Augment Human Intelligence": about 50,000 fonts, 64 x 64 glyphs, a 40-D latent):
every font file found is rendered to 62 glyphs at 64 x 64 (`data.fonts`; `make fonts-data` installs
a few thousand faces), 10 % of the fonts are held out (by a hash of their names, so a font keeps its
side when the corpus grows), and a per-font VAE (`models.fontvae`: conv glyph nets, Bernoulli
pixels, 8 characters decoded per step) is trained for a budget of CPU-minutes (`--option budget=45`).

    (a) held-out fonts reconstructed from the encoder's codes, per-pixel squared error beside PCA
        with as many components as the VAE has latent dimensions;
    (b) a glyph classifier (`fontmetrics`: which character, bold, italic, condensed), trained on real
        glyphs of the training fonts, reads held-out glyphs, reconstructions, and new fonts drawn from
        the prior and from a Gaussian mixture fitted on the training codes (`samplers`, ex-post
        density estimation); the glyph Fréchet distance of each to the held-out fonts;
    (c) interpolation between two fonts, shown on the word "Latent";
    (d) bold, italic and condensed directions (differences of codes within font families), measured by
        the classifier as alpha goes from -1 to 2 on the held-out fonts that lack the attribute, each moved
        code kept on its norm's shell (`latent.apply_attribute(..., method="spherical")`) and then decoded
        and encoded once (`latent.reencode`; the kept-norm edit alone and the straight line z + alpha v
        beside it): P(attribute) should rise and the characters stay readable; "bold" removed from held-out
        bold fonts;
    (e) the ablation behind the model: variants trained for the same few CPU-minutes (`--option
        ablation=MINUTES`, 0 skips it): MLP vs conv glyph nets, Bernoulli vs Gaussian pixels, 8 vs all 62
        characters decoded per step, all 62 vs 16 glyphs encoded per step (`--option encoder_chars=16`
        trains the report's model that way).

`--option init=fontvae-64` goes on from the weights of that committed model (or of a finished run folder,
`--option init=runs/NAME/report-fonts`) instead of from scratch, for
`--option budget=MINUTES` more (a fresh Adam and cosine schedule from `--option lr=...`, default 1e-3), with
`--option beta=...` to change the KL weight of the fine-tune; the CPU-minutes reported add the parent's.
Training runs under bfloat16 autocast (`TrainConfig.precision`): on a CPU with bfloat16 instructions, about
1.5x the steps per CPU-minute (`python bench/precision.py`; the ablation has a float32 row);
`--option precision=float32` turns it off.
`--pretrained` loads the model committed under models/fontvae-64 instead of training (the corpus
must be the one it was trained on for the held-out split to mean anything: see its training.json).
`--quick` renders only matplotlib's bundled fonts at 16 x 16 and trains briefly (a smoke test).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import fontmetrics, latent, samplers
from ..baselines import PCA
from ..data.fonts import CHARS, render_fonts
from ..errors import VaekitError
from ..models import fontvae as _fontvae  # noqa: F401  (registers "fontvae")
from ..train import TrainConfig
from . import report, trained, training_note

PRETRAINED = "fontvae-64"  # the committed model `--pretrained` loads (`models.pretrained`)
CITATION = "Carter & Nielsen 2017, distill.pub (64x64 glyphs, 40-D latent)"
ALPHAS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)


def ink(images):
    """Glyphs are stored with ink = 1; figures show dark ink on white paper."""
    return 1.0 - torch.as_tensor(images).float()


def glyph_index(text: str, chars: str = CHARS) -> list[int]:
    return [chars.index(c) for c in text if c in chars]


def pixel_mse(a, b) -> torch.Tensor:
    """Per-font mean squared error per pixel, pixels in [0, 1]: (F, ...) -> (F,)."""
    return (torch.as_tensor(a) - torch.as_tensor(b)).pow(2).flatten(1).mean(1)


def pick(sets, prefer):
    """(set number, index) of the first font satisfying `prefer(info)`, searching the sets in order."""
    for k, fonts in enumerate(sets):
        for i, f in enumerate(fonts.info):
            if prefer(f):
                return k, i
    return 0, 0


def regular(f) -> bool:
    """Book weight (350-500), upright, normal width."""
    return 350 <= f.weight <= 500 and not (f.bold or f.italic or f.condensed)


def committed(name: str):
    """The committed model `name` (or a finished run folder: a path holding config.json and training.json) and
    its training record, in the form `trained` returns."""
    import json

    from ..checkpoint import load_model
    from ..models import pretrained

    folder = Path(name)
    if folder.name != name:  # a path, not a committed model's name
        if not (folder / "training.json").is_file():
            raise VaekitError(f"{name}: not a finished run folder (no training.json); give a committed model or a run")
        run, source = folder, name
    else:
        run, source = pretrained(name), f"models/{name}"
    info = json.loads((run / "training.json").read_text())
    return load_model(run), {**info, "loaded": True, "source": source}


def held_out(name: str, fraction: float = 0.1) -> bool:
    """Whether the font called `name` is held out: a stable hash of its name, so that a font keeps its side
    when the corpus grows (a model trained on one render of the corpus never saw the held-out fonts of another)."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) < fraction * 16**8


def model_config(size: int, quick: bool) -> dict:
    """The font VAE of the report: conv glyph nets, Bernoulli pixels, the article's 40-D latent (8-D quick)."""
    if quick:
        return dict(
            data_shape=(len(CHARS), size, size),
            latent_dim=8,
            arch="conv",
            channels=(8, 16),
            hidden=(64,),
            glyph_features=8,
            char_dim=8,
            train_chars=16,
        )
    return dict(
        data_shape=(len(CHARS), size, size),
        latent_dim=40,
        arch="conv",
        channels=(16, 32, 64, 128),
        hidden=(512,),
        glyph_features=32,
        char_dim=16,
        encoder_pool=2,
        train_chars=8,
        beta=0.5,
    )


@report("fonts")
def run(ctx):
    torch.manual_seed(ctx.seed)
    quick = ctx.quick
    size = ctx.option("size", 16 if quick else 64, int)
    dirs = ctx.options.get("font_dirs")
    dirs = None if not dirs else [d for d in str(dirs).split(",") if d]
    if quick and dirs is None:
        from ..data.fonts import matplotlib_font_dir

        dirs = [matplotlib_font_dir()]

    # -- data ------------------------------------------------------------------------------------
    cpu0 = time.process_time()
    fonts = render_fonts(dirs, size=size)
    cpu = time.process_time() - cpu0
    left_out = ", ".join(f"{n} {why}" for why, n in fonts.dropped.items() if n)
    ctx.row(
        "fonts",
        "distinct faces kept",
        len(fonts),
        target="" if quick else ">= 2000",
        met=None if quick else len(fonts) >= 2000,
        note=f"{len({f.family for f in fonts.info})} families, {size}x{size}; left out: {left_out or 'none'}",
    )
    ctx.row(
        "fonts",
        "rendering time (s, wall clock)",
        fonts.seconds,
        note=f"{cpu:.1f} CPU-s in this process (rendering runs in worker processes; cached after the first run)",
    )
    ctx.extra["skipped_fonts"] = [{"font": p, "reason": r} for p, r in fonts.skipped]
    out = np.array([held_out(f.name, 0.25 if quick else 0.1) for f in fonts.info])
    train, test = fonts.subset(np.nonzero(~out)[0]), fonts.subset(np.nonzero(out)[0])
    ctx.extra["held_out_fonts"] = test.names
    ctx.extra["attribute_counts"] = {a: int(np.nansum(train.attribute(a))) for a in ("bold", "italic", "condensed")}

    # -- model -----------------------------------------------------------------------------------
    budget = ctx.option("budget", 0.5 if quick else 45.0, float)  # CPU-minutes of training
    cfg = model_config(size, quick)
    if "beta" in ctx.options:
        cfg["beta"] = ctx.option("beta", 1.0, float)
    if "encoder_chars" in ctx.options:
        cfg["encoder_chars"] = ctx.option("encoder_chars", 0, int)
    tcfg = train_config(quick, budget, ctx.seed, checkpoint_every=200, lr=ctx.option("lr", 1e-3, float))
    tcfg = dataclasses.replace(tcfg, precision=precision(ctx))
    init = ctx.options.get("init")  # a committed model to go on from (its weights; a fresh optimiser and schedule)
    if ctx.options.get("pretrained"):
        model, info = committed(PRETRAINED)
    elif init:
        parent, parent_info = committed(str(init))
        tag = f"fonts-from-{Path(str(init)).name}" + ("-quick" if quick else "")
        model, info = trained(ctx, tag, "fontvae", cfg, train.images, tcfg, init=parent)
        info = {**info, "parent": str(init), "parent_cpu_seconds": parent_info["cpu_seconds"]}
    else:
        model, info = trained(ctx, "fonts" + ("-quick" if quick else ""), "fontvae", cfg, train.images, tcfg)
    latent_dim = model.config.latent_dim
    cpu_min = (info["cpu_seconds"] + info.get("parent_cpu_seconds", 0.0)) / 60
    ctx.row(
        "fonts",
        "training time (CPU-minutes)",
        cpu_min,
        target="<= 60",
        met=cpu_min <= 60,
        seconds=info["seconds"],
        note=f"{len(train)} fonts; "
        + training_note(info)
        + (f", from {info['parent']} ({info['parent_cpu_seconds'] / 60:.1f} CPU-min)" if "parent" in info else ""),
    )
    if ctx.options.get("stop") == "trained":
        return
    model.eval()
    cpu0 = time.process_time()
    attrs = np.stack([train.attribute(a) for a in fontmetrics.ATTRIBUTES], 1)
    # 12 epochs, chosen on the training fonts alone (python bench/glyph_classifier.py): trained on 85 % of them, it
    # reads 0.942 of the other 15 %'s real glyphs, against 0.933 for 4 epochs (this report's earlier setting,
    # --option classifier_epochs=4) and 0.932 for 4 epochs with random shifts
    clf = fontmetrics.train_classifier(
        train.images,
        attrs,
        epochs=ctx.option("classifier_epochs", 20 if quick else 12, int),
        channels=(16, 32, 64) if quick else (32, 64, 128),
        seed=ctx.seed,
    )
    clf_minutes = (time.process_time() - cpu0) / 60
    analyse(ctx, model, clf, clf_minutes, train, test, size, latent_dim)
    ablation = ctx.option("ablation", 0.25 if quick else 2.0, float)  # CPU-minutes per variant; 0: skip
    if ablation > 0:
        ablate(ctx, clf, train, test, size, quick, ablation)


def sample_fonts(model, sampler, n: int, seed: int) -> torch.Tensor:
    return samplers.generate(model, sampler, n, torch.Generator().manual_seed(seed)).float()


def analyse(ctx, model, clf, clf_minutes: float, train, test, size: int, latent_dim: int) -> None:
    import matplotlib.pyplot as plt

    quick = ctx.quick
    # -- (a) held-out reconstruction vs PCA at the same latent size ----------------------------------
    with torch.no_grad():
        rec = torch.cat([model.reconstruct(b) for b in test.images.split(32)])
    k = min(latent_dim, len(train) - 1)
    pca = PCA(k, random_state=ctx.seed).fit(train.images.flatten(1))
    rec_pca = torch.from_numpy(pca.reconstruct(test.images.flatten(1))).float().clamp(0, 1).reshape(test.images.shape)
    e_vae, e_pca = pixel_mse(rec, test.images), pixel_mse(rec_pca, test.images)
    e_mean = pixel_mse(train.images.mean(0, keepdim=True).expand_as(test.images), test.images)
    smaller = {}  # PCA with fewer components than the code has, for scale (the baseline was PCA-32)
    for j in (32,) if k > 32 else ():
        fit_j = PCA(j, random_state=ctx.seed).fit(train.images.flatten(1))
        rec_j = torch.from_numpy(fit_j.reconstruct(test.images.flatten(1))).float().clamp(0, 1)
        smaller[j] = float(pixel_mse(rec_j.reshape(test.images.shape), test.images).mean())
    ctx.row(
        "held-out fonts",
        f"per-pixel squared error, VAE ({latent_dim}-D), encoder's codes",
        e_vae.mean(),
        target=f"< PCA-{k}",
        met=float(e_vae.mean()) < float(e_pca.mean()),
        note=f"{len(test)} held-out fonts x {len(CHARS)} glyphs, {size}x{size}; better than PCA on "
        f"{int((e_vae < e_pca).sum())} of {len(test)} fonts",
    )
    ctx.row(
        "held-out fonts",
        f"per-pixel squared error, PCA ({k} components)",
        e_pca.mean(),
        note="fitted on the training fonts (its codes are least-squares projections), output clipped to [0, 1]",
    )
    for j, e in smaller.items():
        ctx.row(
            "held-out fonts",
            f"per-pixel squared error, PCA ({j} components)",
            e,
            target=f"above the VAE's {float(e_vae.mean()):.4f}",
            met=e > float(e_vae.mean()),
            note=f"fitted the same way; the baseline of the kit's earlier {j}-D font model",
        )
    ctx.row("held-out fonts", "per-pixel squared error, mean training font", e_mean.mean(), note="no latent at all")
    show = [int(i) for i in torch.argsort(e_vae)[torch.linspace(0, len(test) - 1, min(4, len(test))).long()]]
    fig, axes = plt.subplots(3 * len(show), 1, figsize=(12, 1.0 * 3 * len(show)))
    axes = np.atleast_1d(axes)
    for r, i in enumerate(show):
        for j, (ims, what) in enumerate(
            [
                (test.images[i], "rendered"),
                (rec[i], f"VAE, error {e_vae[i]:.4f}"),
                (rec_pca[i], f"PCA-{k}, error {e_pca[i]:.4f}"),
            ]
        ):
            latent.plot_images(axes[3 * r + j], ink(ims), ncol=len(CHARS))
            axes[3 * r + j].set_title(f"{test.names[i]}: {what}" if j == 0 else what, fontsize=8, loc="left")
    ctx.figure(
        fig,
        "reconstruction.png",
        "Held-out fonts (best to worst VAE error), all 62 glyphs: rendered, VAE "
        "reconstruction from the encoder's code, and PCA at the same latent size; per-pixel squared error "
        "beside each.",
    )

    # -- (b) a glyph classifier trained on real glyphs reads everything else ---------------------------
    real = fontmetrics.score(clf, test.images)
    truth = {a: test.attribute(a) for a in fontmetrics.ATTRIBUTES}
    attr_acc = {a: float(np.mean((real[a] > 0.5) == truth[a])) for a in fontmetrics.ATTRIBUTES}
    ctx.row(
        "glyph classifier",
        "character accuracy, real held-out glyphs",
        real["char_accuracy"],
        note=f"trained in {clf_minutes:.1f} CPU-min on glyphs of the training fonts; "
        "font-level attribute accuracy on held-out fonts: " + ", ".join(f"{a} {v:.2f}" for a, v in attr_acc.items()),
    )
    n = len(test) if quick else max(len(test), 200)
    with torch.no_grad():
        z_train = latent.embed(model, train.images, batch_size=32)
        z_test = latent.embed(model, test.images, batch_size=32)
    fitted = {
        "prior": samplers.fit("prior", model),
        # full covariances on a few thousand 40-D codes: the count by BIC, not a large fixed one that overfits
        "ex-post GMM": samplers.fit("gmm", model, z_train, n_components="bic", seed=ctx.seed),
    }
    if len(train) >= samplers.get("twostage").min_codes:  # (not in the quick report's few fonts)
        fitted["ex-post two-stage VAE"] = samplers.fit("twostage", model, z_train, seed=ctx.seed)
    gmm = fitted["ex-post GMM"]
    assert isinstance(gmm, samplers.GaussianMixtureSampler)
    gmm_note = (
        f"; a mixture of {len(gmm.weights)} full-covariance Gaussians, the count of lowest BIC on the {len(train)} "
        "training codes among " + ", ".join(f"{k} ({v:,.0f})" for k, v in gmm.bic.items())
    )
    generated = {
        "reconstructions": rec,
        **{name: sample_fonts(model, smp, n, ctx.seed) for name, smp in fitted.items()},
    }
    reference = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(ctx.seed))[: len(test)])
    fd_floor = fontmetrics.glyph_fd(clf, test.images, reference.images)
    fds = {}
    for name, ims in generated.items():
        acc = fontmetrics.score(clf, ims)["char_accuracy"]
        fds[name] = fontmetrics.glyph_fd(clf, test.images, ims)
        ex_post = name.startswith("ex-post")
        ctx.row(
            "generated fonts",
            f"character accuracy, {name}",
            acc,
            target=">= 0.95" if ex_post else "",
            met=acc >= 0.95 if ex_post else None,
            note=f"{len(ims)} fonts x {len(CHARS)} glyphs" + (gmm_note if name == "ex-post GMM" else ""),
        )
    for name, fd in fds.items():
        ex_post = name.startswith("ex-post")
        ctx.row(
            "generated fonts",
            f"glyph Fréchet distance to held-out fonts, {name}",
            fd,
            target="< prior" if ex_post else "",
            met=fd < fds["prior"] if ex_post else None,
            note="features of the glyph classifier (fontmetrics.glyph_fd); real training fonts vs the held-out "
            f"ones: {fd_floor:.3g}"
            if name == "prior"
            else "",
        )
    ctx.extra["glyph_fd"] = {**fds, "real training fonts": fd_floor}
    cols = glyph_index("ABCDEFGabcdefg0123")
    fig, axes = plt.subplots(1, len(fitted), figsize=(8 * len(fitted), 4.5))
    for ax, name in zip(axes, fitted):
        latent.plot_images(
            ax,
            ink(generated[name][:8, cols].reshape(-1, size, size)),
            ncol=len(cols),
            title=f"{name}: character accuracy {fontmetrics.score(clf, generated[name])['char_accuracy']:.3f}, "
            f"glyph FD {fds[name]:.3g}",
        )
    ctx.figure(
        fig,
        "samples.png",
        "New fonts, every row decoded from one code: codes drawn from the prior N(0, I) "
        "(left), from a Gaussian mixture fitted on the training fonts' codes (ex-post density "
        "estimation, Ghosh et al. 2020) and, on the right, from a second VAE trained on those codes (two-stage "
        "VAE, Dai & Wipf 2019).",
    )

    # -- (c) interpolation between two fonts on a word ---------------------------------------------
    word = glyph_index("Latent")
    sets, codes = (test, train), (z_test, z_train)
    ka, a = pick(sets, lambda f: f.serif is True and regular(f))
    kb, b = pick(sets, lambda f: f.serif is False and f.bold)
    if (ka, a) == (kb, b):
        ka, a, kb, b = 0, 0, 0, len(test) - 1
    steps = 8
    with torch.no_grad():
        strip = model.generate(latent.lerp(codes[ka][a], codes[kb][b], steps))[:, word]
    fig, ax = plt.subplots(figsize=(4, 0.6 * steps))
    latent.plot_images(
        ax, ink(strip.reshape(-1, size, size)), ncol=len(word), title=f"{sets[ka].names[a]} -> {sets[kb].names[b]}"
    )
    ctx.figure(
        fig,
        "interpolation.png",
        "Linear interpolation between the codes of two fonts "
        f"({'held-out' if ka == 0 else 'training'} {sets[ka].names[a]}, "
        f"{'held-out' if kb == 0 else 'training'} {sets[kb].names[b]}), each row the word 'Latent' "
        "decoded from one point on the path.",
    )

    # -- (d) attribute directions, measured by the classifier -----------------------------------------
    vectors, pairs = {}, {}
    for name in fontmetrics.ATTRIBUTES:
        has = train.attribute(name)
        if not 0 < has.sum() < len(has):
            continue
        groups = train.attribute_groups(name)
        try:
            vectors[name] = latent.attribute_vector(z_train, has, groups)
            pairs[name] = sum(1 for g in set(groups) if len({bool(h) for h, gg in zip(has, groups) if gg == g}) == 2)
        except ValueError:  # no family has the attribute both ways: the plain difference of means
            vectors[name], pairs[name] = latent.attribute_vector(z_train, has), 0
    # "add the attribute" is measured on the held-out fonts that lack it (a bold font made bolder still is a
    # different question).  The edit keeps each code on its norm's shell (latent.apply_attribute, "spherical"),
    # then passes it once through decoder and encoder (latent.reencode), which brings a code the edit carried
    # off the data back to the code of the font drawn.  Measured beside it without a target: the kept-norm
    # edit alone, and the straight line z + alpha v, which leaves the shell far along v, where the decoder
    # draws blots and P(attribute) falls again
    curves: dict = {}
    fig, (ax_p, ax_a) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, v in vectors.items():
        idx = np.nonzero(~test.attribute(name))[0]
        if not len(idx):
            continue
        fonts = f"{len(idx)} held-out fonts without {name}"
        for edit in EDITS:
            primary = edit == PRIMARY
            probs, accs = [], []
            for alpha in ALPHAS:
                z_moved = edited(model, z_test[torch.as_tensor(idx)], v, alpha, edit)
                with torch.no_grad():
                    x = torch.cat([model.generate(zb) for zb in z_moved.split(32)])
                s = fontmetrics.score(clf, x)
                probs.append(float(s[name].mean()))
                accs.append(s["char_accuracy"])
            curves.setdefault(name, {"fonts": len(idx)})[edit] = {"p": probs, "char_accuracy": accs}
            mono = bool(np.all(np.diff(probs) > 0))
            how, what, line = EDITS[edit]
            ctx.row(
                "attribute directions",
                f"P({name}), alpha {ALPHAS[0]:g} -> {ALPHAS[-1]:g}{how}",
                probs[-1],
                target="increasing in alpha" if primary else "",
                met=mono if primary else None,
                note=f"{fonts}; "
                + what
                + "curve "
                + " ".join(f"{p:.3f}" for p in probs)
                + (
                    f"; direction from {pairs[name]} families with and without {name}"
                    if pairs[name]
                    else "; direction: difference of the mean codes"
                )
                + ("" if primary else f"; {'increasing' if mono else 'not increasing'}"),
            )
            ctx.row(
                "attribute directions",
                f"character accuracy along {name}, lowest{how}",
                min(accs),
                target=">= 0.90" if primary else "",
                met=min(accs) >= 0.90 if primary else None,
                note=f"{fonts}; curve " + " ".join(f"{p:.3f}" for p in accs),
            )
            style = dict(linestyle=line, marker="o", color=f"C{list(vectors).index(name)}")
            ax_p.plot(ALPHAS, probs, label=name if primary else None, **style)
            ax_a.plot(ALPHAS, accs, **style)
    ctx.extra["attribute_curves"] = {"alphas": list(ALPHAS), **curves}
    ax_p.set(
        xlabel="alpha (along v)",
        ylabel="mean P(attribute) by the classifier",
        title="held-out fonts without the attribute",
    )
    ax_a.set(xlabel="alpha (along v)", ylabel="character accuracy", ylim=(0, 1.02))
    ax_p.legend()
    ctx.figure(
        fig,
        "attribute_check.png",
        "Held-out fonts that lack the attribute, moved along its direction by alpha, kept on their code's "
        "norm and re-encoded once (solid; kept on the norm alone dashed, the straight line z + alpha v dotted): "
        "the glyph classifier's mean probability of "
        "the attribute (left) and the fraction of glyphs it still reads as their character (right).",
    )
    if not vectors:
        return
    kc, c = pick(sets, lambda f: f.serif is False and regular(f))
    z_base, base_name = codes[kc][c], f"{sets[kc].names[c]} ({'held out' if kc == 0 else 'a training font'})"
    fig, axes = plt.subplots(len(vectors) + 1, 1, figsize=(9, 0.9 * (len(vectors) + 1)))
    with torch.no_grad():
        for ax, (name, v) in zip(axes, vectors.items()):
            w = model.generate(torch.cat([edited(model, z_base[None], v, a, PRIMARY) for a in (-1.0, 0.0, 1.0, 2.0)]))
            w = w[:, glyph_index("Rag7")]
            latent.plot_images(ax, ink(w.reshape(-1, size, size)), ncol=16)
            ax.set_title(f"{base_name}: 'Rag7' at alpha = -1, 0, 1, 2 along {name}", fontsize=8, loc="left")
    # "remove bold": held-out bold fonts moved to the mean code of regular fonts along the bold direction
    name = "bold" if "bold" in vectors else next(iter(vectors))
    has = test.attribute(name)
    if has.any():
        ref = z_train[~torch.as_tensor(train.attribute(name))].mean(0)
        z_rm = latent.remove_attribute(z_test[torch.as_tensor(has)], vectors[name], ref)
        with torch.no_grad():
            x_rm = torch.cat([model.generate(zb) for zb in z_rm.split(32)])
        before, after = fontmetrics.score(clf, test.images[torch.as_tensor(has)]), fontmetrics.score(clf, x_rm)
        ctx.row(
            "attribute directions",
            f"'{name}' removed from {int(has.sum())} held-out {name} fonts: P({name})",
            float(after[name].mean()),
            target="< 0.5",
            met=float(after[name].mean()) < 0.5,
            note=f"before {float(before[name].mean()):.3f}; character accuracy after {after['char_accuracy']:.3f}",
        )
        src = int(np.argmax(before[name]))
        i_src = int(np.nonzero(has)[0][src])
        with torch.no_grad():
            pair = model.generate(torch.stack([z_test[i_src], z_rm[src]]))[:, glyph_index("Rag7")]
        latent.plot_images(axes[-1], ink(pair.reshape(-1, size, size)), ncol=8)
        axes[-1].set_title(f"{test.names[i_src]}: reconstruction, then '{name}' removed", fontsize=8, loc="left")
    ctx.figure(
        fig,
        "attributes.png",
        "Several glyphs moved together along each direction (one code renders them "
        "all, so they stay consistent), and an attribute removed from a held-out font that has it.",
    )


# the ablation: what makes glyphs sharp at this budget: {name: (changes to the report's model, to its training)}
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "conv decoder, Bernoulli, 8 characters a step (the report's model)": ({}, {}),
    "MLP glyph nets, Bernoulli": (dict(arch="mlp", glyph_hidden=512, hidden=(256,)), {}),
    "conv decoder, Gaussian (learned sigma)": (dict(likelihood="gaussian"), {}),
    "conv decoder, Bernoulli, all 62 characters a step": (dict(train_chars=0), {}),
    "encoder reads 16 of the 62 glyphs a step (glyph dropout)": (dict(encoder_chars=16), {}),
    "the report's model in float32 (no bfloat16 autocast)": ({}, dict(precision="float32")),
}


# the attribute edits the report measures, the first with a target: {edit: (its rows' name suffix, their note,
# its line in attribute_check.png)}
EDITS = {
    "re-encoded": ("", "codes kept on their norm's shell, then decoded and encoded once; ", "-"),
    "spherical": (", kept norm, not re-encoded", "codes kept on their norm's shell; ", "--"),
    "linear": (", straight line", "z + alpha v; ", ":"),
}
PRIMARY = next(iter(EDITS))


def edited(model, z, v, alpha: float, edit: str) -> torch.Tensor:
    """Codes z (N, D) moved along v by alpha, by one of EDITS: (N, D)."""
    method = "linear" if edit == "linear" else "spherical"
    moved = latent.apply_attribute(z, v, [alpha], method=method)[0]
    return latent.reencode(model, moved, batch_size=32) if edit == "re-encoded" else moved


def precision(ctx) -> str:
    """The training precision, `--option precision=` (TrainConfig.precision): bfloat16 by default, for about
    1.5x the steps per CPU-minute on a CPU with bfloat16 instructions (the ablation's float32 row)."""
    return str(ctx.options.get("precision", "bfloat16"))


def train_config(quick: bool, minutes: float, seed: int, checkpoint_every: int = 0, lr: float = 1e-3) -> TrainConfig:
    """Adam, a cosine learning rate from `lr` over a budget of CPU-minutes (the report's model and the ablation's)."""
    return TrainConfig(
        epochs=100000,
        batch_size=16 if quick else 32,
        lr=lr,
        lr_schedule="cosine",
        lr_final=1e-5,
        max_seconds=minutes * 60,
        budget_clock="cpu",
        checkpoint_every=checkpoint_every,
        seed=seed,
        progress=False,
        tensorboard=False,
    )


def ablation_models(ctx, train, size: int, quick: bool, minutes: float):
    """(name, model, training info) of each variant, trained (or loaded from runs/) for `minutes` CPU-minutes."""
    for i, (name, (change, train_change)) in enumerate(VARIANTS.items()):
        cfg = {**model_config(size, quick), **change}
        if quick and cfg.get("arch") == "mlp":
            cfg.update(glyph_hidden=64, hidden=(64,))
        tag = f"fonts-ablation{i}" + ("-quick" if quick else "")
        tcfg = train_config(quick, minutes, ctx.seed)
        tcfg = dataclasses.replace(tcfg, **{"precision": precision(ctx), **train_change})
        model, info = trained(ctx, tag, "fontvae", cfg, train.images, tcfg)
        yield name, model.eval(), info


def ablate(ctx, clf, train, test, size: int, quick: bool, minutes: float) -> None:
    """Each variant trained for the same CPU-minutes on the same fonts; scored on the held-out fonts."""
    results = {}
    for name, model, info in ablation_models(ctx, train, size, quick, minutes):
        with torch.no_grad():
            rec = torch.cat([model.reconstruct(b) for b in test.images.split(32)])
            prior = sample_fonts(model, samplers.fit("prior", model), len(test), ctx.seed)
        results[name] = {
            "error": float(pixel_mse(rec, test.images).mean()),
            "reconstruction accuracy": fontmetrics.score(clf, rec)["char_accuracy"],
            "prior-sample accuracy": fontmetrics.score(clf, prior)["char_accuracy"],
            "steps": info["steps"],
        }
        r = results[name]
        ctx.row(
            f"ablation, {minutes:g} CPU-min each",
            name,
            r["error"],
            note="held-out per-pixel error; character accuracy of reconstructions "
            f"{r['reconstruction accuracy']:.3f}, of prior samples {r['prior-sample accuracy']:.3f}; "
            f"{r['steps']} steps",
        )
    ctx.extra["ablation"] = {"cpu_minutes_each": minutes, "variants": results}
