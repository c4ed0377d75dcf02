"""Font rendering, attributes read from font files, the per-font VAE, and the quick fonts report."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import fonts as F
from vaekit.errors import VaekitError
from vaekit.models import build, fontvae  # noqa: F401

MPL = F.matplotlib_font_dir()
SANS, SANS_BOLD = MPL / "DejaVuSans.ttf", MPL / "DejaVuSans-Bold.ttf"
SERIF_ITALIC, SERIF = MPL / "DejaVuSerif-Italic.ttf", MPL / "DejaVuSerif.ttf"
NO_LATIN = MPL / "STIXSizOneSymReg.ttf"  # a symbol font without letters


def ink_width(glyph: np.ndarray) -> int:
    cols = np.nonzero(glyph.max(0) > 64)[0]
    return int(cols[-1] - cols[0] + 1)


def test_render_glyphs_every_glyph_in_the_box():
    ims = F.render_glyphs(SANS, size=32)
    assert ims.shape == (62, 32, 32) and ims.dtype == np.uint8
    assert (ims.reshape(62, -1).max(1) > 128).all(), "every glyph has ink"
    # the margin (2 px at 32) stays empty: nothing is cut off at the border
    assert ims[:, :2].max() == 0 and ims[:, -2:].max() == 0 and ims[:, :, :2].max() == 0 and ims[:, :, -2:].max() == 0
    # one scale and one baseline per font: 'x' is shorter than 'X', 'p' hangs lower than 'o'
    x, X = ims[F.CHARS.index("x")], ims[F.CHARS.index("X")]
    assert (x.max(1) > 64).sum() < (X.max(1) > 64).sum()
    low = lambda g: np.nonzero(g.max(1) > 64)[0][-1]  # noqa: E731
    assert low(ims[F.CHARS.index("p")]) > low(ims[F.CHARS.index("o")])
    assert F.render_glyphs(SANS, "AB", size=16).shape == (2, 16, 16)


def test_bold_darker_and_condensed_narrower():
    reg, bold = F.render_glyphs(SANS), F.render_glyphs(SANS_BOLD)
    assert bold.mean() > 1.2 * reg.mean()
    cond = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf")
    if cond.is_file():
        m = F.CHARS.index("M")
        assert ink_width(F.render_glyphs(cond)[m]) < ink_width(reg[m])


def test_missing_glyph_font_is_reported_not_silent(tmp_path):
    for p in (SANS, NO_LATIN):
        shutil.copy(p, tmp_path / p.name)
    shutil.copy(SANS, tmp_path / "copy-of-sans.ttf")  # renders identically: a duplicate
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    fs = F.render_fonts([tmp_path], size=16)
    assert len(fs) == 1 and fs.images.shape == (1, 62, 16, 16)
    reasons = {Path(p).name: why for p, why in fs.skipped}
    assert reasons[NO_LATIN.name].startswith("missing glyphs")
    assert "duplicate" in reasons[SANS.name] or "duplicate" in reasons["copy-of-sans.ttf"]
    assert reasons["broken.ttf"].startswith("unreadable")
    assert 0.0 <= fs.images.min() and fs.images.max() <= 1.0
    with pytest.raises(VaekitError, match="none of the"):
        F.render_fonts([tmp_path / NO_LATIN.name])
    with pytest.raises(VaekitError, match="does not exist"):
        F.render_fonts([tmp_path / "nowhere"])
    with pytest.raises(VaekitError, match="at least 8"):
        F.render_fonts([tmp_path], size=4)


def _info(path):
    from fontTools.ttLib import TTFont

    return F.font_info(TTFont(str(path), lazy=True), path)


def test_attributes_of_fonts_whose_style_is_known():
    b = _info(SANS_BOLD)
    assert b.bold and not b.italic and not b.condensed and b.serif is False and b.weight == 700
    i = _info(SERIF_ITALIC)
    assert i.italic and not i.bold and i.serif is True and i.italic_angle < 0
    r = _info(SERIF)
    assert not (r.bold or r.italic or r.condensed) and r.serif is True
    cond = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf")
    if cond.is_file():
        c = _info(cond)
        assert c.condensed and c.width < 5 and not c.bold


def test_fontset_attributes_and_split():
    fs = F.render_fonts([SANS, SANS_BOLD, SERIF, SERIF_ITALIC], size=16)
    assert fs.attribute("bold").tolist() == [True, False, False, False] or fs.attribute("bold").sum() == 1
    serif = fs.attribute("serif")
    assert np.nansum(serif) == 2
    with pytest.raises(VaekitError, match="unknown font attribute"):
        fs.attribute("funky")
    tr, te = F.split_fonts(fs, 0.25, seed=0)
    assert len(tr) == 3 and len(te) == 1 and te.names[0] not in tr.names
    g = fs.glyphs()
    assert g.x.shape == (4 * 62, 16, 16) and g.y[:3].tolist() == [0, 1, 2]


def test_fontvae_shapes_loss_and_checkpoint(tmp_path):
    from vaekit import checkpoint

    torch.manual_seed(0)
    for arch in ("conv", "mlp"):
        m = build(
            "fontvae",
            data_shape=(5, 16, 16),
            latent_dim=4,
            arch=arch,
            channels=(4, 8),
            hidden=(16,),
            glyph_hidden=32,
            glyph_features=8,
        )
        assert m.reconstruct(torch.rand(2, 5, 16, 16)).shape == (2, 5, 16, 16)
    x = torch.rand(3, 5, 16, 16)
    loss = m.loss(x)
    assert loss.value.ndim == 0 and math.isfinite(loss.value.item())
    assert set(loss.terms) == {"elbo", "rec", "kl"}
    assert m.decode(torch.zeros(2, 7, 4)).batch_shape == (2, 7)
    assert m.reconstruct(x).shape == (3, 5, 16, 16) and m.sample(2).shape == (2, 5, 16, 16)
    # one code renders glyphs that depend on the character (the embedding is used)
    out = m.generate(torch.zeros(1, 4))[0]
    assert not torch.allclose(out[0], out[1])
    checkpoint.save(tmp_path / "m.safetensors", m)
    m2 = checkpoint.load_model(tmp_path / "m.safetensors")
    assert torch.allclose(m2.embed(x), m.eval().embed(x))
    g = build(
        "fontvae",
        data_shape=(3, 8, 8),
        latent_dim=2,
        hidden=(8,),
        glyph_hidden=8,
        glyph_features=4,
        likelihood="gaussian",
        sigma=None,
    )
    d = g.decode(torch.zeros(2, 2))
    assert d.mean.shape == (2, 3, 8, 8) and (d.stddev > 0).all()
    with pytest.raises(VaekitError, match="n_chars"):
        build("fontvae", data_shape=(16, 16))


def test_fonts_quick_report_end_to_end(tmp_path):
    from vaekit.reports import run_report

    ctx = run_report("fonts", out_root=tmp_path, quick=True, run_root=str(tmp_path / "runs"), budget=0.1, ablation=0.02)
    res = json.loads((tmp_path / "fonts" / "results.json").read_text())
    metrics = [r["metric"] for r in res["rows"]]
    for want in (
        "distinct faces kept",
        "per-pixel squared error, PCA",
        "character accuracy, real held-out glyphs",
        "character accuracy, ex-post GMM",
        "glyph Fréchet distance to held-out fonts, prior",
        "P(bold), alpha",
        "character accuracy along bold",
        "conv decoder, Gaussian",
    ):
        assert any(m.startswith(want) for m in metrics), want
    assert res["skipped_fonts"], "matplotlib ships symbol fonts that must be reported as skipped"
    assert set(res["ablation"]["variants"]) and res["glyph_fd"]["real training fonts"] >= 0
    curves = [c for k, c in res["attribute_curves"].items() if k != "alphas"]
    # "add" measured on the fonts that lack it: the re-encoded edit, the kept-norm edit alone and the straight line
    assert curves and all(0 < c["fonts"] < len(res["held_out_fonts"]) for c in curves)
    paths = [c[edit] for c in curves for edit in ("re-encoded", "spherical", "linear")]
    assert all(len(c["p"]) == len(c["char_accuracy"]) == len(res["attribute_curves"]["alphas"]) for c in paths)
    assert any(m.startswith("P(bold), alpha") and m.endswith("straight line") for m in metrics)
    assert any(m.startswith("P(bold), alpha") and m.endswith("not re-encoded") for m in metrics)
    for f in ("reconstruction.png", "interpolation.png", "samples.png", "attribute_check.png", "attributes.png"):
        assert (tmp_path / "fonts" / f).stat().st_size > 1000
    assert all(r.ours is None or math.isfinite(r.ours) for r in ctx.rows)
    held = set(res["held_out_fonts"])
    assert held and all(held_out_by_name(n) for n in held)


def held_out_by_name(name: str) -> bool:
    from vaekit.reports.fonts import held_out

    return held_out(name, 0.25)


def test_the_committed_font_model_loads_and_draws_fonts():
    from vaekit.reports.fonts import PRETRAINED, committed

    model, info = committed(PRETRAINED)
    assert info["loaded"] and info["cpu_seconds"] / 60 <= 60
    z = torch.randn(2, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    fonts = model.generate(z)
    assert fonts.shape == (2, len(F.CHARS), 64, 64) and 0 <= float(fonts.min()) and float(fonts.max()) <= 1
    assert not torch.allclose(fonts[0], fonts[1])


def test_a_fine_tune_from_a_model_of_another_size_is_one_clear_error(tmp_path):
    from vaekit.errors import VaekitError
    from vaekit.reports import run_report

    # the committed model is 64 x 64, the quick report's fonts 16 x 16
    with pytest.raises(VaekitError, match=r"report-fonts-from-fontvae-64-quick: the model to start from does not fit"):
        run_report("fonts", out_root=tmp_path, quick=True, run_root=str(tmp_path / "runs"), init="fontvae-64")


def test_a_fine_tune_goes_on_from_a_run_folder_and_adds_its_cpu_time(tmp_path):
    from vaekit.reports import run_report

    runs = tmp_path / "runs"
    run_report("fonts", out_root=tmp_path / "a", quick=True, run_root=str(runs), budget=0.05, stop="trained")
    parent = runs / "report-fonts-quick"
    ctx = run_report(
        "fonts", out_root=tmp_path / "b", quick=True, run_root=str(runs), budget=0.05, stop="trained", init=str(parent)
    )
    first = json.loads((parent / "training.json").read_text())
    second = json.loads((runs / "report-fonts-from-report-fonts-quick-quick" / "training.json").read_text())
    row = next(r for r in ctx.rows if r.metric.startswith("training time"))
    assert row.ours == pytest.approx((first["cpu_seconds"] + second["cpu_seconds"]) / 60)
    assert f"from {parent}" in row.note
    with pytest.raises(VaekitError, match=r"nothing: not a finished run folder"):
        run_report("fonts", out_root=tmp_path / "c", quick=True, run_root=str(runs), init=str(tmp_path / "nothing"))
