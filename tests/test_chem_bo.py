"""Latent-space optimisation (chem/bo.py) on toy latent problems with known maxima, plus RDKit wiring."""

import math

import pytest
import torch

from vaekit.chem import bo
from vaekit.errors import VaekitError

CENTRE = torch.tensor([0.6, -0.4, 0.3, -0.2], dtype=torch.float64)


def f(z):
    """Smooth toy property with its maximum 0 at CENTRE."""
    return -((torch.as_tensor(z, dtype=torch.float64) - CENTRE) ** 2).sum(-1)


def decode(z):
    """'Decoder': formats the code as a string (the string carries the code exactly enough to score)."""
    return [",".join(f"{v:.8f}" for v in row.tolist()) for row in z]


def score(s):
    return float(f(torch.tensor([float(t) for t in s.split(",")])))


def init(n=30, seed=1):
    z = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z, f(z)


def test_bo_beats_random_with_same_budget_and_is_monotone():
    z, y = init()
    lines = []
    res = bo.bayes_opt(score, decode, z, y, rounds=4, batch=5, seed=0, log=lines.append)
    rnd = bo.random_search(score, decode, 4, rounds=4, batch=5, seed=0)
    assert res.n_proposed == rnd.n_proposed == 20 and res.z.shape == (20, 4)
    assert len(res.best) == 4 and res.evaluations == [5, 10, 15, 20] and len(lines) == 4
    assert all(b2 >= b1 for b1, b2 in zip(res.best, res.best[1:]))
    assert all(b2 >= b1 for b1, b2 in zip(rnd.best, rnd.best[1:]))
    # the proposals' scores are the scores of their codes, and best is their running max
    assert torch.allclose(res.scores, f(res.z), atol=1e-6)
    assert res.best[-1] == pytest.approx(float(res.scores.max()))
    assert res.start == pytest.approx(float(y.max()))
    # BO gets close to the maximum 0; 20 prior samples do not (expected best about -1)
    assert res.best[-1] > -0.15
    assert res.best[-1] > rnd.best[-1] + 0.3
    assert res.n_valid == 20 and res.n_invalid == 0 and res.n_unique == res.n_new <= 20


def test_qlogei_and_explicit_bounds_keep_proposals_inside():
    z, y = init()
    bounds = torch.tensor([[-1.0] * 4, [1.0] * 4])
    res = bo.bayes_opt(score, decode, z, y, bounds=bounds, rounds=2, batch=3, acquisition="qLogEI")
    assert (res.z >= -1 - 1e-9).all() and (res.z <= 1 + 1e-9).all()
    assert res.best[-1] > float(y.max()) - 1.0


def test_invalid_decodings_are_counted_not_crashing():
    z, y = init()

    def half_decode(codes):  # codes with a negative first coordinate decode to nothing
        return [s if c[0] > 0 else None for s, c in zip(decode(codes), codes)]

    def picky_score(s):  # and strings scoring below -3 are "invalid molecules" (NaN)
        v = score(s)
        return v if v > -3 else math.nan

    res = bo.bayes_opt(picky_score, half_decode, z, y, rounds=2, batch=6, seed=3)
    nones = sum(s is None for s in res.strings)
    assert res.n_proposed == 12 and res.n_valid + res.n_invalid == 12
    assert res.n_invalid >= nones
    assert torch.isnan(res.scores[[s is None for s in res.strings]]).all()
    # a sampler that only produces invalid codes: everything counted, best stays -inf
    rnd = bo.random_search(lambda s: math.nan, decode, 4, rounds=2, batch=4)
    assert rnd.n_invalid == 8 and rnd.best == [-math.inf, -math.inf] and bo.top_molecules(rnd) == []


def test_new_counts_strings_not_seen_before():
    z, y = init(5)
    rnd = bo.random_search(
        lambda s: 1.0, lambda c: ["a", "b"] * (len(c) // 2), 4, rounds=1, batch=4, strings_init=["a"]
    )
    assert rnd.n_valid == 4 and rnd.n_unique == 2 and rnd.n_new == 1
    assert [s for s, _ in bo.top_molecules(rnd, k=5)] in (["a", "b"], ["b", "a"])


def test_gradient_ascent_increases_predicted_property():
    z0 = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 2
    res = bo.gradient_ascent(lambda z: f(z), z0, decode, score, steps=60, lr=0.1, every=20)
    assert res.predicted.shape == (4, 6)  # steps 0, 20, 40, 60
    assert (res.predicted[-1] > res.predicted[0]).all()
    assert res.best[-1] > res.start and res.best[-1] > -0.05
    assert len(res.best) == 3 and res.evaluations == [6, 12, 18]
    # the gradient never leaks into a predictor's parameters
    lin = torch.nn.Linear(4, 1)
    bo.gradient_ascent(lambda z: lin(z.float()).squeeze(-1), z0, decode, score, steps=3, every=1)
    assert lin.weight.grad is None


def test_gradient_ascent_prior_terms():
    """With predict = 0 the Gaussian prior term shrinks codes; projection keeps them on the sqrt(d) shell."""
    z0 = torch.randn(5, 4, generator=torch.Generator().manual_seed(0)) * 3

    def zero(z):
        return (z * 0).sum(1)

    shrunk = bo.gradient_ascent(zero, z0, decode, score, steps=200, lr=0.1, prior_weight=1.0, every=200)
    assert shrunk.z.norm(dim=1).max() < 0.1
    proj = bo.gradient_ascent(lambda z: f(z), z0, decode, score, steps=20, lr=0.2, project=True, every=5)
    assert torch.allclose(proj.z.norm(dim=1), torch.full((20,), 2.0, dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(batch=0), "batch"),
        (dict(rounds=-1), "rounds"),
        (dict(batch=2.5), "batch"),
        (dict(acquisition="UCB"), "acquisition"),
        (dict(bounds=torch.zeros(2, 3)), "bounds"),
    ],
)
def test_bayes_opt_bad_arguments(kwargs, name):
    z, y = init(5)
    with pytest.raises(VaekitError, match=name):
        bo.bayes_opt(score, decode, z, y, **kwargs)


def test_bad_shapes_name_the_argument():
    z, y = init(5)
    with pytest.raises(VaekitError, match="z_init"):
        bo.bayes_opt(score, decode, z[0], y)
    with pytest.raises(VaekitError, match="y_init"):
        bo.bayes_opt(score, decode, z, y[:3])
    with pytest.raises(VaekitError, match="y_init"):
        bo.bayes_opt(score, decode, z, torch.full((5,), math.nan))
    with pytest.raises(VaekitError, match="decode returned 1"):
        bo.bayes_opt(score, lambda c: ["x"], z, y, rounds=1, batch=2)
    with pytest.raises(VaekitError, match="z0"):
        bo.gradient_ascent(f, torch.zeros(4), decode, score)
    with pytest.raises(VaekitError, match="lr"):
        bo.gradient_ascent(f, z, decode, score, lr=0)
    with pytest.raises(VaekitError, match="steps"):
        bo.gradient_ascent(f, z, decode, score, steps=0)
    with pytest.raises(VaekitError, match="returned 1 values for 5 codes"):
        bo.gradient_ascent(lambda c: c.sum(), z, decode, score, steps=1)
    with pytest.raises(VaekitError, match="no_grad"):
        bo.gradient_ascent(torch.no_grad()(f), z, decode, score, steps=1)
    with pytest.raises(VaekitError, match="dim"):
        bo.random_search(score, decode, 0)
    with pytest.raises(VaekitError, match="labels"):
        bo.draw_molecules(["CCO"], ["a", "b"])


def test_plots_leave_the_matplotlib_backend_to_the_caller(monkeypatch):
    import matplotlib
    import matplotlib.pyplot as plt

    def refuse(*args, **kwargs):
        raise AssertionError("a library function chose the matplotlib backend")

    monkeypatch.setattr(matplotlib, "use", refuse)
    res = bo.random_search(score, decode, 4, rounds=2, batch=3, seed=0)
    plt.close(bo.plot_trajectory({"random": res}))


# ---------------------------------------------------------------------------------------- with RDKit

TABLE = ["CCO", "c1ccccc1", "CCCCCCCCCC", "c1ccc2ccccc2c1", "C1CC1", "OCC(O)CO", "CC(=O)Oc1ccccc1C(=O)O", "C#N"]


def lookup_decode(z):
    """A 'decoder' that maps a 2-D code to one of 8 molecules (or nothing) by the sector of its angle."""
    angle = torch.atan2(z[:, 1], z[:, 0])
    idx = ((angle + math.pi) / (2 * math.pi) * 9).long().clamp(0, 8)
    return [TABLE[i] if i < 8 else None for i in idx.tolist()]


def test_rdkit_wiring_with_penalized_logp():
    pytest.importorskip("rdkit")
    props = pytest.importorskip("vaekit.chem.props")
    z, _ = init(12, seed=4)
    z = z[:, :2]
    y = torch.tensor([props.penalized_logp(s) if s else -10.0 for s in lookup_decode(z)], dtype=torch.float64)
    res = bo.bayes_opt(props.penalized_logp, lookup_decode, z, y, rounds=2, batch=4, strings_init=TABLE[:2])
    rnd = bo.random_search(props.penalized_logp, lookup_decode, 2, rounds=2, batch=4, seed=1)
    for r in (res, rnd):
        for s, v in zip(r.strings, r.scores.tolist()):
            assert (s is None) == math.isnan(v)
            if s is not None:
                assert v == pytest.approx(props.penalized_logp(s))
    top = bo.top_molecules(res, k=3)
    assert all(s in TABLE for s, _ in top) and [v for _, v in top] == sorted([v for _, v in top], reverse=True)
    fig = bo.plot_trajectory({"BO": res, "random": rnd})
    assert len(fig.axes[0].lines) >= 2
    fig2 = bo.draw_molecules([s for s, _ in top] or ["CCO"], [f"{v:.2f}" for _, v in top] or ["x"])
    assert fig2.axes[0].images[0].get_array().shape[0] > 100
    with pytest.raises(VaekitError, match="not a valid SMILES"):
        bo.draw_molecules(["C1CC"])


def test_similarity_constrained_on_lookup_decoder():
    pytest.importorskip("rdkit")
    assert bo.tanimoto("CCO", "CCO") == 1.0 and bo.tanimoto("CCO", "not a smiles") == 0.0

    # score = number of carbons; the predictor pulls codes towards the decane sector
    def score_c(s):
        return float(sum(ch == "C" for ch in s.upper()))

    target = torch.tensor([math.cos(-math.pi + 2.5 * 2 * math.pi / 9), math.sin(-math.pi + 2.5 * 2 * math.pi / 9)])

    def predict(z):
        return -((z - target.to(z)) ** 2).sum(1)

    z0 = torch.tensor(
        [
            [math.cos(-math.pi + 0.5 * 2 * math.pi / 9), math.sin(-math.pi + 0.5 * 2 * math.pi / 9)],
            [math.cos(-math.pi + 7.5 * 2 * math.pi / 9), math.sin(-math.pi + 7.5 * 2 * math.pi / 9)],
        ]
    )
    starts = lookup_decode(z0)
    assert starts == ["CCO", "C#N"]
    out = bo.similarity_constrained(
        predict, z0, starts, lookup_decode, score_c, deltas=(0.0, 0.99), steps=80, lr=0.05, every=2
    )
    # with no similarity constraint both starts reach a molecule with more carbons; with 0.99 none can
    assert out[0.0]["success"] == 1.0 and out[0.0]["improvement"] > 0
    assert out[0.99]["success"] == 0.0 and out[0.99]["improvement"] == 0.0
    for start, found, gain, _sim in out[0.0]["best"]:
        assert found != start and gain == pytest.approx(score_c(found) - score_c(start))


def test_gp_hyperparameters_from_subset_conditioned_on_all():
    z, y = init(40)
    bounds = torch.stack([z.min(0).values, z.max(0).values])
    gp = bo.fit_gp(z, y, bounds, fit_points=15)
    assert gp.train_inputs[0].shape[0] == 40
    # conditioned on all points: the posterior mean interpolates the (noise-free) training scores closely
    mean = gp.posterior(z).mean.squeeze(-1).detach()
    assert (mean - y).abs().max() < 0.1 * (y.max() - y.min())
    with pytest.raises(VaekitError, match="fit_points"):
        bo.bayes_opt(score, decode, z, y, fit_points=1)


@pytest.mark.slow
def test_timing_one_round_2000_codes_dim_56():
    """Wall time of BO rounds with batch 50 on 2,000 codes of dimension 56 (printed; run with -s)."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 56, generator=g, dtype=torch.float64)
    w = torch.randn(56, generator=g, dtype=torch.float64)

    def f56(c):
        return -((c[..., :5] - 0.5) ** 2).sum(-1) + 0.1 * torch.sin(3 * c @ w / 8)

    def dec(c):
        return [",".join(f"{v:.8f}" for v in row.tolist()) for row in c]

    def sc(s):
        return float(f56(torch.tensor([float(t) for t in s.split(",")], dtype=torch.float64)))

    res = bo.bayes_opt(sc, dec, z, f56(z), rounds=2, batch=50, log=print)
    for r, t in enumerate(res.timings, 1):
        print(f"round {r}: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()))
    assert res.n_proposed == 100 and res.n_valid == 100
    assert sum(res.timings[0].values()) < 600


def test_trust_region_grows_after_successes_shrinks_after_failures_and_restarts():
    tr = bo.TrustRegion.for_problem(dim=56, batch=50)
    assert tr.failure_tol == 2 and tr.length == 0.8  # ceil(max(4, 56) / 50), Eriksson et al.'s defaults
    for _ in range(3):
        tr.update(True)
    assert tr.length == 1.6  # doubled after 3 successes in a row
    for _ in range(3):
        tr.update(True)
    assert tr.length == 1.6  # and never beyond 1.6
    tr.update(False)
    assert tr.length == 1.6 and tr.failures == 1
    tr.update(True)  # a success resets the failure count
    tr.update(False)
    tr.update(False)
    assert tr.length == 0.8
    for _ in range(2 * 7):
        tr.update(False)
    assert tr.restarts == 1 and tr.length == 0.8  # below 0.5**7: starts over


def test_trust_region_box_is_scaled_by_lengthscales_and_clamped():
    tr = bo.TrustRegion(failure_tol=2, length=0.4)
    box = tr.box(torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([1.0, 4.0], dtype=torch.float64))
    # weights 0.5 and 2 (geometric mean 1): sides 0.2 and 0.8 around the centre
    assert torch.allclose(box, torch.tensor([[0.4, 0.1], [0.6, 0.9]], dtype=torch.float64))
    box = tr.box(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64))
    assert torch.allclose(box, torch.tensor([[0.0, 0.8], [0.2, 1.0]], dtype=torch.float64))


def test_a_focused_fit_takes_its_hyperparameters_from_the_codes_nearest_the_focus():
    g = torch.Generator().manual_seed(0)
    z = torch.rand(200, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    y = torch.sin(3 * z).sum(1)
    bounds = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 4.0]], dtype=torch.float64)
    focus = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    focused = bo.fit_gp(z, y, bounds, fit_points=40, focus=focus)
    nearest = (((z - focus) / (bounds[1] - bounds[0])) ** 2).sum(1).argsort()[:40]  # in the unit cube
    alone = bo.fit_gp(z[nearest], y[nearest], bounds, fit_points=40)
    assert torch.allclose(bo._lengthscale(focused, 3), bo._lengthscale(alone, 3))
    assert not torch.allclose(bo._lengthscale(focused, 3), bo._lengthscale(bo.fit_gp(z, y, bounds, fit_points=40), 3))
    assert focused.train_inputs[0].shape[0] == len(z)  # conditioned on every code all the same


def test_trust_region_bo_stays_near_the_best_code_where_codes_decode():
    d = 8
    g = torch.Generator().manual_seed(2)
    z = torch.randn(40, d, generator=g, dtype=torch.float64)
    centre = torch.zeros(d, dtype=torch.float64)
    centre[:4] = CENTRE

    def f8(c):
        return -((torch.as_tensor(c, dtype=torch.float64) - centre) ** 2).sum(-1)

    def near_decode(codes):  # only codes close to the training codes decode (a VAE's "valid" region)
        dist = torch.cdist(codes.to(torch.float64), z).min(1).values
        return [",".join(f"{v:.8f}" for v in c.tolist()) if r < 1.5 else None for c, r in zip(codes, dist)]

    def sc(s):
        return float(f8(torch.tensor([float(t) for t in s.split(",")])))

    kw = dict(rounds=3, batch=6, seed=0, fit_points=40)
    lines = []
    tr = bo.bayes_opt(sc, near_decode, z, f8(z), trust_region=True, log=lines.append, **kw)
    glob = bo.bayes_opt(sc, near_decode, z, f8(z), **kw)
    assert tr.method == "bayes_opt_trust_region" and len(tr.regions) == 3 and tr.regions[0][0] == 0.8
    local = bo.bayes_opt(sc, near_decode, z, f8(z), trust_region=True, local_fit=True, **kw)
    assert local.method == "bayes_opt_trust_region_local_fit" and local.n_proposed == tr.n_proposed
    assert "trust region side 0.8" in lines[0]
    # each batch lies in its round's box, and the first box holds the best training code
    for r, (_side, box) in enumerate(tr.regions, 1):
        zr = tr.z[tr.round == r]
        assert ((zr >= box[0] - 1e-9) & (zr <= box[1] + 1e-9)).all()
    best = z[int(f8(z).argmax())]
    assert ((best >= tr.regions[0][1][0]) & (best <= tr.regions[0][1][1])).all()
    assert tr.best[-1] >= float(f8(z).max())
    # more of its proposals decode: over five seeds, as one run of 18 proposals is a coin flip either way (and
    # which way it falls moved with the GP library's version)
    runs = [(tr, glob)] + [
        tuple(bo.bayes_opt(sc, near_decode, z, f8(z), trust_region=t, **{**kw, "seed": s}) for t in (True, False))
        for s in range(1, 5)
    ]
    assert sum(t.n_valid for t, _ in runs) > 1.25 * sum(g.n_valid for _, g in runs)
