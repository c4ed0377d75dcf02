"""A data set of fonts: every glyph of a fixed set (A-Z, a-z, 0-9) rendered to a small greyscale image.

    fonts = render_fonts()                      # matplotlib's fonts + the system font folders
    fonts.images                                # (n_fonts, 62, 32, 32) float32 in [0, 1], ink = 1
    fonts.attribute("bold")                     # (n_fonts,) booleans read from the font file
    fonts.skipped                               # [(file, reason)]: fonts lacking glyphs, duplicates, ...

One item is one *font*, as in the distill.pub latent space of fonts (Carter & Nielsen 2017,
"Using Artificial Intelligence to Augment Human Intelligence", 64 x 64 glyphs, 40-D latent).

Rendering keeps the differences between fonts: every glyph of a font is drawn on the same
baseline and scaled by *one* factor per font (the one that fits the font's tallest extent and
widest glyph in the box), then centred horizontally. A bold font stays darker, a condensed one
narrower, an italic one slanted.

Attributes come from the font's own tables (fontTools): weight class >= 600, the bold style bit or a
style word such as "Bold"/"Heavy" in its names (bold); a non-zero italic angle, the italic/oblique
style bits or "Italic"/"Oblique"/"Slant" (italic); width class <= 4 or "Condensed"/"Narrow"
(condensed); serif when the family name says "Serif" / sans when it says "Sans" (else unknown).

On Debian/Ubuntu, `apt-get install fonts-aenigma fonts-dejavu fonts-liberation fonts-noto-core`
gives several hundred families (about 770 files; fonts without Latin letters are skipped).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset, _pick, register_dataset, split

CHARS = string.ascii_uppercase + string.ascii_lowercase + string.digits      # 62 glyphs
SUFFIXES = (".ttf", ".otf", ".ttc")
ATTRIBUTES = ("bold", "italic", "condensed", "serif")
# style words in the font's own family/style names, for fonts whose OS/2 table leaves the flags unset
BOLD_WORDS = {"bold", "semibold", "demibold", "extrabold", "ultrabold", "heavy", "black"}
ITALIC_WORDS = {"italic", "oblique", "slant", "slanted"}
CONDENSED_WORDS = {"condensed", "semicondensed", "extracondensed", "narrow", "compressed"}


def matplotlib_font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def system_font_dirs() -> list[Path]:
    """The usual font folders of Linux, macOS and Windows that exist on this machine."""
    home = Path.home()
    cands = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), home / ".fonts", home / ".local/share/fonts",
             Path("/Library/Fonts"), Path("/System/Library/Fonts"), home / "Library/Fonts"]
    if sys.platform.startswith("win"):
        cands.append(Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts")
    return [p for p in cands if p.is_dir()]


def default_font_dirs() -> list[Path]:
    return [matplotlib_font_dir(), *system_font_dirs()]


def font_files(dirs) -> list[Path]:
    """Every TTF/OTF/TTC file under the folders (recursively), sorted, each once."""
    out: dict[str, Path] = {}
    for d in dirs:
        d = Path(d)
        if d.is_file() and d.suffix.lower() in SUFFIXES:
            out.setdefault(str(d.resolve()), d)
            continue
        if not d.is_dir():
            raise VaekitError(f"{d}: font folder does not exist")
        for p in d.rglob("*"):
            if p.suffix.lower() in SUFFIXES and p.is_file():
                out.setdefault(str(p.resolve()), p)
    return sorted(out.values(), key=lambda p: (p.name.lower(), str(p)))


# -- attributes --------------------------------------------------------------------------------
@dataclass
class FontInfo:
    """What one rendered font is and what its tables say about its style."""

    path: str
    index: int                  # face index inside a .ttc collection (0 otherwise)
    family: str
    style: str
    weight: int                 # OS/2 usWeightClass (400 regular, 700 bold)
    width: int                  # OS/2 usWidthClass (5 normal, < 5 condensed)
    italic_angle: float         # post.italicAngle, degrees (negative leans right)
    bold: bool
    italic: bool
    condensed: bool
    serif: bool | None          # None: the family name does not say

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}".strip()


def _name(tt, *ids) -> str:
    table = tt["name"] if "name" in tt else None
    for i in ids:
        if table is not None:
            rec = table.getDebugName(i)
            if rec:
                return str(rec).strip()
    return ""


def font_info(tt, path, index: int = 0) -> FontInfo:
    """Style attributes of an open fontTools TTFont."""
    family = _name(tt, 16, 1) or Path(path).stem
    style = _name(tt, 17, 2)
    os2 = tt["OS/2"] if "OS/2" in tt else None
    weight = int(getattr(os2, "usWeightClass", 400) or 400)
    width = int(getattr(os2, "usWidthClass", 5) or 5)
    fs = int(getattr(os2, "fsSelection", 0) or 0)
    mac = int(getattr(tt["head"], "macStyle", 0)) if "head" in tt else 0
    angle = float(getattr(tt["post"], "italicAngle", 0.0)) if "post" in tt else 0.0
    words = set(re.split(r"[^a-z]+", f"{family} {style}".lower()))
    bold = weight >= 600 or bool(fs & (1 << 5)) or bool(mac & 1) or bool(words & BOLD_WORDS)
    italic = abs(angle) >= 1.0 or bool(fs & 1) or bool(fs & (1 << 9)) or bool(mac & 2) or bool(words & ITALIC_WORDS)
    condensed = width <= 4 or bool(words & CONDENSED_WORDS)
    lw = family.lower()
    serif = False if "sans" in lw else True if "serif" in lw else None
    return FontInfo(str(path), index, family, style, weight, width, angle, bold, italic, condensed, serif)


# -- rendering ---------------------------------------------------------------------------------
def _ink_crop(pil_font, ch: str):
    """Render one character at its baseline; returns (ink array (h, w) uint8, top offset from baseline) or None."""
    from PIL import Image, ImageDraw

    l, t, r, b = pil_font.getbbox(ch, anchor="ls")
    if r <= l or b <= t:
        return None
    im = Image.new("L", (r - l + 2, b - t + 2), 0)
    ImageDraw.Draw(im).text((1 - l, 1 - t), ch, font=pil_font, fill=255, anchor="ls")
    a = np.asarray(im)
    rows, cols = np.nonzero(a.max(1))[0], np.nonzero(a.max(0))[0]
    if len(rows) == 0:
        return None
    return a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], t - 1 + int(rows[0])


def render_glyphs(path, chars: str = CHARS, size: int = 32, index: int = 0, margin: float = 0.0625,
                  oversample: int = 4) -> np.ndarray:
    """Glyph images of one font, uint8 (len(chars), size, size), ink = 255.

    All glyphs share the font's baseline and one scale factor (the font's tallest extent or widest
    glyph fills size * (1 - 2 margin) pixels); each glyph is centred horizontally. Rendered at
    `oversample` times the size and reduced with a box filter (anti-aliasing). Raises ValueError
    naming the characters that have no ink.
    """
    from PIL import Image, ImageFont

    pil_font = ImageFont.truetype(str(path), size=size * oversample, index=index)
    crops = {ch: _ink_crop(pil_font, ch) for ch in chars}
    blank = [ch for ch, c in crops.items() if c is None]
    if blank:
        raise ValueError(f"glyphs without ink: {''.join(blank)}")
    top = min(t for _, t in crops.values())
    bottom = max(t + a.shape[0] for a, t in crops.values())
    side = max(bottom - top, max(a.shape[1] for a, _ in crops.values()))
    inner = max(1, int(round(size * (1 - 2 * margin))))
    lo = (size - inner) // 2
    v0 = (side - (bottom - top)) // 2            # centre the font's vertical extent in the box
    out = np.zeros((len(chars), size, size), np.uint8)
    for i, ch in enumerate(chars):
        a, t = crops[ch]
        canvas = np.zeros((side, side), np.uint8)
        y, x = v0 + t - top, (side - a.shape[1]) // 2
        canvas[y:y + a.shape[0], x:x + a.shape[1]] = a
        small = Image.fromarray(canvas).resize((inner, inner), Image.Resampling.BOX)
        out[i, lo:lo + inner, lo:lo + inner] = np.asarray(small)
    return out


def _faces(path: Path):
    """(index, TTFont) for every face in a font file (several for a .ttc collection)."""
    from fontTools.ttLib import TTCollection, TTFont

    if path.suffix.lower() == ".ttc":
        coll = TTCollection(str(path), lazy=True)
        return list(enumerate(coll.fonts))
    return [(0, TTFont(str(path), lazy=True, fontNumber=-1))]


@dataclass
class FontSet:
    """Rendered fonts: images (n_fonts, n_chars, size, size) in [0, 1], one FontInfo per font."""

    images: torch.Tensor
    info: list[FontInfo]
    chars: str = CHARS
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.info)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.info]

    def attribute(self, name: str) -> np.ndarray:
        """Booleans (n_fonts,) for 'bold', 'italic', 'condensed'; for 'serif', floats with NaN = unknown."""
        if name not in ATTRIBUTES:
            raise VaekitError(f"unknown font attribute {name!r}; choose one of {ATTRIBUTES}")
        vals = [getattr(f, name) for f in self.info]
        if name == "serif":
            return np.array([np.nan if v is None else float(v) for v in vals])
        return np.array(vals, dtype=bool)

    def subset(self, index) -> "FontSet":
        index = [int(i) for i in np.asarray(index).reshape(-1)]
        return FontSet(self.images[index], [self.info[i] for i in index], self.chars, self.skipped, self.seconds)

    def glyphs(self) -> Dataset:
        """Every glyph as its own item: x (n_fonts * n_chars, size, size), y the character index."""
        n, c = self.images.shape[:2]
        return Dataset(self.images.reshape(n * c, *self.images.shape[2:]), torch.arange(c).repeat(n), "glyphs")


def render_fonts(dirs=None, chars: str = CHARS, size: int = 32, max_fonts: int | None = None,
                 verbose: bool = False) -> FontSet:
    """Render `chars` of every font file found in `dirs` (default: `default_font_dirs()`).

    Fonts that lack one of the characters, cannot be read, or render exactly like a font already
    kept are left out and listed in `FontSet.skipped` with the reason (and printed with verbose).
    """
    import time

    if size < 8:
        raise VaekitError(f"glyph size must be at least 8 pixels, got {size}")
    if not chars:
        raise VaekitError("no characters to render")
    t0 = time.perf_counter()
    files = font_files(default_font_dirs() if dirs is None else dirs)
    if not files:
        raise VaekitError(f"no font files ({', '.join(SUFFIXES)}) in {', '.join(map(str, dirs or []))}")
    logger = logging.getLogger("fontTools")
    level = logger.level
    logger.setLevel(logging.ERROR)          # old fonts trip harmless timestamp warnings
    try:
        images, infos, skipped = _render_all(files, chars, size, max_fonts)
    finally:
        logger.setLevel(level)
    if verbose:
        for where, why in skipped:
            print(f"skipped {where}: {why}", file=sys.stderr)
    if not infos:
        raise VaekitError(f"none of the {len(files)} font files has all of {chars!r} ({len(skipped)} skipped)")
    x = torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)
    return FontSet(x, infos, chars, skipped, time.perf_counter() - t0)


def _render_all(files, chars, size, max_fonts):
    images, infos, skipped, seen = [], [], [], {}
    for path in files:
        try:
            faces = _faces(path)
        except Exception as e:   # fontTools raises many types for a broken file
            skipped.append((str(path), f"unreadable ({type(e).__name__})"))
            continue
        for index, tt in faces:
            where = f"{path}" + (f"#{index}" if path.suffix.lower() == ".ttc" else "")
            try:
                cmap = tt.getBestCmap() or {}
                missing = "".join(ch for ch in chars if ord(ch) not in cmap)
                if missing:
                    skipped.append((where, f"missing glyphs: {missing if len(missing) <= 12 else missing[:12] + '...'}"
                                           f" ({len(missing)} of {len(chars)})"))
                    continue
                info = font_info(tt, path, index)
                ims = render_glyphs(path, chars, size, index)
            except Exception as e:
                skipped.append((where, f"cannot render ({type(e).__name__}: {str(e)[:80]})"))
                continue
            digest = hashlib.sha1(ims.tobytes()).hexdigest()
            if digest in seen:
                skipped.append((where, f"duplicate rendering of {seen[digest]}"))
                continue
            seen[digest] = where
            images.append(ims)
            infos.append(info)
            if max_fonts is not None and len(infos) >= max_fonts:
                break
        if max_fonts is not None and len(infos) >= max_fonts:
            break
    return images, infos, skipped


def split_fonts(fonts: FontSet, fraction: float = 0.1, seed: int = 0) -> tuple[FontSet, FontSet]:
    """Hold out a fraction of the *fonts* (never single glyphs of a font seen in training)."""
    n = len(fonts)
    n_test = int(round(n * fraction))
    if not 0 < n_test < n:
        raise VaekitError(f"cannot hold out {fraction:.0%} of {n} fonts")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return fonts.subset(np.sort(perm[n_test:])), fonts.subset(np.sort(perm[:n_test]))


@register_dataset("fonts")
def fonts_dataset(split_name: str = "train", data_dir=None) -> Dataset:
    """The default font set as a Dataset of fonts: x (n_fonts, 62, 32, 32); 10 % of fonts held out as 'test'.

    `data_dir`, when given, is the font folder to scan instead of the default folders.
    """
    fonts = render_fonts([data_dir] if data_dir else None)
    full = Dataset(fonts.images, None, "fonts")
    if len(full) < 2:
        return _pick(split_name, {"all": full})
    train, test = split(full, 0.1, seed=0) if len(full) >= 10 else (full, full)
    return _pick(split_name, {"train": train, "test": test, "all": full})


__all__ = ["CHARS", "FontInfo", "FontSet", "render_glyphs", "render_fonts", "font_files", "font_info",
           "split_fonts", "default_font_dirs", "matplotlib_font_dir", "system_font_dirs"]
