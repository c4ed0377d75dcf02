"""Shape-generic building blocks: MLPs and convolutional encoder/decoder bodies.

A *body* maps a data tensor of shape (B, *data_shape) to features (B, F) (encoder side) or
features (B, F) to a tensor of shape (B, P * prod(data_shape)) of likelihood parameters
(decoder side).  Heads that turn features into distributions live in the models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def mlp(sizes: list[int] | tuple[int, ...], act: str = "relu", final_act: str | None = None) -> nn.Sequential:
    """Linear layers sizes[0] -> sizes[1] -> ... with `act` between them (and `final_act` after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        last = i == len(sizes) - 2
        if not last:
            layers.append(activation(act))
        elif final_act is not None:
            layers.append(activation(final_act))
    return nn.Sequential(*layers)


class MLPEncoderBody(nn.Module):
    """(B, *shape) -> (B, hidden[-1]): flatten, then an MLP with activations after every layer."""

    def __init__(self, data_shape: Sequence[int], hidden: Sequence[int], act: str = "relu", in_scale: float = 1.0):
        super().__init__()
        self.in_scale = in_scale
        self.net = mlp([math.prod(data_shape), *hidden], act, final_act=act)
        self.out_features = hidden[-1]

    def forward(self, x):
        return self.net(x.flatten(1) * self.in_scale if self.in_scale != 1.0 else x.flatten(1))


class MLPDecoderBody(nn.Module):
    """(B, latent) -> (B, n_out): an MLP mirroring the encoder, linear output."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], n_out: int, act: str = "relu"):
        super().__init__()
        self.net = mlp([latent_dim, *reversed(hidden), n_out], act)

    def forward(self, z):
        return self.net(z)


def _image_shape(data_shape):
    if len(data_shape) == 2:
        return (1, *data_shape)
    if len(data_shape) == 3:
        return tuple(data_shape)
    raise ValueError(f"conv nets need data_shape (H, W) or (C, H, W), got {tuple(data_shape)}")


class ConvEncoderBody(nn.Module):
    """Images of any H x W: stride-2 convolutions (kernel 4, padding 1), then a linear layer."""

    def __init__(
        self,
        data_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        hidden: Sequence[int] = (256,),
        act: str = "relu",
        in_scale: float = 1.0,
    ):
        super().__init__()
        c, h, w = _image_shape(data_shape)
        self.image_shape = (c, h, w)
        self.in_scale = in_scale
        convs, sizes = [], [(h, w)]
        for c_out in channels:
            convs += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), activation(act)]
            c = c_out
            h, w = max(h // 2, 1), max(w // 2, 1)
            sizes.append((h, w))
        self.convs = nn.Sequential(*convs)
        self.sizes = sizes  # spatial size before each conv, and after the last
        self.flat = c * h * w
        self.fc = mlp([self.flat, *hidden], act, final_act=act)
        self.out_features = hidden[-1]

    def forward(self, x):
        x = x.reshape(x.shape[0], *self.image_shape)
        if self.in_scale != 1.0:
            x = x * self.in_scale
        return self.fc(self.convs(x).flatten(1))


class ConvDecoderBody(nn.Module):
    """Mirror of ConvEncoderBody; transposed convolutions restore the exact H x W of the data."""

    def __init__(
        self,
        latent_dim: int,
        data_shape: Sequence[int],
        params_per_pixel: int = 1,
        channels: Sequence[int] = (32, 64),
        hidden: Sequence[int] = (256,),
        act: str = "relu",
    ):
        super().__init__()
        enc = ConvEncoderBody(data_shape, channels, hidden, act)  # only for the sizes
        c, h, w = enc.image_shape
        self.sizes = enc.sizes
        self.top = (channels[-1], *self.sizes[-1])
        self.fc = mlp([latent_dim, *reversed(hidden), enc.flat], act, final_act=act)
        ups = []
        chans = list(reversed(channels)) + [c * params_per_pixel]
        for a, b in zip(chans[:-1], chans[1:]):
            ups.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
        self.ups = nn.ModuleList(ups)
        self.act = activation(act)

    def forward(self, z):
        x = self.fc(z).reshape(z.shape[0], *self.top)
        targets = list(reversed(self.sizes[:-1]))
        for i, up in enumerate(self.ups):
            x = up(x, output_size=targets[i])
            if i < len(self.ups) - 1:
                x = self.act(x)
        return x.flatten(1)


class Conv1dEncoderBody(nn.Module):
    """1-D fields (B, n_x) -> (B, hidden[-1]): stride-2 1-D convolutions (kernel 5, circular padding), then a linear
    layer."""

    def __init__(self, n_x: int, channels=(16, 32, 64), hidden=(128,), act="elu", in_scale: float = 1.0):
        super().__init__()
        self.in_scale = in_scale
        layers, c, n = [], 1, n_x
        for c_out in channels:
            layers += [nn.Conv1d(c, c_out, 5, stride=2, padding=2, padding_mode="circular"), activation(act)]
            c, n = c_out, (n + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.top = (c, n)
        self.fc = mlp([c * n, *hidden], act, final_act=act)
        self.out_features = hidden[-1]

    def forward(self, x):
        x = x.reshape(len(x), 1, -1)
        if self.in_scale != 1.0:
            x = x * self.in_scale
        return self.fc(self.convs(x).flatten(1))


class Conv1dDecoderBody(nn.Module):
    """(B, latent) -> (B, params_per_feature * n_x): the encoder's mirror, with nearest up-sampling and circular
    convolutions."""

    def __init__(
        self, latent_dim: int, n_x: int, params_per_feature: int = 1, channels=(16, 32, 64), hidden=(128,), act="elu"
    ):
        super().__init__()
        sizes = [n_x]
        for _ in channels:
            sizes.append((sizes[-1] + 1) // 2)
        self.top = (channels[-1], sizes[-1])
        self.fc = mlp([latent_dim, *reversed(hidden), channels[-1] * sizes[-1]], act, final_act=act)
        chans = list(reversed(channels)) + [params_per_feature]
        self.sizes = list(reversed(sizes[:-1]))
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, 5, padding=2, padding_mode="circular") for a, b in zip(chans[:-1], chans[1:])
        )
        self.act = activation(act)

    def forward(self, z):
        h = self.fc(z).reshape(len(z), *self.top)
        for i, (conv, size) in enumerate(zip(self.convs, self.sizes)):
            h = conv(nn.functional.interpolate(h, size=size, mode="nearest"))
            if i < len(self.convs) - 1:
                h = self.act(h)
        return h.flatten(1)
