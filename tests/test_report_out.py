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
