"""The latent-space explorer web app (`vaekit explore RUN_DIR`); see `server.py`."""

from .server import Explorer, create_app, load_run, serve

__all__ = ["Explorer", "create_app", "load_run", "serve"]
