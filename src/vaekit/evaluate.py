"""Test-set numbers for a trained model: ELBO, IWAE-k bound, NLL by importance sampling, and the
reconstruction error as Hinton & Salakhutdinov define it (squared error summed over pixels,
averaged over items, pixels in [0, 1]). All log-likelihoods in nats per item."""

from __future__ import annotations

import torch

from . import bounds, likelihoods
from .errors import VaekitError


@torch.no_grad()
def item_means(terms, n: int, *, seed: int = 0, batch_size: int = 1000) -> dict[str, float]:
    """Means over n items of `terms(rows) -> {name: per-item values}`, called on the slices of rows
    0..n in batches, with the noise drawn under a fixed seed (`bounds.seeded`)."""
    sums: dict[str, float] = {}
    with bounds.seeded(seed):
        for start in range(0, n, batch_size):
            for name, v in terms(slice(start, start + batch_size)).items():
                sums[name] = sums.get(name, 0.0) + float(v.sum())
    return {name: v / n for name, v in sums.items()}


def mean_elbo(model, x: torch.Tensor, *, seed: int = 0, batch_size: int = 1000) -> float:
    """Mean ELBO per item of x (nats): one posterior draw per item, under a fixed seed."""
    device = next(model.parameters()).device
    return item_means(
        lambda rows: {"elbo": bounds.elbo_terms(model, x[rows].to(device)).elbo},
        len(x),
        seed=seed,
        batch_size=batch_size,
    )["elbo"]


def evaluate(
    model, x: torch.Tensor, *, k: int = 50, nll_k: int = 0, batch_size: int = 500, seed: int = 0, standardization=None
) -> dict:
    """The numbers defined for the model, averaged over the items x; the model's capabilities say which:

    - an encoder and a likelihood: `sq_err`, the squared reconstruction error at the posterior mean;
    - an encoder with a density (a VAE): `elbo`, its `kl` term and the IWAE-k bound `iwae<k>`, and with `nll_k > 0`
      `nll` = -log p(x) estimated with nll_k importance samples;
    - an encoder without one (a point mass, an implicit posterior): `rec_nll` = -log p(x | z = posterior mean),
      and, for a model whose prior is fitted (an adversarial auto-encoder), `prior_mmd2`: the squared MMD between
      the codes of (up to PRIOR_ITEMS) items and as many prior draws (see `prior_match`).

    Log-likelihoods in nats per item.  `standardization` (a `data.Standardization`): x is standardised data, as the
    model was trained on; the log-likelihoods and `sq_err` are then given in the original units
    (log p(x) = log p(x_std) - sum log std).
    """
    lacks = [what for what, has in (("encoder", model.has_encoder), ("likelihood", model.has_likelihood)) if not has]
    if lacks:
        raise VaekitError(
            f"{model.name} models have no {' and no '.join(lacks)}: no test-set number of them is "
            "defined (draw samples instead)"
        )
    if k < 1 or nll_k < 0:
        raise VaekitError(f"evaluation needs k >= 1 and nll_k >= 0 importance samples, got k={k}, nll_k={nll_k}")
    if nll_k and not model.encoder_density:
        raise VaekitError(
            f"the NLL estimate needs an encoder with a density as its proposal, which {model.name} models do not have"
        )
    if len(x) == 0:
        raise VaekitError("evaluation data is empty")
    shape = getattr(model.config, "data_shape", None)
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise VaekitError(
            f"evaluation data: items have shape {tuple(x.shape[1:])} but the model expects data_shape {tuple(shape)}"
        )
    categorical = getattr(model.config, "likelihood", None) == "categorical"
    model.eval()
    device = next(model.parameters()).device

    def terms(rows):
        xb = x[rows].to(device)
        p_x = model.decode(model.embed(xb))  # p(x | z = posterior mean)
        target = xb / (model.config.n_categories - 1) if categorical else xb  # levels -> [0, 1], as mean gives
        err = (likelihoods.mean(p_x) - target).pow(2)
        if standardization is not None:
            err = err * standardization.std.to(device).pow(2)
        out = {"sq_err": err.flatten(1).sum(1)}
        if not model.encoder_density:
            return {**out, "rec_nll": -p_x.log_prob(xb)}
        t = bounds.elbo_terms(model, xb)
        out.update({"elbo": t.elbo, "kl": t.kl, f"iwae{k}": bounds.log_mean_exp(bounds.log_weights(model, xb, k))})
        if nll_k:
            out["nll"] = -bounds.log_likelihood(model, xb, nll_k)
        return out

    out: dict[str, float] = {"n": len(x), **item_means(terms, len(x), seed=seed, batch_size=batch_size)}
    if standardization is not None:  # the change of variables x = mean + std * x_std
        log_det = float(standardization.std.double().log().sum())
        for name in out:
            if name == "elbo" or name.startswith("iwae"):
                out[name] -= log_det
            elif name in ("nll", "rec_nll"):
                out[name] += log_det
    if "nll" in out:
        out["nll_k"] = nll_k
    if model.can_sample and not model.encoder_density and len(x) >= 2:
        out["prior_mmd2"] = prior_match(model, x, seed=seed)
    return out


PRIOR_ITEMS = 1000  # prior_match compares this many codes at most (its cost grows with their square)


@torch.no_grad()
def prior_match(model, x: torch.Tensor, *, n: int = PRIOR_ITEMS, seed: int = 0) -> float:
    """Squared MMD (`adversarial.mmd2`) between the codes of the first n items of x and as many draws from the
    model's prior, under a fixed seed: near 0 when the codes follow the prior, as an adversarial auto-encoder's
    discriminator pushes them to."""
    from .adversarial import mmd2

    device = next(model.parameters()).device
    with bounds.seeded(seed):
        z = torch.cat([model.embed(xb.to(device)) for xb in x[:n].split(500)])
        return mmd2(z.cpu(), model.prior().sample((len(z),)).cpu())


@torch.no_grad()
def active_units(model, x, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across the data by more than `threshold`
    (Burda et al. 2015's count of active units)."""
    return int((model.embed(x).var(0) > threshold).sum())


@torch.no_grad()
def evaluate_molecules(model, smiles, props: dict | None = None, *, batch_size: int = 500, seed: int = 0) -> dict:
    """The numbers defined for a molecule model (`item_kind == "molecule"`, e.g. the chemical VAE), averaged over
    the molecules that fit its vocabulary:

    - `elbo`, `rec`, `kl`: the ELBO per molecule and its terms, E_q[log p(x|z)] (one code drawn from q(z|x)) and
      KL(q(z|x) || p(z)), in nats;
    - `mse_<property>`: the property head's squared error at the posterior mean, in the property's own units;
    - `recon_acc`: the fraction of molecules whose greedy decoding of the posterior mean is the input molecule
      (canonical SMILES compared);
    - `n` (molecules evaluated) and `skipped` (molecules with tokens the vocabulary lacks, or too long).
    """
    from .chem.props import canonical

    smiles = list(smiles)
    names = tuple(getattr(model.config, "properties", ()))
    x, kept = model.items(smiles, props if names else None, skip=True)
    if len(kept) == 0:
        raise VaekitError(
            f"evaluation data: none of the {len(smiles)} molecules fits the model's vocabulary "
            f"(tokens it lacks, or longer than max_len {model.config.max_len})"
        )
    model.eval()
    device = next(model.parameters()).device

    def terms(rows):
        xb, idx = x[rows].to(device), kept[rows]
        t = bounds.elbo_terms(model, xb)
        out = {"elbo": t.elbo, "rec": t.rec, "kl": t.kl}
        z = model.embed(xb)
        if names:
            pred = model.predict_properties(z).cpu().double()
            truth = torch.tensor([[props[p][i] for p in names] for i in idx], dtype=torch.float64)
            out.update({f"mse_{p}": (pred[:, j] - truth[:, j]).pow(2) for j, p in enumerate(names)})
        decoded = model.decode_smiles(z, greedy=True)
        out["recon_acc"] = torch.tensor(
            [canonical(d) is not None and canonical(d) == canonical(smiles[i]) for d, i in zip(decoded, idx)],
            dtype=torch.float64,
        )
        return out

    return {
        "n": len(kept),
        "skipped": len(smiles) - len(kept),
        **item_means(terms, len(kept), seed=seed, batch_size=batch_size),
    }
