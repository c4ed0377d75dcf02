"""torch.distributed for the training loop: who am I, reduce a few numbers, wrap the model in DDP.

Launched by `torchrun` (or `vaekit fit --nproc N`, which calls it), every process runs the same
`fit`; each takes a strided share of every global batch, DistributedDataParallel averages the
gradients, rank 0 writes logs and checkpoints. Backend: NCCL when CUDA is available, else gloo.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """Average a tensor over ranks (identity in one process)."""
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t /= self.world
        return t

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            t = t.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a same-shaped CPU tensor (e.g. RNG states), in rank order."""
        if self.world == 1:
            return [t]
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return out

    def shard(self, index: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch of indices."""
        return index[self.rank :: self.world] if self.world > 1 else index


def setup() -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); otherwise one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        rank = int(os.environ["RANK"])
        # A fresh key space for every restart of the group: peers must never read the addresses
        # that the killed workers of an earlier attempt left in torchrun's store.
        agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        store: dist.Store = dist.TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            world,
            is_master=rank == 0 and not agent_store,
            timeout=timedelta(minutes=5),
        )
        store = dist.PrefixStore(f"vaekit/attempt{restart_count()}", store)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), dist.get_world_size(), local)


def teardown(wait: bool = True) -> None:
    """Leave the process group, together when `wait`. Without this a rank that exits first can take
    gloo's threads down while a peer still talks to it (an abort at interpreter exit). After an
    error, don't wait: the peers may never arrive, and torchrun needs this process to end."""
    if dist.is_available() and dist.is_initialized():
        try:
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def end_worker(status: int = 0) -> None:
    """End this torchrun worker at once, without interpreter finalization, as `multiprocessing` ends
    its children. Why: a DistributedDataParallel model keeps the gloo process group alive after
    destroy_process_group, and gloo's worker threads drop their last finished collectives lazily. A
    barrier's work holds the earlier ones, down to an all_gather whose tensors are Python objects; when
    a thread releases that chain while the interpreter is shutting down, it cannot take the GIL, and
    C++ aborts ("terminate called without an active exception", SIGABRT). That failed about one run
    in 15 of a two-rank job (core dump: ~AsyncBarrierWork -> ~AsyncAllgatherWork -> decref_pyobject ->
    take_gil -> pthread_exit during Py_FinalizeEx), and torchrun counts it as a failed worker."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def restart_count() -> int:
    """How often torchrun has restarted this worker group (0 on the first attempt)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


class LossModule(nn.Module):
    """objective(model, x, step) as a forward pass, so that DistributedDataParallel can hook its gradients."""

    def __init__(self, model: Any, objective=None):  # a model of the kit: it has `loss`
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x, step: int):
        loss = self.model.loss(x, step) if self.objective is None else self.objective(self.model, x, step)
        return loss.value, loss.terms


def wrap(model: nn.Module, d: Dist, device: torch.device, objective=None):
    """A callable (x, step) -> (value, terms): DDP-wrapped when there are several processes."""
    module = LossModule(model, objective)
    if d.world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)
