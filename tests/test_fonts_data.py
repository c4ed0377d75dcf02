"""The font corpus: Type 1 fonts, the filters (unreadable, symbol, near-duplicate), the process pool and the cache."""

import shutil
from pathlib import Path

import pytest
import torch

from vaekit.data import fonts as F

MPL = F.matplotlib_font_dir()
SANS, SERIF, CMR = MPL / "DejaVuSans.ttf", MPL / "DejaVuSerif.ttf", MPL / "cmr10.ttf"
TEXT = [f"DejaVu{s}{v}.ttf" for s in ("Sans", "Serif", "SansMono") for v in ("", "-Bold")] + [
    f"{n}.ttf" for n in ("cmr10", "cmb10", "cmss10", "cmtt10", "cmti10", "cmmi10")
]
SYMBOL = ["cmex10.ttf", "cmsy10.ttf"]  # TeX's math extension and symbol fonts: letters mapped to pictures


def folder(tmp_path, names, sub="fonts") -> Path:
    d = tmp_path / sub
    d.mkdir()
    for n in names:
        shutil.copy(MPL / n, d / n)
    return d


def reasons(fs) -> dict:
    return {Path(w).name: why for w, why in fs.skipped}


def test_unreadable_and_truncated_files_are_counted_not_fatal(tmp_path):
    d = folder(tmp_path, ["DejaVuSans.ttf"])
    (d / "truncated.ttf").write_bytes(SANS.read_bytes()[:4000])
    (d / "noise.otf").write_bytes(b"\x00\x01\x00\x00" + bytes(range(256)) * 4)
    (d / "noise.pfb").write_bytes(b"\x80\x01junk")
    (d / "sub").mkdir()
    (d / "sub" / "empty.ttc").write_bytes(b"")
    fs = F.render_fonts([d], size=16, cache=False, workers=1)
    assert len(fs) == 1 and fs.names == ["DejaVu Sans Book"]
    assert fs.dropped["unreadable"] == 4 and sum(fs.dropped.values()) == 4
    why = reasons(fs)
    assert all(why[n].startswith("unreadable") for n in ("truncated.ttf", "noise.otf", "noise.pfb", "empty.ttc"))
    assert "sub/empty.ttc" in dict(fs.skipped), "skipped files are named relative to their font folder"
    assert not any(str(tmp_path) in w for w, _ in fs.skipped)


def _edited_copy(src, dst, edit):
    from fontTools.ttLib import TTFont

    tt = TTFont(str(src))
    edit(tt)
    tt.save(str(dst))


def _move_point(tt, ch="A", dx=60):
    glyph = tt["glyf"][tt.getBestCmap()[ord(ch)]]
    x, y = glyph.coordinates[0]
    glyph.coordinates[0] = (x + dx, y)


def test_exact_and_near_copies_keep_one(tmp_path):
    d = folder(tmp_path, ["cmr10.ttf", "DejaVuSans.ttf"])
    shutil.copy(CMR, d / "copy-of-cmr10.ttf")
    _edited_copy(CMR, d / "near-cmr10.ttf", _move_point)  # one point of one glyph moved
    fs = F.render_fonts([d], size=16, cache=False, workers=1)
    assert len(fs) == 2 and fs.dropped["duplicate"] == 1 and fs.dropped["near-duplicate"] == 1
    why = reasons(fs)
    assert why["copy-of-cmr10.ttf"].startswith("duplicate rendering of cmr10.ttf")
    assert why["near-cmr10.ttf"].startswith("near-duplicate of cmr10.ttf")
    # the near copy does differ: with the near-duplicate test off it is kept
    assert len(F.render_fonts([d], size=16, cache=False, workers=1, near_duplicate=0.0)) == 3


def test_near_duplicates_finds_every_close_pair():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16)
    x[3] = (x[0] + 0.005).clamp(0, 1)  # mean |difference| < 0.01
    x[5] = x[3]
    pairs = F.near_duplicates(x, 0.01)
    assert set(pairs) == {3, 5} and [j for j, _ in pairs[3]] == [0] and sorted(j for j, _ in pairs[5]) == [0, 3]
    assert F.near_duplicates(x, 0.0) == {}


def test_symbol_fonts_are_left_out(tmp_path):
    d = folder(tmp_path, TEXT + SYMBOL)

    # a font that says it is a symbol font: a Windows (3, 0) symbol cmap beside its Unicode one
    def symbol_cmap(tt):
        from copy import deepcopy

        sub = deepcopy(next(t for t in tt["cmap"].tables if (t.platformID, t.platEncID) == (3, 1)))
        sub.platEncID = 0
        tt["cmap"].tables.append(sub)

    _edited_copy(CMR, d / "cmr10-symbol.ttf", symbol_cmap)
    from fontTools.ttLib import TTFont

    assert F.declares_symbol(TTFont(str(d / "cmr10-symbol.ttf"))) and not F.declares_symbol(TTFont(str(SANS)))
    fs = F.render_fonts([d], size=16, cache=tmp_path / "cache", workers=1)
    why = reasons(fs)
    assert why["cmr10-symbol.ttf"].startswith("symbol font")
    assert why["cmex10.ttf"].startswith("not text") and why["cmsy10.ttf"].startswith("not text")
    assert fs.dropped["not text"] == 2 and fs.dropped["symbol font"] == 1
    assert len(fs) == len(TEXT), "every text face is kept"
    # below TEXT_TEST_MIN_FACES faces there is no median glyph to compare with: the pixel test is off
    few = F.render_fonts([d / "DejaVuSans.ttf", d / "cmex10.ttf"], size=16, cache=False, workers=1)
    assert len(few) == 2


def test_text_likeness_scores_letters_above_pictures():
    torch.manual_seed(0)
    letters = torch.rand(1, 5, 64).repeat(12, 1, 1) + 0.2 * torch.rand(12, 5, 64)
    letters[-1] = torch.rand(5, 64)  # one face draws something else
    score = F.text_likeness(letters)
    assert score[:-1].min() > 0.8 and score[-1] < 0.3


def test_corrupt_cache_files_are_rebuilt_with_one_line(tmp_path, capsys):
    d = folder(tmp_path, ["DejaVuSans.ttf", "DejaVuSerif.ttf"])
    cache = tmp_path / "cache"
    a = F.render_fonts([d], size=16, cache=cache, workers=1)
    (s,), files = list(cache.glob("set-16-*.npz")), sorted((cache / "files").glob("*.npz"))
    assert len(files) == 2
    assert capsys.readouterr().err == ""
    warm = F.render_fonts([d], size=16, cache=cache, workers=1)
    assert torch.equal(warm.images, a.images) and warm.names == a.names and warm.dropped == a.dropped
    s.write_bytes(b"not an npz file")
    files[0].write_bytes(files[0].read_bytes()[:200])  # truncated
    b = F.render_fonts([d], size=16, cache=cache, workers=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.count("cannot be read") == 2 and "Traceback" not in err
    assert str(tmp_path) not in err
    assert torch.equal(b.images, a.images) and b.names == a.names
    F.render_fonts([d], size=16, cache=cache, workers=1)
    assert capsys.readouterr().err == "", "the rebuilt files are read again without complaint"


def test_cache_stores_uint8_and_new_files_render_alone(tmp_path):
    from vaekit.io import load_npz

    d = folder(tmp_path, ["DejaVuSans.ttf"])
    cache = tmp_path / "cache"
    F.render_fonts([d], size=16, cache=cache, workers=1)
    (entry,) = (cache / "files").glob("*.npz")
    assert load_npz(entry)["glyphs"].dtype.name == "uint8"
    before = entry.stat().st_mtime_ns
    shutil.copy(SERIF, d / SERIF.name)
    fs = F.render_fonts([d], size=16, cache=cache, workers=1)
    assert len(fs) == 2 and len(list((cache / "files").glob("*.npz"))) == 2
    assert entry.stat().st_mtime_ns == before, "the font already rendered is read from its cache entry"


def test_two_workers_render_what_one_does(tmp_path):
    d = folder(tmp_path, ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSans-Bold.ttf", "cmr10.ttf", "cmex10.ttf"])
    one = F.render_fonts([d], size=16, cache=False, workers=1)
    two = F.render_fonts([d], size=16, cache=False, workers=2)
    assert torch.equal(one.images, two.images) and one.names == two.names and one.skipped == two.skipped


def test_type1_header_and_attributes(tmp_path):
    pfa = tmp_path / "Test-BoldItalic.pfa"
    pfa.write_text(
        "%!PS-AdobeFont-1.0: Test-BoldItalic 001\n11 dict begin\n/FontType 1 def\n"
        "/FontName /Test-BoldCondItalic def\n/FontInfo 5 dict dup begin\n"
        " /FamilyName (Test \\050x\\051) readonly def\n /FullName (Test (x) Bold Condensed Italic) readonly def\n"
        " /Weight (Bold) readonly def\n /ItalicAngle -12 def\nend readonly def\ncurrentfile eexec\n0123abcd\n"
    )
    h = F.type1_header(pfa)
    assert h["FamilyName"] == "Test (x)" and h["Weight"] == "Bold" and h["ItalicAngle"] == -12.0
    info = F.type1_info(pfa)
    assert info.family == "Test (x)" and info.style == "Bold Condensed Italic"
    assert info.bold and info.italic and info.condensed and info.weight == 700 and info.width == 3
    # no glyph programs: counted as unreadable, never raised
    fs = F.render_fonts([tmp_path, SANS], size=16, cache=False, workers=1)
    assert reasons(fs)[pfa.name].startswith("unreadable") and fs.dropped["unreadable"] == 1


def _a_type1_text_font():
    """A Type 1 text font from this machine's font folders (URW, Latin Modern, Computer Modern), else None."""
    wanted = ("NimbusSans-Regular.pfb", "NimbusRoman-Regular.pfb", "lmr10.pfb", "cmr10.pfb", "qhvr.pfb")
    for d in [*F.system_font_dirs(), *F.tex_font_dirs()]:
        if d.name not in ("opentype", "truetype"):
            for name in wanted:
                hit = next(d.rglob(name), None)
                if hit is not None:
                    return hit
    return None


def test_type1_font_renders_when_one_is_installed(tmp_path):
    pfb = _a_type1_text_font()
    if pfb is None:
        pytest.skip("no Type 1 text font (URW base 35, Latin Modern or Computer Modern .pfb) in the font folders")
    info = F.type1_info(pfb)
    assert info.family and info.weight == 400 and not info.bold and not info.italic
    ims = F.render_glyphs(pfb, size=16)
    assert ims.shape == (62, 16, 16) and (ims.reshape(62, -1).max(1) > 128).all()
    shutil.copy(pfb, tmp_path / pfb.name)
    fs = F.render_fonts([tmp_path], size=16, cache=False, workers=1)
    assert len(fs) == 1 and fs.info[0].family == info.family
