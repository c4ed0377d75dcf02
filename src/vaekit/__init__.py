"""vaekit: auto-encoders and variational auto-encoders as probability objects, on PyTorch."""
from .bounds import Loss, elbo, iwae_bound, kl, log_likelihood, reconstruction
from .errors import NonFiniteLossError, VaekitError
from .models import AutoEncoder, IWAE, VAE, build, from_config
from . import checkpoint, train  # noqa: E402  (vaekit.checkpoint.load_model, vaekit.train.fit)

__version__ = "0.1.0"
__all__ = ["Loss", "elbo", "iwae_bound", "kl", "log_likelihood", "reconstruction", "VaekitError",
           "NonFiniteLossError", "AutoEncoder", "IWAE", "VAE", "build", "from_config", "__version__"]
