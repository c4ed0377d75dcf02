"""Side by side with Pythae: the same VAE trained on MNIST by vaekit, by Pythae and by a plain PyTorch loop.

Model: Pythae's default MLP VAE (`Encoder_VAE_MLP` / `Decoder_AE_MLP`: 784-512-16, ReLU, sigmoid
output with a BCE loss), and vaekit's `build("vae", hidden=(512,), latent_dim=16)` with a Bernoulli
likelihood -- the same layers and parameter count. Data: MNIST train (60,000) and test (10,000),
binarized once with a fixed seed (the same 0/1 images for everybody). Adam (lr 1e-3, betas
0.9/0.999, eps 1e-8), batch 100, the same epochs, the same thread count, all in one process.

Timing: the three trainings run interleaved (pythae, vaekit, plain, pythae, ...); every epoch is timed
(Pythae: a TrainingCallback at epoch begin/end; vaekit: the start of each epoch's batch permutation;
plain: its own loop) and the whole call (set-up, saving) is timed too, in wall seconds and in CPU seconds
of this process (on a shared machine the CPU time is the steadier of the two). The speed ratios are the
median Pythae epoch over the median vaekit epoch; the target is judged on wall time.

ELBO: the test ELBO of every trained model is computed by ONE function (`test_elbo`) from its
encoder's (mean, log std) and its decoder's logits, with the same noise for all models, so the
number means the same thing for each. Each library's own loss on the test set is recorded as a cross-check.

Run it with an interpreter that has pythae (kept out of vaekit's dependencies), e.g.

    python -m venv --system-site-packages $PYTHAE_VENV
    $PYTHAE_VENV/bin/pip install -c constraints.txt pythae
    VAEKIT_DATA=DATA_DIR $PYTHAE_VENV/bin/python bench/vs_pythae.py [--epochs 3] [--repeats 2]

Without pythae it says so and compares vaekit with the plain loop only.  `--quick` (6,000 training and
1,000 test images) and `--no-write` print the table without touching bench/results.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import vaekit
import vaekit.train
from vaekit.train import TrainConfig, fit

from common import median, shown_path, write

try:
    from importlib.metadata import version as _version

    import pythae
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE as PythaeVAE
    from pythae.models import VAEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    PYTHAE = _version("pythae")
except ImportError as e:  # compare with the plain loop only
    pythae, PYTHAE, PYTHAE_ERROR = None, None, f"{type(e).__name__}: {e}"


# --- one ELBO for every model -------------------------------------------------------------------


@torch.no_grad()
def test_elbo(encode, logits, x, n_samples=10, seed=0, batch_size=1000):
    """Mean ELBO (nats per image) of binary images x (N, 784) under a Gaussian q(z|x), N(0, I) prior and a
    Bernoulli decoder: E_q[log p(x|z)] (n_samples draws) - KL(q || p) (closed form).

    encode(x) -> (mean, log_std), each (B, latent); logits(z) -> (..., B, 784) Bernoulli logits.
    The standard-normal draws depend only on (seed, batch), so every model sees the same noise."""
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for xb in x.split(batch_size):
        mu, log_std = encode(xb)
        eps = torch.randn(n_samples, *mu.shape, generator=g)
        z = mu + log_std.exp() * eps
        rec = (
            -F.binary_cross_entropy_with_logits(logits(z), xb.expand(n_samples, *xb.shape), reduction="none")
            .sum(-1)
            .mean(0)
        )
        kl = 0.5 * (mu.pow(2) + (2 * log_std).exp() - 1).sum(-1) - log_std.sum(-1)
        total += float((rec - kl).sum())
    return total / len(x)


def vaekit_parts(model):
    def encode(x):
        q = model.encode(x)
        return q.mean, q.stddev.log()

    return encode, lambda z: model.decode(z).base_dist.logits


def pythae_parts(model):
    """Pythae's default decoder ends in nn.Sequential(Linear, Sigmoid); its logits are the Linear's output."""
    enc, dec = model.encoder, model.decoder
    last = dec.layers[-1]
    if not (isinstance(last, nn.Sequential) and isinstance(last[-1], nn.Sigmoid)):
        raise RuntimeError("expected pythae's Decoder_AE_MLP (last layer Linear + Sigmoid)")

    def encode(x):
        out = enc(x)
        return out.embedding, 0.5 * out.log_covariance

    def logits(z):
        lead = z.shape[:-1]
        h = z.reshape(-1, z.shape[-1])
        for layer in dec.layers[:-1]:
            h = layer(h)
        return last[:-1](h).reshape(*lead, -1)

    return encode, logits


class PlainVAE(nn.Module):
    """The reference: two nn.Sequential nets, nothing else."""

    def __init__(self, hidden=512, latent=16):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def encode(self, x):
        mu, log_std = self.enc(x).chunk(2, -1)
        return mu, log_std

    def logits(self, z):
        return self.dec(z)


def clock():
    """(wall seconds, CPU seconds of this process): the machine is shared, so CPU time is kept beside wall time."""
    return time.perf_counter(), time.process_time()


def spans(starts, ends):
    """Per-epoch (wall, cpu) durations from lists of clock() readings."""
    return [b[0] - a[0] for a, b in zip(starts, ends)], [b[1] - a[1] for a, b in zip(starts, ends)]


# --- the three trainings ------------------------------------------------------------------------


def train_vaekit(x, args, seed):
    torch.manual_seed(seed)
    t0 = clock()
    model = vaekit.build("vae", data_shape=(784,), latent_dim=args.latent, hidden=(args.hidden,))
    starts = []
    real = vaekit.train.epoch_batches

    def timed_batches(*a, **kw):  # called once at the start of every epoch
        starts.append(clock())
        return real(*a, **kw)

    vaekit.train.epoch_batches = timed_batches
    try:
        fit(
            model,
            x,
            TrainConfig(
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=seed, progress=False, tensorboard=False
            ),
        )
    finally:
        vaekit.train.epoch_batches = real
    t1 = clock()
    own = evaluate_own_vaekit(model, args.x_test)
    return model, vaekit_parts(model), spans(starts, starts[1:] + [t1]), spans([t0], [t1]), own


@torch.no_grad()
def evaluate_own_vaekit(model, x):
    torch.manual_seed(1)
    return float(sum(float(model.loss(xb).value) * len(xb) for xb in x.split(1000)) / len(x))


class EpochTimer(TrainingCallback if pythae else object):
    def __init__(self):
        self.begin, self.end = [], []

    def on_epoch_begin(self, training_config, **kw):
        self.begin.append(clock())

    def on_epoch_end(self, training_config, **kw):
        self.end.append(clock())


def train_pythae(x, args, seed, out_dir):
    cfg = VAEConfig(input_dim=(784,), latent_dim=args.latent, reconstruction_loss="bce")
    torch.manual_seed(seed)
    t0 = clock()
    model = PythaeVAE(cfg)  # default nets: Encoder_VAE_MLP / Decoder_AE_MLP
    tcfg = BaseTrainerConfig(
        output_dir=out_dir,
        num_epochs=args.epochs,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=1000,
        optimizer_cls="Adam",
        seed=seed,
        no_cuda=True,
    )
    timer = EpochTimer()
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars; the work is done all the same
        trainer = BaseTrainer(model, BaseDataset(x, torch.zeros(len(x))), training_config=tcfg, callbacks=[timer])
        trainer.train()
    t1 = clock()
    model = trainer.model
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        own = float(sum(float(model({"data": xb}).loss) * len(xb) for xb in args.x_test.split(1000)) / len(args.x_test))
    return model, pythae_parts(model), spans(timer.begin, timer.end), spans([t0], [t1]), own


def train_plain(x, args, seed):
    torch.manual_seed(seed)
    t0 = clock()
    model = PlainVAE(args.hidden, args.latent)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    starts, ends = [], []
    for _ in range(args.epochs):
        starts.append(clock())
        for idx in torch.randperm(len(x)).split(args.batch_size):
            xb = x[idx]
            mu, log_std = model.encode(xb)
            z = mu + log_std.exp() * torch.randn_like(mu)
            rec = -F.binary_cross_entropy_with_logits(model.logits(z), xb, reduction="none").sum(1)
            kl = 0.5 * (mu.pow(2) + (2 * log_std).exp() - 1).sum(1) - log_std.sum(1)
            loss = (kl - rec).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        ends.append(clock())
    return model, (model.encode, model.logits), spans(starts, ends), spans([t0], [clock()]), None


def vaekit_source():
    """The vaekit code that was timed: git commit, and a hash of train.py when it differs from the commit."""
    src = Path(vaekit.__file__).resolve().parent

    def git(*a):
        out = subprocess.run(["git", *a], cwd=src, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None

    train_py = (src / "train.py").read_bytes()
    return {
        "path": shown_path(src),
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": git("status", "--porcelain", "--", ".") not in ("", None),
        "train_py_sha256": hashlib.sha256(train_py).hexdigest()[:16],
    }


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="trainings per contender (interleaved)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=512, help="pythae's default MLP has one hidden layer of 512")
    ap.add_argument("--latent", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="6,000 training and 1,000 test images; print only")
    ap.add_argument("--no-write", action="store_true", help="print only; keep bench/results as it is")
    ap.add_argument("--elbo-tolerance", type=float, default=0.5, help="nats by which 'equal ELBO' may differ")
    args = ap.parse_args(argv)
    if PYTHAE and args.hidden != 512:
        ap.error("--hidden must be 512 with pythae: its default MLP nets are 784-512-latent")
    torch.set_num_threads(args.threads)
    for name in list(logging.root.manager.loggerDict):  # pythae's INFO lines (set up at its import)
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)

    g = torch.Generator().manual_seed(12345)
    x = torch.bernoulli(vaekit.data.load("mnist", "train").x.reshape(-1, 784), generator=g)
    x_test = torch.bernoulli(vaekit.data.load("mnist", "test").x.reshape(-1, 784), generator=g)
    if args.quick:
        x, x_test = x[:6000], x_test[:1000]
    args.x_test = x_test

    tmp = tempfile.mkdtemp(prefix="vs_pythae_")
    runs = {}
    if PYTHAE:
        runs["pythae"] = lambda seed: train_pythae(x, args, seed, tmp)
    else:
        print(f"pythae is not importable here ({PYTHAE_ERROR}); comparing vaekit with plain PyTorch only")
    runs["vaekit"] = lambda seed: train_vaekit(x, args, seed)
    runs["plain_torch"] = lambda seed: train_plain(x, args, seed)

    train_plain(x[:2000], argparse.Namespace(**{**vars(args), "epochs": 1}), 0)  # warm-up (allocator, kernels)
    keys = ("epoch_wall_s", "epoch_cpu_s", "run_wall_s", "run_cpu_s", "test_elbo", "own_test_loss")
    res = {k: {key: [] for key in keys} for k in runs}
    for r in range(args.repeats):  # repeat r trains every contender with seed + r
        for name, run in runs.items():
            model, (encode, logits), (ep_wall, ep_cpu), (run_wall, run_cpu), own = run(args.seed + r)
            model.eval()
            elbo = test_elbo(encode, logits, x_test, seed=args.seed + 99)
            for key, val in zip(keys, (ep_wall, ep_cpu, run_wall[0], run_cpu[0], elbo, own)):
                res[name][key].append(val)
            res[name]["parameters"] = n_params(model)
            print(
                f"repeat {r + 1}/{args.repeats} {name:11s} epochs wall {' '.join(f'{t:.2f}' for t in ep_wall)} s "
                f"(cpu {' '.join(f'{t:.2f}' for t in ep_cpu)} s), run {run_wall[0]:.2f} s, test ELBO {elbo:.2f}"
                + (f", own test loss {own:.2f}" if own is not None else ""),
                flush=True,
            )
    for v in res.values():
        for key in ("epoch_wall_s", "epoch_cpu_s"):
            v[f"median_{key}"] = median([t for ep in v[key] for t in ep])
        for key in ("run_wall_s", "run_cpu_s"):
            v[f"median_{key}"] = median(v[key])
        v["mean_test_elbo"] = sum(v["test_elbo"]) / len(v["test_elbo"])

    base = "pythae" if PYTHAE else "plain_torch"

    def ratio(key, other=base):
        return res[other][f"median_{key}"] / res["vaekit"][f"median_{key}"]

    elbo_gap = res["vaekit"]["mean_test_elbo"] - res[base]["mean_test_elbo"]
    settings = {k: v for k, v in vars(args).items() if k != "x_test"}
    result = {
        "compared_with": base,
        "pythae": PYTHAE or f"not importable: {PYTHAE_ERROR}",
        "python": sys.version.split()[0],
        "vaekit_source": vaekit_source(),
        "settings": {
            **settings,
            "n_train": len(x),
            "n_test": len(x_test),
            "data": "MNIST, binarized once (torch.bernoulli, generator seed 12345), the same for all",
            "model": f"VAE 784-{args.hidden}-{args.latent}, ReLU, Bernoulli (pythae: sigmoid + BCE), Adam",
            "elbo": "test_elbo(): 10 draws per test image, the same noise for all models, closed-form KL, nats",
            "timing": "interleaved runs; epoch = one pass over the training set inside the trainer; "
            "run = the whole call incl. set-up and (pythae) saving; cpu = process CPU time",
        },
        "results": res,
        "speed_ratio_epoch_wall": ratio("epoch_wall_s"),
        "speed_ratio_epoch_cpu": ratio("epoch_cpu_s"),
        "speed_ratio_run_wall": ratio("run_wall_s"),
        "plain_torch_vs_vaekit_epoch_wall": ratio("epoch_wall_s", "plain_torch"),
        "elbo_vaekit_minus_other": elbo_gap,
        "target": f"vaekit >= 1.5 x faster per epoch (wall) than pythae at equal (within {args.elbo_tolerance} "
        "nats) or better test ELBO",
        "target_met": bool(PYTHAE) and ratio("epoch_wall_s") >= 1.5 and elbo_gap >= -args.elbo_tolerance,
    }
    rows = [["trainer", "s/epoch wall", "s/epoch cpu", "s/run wall", "test ELBO (nats)", "epoch wall / vaekit"]] + [
        [
            k,
            f"{v['median_epoch_wall_s']:.2f}",
            f"{v['median_epoch_cpu_s']:.2f}",
            f"{v['median_run_wall_s']:.2f}",
            " ".join(f"{e:.2f}" for e in v["test_elbo"]),
            f"{ratio('epoch_wall_s', k):.2f}",
        ]
        for k, v in res.items()
    ]
    if args.no_write or args.quick:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    else:
        write("vs_pythae", result, rows)
    print(
        f"{base} / vaekit time per epoch: wall {ratio('epoch_wall_s'):.2f}, cpu {ratio('epoch_cpu_s'):.2f} "
        f"(whole run, wall {ratio('run_wall_s'):.2f}); ELBO vaekit - {base} = {elbo_gap:+.2f} nats; "
        f"target met: {result['target_met']}"
    )
    return result


if __name__ == "__main__":
    main()
