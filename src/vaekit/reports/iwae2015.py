"""`vaekit report iwae2015`: Burda, Grosse & Salakhutdinov (2015), Table 1, one stochastic layer.

MNIST with dynamic binarization; encoder 784-200-200-50 (tanh), mirrored Bernoulli decoder;
trained as a VAE (k = 1) and as IWAE with k = 5 and k = 50 on the authors' optimiser settings
(Adam, beta1 = 0.99, eps = 1e-4, batch 20, 400 training images held out). Each row trains for a
stated budget of CPU time (`--option budget_minutes=M`, default 60 CPU-minutes of this process, so
a shared machine slows a row but does not shorten it), then reports the test NLL
estimated with k = 5,000 importance samples and the number of active latent units
(Var_x E_q[z_j | x] > 0.01). The paper trains 3,280 epochs in 8 stages of 3^i epochs with the
learning rate falling from 1e-3 to 1e-4; a budgeted run compresses that decay into its budget: the
learning rate follows a cosine from 1e-3 to 1e-4 over the row's CPU time (`TrainConfig.max_seconds`
drives the schedule), and the row says how many epochs that was.
"""

from __future__ import annotations

import time

import torch

from ..bounds import log_likelihood
from ..data import load
from ..errors import VaekitError
from ..evaluate import active_units
from ..models import build
from ..train import TrainConfig, fit
from . import report

CITATION = "Burda, Grosse & Salakhutdinov 2015, Table 1 (1 stochastic layer)"
ROWS = [
    ("VAE (k=1)", "vae", 1, 86.76, 87.5),
    ("IWAE (k=5)", "iwae", 5, 85.54, None),
    ("IWAE (k=50)", "iwae", 50, 84.78, 86.0),
]


def _data(quick: bool, data_dir, nll_items):
    """(x_train, x_test, shape, hidden, latent): the sklearn digits with tiny networks when quick
    (checks the machinery only), else MNIST less the 400 held-out training images."""
    if quick:
        train, test = load("digits", "train"), load("digits", "test")
        shape, hidden, latent = (64,), (64, 64), 8
    else:
        train, test = load("mnist", "train", data_dir), load("mnist", "test", data_dir)
        train = train.subset(torch.arange(len(train) - 400))  # the authors hold out 400 images
        shape, hidden, latent = (784,), (200, 200), 50
    x_train = train.x.reshape(len(train), *shape)
    x_test = torch.bernoulli(test.x.reshape(len(test), *shape)[:nll_items], generator=torch.Generator().manual_seed(0))
    return x_train, x_test, shape, hidden, latent


def train_row(
    name: str,
    k: int,
    budget: float,
    quick: bool,
    data_dir,
    nll_k: int,
    nll_items,
    seed: int,
    threads: int | None = None,
) -> dict:
    """Train one row of the table for `budget` CPU-minutes and estimate its test NLL; returns the numbers.
    A top-level function, so that rows can run side by side in worker processes."""
    if threads:
        torch.set_num_threads(threads)
    x_train, x_test, shape, hidden, latent = _data(quick, data_dir, nll_items)
    torch.manual_seed(seed)
    model = build(
        name,
        data_shape=shape,
        latent_dim=latent,
        hidden=hidden,
        activation="tanh",
        likelihood="bernoulli",
        **({"k": k} if name == "iwae" else {}),
    )
    cfg = TrainConfig(
        epochs=3280,
        batch_size=20,
        lr=1e-3,
        betas=(0.99, 0.999),
        eps=1e-4,
        binarize=True,
        seed=seed,
        progress=False,
        tensorboard=False,
        budget_clock="cpu",
        lr_schedule="cosine",
        lr_final=1e-4,
        max_seconds=budget * 60,
    )
    cpu0, t0 = time.process_time(), time.perf_counter()
    hist = fit(model, x_train, cfg)
    train_s, cpu_min = time.perf_counter() - t0, (time.process_time() - cpu0) / 60
    torch.manual_seed(seed)
    t1 = time.perf_counter()
    nll = float(-log_likelihood(model, x_test, k=nll_k).mean())
    return {
        "nll": nll,
        "active": active_units(model, x_test),
        "latent": latent,
        "steps": len(hist.steps),
        "epochs": len(hist.steps) / -(-len(x_train) // 20),
        "train_s": train_s,
        "cpu_min": cpu_min,
        "nll_s": time.perf_counter() - t1,
        "n_test": len(x_test),
        "threads": torch.get_num_threads(),
    }


@report("iwae2015")
def run(ctx) -> None:
    """Options: budget_minutes (CPU-minutes per row), nll_k, nll_items, rows (the k of the rows to train,
    e.g. rows=1 or rows=1,50; default all), and workers: rows trained side by side in that many processes
    of one thread each. The budget is CPU time of each row's own process,
    so rows sharing the cores get the same training as rows run one after another, only later."""
    budget = ctx.option("budget_minutes", 0.05 if ctx.quick else 60.0)
    nll_k = ctx.option("nll_k", 200 if ctx.quick else 5000, int)
    nll_items = ctx.option("nll_items", None, int)
    workers = ctx.option("workers", 1, int)
    ks = ctx.option("rows", ",".join(str(r[2]) for r in ROWS), str).split(",")
    rows = [r for r in ROWS if str(r[2]) in ks]
    if len(rows) != len(ks):
        raise VaekitError(
            f"report iwae2015: option rows takes k values from {[r[2] for r in ROWS]}, got {ctx.options['rows']!r}"
        )
    ctx.extra["budget_minutes"] = budget
    jobs = [(name, k, budget, ctx.quick, ctx.data_dir, nll_k, nll_items, ctx.seed) for _, name, k, _, _ in rows]
    ctx.log(f"training {len(rows)} row{'s' if len(rows) > 1 else ''} for {budget:g} CPU-min each, {workers} at a time")
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(train_row, *zip(*jobs), [1] * len(jobs)))
    else:
        results = [train_row(*job) for job in jobs]
    for (label, _, _, paper, target), r in zip(rows, results):
        note = (
            f"{r['epochs']:.1f} epochs in {r['train_s'] / 60:.1f} min "
            f"({r['cpu_min']:.1f} CPU-min, {r['threads']} thread{'s' if r['threads'] > 1 else ''}), "
            f"cosine lr 1e-3 to 1e-4 over the budget "
            f"(paper: 3,280 epochs); NLL on {r['n_test']} test images, {r['nll_s']:.0f} s"
        )
        ctx.log(f"{label}: NLL {r['nll']:.2f}; {note}")
        ok = None if (ctx.quick or target is None) else (r["nll"] <= target and budget <= 60)
        data = "digits (quick)" if ctx.quick else "MNIST"
        ctx.row(
            data,
            f"{label}: test NLL, k={nll_k} (nats)",
            r["nll"],
            paper=None if ctx.quick else paper,
            citation=CITATION,
            seconds=r["train_s"],
            note=note,
            target="" if target is None else f"<= {target} within 60 CPU-min",
            met=ok,
        )
        ctx.row(
            data,
            f"{label}: active units (of {r['latent']})",
            r["active"],
            citation=CITATION,
            note="Var_x E_q[z_j|x] > 0.01",
        )
