"""`songmine index / tracks / remove / compact` end to end, including kill -9 and Ctrl-C mid-run.

These run the real landmark fingerprint (the CLI's default config) on
synthetic music files, in subprocesses, against a real index directory.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from songmine.cli._app import main
from songmine.fingerprint.index import Index
from songmine.fingerprint.index.schema import CATALOG_NAME

SR = 22050
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def folder(tmp_path, synth_music):
    """40 short music files (flac, 22.05 kHz: decoded and resampled like real files)."""
    root = tmp_path / "music"
    root.mkdir()
    for i in range(40):
        sf.write(root / f"song{i:02d}.flac", synth_music(sr=SR, seconds=6.0, seed=1000 + i), SR)
    return root


def songmine(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "import sys; from songmine.cli import main; sys.argv[0] = 'songmine'; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the signal reaches the workers too
        **kw,
    )


def committed_tracks(ix: Path) -> int:
    try:
        with sqlite3.connect(f"file:{ix / CATALOG_NAME}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def wait_for_commit(proc: subprocess.Popen, ix: Path, at_least: int, timeout: float = 180.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = committed_tracks(ix)
        if n >= at_least:
            return n
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"indexer ended early ({proc.returncode}) before a commit:\n{out}\n{err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no segment committed in time")


def run_json(*args: str) -> dict:
    proc = songmine(*args, "--json")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.mark.slow
def test_kill_9_mid_run_leaves_a_usable_index_and_rerun_resumes(tmp_path, folder):
    ix = tmp_path / "ix"
    proc = songmine("index", str(folder), "--index", str(ix), "--jobs", "2", "--batch", "3", "--json")
    wait_for_commit(proc, ix, at_least=3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    with Index(ix) as index:  # opens (WAL recovery), consistent, has what was committed
        assert index.verify() == []
        n_done = index.n_tracks
        assert 3 <= n_done < 40, "the kill should land mid-run"
        assert index.n_postings > 0

    summary = run_json("index", str(folder), "--index", str(ix), "--jobs", "2")
    assert summary["unchanged"] == n_done and summary["added"] == 40 - n_done
    assert summary["failed"] == [] and summary["n_tracks"] == 40
    with Index(ix) as index:
        assert index.verify() == []
        assert sorted(Path(r.path).name for r in index.tracks()) == sorted(p.name for p in folder.iterdir())


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    out = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:  # the process is gone
        return out
    for task in tasks:  # threads come and go (the pool's manager and feeder threads)
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker processes in /proc")
def test_kill_9_of_the_indexer_ends_its_workers(tmp_path, folder):
    ix = tmp_path / "ix"
    proc = songmine("index", str(folder), "--index", str(ix), "--jobs", "2", "--batch", "3", "--json")
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            workers = [p for p in children(proc.pid) if alive(p)]
            time.sleep(0.01)
        assert len(workers) == 2, f"expected two workers, saw {workers} (indexer ended: {proc.poll()})"
        os.kill(proc.pid, signal.SIGKILL)  # the indexer alone, as the OOM killer or `kill -9 PID` does
        proc.wait(timeout=10)  # (not communicate(): surviving workers would hold its pipes open)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in workers if alive(p)], "workers still running 5 s after kill -9 of the indexer"
    finally:
        for p in [proc.pid, *workers]:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.slow
def test_ctrl_c_commits_finished_work_and_exits_130(tmp_path, folder):
    # The whole run takes well under a second on an idle machine, so on a loaded one
    # the indexer can finish before the signal is sent: such a run tests nothing about
    # Ctrl-C and is repeated on a fresh index (a run that ignored the signal still
    # fails: it would exit 0 with fewer than 40 tracks, or never print "interrupted").
    for attempt in range(5):
        ix = tmp_path / f"ix{attempt}"
        proc = songmine("index", str(folder), "--index", str(ix), "--jobs", "2", "--batch", "5")
        n_seen = wait_for_commit(proc, ix, at_least=5)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        out, err = proc.communicate(timeout=120)
        if not (proc.returncode == 0 and committed_tracks(ix) == 40 and "interrupted" not in err):
            break
    else:
        pytest.fail("the indexer finished before Ctrl-C could reach it in 5 attempts")
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert "added" in out
    with Index(ix) as index:
        assert index.verify() == [] and n_seen <= index.n_tracks <= 40
        n_done = index.n_tracks
    summary = run_json("index", str(folder), "--index", str(ix))
    assert (summary["added"], summary["unchanged"], summary["n_tracks"]) == (40 - n_done, n_done, 40)


def test_cli_verbs_json_prune_and_errors(tmp_path, folder, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # rich tables on one line each, so names can be looked for
    ix = str(tmp_path / "ix")
    sub = folder / "few"
    sub.mkdir()
    for name, new in (
        ("song00.flac", "song00.flac"),
        ("song01.flac", "song01.flac"),
        ("song02.flac", "song02 [live].flac"),
    ):
        (folder / name).rename(sub / new)
    broken = sub / "broken [live] [b].mp3"  # brackets: must print as is, never as rich markup
    broken.write_text("not audio")

    def run(*args):
        code = main(list(args))
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    code, out, _ = run("index", str(sub), "--index", ix, "--jobs", "1", "--json")
    rep = json.loads(out)
    assert code == 0 and rep["added"] == 3 and rep["n_tracks"] == 3
    assert [f["path"] for f in rep["failed"]] == [str(broken.resolve())]

    code, out, err = run("index", str(sub), "--index", ix, "--jobs", "1")
    assert code == 0 and "added 0, unchanged 3, failed 1" in out
    assert f"skipped {broken.resolve()}" in err.replace("\n", "")

    code, out, _ = run("tracks", "--index", ix, "--json")
    rows = json.loads(out)
    assert code == 0 and [Path(r["path"]).name for r in rows] == ["song00.flac", "song01.flac", "song02 [live].flac"]
    assert all(
        r["status"] == "ok" and r["n_hashes"] > 0 and r["duration_s"] == pytest.approx(6, abs=0.01) for r in rows
    )
    code, out, _ = run("tracks", "--index", ix)
    assert code == 0 and "3 tracks, 0.01 h" in out and "song02 [live].flac" in out  # not read as markup

    code, out, _ = run("remove", str(rows[0]["track_id"]), "--index", ix, "--json")
    assert code == 0 and json.loads(out) == {"removed": 1, "n_tracks": 2}
    code, _, err = run("remove", "12345", "--index", ix)
    assert code == 2 and "12345" in err and len(err.strip().splitlines()) == 1

    code, out, _ = run("compact", "--index", ix, "--json")
    rep = json.loads(out)
    assert code == 0 and rep["tracks_purged"] == 1 and rep["segments_after"] == 1
    code, out, _ = run("compact", "--index", ix)
    assert code == 0 and "segment" in out

    (sub / "song01.flac").unlink()
    code, out, _ = run("index", str(sub), "--index", ix, "--jobs", "1", "--prune", "--json")
    rep = json.loads(out)  # song01 pruned; song00 (removed above, file still there) is indexed again
    assert code == 0 and (rep["removed"], rep["added"], rep["n_tracks"]) == (1, 1, 2)

    for verb in (["tracks"], ["remove", "1"], ["compact"]):
        code, out, err = run(*verb, "--index", str(tmp_path / "missing"))
        assert code == 2 and "no index here" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.ogg").write_bytes(b"\0" * 100)
    code, _, err = run("index", str(only_bad), "--index", ix, "--jobs", "1")
    assert code == 2 and "could be read" in err
    code, _, err = run("index", str(tmp_path / "nope"), "--index", ix)
    assert code == 2 and "no such file" in err


def test_a_first_run_that_adds_nothing_leaves_no_index(tmp_path, folder, capsys):
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.ogg").write_bytes(b"\0" * 100)
    (only_bad / "y.mp3").write_text("not audio")
    (only_bad / "z.wav").write_bytes(b"")
    ix = tmp_path / "ix"
    code = main(["index", str(only_bad), "--index", str(ix), "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "none of the 3 audio file(s) could be read" in err and "no index was created" in err
    assert all(f"{only_bad / n}" in err for n in ("x.ogg", "y.mp3", "z.wav"))  # every failure listed
    assert not ix.exists()
    code = main(["index", str(only_bad), "--index", str(ix), "--jobs", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and len(json.loads(out)["failed"]) == 3 and not ix.exists()
    (tmp_path / "empty").mkdir()
    assert main(["index", str(tmp_path / "empty"), "--index", str(ix)]) == 2 and not ix.exists()
    assert main(["index", str(tmp_path / "nope"), "--index", str(ix)]) == 2 and not ix.exists()
    (tmp_path / "made").mkdir()  # a directory the user made for the index stays
    assert main(["index", str(only_bad), "--index", str(tmp_path / "made"), "--jobs", "1"]) == 2
    assert (tmp_path / "made").is_dir() and not list((tmp_path / "made").iterdir())
    capsys.readouterr()

    # an index that exists is never deleted, even when this run adds nothing
    assert main(["index", str(folder / "song00.flac"), "--index", str(ix), "--jobs", "1"]) == 0
    assert main(["index", str(only_bad), "--index", str(ix), "--jobs", "1"]) == 2
    with Index(ix) as index:
        assert index.n_tracks == 1


def test_index_location_from_environment(tmp_path, folder, capsys, monkeypatch):
    monkeypatch.setenv("SONGMINE_INDEX", str(tmp_path / "envix"))
    assert main(["index", str(folder / "song05.flac"), "--jobs", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index"] == str(tmp_path / "envix")
    assert main(["tracks", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


@pytest.mark.corpus
def test_real_music_cuts_index_and_excerpts_find_their_track(tmp_path, real_cuts):
    """Real music through the real landmarks: a 5-s excerpt's hashes vote for its track at its offset."""
    from songmine.audio import load
    from songmine.fingerprint.index import index_files
    from songmine.fingerprint.landmarks import FingerprintConfig, fingerprint

    cfg = FingerprintConfig()
    with Index(tmp_path / "ix", create=True, config=cfg) as ix:
        rep = index_files(ix, real_cuts, jobs=2, batch_tracks=2)
        assert rep.added == len(real_cuts) and rep.failed == []
        assert ix.verify() == []
        assert ix.duration_s == pytest.approx(30.0 * len(real_cuts), abs=0.5)
        ids = {r.path: r.track_id for r in ix.tracks()}
        for p in real_cuts:
            y = load(p, sr=cfg.sr, offset=12.0, duration=5.0)
            h, t = fingerprint(y, cfg, query=True)
            qpos, tracks, times = ix.lookup(h, max_per_hash=1000)
            delta = times.astype(np.int64) - t[qpos].astype(np.int64)
            key = tracks.astype(np.int64) * 100_000 + (delta + 50_000)
            votes = np.bincount(key)
            tid = ids[str(Path(p).resolve())]
            assert votes.argmax() // 100_000 == tid
            # music repeats, so another offset may tie; the true one (±1 frame) is among the strongest
            true = tid * 100_000 + 50_000 + int(round(12.0 / cfg.hop_s))
            assert votes[true - 1 : true + 2].max() >= 0.5 * votes.max() >= 5
