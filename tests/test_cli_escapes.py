"""Tags and file names reach the terminal escaped: no ESC sequence, BEL or bidi control gets through."""

from __future__ import annotations

import shutil

import mutagen
import pytest
import soundfile as sf

from songmine.cli._app import main, printable

SR = 22050
EVIL_ARTIST = "\x1b]0;pwned\x07"  # sets the terminal's title
EVIL_TITLE = "\x1b[31mred\x1b[0m\x08\x08\r\x9bbell"
EVIL_ALBUM = "abc\u202edcba"  # shows reversed
RAW = ("\x1b", "\x07", "\x08", "\r", "\x9b", "\u202e")


def test_printable_escapes_control_characters_only():
    assert printable(EVIL_ARTIST) == "\\x1b]0;pwned\\x07"
    assert printable(EVIL_ALBUM) == "abc\\u202edcba"
    assert printable("Motörhead — 東京 [Live] (100%)") == "Motörhead — 東京 [Live] (100%)"
    assert printable("a\nb\tc") == "a\\x0ab\\x09c" and printable("a\nb\tc", lines=True) == "a\nb\tc"
    assert printable("\x7f\x85\u2028") == "\\x7f\\x85\\u2028"


@pytest.fixture
def evil_library(tmp_path, synth_music):
    """One tagged file and a copy of it whose name holds an escape sequence."""
    root = tmp_path / "lib"
    root.mkdir()
    good = root / "song.flac"
    sf.write(good, synth_music(sr=SR, seconds=12.0, seed=7), SR)
    f = mutagen.File(good)
    f["artist"], f["title"], f["album"] = EVIL_ARTIST, EVIL_TITLE, EVIL_ALBUM
    f.save()
    shutil.copyfile(good, root / "copy\x1b[2J.flac")
    return root


def run(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def leaked(text: str) -> list[str]:
    return [c for c in RAW if c in text]


def test_every_table_escapes_tags_and_file_names(tmp_path, evil_library, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no cell is cut short: the escaped text is all there
    ix = tmp_path / "ix"
    outputs = {}
    code, out, err = run(["index", evil_library, "--index", ix, "--jobs", "1"], capsys)
    assert code == 0, err
    outputs["index"] = out + err
    code, out, err = run(["tracks", "--index", ix], capsys)
    assert code == 0 and "\\x1b]0;pwned\\x07" in out and "\\u202e" in out, out
    outputs["tracks"] = out + err
    code, out, err = run(["identify", evil_library / "song.flac", "--index", ix], capsys)
    assert code == 0 and "\\x1b]0;pwned\\x07" in out and "\\x1b[31mred" in out, out
    outputs["identify"] = out + err
    code, out, err = run(["scan", evil_library], capsys)
    assert code == 0 and "copy\\x1b[2J.flac" in out and "\\x1b[31mred" in out, out
    outputs["scan"] = out + err
    code, out, err = run(["dedupe", evil_library, "--jobs", "1"], capsys)
    assert code == 0 and "copy\\x1b[2J.flac" in out, out
    outputs["dedupe"] = out + err
    code, out, err = run(["identify", tmp_path / "gone\x1b[2J.wav", "--index", ix], capsys)
    assert "gone\\x1b[2J.wav" in out + err
    outputs["identify error"] = out + err
    code, out, err = run(["tracks", "--index", tmp_path / "none\x1b]0;x\x07"], capsys)
    assert code == 2 and "none\\x1b]0;x\\x07" in err
    outputs["error line"] = out + err
    for verb, text in outputs.items():
        assert not leaked(text), f"{verb}: raw control characters {leaked(text)!r} in:\n{text!r}"
