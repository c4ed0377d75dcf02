"""Optimisation in a latent space: Bayesian optimisation, gradient ascent, similarity-constrained ascent.

Model-agnostic: every optimiser takes callables and codes and returns a `Result`.

    decode(z)  -> list of strings (None for a code that decodes to nothing)     z: Tensor (n, d)
    score(s)   -> float (NaN or None for an invalid string, e.g. `props.penalized_logp`)
    predict(z) -> Tensor (n,), differentiable (a property head: `model.predict_properties(z, grad=True)[:, j]`)

    bayes_opt(score, decode, z_init, y_init)   GP on (code, score) pairs, batches proposed by q(Log)EI (botorch)
    gradient_ascent(predict, z0, decode, score) ascend the predictor from starting codes, decode along the path
    random_search(score, decode, dim)           codes from the prior N(0, I): the baseline
    similarity_constrained(...)                 JT-VAE's task: improve each start molecule, Tanimoto >= delta
    top_molecules, plot_trajectory, draw_molecules

The GP follows the chemical-VAE / GVAE protocol (a GP on the codes of a training subset, batches of 50,
10 rounds) but is botorch's exact `SingleTaskGP` (its default ARD kernel and priors) in float64 with inputs
scaled to the unit cube and scores standardised, not a sparse GP. An exact GP costs O(n^3) per
marginal-likelihood step, so keep the training subset at about 2,000 codes on a laptop CPU (see `bayes_opt`).

`bayes_opt(..., trust_region=True)` proposes each batch inside a box around the best code so far that grows
after successful batches and shrinks after failed ones (TuRBO-1, Eriksson et al. 2019, NeurIPS): in a
56-dimensional code space a global acquisition spends its batches on the edges of the box, where few codes
decode to molecules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import VaekitError
from ..latent import ascend

ACQUISITIONS = ("qEI", "qLogEI")


@dataclass
class Result:
    """Everything an optimiser evaluated, in order.

    z: (n, d) every code that was decoded and scored; strings[i] its decoding (None: no string);
    scores[i] its score (NaN: invalid); round[i] the round (BO, random search) or checkpoint (gradient
    ascent) that proposed it, counted from 1. best[r] is the best valid score among all proposals of
    rounds 1..r (-inf before the first valid one), so it never decreases; evaluations[r] the number of
    proposals scored up to round r. start is the best score the optimiser was given (BO: max of y_init;
    gradient ascent: best score of the starting codes' decodings). known: the starting strings, for
    counting new proposals.
    """

    method: str
    z: torch.Tensor
    strings: list
    scores: torch.Tensor
    round: torch.Tensor
    best: list = field(default_factory=list)
    evaluations: list = field(default_factory=list)
    start: float = -math.inf
    seconds: float = 0.0
    known: set = field(default_factory=set, repr=False)
    timings: list = field(default_factory=list)  # BO: wall s per round for fit, propose, evaluate; CPU s
    regions: list = field(default_factory=list)  # trust-region BO, per round: (side in the unit cube, box (2, d))
    predicted: torch.Tensor | None = None  # gradient ascent: predict along the path (k, n)
    start_strings: list = field(default_factory=list, repr=False)  # gradient ascent: decodings of z0

    @property
    def n_proposed(self) -> int:
        return len(self.strings)

    @property
    def valid(self) -> torch.Tensor:
        """Boolean mask (n,) of proposals with a string and a finite score."""
        return torch.isfinite(self.scores)

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def n_invalid(self) -> int:
        return self.n_proposed - self.n_valid

    def valid_strings(self) -> list:
        return [s for s, ok in zip(self.strings, self.valid.tolist()) if ok]

    @property
    def n_unique(self) -> int:
        """Distinct strings among the valid proposals."""
        return len(set(self.valid_strings()))

    @property
    def n_new(self) -> int:
        """Distinct valid strings that were not among the starting strings (`known`)."""
        return len(set(self.valid_strings()) - self.known)

    def summary(self) -> dict:
        return {
            "method": self.method,
            "proposed": self.n_proposed,
            "valid": self.n_valid,
            "invalid": self.n_invalid,
            "unique": self.n_unique,
            "new": self.n_new,
            "best": self.best[-1] if self.best else -math.inf,
            "start": self.start,
            "seconds": round(self.seconds, 3),
        }


# ----------------------------------------------------------------------------------------- checks


def _codes(z, name: str, dim: int | None = None) -> torch.Tensor:
    z = torch.as_tensor(z)
    if z.dim() != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise VaekitError(f"{name} must be a 2-D tensor (n, latent_dim) with n >= 1, got shape {tuple(z.shape)}")
    if dim is not None and z.shape[1] != dim:
        raise VaekitError(f"{name} has latent dimension {z.shape[1]}, expected {dim}")
    if not torch.isfinite(z).all():
        raise VaekitError(f"{name} contains NaN or inf")
    return z.detach().to(torch.float64)


def _positive_int(v, name: str, low: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise VaekitError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def _evaluate(decode, score, z: torch.Tensor) -> tuple[list, torch.Tensor]:
    """Decode a batch of codes and score each string; NaN for None strings and invalid scores."""
    strings = list(decode(z.to(torch.get_default_dtype())))
    if len(strings) != z.shape[0]:
        raise VaekitError(f"decode returned {len(strings)} strings for {z.shape[0]} codes")
    out = []
    for s in strings:
        v = score(s) if s is not None else None
        v = math.nan if v is None else float(v)
        out.append(v if math.isfinite(v) else math.nan)
    return strings, torch.tensor(out, dtype=torch.float64)


def _running_best(result: Result, rounds: int) -> None:
    best, evals = [], []
    current = -math.inf
    for r in range(1, rounds + 1):
        in_round = result.round == r
        s = result.scores[in_round & result.valid]
        if len(s):
            current = max(current, float(s.max()))
        best.append(current)
        evals.append(int((result.round <= r).sum()))
    result.best, result.evaluations = best, evals


# ----------------------------------------------------------------------------------------- BO


def fit_gp(
    z: torch.Tensor,
    y: torch.Tensor,
    bounds: torch.Tensor,
    fit_points: int = 500,
    seed: int = 0,
    previous=None,
    focus: torch.Tensor | None = None,
):
    """botorch SingleTaskGP (ARD Matern-5/2) on codes z (n, d) and scores y (n,), inputs scaled by `bounds`
    (2, d) to the unit cube, scores standardised.

    The hyperparameters maximise the exact marginal likelihood (L-BFGS) of a random subset of `fit_points`
    pairs; the returned GP has those hyperparameters and is conditioned on all n pairs. One likelihood
    gradient costs O(n^3) and 56 kernel derivatives: 0.13 s at n = 500 but 3.8 s at n = 2,000 on one
    core of this machine, so fitting on all 2,000 codes would take minutes per round, predicting with
    them only one Cholesky factorisation. `previous` (a GP from this function) warm-starts the fit from
    its hyperparameters, as BO does from round to round. focus (d,): a code; the hyperparameters are then
    fitted on the `fit_points` pairs nearest to it in the unit cube (a local model, as a trust region wants)
    instead of a random subset.
    """
    import gpytorch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    def gp_on(zz, yy):
        return SingleTaskGP(
            zz,
            yy.unsqueeze(-1),
            input_transform=Normalize(zz.shape[1], bounds=bounds),
            outcome_transform=Standardize(1),
        )

    n = z.shape[0]
    if n <= fit_points:
        sub = None
    elif focus is None:
        sub = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:fit_points]
    else:
        scale = bounds[1] - bounds[0]
        sub = (((z - focus) / scale) ** 2).sum(1).argsort()[:fit_points]
    gp = gp_on(z[sub], y[sub]) if sub is not None else gp_on(z, y)
    parts = ("covar_module", "mean_module", "likelihood")
    if previous is not None:
        for part in parts:
            getattr(gp, part).load_state_dict(getattr(previous, part).state_dict())
    with gpytorch.settings.max_cholesky_size(100_000):  # Cholesky, not CG
        fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    if sub is None:
        return gp
    full = gp_on(z, y)
    for part in parts:
        getattr(full, part).load_state_dict(getattr(gp, part).state_dict())
    return full.eval()


@dataclass
class TrustRegion:
    """TuRBO-1's trust region in the unit cube: a box of side `length` (scaled per coordinate by the GP's
    lengthscales) centred on the best point. `update(improved)` after each batch doubles the side after
    `success_tol` successes in a row, halves it after `failure_tol` failures in a row (the defaults of
    Eriksson et al. 2019: 0.8 to start, between 0.5^7 and 1.6, 3 successes, ceil(max(4, d) / batch)
    failures) and starts over at `length0` once it falls below `min_length`."""

    failure_tol: int
    success_tol: int = 3
    length0: float = 0.8
    min_length: float = 0.5**7
    max_length: float = 1.6
    length: float = 0.8
    successes: int = 0
    failures: int = 0
    restarts: int = 0

    @classmethod
    def for_problem(cls, dim: int, batch: int) -> TrustRegion:
        return cls(failure_tol=math.ceil(max(4.0, float(dim)) / batch))

    def update(self, improved: bool) -> None:
        if improved:
            self.successes, self.failures = self.successes + 1, 0
        else:
            self.successes, self.failures = 0, self.failures + 1
        if self.successes >= self.success_tol:
            self.length, self.successes = min(2.0 * self.length, self.max_length), 0
        elif self.failures >= self.failure_tol:
            self.length, self.failures = self.length / 2.0, 0
        if self.length < self.min_length:
            self.length, self.restarts = self.length0, self.restarts + 1

    def box(self, centre: torch.Tensor, lengthscale: torch.Tensor) -> torch.Tensor:
        """(2, d) bounds in the unit cube: sides length * w with w the lengthscales over their geometric mean."""
        w = lengthscale / lengthscale.log().mean().exp()
        half = self.length * w / 2
        return torch.stack([(centre - half).clamp(0.0, 1.0), (centre + half).clamp(0.0, 1.0)])


def _lengthscale(gp, d: int) -> torch.Tensor:
    """The ARD lengthscales (d,) of the GP's kernel, wherever botorch's default kernel keeps them."""
    for module in gp.covar_module.modules():
        ls = getattr(module, "lengthscale", None)
        if ls is not None and ls.numel() == d:
            return ls.detach().reshape(d).to(torch.float64)
    return torch.ones(d, dtype=torch.float64)


def propose(
    gp,
    best_f: float,
    bounds: torch.Tensor,
    batch: int,
    acquisition: str = "qLogEI",
    seed: int = 0,
    restarts: int = 2,
    raw_samples: int = 64,
    maxiter: int = 100,
) -> torch.Tensor:
    """`batch` codes (batch, d) maximising the joint q-expected improvement over `best_f` inside `bounds`."""
    import gpytorch
    from botorch.acquisition import qExpectedImprovement, qLogExpectedImprovement
    from botorch.optim import optimize_acqf
    from botorch.sampling import SobolQMCNormalSampler

    sampler = SobolQMCNormalSampler(torch.Size([128]), seed=seed)
    cls = qLogExpectedImprovement if acquisition == "qLogEI" else qExpectedImprovement
    acq = cls(gp, best_f=best_f, sampler=sampler)
    with gpytorch.settings.max_cholesky_size(100_000):
        cand, _ = optimize_acqf(
            acq,
            bounds=bounds,
            q=batch,
            num_restarts=restarts,
            raw_samples=raw_samples,
            options={"maxiter": maxiter, "seed": seed},
        )
    return cand.detach()


def bayes_opt(
    score: Callable,
    decode: Callable,
    z_init,
    y_init,
    bounds=None,
    rounds: int = 10,
    batch: int = 50,
    seed: int = 0,
    acquisition: str = "qLogEI",
    log: Callable | None = None,
    strings_init: Sequence[str] | None = None,
    invalid_score: float | None = None,
    fit_points: int = 500,
    restarts: int = 2,
    raw_samples: int = 64,
    maxiter: int = 100,
    trust_region: bool = False,
    local_fit: bool = False,
) -> Result:
    """Bayesian optimisation of `score(decode(z))` over codes z, started from scored codes.

    z_init: (n, d) codes of a training subset with scores y_init (n,). The GP is conditioned on all of
    them (growing by `batch` per round) but its hyperparameters are fitted on `fit_points` of them (see
    `fit_gp`). With n = 2,000, d = 56, batch = 50 the first round costs 25 CPU-seconds and a warm-started
    later round 11 (one thread; `pytest -m slow tests/test_chem_bo.py -k timing -s`); on the shared
    2-core machine that was 68-273 s and 30-131 s of wall time depending on the other jobs. The GVAE
    and JT-VAE papers used a sparse GP with 500 inducing points instead.
    bounds: (2, d) box the proposals stay in; default the per-coordinate range of z_init.
    Each round fits the GP, proposes `batch` codes by joint q-EI ("qEI") or its log form ("qLogEI"),
    decodes and scores them. Invalid ones (decode gives None or score NaN) are counted and enter the GP at
    `invalid_score` (default: the lowest score in y_init) so that it learns to avoid them; they never
    count as best. strings_init (optional) are the strings of z_init, used to count new proposals.
    trust_region=True proposes inside TuRBO-1's box around the best code so far (`TrustRegion`; the same GP
    and acquisition, only the box differs); result.regions holds each round's (side in the unit cube, box (2, d)
    in the codes' coordinates).
    local_fit=True fits the GP's hyperparameters on the `fit_points` codes nearest to the best code so far
    (`fit_gp`'s focus) instead of a random subset, which is mostly starting codes far from the search.
    log(message) receives one line per round.
    """
    z_init = _codes(z_init, "z_init")
    n, d = z_init.shape
    y_init = torch.as_tensor(y_init, dtype=torch.float64).detach().reshape(-1)
    if y_init.shape[0] != n:
        raise VaekitError(f"y_init has {y_init.shape[0]} scores for {n} codes in z_init")
    if not torch.isfinite(y_init).all():
        raise VaekitError("y_init contains NaN or inf (drop invalid training molecules first)")
    rounds = _positive_int(rounds, "rounds")
    batch = _positive_int(batch, "batch")
    fit_points = _positive_int(fit_points, "fit_points", low=2)
    if acquisition not in ACQUISITIONS:
        raise VaekitError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
    if n < 2:
        raise VaekitError(f"z_init needs at least 2 codes to fit a GP, got {n}")
    if bounds is None:
        lo, hi = z_init.min(0).values, z_init.max(0).values
        bounds = torch.stack([lo, torch.maximum(hi, lo + 1e-6)])
    else:
        bounds = torch.as_tensor(bounds, dtype=torch.float64)
        if bounds.shape != (2, d) or not (bounds[1] > bounds[0]).all():
            raise VaekitError(f"bounds must have shape (2, {d}) with lower < upper, got shape {tuple(bounds.shape)}")
    penalty = float(y_init.min()) if invalid_score is None else float(invalid_score)

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    X, Y, gp = z_init, y_init, None
    zs, strings, scores, rnd, timings, regions = [], [], [], [], [], []
    region = TrustRegion.for_problem(d, batch) if trust_region else None
    for r in range(1, rounds + 1):
        t_fit, cpu = time.perf_counter(), time.process_time()
        focus = X[int(Y.argmax())] if local_fit else None
        gp = fit_gp(X, Y, bounds, fit_points, seed=seed * 1000 + r, previous=gp, focus=focus)
        t_acq = time.perf_counter()
        box = bounds
        if region is not None:  # the box around the best code so far, back in the codes' coordinates
            centre = (X[int(Y.argmax())] - bounds[0]) / (bounds[1] - bounds[0])
            box = bounds[0] + region.box(centre, _lengthscale(gp, d)) * (bounds[1] - bounds[0])
            regions.append((region.length, box))
        cand = propose(
            gp,
            float(Y.max()),
            box,
            batch,
            acquisition,
            seed=seed * 1000 + r,
            restarts=restarts,
            raw_samples=raw_samples,
            maxiter=maxiter,
        )
        t_eval = time.perf_counter()
        s, v = _evaluate(decode, score, cand)
        t_end = time.perf_counter()
        zs.append(cand)
        strings.extend(s)
        scores.append(v)
        rnd.append(torch.full((batch,), r))
        timings.append(
            {
                "fit": t_acq - t_fit,
                "propose": t_eval - t_acq,
                "evaluate": t_end - t_eval,
                "cpu": time.process_time() - cpu,
            }
        )
        ok = v[torch.isfinite(v)]
        if region is not None:
            best_before = float(Y.max())
            region.update(bool(len(ok)) and float(ok.max()) > best_before + 1e-3 * abs(best_before))
        X = torch.cat([X, cand])
        Y = torch.cat([Y, torch.where(torch.isfinite(v), v, torch.full_like(v, penalty))])
        if log is not None:
            log(
                f"BO round {r}/{rounds}: {len(ok)}/{batch} valid, round best "
                f"{(float(ok.max()) if len(ok) else math.nan):.3f}, GP on {X.shape[0] - batch} points; "
                + (f"trust region side {regions[-1][0]:.3g}; " if regions else "")
                + f"fit {t_acq - t_fit:.1f} s, propose {t_eval - t_acq:.1f} s, decode+score {t_end - t_eval:.1f} s "
                f"(wall), {timings[-1]['cpu']:.1f} CPU s"
            )
    result = Result(
        "bayes_opt" + ("_trust_region" if trust_region else "") + ("_local_fit" if local_fit else ""),
        torch.cat(zs),
        strings,
        torch.cat(scores),
        torch.cat(rnd),
        start=float(y_init.max()),
        known=set(strings_init or ()),
    )
    result.timings, result.regions = timings, regions
    _running_best(result, rounds)
    result.seconds = time.perf_counter() - t0
    return result


def random_search(
    score: Callable,
    decode: Callable,
    dim: int,
    rounds: int = 10,
    batch: int = 50,
    seed: int = 0,
    strings_init: Sequence[str] | None = None,
) -> Result:
    """The baseline: rounds x batch codes from the prior N(0, I), decoded and scored."""
    dim = _positive_int(dim, "dim")
    rounds, batch = _positive_int(rounds, "rounds"), _positive_int(batch, "batch")
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    z = torch.randn(rounds * batch, dim, generator=g, dtype=torch.float64)
    strings, scores = _evaluate(decode, score, z)
    rnd = torch.arange(1, rounds + 1).repeat_interleave(batch)
    result = Result("random", z, strings, scores, rnd, known=set(strings_init or ()))
    _running_best(result, rounds)
    result.seconds = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------------------- gradient ascent


def gradient_ascent(
    predict: Callable,
    z0,
    decode: Callable,
    score: Callable,
    steps: int = 100,
    lr: float = 0.05,
    prior_weight: float = 0.0,
    project: bool = False,
    every: int = 10,
    strings_init: Sequence[str] | None = None,
) -> Result:
    """The chemical VAE's alternative to BO: follow the gradient of a property predictor in latent space.

    z0: (n, d) starting codes (e.g. encodings of training molecules, or prior samples). Every `every`
    steps (checkpoint r = 1, 2, ...; the starting codes are checkpoint 0) all n codes are decoded and
    scored; result.start is the best score of the starting codes' decodings. prior_weight > 0 adds a
    Gaussian prior term -prior_weight/2 ||z||^2; project=True keeps codes on the shell of radius sqrt(d)
    instead. result.predicted (k, n) holds predict along the path.
    """
    z0 = _codes(z0, "z0")
    steps = _positive_int(steps, "steps")
    every = _positive_int(every, "every")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise VaekitError(f"lr must be a positive number, got {lr!r}")
    if not (isinstance(prior_weight, (int, float)) and prior_weight >= 0):
        raise VaekitError(f"prior_weight must be >= 0, got {prior_weight!r}")
    t0 = time.perf_counter()
    path, predicted = ascend(
        predict, z0.to(torch.get_default_dtype()), steps, float(lr), float(prior_weight), project, every
    )
    n, k = z0.shape[0], path.shape[0]
    strings0, scores0 = _evaluate(decode, score, path[0])
    strings, scores = _evaluate(decode, score, path[1:].reshape(-1, z0.shape[1]))
    rnd = torch.arange(1, k).repeat_interleave(n)
    ok0 = scores0[torch.isfinite(scores0)]
    known = set(strings_init or ()) | {s for s in strings0 if s is not None}
    result = Result(
        "gradient_ascent",
        path[1:].reshape(-1, z0.shape[1]).to(torch.float64),
        strings,
        scores,
        rnd,
        start=float(ok0.max()) if len(ok0) else -math.inf,
        known=known,
        predicted=predicted,
        start_strings=strings0,
    )
    _running_best(result, k - 1)
    result.seconds = time.perf_counter() - t0
    return result


# ----------------------------------------------------------------------------------------- constrained


def tanimoto(a: str, b: str, radius: int = 2, bits: int = 2048) -> float:
    """Tanimoto similarity of Morgan fingerprints (radius 2, 2048 bits, as JT-VAE); 0 if either is invalid."""
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    ma, mb = Chem.MolFromSmiles(a or ""), Chem.MolFromSmiles(b or "")
    if ma is None or mb is None or ma.GetNumAtoms() == 0 or mb.GetNumAtoms() == 0:
        return 0.0
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    return float(DataStructs.TanimotoSimilarity(gen.GetFingerprint(ma), gen.GetFingerprint(mb)))


def similarity_constrained(
    predict: Callable,
    z0,
    start_strings: Sequence[str],
    decode: Callable,
    score: Callable,
    deltas: Sequence[float] = (0.4, 0.6),
    similarity: Callable = tanimoto,
    **ascent,
) -> dict:
    """JT-VAE's constrained optimisation: improve each start molecule while staying similar to it.

    For start molecule i (string start_strings[i], code z0[i]) gradient ascent runs from z0[i]; among the
    decodings along its path that differ from the start, are valid and have similarity >= delta to it,
    the best-scoring one is kept if it scores higher than the start. Its improvement is counted (0 when none
    qualifies) and it counts as a success. Returns {delta: {"improvement": mean, "improvement_std",
    "success": fraction, "best": [(start, found or None, improvement, similarity)]}} plus "result": the
    gradient-ascent Result. Extra keyword arguments go to `gradient_ascent`.
    """
    z0 = _codes(z0, "z0")
    start_strings = list(start_strings)
    if len(start_strings) != z0.shape[0]:
        raise VaekitError(f"start_strings has {len(start_strings)} entries for {z0.shape[0]} codes in z0")
    for dl in deltas:
        if not 0 <= dl <= 1:
            raise VaekitError(f"deltas must lie in [0, 1], got {dl!r}")
    res = gradient_ascent(predict, z0, decode, score, strings_init=start_strings, **ascent)
    n = z0.shape[0]
    base = torch.tensor([math.nan if (v := score(s)) is None else float(v) for s in start_strings], dtype=torch.float64)
    cand: list[dict[str, tuple[float, float]]] = [{} for _ in range(n)]  # molecule i: {string: (score, similarity)}
    for j, (s, v) in enumerate(zip(res.strings, res.scores.tolist())):
        i = j % n
        if s is None or not math.isfinite(v) or s == start_strings[i] or s in cand[i]:
            continue
        cand[i][s] = (v, similarity(s, start_strings[i]))
    out: dict = {"result": res}
    for dl in deltas:
        rows: list[tuple[str, str | None, float, float]] = []
        imp: list[float] = []
        for i in range(n):
            ok = [(v, sim, s) for s, (v, sim) in cand[i].items() if sim >= dl]
            v, sim, s = max(ok) if ok else (-math.inf, math.nan, None)
            gain = v - float(base[i])
            if s is None or not math.isfinite(gain) or gain <= 0:
                rows.append((start_strings[i], None, 0.0, math.nan))
                imp.append(0.0)
            else:
                rows.append((start_strings[i], s, gain, sim))
                imp.append(gain)
        gains = np.array(imp)
        out[dl] = {
            "improvement": float(gains.mean()),
            "improvement_std": float(gains.std()),
            "success": float(np.mean([r[1] is not None for r in rows])),
            "best": rows,
        }
    return out


# ----------------------------------------------------------------------------------------- reading results


def top_molecules(result: Result, k: int = 3) -> list[tuple[str, float]]:
    """The k best distinct valid strings with their scores, best first."""
    k = _positive_int(k, "k")
    best: dict[str, float] = {}
    for s, v in zip(result.strings, result.scores.tolist()):
        if s is not None and math.isfinite(v) and v > best.get(s, -math.inf):
            best[s] = v
    return sorted(best.items(), key=lambda t: -t[1])[:k]


def plot_trajectory(results: dict, x: str = "evaluations", ax=None):
    """Best score so far for each named Result, against scored proposals ("evaluations") or "round"."""
    import matplotlib.pyplot as plt

    if x not in ("evaluations", "round"):
        raise VaekitError(f"x must be 'evaluations' or 'round', got {x!r}")
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in results.items():
        xs = res.evaluations if x == "evaluations" else list(range(1, len(res.best) + 1))
        ys = [v if math.isfinite(v) else np.nan for v in res.best]
        (line,) = ax.plot(xs, ys, marker="o", ms=3, label=name)
        if math.isfinite(res.start):
            ax.axhline(res.start, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("scored proposals" if x == "evaluations" else "round / checkpoint")
    ax.set_ylabel("best score so far")
    ax.set_title("latent-space optimisation (dotted: best starting score)")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return fig if fig is not None else ax.figure


def draw_molecules(smiles: Sequence[str], labels: Sequence[str] | None = None, per_row: int = 3, size: int = 250):
    """RDKit drawings of molecules in a grid, one label under each; returns a matplotlib Figure."""
    import matplotlib.pyplot as plt
    from rdkit import Chem
    from rdkit.Chem import Draw

    smiles = list(smiles)
    if not smiles:
        raise VaekitError("draw_molecules needs at least one SMILES string")
    labels = list(labels) if labels is not None else ["" for _ in smiles]
    if len(labels) != len(smiles):
        raise VaekitError(f"labels has {len(labels)} entries for {len(smiles)} molecules")
    mols = []
    for s in smiles:
        m = Chem.MolFromSmiles(s or "")
        if m is None:
            raise VaekitError(f"draw_molecules: {s!r} is not a valid SMILES string")
        mols.append(m)
    per_row = min(per_row, len(mols))
    # a PIL image even inside Jupyter, where RDKit would otherwise hand back an IPython display object
    img = Draw.MolsToGridImage(
        mols,
        molsPerRow=per_row,
        subImgSize=(size, size),
        legends=[str(t) for t in labels],
        useSVG=False,
        returnPNG=False,
    )
    rows = math.ceil(len(mols) / per_row)
    fig, ax = plt.subplots(figsize=(per_row * size / 90, rows * size / 90))
    ax.imshow(np.asarray(img))
    ax.axis("off")
    return fig
