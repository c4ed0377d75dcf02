"""Every ```python block of the README runs, in order, in one namespace."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for code in blocks:
        exec(compile(code, str(README), "exec"), ns)


def test_readme_starts_with_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert first_block == ["make demo", "make test"]


def bench_commands(text: str) -> list[str]:
    """The `python bench/NAME.py ...` commands of a Markdown text: in backticks, or on an indented line."""
    spans = re.findall(r"`(python bench/[^`]+)`", text) + re.findall(r"^ {4}(python bench/.+)$", text, re.M)
    return [s.split(" (")[0] for s in spans]


def test_bench_commands_in_readme_and_docs_name_real_scripts_and_options():
    """A command the README or a docs page gives for a number runs a script that exists, with options it has."""
    root = README.parent
    pages = [README, *sorted((root / "docs").glob("*.md")), *sorted((root / "bench").glob("**/README.md"))]
    seen = 0
    for page in pages:
        for command in bench_commands(page.read_text()):
            script = root / command.split()[1]
            assert script.is_file(), f"{page.name}: {command!r} names a script that does not exist"
            source = script.read_text()
            for option in re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", command):
                assert f'"{option}"' in source, f"{page.name}: {command!r}: {script.name} has no {option}"
            seen += 1
    assert seen > 20
