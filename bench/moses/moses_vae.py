"""MOSES's own VAE (the `molsets` package) under a CPU-time budget; run with the interpreter of the venv that
bench/moses/setup.sh builds, never with vaekit's.  bench/vs_moses_vae.py calls it; by hand:

    VENV/bin/python bench/moses/moses_vae.py train --smiles SUBSET.smi --out DIR --budget-seconds 3600 [--samples 30000]
    VENV/bin/python bench/moses/moses_vae.py throughput --smiles SUBSET.smi [--steps 3]
    VENV/bin/python bench/moses/moses_vae.py metrics --samples DIR/samples.smi --test TEST.csv.gz \
        --train TRAIN.csv.gz --out M.json
    VENV/bin/python bench/moses/moses_vae.py molecules --smiles MOLS.smi --out Q.json

train: builds MOSES's VAE with its published configuration (the defaults of `moses.vae.config.get_parser`, the
MOSES paper's) on the molecules of --smiles (one SMILES per line), and runs MOSES's own `VAETrainer` (its Adam,
KL annealing, SGDR learning rate and gradient clipping) unchanged; the only addition is the data loader it
trains from, which counts molecules and ends the training, between two steps, once this process has used
--budget-seconds of CPU time (checked after every step, as vaekit's `--max-seconds` does with the cpu clock).
Then the model is saved (MOSES's format: state dict, vocabulary, config) and --samples molecules are drawn
from the prior with the model's own `sample` (max_len 100, temperature 1).  Writes DIR/samples.smi,
DIR/model.pt and DIR/train.json.

throughput: molecules per CPU second (and per wall second) of MOSES's training step (forward, backward,
gradient clipping, Adam step) with its published batch size and model, after one untimed warm-up step.

metrics: `moses.get_all_metrics` of the samples.  When the given test/train CSVs hold exactly the splits the
package ships, its own precomputed test statistics are used (what a MOSES user gets); otherwise the given sets.

molecules: for each SMILES of --smiles, MOSES's per-molecule functions behind the metrics Filters, logP, SA,
QED and weight (`mol_passes_filters`, `logP`, `SA`, `QED`, `weight` of `moses.metrics.utils`), or null where
RDKit cannot read it.

Everything it prints on stdout is one JSON object (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time


class OutOfBudget(Exception):
    pass


class Budgeted:
    """Wraps a DataLoader: counts the batches and molecules handed out and stops once the CPU budget is used."""

    def __init__(self, loader, budget_seconds, tally):
        self.loader, self.budget, self.tally = loader, budget_seconds, tally

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.tally["epochs_started"] += 1
        for batch in self.loader:
            if time.process_time() - self.tally["cpu0"] >= self.budget:
                raise OutOfBudget
            self.tally["steps"] += 1
            self.tally["molecules"] += len(batch)
            yield batch


def write_json(path, obj):
    """`obj` as JSON in `path`, written to a temporary file beside it and renamed: never half-written."""
    tmp = os.path.join(os.path.dirname(path) or ".", "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def read_lines(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def read_csv_smiles(path):
    import pandas as pd

    return [str(s) for s in pd.read_csv(path, compression="gzip" if str(path).endswith(".gz") else None)["SMILES"]]


def seed_all(seed):
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def published_config():
    from moses.vae.config import get_parser

    cfg = get_parser().parse_args([])
    cfg.log_file, cfg.model_save, cfg.save_frequency = None, None, 1
    return cfg


def build(smiles, threads, seed):
    import torch
    from moses.vae import VAE
    from moses.vae.trainer import VAETrainer

    torch.set_num_threads(threads)
    seed_all(seed)
    cfg = published_config()
    trainer = VAETrainer(cfg)
    vocab = trainer.get_vocabulary(smiles)
    return cfg, trainer, vocab, VAE(vocab, cfg)


def cmd_train(a):
    import torch

    smiles = read_lines(a.smiles)
    cfg, trainer, vocab, model = build(smiles, a.threads, a.seed)
    tally = {"steps": 0, "molecules": 0, "epochs_started": 0}
    real = trainer.get_dataloader

    def budgeted_loader(model, data, collate_fn=None, shuffle=True):
        return Budgeted(real(model, data, collate_fn, shuffle), a.budget_seconds, tally)

    trainer.get_dataloader = budgeted_loader
    t0 = time.perf_counter()
    tally["cpu0"] = cpu0 = time.process_time()
    stopped = "completed"
    try:
        trainer.fit(model, smiles)
    except OutOfBudget:
        stopped = "cpu_budget"
    cpu_train, wall_train = time.process_time() - cpu0, time.perf_counter() - t0
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, ".model.pt.tmp")
    torch.save({"model_state": model.state_dict(), "vocab": vocab, "config": cfg}, tmp)  # as MOSES's train script
    os.replace(tmp, os.path.join(a.out, "model.pt"))

    model.eval()
    seed_all(a.seed + 1)
    t1, c1 = time.perf_counter(), time.process_time()
    samples = []
    while len(samples) < a.samples:
        samples += model.sample(min(a.sample_batch, a.samples - len(samples)), max_len=100)
    cpu_sample, wall_sample = time.process_time() - c1, time.perf_counter() - t1
    tmp = os.path.join(a.out, ".samples.smi.tmp")
    with open(tmp, "w") as f:
        f.write("".join(s + "\n" for s in samples))  # an empty string is an (invalid) sample too
    os.replace(tmp, os.path.join(a.out, "samples.smi"))
    import moses

    result = {
        "moses": moses.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_molecules": len(smiles),
        "steps": tally["steps"],
        "molecules_seen": tally["molecules"],
        "epochs_started": tally["epochs_started"],
        "epochs_planned": trainer._n_epoch(),
        "stopped": stopped,
        "cpu_seconds": cpu_train,
        "wall_seconds": wall_train,
        "sample_cpu_seconds": cpu_sample,
        "sample_wall_seconds": wall_sample,
        "samples": len(samples),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": {k: v for k, v in vars(cfg).items() if isinstance(v, (int, float, str, bool, type(None)))},
    }
    write_json(os.path.join(a.out, "train.json"), result)
    print(json.dumps(result))


def cmd_throughput(a):
    """Time MOSES's training step on batches of its own size: the body of VAETrainer._train_epoch."""
    import torch
    from torch.nn.utils import clip_grad_norm_

    smiles = read_lines(a.smiles)
    cfg, trainer, vocab, model = build(smiles, a.threads, a.seed)
    loader = trainer.get_dataloader(model, smiles, shuffle=True)
    optimizer = torch.optim.Adam(trainer.get_optim_params(model), lr=cfg.lr_start)
    kl_weight = cfg.kl_w_end
    model.train()
    cpu, wall, mols = [], [], []
    batches = iter(loader)
    for i in range(a.steps + 1):  # step 0 warms up and is not timed
        t0, c0 = time.perf_counter(), time.process_time()
        batch = next(batches)
        batch = tuple(x.to(model.device) for x in batch)
        kl_loss, recon_loss = model(batch)
        loss = kl_weight * kl_loss + recon_loss
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(trainer.get_optim_params(model), cfg.clip_grad)
        optimizer.step()
        loss.item()
        if i:
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - t0)
            mols.append(len(batch))
    import moses

    print(
        json.dumps(
            {
                "moses": moses.__version__,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "batch_size": cfg.n_batch,
                "steps": a.steps,
                "molecules": sum(mols),
                "parameters": sum(p.numel() for p in model.parameters()),
                "molecules_per_cpu_s": sum(mols) / sum(cpu),
                "molecules_per_s": sum(mols) / sum(wall),
                "step_cpu_seconds": cpu,
                "step_wall_seconds": wall,
            }
        )
    )


def cmd_metrics(a):
    import moses
    import torch
    from moses.dataset import get_dataset

    torch.set_num_threads(a.threads)
    gen = read_lines_keep_empty(a.samples)
    test = read_csv_smiles(a.test) if a.test.endswith((".csv", ".csv.gz")) else read_lines(a.test)
    train = read_csv_smiles(a.train)
    shipped_test = test == [str(s) for s in get_dataset("test")]
    shipped_train = train == [str(s) for s in get_dataset("train")]
    t0, c0 = time.perf_counter(), time.process_time()
    error = None
    try:
        m = moses.get_all_metrics(
            gen,
            k=[1000, 10000],
            n_jobs=1,
            device="cpu",
            test=None if shipped_test else test,
            train=None if shipped_train else train,
        )
    except Exception as e:  # e.g. no valid molecule at all: the validity alone, and the reason
        from moses.metrics import fraction_valid

        m, error = {"valid": fraction_valid(gen)}, f"{type(e).__name__}: {e}"
    out = {
        "metrics": {k: float(v) for k, v in m.items()},
        "error": error,
        "test": a.test,
        "shipped_test": shipped_test,
        "shipped_train": shipped_train,
        "n": len(gen),
        "cpu_seconds": time.process_time() - c0,
        "wall_seconds": time.perf_counter() - t0,
    }
    write_json(a.out, out)
    print(json.dumps(out))


def cmd_molecules(a):
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")  # MOSES's SA score calls a deprecated fingerprint function once a molecule
    from moses.metrics.utils import QED, SA, get_mol, logP, mol_passes_filters, weight

    out = []
    for s in read_lines(a.smiles):
        m = get_mol(s)
        out.append(None if m is None else [bool(mol_passes_filters(m)), logP(m), SA(m), QED(m), weight(m)])
    write_json(a.out, out)
    print(json.dumps({"molecules": len(out), "out": a.out}))


def read_lines_keep_empty(path):
    with open(path) as f:
        return [line.rstrip("\n") for line in f]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--smiles", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--budget-seconds", type=float, required=True)
    t.add_argument("--samples", type=int, default=30000)
    t.add_argument("--sample-batch", type=int, default=1000)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("throughput")
    s.add_argument("--smiles", required=True)
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("metrics")
    m.add_argument("--samples", required=True)
    m.add_argument("--test", required=True)
    m.add_argument("--train", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--threads", type=int, default=1)
    q = sub.add_parser("molecules")
    q.add_argument("--smiles", required=True)
    q.add_argument("--out", required=True)
    a = ap.parse_args()
    {"train": cmd_train, "throughput": cmd_throughput, "metrics": cmd_metrics, "molecules": cmd_molecules}[a.cmd](a)


if __name__ == "__main__":
    main()
