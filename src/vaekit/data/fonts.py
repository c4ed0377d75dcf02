"""A data set of fonts: every glyph of a fixed set (A-Z, a-z, 0-9) rendered to a small greyscale image.

    fonts = render_fonts(size=64)               # matplotlib's fonts + the system and TeX font folders
    fonts.images                                # (n_fonts, 62, 64, 64) float32 in [0, 1], ink = 1
    fonts.attribute("bold")                     # (n_fonts,) booleans read from the font file
    fonts.dropped                               # {reason: count}: unreadable, missing glyphs, symbol, duplicates
    fonts.skipped                               # [(file, reason)], the file relative to its font folder

One item is one *font*, as in the distill.pub latent space of fonts (Carter & Nielsen 2017,
"Using Artificial Intelligence to Augment Human Intelligence", 64 x 64 glyphs, 40-D latent).

Rendering keeps the differences between fonts: every glyph of a font is drawn on the same
baseline and scaled by *one* factor per font (the one that fits the font's tallest extent and
widest glyph in the box), then centred horizontally. A bold font stays darker, a condensed one
narrower, an italic one slanted. TrueType, OpenType, collections (.ttc) and Type 1 (.pfb/.pfa) files
are read, whatever FreeType (through Pillow) opens.

Attributes come from the font's own tables (fontTools): weight class >= 600, the bold style bit or a
style word such as "Bold"/"Heavy" in its names (bold); a non-zero italic angle, the italic/oblique
style bits or "Italic"/"Oblique"/"Slant" (italic); width class <= 4 or "Condensed"/"Narrow"
(condensed); serif when the family name says "Serif" / sans when it says "Sans" (else unknown).
A Type 1 font has no such tables: its own font dictionary (FamilyName, FullName, Weight, ItalicAngle,
read from the clear-text head of the file) gives the names, the weight and the angle, and the same
rules apply (a width word gives the width class).

What is left out, each counted in `FontSet.dropped` and listed in `FontSet.skipped`:
- *unreadable*: FreeType or fontTools cannot open or draw it (never an exception);
- *missing glyphs*: a character has no glyph, no ink, or draws the font's .notdef box;
- *symbol font*: the font says so itself (a (3, 0) symbol cmap, or the OS/2 "symbol character set" code page
  without the Latin 1 one); none of the fonts above does without also lacking letters;
- *not text*: the pixel test. Each glyph is compared with the median glyph of its character over all
  faces (16 x 16, Pearson correlation); a face whose mean correlation is below `TEXT_THRESHOLD` (0.3) draws
  pictures, not letters: semaphore and dingbat fonts, TeX math symbols and ornaments, the Last Resort font.
  The threshold was set by looking at the faces around it (TeX Live + Noto, 64 x 64): below 0.22 nearly all
  are pictures; between 0.22 and 0.3 about half are, the other half are extreme display faces (outline,
  3-D or pixel letters) that go too; text faces in thin, script or blackletter styles score 0.3 to 0.6 and stay.
  Below `TEXT_TEST_MIN_FACES` faces there is no median to compare with and the test is not run.
- *duplicate*: renders exactly like a face kept before it; *near-duplicate*: its glyphs differ from a kept
  face's by less than `NEAR_DUPLICATE` (0.02) in root mean square ink (16 x 16, all 62 glyphs). Pairs below
  0.02 are one design: the Type 1 and OpenType files of a family, Hack and DejaVu Sans Mono, neighbouring
  optical sizes; from about 0.03 on they are neighbouring weights (SemiBold/Bold) and are kept apart. The
  first face in file order is kept (TrueType/OpenType before Type 1, then by file name).

Rendering runs in a process pool (`workers`) and is cached under `cache_root()/fonts`
($VAEKIT_CACHE, else ~/.cache/vaekit/fonts) at two levels: each font file's glyphs (uint8, keyed by its
path, size, mtime, the characters, the glyph size and the renderer version), so that new fonts render
only themselves, and the filtered set (keyed by all of those and the filter settings), so that a warm
load reads one file. A cache file that cannot be read is rendered again, with one line on stderr.

On Debian/Ubuntu, `make fonts-data` installs Noto, TeX Live's extra fonts and about 80 more font
packages: 8,726 files holding 8,729 faces; at 64 x 64, 2,915 distinct text faces are kept
(1,074 families; 3,610 left out for missing glyphs, 135 not text, 625 duplicates, 1,443 near-duplicates,
1 unreadable). A cold render took 18 min on 2 busy cores (480 CPU-s), a warm load 16 s; the cache holds
135 MB of per-file glyphs and 64 MB for the set. About 1 in 40 kept faces still draws pictures (a star
with the letter inside, say): the pixel test is a median, not a reader.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import string
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from .core import Dataset, _pick, cache_root, register_dataset, split

CHARS = string.ascii_uppercase + string.ascii_lowercase + string.digits  # 62 glyphs
SUFFIXES = (".ttf", ".otf", ".ttc", ".pfb", ".pfa")
TYPE1 = (".pfb", ".pfa")
ATTRIBUTES = ("bold", "italic", "condensed", "serif")
# style words in the font's own family/style names, for fonts whose OS/2 table leaves the flags unset
BOLD_WORDS = {"bold", "semibold", "demibold", "extrabold", "ultrabold", "heavy", "black"}
ITALIC_WORDS = {"italic", "oblique", "slant", "slanted"}
CONDENSED_WORDS = {"condensed", "semicondensed", "extracondensed", "narrow", "compressed"}
# Type 1 fonts name their weight and width in words
WEIGHT_WORDS = {
    "thin": 100,
    "hairline": 100,
    "extralight": 200,
    "ultralight": 200,
    "light": 300,
    "book": 400,
    "regular": 400,
    "normal": 400,
    "roman": 400,
    "medium": 500,
    "semibold": 600,
    "demibold": 600,
    "demi": 600,
    "bold": 700,
    "extrabold": 800,
    "ultrabold": 800,
    "heavy": 800,
    "black": 900,
}
WIDTH_WORDS = {
    "ultracondensed": 1,
    "extracondensed": 2,
    "compressed": 2,
    "condensed": 3,
    "narrow": 3,
    "semicondensed": 4,
    "semiexpanded": 6,
    "expanded": 7,
    "extended": 7,
    "wide": 7,
}

DROP_REASONS = ("unreadable", "missing glyphs", "symbol font", "not text", "duplicate", "near-duplicate")
TEXT_THRESHOLD = 0.3  # mean correlation with the median glyph below which a face is not text
TEXT_TEST_MIN_FACES = 10  # fewer faces than this: no median to compare with, the pixel test is not run
NEAR_DUPLICATE = 0.02  # rms ink difference (16 x 16, all glyphs) below which two faces are one
RENDERER_VERSION = 2  # bump when rendering changes: the per-file caches are then rendered again
FILTER_VERSION = 2  # bump when the filters change: the set caches are then built again


def matplotlib_font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def system_font_dirs() -> list[Path]:
    """The usual font folders of Linux, macOS and Windows that exist on this machine."""
    home = Path.home()
    cands = [
        Path("/usr/share/fonts"),
        Path("/usr/local/share/fonts"),
        home / ".fonts",
        home / ".local/share/fonts",
        Path("/Library/Fonts"),
        Path("/System/Library/Fonts"),
        home / "Library/Fonts",
    ]
    if sys.platform.startswith("win"):
        cands.append(Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts")
    return [p for p in cands if p.is_dir()]


def tex_font_dirs() -> list[Path]:
    """The OpenType, TrueType and Type 1 folders of a TeX installation (Debian's texlive packages, or the
    newest TeX Live under /usr/local/texlive, or MacTeX) and of ~/texmf that exist on this machine."""
    roots = [Path("/usr/share/texlive/texmf-dist"), Path("/usr/share/texmf")]
    tl = sorted(Path("/usr/local/texlive").glob("[0-9]*/texmf-dist")) if Path("/usr/local/texlive").is_dir() else []
    roots += tl[-1:] + [Path("/Library/TeX/Root/texmf-dist"), Path.home() / "texmf"]
    out: list[Path] = []
    for root in roots:
        for kind in ("opentype", "truetype", "type1"):
            p = root / "fonts" / kind
            if p.is_dir() and p.resolve() not in {q.resolve() for q in out}:
                out.append(p)
    return out


def default_font_dirs() -> list[Path]:
    return [matplotlib_font_dir(), *system_font_dirs(), *tex_font_dirs()]


def _font_files(dirs) -> list[tuple[Path, str]]:
    """(file, its path relative to the folder it was found in) for every font file, each once, in the order
    fonts are kept: TrueType/OpenType before Type 1, then by file name."""
    out: dict[str, tuple[Path, str]] = {}
    for d in dirs:
        d = Path(d)
        if d.is_file() and d.suffix.lower() in SUFFIXES:
            out.setdefault(str(d.resolve()), (d, d.name))
            continue
        if not d.is_dir():
            raise VaekitError(f"{d}: font folder does not exist")
        for p in d.rglob("*"):
            if p.suffix.lower() in SUFFIXES and p.is_file():
                out.setdefault(str(p.resolve()), (p, p.relative_to(d).as_posix()))
    return sorted(out.values(), key=lambda pw: (pw[0].suffix.lower() in TYPE1, pw[0].name.lower(), str(pw[0])))


def font_files(dirs) -> list[Path]:
    """Every TTF/OTF/TTC/PFB/PFA file under the folders (recursively), each once, TrueType/OpenType first,
    then by file name."""
    return [p for p, _ in _font_files(dirs)]


# -- attributes --------------------------------------------------------------------------------
@dataclass
class FontInfo:
    """What one rendered font is and what its tables say about its style."""

    path: str
    index: int  # face index inside a .ttc collection (0 otherwise)
    family: str
    style: str
    weight: int  # OS/2 usWeightClass (400 regular, 700 bold)
    width: int  # OS/2 usWidthClass (5 normal, < 5 condensed)
    italic_angle: float  # post.italicAngle, degrees (negative leans right)
    bold: bool
    italic: bool
    condensed: bool
    serif: bool | None  # None: the family name does not say

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


def _words(*names: str) -> set[str]:
    return set(re.split(r"[^a-z]+", " ".join(names).lower()))


def _style_info(path, index, family, style, weight, width, angle, fs=0, mac=0, words=()) -> FontInfo:
    """The bold/italic/condensed/serif flags from the numbers and the names, the same for every format."""
    words = _words(family, style, *words)
    bold = weight >= 600 or bool(fs & (1 << 5)) or bool(mac & 1) or bool(words & BOLD_WORDS)
    italic = abs(angle) >= 1.0 or bool(fs & 1) or bool(fs & (1 << 9)) or bool(mac & 2) or bool(words & ITALIC_WORDS)
    condensed = width <= 4 or bool(words & CONDENSED_WORDS)
    lw = family.lower()
    serif = False if "sans" in lw else True if "serif" in lw else None
    return FontInfo(str(path), index, family, style, weight, width, angle, bold, italic, condensed, serif)


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
    return _style_info(path, index, family, style, weight, width, angle, fs, mac)


def _ps_unescape(s: str) -> str:
    """A PostScript string literal's body: \\ddd octal codes and \\n, \\(, \\), \\\\ escapes."""

    def one(m):
        e = m.group(1)
        if e[0] in "01234567":
            return chr(int(e, 8))
        return {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}.get(e, e)

    return re.sub(r"\\([0-7]{1,3}|.)", one, s, flags=re.S)


def type1_header(path) -> dict:
    """The clear-text entries of a Type 1 font's dictionary (FontName, FamilyName, FullName, Weight,
    ItalicAngle) as strings and numbers; the encrypted part (glyph programs) is not read."""
    from fontTools.t1Lib import readPFB

    if Path(path).suffix.lower() == ".pfb":
        data = readPFB(str(path), onlyHeader=True)  # the first (clear-text) segment
    else:
        data = Path(path).read_bytes().split(b"eexec")[0]
    text = data.decode("latin-1")
    out: dict = {}
    for key in ("FontName", "FamilyName", "FullName", "Weight", "ItalicAngle"):
        m = re.search(rf"/{key}\s*(?:\(((?:[^()\\]|\\.|\([^()]*\))*)\)|/?([-+\w.]+))", text, flags=re.S)
        if m:
            out[key] = _ps_unescape(m.group(1)).strip() if m.group(1) is not None else m.group(2)
    if "ItalicAngle" in out:
        try:
            out["ItalicAngle"] = float(out["ItalicAngle"])
        except ValueError:
            del out["ItalicAngle"]
    if "FontName" not in out:
        raise ValueError("no /FontName in the clear-text part: not a Type 1 font")
    return out


def type1_info(path) -> FontInfo:
    """Style attributes of a Type 1 font, from its own font dictionary (see `type1_header`)."""
    h = type1_header(path)
    family = h.get("FamilyName") or h["FontName"].split("-")[0]
    full = h.get("FullName", "")
    style = full[len(family) :].strip(" -") if full.lower().startswith(family.lower()) else ""
    style = style or h.get("Weight", "") or "Regular"
    weight = WEIGHT_WORDS.get(re.sub(r"[^a-z]", "", h.get("Weight", "").lower()), 400)
    words = _words(family, style, h["FontName"], full)
    width = min([WIDTH_WORDS[w] for w in words if w in WIDTH_WORDS], key=lambda v: abs(v - 5), default=5)
    return _style_info(
        path, 0, family, style, weight, width, float(h.get("ItalicAngle", 0.0)), words=(h["FontName"], full)
    )


def declares_symbol(tt) -> bool:
    """Whether a TrueType/OpenType font says it is a symbol font: a Windows symbol (3, 0) cmap, or the OS/2
    'symbol character set' code page (bit 31) without the Latin 1 one (bit 0): text fonts such as STIX and
    the Last Resort font claim both."""
    os2 = tt["OS/2"] if "OS/2" in tt else None
    pages = int(getattr(os2, "ulCodePageRange1", 0) or 0)
    if pages & (1 << 31) and not pages & 1:
        return True
    return "cmap" in tt and any(t.platformID == 3 and t.platEncID == 0 for t in tt["cmap"].tables)


# -- rendering ---------------------------------------------------------------------------------
NOT_A_CHAR = "\uffff"  # a noncharacter no font maps: draws the .notdef glyph


def _ink_crop(pil_font, ch: str):
    """Render one character at its baseline; returns (ink array (h, w) uint8, top offset from baseline) or None."""
    from PIL import Image, ImageDraw

    left, t, r, b = pil_font.getbbox(ch, anchor="ls")
    if r <= left or b <= t:
        return None
    im = Image.new("L", (r - left + 2, b - t + 2), 0)
    ImageDraw.Draw(im).text((1 - left, 1 - t), ch, font=pil_font, fill=255, anchor="ls")
    a = np.asarray(im)
    rows, cols = np.nonzero(a.max(1))[0], np.nonzero(a.max(0))[0]
    if len(rows) == 0:
        return None
    return a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], t - 1 + int(rows[0])


def render_glyphs(
    path, chars: str = CHARS, size: int = 32, index: int = 0, margin: float = 0.0625, oversample: int = 4
) -> np.ndarray:
    """Glyph images of one font, uint8 (len(chars), size, size), ink = 255.

    All glyphs share the font's baseline and one scale factor (the font's tallest extent or widest
    glyph fills size * (1 - 2 margin) pixels); each glyph is centred horizontally. Rendered at
    `oversample` times the size and reduced with a box filter (anti-aliasing). Raises ValueError
    naming the characters that have no ink or draw the font's .notdef glyph.
    """
    from PIL import Image, ImageFont

    pil_font = ImageFont.truetype(str(path), size=size * oversample, index=index)
    notdef = _ink_crop(pil_font, NOT_A_CHAR)
    crops = {ch: _ink_crop(pil_font, ch) for ch in chars}
    blank = [ch for ch, c in crops.items() if c is None]
    if blank:
        raise ValueError(f"glyphs without ink: {_few(blank)}")
    if notdef is not None:
        boxes = [ch for ch, (a, t) in crops.items() if t == notdef[1] and np.array_equal(a, notdef[0])]
        if boxes:
            raise ValueError(f"glyphs drawn as .notdef: {_few(boxes)}")
    top = min(t for _, t in crops.values())
    bottom = max(t + a.shape[0] for a, t in crops.values())
    side = max(bottom - top, max(a.shape[1] for a, _ in crops.values()))
    inner = max(1, int(round(size * (1 - 2 * margin))))
    lo = (size - inner) // 2
    v0 = (side - (bottom - top)) // 2  # centre the font's vertical extent in the box
    out = np.zeros((len(chars), size, size), np.uint8)
    for i, ch in enumerate(chars):
        a, t = crops[ch]
        canvas = np.zeros((side, side), np.uint8)
        y, x = v0 + t - top, (side - a.shape[1]) // 2
        canvas[y : y + a.shape[0], x : x + a.shape[1]] = a
        small = Image.fromarray(canvas).resize((inner, inner), Image.Resampling.BOX)
        out[i, lo : lo + inner, lo : lo + inner] = np.asarray(small)
    return out


def _few(chars) -> str:
    s = "".join(chars)
    return s if len(s) <= 12 else s[:12] + "..."


def _faces(path: Path):
    """(index, TTFont) for every face in a font file (several for a .ttc collection)."""
    from fontTools.ttLib import TTCollection, TTFont

    if path.suffix.lower() == ".ttc":
        coll = TTCollection(str(path), lazy=True)
        return list(enumerate(coll.fonts))
    return [(0, TTFont(str(path), lazy=True, fontNumber=-1))]


def _render_file(path: str, where: str, chars: str, size: int, cache_file: str | None = None):
    """Every face of one font file: ([{where, status, info}], glyphs uint8 (n_ok, C, size, size)).

    status is "ok" or the reason the face is left out, which starts with one of DROP_REASONS. Runs in
    a worker process; writes the file's cache entry when given one."""
    logging.getLogger("fontTools").setLevel(logging.ERROR)  # old fonts trip harmless timestamp warnings
    p = Path(path)
    faces: list[dict] = []
    glyphs: list[np.ndarray] = []
    if p.suffix.lower() in TYPE1:
        try:
            info = type1_info(p)
        except Exception as e:
            faces.append({"where": where, "status": f"unreadable ({type(e).__name__})", "info": None})
        else:
            faces.append(_render_face(p, 0, where, chars, size, info, None, glyphs))
    else:
        try:
            tts = _faces(p)
        except Exception as e:  # fontTools raises many types for a broken file
            tts = []
            faces.append({"where": where, "status": f"unreadable ({type(e).__name__})", "info": None})
        for index, tt in tts:
            w = where + (f"#{index}" if p.suffix.lower() == ".ttc" else "")
            try:
                cmap = tt["cmap"].getBestCmap() or {}  # no cmap table (KeyError): not a font
                missing = [ch for ch in chars if ord(ch) not in cmap]
                info = font_info(tt, p, index)
                symbol = declares_symbol(tt)
            except Exception as e:
                faces.append({"where": w, "status": f"unreadable ({type(e).__name__})", "info": None})
                continue
            faces.append(_render_face(p, index, w, chars, size, info, missing, glyphs, symbol))
    out = np.stack(glyphs) if glyphs else np.zeros((0, len(chars), size, size), np.uint8)
    if cache_file is not None:
        try:
            _save_entry(cache_file, faces, out)
        except OSError:
            pass  # a cache that cannot be written only costs time
    return faces, out


def _render_face(path, index, where, chars, size, info, missing, glyphs, symbol=False) -> dict:
    face = {"where": where, "status": "ok", "info": asdict(info)}
    if missing:
        face["status"] = f"missing glyphs: {_few(missing)} ({len(missing)} of {len(chars)})"
    elif symbol:
        face["status"] = "symbol font (its tables say so)"
    else:
        try:
            glyphs.append(render_glyphs(path, chars, size, index))
        except ValueError as e:
            text = str(e)
            face["status"] = (
                f"missing glyphs ({text})" if text.startswith("glyphs") else f"unreadable (ValueError: {text[:80]})"
            )
        except Exception as e:
            face["status"] = f"unreadable ({type(e).__name__}: {str(e)[:80]})"
    return face


# -- the disk cache ----------------------------------------------------------------------------
def _cache_dir(cache) -> Path | None:
    if cache is False or cache is None:
        return None
    return cache_root() / "fonts" if cache is True else Path(cache)


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def _file_key(path: Path, chars: str, size: int) -> str:
    st = path.stat()
    return _digest([str(path.resolve()), st.st_size, st.st_mtime_ns, chars, size, RENDERER_VERSION])


def _save_entry(path, meta, glyphs: np.ndarray) -> None:
    from ..io import save_npz

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_npz(path, {"meta": np.array(json.dumps(meta)), "glyphs": glyphs}, compressed=True)


def _load_entry(path, shape):
    """(meta, glyphs) of a cache file, or None when there is none; a file that cannot be read is
    reported on stderr in one line and treated as missing."""
    from ..io import load_npz

    path = Path(path)
    if not path.is_file():
        return None
    try:
        z = load_npz(path, ["meta", "glyphs"])
        meta, glyphs = json.loads(str(z["meta"])), z["glyphs"]
        if glyphs.dtype != np.uint8 or glyphs.shape[1:] != tuple(shape):
            raise ValueError(f"glyphs {glyphs.dtype} {glyphs.shape}")
        return meta, glyphs
    except Exception as e:  # truncated, corrupt, from another version: render again
        print(
            f"vaekit: font cache file {path.name} cannot be read ({type(e).__name__}); rendering again", file=sys.stderr
        )
        return None


# -- filters -----------------------------------------------------------------------------------
def _pooled(glyphs: np.ndarray, side: int, chunk: int = 256) -> torch.Tensor:
    """uint8 (n, C, S, S) -> float32 (n, C, side * side) in [0, 1], box-averaged, in chunks."""
    import torch.nn.functional as Fn

    n, c, s, _ = glyphs.shape
    out = torch.empty(n, c, side * side)
    for i in range(0, n, chunk):
        x = torch.from_numpy(glyphs[i : i + chunk]).float().div_(255.0)
        out[i : i + chunk] = Fn.adaptive_avg_pool2d(x, side).reshape(len(x), c, -1)
    return out


def text_likeness(pooled: torch.Tensor) -> torch.Tensor:
    """For glyphs (n, C, D) of n faces: the mean over characters of the Pearson correlation between a
    face's glyph and the median glyph of that character over all n faces, (n,). Text faces score high
    (about 0.6-0.9); faces that draw pictures instead of letters score low."""
    scores = torch.zeros(pooled.shape[0])
    for c in range(pooled.shape[1]):
        g = pooled[:, c]
        med = g.median(0).values
        gc, mc = g - g.mean(1, keepdim=True), med - med.mean()
        scores += (gc @ mc) / (gc.norm(dim=1) * mc.norm()).clamp_min(1e-8)
    return scores / pooled.shape[1]


def near_duplicates(pooled: torch.Tensor, threshold: float = NEAR_DUPLICATE, chunk: int = 512) -> dict[int, list]:
    """Pairs of faces whose glyphs (n, C, D) in [0, 1] differ by less than `threshold` in root mean square:
    {i: [(j, distance), ...] with j < i}. Euclidean distances are matrix products (torch.cdist, in chunks
    of rows), so thousands of faces take seconds."""
    n = pooled.shape[0]
    flat = pooled.reshape(n, -1)
    bound = threshold * flat.shape[1] ** 0.5
    out: dict[int, list] = {}
    for i0 in range(0, n, chunk):
        dist = torch.cdist(flat[i0 : i0 + chunk], flat[: i0 + chunk], compute_mode="use_mm_for_euclid_dist")
        ii, jj = torch.nonzero(dist < bound, as_tuple=True)
        keep = jj < ii + i0
        for i, j, d in zip((ii[keep] + i0).tolist(), jj[keep].tolist(), dist[ii[keep], jj[keep]].tolist()):
            out.setdefault(i, []).append((j, d / flat.shape[1] ** 0.5))
    return out


def _filter(faces, glyphs, text_threshold, near_threshold):
    """Indices into `glyphs` of the faces kept, and the reason for each one left out: {row: reason}."""
    n = len(glyphs)
    why: dict[int, str] = {}
    seen: dict[str, int] = {}
    for i in range(n):
        digest = hashlib.sha1(glyphs[i].tobytes()).hexdigest()
        if digest in seen:
            why[i] = f"duplicate rendering of {faces[seen[digest]]['where']}"
        else:
            seen[digest] = i
    rest = [i for i in range(n) if i not in why]
    if not rest:
        return [], why
    pooled = _pooled(glyphs[rest], min(16, glyphs.shape[-1]))
    if len(rest) >= TEXT_TEST_MIN_FACES:
        score = text_likeness(pooled)
        for k in torch.nonzero(score < text_threshold).flatten().tolist():
            why[rest[k]] = f"not text (glyphs correlate {score[k]:.2f} with the median glyphs)"
    text = [k for k, i in enumerate(rest) if i not in why]
    pairs = near_duplicates(pooled[text], near_threshold)
    kept: set[int] = set()
    for k in range(len(text)):
        hit = next(((j, d) for j, d in sorted(pairs.get(k, [])) if j in kept), None)
        if hit is None:
            kept.add(k)
        else:
            why[rest[text[k]]] = f"near-duplicate of {faces[rest[text[hit[0]]]]['where']} (rms difference {hit[1]:.4f})"
    return [rest[text[k]] for k in sorted(kept)], why


# -- the data set ------------------------------------------------------------------------------
@dataclass
class FontSet:
    """Rendered fonts: images (n_fonts, n_chars, size, size) in [0, 1], one FontInfo per font.

    `skipped` lists every face left out as (file relative to its font folder, reason); `dropped` counts
    them by the reason's first words (one of DROP_REASONS)."""

    images: torch.Tensor
    info: list[FontInfo]
    chars: str = CHARS
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    dropped: dict[str, int] = field(default_factory=dict)

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

    def attribute_groups(self, name: str) -> list[tuple]:
        """A label per font for `latent.attribute_vector(..., groups)`: its family and its other styles (bold,
        italic, condensed less `name`), so that the direction of `name` is measured between faces that differ
        in it alone (a family's bold and regular, both upright)."""
        others = [a for a in ATTRIBUTES if a not in (name, "serif")]
        return [(f.family, *(bool(getattr(f, a)) for a in others)) for f in self.info]

    def subset(self, index) -> FontSet:
        index = [int(i) for i in np.asarray(index).reshape(-1)]
        return FontSet(
            self.images[index], [self.info[i] for i in index], self.chars, self.skipped, self.seconds, self.dropped
        )

    def glyphs(self) -> Dataset:
        """Every glyph as its own item: x (n_fonts * n_chars, size, size), y the character index."""
        n, c = self.images.shape[:2]
        return Dataset(self.images.reshape(n * c, *self.images.shape[2:]), torch.arange(c).repeat(n), "glyphs")


def _reason(why: str) -> str:
    return next((r for r in DROP_REASONS if why.startswith(r)), why.split(" (")[0])


def render_fonts(
    dirs=None,
    chars: str = CHARS,
    size: int = 32,
    max_fonts: int | None = None,
    verbose: bool = False,
    workers: int | None = None,
    cache=True,
    text_threshold: float = TEXT_THRESHOLD,
    near_duplicate: float = NEAR_DUPLICATE,
) -> FontSet:
    """Render `chars` of every font file found in `dirs` (default: `default_font_dirs()`).

    Faces that cannot be read, lack a character, are symbol fonts, draw no letters (the pixel test,
    `text_threshold`) or render like a face kept before them (`near_duplicate`; 0 keeps all but exact
    copies) are left out: counted in `FontSet.dropped`, listed in `FontSet.skipped` (printed with verbose).
    `workers` processes render (default os.cpu_count(); 1 renders in this process). `cache`: True caches
    under cache_root()/fonts, a folder caches there, False renders everything again and writes nothing.
    `max_fonts` stops once that many faces are kept (files are rendered 256 at a time).
    """
    if size < 8:
        raise VaekitError(f"glyph size must be at least 8 pixels, got {size}")
    if not chars:
        raise VaekitError("no characters to render")
    t0 = time.perf_counter()
    files = _font_files(default_font_dirs() if dirs is None else dirs)
    if not files:
        raise VaekitError(f"no font files ({', '.join(SUFFIXES)}) in {', '.join(map(str, dirs or []))}")
    folder = _cache_dir(cache)
    keys = [_file_key(p, chars, size) for p, _ in files]
    set_file = None
    if folder is not None:
        set_key = _digest(
            [[k, w] for k, (_, w) in zip(keys, files)]
            + [chars, size, RENDERER_VERSION, FILTER_VERSION, text_threshold, near_duplicate, max_fonts]
        )
        set_file = folder / f"set-{size}-{set_key}.npz"
        hit = _load_entry(set_file, (len(chars), size, size))
        if hit is not None:
            meta, glyphs = hit
            fonts = _fontset(
                glyphs, [FontInfo(**f) for f in meta["info"]], chars, [tuple(s) for s in meta["skipped"]], t0
            )
            return _report(fonts, verbose)
    faces, glyphs = [], []
    step = len(files) if max_fonts is None else 256
    for s in range(0, len(files), step):
        for fs, g in _render_files(files[s : s + step], keys[s : s + step], chars, size, workers, folder):
            faces += fs
            glyphs.append(g)
        ok = [f for f in faces if f["status"] == "ok"]
        allg = np.concatenate(glyphs) if glyphs else np.zeros((0, len(chars), size, size), np.uint8)
        kept, why = _filter(ok, allg, text_threshold, near_duplicate)
        if max_fonts is not None and len(kept) >= max_fonts:
            kept = kept[:max_fonts]
            break
    skipped, row = [], 0
    for f in faces:
        if f["status"] != "ok":
            skipped.append((f["where"], f["status"]))
        else:
            if row in why:
                skipped.append((f["where"], why[row]))
            row += 1
    if not kept:
        raise VaekitError(f"none of the {len(files)} font files has all of {chars!r} ({len(skipped)} skipped)")
    images = allg[kept]
    info = [FontInfo(**ok[i]["info"]) for i in kept]
    if set_file is not None:
        try:
            _save_entry(set_file, {"info": [asdict(f) for f in info], "skipped": skipped}, images)
        except OSError:
            pass
    return _report(_fontset(images, info, chars, skipped, t0), verbose)


def _fontset(images: np.ndarray, info, chars, skipped, t0) -> FontSet:
    dropped = {r: 0 for r in DROP_REASONS}
    for _, why in skipped:
        dropped[_reason(why)] = dropped.get(_reason(why), 0) + 1
    x = torch.from_numpy(images).float().div_(255.0)
    return FontSet(x, info, chars, skipped, time.perf_counter() - t0, dropped)


def _report(fonts: FontSet, verbose: bool) -> FontSet:
    if verbose:
        for where, why in fonts.skipped:
            print(f"skipped {where}: {why}", file=sys.stderr)
        print(
            f"{len(fonts)} fonts kept; left out: " + ", ".join(f"{n} {r}" for r, n in fonts.dropped.items()),
            file=sys.stderr,
        )
    return fonts


def _render_files(files, keys, chars, size, workers, folder):
    """(faces, glyphs) of each file in order: from its cache entry, else rendered (in a process pool)."""
    results: list = [None] * len(files)
    todo = []
    for k, ((p, where), key) in enumerate(zip(files, keys)):
        entry = folder / "files" / f"{key}.npz" if folder is not None else None
        hit = _load_entry(entry, (len(chars), size, size)) if entry is not None else None
        if hit is not None:
            faces, g = hit
            for f in faces:
                f["where"] = where + f["where"][len(f["where"].split("#")[0]) :]  # the folder may differ
            results[k] = (faces, g)
        else:
            todo.append((k, (str(p), where, chars, size, None if entry is None else str(entry))))
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers <= 1 or len(todo) <= 1:
        for k, args in todo:
            results[k] = _render_file(*args)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork where it is safe and quick (Linux, as torch's DataLoader does); spawn elsewhere
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx) as pool:
            rendered = pool.map(_render_file, *zip(*(args for _, args in todo)), chunksize=4)
            for (k, _), r in zip(todo, rendered):
                results[k] = r
    return results


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


__all__ = [
    "CHARS",
    "DROP_REASONS",
    "FontInfo",
    "FontSet",
    "render_glyphs",
    "render_fonts",
    "font_files",
    "font_info",
    "type1_info",
    "type1_header",
    "declares_symbol",
    "text_likeness",
    "near_duplicates",
    "split_fonts",
    "default_font_dirs",
    "matplotlib_font_dir",
    "system_font_dirs",
    "tex_font_dirs",
]
