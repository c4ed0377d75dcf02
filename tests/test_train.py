"""The training loop: exact resume, NaN guard, early stopping, run-directory safety."""

import csv
import json
import re

import pytest
import torch

import vaekit
from vaekit import checkpoint
from vaekit.data import load
from vaekit.errors import NonFiniteLossError, VaekitError
from vaekit.train import TrainConfig, fit, lr_at

FAST = dict(progress=False, tensorboard=False)


@pytest.fixture(scope="module")
def digits():
    return load("digits").x[:400]


def small_vae(seed=0, **kw):
    torch.manual_seed(seed)
    return vaekit.build("vae", data_shape=(8, 8), latent_dim=2, hidden=(32,), **kw)


def losses(run_dir):
    with open(run_dir / "log.csv") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f) if r.get("loss")]


def test_resume_equals_uninterrupted_run(tmp_path, digits):
    cfg = TrainConfig(epochs=4, batch_size=64, checkpoint_every=5, **FAST)
    full = fit(small_vae(), digits, cfg, tmp_path / "full")
    # interrupted after 13 steps (mid-epoch, between checkpoints), then resumed from step 10
    fit(
        small_vae(),
        digits,
        TrainConfig(epochs=4, batch_size=64, checkpoint_every=5, max_steps=13, **FAST),
        tmp_path / "cut",
    )
    meta = checkpoint.restore(tmp_path / "cut" / "checkpoint.safetensors", small_vae())
    assert meta["step"] == 13  # max_steps saves where it stopped
    # simulate a kill after step 12: roll the checkpoint back to the one written at step 10
    fit(
        small_vae(),
        digits,
        TrainConfig(epochs=4, batch_size=64, checkpoint_every=5, max_steps=10, **FAST),
        tmp_path / "cut",
        overwrite=True,
    )
    resumed = fit(small_vae(seed=99), digits, cfg, tmp_path / "cut", resume=True)
    assert resumed.steps[0] == 11
    assert losses(tmp_path / "cut") == losses(tmp_path / "full")  # bit-exact, no gap, no duplicate
    assert full.loss[10:] == resumed.loss


def test_nonfinite_loss_raises_with_step_and_batch(tmp_path, digits, monkeypatch):
    model = small_vae()
    real = model.loss

    def poisoned(x, step=0):
        out = real(x, step)
        if step == 3:
            out.value = out.value * float("nan")
        return out

    monkeypatch.setattr(model, "loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 3") as e:
        fit(model, digits, TrainConfig(epochs=1, batch_size=64, **FAST), tmp_path / "r")
    saved = json.loads((tmp_path / "r" / "nonfinite_batch.json").read_text())
    assert saved["step"] == 3 and saved["batch_index"] == e.value.batch_index and len(saved["batch_index"]) == 64


def test_nonfinite_skip_policy_finishes(digits, monkeypatch):
    model = small_vae()
    real, calls = model.loss, []

    def poisoned(x, step=0):
        calls.append(step)
        out = real(x, step)
        if len(calls) == 3:  # the third batch gives inf
            out.value = out.value * float("inf")
        return out

    monkeypatch.setattr(model, "loss", poisoned)
    h = fit(model, digits, TrainConfig(epochs=1, batch_size=64, on_nonfinite="skip", **FAST))
    assert len(calls) == 7 and len(h.loss) == 6  # 7 batches, one skipped
    assert all(torch.isfinite(torch.tensor(h.loss)))


def test_early_stopping_keeps_best(tmp_path, digits):
    h = fit(
        small_vae(),
        digits,
        TrainConfig(epochs=50, batch_size=64, lr=5e-2, val_fraction=0.25, patience=2, **FAST),
        tmp_path / "r",
    )
    assert h.stopped == "early_stopping" and len(h.val) < 50
    best = json.loads(checkpoint.read(tmp_path / "r" / "best.safetensors")[1]["meta"]["best_val"].__repr__())
    assert best == pytest.approx(min(h.val))


def test_a_run_stopped_inside_an_epoch_validates_its_last_weights(tmp_path, digits):
    # 300 training items in batches of 10: one epoch is 30 steps; the budget stops the run after 45
    cfg = TrainConfig(epochs=5, batch_size=10, lr=1e-2, val_fraction=0.25, max_steps=45, **FAST)
    h = fit(small_vae(), digits, cfg, tmp_path / "r")
    assert h.stopped == "max_steps" and len(h.val) == 2  # the end of epoch 1, then the stop at step 45
    meta = checkpoint.read(tmp_path / "r" / "best.safetensors")[1]["meta"]
    assert meta["best_val"] == pytest.approx(min(h.val))
    assert h.val[1] < h.val[0] and meta["step"] == 45  # the last weights are the best: best.safetensors holds them


def test_training_lowers_the_loss_and_logs(tmp_path, digits):
    h = fit(
        small_vae(),
        digits,
        TrainConfig(epochs=5, batch_size=32, binarize=True, progress=False, tensorboard=True),
        tmp_path / "r",
    )
    assert sum(h.loss[-10:]) / 10 < sum(h.loss[:10]) / 10
    assert any((tmp_path / "r" / "tb").iterdir())
    rows = list(csv.DictReader(open(tmp_path / "r" / "log.csv")))
    assert {"step", "loss", "elbo", "kl", "rec"} <= set(rows[0])


def test_kl_warmup_and_lr_schedules():
    m = small_vae(beta=2.0, warmup_steps=10)
    assert m.beta_at(0) == 0 and m.beta_at(5) == 1.0 and m.beta_at(50) == 2.0
    cfg = TrainConfig(lr=1.0, lr_schedule="cosine", lr_final=0.0)
    assert lr_at(cfg, 0, 100) == 1.0 and lr_at(cfg, 50, 100) == pytest.approx(0.5) and lr_at(cfg, 100, 100) < 1e-12
    assert lr_at(TrainConfig(lr=1.0, lr_schedule="step"), 80, 100) == pytest.approx(0.01)
    # a time budget further along than the steps drives the schedule
    assert lr_at(cfg, 10, 100, spent=0.5) == pytest.approx(0.5) and lr_at(cfg, 60, 100, spent=0.5) < 0.5
    assert lr_at(cfg, 10, 100, spent=1.2) < 1e-12


def test_a_time_budget_ends_the_learning_rate_schedule(digits):
    """A run cut by max_seconds still anneals: the cosine runs over the budget, not the planned epochs."""
    cfg = TrainConfig(
        epochs=10_000, batch_size=16, lr=1e-2, lr_schedule="cosine", lr_final=1e-4, max_seconds=1.0, **FAST
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # short steps: on a loaded machine two threads make a step of this tiny net slow
    try:
        h = fit(small_vae(), digits, cfg)
    finally:
        torch.set_num_threads(threads)
    lr = h.terms["lr"]
    assert h.stopped == "max_seconds" and lr[0] == pytest.approx(1e-2)
    # annealed with the budget (by steps, 10,000 planned epochs, it would still be near 1e-2); the last step's rate
    # is set before that step, so how close it gets to lr_final depends on how long a step takes
    assert all(a >= b for a, b in zip(lr, lr[1:])) and lr[-1] < 1e-3


def test_run_directory_is_never_clobbered(tmp_path, digits):
    fit(small_vae(), digits, TrainConfig(epochs=1, **FAST), tmp_path / "r")
    with pytest.raises(VaekitError, match="not empty"):
        fit(small_vae(), digits, TrainConfig(epochs=1, **FAST), tmp_path / "r")
    other = vaekit.build("autoencoder", data_shape=(8, 8), latent_dim=2, hidden=(32,))
    with pytest.raises(VaekitError, match=r"different model \(vae; this one is autoencoder\)"):
        fit(other, digits, TrainConfig(epochs=2, **FAST), tmp_path / "r", resume=True)
    wider = vaekit.build("vae", data_shape=(8, 8), latent_dim=2, hidden=(16,))
    with pytest.raises(VaekitError, match=r"holds a vae with hidden \(32,\), this model has \(16,\)"):
        fit(wider, digits, TrainConfig(epochs=2, **FAST), tmp_path / "r", resume=True)


def test_overwrite_replaces_the_runs_files_and_keeps_others(tmp_path, digits):
    fit(small_vae(), digits, TrainConfig(epochs=1, val_fraction=0.25, progress=False, tensorboard=True), tmp_path / "r")
    (tmp_path / "r" / "notes.txt").write_text("mine")
    assert {"best.safetensors", "tb"} <= {p.name for p in (tmp_path / "r").iterdir()}
    fit(small_vae(), digits, TrainConfig(epochs=1, batch_size=200, **FAST), tmp_path / "r", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "checkpoint.safetensors",
        "config.json",
        "log.csv",
        "notes.txt",
    ]
    assert len(losses(tmp_path / "r")) == 2  # 400 items in batches of 200: the new run's log only


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("lr", -1.0, "lr must be a finite number > 0, got -1.0"),
        ("lr", float("nan"), "lr must be a finite number > 0, got nan"),
        ("lr", float("inf"), "lr must be a finite number > 0"),
        ("batch_size", 0, "batch_size must be an integer >= 1"),
        ("epochs", 2.5, "epochs must be an integer >= 0"),
        ("max_seconds", float("nan"), "max_seconds must be None or a finite number > 0"),
        ("patience", 0, "patience must be None or an integer >= 1"),
        ("grad_clip", -1.0, "grad_clip"),
        ("betas", (0.9, 1.0), "betas must be two numbers in [0, 1)"),
        ("checkpoint_every", -5, "checkpoint_every"),
        ("val_fraction", 1.0, "val_fraction"),
        ("precision", "half", "precision must be float32 or bfloat16, got 'half'"),
    ],
)
def test_train_config_refuses_bad_values_naming_the_field(field, value, match):
    with pytest.raises(VaekitError, match=re.escape(f"train config field {match}")):
        TrainConfig(**{field: value})


def test_a_start_that_fails_writes_no_run_directory(tmp_path, digits):
    with pytest.raises(VaekitError, match="device"):
        fit(small_vae(), digits, TrainConfig(epochs=1, device="no-such-device", **FAST), tmp_path / "runs" / "r")
    assert not (tmp_path / "runs").exists()


def test_the_run_directory_appears_with_a_step_0_checkpoint_to_resume_from(tmp_path, digits):
    """epochs=0 writes the initial checkpoint; resuming from it is the same as having run straight through."""
    h = fit(small_vae(), digits, TrainConfig(epochs=0, batch_size=64, **FAST), tmp_path / "r", meta={"spec": "mine"})
    assert h.loss == [] and checkpoint.read(tmp_path / "r" / "checkpoint.safetensors")[1]["meta"]["step"] == 0
    fit(small_vae(seed=5), digits, TrainConfig(epochs=2, batch_size=64, **FAST), tmp_path / "r", resume=True)
    fit(small_vae(), digits, TrainConfig(epochs=2, batch_size=64, **FAST), tmp_path / "s")
    assert losses(tmp_path / "r") == losses(tmp_path / "s")
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["data"] == {"spec": "mine"} and saved["train"]["epochs"] == 2  # resume keeps the data record


def test_the_log_is_written_through_a_temp_file_the_sweep_removes(tmp_path, digits, monkeypatch):
    import fnmatch
    import os

    renames, real = [], os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renames.append((str(src), str(dst))), real(src, dst))[1])
    fit(small_vae(), digits, TrainConfig(epochs=1, **FAST), tmp_path / "r")
    temps = [os.path.basename(src) for src, dst in renames if os.path.basename(dst) == "log.csv"]
    assert temps and all(fnmatch.fnmatch(t, ".*.tmp") for t in temps)  # as init_run_dir sweeps: .*.tmp


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(0, 8, 8), "empty"),
        (torch.full((4, 8, 8), float("nan")), "NaN"),
        (torch.zeros(4, 7, 8), "data_shape"),
        (torch.zeros(4), "rank"),
        (["a", "b"], "numbers"),
    ],
)
def test_bad_training_data(bad, match):
    with pytest.raises(VaekitError, match=match):
        fit(small_vae(), bad, TrainConfig(epochs=1, **FAST))


def test_objective_argument_replaces_the_models_loss(digits):
    from vaekit import bounds

    seen = []

    def iwae3(model, x, step):
        seen.append(step)
        return bounds.iwae_bound(model, x, k=3)

    h = fit(small_vae(), digits, TrainConfig(epochs=1, batch_size=100, **FAST), objective=iwae3)
    assert seen == [0, 1, 2, 3] and len(h.loss) == 4


def test_time_budget_stops_and_checkpoints(tmp_path, digits):
    h = fit(small_vae(), digits, TrainConfig(epochs=10_000, batch_size=16, max_seconds=0.5, **FAST), tmp_path / "r")
    assert h.stopped == "max_seconds" and 0 < len(h.loss) < 10_000 * 25
    assert checkpoint.read(tmp_path / "r" / "checkpoint.safetensors")[1]["meta"]["step"] == len(h.loss)


def test_cpu_time_budget_stops_on_process_cpu_seconds(digits):
    h = fit(small_vae(), digits, TrainConfig(epochs=10_000, batch_size=16, max_seconds=0.5, budget_clock="cpu", **FAST))
    assert h.stopped == "max_seconds" and h.cpu_seconds >= 0.5 and h.seconds > 0
    with pytest.raises(VaekitError, match="budget_clock"):
        TrainConfig(budget_clock="gpu")


def test_on_step_sees_every_logged_row_with_its_cpu_seconds(tmp_path, digits):
    seen = []
    h = fit(
        small_vae(),
        digits,
        TrainConfig(epochs=1, batch_size=100, **FAST),
        tmp_path / "r",
        on_step=lambda step, row: seen.append((step, row)),
    )
    assert [s for s, _ in seen] == h.steps == [1, 2, 3, 4]
    assert [r["loss"] for _, r in seen] == h.loss and {"elbo", "kl", "lr"} <= set(seen[0][1])
    cpu = [r["cpu_seconds"] for _, r in seen]
    assert cpu == h.clock and all(0 <= a <= b for a, b in zip(cpu, cpu[1:]))
    logged = [float(r["cpu_seconds"]) for r in csv.DictReader((tmp_path / "r" / "log.csv").read_text().splitlines())]
    assert logged == cpu


def test_cpu_seconds_count_on_across_a_resume(tmp_path, digits):
    cfg = dict(batch_size=100, **FAST)
    fit(small_vae(), digits, TrainConfig(epochs=1, **cfg), tmp_path / "r")
    spent = checkpoint.read(tmp_path / "r" / "checkpoint.safetensors")[1]["meta"]["cpu_seconds"]
    h = fit(small_vae(), digits, TrainConfig(epochs=2, **cfg), tmp_path / "r", resume=True)
    assert spent > 0 and h.steps[0] == 5 and h.clock[0] >= spent


def test_checkpoints_hold_an_optimiser_per_phase_and_older_single_optimiser_ones_resume(tmp_path, digits):
    cfg = dict(batch_size=100, **FAST)
    fit(small_vae(), digits, TrainConfig(epochs=1, **cfg), tmp_path / "r")
    header = checkpoint.read(tmp_path / "r" / "checkpoint.safetensors")[1]
    assert set(header["optimizer_groups"]) == {"loss"}  # a plain objective is the one phase "loss"
    full = fit(small_vae(), digits, TrainConfig(epochs=2, **cfg))
    # an older checkpoint held the one optimiser by itself: rewrite the step-4 checkpoint that way
    model = small_vae()
    opt = torch.optim.Adam(model.parameters())
    meta = checkpoint.restore(tmp_path / "r" / "checkpoint.safetensors", model, {"loss": opt}, rng=True)
    meta.pop("cpu_seconds")
    checkpoint.save(tmp_path / "r" / "checkpoint.safetensors", model, opt, **meta)
    assert isinstance(checkpoint.read(tmp_path / "r" / "checkpoint.safetensors")[1]["optimizer_groups"], list)
    resumed = fit(small_vae(), digits, TrainConfig(epochs=2, **cfg), tmp_path / "r", resume=True)
    assert resumed.loss == full.loss[4:]


def test_bfloat16_training_follows_float32_and_keeps_float32_weights(tmp_path, digits):
    """precision="bfloat16" computes the step under autocast: the first loss is float32's within bfloat16's
    rounding, the loss falls as fast, and the weights, the checkpoint and validation stay float32."""
    runs = {}
    for precision in ("float32", "bfloat16"):
        cfg = TrainConfig(epochs=40, batch_size=100, lr=3e-3, seed=0, precision=precision, val_fraction=0.25, **FAST)
        fit(small_vae(), digits, cfg, run_dir=tmp_path / precision)
        runs[precision] = losses(tmp_path / precision)
    f32, b16 = runs["float32"], runs["bfloat16"]
    assert abs(b16[0][1] - f32[0][1]) < 0.02 * abs(f32[0][1])  # the same first batch and weights
    assert b16[-1][1] < 0.8 * b16[0][1] and abs(b16[-1][1] - f32[-1][1]) < 0.1 * abs(f32[-1][1])
    model = checkpoint.load_model(tmp_path / "bfloat16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert json.loads((tmp_path / "bfloat16" / "config.json").read_text())["train"]["precision"] == "bfloat16"
