"""`vaekit report iwae2015`: Burda, Grosse & Salakhutdinov (2015), Table 1, one stochastic layer.

MNIST with dynamic binarization; encoder 784-200-200-50 (tanh), mirrored Bernoulli decoder;
trained as a VAE (k = 1) and as IWAE with k = 5 and k = 50 on the authors' optimiser settings
(Adam, beta1 = 0.99, eps = 1e-4, batch 20, 400 training images held out). Each row trains for a
stated budget of CPU time (`--option budget_minutes=M`, default 60 CPU-minutes of this process, so
a shared machine slows a row but does not shorten it), then reports the test NLL
estimated with k = 5,000 importance samples and the number of active latent units
(Var_x E_q[z_j | x] > 0.01). The paper trains 3,280 epochs in 8 stages of 3^i epochs with the
learning rate falling from 1e-3 to 1e-4; a budgeted run compresses that decay into its budget: a
short probe measures this machine's steps per CPU second, the learning rate then follows a cosine from
1e-3 to 1e-4 over the steps the rest of the budget allows, and the row says how many epochs that was.
"""
from __future__ import annotations

import copy
import dataclasses
import time

import torch

from ..bounds import log_likelihood
from ..data import load
from ..evaluate import active_units
from ..models import build
from ..train import TrainConfig, fit
from . import report

CITATION = "Burda, Grosse & Salakhutdinov 2015, Table 1 (1 stochastic layer)"
ROWS = [("VAE (k=1)", "vae", 1, 86.76, 87.5), ("IWAE (k=5)", "iwae", 5, 85.54, None),
        ("IWAE (k=50)", "iwae", 50, 84.78, 86.0)]


def budget_steps(model, x, cfg: TrainConfig, seconds: float, probe_seconds: float = 20.0) -> int:
    """Steps that fit in `seconds` of training (on cfg.budget_clock), from the rate of a throw-away
    probe run on a copy of `model`."""
    probe = fit(copy.deepcopy(model), x, dataclasses.replace(cfg, max_seconds=min(probe_seconds, seconds / 4)))
    spent = probe.cpu_seconds if cfg.budget_clock == "cpu" else probe.seconds
    return max(1, int(len(probe.steps) / max(spent, 1e-9) * seconds))


@report("iwae2015")
def run(ctx) -> None:
    opts = ctx.options
    budget = float(opts.get("budget_minutes", 0.05 if ctx.quick else 60))
    if ctx.quick:                       # the sklearn digits, tiny networks: checks the machinery only
        train, test = load("digits", "train"), load("digits", "test")
        shape, hidden, latent, nll_k, nll_items = (64,), (64, 64), 8, int(opts.get("nll_k", 200)), len(test)
    else:
        train, test = load("mnist", "train", ctx.data_dir), load("mnist", "test", ctx.data_dir)
        train = train.subset(torch.arange(len(train) - 400))          # the authors hold out 400 images
        shape, hidden, latent = (784,), (200, 200), 50
        nll_k, nll_items = int(opts.get("nll_k", 5000)), int(opts.get("nll_items", len(test)))
    x_train = train.x.reshape(len(train), *shape)
    x_test = torch.bernoulli(test.x.reshape(len(test), *shape)[:nll_items], generator=torch.Generator().manual_seed(0))
    steps_per_epoch = -(-len(x_train) // 20)
    ctx.extra["budget_minutes"] = budget
    for label, name, k, paper, target in ROWS:
        torch.manual_seed(ctx.seed)
        model = build(name, data_shape=shape, latent_dim=latent, hidden=hidden, activation="tanh",
                      likelihood="bernoulli", **({"k": k} if name == "iwae" else {}))
        cfg = TrainConfig(epochs=3280, batch_size=20, lr=1e-3, betas=(0.99, 0.999), eps=1e-4, binarize=True,
                          seed=ctx.seed, progress=False, tensorboard=False, budget_clock="cpu")
        cpu0, t0 = time.process_time(), time.perf_counter()
        probe_s = min(20.0, budget * 15)
        steps = budget_steps(model, x_train, cfg, budget * 60 - probe_s, probe_s)
        cfg = dataclasses.replace(cfg, lr_schedule="cosine", lr_final=1e-4, max_steps=steps,
                                  max_seconds=budget * 60 - (time.process_time() - cpu0))
        ctx.log(f"training {label} for {budget:g} min ({steps} steps planned)")
        hist = fit(model, x_train, cfg)
        train_s, cpu_min = time.perf_counter() - t0, (time.process_time() - cpu0) / 60
        ctx.log(f"{label}: {len(hist.steps)} steps; estimating the NLL with k={nll_k} on {len(x_test)} test images")
        torch.manual_seed(ctx.seed)
        t1 = time.perf_counter()
        nll = float(-log_likelihood(model, x_test, k=nll_k).mean())
        epochs = len(hist.steps) / steps_per_epoch
        schedule = "cosine lr 1e-3 to 1e-4" + ("" if hist.stopped != "max_seconds" else
                                                  f" (cut at step {len(hist.steps)} of {steps} by the time limit)")
        note = (f"{epochs:.1f} epochs in {train_s / 60:.1f} min incl. a {probe_s:.0f}-s speed probe "
                f"({cpu_min:.1f} CPU-min), {schedule} (paper: 3,280 epochs); NLL on {len(x_test)} test images, {time.perf_counter() - t1:.0f} s")
        ok = None if (ctx.quick or target is None) else (nll <= target and cpu_min <= 60)
        ctx.row("digits (quick)" if ctx.quick else "MNIST", f"{label}: test NLL, k={nll_k} (nats)", nll,
                paper=None if ctx.quick else paper, citation=CITATION, seconds=train_s, note=note,
                target="" if target is None else f"<= {target} within 60 CPU-min", met=ok)
        ctx.row("digits (quick)" if ctx.quick else "MNIST", f"{label}: active units (of {latent})",
                active_units(model, x_test), citation=CITATION, note="Var_x E_q[z_j|x] > 0.01")
