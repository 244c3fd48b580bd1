"""One walker for every verb (:func:`songmine.library.iter_audio_files`): ``~`` expanded, symbolic links
followed to files and folders, each folder once (a link loop ends), the same in index, identify,
features, dedupe and scan."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile as sf
from conftest import require

from songmine.cli._app import main
from songmine.library import iter_audio_files

SR = 22050


@pytest.fixture
def linked(tmp_path, synth_music):
    """``lib/`` with a file, a sub-folder, a link to a folder outside, a link to a file outside, a loop
    back to ``lib`` and a link to nothing."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    for i, p in enumerate(
        [lib / "a.flac", lib / "sub" / "b.flac", outside / "c.flac", outside / "deep" / "d.flac", tmp_path / "e.flac"]
    ):
        sf.write(p, synth_music(sr=SR, seconds=4.0, seed=300 + i), SR)
    (lib / "linked").symlink_to(outside, target_is_directory=True)
    (lib / "e-link.flac").symlink_to(tmp_path / "e.flac")
    (lib / "sub" / "loop").symlink_to(lib, target_is_directory=True)
    (lib / "again").symlink_to(lib / "sub", target_is_directory=True)  # a second way into sub/
    return lib


def test_links_are_followed_each_folder_once_and_a_loop_ends(linked):
    got = [p.relative_to(linked).as_posix() for p in iter_audio_files([linked])]
    # sorted, folders depth first: again/ (= sub/, whose loop/ leads back to lib/, walked already),
    # linked/ (outside/), then sub/ itself is skipped: walked already through again/
    assert got == ["a.flac", "e-link.flac", "again/b.flac", "linked/c.flac", "linked/deep/d.flac"]
    assert all(not Path(g).is_absolute() for g in got)


def test_a_link_to_nothing_is_yielded_and_reported_by_the_verb(linked, tmp_path, capsys):
    (linked / "gone.flac").symlink_to(tmp_path / "nowhere.flac")
    assert "gone.flac" in [p.name for p in iter_audio_files([linked])]
    assert main(["scan", str(linked), "--json"]) == 0
    rows = {Path(r["path"]).name: r for r in json.loads(capsys.readouterr().out)}
    assert rows["gone.flac"]["error"] and rows["c.flac"]["error"] is None


def test_tilde_is_expanded_by_the_walker_the_index_and_the_memory_index(linked, tmp_path, monkeypatch):
    from songmine.fingerprint.index import Index, index_files
    from songmine.fingerprint.memory import MemoryIndex

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path / "outside")
    assert [p.name for p in iter_audio_files(["~/outside/deep"])] == ["d.flac"]
    with Index("~/ix", create=True) as ix:
        assert ix.path == tmp_path / "ix"
        rep = index_files(ix, ["~/outside/deep", "~/e.flac"], jobs=1)
        assert rep.added == 2 and rep.failed == []
    assert (tmp_path / "ix" / "catalog.sqlite").exists() and not (tmp_path / "outside" / "~").exists()
    with Index("~/ix") as ix:
        assert ix.n_tracks == 2
    mem = MemoryIndex.from_files(["~/outside/deep"])
    assert mem.n_tracks == 1 and mem.skipped == []


def test_every_verb_sees_the_files_behind_links(linked, tmp_path, capsys):
    want = {"a.flac", "e.flac", "c.flac", "d.flac", "b.flac"}
    ix = tmp_path / "ix"
    assert main(["index", str(linked), "--index", str(ix), "-j", "1", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["added"] == 5 and s["failed"] == []
    assert main(["tracks", "--index", str(ix), "--json"]) == 0
    assert {Path(t["path"]).name for t in json.loads(capsys.readouterr().out)} == want
    assert main(["scan", str(linked), "--json", "--no-decode"]) == 0
    assert {Path(r["path"]).name for r in json.loads(capsys.readouterr().out)} == {*want} - {"e.flac"} | {"e-link.flac"}
    assert main(["dedupe", str(linked), "--json", "-j", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["n_files"] == 5
    code = main(["identify", str(linked / "linked"), "--index", str(ix), "--json"])
    records = json.loads(capsys.readouterr().out)
    assert code == 0 and [Path(r["query"]).name for r in records] == ["c.flac", "d.flac"]


def test_features_of_a_folder_with_links_use_the_paths_as_walked(linked, tmp_path, capsys):
    """It used to stop with "ValueError: ... is not in the subpath of ..." (exit 70)."""
    require("resampy")
    out = tmp_path / "f" / "features.csv"
    code = main(["features", str(linked), "-o", str(out), "-j", "1", "--json"])
    s = json.loads(capsys.readouterr().out)
    assert code == 0 and s["failed"] == [] and s["rows"] == 5
    from songmine.catalog import load

    ids = set(load(out, "features", cache=False).index.astype(str))
    assert ids == {"a.flac", "e-link.flac", "linked/c.flac", "linked/deep/d.flac", "again/b.flac"}
    assert os.path.islink(linked / "linked")
