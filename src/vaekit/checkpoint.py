"""Checkpoints: one safetensors file holding weights, optimizer state and RNG state, with the JSON
config and counters in its metadata and a SHA-256 of every tensor so that a flipped bit is caught.

The SHA-256 is a checksum, not a signature: a reader also checks that the model config in the header
describes exactly the tensors in the file (built on the meta device, which allocates nothing) before it
loads a tensor or builds a model, so a crafted header cannot make it allocate what the header claims.

Writes go to a temporary file in the same folder which is then renamed over the old one, so a
crash during a write leaves the previous checkpoint intact. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from .errors import VaekitError
from .io import atomic_write, atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)
from .models import config_dict, from_config, state_shapes

FORMAT = "vaekit-checkpoint/1"


def _digest(tensors: dict[str, torch.Tensor], header: dict) -> str:
    """SHA-256 over every tensor and the JSON header (less its own digest field)."""
    h = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != "sha256"}, sort_keys=True).encode())
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b"")  # hashed in place, not copied
    return h.hexdigest()


def _optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict) -> list:
    """Put the optimizer's state into `tensors` as `<prefix><param id>.<name>`; returns its param groups."""
    sd = optimizer.state_dict()
    for pid, st in sd["state"].items():
        for k, v in st.items():
            t = v if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[f"{prefix}{pid}.{k}"] = t.detach().cpu().contiguous()
    return sd["param_groups"]


def save(
    path, model, optimizer: torch.optim.Optimizer | dict | None = None, rng_states: list | None = None, **meta
) -> None:
    """Save model weights (+ optimizer and torch RNG state) and JSON-able `meta` atomically.

    `optimizer`: one optimizer, or {phase name: optimizer} for a game (one per phase, see `train.Phase`).
    `rng_states`: the torch RNG state of every rank of a distributed run (default: this process's).
    """
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    groups: dict | list | None = None
    if isinstance(optimizer, dict):
        groups = {name: _optimizer_tensors(o, f"optim.{name}.", tensors) for name, o in optimizer.items()}
    elif optimizer is not None:
        groups = _optimizer_tensors(optimizer, "optim.", tensors)
    for r, st in enumerate(rng_states or [torch.get_rng_state()]):
        tensors["rng.torch" if r == 0 else f"rng.torch.{r}"] = st
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    header = {"format": FORMAT, "model": config_dict(model), "optimizer_groups": groups, "meta": meta}
    _write(path, tensors, json.loads(json.dumps(header)))  # the header exactly as a reader will parse it


def _write(path, tensors: dict[str, torch.Tensor], header: dict) -> None:
    """Write `tensors` with `header` (its sha256 field set here) atomically."""
    header = {**header, "sha256": _digest(tensors, header)}
    # serialised here and written through our own temporary file: safetensors' save_file makes a second one
    # (.tmpXXXXXX) that a writer killed mid-write would leave behind, outside the sweep of .*.tmp files
    atomic_write_bytes(path, save_bytes(tensors, metadata={"vaekit": json.dumps(header)}))


def weights_only(src, dst) -> None:
    """Copy checkpoint `src` to `dst` without its optimizer state: the weights, config and meta alone (a third
    of the size under Adam), for a model to ship.  `vaekit fit --init-from` and everything that only reads the
    model take it; `--resume` needs the full checkpoint."""
    tensors, header = read(src)
    kept = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    header = {k: v for k, v in header.items() if k != "sha256"}
    _write(dst, kept, {**header, "optimizer_groups": None})


def read(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and header of a checkpoint, verified; VaekitError naming the file if anything is off.

    The model config in the header is checked against the file's tensor shapes (see `check_model_fits`)
    before any tensor is allocated, so a crafted header cannot make a reader build a huge model."""
    path = Path(path)
    if not path.is_file():
        raise VaekitError(f"{path}: no checkpoint here")
    try:
        data = path.read_bytes()  # one read: a consistent snapshot even while a writer renames
        n = int.from_bytes(data[:8], "little")
        if len(data) < 8 or n > len(data) - 8:
            raise ValueError("header length beyond the end of the file")
        index = json.loads(data[8 : 8 + n])
        raw = index.get("__metadata__", {}).get("vaekit")
    except (OSError, ValueError, AttributeError, RecursionError) as e:
        raise VaekitError(f"{path}: corrupt or truncated checkpoint ({str(e).splitlines()[0][:120]})") from None
    try:
        header = json.loads(raw)
        assert header.get("format") == FORMAT and isinstance(header.get("model"), dict)
        assert isinstance(header.get("meta", {}), dict)
    except Exception:
        raise VaekitError(f"{path}: not a vaekit checkpoint (missing or bad 'vaekit' metadata)") from None
    check_model_fits(path, header["model"], index, len(data))
    try:
        tensors = load_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise VaekitError(f"{path}: corrupt or truncated checkpoint ({str(e).splitlines()[0][:120]})") from None
    del data
    if _digest(tensors, header) != header.get("sha256"):
        raise VaekitError(f"{path}: checksum mismatch, the checkpoint is corrupt")
    return tensors, header


def check_model_fits(path, config: dict, index: dict, file_size: int) -> None:
    """Refuse a checkpoint whose model `config` does not describe exactly its `model.*` tensors.

    `index` is the file's safetensors header ({name: {"dtype", "shape", "data_offsets"}}).  The model is
    built on the meta device, which allocates no memory whatever sizes the config names; its parameter
    count and then every tensor shape are compared with the file's before a real model is ever built."""
    shapes = {}
    for key, entry in index.items():
        if key.startswith("model."):
            shape = entry.get("shape") if isinstance(entry, dict) else None
            if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
                raise VaekitError(f"{path}: corrupt or truncated checkpoint (bad shape for tensor {key[:60]})")
            shapes[key[len("model.") :]] = tuple(shape)
    try:
        want = state_shapes(config)
    except VaekitError as e:
        raise VaekitError(f"{path}: {e}") from None
    n_want = sum(math.prod(s) for s, _ in want.values())
    n_have = sum(math.prod(s) for s in shapes.values())
    if n_want != n_have:
        size = sum(math.prod(s) * b for s, b in want.values())
        raise VaekitError(
            f"{path}: the model config in the header implies {n_want:,} parameters ({size:,} bytes) "
            f"but the file holds {n_have:,} ({file_size:,} bytes in all)"
        )
    for key, (shape, _) in want.items():
        if key not in shapes:
            raise VaekitError(f"{path}: weights do not fit the model (tensor model.{key} is missing)")
        if shapes[key] != shape:
            raise VaekitError(
                f"{path}: weights do not fit the model (tensor model.{key} has shape "
                f"{list(shapes[key])} in the file, the config implies {list(shape)})"
            )
    extra = sorted(set(shapes) - set(want))
    if extra:
        raise VaekitError(f"{path}: weights do not fit the model (unexpected tensor model.{extra[0][:60]})")


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, prefix: str, groups) -> None:
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith(prefix):
            pid, name = k[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def restore(
    path, model, optimizer: torch.optim.Optimizer | dict | None = None, rng: bool = False, rank: int = 0
) -> dict:
    """Load a checkpoint into an existing model (and optimizer, or {phase: optimizer}, and `rank`'s RNG);
    returns the saved `meta`."""
    tensors, header = read(path)
    want = config_dict(model)
    if header["model"] != json.loads(json.dumps(want)):
        raise VaekitError(
            f"{path}: holds a different model ({header['model']['model']} "
            f"{header['model']['config']}) than the one asked for ({want['model']} {want['config']})"
        )
    load_tensors(model, tensors, path)
    saved = header.get("optimizer_groups")
    if optimizer is not None and saved is not None:
        if isinstance(optimizer, dict) and len(optimizer) == 1 and isinstance(saved, list):
            optimizer = next(iter(optimizer.values()))  # an older checkpoint of a one-phase run: its one optimizer
        if isinstance(optimizer, dict) and isinstance(saved, dict):
            mismatch = set(saved) != set(optimizer)
        else:
            mismatch = isinstance(optimizer, dict) != isinstance(saved, dict)
        if mismatch:
            has = f"optimizers of phases {sorted(saved)}" if isinstance(saved, dict) else "one optimizer"
            runs = f"optimizers of phases {sorted(optimizer)}" if isinstance(optimizer, dict) else "one optimizer"
            raise VaekitError(f"{path}: holds {has} but the run has {runs}")
        if isinstance(optimizer, dict):
            for name, o in optimizer.items():
                _load_optimizer(o, tensors, f"optim.{name}.", saved[name])
        else:
            _load_optimizer(optimizer, tensors, "optim.", saved)
    if rng:
        torch.set_rng_state(tensors.get(f"rng.torch.{rank}" if rank else "rng.torch", tensors["rng.torch"]))
        if torch.cuda.is_available():
            cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
            if cuda:
                torch.cuda.set_rng_state_all(cuda)
    return header.get("meta", {})


def load_tensors(model, tensors, path) -> None:
    """Copy the model.* tensors of a read checkpoint (see `read`) into `model`; a clear error if they do not fit."""
    sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise VaekitError(f"{path}: weights do not fit the model ({str(e).splitlines()[0][:160]})") from None


def weights_file(path) -> Path:
    """The checkpoint a run directory's model lives in (best.safetensors if present), or `path` itself."""
    path = Path(path)
    if path.is_dir():
        best, last = path / "best.safetensors", path / "checkpoint.safetensors"
        path = best if best.is_file() else last
    return path


def load_model(path, device: str | torch.device = "cpu"):
    """Rebuild a model from a checkpoint file or a run directory (uses best.safetensors if present)."""
    path = weights_file(path)
    tensors, header = read(path)
    try:
        model = from_config(header["model"])
    except VaekitError as e:
        raise VaekitError(f"{path}: {e}") from None
    load_tensors(model, tensors, path)
    return model.to(device).eval()
