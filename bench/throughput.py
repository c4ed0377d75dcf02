"""Training throughput: vaekit's loop vs a minimal hand-written PyTorch loop, same model, same run.

784-500-500-50 MLP VAE (ReLU), Bernoulli likelihood, batch 500, Adam, on MNIST-shaped data in [0, 1].
Runs are interleaved (plain, vaekit, vaekit+run-dir, plain, ...) and the median time is reported.

    python bench/throughput.py [--epochs 2] [--n 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch import nn
from torch.nn import functional as F

import vaekit
from vaekit.train import TrainConfig, fit

from common import interleaved, median, write


def plain_loop(x, epochs, batch_size, seed=0):
    """The smallest honest VAE training loop in plain PyTorch."""
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 500), nn.ReLU(), nn.Linear(500, 100))
    dec = nn.Sequential(nn.Linear(50, 500), nn.ReLU(), nn.Linear(500, 500), nn.ReLU(), nn.Linear(500, 784))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(batch_size):
            xb = x[idx]
            mu, log_sigma = enc(xb).chunk(2, -1)
            sigma = log_sigma.exp()
            z = mu + sigma * torch.randn_like(mu)
            rec = -F.binary_cross_entropy_with_logits(dec(z), xb, reduction="none").sum(1)
            kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1).sum(1) - log_sigma.sum(1)
            loss = (kl - rec).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def vaekit_loop(x, epochs, batch_size, run_dir=None, seed=0):
    torch.manual_seed(seed)
    model = vaekit.build("vae", data_shape=(784,), latent_dim=50, hidden=(500, 500))
    fit(
        model,
        x,
        TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, progress=False, tensorboard=False),
        run_dir,
        overwrite=True,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n", type=int, default=10000, help="training items (MNIST-shaped, uniform in [0, 1])")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    x = torch.rand(args.n, 784, generator=torch.Generator().manual_seed(0))
    tmp = tempfile.mkdtemp()
    fns = {
        "plain_torch": lambda: plain_loop(x, args.epochs, args.batch_size),
        "vaekit": lambda: vaekit_loop(x, args.epochs, args.batch_size),
        "vaekit_run_dir": lambda: vaekit_loop(x, args.epochs, args.batch_size, f"{tmp}/run"),
    }
    fns["plain_torch"]()  # warm-up (allocator, thread pool)
    times = interleaved(fns, args.repeats)
    items = args.epochs * args.n
    rate = {k: items / median(v) for k, v in times.items()}
    result = {
        "config": vars(args),
        "model": "VAE 784-500-500-50, ReLU, Bernoulli, Adam",
        "seconds": times,
        "samples_per_s": rate,
        "ratio_vaekit_vs_plain": rate["vaekit"] / rate["plain_torch"],
        "ratio_vaekit_run_dir_vs_plain": rate["vaekit_run_dir"] / rate["plain_torch"],
        "target": "vaekit >= 0.9 x plain",
    }
    rows = [["loop", "samples/s (median)", "ratio to plain"]] + [
        [k, f"{r:.0f}", f"{r / rate['plain_torch']:.3f}"] for k, r in rate.items()
    ]
    write("throughput", result, rows)


if __name__ == "__main__":
    main()
