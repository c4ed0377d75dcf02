"""What a font model's glyphs are worth, measured: a glyph classifier and the glyph Fréchet distance.

Pictures of sampled fonts are judged by eye; these numbers judge them the way FCD judges molecules.

    clf = train_classifier(train_fonts.images, attributes)     # real glyphs of training fonts
    s = score(clf, images)               # images (n_fonts, n_chars, H, W) in [0, 1], ink = 1
    s["char_accuracy"]                   # fraction of glyphs read as their own character
    s["bold"]                            # (n_fonts,) mean P(bold) over each font's glyphs
    glyph_fd(clf, real, generated)       # Fréchet distance of the classifier's features

The classifier reads one glyph (average-pooled to 32 x 32): three stride-2 convolutions and a
256-unit layer (its *features*), then two heads: which character it is (softmax over the font
set's characters) and whether it is bold, italic, condensed (independent logistic outputs, the
labels read from the font files, `data.fonts.FontInfo`).  Trained on the real glyphs of the
training fonts only, it tells how readable a reconstruction, a sample or an edited font is: a
sampled "A" must be read as an "A".  The glyph Fréchet distance (`frechet.frechet_distance`
between Gaussians fitted to the features of two glyph sets) is the fonts' counterpart of FCD.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .frechet import frechet_distance, moments

ATTRIBUTES = ("bold", "italic", "condensed")
SIZE = 32  # glyphs are read at this size


class GlyphClassifier(nn.Module):
    """One glyph (N, H, W) -> character logits (N, n_chars) and attribute logits (N, 3)."""

    def __init__(self, n_chars: int, channels=(16, 32, 64), features: int = 256):
        super().__init__()
        layers, c = [], 1
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), nn.ReLU()]
            c = c_out
        side = SIZE // 2 ** len(channels)
        self.convs = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, features), nn.ReLU())
        self.char = nn.Linear(features, n_chars)
        self.attributes = nn.Linear(features, len(ATTRIBUTES))

    def features(self, glyphs: torch.Tensor) -> torch.Tensor:
        x = glyphs.reshape(-1, 1, *glyphs.shape[-2:]).float()
        if x.shape[-1] != SIZE or x.shape[-2] != SIZE:
            x = F.adaptive_avg_pool2d(x, SIZE) if x.shape[-1] > SIZE else F.interpolate(x, size=SIZE, mode="bilinear")
        return self.convs(x)

    def forward(self, glyphs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(glyphs)
        return self.char(f), self.attributes(f)


def shifted(glyphs: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Each glyph (N, H, W) moved by its own random whole-pixel offset in [-max_shift, max_shift] on both axes,
    the background (0) filling in: a generated glyph need not sit exactly where the renderer puts real ones."""
    if max_shift <= 0:
        return glyphs
    n, h, w = glyphs.shape
    m = max_shift
    padded = F.pad(glyphs, (m, m, m, m))
    dy, dx = torch.randint(0, 2 * m + 1, (2, n), generator=g)
    rows = (dy[:, None] + torch.arange(h))[:, :, None].expand(n, h, w)
    cols = (dx[:, None] + torch.arange(w))[:, None, :].expand(n, h, w)
    return padded[torch.arange(n)[:, None, None], rows, cols]


def train_classifier(
    images: torch.Tensor,
    attributes: np.ndarray,
    *,
    n_glyphs: int | None = None,
    epochs: int = 3,
    batch_size: int = 256,
    lr: float = 2e-3,
    channels: tuple[int, ...] = (16, 32, 64),
    max_shift: int = 0,
    seed: int = 0,
) -> GlyphClassifier:
    """Fit the classifier on real glyphs: images (n_fonts, n_chars, H, W), attributes (n_fonts, 3) booleans
    (bold, italic, condensed).  Trains on `n_glyphs` glyphs drawn at random (all of them by default, or when
    there are fewer), each attribute's loss weighted so that its rare class counts as much as its common one;
    `channels` are the widths of the three convolutions, `max_shift` (pixels of the input) a random translation
    of every training glyph (0: none)."""
    n_fonts, n_chars = images.shape[:2]
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pick = torch.randperm(n_fonts * n_chars, generator=g)[:n_glyphs]
    glyphs = images.reshape(n_fonts * n_chars, *images.shape[2:])[pick]
    chars = (pick % n_chars).long()
    attrs = torch.as_tensor(np.asarray(attributes, dtype=np.float32))[pick // n_chars]
    pos = attrs.mean(0).clamp(1e-3, 1 - 1e-3)
    clf = GlyphClassifier(n_chars, channels=channels)
    opt = torch.optim.Adam(clf.parameters(), lr)
    steps = epochs * ((len(pick) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for _ in range(epochs):
        for idx in torch.randperm(len(pick), generator=g).split(batch_size):
            char_logits, attr_logits = clf(shifted(glyphs[idx].float(), max_shift, g))
            loss = F.cross_entropy(char_logits, chars[idx]) + F.binary_cross_entropy_with_logits(
                attr_logits, attrs[idx], pos_weight=(1 - pos) / pos
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return clf.eval()


@torch.no_grad()
def _batched(f, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    glyphs = images.reshape(-1, *images.shape[-2:])
    return torch.cat([f(b) for b in glyphs.split(batch_size)])


def score(clf: GlyphClassifier, images) -> dict:
    """How the classifier reads fonts (n_fonts, n_chars, H, W): "char_accuracy" (fraction of all glyphs read as
    their own character), "font_accuracy" (n_fonts,) (the same per font) and, per attribute, (n_fonts,) the mean
    probability over the font's glyphs."""
    images = torch.as_tensor(images)
    n_fonts, n_chars = images.shape[:2]
    out = _batched(
        lambda b: torch.cat([torch.softmax(h, -1) if i == 0 else torch.sigmoid(h) for i, h in enumerate(clf(b))], -1),
        images,
    )
    chars = out[:, :n_chars].argmax(-1).reshape(n_fonts, n_chars)
    right = (chars == torch.arange(n_chars)).float()
    probs = out[:, n_chars:].reshape(n_fonts, n_chars, len(ATTRIBUTES)).mean(1)
    return {
        "char_accuracy": float(right.mean()),
        "font_accuracy": right.mean(1).numpy(),
        **{a: probs[:, i].numpy() for i, a in enumerate(ATTRIBUTES)},
    }


def features(clf: GlyphClassifier, images) -> np.ndarray:
    """The classifier's features of every glyph: (n_glyphs, 256)."""
    return _batched(clf.features, torch.as_tensor(images)).numpy()


def glyph_fd(clf: GlyphClassifier, real, generated) -> float:
    """Fréchet distance between the feature Gaussians of two glyph sets (lower: closer to the real glyphs)."""
    return frechet_distance(*moments(features(clf, real)), *moments(features(clf, generated)))


__all__ = ["ATTRIBUTES", "GlyphClassifier", "shifted", "train_classifier", "score", "features", "glyph_fd"]
