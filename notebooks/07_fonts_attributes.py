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
# # A latent space of fonts, and attribute vectors
#
# The lecture's example from distill.pub (Carter & Nielsen 2017, *Using artificial intelligence to augment
# human intelligence*): a VAE in which **one item is a whole font**.  One code $z$ renders every glyph, so a
# point in latent space is a consistent typeface, and directions in it can mean *bold* or *italic*.
#
# **The model** (`fontvae`).  A font $x = (x_1, \dots, x_C)$ is its $C = 62$ glyphs (A–Z, a–z, 0–9).  The encoder
# reads all glyphs, $q(z\mid x) = \mathcal N(\mu(x), \operatorname{diag}\sigma^2(x))$; the decoder draws each
# character $c$ from the code and an embedding $e_c$ of the character,
#
# $$p(x\mid z) = \prod_{c=1}^{C} p(x_c\mid z, e_c),$$
#
# and the objective is the $\beta$-weighted ELBO
# $\mathbb E_q[\log p(x\mid z)] - \beta\,\mathrm{KL}(q(z\mid x)\,\Vert\,p(z))$ (with $\beta < 1$ the codes keep more of
# each font).
#
# **Attribute vectors** (as in White 2016 for faces).  With a set of fonts labelled by an attribute,
#
# $$v = \frac{1}{|A|}\sum_{i\in A} \mu(x_i) - \frac{1}{|\bar A|}\sum_{i\notin A} \mu(x_i),$$
#
# and $z + \alpha v$ adds the attribute to any font ($\alpha < 0$ removes it).  The labels come from the font
# files' own tables (weight class, italic angle, style names), not from a person.
#
# The fonts are rendered from the font files on this machine (`vaekit.data.fonts.render_fonts`): matplotlib's
# bundled fonts always, plus the system's (`make fonts-data` installs several hundred families on
# Debian/Ubuntu).  With few fonts the pictures are rough but every step runs.
#
# `QUICK=1` in the environment renders 16×16 glyphs and trains briefly (at most 800 steps: a minute or two).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

import vaekit
from vaekit import latent
from vaekit.data.fonts import CHARS, matplotlib_font_dir, render_fonts, split_fonts
from vaekit.errors import VaekitError
from vaekit.train import TrainConfig, fit

QUICK = os.environ.get("QUICK", "") not in ("", "0")
SIZE = 16 if QUICK else 32
torch.manual_seed(0)

try:
    fonts = render_fonts(size=SIZE)                     # the system's font folders and matplotlib's
except VaekitError as e:                                # no usable system fonts: matplotlib's own are always there
    print(f"system fonts unusable ({e}); using matplotlib's bundled fonts")
    fonts = render_fonts([matplotlib_font_dir()], size=SIZE)
train, test = split_fonts(fonts, 0.1, seed=0)           # hold out whole fonts, never single glyphs
print(f"{len(fonts)} fonts ({len(train)} for training, {len(test)} held out), glyphs {SIZE}x{SIZE}, "
      f"rendered in {fonts.seconds:.1f} s; {len(fonts.skipped)} font files skipped")
for name in ("bold", "italic", "condensed"):
    print(f"  {name:9s}: {int(train.attribute(name).sum())} of {len(train)} training fonts")


def ink(images):
    """Glyphs are stored with ink = 1; show dark ink on white paper."""
    return 1.0 - torch.as_tensor(images)


word = [CHARS.index(c) for c in "Latent"]
fig, ax = plt.subplots(figsize=(6, 0.5 * min(8, len(train))))
latent.plot_images(ax, ink(train.images[:8, word].reshape(-1, SIZE, SIZE)), ncol=len(word),
                   title="the word 'Latent' in eight training fonts")
plt.show()

# %% [markdown]
# ## 1. Training the font VAE
#
# An item is a tensor of shape (62, H, W); the font VAE is a registered model like any other, trained by
# `vaekit.train.fit`.

# %%
latent_dim = 8 if QUICK else 32
model = vaekit.build("fontvae", data_shape=(len(CHARS), SIZE, SIZE), latent_dim=latent_dim,
                     hidden=(64,) if QUICK else (256,), glyph_hidden=128 if QUICK else 512,
                     glyph_features=16 if QUICK else 64, beta=0.1 if QUICK else 0.25)
# 80 (QUICK) or 120 epochs of a few dozen fonts; with thousands of system fonts the step cap ends it first
hist = fit(model, train.images, TrainConfig(epochs=80 if QUICK else 120, max_steps=800 if QUICK else 6000, batch_size=4,
                                            lr=2e-3 if QUICK else 1e-3, lr_schedule="cosine", progress=False,
                                            tensorboard=False))
print(f"{len(hist.steps)} steps in {hist.seconds:.1f} s; last ELBO on a training batch "
      f"{np.mean(hist.terms['elbo'][-10:]):.0f} nats per font")

# %% [markdown]
# ## 2. Held-out fonts, against PCA
#
# PCA with as many components as the VAE has latent dimensions is the linear baseline (tutorial 01).  Error is the
# squared error per pixel, pixels in [0, 1].  With a few dozen fonts and a few seconds of training (`QUICK`) the VAE
# is far from trained, near the error of the mean font, and PCA wins; `vaekit report fonts`, on hundreds of fonts,
# gives the trained comparison.

# %%
from vaekit.baselines import PCA

rec = model.reconstruct(test.images)
pca = PCA(min(latent_dim, len(train) - 1)).fit(train.images)
rec_pca = torch.as_tensor(pca.reconstruct(test.images)).float().reshape(test.images.shape).clamp(0, 1)
mean_font = train.images.mean(0, keepdim=True).expand_as(test.images)
for name, r in (("VAE", rec), ("PCA", rec_pca), ("mean training font", mean_font)):
    print(f"{name:19s}: {float((r - test.images).pow(2).mean()):.4f} squared error per pixel on held-out fonts")

fig, axes = plt.subplots(3, 1, figsize=(12, 2.4))
for ax, (r, what) in zip(axes, ((test.images[0], f"held out: {test.names[0]}"), (rec[0], "VAE"),
                                (rec_pca[0], f"PCA, {pca.n_components} components"))):
    latent.plot_images(ax, ink(r), ncol=len(CHARS))
    ax.set_title(what, fontsize=8, loc="left")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Attribute vectors
#
# Each direction is the difference of two mean codes (`latent.attribute_vector`); `latent.apply_attribute`
# moves a code along it.  Because one code renders all glyphs, they change together.

# %%
z_train = latent.embed(model, train.images)
z_test = latent.embed(model, test.images)
vectors = {}
for name in ("bold", "italic", "condensed"):
    has = train.attribute(name)
    if 0 < has.sum() < len(has):
        vectors[name] = latent.attribute_vector(z_train, has)
    else:
        print(f"no direction for '{name}': the training fonts do not have both kinds")

alphas = (-1.0, 0.0, 1.0, 2.0)
shown = [CHARS.index(c) for c in "Rag7"]
base = next((i for i, f in enumerate(test.info) if not (f.bold or f.italic)), 0)
if vectors:
    fig, axes = plt.subplots(len(vectors), 1, figsize=(9, 1.0 * len(vectors)), squeeze=False)
    with torch.no_grad():
        for ax, (name, v) in zip(axes[:, 0], vectors.items()):
            glyphs = model.generate(latent.apply_attribute(z_test[base], v, alphas))[:, shown]
            latent.plot_images(ax, ink(glyphs.reshape(-1, SIZE, SIZE)), ncol=len(shown) * len(alphas))
            ax.set_title(f"{test.names[base]} along '{name}', alpha = {', '.join(map(str, alphas))}", fontsize=8,
                         loc="left")
    plt.tight_layout()
    plt.show()

# %% [markdown]
# **Does the direction do what it says?**  A logistic regression on pixels, trained on the rendered training fonts
# to recognise an attribute, should give the held-out fonts moved by $\alpha v$ a probability of the attribute that
# grows with $\alpha$.

# %%
from sklearn.linear_model import LogisticRegression

alphas_check = np.linspace(-1, 2, 7)
for name, v in vectors.items():
    has = train.attribute(name)
    if min(has.sum(), (~has).sum()) < 2:
        continue
    clf = LogisticRegression(C=0.01, class_weight="balanced", max_iter=3000).fit(train.images.flatten(1).numpy(), has)
    with torch.no_grad():
        probs = [float(clf.predict_proba(model.generate(z_test + a * v).flatten(1).numpy())[:, 1].mean())
                 for a in alphas_check]
    print(f"{name:9s}: mean P({name}) for held-out fonts moved by alpha v, alpha = -1 .. 2: "
          + " ".join(f"{p:.2f}" for p in probs))
    plt.plot(alphas_check, probs, "o-", label=name)
plt.xlabel("alpha (z + alpha v)")
plt.ylabel("classifier probability")
plt.legend()
plt.title("attribute directions, judged by a pixel classifier")
plt.show()

# %% [markdown]
# ## 4. Interpolation and new fonts
#
# Walking the line between the codes of two fonts morphs one into the other; codes drawn from the prior
# $\mathcal N(0, I)$ decode to fonts no one drew.

# %%
a, b = 0, len(test) - 1
with torch.no_grad():
    path = model.generate(latent.lerp(z_test[a], z_test[b], 6))[:, word]
    new = model.sample(6, torch.Generator().manual_seed(0))[:, word]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
latent.plot_images(axes[0], ink(path.reshape(-1, SIZE, SIZE)), ncol=len(word),
                   title=f"{test.names[a]} -> {test.names[b]}")
latent.plot_images(axes[1], ink(new.reshape(-1, SIZE, SIZE)), ncol=len(word), title="six fonts from the prior")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# * One code per font keeps every glyph of a decoded font consistent, so a single vector edits them all.
# * Attribute directions are differences of mean codes; labels read from the font files are enough to find them.
# * `vaekit report fonts` does all of this on every font of the machine at 64×64 with a convolutional,
#   Bernoulli font VAE, takes directions within font families (so "bold" does not drag "sans" along), and
#   measures the result with a glyph classifier (`vaekit.fontmetrics`): how many sampled glyphs read as
#   their character, and a glyph Fréchet distance.  `vaekit explore RUN` gives sliders for the directions.
