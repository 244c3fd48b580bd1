"""The CLI contract: help everywhere, documented verbs, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import typer

from songmine import __version__
from songmine.cli import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, app
from songmine.cli._app import main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "interfaces.md"


def all_commands() -> list:
    """Every leaf command as ('catalog merge', cmd)."""
    root = typer.main.get_command(app)
    out = []

    def walk(cmd, prefix: str) -> None:
        if hasattr(cmd, "commands"):  # a group (typer may vendor its own click)
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            out.append((prefix, cmd))

    walk(root, "")
    return out


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == EXIT_OK and out.strip() == f"songmine {__version__}"


@pytest.mark.parametrize("name", [name for name, _ in all_commands()])
def test_every_verb_has_help_and_is_documented(name, capsys):
    code, out, _ = run([*name.split(), "--help"], capsys)
    assert code == EXIT_OK
    assert "Usage:" in out and len(out.splitlines()) > 3
    assert f"songmine {name}" in DOCS.read_text(), f"`songmine {name}` is not documented in docs/interfaces.md"


NO_RESULT = {"serve"}  # a long-running server has no result to print


@pytest.mark.parametrize("name", [name for name, _ in all_commands() if name not in NO_RESULT])
def test_every_verb_has_json_output(name):
    cmd = dict(all_commands())[name]
    assert any("--json" in p.opts for p in cmd.params), f"{name} has no --json"


def test_unknown_verb_is_a_usage_error(capsys):
    code, _, err = run(["no-such-verb"], capsys)
    assert code == EXIT_USAGE and "No such command" in err


def test_library_errors_are_one_line_and_exit_2(tmp_path, capsys):
    code, out, err = run(["scan", str(tmp_path / "missing")], capsys)
    assert code == EXIT_USAGE
    assert err.strip().count("\n") == 0 and "no such file or directory" in err
    assert "Traceback" not in err


def test_bugs_exit_70_with_the_traceback_in_a_log(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SONGMINE_CACHE", str(tmp_path / "cache"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("songmine.library.scan", broken)
    code, _, err = run(["scan", str(tmp_path)], capsys)
    assert code == EXIT_INTERNAL
    assert "internal error: RuntimeError: boom" in err and err.strip().count("\n") == 0
    log = (tmp_path / "cache" / "crash.log").read_text()
    assert "Traceback" in log and "RuntimeError: boom" in log


def test_scan_reports_bad_files_and_goes_on(tmp_path, tone, capsys):
    sf.write(tmp_path / "good.wav", tone(440, 22050, 2.0), 22050)
    (tmp_path / "bad.mp3").write_text("not audio")
    (tmp_path / "empty.ogg").write_bytes(b"")
    code, out, _ = run(["scan", str(tmp_path), "--json"], capsys)
    assert code == EXIT_OK
    rows = {Path(r["path"]).name: r for r in json.loads(out)}
    assert set(rows) == {"good.wav", "bad.mp3", "empty.ogg"}
    assert rows["good.wav"]["error"] is None and abs(rows["good.wav"]["duration_s"] - 2.0) < 1e-3
    assert "not a readable audio file" in rows["bad.mp3"]["error"]
    assert "empty" in rows["empty.ogg"]["error"]


def test_console_script_starts_without_heavy_imports():
    """``songmine --help`` must not import numpy & co. (the ≤ 0.3 s start-up budget)."""
    code = (
        "import sys; from songmine.cli import main; sys.argv=['songmine','--help'];\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy','scipy','av','librosa','pandas','sklearn','matplotlib','pyspark','fastapi') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("HEAVY []"), out


SPEC_PAGES = ["interfaces.md", "install.md"]


@pytest.mark.parametrize("page", SPEC_PAGES)
def test_the_user_specification_pages_hold_no_dated_measurements(page):
    """What a user relies on is stated, not dated: measurements with their commit, date and command live in
    docs/benchmarks.md, and the pages name the methods by what they are."""
    import re

    text = (DOCS.parent / page).read_text()
    assert not re.findall(r"\b20\d\d-\d\d-\d\d\b", text), "a date: measurements go to docs/benchmarks.md"
    assert not re.findall(r"\bcommit\b|`[0-9a-f]{7,40}`|\b[0-9a-f]{7}\b(?=[,;)])", text), "a commit reference"
    assert not re.findall(r"\bthe brief\b|\bbrief's\b|\bwas added\b|\bwere added\b", text, re.I)


def test_the_install_page_sizes_every_extra_and_points_to_the_measurement():
    from songmine.extras import EXTRAS

    text = (DOCS.parent / "install.md").read_text()
    sizes = text.split("## Sizes", 1)[1]
    for extra in [*EXTRAS, "all"]:
        assert f"`pip install 'songmine[{extra}]'` |" in sizes, extra
    assert "`pip install songmine` |" in sizes and "benchmarks.md#install-size" in sizes
    assert "## Install size" in (DOCS.parent / "benchmarks.md").read_text()
