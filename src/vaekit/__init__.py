"""vaekit: auto-encoders and variational auto-encoders as probability objects, on PyTorch."""

from . import checkpoint, train  # noqa: F401  (vaekit.checkpoint.load_model, vaekit.train.fit after `import vaekit`)
from .bounds import Loss, elbo, iwae_bound, kl, log_likelihood, reconstruction
from .errors import NonFiniteLossError, VaekitError
from .models import IWAE, VAE, AutoEncoder, build, from_config

__version__ = "0.1.0"
__all__ = [
    "Loss",
    "elbo",
    "iwae_bound",
    "kl",
    "log_likelihood",
    "reconstruction",
    "VaekitError",
    "NonFiniteLossError",
    "AutoEncoder",
    "IWAE",
    "VAE",
    "build",
    "from_config",
    "__version__",
]
