"""The fonts' quality measures: the Fréchet distance, the glyph classifier, within-family attribute
directions and the font VAE's character-subset objective."""

import math

import numpy as np
import pytest
import torch

from vaekit import fontmetrics, latent
from vaekit.frechet import frechet_distance, moments
from vaekit.models import build


def test_frechet_distance_matches_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)
    # diagonal covariances: the sum over coordinates
    d1, d2 = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(want)
    # a rotation of both leaves it unchanged; equal moments give 0
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert frechet_distance(q @ mu1, q @ np.diag(d1) @ q.T, q @ mu2, q @ np.diag(d2) @ q.T) == pytest.approx(want)
    m, s = moments(rng.normal(size=(200, 3)))
    assert abs(frechet_distance(m, s, m, s)) < 1e-8
    # fewer items than features: singular covariances still give a finite number
    m2, s2 = moments(rng.normal(size=(2, 3)))
    assert math.isfinite(frechet_distance(m, s, m2, s2))
    with pytest.raises(ValueError, match="different shapes"):
        frechet_distance(m, s, m[:2], s[:2, :2])
    with pytest.raises(ValueError, match="N >= 2"):
        moments(np.zeros((1, 3)))


def _toy_fonts(n_fonts: int, seed: int):
    """Fonts of three 'characters' (a vertical bar, a horizontal bar, a box) drawn with strokes 1 or 3 pixels
    wide (bold), shifted by a pixel or two: images (n_fonts, 3, 16, 16) and attributes (n_fonts, 3)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n_fonts, 3, 16, 16), np.float32)
    bold = rng.random(n_fonts) < 0.5
    for f in range(n_fonts):
        w, dx, dy = (3 if bold[f] else 1), rng.integers(-2, 3), rng.integers(-2, 3)
        images[f, 0, 3 + dy : 13 + dy, 7 + dx : 7 + dx + w] = 1
        images[f, 1, 7 + dy : 7 + dy + w, 3 + dx : 13 + dx] = 1
        b = images[f, 2]
        b[3 + dy : 13 + dy, 3 + dx : 3 + dx + w] = b[3 + dy : 13 + dy, 12 + dx - w : 12 + dx] = 1
        b[3 + dy : 3 + dy + w, 3 + dx : 12 + dx] = b[13 + dy - w : 13 + dy, 3 + dx : 12 + dx] = 1
    attrs = np.stack([bold, np.zeros(n_fonts, bool), np.zeros(n_fonts, bool)], 1)
    return torch.from_numpy(images), attrs


def test_glyph_classifier_reads_characters_and_weight_and_its_frechet_distance_separates_sets():
    torch.manual_seed(0)
    x, attrs = _toy_fonts(60, seed=0)
    clf = fontmetrics.train_classifier(x, attrs, epochs=30, batch_size=32, lr=3e-3, seed=0)
    x_new, attrs_new = _toy_fonts(20, seed=1)
    s = fontmetrics.score(clf, x_new)
    assert s["char_accuracy"] > 0.9 and s["font_accuracy"].shape == (20,)
    assert np.mean((s["bold"] > 0.5) == attrs_new[:, 0]) > 0.8
    # a glyph set swapped for another character is read as the wrong one
    assert fontmetrics.score(clf, x_new[:, [1, 2, 0]])["char_accuracy"] < 0.2
    same = fontmetrics.glyph_fd(clf, x, x_new)
    noise = fontmetrics.glyph_fd(clf, x, torch.rand_like(x_new))
    assert 0 <= same < noise / 10


def test_shifted_moves_each_glyph_by_its_own_offset_and_fills_with_background():
    x = torch.zeros(200, 9, 9)
    x[:, 4, 4] = 1  # one ink pixel in the middle
    y = fontmetrics.shifted(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y.sum((1, 2)), torch.ones(200))  # moved, never cut or doubled
    where = y.flatten(1).argmax(1)
    rows, cols = where // 9, where % 9
    assert set(rows.tolist()) == set(cols.tolist()) == {2, 3, 4, 5, 6}  # every offset in [-2, 2] occurs
    assert torch.equal(fontmetrics.shifted(x, 0, torch.Generator()), x)
    edge = torch.zeros(1, 4, 4)
    edge[0, 0, 0] = 1  # ink at a corner may leave the image when shifted away: only background comes in
    outs = torch.stack([fontmetrics.shifted(edge, 1, torch.Generator().manual_seed(s)) for s in range(30)])
    assert set(outs.sum((1, 2, 3)).tolist()) <= {0.0, 1.0} and outs.max() == 1


def test_attribute_vector_within_groups_removes_a_confounder():
    # codes = family offset + attribute direction; the attribute is common in one family only, so the plain
    # difference of means mixes in the family offset, while within-family differences recover the direction
    rng = np.random.default_rng(0)
    fam = np.repeat([0, 1], 100)
    has = np.where(fam == 0, rng.random(200) < 0.9, rng.random(200) < 0.1)
    offsets, direction = np.array([[5.0, 0.0], [-5.0, 0.0]]), np.array([0.0, 1.0])
    z = torch.tensor(offsets[fam] + has[:, None] * direction + 0.01 * rng.normal(size=(200, 2)), dtype=torch.float32)
    plain = latent.attribute_vector(z, has)
    grouped = latent.attribute_vector(z, has, groups=fam)
    assert abs(plain[0]) > 3
    assert torch.allclose(grouped, torch.tensor([0.0, 1.0]), atol=0.02)
    with pytest.raises(ValueError, match="no group"):
        latent.attribute_vector(z, has, groups=np.arange(200))
    with pytest.raises(ValueError, match="group labels"):
        latent.attribute_vector(z, has, groups=[0, 1])


def test_fontvae_character_subsets_estimate_the_elbo_without_bias():
    torch.manual_seed(0)
    m = build(
        "fontvae", data_shape=(6, 8, 8), latent_dim=2, hidden=(16,), glyph_hidden=16, glyph_features=4, train_chars=2
    )
    x = torch.rand(4, 6, 8, 8)
    m.eval()  # evaluation decodes every glyph, whatever train_chars says
    full = [m.loss(x).terms["rec"].item() for _ in range(400)]
    m.train()
    part = [m.loss(x).terms["rec"].item() for _ in range(2000)]
    assert np.mean(part) == pytest.approx(np.mean(full), rel=0.01)
    assert np.std(part) > np.std(full)  # a noisier estimate of the same number
    loss = m.loss(x)
    loss.value.backward()
    assert m.encoder.head.weight.grad is not None and m.decoder.body.glyph_bias.grad.abs().sum() > 0
    with pytest.raises(Exception, match="train_chars"):
        build("fontvae", data_shape=(6, 8, 8), train_chars=7)
    with pytest.raises(Exception, match="encoder_pool"):
        build("fontvae", data_shape=(6, 8, 8), encoder_pool=3)
    pooled = build(
        "fontvae",
        data_shape=(6, 8, 8),
        latent_dim=2,
        arch="conv",
        channels=(4,),
        hidden=(8,),
        glyph_features=4,
        encoder_pool=2,
    )
    assert pooled.reconstruct(x).shape == x.shape


def test_fontvae_glyph_dropout_estimates_the_encoders_first_layer_without_bias():
    torch.manual_seed(0)
    shape = dict(data_shape=(6, 8, 8), latent_dim=2, hidden=(16,), glyph_hidden=16, glyph_features=4)
    m = build("fontvae", encoder_chars=2, **shape)  # reads 2 of the 6 glyphs in a training step
    every = build("fontvae", **shape)
    every.load_state_dict(m.state_dict())
    x = torch.rand(3, 6, 8, 8)
    body = m.encoder.body
    calls: list[torch.Tensor] = []
    hook = body.fc[0].register_forward_hook(lambda mod, inp, out: calls.append(out.detach()))
    with torch.no_grad():
        m.eval()
        body(x)
        full = calls.pop()
        m.train()
        for _ in range(3000):
            body(x)
    hook.remove()
    part = torch.stack(calls)
    assert torch.allclose(part.mean(0), full, atol=0.05 * full.abs().max().item())
    assert part.std(0).mean() > 0.01  # each step reads a different subset
    with torch.no_grad():
        m.eval(), every.eval()
        assert torch.allclose(m.encode(x).mean, every.encode(x).mean)  # evaluation reads every glyph
    m.train()
    m.loss(x).value.backward()
    assert body.glyph.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(Exception, match="encoder_chars"):
        build("fontvae", data_shape=(6, 8, 8), encoder_chars=7)


def test_the_classifier_benchmark_refuses_a_bad_setting_in_one_line():
    """bench/glyph_classifier.py (which chooses the report's classifier settings) names the bad value."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "glyph_classifier.py"
    for bad in ("12", "0:1", "4:-2", "four:0"):
        out = subprocess.run([sys.executable, str(script), "--settings", bad], capture_output=True, text=True)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1].endswith(f"{bad!r}: expected EPOCHS:SHIFT, e.g. 12:0")
