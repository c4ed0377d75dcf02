"""`vaekit report fonts`: a latent space of fonts with bold / italic / condensed directions.

After the lecture's example from distill.pub (Carter & Nielsen 2017, "Using Artificial
Intelligence to Augment Human Intelligence"): every font file found is rendered to 62 glyphs
(`data.fonts`), 10 % of the fonts are held out, and a per-font VAE (`models.fontvae`) is trained.

    (a) held-out fonts reconstructed (all 62 glyphs), per-pixel squared error beside PCA with as
        many components as the VAE has latent dimensions;
    (b) interpolation between two fonts, shown on the word "Latent";
    (c) one glyph moved along the bold, italic and condensed directions
        v = mean(z | attribute) - mean(z | not attribute), z + alpha v, and one attribute removed;
    (d) new fonts sampled from the prior;
    (e) a check that the directions do what they say: a logistic regression on pixels, trained on
        the rendered training fonts, gives held-out fonts moved by alpha v a probability of the
        attribute that should grow with alpha.

The VAE is trained with beta = 0.25 (`--beta`): with beta = 1 its codes carried only ~80 nats per
font and held-out reconstructions stayed blurrier than PCA's (0.037 vs 0.031 per pixel after 40 of
60 epochs in our trial). Held-out error is reported twice: from the encoder's codes, and from
codes refined by gradient steps on z (`latent.refine_codes`) -- PCA's codes are exact
least-squares projections, so the second is the like-for-like comparison of the two decoders.

`--quick` renders only matplotlib's bundled fonts at 16 x 16 and trains briefly (a smoke test).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .. import latent
from ..data.fonts import CHARS, render_fonts, split_fonts
from ..models import fontvae as _fontvae  # noqa: F401  (registers "fontvae")
from ..train import TrainConfig
from . import report
from . import trained, training_note

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


def fit_classifier(x, y, seed: int = 0):
    """Logistic regression on the pixels of whole fonts (all glyphs), classes balanced."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=0.01, class_weight="balanced", max_iter=3000, random_state=seed)
    return clf.fit(x.flatten(1).numpy(), y)


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


@report("fonts")
def run(ctx):
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    torch.manual_seed(ctx.seed)
    quick = ctx.quick
    size = ctx.option("size", 16 if quick else 32, int)
    latent_dim = ctx.option("latent_dim", 8 if quick else 32, int)
    dirs = ctx.options.get("font_dirs")
    dirs = None if not dirs else [d for d in str(dirs).split(",") if d]
    if quick and dirs is None:
        from ..data.fonts import matplotlib_font_dir

        dirs = [matplotlib_font_dir()]

    # -- data ------------------------------------------------------------------------------------
    cpu0 = time.process_time()
    fonts = render_fonts(dirs, size=size)
    cpu = time.process_time() - cpu0
    n_fail = sum(1 for _, why in fonts.skipped if not why.startswith("duplicate"))
    ctx.row("fonts", "rendering time (s, wall clock)", fonts.seconds, target="< 60", met=fonts.seconds < 60,
            note=f"{cpu:.1f} CPU-s; {len(fonts)} fonts kept ({len({f.family for f in fonts.info})} families), {n_fail} skipped "
                 f"(missing glyphs / unreadable), {len(fonts.skipped) - n_fail} duplicates; {size}x{size}")
    ctx.extra["skipped_fonts"] = [{"font": p, "reason": r} for p, r in fonts.skipped]
    train, test = split_fonts(fonts, 0.1, seed=ctx.seed)
    ctx.extra["held_out_fonts"] = test.names
    ctx.extra["attribute_counts"] = {a: int(np.nansum(train.attribute(a))) for a in ("bold", "italic", "condensed")}

    # -- model -----------------------------------------------------------------------------------
    epochs = ctx.option("epochs", 60 if quick else 120, int)
    beta = ctx.option("beta", 0.25, float)   # < 1: the codes carry more of each font (see the module doc)
    cfg = dict(data_shape=(len(CHARS), size, size), latent_dim=latent_dim, arch=ctx.options.get("arch") or "mlp",
               hidden=(64,) if quick else (256,), glyph_hidden=128 if quick else 512,
               glyph_features=16 if quick else 64, beta=beta)
    tcfg = TrainConfig(epochs=epochs, batch_size=4, lr=1e-3, lr_schedule="cosine", seed=ctx.seed,
                       progress=False, tensorboard=False)
    model, info = trained(ctx, "fonts" + ("-quick" if quick else ""), "fontvae", cfg, train.images, tcfg)
    cpu_min = info["cpu_seconds"] / 60
    ctx.row("fonts", "training time (CPU-minutes)", cpu_min, target="<= 30", met=cpu_min <= 30,
            seconds=info["seconds"], note=f"{len(train)} fonts, {epochs} epochs, beta {beta:g}; " + training_note(info))

    # -- (a) held-out reconstruction vs PCA at the same latent size --------------------------------
    rec = torch.cat([model.reconstruct(b) for b in test.images.split(64)])
    k = min(latent_dim, len(train) - 1)
    pca = PCA(k, random_state=ctx.seed).fit(train.images.flatten(1).numpy())
    rec_pca = torch.from_numpy(pca.inverse_transform(pca.transform(test.images.flatten(1).numpy()))).float()
    rec_pca = rec_pca.clamp(0, 1).reshape(test.images.shape)
    z_ref = latent.refine_codes(model, test.images, steps=ctx.option("refine_steps", 150, int))
    rec_ref = torch.cat([model.generate(zb) for zb in z_ref.split(64)])
    e_vae, e_pca = pixel_mse(rec, test.images), pixel_mse(rec_pca, test.images)
    e_ref = pixel_mse(rec_ref, test.images)
    e_mean = pixel_mse(train.images.mean(0, keepdim=True).expand_as(test.images), test.images)
    ctx.row("held-out fonts", f"per-pixel squared error, VAE ({latent_dim}-D), encoder's codes", e_vae.mean(),
            target="< PCA", met=float(e_vae.mean()) < float(e_pca.mean()),
            note=f"{len(test)} fonts x 62 glyphs; better than PCA on {int((e_vae < e_pca).sum())} of {len(test)} fonts")
    ctx.row("held-out fonts", f"per-pixel squared error, VAE ({latent_dim}-D), refined codes", e_ref.mean(),
            target="< PCA", met=float(e_ref.mean()) < float(e_pca.mean()),
            note="MAP z by 150 Adam steps from the encoder's guess (latent.refine_codes), decoder unchanged; "
                 f"better than PCA on {int((e_ref < e_pca).sum())} of {len(test)} fonts")
    ctx.row("held-out fonts", f"per-pixel squared error, PCA ({k} components)", e_pca.mean(),
            note="fitted on the training fonts (its codes are least-squares projections), output clipped to [0, 1]")
    ctx.row("held-out fonts", "per-pixel squared error, mean training font", e_mean.mean(), note="no latent at all")
    show = [int(i) for i in torch.argsort(e_vae)[torch.linspace(0, len(test) - 1, min(4, len(test))).long()]]
    fig, axes = plt.subplots(4 * len(show), 1, figsize=(12, 1.0 * 4 * len(show)))
    for r, i in enumerate(show):
        for j, (ims, what) in enumerate([(test.images[i], "rendered"), (rec[i], f"VAE, error {e_vae[i]:.4f}"),
                                         (rec_ref[i], f"VAE, refined codes, error {e_ref[i]:.4f}"),
                                         (rec_pca[i], f"PCA, error {e_pca[i]:.4f}")]):
            latent.plot_images(axes[4 * r + j], ink(ims), ncol=len(CHARS))
            axes[4 * r + j].set_title(f"{test.names[i]}: {what}" if j == 0 else what, fontsize=8, loc="left")
    ctx.figure(fig, "reconstruction.png", "Held-out fonts (best to worst VAE error), all 62 glyphs: rendered, VAE "
               "reconstruction from the encoder's code, from the refined code, and PCA at the same latent size; "
               "per-pixel squared error beside each.")

    # codes of all fonts (posterior means)
    z_train = latent.embed(model, train.images, batch_size=64)
    z_test = latent.embed(model, test.images, batch_size=64)

    # -- (b) interpolation between two fonts on a word ---------------------------------------------
    # fonts whose family name says "Sans" or "Serif" are the familiar text faces; prefer held-out ones
    word = glyph_index("Latent")
    sets, codes = (test, train), (z_test, z_train)
    ka, a = pick(sets, lambda f: f.serif is True and regular(f))
    kb, b = pick(sets, lambda f: f.serif is False and f.bold)
    if (ka, a) == (kb, b):
        ka, a, kb, b = 0, 0, 0, len(test) - 1
    steps = 8
    with torch.no_grad():
        strip = model.generate(latent.lerp(codes[ka][a], codes[kb][b], steps))[:, word]     # (steps, 6, S, S)
    fig, ax = plt.subplots(figsize=(4, 0.6 * steps))
    latent.plot_images(ax, ink(strip.reshape(-1, size, size)), ncol=len(word),
                       title=f"{sets[ka].names[a]} -> {sets[kb].names[b]}")
    ctx.figure(fig, "interpolation.png", "Linear interpolation between the codes of two fonts "
               f"({'held-out' if ka == 0 else 'training'} {sets[ka].names[a]}, "
               f"{'held-out' if kb == 0 else 'training'} {sets[kb].names[b]}), each row the word 'Latent' "
               "decoded from one point on the path.")

    # -- (c) attribute directions ------------------------------------------------------------------
    vectors = {}
    for name in ("bold", "italic", "condensed"):
        has = train.attribute(name)
        if 0 < has.sum() < len(has):
            vectors[name] = latent.attribute_vector(z_train, has)
    glyph = CHARS.index("a")
    kc, c = pick(sets, lambda f: f.serif is False and regular(f))
    z_base, base_name = codes[kc][c], f"{sets[kc].names[c]} ({'held out' if kc == 0 else 'a training font'})"
    with torch.no_grad():
        rows = [model.generate(latent.apply_attribute(z_base, v, ALPHAS))[:, glyph] for v in vectors.values()]
    if rows:
        fig, axes = plt.subplots(len(rows), 1, figsize=(6, 1.2 * len(rows)))
        axes = np.atleast_1d(axes)
        for ax, (name, r) in zip(axes, zip(vectors, rows)):
            latent.plot_images(ax, ink(r), ncol=len(ALPHAS))
            ax.set_title(f"{name}: alpha = {', '.join(f'{x:g}' for x in ALPHAS)}", fontsize=8, loc="left")
        ctx.figure(fig, "attributes.png", f"The glyph 'a' of {base_name} moved along the bold, "
                   "italic and condensed directions, z + alpha v (alpha = 0 is its own reconstruction).")
        # the same on a word, and an attribute removed from a font that has it
        fig, axes = plt.subplots(len(rows) + 1, 1, figsize=(9, 0.9 * (len(rows) + 1)))
        with torch.no_grad():
            for ax, (name, v) in zip(axes, vectors.items()):
                w = model.generate(latent.apply_attribute(z_base, v, (0.0, 1.0, 2.0)))[:, glyph_index("Rag7")]
                latent.plot_images(ax, ink(w.reshape(-1, size, size)), ncol=12)
                ax.set_title(f"'Rag7' at alpha = 0, 1, 2 along {name}", fontsize=8, loc="left")
            name = "bold" if "bold" in vectors else next(iter(vectors))
            has_all = np.concatenate([train.attribute(name), test.attribute(name)])
            z_all = torch.cat([z_train, z_test])
            ks, src = pick((test,), lambda f: getattr(f, name) and f.serif is not None)
            if not getattr(test.info[src], name):
                src = int(np.nonzero(test.attribute(name))[0][0]) if test.attribute(name).any() else 0
            ref = z_all[~torch.as_tensor(has_all)].mean(0)
            z_rm = latent.remove_attribute(z_test[src:src + 1], vectors[name], ref)
            pair = model.generate(torch.cat([z_test[src:src + 1], z_rm]))[:, glyph_index("Rag7")]
        latent.plot_images(axes[-1], ink(pair.reshape(-1, size, size)), ncol=8)
        axes[-1].set_title(f"{test.names[src]}: reconstruction, then '{name}' removed", fontsize=8, loc="left")
        ctx.figure(fig, "attributes_words.png", "Several glyphs moved together along each direction (one code "
                   "renders them all, so they stay consistent), and an attribute removed from a font that has it.")

    # -- (d) new fonts from the prior ----------------------------------------------------------------
    g = torch.Generator().manual_seed(ctx.seed)
    with torch.no_grad():
        new = model.generate(torch.randn(8, latent_dim, generator=g))[:, glyph_index("ABCDEFGabcdefg0123")]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    latent.plot_images(ax, ink(new.reshape(-1, size, size)), ncol=new.shape[1], title="fonts sampled from N(0, I)")
    ctx.figure(fig, "samples.png", "Eight new fonts: z drawn from the prior, every row decoded from one z.")

    # -- (e) does moving along v make a classifier see the attribute? --------------------------------
    fig, ax = plt.subplots(figsize=(5, 3.5))
    curves = {}
    for name in ("bold", "italic", "condensed"):
        if name not in vectors or train.attribute(name).sum() < 2:
            continue
        clf = fit_classifier(train.images, train.attribute(name), ctx.seed)
        probs = []
        with torch.no_grad():
            for alpha in ALPHAS:
                x = torch.cat([model.generate(zb + alpha * vectors[name]) for zb in z_test.split(64)])
                probs.append(float(clf.predict_proba(x.flatten(1).numpy())[:, 1].mean()))
        curves[name] = probs
        mono = bool(np.all(np.diff(probs) > 0))
        want = name in ("bold", "italic")
        ctx.row("held-out fonts", f"P({name}) by logistic regression, alpha {ALPHAS[0]:g} -> {ALPHAS[-1]:g}",
                probs[-1], target="increasing in alpha" if want else "", met=mono if want else None,
                note="curve " + " ".join(f"{p:.3f}" for p in probs) + f"; trained on {int(train.attribute(name).sum())}"
                     f" {name} of {len(train)} rendered training fonts")
        ax.plot(ALPHAS, probs, marker="o", label=name)
    ctx.extra["attribute_curves"] = {"alphas": list(ALPHAS), **curves}
    ax.set_xlabel("alpha (z + alpha v)")
    ax.set_ylabel("mean classifier probability")
    ax.set_title(f"{len(test)} held-out fonts")
    ax.legend()
    ctx.figure(fig, "attribute_check.png", "Mean probability of each attribute given by a logistic regression on "
               "pixels (trained on the rendered training fonts) for held-out fonts decoded from z + alpha v.")
