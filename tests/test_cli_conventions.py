"""The CLI's habits, the same in every verb: ``python -m songmine``, completion, one meaning per short
option, one ``--jobs`` default, verbs in a stated order, help without Python names, output that survives
a pipe (whole lines, progress lines on stderr)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from songmine.cli import _app
from songmine.cli._app import VERB_ORDER, command, main
from songmine.workers import default_jobs

ROOT = Path(__file__).resolve().parents[1]


def leaves():
    """Every leaf verb as (words, click command)."""
    out = []

    def walk(cmd, words):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, [*words, name])
        else:
            out.append((words, cmd))

    walk(command(), [])
    return out


def options(cmd):
    return [p for p in cmd.params if p.param_type_name == "option"]


def test_python_dash_m_songmine_runs_the_cli():
    r = subprocess.run([sys.executable, "-m", "songmine", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("songmine ")
    r = subprocess.run(
        [sys.executable, "-m", "songmine", "index", "--help"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "Usage: songmine index" in r.stdout


def test_shell_completion_is_on_and_completes_verbs():
    root = command()
    names = {o for p in options(root) for o in p.opts}
    assert {"--install-completion", "--show-completion"} <= names
    env = {**os.environ, "_SONGMINE_COMPLETE": "complete_bash", "COMP_WORDS": "songmine ide", "COMP_CWORD": "1"}
    r = subprocess.run([sys.executable, "-m", "songmine"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["identify"], (r.stdout, r.stderr)


def test_every_verb_that_runs_workers_has_the_same_jobs_option():
    with_jobs = []
    for words, cmd in leaves():
        for p in options(cmd):
            if "--jobs" in p.opts or "-j" in p.opts:
                assert sorted(p.opts) == ["--jobs", "-j"] and p.default is None, (words, p.opts, p.default)
                assert "every core" in p.help
                with_jobs.append(" ".join(words))
    assert set(with_jobs) == {"index", "verify", "eval", "features", "dedupe"}
    assert default_jobs() >= 1


def test_short_options_mean_one_thing_everywhere():
    meaning = {
        "-j": "--jobs",
        "-o": "--output",
        "-k": "--k",
        "-n": "--top",
        "-s": "--sum",
        "-h": "--help",
        "-v": "--verbose",
        "-q": "--quiet",
        "-D": "--option",
    }
    seen = {}
    for words, cmd in [([], command()), *leaves()]:
        for p in cmd.params:
            short = [o for o in p.opts if re.fullmatch(r"-\w", o)]
            long = [o for o in p.opts if o.startswith("--")]
            for s in short:
                assert s in meaning, f"songmine {' '.join(words)}: {s} is not in the table of short options"
                assert meaning[s] in long, f"songmine {' '.join(words)}: {s} is {long}, elsewhere {meaning[s]}"
                seen[s] = seen.get(s, 0) + 1
    assert seen["-o"] >= 3 and seen["-j"] == 5 and seen["-k"] == 1 and seen["-n"] == 2


def test_verbs_are_listed_in_the_stated_order():
    root = command()
    listed = root.list_commands(None)
    assert listed == [v for v in VERB_ORDER if v in listed]
    assert set(listed) == set(VERB_ORDER), "every verb has its place in VERB_ORDER"
    code = subprocess.run([sys.executable, "-m", "songmine", "--help"], capture_output=True, text=True, timeout=60)
    shown = re.findall(r"^  ([a-z-]+)\s", code.stdout.split("Commands:")[1], re.M)
    assert shown == listed


@pytest.mark.parametrize("words", [w for w, _ in leaves()], ids=lambda w: " ".join(w))
def test_help_shows_metavars_not_python_names(words, capsys):
    assert main([*words, "--help"]) == 0
    out = capsys.readouterr().out
    assert not re.search(r"\{\w+\}|<(list|int|float|str|path|bool)\b|<\w+ range>", out, re.I), out
    usage = out.splitlines()[0]
    assert usage.startswith(f"Usage: songmine {' '.join(words)} [OPTIONS]")


def _long_named_library(tmp_path: Path, synth_music) -> Path:
    deep = tmp_path / ("a-folder-with-a-rather-long-name-" * 3) / "and-another-one-below-it"
    deep.mkdir(parents=True)
    for i in range(3):
        sf.write(
            deep / f"a song with a long title number {i}, live at a long-named venue.flac",
            synth_music(sr=22050, seconds=5.0, seed=70 + i),
            22050,
        )
    return deep


def test_piped_tables_keep_whole_rows_and_paths(tmp_path, synth_music):
    lib = _long_named_library(tmp_path, synth_music)
    ix = tmp_path / "ix"
    env = {**os.environ, "COLUMNS": "80"}
    r = subprocess.run(
        [sys.executable, "-m", "songmine", "index", str(lib), "--index", str(ix), "-j", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "songmine", "tracks", "--index", str(ix)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0
    rows = [ln for ln in r.stdout.splitlines() if "live at a long-named venue" in ln]
    assert len(rows) == 3 and all(str(lib) in ln for ln in rows), r.stdout
    assert "…" not in r.stdout
    clip = next(lib.iterdir())
    r = subprocess.run(
        [sys.executable, "-m", "songmine", "identify", str(clip), "--index", str(ix)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0 and any(str(clip) in ln and "1.000" in ln for ln in r.stdout.splitlines()), r.stdout


def test_progress_lines_go_to_stderr_when_it_is_not_a_terminal(tmp_path, synth_music, capsys, monkeypatch):
    lib = _long_named_library(tmp_path, synth_music)
    monkeypatch.setattr(_app, "PROGRESS_EVERY_S", 0.0)
    assert main(["index", str(lib), "--index", str(tmp_path / "ix"), "-j", "1"]) == 0
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("indexing: ")]
    assert lines[-1].startswith("indexing: 3/3 (100 %)") and len(lines) >= 2, err
    assert "indexing" not in out
    assert main(["index", str(lib), "--index", str(tmp_path / "ix2"), "-j", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "indexing: " not in err and json.loads(out)["added"] == 3  # --json: nothing but the result


def test_progress_lines_are_a_few_seconds_apart(capsys, monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 6.0, 7.0, 12.5, 13.0])
    monkeypatch.setattr(_app.time, "monotonic", lambda: next(clock))
    with _app.progress_bar("scanning") as update:
        for done in range(1, 6):
            update(done, 5)
    assert capsys.readouterr().err.splitlines() == ["scanning: 3/5 (60 %), 6 s", "scanning: 5/5 (100 %), 12 s"]
    clock = iter([0.0, 1.0, 2.0])
    with _app.progress_bar("scanning") as update:
        update(1, 5)  # a short run: one line, where it ended
    assert capsys.readouterr().err.splitlines() == ["scanning: 1/5 (20 %), 2 s"]


def test_a_piped_heading_longer_than_its_table_stays_on_one_line(tmp_path, synth_music):
    """identify's heading names the clip (and, for the seed method, its verdict): piped, it is one whole line
    even when it is wider than the table below it (a short track path, a long clip path)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    y = synth_music(sr=22050, seconds=8.0, seed=91)
    sf.write(lib / "a.flac", y, 22050)
    ix = tmp_path / "ix"
    assert main(["index", str(lib), "--index", str(ix), "-j", "1", "--json"]) == 0
    clip = _long_named_library(tmp_path, synth_music).parent / ("a clip recorded on a phone, " * 4 + "at last.flac")
    sf.write(clip, y[22050 : 6 * 22050], 22050)
    r = subprocess.run(
        [sys.executable, "-m", "songmine", "identify", str(clip), "--index", str(ix)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines[0] == str(clip), r.stdout
    assert len(lines) == 6 and str(lib / "a.flac") in lines[4], r.stdout  # the heading, then the table: 5 lines
