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
# # Molecules in a continuous latent space
#
# Gómez-Bombarelli et al. (2016/2018, *Automatic chemical design using a data-driven continuous representation
# of molecules*) trained a VAE on molecules written as strings.  Once molecules are points $z\in\mathbb R^d$,
# chemistry gets the tools of continuous spaces: neighbours, interpolation, and optimisation of a property
# by following a gradient, after which the decoder turns the point back into a molecule.
#
# **The model** (`chemvae`).  A molecule is a token sequence $x = (x_1, \dots, x_T)$, here in SELFIES
# (Krenn et al. 2020), a grammar in which every token string decodes to *some* valid molecule.  The encoder is
# a 1-D convolutional net giving $q(z\mid x) = \mathcal N(\mu(x), \operatorname{diag}\sigma^2(x))$; the decoder is a
# GRU fed $z$ at every step,
#
# $$p(x\mid z) = \prod_{t=1}^{T} p(x_t\mid x_{<t}, z),$$
#
# and a small **property head** $f(z)$ predicts logP, QED and the synthetic-accessibility score (SA) from the code,
# trained jointly: $\ \max\ \mathbb E_q[\log p(x\mid z)] - \beta\,\mathrm{KL}(q\,\Vert\,p) - \lambda\,\lVert f(z) - y\rVert^2$.
#
# We use the model committed with `vaekit` in `models/chemvae-selfies` (trained on MOSES molecules; the one
# `vaekit report chemvae --pretrained` and `vaekit explore models/chemvae-selfies` use).  Everything below runs
# offline; RDKit computes the true properties.
#
# `QUICK=1` in the environment uses fewer molecules and steps (the notebook runs in well under a minute).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

import vaekit
from vaekit import latent
from vaekit.chem import bo, metrics
from vaekit.chem.props import canonical, logp, qed, sa_score

QUICK = os.environ.get("QUICK", "") not in ("", "0")
torch.manual_seed(0)


model = vaekit.checkpoint.load_model(vaekit.models.pretrained("chemvae-selfies")).eval()
cfg = model.config
print(f"{model.name}: {cfg.kind}, latent {cfg.latent_dim}-D, GRU {cfg.gru_layers}x{cfg.gru_hidden}, "
      f"{len(cfg.tokens)} tokens, up to {cfg.max_len} tokens per molecule; property head: {', '.join(cfg.properties)}")

# %% [markdown]
# ## 1. Encode and decode
#
# `encode_smiles` gives posterior means $\mu(x)$ (or draws from $q(z\mid x)$), `decode_smiles` decodes codes, greedily
# (the most likely token at each step) or by sampling $p(x\mid z)$.  A molecule is *reconstructed* when the decoded
# string is the same molecule (equal canonical SMILES); short of that, the Tanimoto similarity of the two molecules'
# Morgan fingerprints (`chem.bo.tanimoto`, 1 = identical substructures) says how close it came.  A few familiar,
# lead-like molecules:

# %%
named = {"paracetamol": "CC(=O)Nc1ccc(O)cc1", "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
         "ibuprofen": "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
         "phenacetin": "CCOc1ccc(NC(C)=O)cc1", "lidocaine": "CCN(CC)CC(=O)Nc1c(C)cccc1C",
         "nicotine": "CN1CCCC1c1cccnc1", "benzocaine": "CCOC(=O)c1ccc(N)cc1"}
names, smiles = list(named), list(named.values())
z = model.encode_smiles(smiles)                                       # (n, latent_dim)
greedy = model.decode_smiles(z, greedy=True)
tries = 5 if QUICK else 20
hits = np.zeros(len(smiles))
for _ in range(tries):
    sampled = model.decode_smiles(model.encode_smiles(smiles, sample=True))
    hits += [canonical(a) == canonical(b) for a, b in zip(sampled, smiles)]
for n, s, g, h in zip(names, smiles, greedy, hits):
    print(f"{n:11s} {s:27s} greedy -> {g:36s} Tanimoto similarity {bo.tanimoto(s, g):.2f}; "
          f"{'the same' if canonical(g) == canonical(s) else 'a different'} molecule; sampled z and x: "
          f"{int(h)}/{tries} the same")

# %% [markdown]
# This model was trained for about an hour on one CPU core, and exact reconstructions are rare (about 7 % of MOSES
# test molecules by greedy decoding of the posterior mean, see the README; JT-VAE reaches 77 %): the decoder returns
# a *neighbour* of the molecule, with parts of its scaffold.  The rest of this tutorial works regardless, and shows
# how to measure what a better-trained model would improve.
#
# ## 2. The prior: how many codes decode to molecules?
#
# Decode codes drawn from $p(z) = \mathcal N(0, I)$.  SELFIES make every string a molecule, so *validity* is near 1 by
# construction; *uniqueness* (distinct molecules among the decoded ones) says whether the decoder uses its codes.

# %%
n_prior = 100 if QUICK else 1000
g = torch.Generator().manual_seed(0)
z_prior = torch.randn(n_prior, cfg.latent_dim, generator=g)
prior_smiles = model.decode_smiles(z_prior, generator=g)
print(f"{n_prior} prior codes: validity {metrics.validity(prior_smiles):.3f}, "
      f"uniqueness {metrics.uniqueness(prior_smiles):.3f}")
print("a few:", ", ".join(prior_smiles[:5]))

# %% [markdown]
# ## 3. The property head
#
# The head predicts properties from the code alone.  On the decoded prior molecules, re-encoded, compare its
# predictions with RDKit's values of the same molecules.

# %%
valid = sorted({canonical(s) for s in prior_smiles if canonical(s)})
z_valid, kept = model.encode_smiles(valid, skip=True)   # canonical SMILES may need tokens outside the vocabulary
valid = [valid[i] for i in kept]
true = np.array([[logp(s), qed(s), sa_score(s)] for s in valid])
pred = model.predict_properties(z_valid).numpy()
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for j, (ax, name) in enumerate(zip(axes, cfg.properties)):
    r = np.corrcoef(true[:, j], pred[:, j])[0, 1]
    mae = np.abs(true[:, j] - pred[:, j]).mean()
    print(f"{name:5s}: mean absolute error {mae:.3f}, correlation {r:.3f} on {len(valid)} molecules")
    ax.scatter(true[:, j], pred[:, j], s=8)
    lims = [min(true[:, j].min(), pred[:, j].min()), max(true[:, j].max(), pred[:, j].max())]
    ax.plot(lims, lims, "k--", lw=1)
    ax.set(xlabel=f"{name} (RDKit)", ylabel=f"{name} (property head)", title=f"{name}: r = {r:.2f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# Decoded prior samples are not the molecules the head was trained on (MOSES training molecules, where its logP error
# is about 0.5), so its errors here are larger: a learned property is trustworthy only near the data.
#
# ## 4. Interpolation
#
# Decode points on the path between the codes of two molecules.  Spherical interpolation (`latent.slerp`) keeps the
# points at the norm where the prior's mass lies (tutorial 06).  Consecutive identical molecules show the regions of
# latent space that decode to one molecule.

# %%
a, b = names.index("paracetamol"), names.index("lidocaine")
path = latent.slerp(z[a], z[b], 8)
steps = model.decode_smiles(path, greedy=True)
for t, s in zip(np.linspace(0, 1, len(steps)), steps):
    print(f"t = {t:.2f}: {s}")
fig = bo.draw_molecules(steps, [f"t = {t:.2f}" for t in np.linspace(0, 1, len(steps))], per_row=4, size=200)
plt.show()

# %% [markdown]
# ## 5. Optimisation in latent space
#
# To raise a property, climb the property head's prediction from a starting code,
#
# $$z_{k+1} = z_k + \eta\,\nabla_z f_{\text{logP}}(z_k)\quad(\text{Adam, in practice}),$$
#
# decode along the path and score each decoded molecule with RDKit (`chem.bo.gradient_ascent`).  The head is only an
# approximation, so the true score of the decoded molecules is what counts.  Bayesian optimisation with a Gaussian
# process on codes (`chem.bo.bayes_opt`) is the alternative the paper used; `vaekit report chemvae` runs both.

# %%
i_logp = list(cfg.properties).index("logP")


def predicted_logp(codes):
    """The head's logP, differentiable in the codes (grad=True)."""
    return model.predict_properties(codes, grad=True)[:, i_logp]


result = bo.gradient_ascent(predicted_logp, z, lambda c: model.decode_smiles(c, greedy=True), logp,
                            steps=60 if QUICK else 300, lr=0.05, every=10 if QUICK else 25, strings_init=smiles)
print(f"gradient ascent from {len(smiles)} molecules: best start logP {result.start:.2f}, "
      f"best found {max(result.best):.2f} after {result.n_proposed} decoded codes "
      f"({result.n_valid} valid, {result.n_new} new molecules)")
print("predicted logP along the paths (mean over starts):", result.predicted.mean(1).numpy().round(2))
top = bo.top_molecules(result, k=4)
for s, v in top:
    print(f"  logP {v:5.2f}  {s}")
fig = bo.draw_molecules([s for s, _ in top], [f"logP {v:.2f}" for _, v in top], per_row=4, size=200)
plt.show()

# %% [markdown]
# ## Summary
#
# * Encoding, decoding and sampling are three calls; SELFIES make every decoded string a molecule.
# * The property head reads properties off the code, which makes the latent space something to climb.
# * Gradient ascent on the head found molecules whose true (RDKit) logP is higher than that of every starting
#   molecule; the head's prediction rises faster than the truth, the usual gap of optimising a learned surrogate.
# * `vaekit explore models/chemvae-selfies` shows the same latent space in a browser, a molecule per point.
