"""An index of many segments answers exactly as the same index compacted into one.

``Index.lookup`` locates every query hash in all segments at once
(``segments.lower_bounds`` / ``run_bounds``); these tests hold it to the
compacted index's answers — same arrays, same order — on synthetic postings
with real-like skew and on real music through ``identify.search``, with
segments of the packed format (version 5) and of the format before it
(version 4) side by side.
"""

from __future__ import annotations

import functools
import shutil

import numpy as np
import pytest

from songmine.fingerprint.index import Index
from songmine.fingerprint.index import segments as seg_mod
from songmine.fingerprint.index import store as store_mod
from songmine.fingerprint.index.segments import lower_bounds, open_segment, run_bounds, write_segment
from songmine.fingerprint.index.store import NewTrack
from songmine.fingerprint.postings import Postings

U32_MAX = np.iinfo(np.uint32).max


def skewed_hashes(rng, n: int, *, top: bool = True) -> np.ndarray:
    """Landmark-like hashes: runs of consecutive values, a few very common ones, the top value now and then."""
    h = rng.integers(0, 1 << 25, n)
    h = np.where(rng.random(n) < 0.3, rng.integers(0, 40, n), h)  # common hashes
    h = np.where(rng.random(n) < 0.2, h + rng.integers(-1, 2, n), h)  # neighbours (dt jitter)
    if top:
        h = np.where(rng.random(n) < 0.01, U32_MAX, h)
    return np.clip(h, 0, U32_MAX).astype(np.uint32)


def query_keys(rng, stored: np.ndarray, n: int) -> np.ndarray:
    """Sorted unique keys: stored hashes, their neighbours, random values, 0 and 2**32 - 1."""
    picked = stored[rng.integers(0, stored.shape[0], n)] if stored.shape[0] else np.zeros(0, np.int64)
    keys = np.concatenate(
        [
            picked.astype(np.int64) + rng.integers(-1, 3, picked.shape[0]),
            rng.integers(0, 1 << 32, n),
            [0, 1, U32_MAX, U32_MAX - 1],
        ]
    )
    return np.unique(np.clip(keys, 0, U32_MAX)).astype(np.uint32)


@pytest.mark.parametrize("forced", [True, False])
def test_lower_and_run_bounds_equal_searchsorted_in_every_segment(tmp_path, rng, monkeypatch, forced):
    if forced:  # the fenced two-step search at every size and key count
        monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)
        monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)
    segs = []
    # sizes around the window width, fence steps that are and are not powers of two, both formats
    for k, (n, step) in enumerate([(0, 32), (1, 32), (31, 32), (33, 32), (1000, 5), (5000, 48), (50_000, 32)] * 2):
        monkeypatch.setattr(seg_mod, "FENCE_STEP", step)
        h = skewed_hashes(rng, n, top=k % 2 == 0)  # keys above every hash of a segment, and not
        p = Postings.from_unsorted(h, rng.integers(0, 9, n, dtype=np.uint32), rng.integers(0, 999, n, dtype=np.uint32))
        version = 4 if k < 7 else 5
        write_segment(tmp_path / f"s{k}.sgm", p, version=version)
        segs.append(open_segment(tmp_path / f"s{k}.sgm"))
        assert segs[-1].version == version and len(segs[-1]) == n
        assert version == 5 or segs[-1].step == step
    hashes = [s.decode().hashes for s in segs]
    stored = np.concatenate(hashes)
    for m in (0, 1, 3, 500):
        keys = query_keys(rng, stored, m)
        low = lower_bounds(segs, keys)
        lo, hi = run_bounds(segs, keys)
        assert low.shape == lo.shape == hi.shape == (len(segs), keys.shape[0])
        for s, h in enumerate(hashes):
            assert np.array_equal(low[s], np.searchsorted(h, keys, "left"))
            assert np.array_equal(lo[s], np.searchsorted(h, keys, "left"))
            assert np.array_equal(hi[s], np.searchsorted(h, keys, "right"))


def _synthetic_index(path, rng, *, n_commits: int, tracks_per_commit: int) -> Index:
    """An index of ``n_commits`` segments (automatic merges off) holding skewed synthetic postings."""
    ix = Index(path, create=True)
    ix._auto_merge = lambda: None  # keep every commit a segment
    k = 0
    for _ in range(n_commits):  # loop over commits
        new = []
        for _ in range(tracks_per_commit):  # loop over tracks
            n = int(rng.integers(200, 3000))
            new.append(
                NewTrack(
                    f"/synthetic/{k}.ogg",
                    f"{k:064d}",
                    0,
                    0,
                    60.0,
                    None,
                    None,
                    None,
                    skewed_hashes(rng, n),
                    rng.integers(0, 5000, n).astype(np.uint32),
                )
            )
            k += 1
        ix._add_tracks(new)
    return ix


@pytest.mark.parametrize("forced, old", [(True, 0), (False, 0), (False, 3)])
def test_lookup_over_segments_equals_the_compacted_index(tmp_path, rng, monkeypatch, forced, old):
    """``old``: the first commits write version-4 segments (an index from before the packed format)."""
    if forced:
        monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)
        monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)
    if old:
        monkeypatch.setattr(store_mod, "write_segment", functools.partial(write_segment, version=4))
    with _synthetic_index(tmp_path / "many", rng, n_commits=old, tracks_per_commit=6) as many:
        monkeypatch.setattr(store_mod, "write_segment", write_segment)
        for _ in range(7 - old):
            many._add_tracks(
                [
                    NewTrack(
                        f"/synthetic/{many.n_tracks}-{k}.ogg",
                        f"{many.n_tracks:060d}{k:04d}",
                        0,
                        0,
                        60.0,
                        None,
                        None,
                        None,
                        skewed_hashes(rng, n := int(rng.integers(200, 3000))),
                        rng.integers(0, 5000, n).astype(np.uint32),
                    )
                    for k in range(6)
                ]
            )
        assert many.n_segments == 7
        assert [s.data.version for s in many._segments] == [4] * old + [5] * (7 - old)
        shutil.copytree(tmp_path / "many", tmp_path / "one")
        with Index(tmp_path / "one") as one:
            one.compact()
            assert one.n_segments == 1 and one.n_postings == many.n_postings and one._segments[0].data.version == 5
            stored = one._segments[0].data.decode().hashes
            for m in (0, 1, 40, 800):
                keys = query_keys(rng, np.asarray(stored), m)
                q = np.concatenate([keys, keys[::3]])  # repeats too
                rng.shuffle(q)
                full = one.lookup(q)[0].shape[0]
                for mph, mh in [
                    (None, None),
                    (1, None),
                    (25, None),
                    (None, 1),
                    (None, max(full // 3, 1)),
                    (40, max(full // 5, 1)),
                    (None, 10**9),
                ]:
                    a, b = many.lookup(q, mph, mh), one.lookup(q, mph, mh)
                    for x, y in zip(a, b):  # the same hits in the same order
                        assert x.dtype == y.dtype and np.array_equal(x, y), (m, mph, mh)
                    if mh is not None:
                        assert a[0].shape[0] <= mh


def test_removed_tracks_are_filtered_in_every_segment(tmp_path, rng):
    with _synthetic_index(tmp_path / "ix", rng, n_commits=4, tracks_per_commit=3) as ix:
        keys = query_keys(rng, np.concatenate([s.data.decode().hashes for s in ix._segments]), 300)
        before = ix.lookup(keys)
        gone = [2, 7, 11]
        ix.remove(gone)
        qp, tr, t = ix.lookup(keys)
        keep = ~np.isin(before[1], gone)
        assert not np.isin(tr, gone).any()
        for x, y in zip((qp, tr, t), before):
            assert np.array_equal(x, y[keep])


@pytest.mark.corpus
def test_identify_gives_the_same_candidates_on_segments_and_compacted(tmp_path, real_cuts, monkeypatch, rng):
    """Real music, real landmarks: every candidate of ``search`` is equal, for members and a stranger."""
    import soxr

    from songmine.audio import load
    from songmine.evaluation.degrade import degrade
    from songmine.fingerprint.index import index_files
    from songmine.fingerprint.search import SearchConfig, search

    monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)  # the fenced search in these small segments too
    monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)
    with Index(tmp_path / "many", create=True) as many:
        index_files(many, real_cuts[:5], jobs=1, batch_tracks=1, merge=False)
        assert many.n_segments == 5
        shutil.copytree(tmp_path / "many", tmp_path / "one")
        with Index(tmp_path / "one") as one:
            one.compact()
            assert one.n_segments == 1
            sr = one.config.sr
            clips = [load(p, sr=sr, offset=7.0, duration=6.0) for p in real_cuts]  # the sixth is no member
            clips.append(degrade(clips[0], sr, "white5", random_state=1))
            clips.append(soxr.resample(clips[1], 1.0, 1.04).astype(np.float32))  # 4 % faster
            # a tight hit budget too, so the rarest-first cut is exercised on both
            ids = [r.track_id for r in many.tracks()]
            for config in (SearchConfig(), SearchConfig(coarse_max_hits=200, max_hits=1500, max_per_hash=40)):
                for k, y in enumerate(clips):
                    got = search(many, y, config=config)
                    assert got == search(one, y, config=config)
                    if k < 5:  # members: found (so the equality is not between two empty answers)
                        assert got and got[0].track_id == ids[k] and got[0].confidence >= config.min_confidence


def test_an_indexing_run_ends_with_one_segment(tmp_path, synth_music):
    """index_files merges the segments it committed (not older ones, not with merge=False)."""
    import soundfile as sf

    from songmine.fingerprint.index import index_files

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(5):
        sf.write(lib / f"a{i}.wav", synth_music(sr=11025, seconds=3.0, seed=10 + i), 11025)
    with Index(tmp_path / "ix", create=True) as ix:
        rep = index_files(ix, [lib], jobs=1, batch_tracks=1)
        assert rep.added == 5 and ix.n_segments == 1 and ix.verify() == []
        first = ix._segments[0].file
        keys = np.unique(ix._segments[0].data.decode().hashes)
        before = ix.lookup(keys)
        for i in range(3):
            sf.write(lib / f"b{i}.wav", synth_music(sr=11025, seconds=3.0, seed=20 + i), 11025)
        rep = index_files(ix, [lib], jobs=1, batch_tracks=1)
        assert (rep.added, rep.unchanged) == (3, 5)
        assert ix.n_segments == 2 and ix._segments[0].file == first  # the older segment is left alone
        assert ix.verify() == [] and ix.n_tracks == 8
        sf.write(lib / "c.wav", synth_music(sr=11025, seconds=3.0, seed=30), 11025)
        sf.write(lib / "d.wav", synth_music(sr=11025, seconds=3.0, seed=31), 11025)
        index_files(ix, [lib], jobs=1, batch_tracks=1, merge=False)
        assert ix.n_segments == 4 and ix.verify() == []
        got = ix.lookup(keys)  # the first run's hits are all still there (and the new tracks' too)
        old = np.isin(got[1], before[1])
        assert np.array_equal(got[0][old], before[0]) and np.array_equal(got[2][old], before[2])


def test_a_one_batch_run_does_not_merge_another_writers_segments(tmp_path, synth_music):
    """A run that committed one batch (the server adding a file) merges nothing, even when another
    writer committed several segments since it started."""
    import soundfile as sf

    from songmine.fingerprint.index import index_files

    one, other = tmp_path / "one", tmp_path / "other"
    one.mkdir()
    other.mkdir()
    sf.write(one / "x.wav", synth_music(sr=11025, seconds=3.0, seed=40), 11025)
    for i in range(3):
        sf.write(other / f"o{i}.wav", synth_music(sr=11025, seconds=3.0, seed=41 + i), 11025)
    with Index(tmp_path / "ix", create=True) as ix, Index(tmp_path / "ix") as writer:

        def meanwhile(done, total):  # another writer commits three segments during the run
            if done == total and writer.n_tracks == 0:
                index_files(writer, [other], jobs=1, batch_tracks=1, merge=False)

        index_files(ix, [one], jobs=1, batch_tracks=1, progress=meanwhile)
        ix.refresh()
        assert ix.n_tracks == 4 and ix.n_segments == 4 and ix.verify() == []
