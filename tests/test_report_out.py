"""Where `vaekit report` writes: `--out DIR` is the report's folder itself, the default is reports/NAME, and
`--index` links the reports of a folder. A one-row report registered here keeps the test fast."""

import json

import pytest

from vaekit import reports
from vaekit.cli import main


@pytest.fixture
def tiny(monkeypatch):
    def run(ctx):
        ctx.row("none", "answer", 42, paper=42, citation="the test")

    monkeypatch.setitem(reports.REPORTS, "tiny", run)
    return "tiny"


def test_out_is_the_report_folder_itself(tiny, tmp_path):
    out = tmp_path / "my-report"
    main(["report", tiny, "--out", str(out)])
    assert json.loads((out / "results.json").read_text())["rows"][0]["ours"] == 42
    assert (out / "index.html").is_file()
    assert not (out / tiny).exists()  # not nested as DIR/NAME
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-report"]


def test_default_folder_is_reports_name(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["report", tiny])
    assert (tmp_path / "reports" / tiny / "results.json").is_file()
    assert not (tmp_path / "reports" / tiny / tiny).exists()


def test_index_links_the_reports_of_a_folder(tiny, tmp_path, capsys):
    main(["report", tiny, "--out", str(tmp_path / "a"), "--index"])  # the index beside the report's folder
    main(["report", tiny, "--out", str(tmp_path / "b")])
    assert 'href="a/index.html"' in (tmp_path / "index.html").read_text()
    main(["report", "--index", "--out", str(tmp_path)])
    page = (tmp_path / "index.html").read_text()
    assert 'href="a/index.html"' in page and 'href="b/index.html"' in page
    assert "wrote" in capsys.readouterr().out


def test_a_report_model_trained_from_another_starts_from_its_weights(tmp_path):
    import torch

    from vaekit.errors import VaekitError
    from vaekit.models import build
    from vaekit.train import TrainConfig

    ctx = reports.Context.__new__(reports.Context)
    ctx.options = {"run_root": str(tmp_path)}
    cfg = dict(data_shape=(4,), latent_dim=2, hidden=(8,))
    parent = build("vae", **cfg)
    with torch.no_grad():
        for p in parent.parameters():
            p.fill_(0.25)
    data = torch.rand(16, 4)
    zero_steps = TrainConfig(epochs=1, batch_size=8, max_steps=0, progress=False, tensorboard=False)
    model, info = reports.trained(ctx, "init", "vae", cfg, data, zero_steps, init=parent)
    assert not info["loaded"] and all(torch.all(p == 0.25) for p in model.parameters())
    with pytest.raises(VaekitError, match="report-bad: the model to start from does not fit"):
        reports.trained(ctx, "bad", "vae", {**cfg, "hidden": (16,)}, data, zero_steps, init=parent)
