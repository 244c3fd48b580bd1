"""The seed and sketch indexes live in the index store too: they add, skip known content, resume after
``kill -9``, run ``--jobs`` workers, pass ``verify``; folders of the old ``.npy`` format are still answered
from, and ``index`` says how to rebuild them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require
from test_index_cli import committed_tracks, run_json, songmine, wait_for_commit

from songmine.cli._app import main
from songmine.fingerprint.index import Index
from songmine.fingerprint.index import build as build_mod
from songmine.fingerprint.index.schema import CATALOG_NAME
from songmine.methods import METHODS, get_method
from songmine.minhash.onset import SeedConfig, SeedIndex
from songmine.minhash.sketch import SketchConfig, SketchIndex

SR = 22050


@pytest.fixture
def folder(tmp_path, synth_music):
    root = tmp_path / "music"
    root.mkdir()
    for i in range(24):
        sf.write(root / f"song{i:02d}.flac", synth_music(sr=SR, seconds=6.0, seed=2000 + i), SR)
    return root


def cli_json(capsys, *argv) -> tuple[int, dict | list]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_registry_says_how_each_method_keeps_its_index():
    for m in METHODS.values():
        if m.indexable and m.name != "landmark":
            assert m.payload and m.folder_index and m.folder, m
    assert get_method("landmark").payload is None and get_method("landmark").folder is None


@pytest.mark.parametrize("method", ["sketch", "seed"])
def test_index_adds_new_files_to_a_method_index_and_skips_what_it_has(method, folder, tmp_path, capsys):
    """A second run over another folder adds to the index; it used to replace it by the new files."""
    if method == "seed":
        require("librosa")
    ix = tmp_path / "ix"
    files = sorted(folder.iterdir())
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for f in files[:10]:
        (first / f.name).symlink_to(f)
    (second / files[10].name).symlink_to(files[10])
    code, s = cli_json(capsys, "index", str(first), "--index", str(ix), "--method", method, "-j", "1")
    assert code == 0 and s["added"] == 10 and s["n_tracks"] == 10 and s["method"] == method
    code, s = cli_json(capsys, "index", str(second), "--index", str(ix), "--method", method, "-j", "1")
    assert code == 0 and (s["added"], s["unchanged"], s["n_tracks"]) == (1, 0, 11)
    code, s = cli_json(capsys, "index", str(first), str(second), "--index", str(ix), "--method", method)
    assert code == 0 and (s["added"], s["unchanged"], s["n_tracks"]) == (0, 11, 11)
    assert (ix / method / CATALOG_NAME).exists() and not (ix / method / "meta.json").exists()
    assert not (ix / CATALOG_NAME).exists(), "the landmark index is another folder, left alone"
    with Index(ix / method) as store:
        assert store.method == method and store.n_tracks == 11 and store.verify() == []
        assert len(store.payloads()) == 11
        searcher = (SeedIndex if method == "seed" else SketchIndex).from_store(store)
    assert len(searcher) == 11


def test_jobs_runs_that_many_workers_for_every_method(folder, tmp_path, capsys, monkeypatch):
    made = []
    real_pool = build_mod.pool

    def recording_pool(n, **kw):
        made.append(n)
        return real_pool(n, **kw)

    monkeypatch.setattr(build_mod, "pool", recording_pool)
    code, s = cli_json(capsys, "index", str(folder), "--index", str(tmp_path / "ix"), "--method", "sketch", "-j", "2")
    assert code == 0 and s["added"] == 24 and made == [2]


@pytest.mark.slow
def test_kill_9_mid_run_of_a_sketch_index_and_the_rerun_resumes(folder, tmp_path):
    ix = tmp_path / "ix"
    proc = songmine(
        "index", str(folder), "--index", str(ix), "--method", "sketch", "--jobs", "2", "--batch", "2", "--json"
    )
    wait_for_commit(proc, ix / "sketch", at_least=2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    with Index(ix / "sketch") as store:
        assert store.verify() == []
        n_done = store.n_tracks
        assert 2 <= n_done < 24
    summary = run_json("index", str(folder), "--index", str(ix), "--method", "sketch", "--jobs", "2")
    assert (summary["unchanged"], summary["added"], summary["n_tracks"]) == (n_done, 24 - n_done, 24)
    assert committed_tracks(ix / "sketch") == 24


def test_a_damaged_payload_is_found_and_repaired(folder, tmp_path, capsys):
    ix = tmp_path / "ix"
    assert main(["index", str(folder), "--index", str(ix), "--method", "sketch", "-j", "1"]) == 0
    capsys.readouterr()
    with sqlite3.connect(ix / "sketch" / CATALOG_NAME) as c:
        tid, data = c.execute("SELECT track_id, data FROM payloads ORDER BY track_id LIMIT 1").fetchone()
        c.execute("UPDATE payloads SET data = ? WHERE track_id = ?", (bytes([data[0] ^ 1]) + data[1:], tid))
    code = main(["identify", str(next(folder.iterdir())), "--index", str(ix), "--method", "sketch"])
    assert code == 2 and "damaged" in capsys.readouterr().err
    code, rep = cli_json(capsys, "verify", "--index", str(ix / "sketch"))
    assert code == 2 and rep["problems"] == [{"part": f"payload of track {tid}", "problem": "fails its checksum"}]
    code, rep = cli_json(capsys, "verify", "--index", str(ix / "sketch"), "--repair")
    assert code == 0 and rep["repaired"] and rep["reindexed"]["added"] == 1
    with Index(ix / "sketch") as store:
        assert store.verify() == [] and store.n_tracks == 24


def test_a_store_of_another_config_or_method_is_refused(folder, tmp_path, capsys):
    ix = tmp_path / "ix"
    with Index(ix / "sketch", create=True, config=SketchConfig(n_perm=32, n_bands=16)) as store:
        build_mod.index_files(store, [next(folder.iterdir())], jobs=1)
    assert main(["index", str(folder), "--index", str(ix), "--method", "sketch"]) == 2
    assert "another fingerprint config" in capsys.readouterr().err
    with Index(ix / "sketch") as store, pytest.raises(Exception, match="not seed"):
        SeedIndex.from_store(store)
    assert main(["index", str(folder), "--index", str(ix / "sketch"), "--method", "landmark"]) == 2
    assert "sketch method, not landmark" in capsys.readouterr().err


@pytest.mark.corpus
def test_a_seed_folder_of_the_old_format_is_still_answered_from_and_index_says_how_to_rebuild(
    real_cuts, tmp_path, capsys
):
    from songmine.audio import load

    old = SeedIndex(SeedConfig())
    assert old.add_files(real_cuts[:3]) == 3
    ix = tmp_path / "ix"
    old.save(ix / "seed")  # what `index --method seed` wrote before: .npy arrays and meta.json
    clip = tmp_path / "clip.wav"
    sf.write(clip, load(real_cuts[1], sr=22050, offset=1.0, duration=10.0), 22050)
    code, out = cli_json(capsys, "identify", str(clip), "--index", str(ix), "--method", "seed")
    assert code == 0 and out[0]["matches"][0]["path"] == str(real_cuts[1])
    code = main(["index", str(real_cuts[3]), "--index", str(ix), "--method", "seed"])
    err = capsys.readouterr().err
    assert code == 2 and "older songmine" in err and "move it away" in err
    assert sorted(p.name for p in (ix / "seed").iterdir()) == [
        "lsh_ids.npy",
        "lsh_keys.npy",
        "meta.json",
        "signatures.npy",
    ], "nothing was touched"


def test_a_missing_method_index_is_a_clear_error(tmp_path, capsys, synth_music):
    clip = tmp_path / "c.wav"
    sf.write(clip, synth_music(sr=SR, seconds=3.0), SR)
    code = main(["identify", str(clip), "--index", str(tmp_path / "nothing"), "--method", "sketch"])
    assert code == 2 and "no sketch index here" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["index", str(empty), "--index", str(tmp_path / "nothing"), "--method", "sketch"])
    assert code == 2 and "no index was created" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists(), "a first run that adds nothing leaves no folder behind"


def test_payload_functions_match_the_in_memory_index(folder):
    """What a worker stores is what the in-memory index computes from the same file."""
    from songmine.audio import load
    from songmine.minhash.sketch import sketch_payload

    path = next(folder.iterdir())
    mem = SketchIndex()
    mem.add_audio(0, str(path), load(path, sr=mem.fp_config.sr))
    duration, data = sketch_payload(str(path), SketchConfig())
    np.testing.assert_array_equal(np.frombuffer(data, "<u4").reshape(-1, 64), mem._sigs[0])
    assert duration == pytest.approx(6.0, abs=0.01)


def test_eval_builds_method_indexes_through_the_store_with_its_jobs(folder, tmp_path, monkeypatch):
    """`songmine eval --method sketch|seed`: the same store, built by the workers `--jobs` asks for."""
    from songmine.audio import load
    from songmine.methods import make_identifier

    made = []
    real_pool = build_mod.pool
    monkeypatch.setattr(build_mod, "pool", lambda n, **kw: made.append(n) or real_pool(n, **kw))
    files = sorted(folder.iterdir())[:6]
    ident = make_identifier("sketch", index_path=tmp_path / "ix", options={"top": "2"})
    try:
        stats = ident.build(files, jobs=2, progress=None)
        assert (stats.n_tracks, stats.n_failed) == (6, 0) and stats.index_bytes > 0 and made == [2]
        assert (tmp_path / "ix" / "sketch" / CATALOG_NAME).exists()
        clip = load(files[3], sr=ident.sr, offset=1.0, duration=4.0)
        assert Path(ident.query(clip, name="q").matches[0].path).name == files[3].name
        again = ident.build(files, jobs=2, progress=None)  # reused: nothing to add
        assert again.n_tracks == 6 and made == [2]
    finally:
        ident.close()
