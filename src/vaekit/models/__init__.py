"""Model registry: every model is a small class registered by name, its config a dataclass beside it.

>>> from vaekit.models import build
>>> model = build("vae", data_shape=(64,), latent_dim=2)
"""

from . import aae, autoencoder, avb, chemvae, fontvae, gan, vae  # noqa: F401  (register the built-in models)
from .autoencoder import AutoEncoder
from .pretrained import pretrained
from .registry import (
    REGISTRY,
    build,
    config_dict,
    from_config,
    get,
    register,
    state_shapes,
    to_json,
    typed_config,
)
from .vae import IWAE, VAE

__all__ = [
    "REGISTRY",
    "register",
    "get",
    "build",
    "typed_config",
    "state_shapes",
    "from_config",
    "config_dict",
    "to_json",
    "pretrained",
    "AutoEncoder",
    "VAE",
    "IWAE",
]
