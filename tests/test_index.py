"""The index store: real SQLite, real segment files, real audio files in tmp_path.

Most tests use a cheap toy fingerprint (registered as method ``"toy"``) so the
store's mechanics are exercised fast; the real landmarks run in the crash
tests (through the CLI) and on the real-music cuts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from songmine.errors import IndexFormatError, ParameterError
from songmine.fingerprint.index import Index, UnknownTrackError, index_files
from songmine.fingerprint.index import store as store_mod
from songmine.fingerprint.index.schema import CATALOG_NAME, SEGMENT_DIR
from songmine.fingerprint.index.store import NewTrack
from songmine.fingerprint.postings import Postings
from songmine.methods import Method, register_method

TOY_SR = 8000


@dataclass(frozen=True, slots=True)
class ToyConfig:
    """A stand-in fingerprint config: coarse spectral-argmax trigram hashes."""

    sr: int = TOY_SR
    n_fft: int = 512

    def to_dict(self) -> dict:
        return {"sr": self.sr, "n_fft": self.n_fft}

    @classmethod
    def from_dict(cls, d: dict) -> ToyConfig:
        return cls(**d)


register_method(Method("toy", "a toy method of these tests", ToyConfig, None, indexable=False))


def toy_fp(y: np.ndarray, config: ToyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hash = the strongest bins of three consecutive frames (a quantised spectrogram)."""
    n, hop = config.n_fft, config.n_fft // 2
    if y.shape[0] < n:
        z = np.zeros(0, np.uint32)
        return z, z
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop]
    b = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)).argmax(axis=1).astype(np.uint32)
    h = (b[:-2] << 18) ^ (b[1:-1] << 9) ^ b[2:]
    return h.astype(np.uint32), np.arange(h.shape[0], dtype=np.uint32)


@pytest.fixture
def library(tmp_path, synth_music):
    """Six 4-s synthetic music files (flac and wav) in a nested folder."""
    root = tmp_path / "lib"
    (root / "sub").mkdir(parents=True)
    paths = []
    for i in range(6):
        y = synth_music(sr=TOY_SR, seconds=4.0, seed=100 + i)
        p = root / ("sub" if i % 2 else "") / f"t{i}.{'flac' if i % 3 else 'wav'}"
        sf.write(p, y, TOY_SR)
        paths.append(p)
    return root


def new_index(tmp_path, name="ix") -> Index:
    return Index(tmp_path / name, create=True, config=ToyConfig())


def fingerprints(paths) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from songmine.audio import load

    return {str(Path(p).resolve()): toy_fp(load(p, sr=TOY_SR), ToyConfig()) for p in paths}


def reference_postings(ix: Index, fps) -> Postings:
    """The in-memory table the index should be equivalent to."""
    by_path = {r.path: r.track_id for r in ix.tracks()}
    h = np.concatenate([fps[p][0] for p in by_path])
    t = np.concatenate([fps[p][1] for p in by_path])
    tr = np.concatenate([np.full(fps[p][0].shape, tid, np.uint32) for p, tid in by_path.items()])
    return Postings.from_unsorted(h, tr, t)


def same_hits(a, b) -> bool:
    """Equal as multisets of (query_pos, track, time), and grouped by query position like Postings."""
    (qa, ta, xa), (qb, tb, xb) = a, b
    if not np.all(np.diff(qa) >= 0):
        return False
    ka = np.lexsort((xa, ta, qa))
    kb = np.lexsort((xb, tb, qb))
    return all(np.array_equal(u[ka], v[kb]) for u, v in ((qa, qb), (ta, tb), (xa, xb)))


# --------------------------------------------------------------------------- round trip
def test_add_lookup_round_trip_matches_in_memory_postings(tmp_path, library, rng):
    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as ix:
        rep = index_files(ix, [library], jobs=2, extractor=toy_fp, batch_tracks=2, merge=False)
        assert (rep.added, rep.unchanged, rep.failed, rep.removed) == (6, 0, [], 0)
        assert rep.audio_seconds == pytest.approx(24.0, abs=0.1)
        assert ix.n_tracks == 6 and ix.n_segments == 3
        assert ix.verify() == []
        fps = fingerprints(files)
        ref = reference_postings(ix, fps)
        assert ix.n_postings == len(ref)
        # queries: a real excerpt, random hashes, repeats, and the max_per_hash cut
        some = fps[str(files[2].resolve())][0][10:60]
        q = np.concatenate([some, rng.integers(0, 2**32, 200, dtype=np.uint32), some[:5]])
        for mph in (None, 1, 3):
            assert same_hits(ix.lookup(q, max_per_hash=mph), ref.lookup(q, max_per_hash=mph))
        for budget in (1, 20, 100, 10**9):  # the hit budget picks the same hashes over segments as in memory
            got = ix.lookup(q, max_hits=budget)
            assert same_hits(got, ref.lookup(q, max_hits=budget))
            assert got[0].shape[0] <= budget
        # an excerpt's own hashes vote for its track at the right offset
        qp, tracks, times = ix.lookup(some)
        tid = {r.path: r.track_id for r in ix.tracks()}[str(files[2].resolve())]
        offsets = times.astype(np.int64) - (qp + 10)
        assert np.bincount(tracks[offsets == 0]).argmax() == tid
        rec = ix.track(tid)
        assert rec.path == str(files[2].resolve()) and rec.status == "ok" and rec.n_hashes == len(fps[rec.path][0])
        assert len(rec.sha256) == 64 and rec.duration_s == pytest.approx(4.0, abs=0.01)


def test_empty_query_and_empty_index(tmp_path):
    with new_index(tmp_path) as ix:
        qp, tr, t = ix.lookup(np.array([1, 2, 3], np.uint32))
        assert qp.shape == tr.shape == t.shape == (0,)
        assert ix.tracks() == [] and ix.n_postings == 0


def test_reopen_reads_config_and_tracks(tmp_path, library):
    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=1, extractor=toy_fp)
        before = ix.tracks()
    with Index(tmp_path / "ix") as ix:
        assert ix.config == ToyConfig() and ix.method == "toy"
        assert ix.tracks() == before


def test_tags_are_stored(tmp_path, synth_music):
    p = tmp_path / "lib" / "tagged.flac"
    p.parent.mkdir()
    sf.write(p, synth_music(sr=TOY_SR, seconds=3.0, seed=5), TOY_SR)
    import mutagen.flac

    f = mutagen.flac.FLAC(p)
    f["title"], f["artist"], f["album"] = "Song Title", "Some Artist", "The Album"
    f.save()
    with new_index(tmp_path) as ix:
        index_files(ix, [p.parent], jobs=1, extractor=toy_fp)
        (r,) = ix.tracks()
        assert (r.title, r.artist, r.album) == ("Song Title", "Some Artist", "The Album")


# --------------------------------------------------------------------------- reruns
def test_rerun_skips_unchanged_files_by_content_hash(tmp_path, library):
    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=2, extractor=toy_fp)
        ids = {r.path: r.track_id for r in ix.tracks()}
        n_post = ix.n_postings
        rep = index_files(ix, [library], jobs=2, extractor=toy_fp)
        assert (rep.added, rep.unchanged) == (0, 6) and ix.n_postings == n_post

        t0, t1, t2, t3 = (
            library / "t0.wav",
            library / "sub" / "t1.flac",
            library / "t2.flac",
            library / "sub" / "t3.wav",
        )
        os.utime(t0, ns=(1, 1))  # touched: same bytes, new mtime -> re-hashed, not re-decoded
        t1.rename(library / "moved.flac")  # moved: same content at a new path
        shutil.copy(t2, library / "copy-of-t2.flac")  # a duplicate of an indexed file
        y, sr = sf.read(t3)
        sf.write(t3, y[::-1].copy(), sr)  # same path, new content -> replaces the old track
        rep = index_files(ix, [library], jobs=2, extractor=toy_fp)
        assert rep.failed == []
        assert (rep.added, rep.unchanged) == (1, 6)
        now = {r.path: r.track_id for r in ix.tracks()}
        assert ix.n_tracks == 6
        assert now[str((library / "moved.flac").resolve())] == ids[str(t1.resolve())]
        assert now[str(t0.resolve())] == ids[str(t0.resolve())]
        assert now[str(t3.resolve())] != ids[str(t3.resolve())]
        assert ix.track(ids[str(t3.resolve())]).status == "removed"
        assert str((library / "copy-of-t2.flac").resolve()) not in now
        assert ix.verify() == []
        # and a third run is all unchanged, without hashing (path, size, mtime match)
        rep = index_files(ix, [library], jobs=1, extractor=toy_fp)
        assert (rep.added, rep.unchanged) == (0, 7)


def test_bad_files_are_reported_and_skipped(tmp_path, library):
    (library / "empty.wav").write_bytes(b"")
    (library / "text.mp3").write_text("this is not audio, just text pretending\n" * 20)
    good = (library / "t2.flac").read_bytes()
    (library / "corrupt.flac").write_bytes(good[:200] + bytes(len(good) - 200))
    with new_index(tmp_path) as ix:
        rep = index_files(ix, [library], jobs=2, extractor=toy_fp)
        assert rep.added == 6
        failed = dict(rep.failed)
        assert set(failed) == {str((library / n).resolve()) for n in ("empty.wav", "text.mp3", "corrupt.flac")}
        for path, reason in failed.items():
            assert "\n" not in reason and Path(path).name in reason
        assert "empty" in failed[str((library / "empty.wav").resolve())]
        assert ix.n_tracks == 6 and ix.verify() == []


def toy_fp_dies_on_silence(y: np.ndarray, config: ToyConfig):
    """Like a decoder crash or the OOM killer: the worker process vanishes on one file."""
    if not np.any(y):
        os._exit(9)
    return toy_fp(y, config)


def test_a_worker_dying_fails_only_its_file(tmp_path, library):
    sf.write(library / "silence.wav", np.zeros(TOY_SR * 2, np.float32), TOY_SR)
    with new_index(tmp_path) as ix:
        rep = index_files(ix, [library], jobs=2, extractor=toy_fp_dies_on_silence)
        assert rep.added == 6
        assert [(Path(p).name, "worker process died" in e) for p, e in rep.failed] == [("silence.wav", True)]
        assert ix.verify() == []


def test_missing_path_is_a_parameter_error(tmp_path):
    with new_index(tmp_path) as ix, pytest.raises(ParameterError, match="no such file"):
        index_files(ix, [tmp_path / "nowhere"], extractor=toy_fp)


def test_prune_drops_tracks_whose_files_are_gone(tmp_path, library):
    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=1, extractor=toy_fp)
        (library / "t0.wav").unlink()
        rep = index_files(ix, [library], jobs=1, extractor=toy_fp)
        assert rep.removed == 0 and ix.n_tracks == 6  # without --prune nothing goes
        rep = index_files(ix, [library], jobs=1, extractor=toy_fp, prune=True)
        assert rep.removed == 1 and ix.n_tracks == 5
        assert str((library / "t0.wav").resolve()) not in {r.path for r in ix.tracks()}


# --------------------------------------------------------------------------- remove/compact
def test_remove_then_compact(tmp_path, library):
    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=1, extractor=toy_fp, batch_tracks=2, merge=False)
        fps = fingerprints(files)
        victim = ix.tracks()[1]
        q = np.concatenate([fps[victim.path][0], fps[ix.tracks()[0].path][0]])
        assert ix.remove([victim.track_id]) == 1
        assert ix.remove([victim.track_id]) == 0  # idempotent
        with pytest.raises(UnknownTrackError, match="999"):
            ix.remove([999, victim.track_id])
        assert victim.track_id not in {r.track_id for r in ix.tracks()} and ix.n_tracks == 5
        _, tracks, _ = ix.lookup(q)
        assert victim.track_id not in set(tracks.tolist()) and len(tracks)
        ref = reference_postings(ix, fps)
        before = ix.lookup(q)
        assert same_hits(before, ref.lookup(q))
        n_before = ix.n_postings
        rep = ix.compact()
        assert (rep.segments_before, rep.segments_after, rep.tracks_purged) == (3, 1, 1)
        assert rep.postings_after == n_before - victim.n_hashes == ix.n_postings
        assert rep.bytes_after < rep.bytes_before
        assert same_hits(ix.lookup(q), before)
        assert ix.verify() == []
        with pytest.raises(UnknownTrackError):
            ix.track(victim.track_id)
        assert len(list((tmp_path / "ix" / SEGMENT_DIR).iterdir())) == 1
        # ids are never reused, even after a purge
        y, sr = sf.read(library / "t0.wav")
        sf.write(library / "new.wav", y[: len(y) // 2], sr)
        index_files(ix, [library], jobs=1, extractor=toy_fp)
        assert ix.track(7).path == str((library / "new.wav").resolve())


def test_automatic_merge_keeps_segments_few(tmp_path, library, monkeypatch):
    monkeypatch.setattr(store_mod, "MERGE_FANIN", 3)
    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=1, extractor=toy_fp, batch_tracks=1, merge=False)
        assert ix.n_segments < 3  # 6 commits, merged in threes
        ref = reference_postings(ix, fingerprints(files))
        q = ref.hashes[::7]
        assert same_hits(ix.lookup(q), ref.lookup(q)) and ix.verify() == []


# --------------------------------------------------------------------------- format errors
def test_missing_index_and_wrong_version_and_config_mismatch(tmp_path):
    with pytest.raises(IndexFormatError, match="no index here"):
        Index(tmp_path / "none")
    assert not (tmp_path / "none").exists()
    new_index(tmp_path).close()
    with pytest.raises(IndexFormatError, match="another fingerprint config"):
        Index(tmp_path / "ix", config=ToyConfig(n_fft=1024))
    with pytest.raises(IndexFormatError, match="another fingerprint config"):
        Index(tmp_path / "ix", create=True, config=ToyConfig(n_fft=1024))
    with sqlite3.connect(tmp_path / "ix" / CATALOG_NAME) as c:
        c.execute("PRAGMA user_version = 99")
    with pytest.raises(IndexFormatError, match="version 99"):
        Index(tmp_path / "ix")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / CATALOG_NAME).write_text("not a database" * 100)
    with pytest.raises(IndexFormatError):
        Index(tmp_path / "junk")


def test_damaged_segment_is_a_format_error(tmp_path, library):
    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=1, extractor=toy_fp)
    (seg,) = (tmp_path / "ix" / SEGMENT_DIR).iterdir()
    with open(seg, "r+b") as fh:
        fh.truncate(seg.stat().st_size - 4)
    with pytest.raises(IndexFormatError, match="header says"):
        Index(tmp_path / "ix")


# --------------------------------------------------------------------------- readers
def test_reader_sees_old_state_until_refresh(tmp_path, library):
    files = sorted(library.rglob("*.*"))
    fps = fingerprints(files)
    writer = new_index(tmp_path)
    index_files(writer, [files[0]], jobs=1, extractor=toy_fp)
    reader = Index(tmp_path / "ix")
    q = np.concatenate([fps[str(f.resolve())][0] for f in files])
    old = reader.lookup(q)
    index_files(writer, [library], jobs=1, extractor=toy_fp, batch_tracks=2)
    writer.remove([writer.tracks()[0].track_id])
    writer.compact()  # unlinks the segment the reader has mapped
    assert reader.n_tracks == 1 and same_hits(reader.lookup(q), old)
    assert reader.refresh() is True and reader.refresh() is False
    assert reader.n_tracks == 5 and same_hits(reader.lookup(q), writer.lookup(q))
    reader.close()
    writer.close()


def test_reader_ignores_crash_debris_and_writer_cleans_it(tmp_path, library):
    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=1, extractor=toy_fp)
        n = ix.n_postings
    seg_dir = tmp_path / "ix" / SEGMENT_DIR
    (seg_dir / ".seg-000009.sgm.123.tmp").write_bytes(b"half a segm")  # killed mid-write
    (seg_dir / "seg-000010.sgm").write_bytes(b"renamed but never committed")
    with Index(tmp_path / "ix") as reader:
        assert reader.n_postings == n and reader.n_tracks == 6
        assert len(reader.verify()) == 1  # the renamed-but-unregistered file is reported
        assert (seg_dir / "seg-000010.sgm").exists()  # a reader never deletes
    with Index(tmp_path / "ix") as writer:
        writer.remove([writer.tracks()[0].track_id])  # taking the write lock cleans up
        assert sorted(p.name for p in seg_dir.iterdir()) == ["seg-000001.sgm"]
        assert writer.verify() == []


def _die_in(window: str, path, files) -> None:
    """Open the index and write to it, SIGKILLed at ``window`` (between a segment file and its transaction)."""
    import signal

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if window == "segment written":
        real = store_mod.write_segment
        store_mod.write_segment = lambda *a, **k: (real(*a, **k), die())
    elif window == "merge written":
        real = store_mod.merge_segments
        store_mod.merge_segments = lambda *a, **k: (real(*a, **k), die())
    else:  # "merge committed": the replaced files are about to be deleted
        real_unlink = Path.unlink
        Path.unlink = lambda p, *a, **k: die() if p.name.startswith("seg-") else real_unlink(p, *a, **k)
    with Index(path) as ix:
        if window == "segment written":
            index_files(ix, files, jobs=1, extractor=toy_fp)
        else:
            ix.compact()


@pytest.mark.parametrize("window", ["segment written", "merge written", "merge committed"])
def test_a_writer_killed_between_a_segment_file_and_its_transaction_leaves_a_clean_index(tmp_path, library, window):
    """kill -9 at each point where a segment file and the catalogue disagree: readers see a clean index."""
    import multiprocessing as mp

    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as ix:
        if window != "segment written":  # two segments, for compact to merge
            index_files(ix, files[:3], jobs=1, extractor=toy_fp)
            index_files(ix, files[3:], jobs=1, extractor=toy_fp)
            assert ix.n_segments == 2
        before = (ix.n_tracks, ix.n_postings)
    proc = mp.get_context("fork").Process(target=_die_in, args=(window, tmp_path / "ix", files))
    proc.start()
    proc.join()
    assert proc.exitcode == -9
    seg_dir = tmp_path / "ix" / SEGMENT_DIR
    with Index(tmp_path / "ix") as reader:
        assert (reader.n_tracks, reader.n_postings) == before  # what was committed, no more, no less
        assert reader.verify() == []  # the file left behind is known to the catalogue, not damage
        on_disk = {p.name for p in seg_dir.glob("seg-*.sgm")}
        registered = {s.file for s in reader._segments}
        assert on_disk > registered and on_disk == registered | reader._transient_files()  # a reader leaves it
    with Index(tmp_path / "ix") as writer:
        index_files(writer, files, jobs=1, extractor=toy_fp)  # taking the lock cleans up; the run completes
        assert writer.n_tracks == 6 and writer.verify() == []
        writer.compact()
        assert sorted(p.name for p in seg_dir.iterdir()) == [s.file for s in writer._segments]
        assert writer.verify() == []


def _statements(index: Index) -> list[str]:
    """The SQL ``index``'s catalogue connection runs from now on (a list that grows)."""
    seen: list[str] = []
    index._conn.set_trace_callback(seen.append)
    return seen


def test_a_refresh_after_commits_reads_only_the_tracks_committed_since(tmp_path, library):
    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as writer, Index(tmp_path / "ix") as reader:
        index_files(writer, files[:2], jobs=1, extractor=toy_fp)
        reader.refresh()
        for f in files[2:]:
            index_files(writer, [f], jobs=1, extractor=toy_fp)
            sql = _statements(reader)
            assert reader.refresh()
            reads = [q for q in sql if "FROM tracks" in q]
            assert len(reads) == 1 and "WHERE track_id >" in reads[0], reads
            assert dict(reader._tracks.items()) == dict(Index(tmp_path / "ix")._tracks.items())


def test_a_run_asks_the_catalogue_of_its_own_files_only(tmp_path, library):
    """A run never reads every track's path or content hash: beside 160,000 tracks that was ~80 MB a run."""
    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as ix:
        index_files(ix, files[:3], jobs=1, extractor=toy_fp)
        for run in (files, files):  # three new files, then all unchanged
            sql = _statements(ix)
            index_files(ix, run, jobs=2, extractor=toy_fp)
            reads = [q for q in sql if "FROM tracks" in q and q.lstrip().startswith("SELECT")]
            assert reads and all(" IN (" in q or "WHERE track_id >" in q for q in reads), reads
        assert ix.n_tracks == 6 and ix.verify() == []


def test_a_rerun_with_nothing_to_do_holds_nothing_per_indexed_track(tmp_path, library):
    """Beside 50,000 indexed tracks, a run whose files are all unchanged builds no table of them."""
    files = sorted(library.rglob("*.*"))
    empty = np.zeros(0, np.uint32)
    with new_index(tmp_path) as ix:
        ix._add_tracks(
            [
                NewTrack(
                    f"/elsewhere/{i}.ogg", hashlib.sha256(b"%d" % i).hexdigest(), 0, 0, 1.0, *[None] * 3, empty, empty
                )
                for i in range(50_000)
            ]
        )
        index_files(ix, files, jobs=2, extractor=toy_fp)
        for jobs in (1, 2):
            tracemalloc.start()
            rep = index_files(ix, files, jobs=jobs, extractor=toy_fp)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert (rep.added, rep.unchanged, rep.failed) == (0, len(files), [])
            assert peak < 500_000, peak  # the live hashes as digests alone: 2 MB


def test_adding_a_file_beside_many_tracks_costs_what_it_costs_beside_none(tmp_path, synth_music):
    """``add_file`` (the server's add) asks the catalogue for its content, it does not list every track."""
    from songmine.fingerprint.index import add_file

    empty = np.zeros(0, np.uint32)
    song = tmp_path / "song.wav"
    sf.write(song, synth_music(sr=11025, seconds=5.0, seed=9), 11025)
    peaks = {}
    for n in (0, 50_000):
        with Index(tmp_path / f"ix{n}", create=True) as ix:
            ix._add_tracks(
                [
                    NewTrack(
                        f"/elsewhere/{i}.ogg",
                        hashlib.sha256(b"%d" % i).hexdigest(),
                        0,
                        0,
                        1.0,
                        *[None] * 3,
                        empty,
                        empty,
                    )
                    for i in range(n)
                ]
            )
            add_file(ix, song)  # (imports, caches: not what is measured)
            ix.remove([ix.track_ids()[-1]])
            tracemalloc.start()
            added = add_file(ix, song)
            peaks[n] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert added.created and added.track.path == str(song.resolve()) and added.error is None
            again = add_file(ix, song)
            assert (again.created, again.track) == (False, added.track)
            assert ix.n_tracks == n + 1 and list(ix.track_ids()) == [t.track_id for t in ix.tracks()]
    assert peaks[50_000] < peaks[0] + 2_000_000, peaks  # a record of every track, listed twice: 17 MB more


@pytest.mark.parametrize("change", ["remove", "move", "compact", "foreign update", "foreign delete"])
def test_a_refresh_sees_every_change_to_a_track(tmp_path, library, change):
    """Changes other than a new track (by any writer, an older songmine's raw SQL too) make a refresh read all."""
    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as writer, Index(tmp_path / "ix") as reader:
        index_files(writer, files, jobs=1, extractor=toy_fp)
        reader.refresh()
        tid = writer.tracks()[2].track_id
        if change == "remove":
            writer.remove([tid])
        elif change == "move":
            writer._update_paths([(tid, "/elsewhere/t.flac", 1, 2)])
        elif change == "compact":
            writer.remove([tid])
            reader.refresh()
            writer.compact()  # forgets the removed track
        else:
            with sqlite3.connect(tmp_path / "ix" / CATALOG_NAME) as raw:
                if change == "foreign update":
                    raw.execute("UPDATE tracks SET title = 'renamed' WHERE track_id = ?", (tid,))
                else:
                    raw.execute("DELETE FROM tracks WHERE track_id = ?", (tid,))
                raw.execute("UPDATE settings SET value = value + 1 WHERE key = 'generation'")
        sql = _statements(reader)
        assert reader.refresh()
        assert not any("WHERE track_id >" in q for q in sql)
        assert dict(reader._tracks.items()) == dict(Index(tmp_path / "ix")._tracks.items())
        want = {
            "remove": lambda r: r.status == "removed",
            "move": lambda r: r.path == "/elsewhere/t.flac",
            "foreign update": lambda r: r.title == "renamed",
        }
        if change in want:
            assert want[change](reader.track(tid))
        else:
            assert tid not in reader._tracks


def test_a_catalogue_of_an_older_songmine_is_read_whole_until_a_writer_adds_the_counter(tmp_path, library):
    files = sorted(library.rglob("*.*"))
    with new_index(tmp_path) as writer:
        index_files(writer, files[:3], jobs=1, extractor=toy_fp)
    with sqlite3.connect(tmp_path / "ix" / CATALOG_NAME) as raw:  # as a songmine without the counter made it
        for name in ("tracks_rewritten_by_update", "tracks_rewritten_by_delete", "tracks_rewritten_by_insert"):
            raw.execute(f"DROP TRIGGER {name}")
        raw.execute("DROP TABLE transient_segments")
        raw.execute("DELETE FROM settings WHERE key = 'tracks_rewrites'")
    with Index(tmp_path / "ix") as reader:
        assert reader._snap.tracks_rewrites is None and reader.n_tracks == 3 and reader.verify() == []
        with sqlite3.connect(tmp_path / "ix" / CATALOG_NAME) as raw:  # an older writer's change
            raw.execute("UPDATE tracks SET title = 'older' WHERE track_id = 1")
            raw.execute("UPDATE settings SET value = value + 1 WHERE key = 'generation'")
        assert reader.refresh() and reader.track(1).title == "older"
        with Index(tmp_path / "ix") as writer:
            index_files(writer, files[3:], jobs=1, extractor=toy_fp)  # this writer adds the counter
        sql = _statements(reader)
        assert reader.refresh() and reader._snap.tracks_rewrites == 0 and reader.n_tracks == 6
        assert any("FROM tracks ORDER BY" in q for q in sql)  # read whole once, by the new count
        with Index(tmp_path / "ix") as writer:
            writer.remove([1])
        assert reader.refresh() and reader.track(1).status == "removed"


def test_concurrent_reader_never_sees_partial_state(tmp_path, library):
    """A reader refreshing in a loop while another process writes batches: every snapshot is consistent."""
    import multiprocessing as mp

    files = sorted(library.rglob("*.*"))
    new_index(tmp_path).close()
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_write_in_batches, args=(tmp_path / "ix", [str(f) for f in files]))
    with Index(tmp_path / "ix") as reader:
        proc.start()
        seen = set()
        while proc.is_alive() or reader.refresh():
            reader.refresh()
            problems = reader.verify()
            assert problems == [] or all("not in the catalogue" in p for p in problems), problems
            seen.add(reader.n_tracks)
        proc.join()
        assert proc.exitcode == 0
        reader.refresh()
        assert reader.n_tracks == 6 and reader.verify() == []


def _write_in_batches(path, files):
    with Index(path) as ix:
        for f in files:
            index_files(ix, [f], jobs=1, extractor=toy_fp)


def test_two_indexing_runs_at_once_add_each_file_once(tmp_path, library):
    """Two processes index overlapping folders at the same time: no duplicate, nothing lost."""
    import multiprocessing as mp

    new_index(tmp_path).close()
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_index_folder, args=(tmp_path / "ix", str(d))) for d in (library, library / "sub")]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    with Index(tmp_path / "ix") as ix:
        assert ix.n_tracks == 6 and ix.verify() == []
        assert len({r.sha256 for r in ix.tracks()}) == 6


def _index_folder(path, folder):
    with Index(path) as ix:
        index_files(ix, [folder], jobs=1, extractor=toy_fp, batch_tracks=1)


def test_second_writer_waits_then_gives_up(tmp_path):
    from songmine.fingerprint.index import IndexLockedError

    a = new_index(tmp_path)
    b = Index(tmp_path / "ix")
    with a._writing():
        with pytest.raises(IndexLockedError, match="another process"):
            with b._writing(timeout=0.3):
                pass
    with b._writing(timeout=0.3):
        pass
    a.close()
    b.close()


def test_json_of_records(tmp_path, library):
    from songmine.cli._app import jsonable

    with new_index(tmp_path) as ix:
        index_files(ix, [library], jobs=1, extractor=toy_fp)
        rec = jsonable(ix.tracks()[0])
    assert set(rec) == {"track_id", "path", "sha256", "duration_s", "title", "artist", "album", "n_hashes", "status"}
    json.dumps(rec)


def test_default_config_is_the_landmark_method(tmp_path):
    from songmine.fingerprint.landmarks import FingerprintConfig

    with Index(tmp_path / "ix", create=True) as ix:
        assert ix.method == "landmark" and ix.config == FingerprintConfig()
    with Index(tmp_path / "ix", config=FingerprintConfig()) as ix:
        assert ix.n_tracks == 0
