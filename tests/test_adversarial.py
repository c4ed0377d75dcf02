"""Games in the training loop: phases, their optimisers and checkpoints; GAN, AAE, priors and match metrics."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from vaekit import adversarial as A
from vaekit import checkpoint
from vaekit.errors import VaekitError
from vaekit.models import build, config_dict, from_config
from vaekit.models.aae import aae_phases
from vaekit.models.gan import gan_phases
from vaekit.train import Phase, TrainConfig, fit

CFG = dict(batch_size=32, progress=False, tensorboard=False, seed=3)


def ring_data(n=512, seed=0):
    torch.manual_seed(seed)
    return A.mixture_on_circle(8, 2.0, 0.05).sample((n,))


def small_gan(**kw):
    torch.manual_seed(1)
    return build("gan", **{"hidden": (16, 16), "disc_hidden": (16, 16), **kw})


def params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


# -- the two losses ------------------------------------------------------------------------------------
def test_losses_at_an_undecided_discriminator_and_accuracies():
    zero = torch.zeros(10)
    d = A.discriminator_loss(zero, zero)
    assert d.value.item() == pytest.approx(2 * math.log(2))  # -log 1/2 on each side
    g = A.generator_loss(zero)
    assert g.value.item() == pytest.approx(math.log(2))
    real, fake = torch.tensor([3.0, -1.0, 2.0, 5.0]), torch.tensor([-2.0, -4.0, 1.0, 0.5])
    d = A.discriminator_loss(real, fake)
    assert d.terms["acc_real"].item() == 0.75 and d.terms["acc_fake"].item() == 0.5
    assert d.terms["disc_acc"].item() == pytest.approx(0.625)
    expected = torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean()
    assert d.value.item() == pytest.approx(expected.item())
    # non-saturating: the generator's gradient does not vanish when D rejects every fake
    logit = torch.tensor([-20.0], requires_grad=True)
    A.generator_loss(logit).value.backward()
    assert logit.grad.item() == pytest.approx(-1.0, abs=1e-6)


# -- distributions and metrics ---------------------------------------------------------------------
def test_mixture_ring_and_gaussian_priors():
    torch.manual_seed(0)
    mix = A.mixture_on_circle(10, 4.0, 0.5)
    z = mix.sample((20000,))
    assert z.shape == (20000, 2)
    assert torch.allclose(z.mean(0), torch.zeros(2), atol=0.1)
    assert z.norm(dim=1).mean().item() == pytest.approx(4.0, abs=0.1)
    assert torch.isfinite(mix.log_prob(z[:5])).all()
    r = A.ring(3.0, 0.2).sample((20000,))
    radius = r.norm(dim=1)
    assert radius.mean().item() == pytest.approx(3.0, abs=0.02) and radius.std().item() == pytest.approx(0.2, abs=0.01)
    angle = torch.atan2(r[:, 1], r[:, 0])
    assert torch.histc(angle, 8, -math.pi, math.pi).min().item() > 2300  # uniform angle: 2500 per bin
    assert A.gaussian(5).sample((3,)).shape == (3, 5)
    with pytest.raises(VaekitError, match="latent_dim must be 2"):
        A.prior("ring", 3)
    with pytest.raises(VaekitError, match="prior must be one of"):
        A.prior("banana", 2)
    with pytest.raises(VaekitError, match="radius > 0"):
        A.ring(0.0, 0.1)


def test_mode_coverage_of_exact_samples_matches_the_chi_square_tail():
    torch.manual_seed(0)
    centres = A.circle_points(8, 2.0)
    x = A.mixture_on_circle(8, 2.0, 0.02).sample((40000,))
    modes, hq = A.mode_coverage(x, centres, 0.02)
    assert modes == 8
    assert hq == pytest.approx(1 - math.exp(-4.5), abs=0.003)  # P(|N(0, I_2)| <= 3) = 1 - e^{-9/2}
    collapsed = centres[3] + 0.02 * torch.randn(1000, 2)
    assert A.mode_coverage(collapsed, centres, 0.02)[0] == 1
    assert A.mode_coverage(torch.zeros(100, 2), centres, 0.02) == (0, 0.0)


def test_mmd_matches_the_closed_form_for_two_gaussians():
    torch.manual_seed(0)
    s, h, shift = 1.0, 1.0, torch.tensor([1.5, 0.0])
    x, y = torch.randn(2000, 2) * s, torch.randn(2000, 2) * s + shift
    # E k(a, b) for a ~ N(m1, s^2 I), b ~ N(m2, s^2 I), k = exp(-|a-b|^2 / 2h^2), in d = 2 dimensions
    c = h * h / (h * h + 2 * s * s)
    exact = 2 * c * (1 - math.exp(-shift.pow(2).sum().item() / (2 * (h * h + 2 * s * s))))
    assert A.mmd2(x, y, bandwidths=(h,)) == pytest.approx(exact, rel=0.1)
    assert abs(A.mmd2(x, torch.randn(2000, 2), bandwidths=(h,))) < 0.01
    with pytest.raises(VaekitError, match="same dimension"):
        A.mmd2(x, torch.randn(10, 3))


# -- phases in the training loop ---------------------------------------------------------------------
def test_gan_logs_every_phase_and_its_discriminator_accuracy():
    gan = small_gan()
    h = fit(gan, ring_data(), TrainConfig(epochs=1, **CFG))
    assert len(h.steps) == 16
    for key in ("disc/loss", "disc/acc_real", "disc/acc_fake", "gen/loss", "gen/fooled"):
        assert len(h.terms[key]) == 16, key
    assert h.loss == h.terms["disc/loss"]  # `loss` is the first phase's
    assert all(0 <= a <= 1 for a in h.terms["disc/acc_fake"])


def test_two_phase_game_resumes_exactly(tmp_path):
    x = ring_data()
    full = small_gan()
    fit(full, x, TrainConfig(epochs=5, max_steps=24, **CFG), tmp_path / "full")
    half = small_gan()
    h1 = fit(half, x, TrainConfig(epochs=5, max_steps=12, **CFG), tmp_path / "half")
    assert h1.stopped == "max_steps"
    _, header = checkpoint.read(tmp_path / "half" / "checkpoint.safetensors")
    assert set(header["optimizer_groups"]) == {"disc", "gen"}  # one optimiser state per phase
    again = small_gan()  # a fresh process would start from other weights: restore them
    torch.manual_seed(99)
    fit(again, x, TrainConfig(epochs=5, max_steps=24, **CFG), tmp_path / "half", resume=True)
    a, b = params(full), params(again)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_each_phase_optimiser_changes_only_its_own_parameters():
    x = ring_data()
    gan = small_gan()
    before = params(gan)
    # the generator's loss back-propagates through the discriminator; with the discriminator's lr at 0
    # nothing may change it
    frozen_disc = [Phase("disc", gan_phases()[0].loss, lambda m: m.discriminator.parameters(), lr=0.0), gan_phases()[1]]
    fit(gan, x, TrainConfig(epochs=1, **CFG), objective=frozen_disc)
    after = params(gan)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("discriminator."))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))

    aae = build(
        "aae",
        data_shape=(6,),
        latent_dim=2,
        hidden=(8,),
        disc_hidden=(8,),
        prior="mixture",
        likelihood="gaussian",
        sigma=1.0,
    )
    before = params(aae)
    phases = aae_phases()
    phases[2] = Phase("gen", phases[2].loss, phases[2].parameters, lr=0.0)  # the encoder moves by rec only
    no_rec = [Phase("rec", phases[0].loss, phases[0].parameters, lr=0.0), phases[1], phases[2]]
    fit(aae, torch.randn(64, 6), TrainConfig(epochs=1, **CFG), objective=no_rec)
    after = params(aae)
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"discriminator"}


def test_phase_objectives_are_checked_and_checkpoints_refuse_other_optimisers(tmp_path):
    x = ring_data(64)
    gan = small_gan()
    with pytest.raises(VaekitError, match="distinct identifiers"):
        fit(gan, x, TrainConfig(epochs=1, **CFG), objective=[gan_phases()[0], gan_phases()[0]])
    with pytest.raises(VaekitError, match="sequence of Phase"):
        fit(gan, x, TrainConfig(epochs=1, **CFG), objective=["disc"])
    fit(gan, x, TrainConfig(epochs=1, **CFG), tmp_path / "run")
    opt = torch.optim.Adam(gan.parameters())
    with pytest.raises(VaekitError, match="phases .*'disc', 'gen'.* but the run has one optimizer"):
        checkpoint.restore(tmp_path / "run" / "checkpoint.safetensors", gan, opt)
    with pytest.raises(VaekitError, match="but the run has optimizers of phases"):
        checkpoint.restore(tmp_path / "run" / "checkpoint.safetensors", gan, {"d": opt})


def test_nonfinite_phase_is_caught_and_named(tmp_path):
    from vaekit.errors import NonFiniteLossError

    calls = []

    def bad(model, x, step):  # the generator's third call is NaN
        calls.append(step)
        loss = gan_phases()[1].loss(model, x, step)
        return type(loss)(loss.value * float("nan") if len(calls) == 3 else loss.value, loss.terms)

    phases = [gan_phases()[0], Phase("gen", bad, lambda m: m.generator.parameters())]
    with pytest.raises(NonFiniteLossError):
        fit(small_gan(), ring_data(), TrainConfig(epochs=1, **CFG), tmp_path / "r", objective=phases)
    assert '"phase": "gen"' in (tmp_path / "r" / "nonfinite_batch.json").read_text()
    calls.clear()
    h = fit(small_gan(), ring_data(), TrainConfig(epochs=1, on_nonfinite="skip", **CFG), objective=phases)
    assert len(h.steps) == 15 and len(h.terms["gen/loss"]) == 15


# -- the adversarial auto-encoder ----------------------------------------------------------------------
def test_aae_config_checks_and_round_trip(tmp_path):
    with pytest.raises(VaekitError, match="latent_dim must be 2"):
        build("aae", data_shape=(6,), latent_dim=3, prior="ring")
    with pytest.raises(VaekitError, match="prior must be one of"):
        build("aae", data_shape=(6,), prior="uniform")
    torch.manual_seed(0)
    model = build("aae", data_shape=(4, 4), latent_dim=2, hidden=(16,), disc_hidden=(16,), prior="ring")
    h = fit(model, torch.rand(96, 4, 4), TrainConfig(epochs=2, **CFG), tmp_path / "aae")
    assert {"rec/loss", "disc/acc_real", "disc/acc_fake", "gen/fooled"} <= set(h.terms)
    assert h.loss == h.terms["rec/loss"]
    again = checkpoint.load_model(tmp_path / "aae")
    assert config_dict(again) == config_dict(model) == config_dict(from_config(config_dict(model)))
    assert torch.equal(again.embed(torch.rand(3, 4, 4) * 0 + 0.5), model.embed(torch.full((3, 4, 4), 0.5)))
    assert model.sample(5).shape == (5, 4, 4)
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    assert torch.equal(model.sample(3, generator=g()), model.sample(3, generator=g()))


def test_aae_codes_move_towards_the_prior_on_two_blobs():
    """Data in two blobs: a plain auto-encoder's codes sit wherever; the AAE's match N(0, I) better."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(256, 6) * 0.3 + 2, torch.randn(256, 6) * 0.3 - 2])
    common = dict(data_shape=(6,), latent_dim=2, hidden=(32,), likelihood="gaussian", sigma=0.5)
    cfg = TrainConfig(epochs=60, batch_size=64, lr=3e-3, progress=False, tensorboard=False)
    torch.manual_seed(0)
    ae = build("autoencoder", **common)
    fit(ae, x, cfg)
    torch.manual_seed(0)
    aae = build("aae", **common, disc_hidden=(32, 32))
    fit(aae, x, cfg)
    ref = A.gaussian(2).sample((512,))
    assert A.mmd2(aae.embed(x), ref) < 0.5 * A.mmd2(ae.embed(x), ref)


# -- DDP: phases under torchrun (gloo) ----------------------------------------------------------------
SCRIPT = textwrap.dedent("""
    import sys, torch
    from vaekit import adversarial as A, distributed
    from vaekit.models import build
    from vaekit.models.aae import aae_phases
    from vaekit.train import Phase, TrainConfig, fit

    def disc(model, x, step):      # deterministic "prior" samples, so 1 and 2 processes can be compared
        z_real = 0.5 * x[:, :2] + 1
        return A.discriminator_loss(model.discriminator(z_real), model.discriminator(model.encode(x).mean.detach()))

    rec, _, _ = aae_phases()
    torch.manual_seed(0)
    model = build("aae", data_shape=(6,), latent_dim=2, hidden=(8,), disc_hidden=(8,), likelihood="gaussian", sigma=1.0)
    x = torch.randn(128, 6, generator=torch.Generator().manual_seed(1))
    fit(model, x, TrainConfig(epochs=2, batch_size=32, progress=False, tensorboard=False), sys.argv[1],
        objective=[rec, Phase("disc", disc, lambda m: m.discriminator.parameters(), lr=3e-3)])
    distributed.teardown()
""")


@pytest.mark.slow
def test_phases_under_ddp_equal_one_process(tmp_path):
    script = tmp_path / "game.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=300
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(script),
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    w1, _ = checkpoint.read(tmp_path / "one" / "checkpoint.safetensors")
    w2, _ = checkpoint.read(tmp_path / "two" / "checkpoint.safetensors")
    for k in w1:
        if k.startswith("model."):
            assert torch.allclose(w1[k], w2[k], atol=1e-5, rtol=1e-4), k


# -- the report ---------------------------------------------------------------------------------------------
def test_quick_report_writes_rows_and_figures(tmp_path):
    if not os.environ.get("VAEKIT_DATA"):
        pytest.skip("VAEKIT_DATA is not set: MNIST is needed for the AAE part")
    from vaekit.reports import run_report

    ctx = run_report("adversarial", out_root=tmp_path / "reports", quick=True, run_root=str(tmp_path / "runs"))
    out = tmp_path / "reports" / "adversarial"
    for f in ("gan_snapshots.png", "aae_latent.png", "disc_accuracy.png", "results.json", "index.html"):
        assert (out / f).is_file(), f
    metrics = [r.metric for r in ctx.rows]
    assert any("modes covered" in m for m in metrics) and any("high-quality" in m for m in metrics)
    assert sum("MMD^2" in m for m in metrics) == 6  # AE vs 3 priors, each AAE vs its prior
    assert set(ctx.extra["prior_match"]) == {"ae", "gaussian", "mixture", "ring"}
    # every number is a mean over seeds (2 in quick mode), with its spread, the thread count and the versions
    assert ctx.extra["gan"]["seeds"] == [0, 1] and len(ctx.extra["gan"]["modes"]["per_seed"]) == 2
    acc = ctx.extra["prior_match"]["ring"]["ring"]["classifier_acc"]
    assert acc["min"] <= acc["mean"] <= acc["max"] and acc["mean"] == pytest.approx(np.mean(acc["per_seed"]))
    assert ctx.extra["threads"] >= 1 and ctx.extra["versions"]["torch"] == torch.__version__
    assert all("over 2 seeds" in r.note for r in ctx.rows if r.ours is not None)


def test_quick_report_reruns_to_the_same_numbers(tmp_path):
    """A rerun (models retrained from scratch in a fresh run folder) gives the same rows, bit for bit."""
    if not os.environ.get("VAEKIT_DATA"):
        pytest.skip("VAEKIT_DATA is not set: MNIST is needed for the AAE part")
    from vaekit.reports import run_report

    runs = [
        run_report(
            "adversarial",
            out_root=tmp_path / f"reports{i}",
            quick=True,
            seeds=2,
            gan_steps=60,
            steps=20,
            run_root=str(tmp_path / f"runs{i}"),
        )
        for i in (1, 2)
    ]
    assert [(r.metric, r.ours) for r in runs[0].rows] == [(r.metric, r.ours) for r in runs[1].rows]
    assert runs[0].extra["prior_match"] == runs[1].extra["prior_match"]
    with pytest.raises(VaekitError, match="seeds must be >= 1"):
        run_report("adversarial", out_root=tmp_path / "reports3", quick=True, seeds=0)


def test_sample_draws_from_the_models_own_prior_and_is_reproducible():
    from vaekit.models import build

    torch.manual_seed(0)
    model = build("aae", data_shape=(4,), latent_dim=2, hidden=(8,), prior="ring")
    seen = []
    model.generate = lambda z: seen.append(z) or z  # record the codes sample() decodes
    model.sample(4000, generator=torch.Generator().manual_seed(1))
    r = seen[-1].norm(dim=1)  # a ring prior: radii near its radius, none near 0
    ring = model.prior()
    assert abs(float(r.mean()) - ring.radius) < 0.1 and float(r.min()) > 0.3 * ring.radius
    a = model.sample(3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, model.sample(3, generator=torch.Generator().manual_seed(2)))
    assert not torch.equal(model.sample(3), model.sample(3))  # no generator: fresh draws each call


# -- sampling a GAN: G(eps) for eps ~ N(0, I), from Python and from the command line ------------------------
def test_gan_samples_generate_standard_normal_noise_reproducibly():
    model = small_gan(noise_dim=3)
    seen = []
    generate = model.generate
    model.generate = lambda eps: seen.append(eps) or generate(eps)  # record the noise sample() maps
    state = torch.get_rng_state()
    a = model.sample(4000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)  # a generator leaves the global RNG alone
    eps = seen[-1]
    assert eps.shape == (4000, 3) and a.shape == (4000, 2)
    assert eps.mean(0).abs().max() < 0.1 and (eps.std(0) - 1).abs().max() < 0.1  # N(0, I): 4000 draws
    assert torch.equal(a, model.sample(4000, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(a[:3], model.sample(3, generator=torch.Generator().manual_seed(6)))
    assert not torch.equal(model.sample(3), model.sample(3))  # no generator: fresh draws each call


def test_vaekit_sample_on_a_gan_run(tmp_path, capsys):
    import numpy as np

    from vaekit.cli import main

    run = tmp_path / "gan"
    main(
        [
            "fit",
            str(run),
            "--model",
            "gan",
            "--data",
            "digits",
            "--max-steps",
            "2",
            "--batch-size",
            "32",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    main(["sample", str(run), "-n", "9", "--seed", "4", "--out", str(tmp_path / "a.npy")])
    main(["sample", str(run), "-n", "9", "--seed", "4", "--out", str(tmp_path / "b.npy")])
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (9, 8, 8) and np.isfinite(a).all()  # 8x8 digits
    np.testing.assert_array_equal(a, b)  # the seed fixes the draws
    main(["sample", str(run), "-n", "9", "--seed", "5", "--out", str(tmp_path / "c.npy")])
    assert not np.array_equal(a, np.load(tmp_path / "c.npy"))
    main(["sample", str(run), "-n", "4"])  # default: an image grid in the run
    assert (run / "samples.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # no encoder: no codes to fit a sampler on
        main(["sample", str(run), "--sampler", "gmm", "--out", str(tmp_path / "d.npy")])
    out = capsys.readouterr()
    assert e.value.code == 2 and "infer no codes from items" in out.err and "--sampler prior" in out.err
    assert out.out == ""  # refused before a "fitting the gmm sampler" line
