"""What a training objective returns and how a game splits it into moves: a leaf module.

`Loss` is a scalar to minimise plus named terms to log; `Phase` is one player's move in a game
(a GAN's discriminator step, its generator step).  Models, bounds, games and the training loop all
speak these two types, so they live here, importing nothing else of vaekit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["Loss", "Phase"]


@dataclass
class Loss:
    value: torch.Tensor  # scalar, minimised by the training loop
    terms: dict[str, torch.Tensor] = field(default_factory=dict)  # batch means, for logs


@dataclass(frozen=True)
class Phase:
    """One player's move: minimise `loss(model, x, step) -> Loss` over `parameters(model)`.

    Each phase has its own Adam optimiser with TrainConfig's settings unless `lr` / `betas` are
    given (the learning-rate schedule scales from the phase's lr).  `parameters=None` means all of
    the model's parameters.  Gradients reaching other players' parameters are discarded.
    """

    name: str
    loss: Callable[[Any, torch.Tensor, int], Loss]  # (model, x, step) -> Loss
    parameters: Callable[[Any], Iterable[nn.Parameter]] | None = None  # the model, whatever its class
    lr: float | None = None
    betas: tuple[float, float] | None = None
