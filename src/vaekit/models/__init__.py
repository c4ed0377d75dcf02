"""Model registry: every model is a small class registered by name, its config a dataclass beside it.

    >>> from vaekit.models import build
    >>> model = build("vae", data_shape=(64,), latent_dim=2)
"""
from __future__ import annotations

import dataclasses
import json

from ..errors import VaekitError

REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a model buildable by `name` (and from a saved JSON config)."""

    def deco(cls):
        if name in REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return deco


def get(name: str) -> type:
    try:
        return REGISTRY[name]
    except KeyError:
        raise VaekitError(f"unknown model {name!r}; registered models: {', '.join(sorted(REGISTRY))}") from None


def build(name: str, **config):
    """Build a registered model from keyword arguments of its config dataclass."""
    cls = get(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(config) - fields
    if unknown:
        raise VaekitError(f"unknown config field(s) {sorted(unknown)} for model {name!r}; fields: {sorted(fields)}")
    try:
        cfg = cls.Config(**config)
    except (TypeError, ValueError, OverflowError) as e:
        raise VaekitError(f"bad config for model {name!r}: {e}") from None
    return cls(cfg)


def config_dict(model) -> dict:
    """JSON-able description {"model": name, "config": {...}} from which `from_config` rebuilds it."""
    return {"model": model.name, "config": dataclasses.asdict(model.config)}


def from_config(d: dict):
    if not isinstance(d, dict) or "model" not in d or not isinstance(d.get("config"), dict):
        raise VaekitError("model config must be a JSON object with fields 'model' and 'config'")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in d["config"].items()}
    return build(d["model"], **cfg)


def to_json(model) -> str:
    return json.dumps(config_dict(model), indent=2)


from . import aae, autoencoder, avb, chemvae, fontvae, vae  # noqa: E402,F401  (register the built-in models)
from .autoencoder import AutoEncoder  # noqa: E402
from .vae import IWAE, VAE  # noqa: E402

__all__ = ["REGISTRY", "register", "get", "build", "from_config", "config_dict", "to_json", "AutoEncoder", "VAE", "IWAE"]
