"""Segment files: fence lookups equal a plain binary search; merges equal an in-memory concat."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.errors import IndexFormatError
from songmine.fingerprint.index import segments as seg_mod
from songmine.fingerprint.index.schema import SEGMENT_HEADER_V1, SEGMENT_MAGIC_V1
from songmine.fingerprint.index.segments import merge_segments, open_segment, write_segment
from songmine.fingerprint.postings import Postings


def random_postings(rng, n: int, *, hash_bits: int = 25, skew: bool = True, n_tracks: int = 50) -> Postings:
    if skew:  # a few very common hashes, like real landmarks
        h = np.where(rng.random(n) < 0.3, rng.integers(0, 40, n), rng.integers(0, 1 << hash_bits, n))
    else:
        h = rng.integers(0, 1 << hash_bits, n)
    return Postings.from_unsorted(
        h.astype(np.uint32), rng.integers(0, n_tracks, n, dtype=np.uint32), rng.integers(0, 10_000, n, dtype=np.uint32)
    )


@pytest.mark.parametrize("n, hash_bits, skew", [(0, 25, False), (1, 25, False), (1000, 25, True),
                                                 (50_000, 25, True), (20_000, 32, False), (5000, 8, True)])
def test_fence_bounds_equal_searchsorted(tmp_path, rng, monkeypatch, n, hash_bits, skew):
    monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)  # use the fences at every size
    monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)  # and for any number of keys
    p = random_postings(rng, n, hash_bits=hash_bits, skew=skew)
    write_segment(tmp_path / "s.sgm", p)
    seg = open_segment(tmp_path / "s.sgm")
    assert (seg.fences is not None) == (n > 0) and len(seg) == n
    if n:
        assert np.array_equal(seg.fences, p.hashes[:: seg.step])
    for a, b in zip((seg.postings.hashes, seg.postings.tracks, seg.postings.times), (p.hashes, p.tracks, p.times)):
        assert np.array_equal(a, b)
    present = p.hashes[rng.integers(0, n, 300)] if n else np.zeros(0, np.uint32)
    keys = np.unique(np.concatenate([present, rng.integers(0, 1 << 32, 300, dtype=np.uint32),
                                     np.array([0, 2**32 - 1, min(1 << hash_bits, 2**32 - 1)], dtype=np.uint32)]).astype(np.uint32))
    lo, hi = seg.bounds(keys)
    assert np.array_equal(lo, np.searchsorted(p.hashes, keys, "left"))
    assert np.array_equal(hi, np.searchsorted(p.hashes, keys, "right"))


def test_fences_and_checksums_cost_one_percent(tmp_path, rng):
    p = random_postings(rng, 100_000)
    size = write_segment(tmp_path / "s.sgm", p)
    assert size == (tmp_path / "s.sgm").stat().st_size
    body = 4 * -(-len(p) // 32) + 12 * len(p)  # fences + postings
    assert size == 64 + body + 4 * -(-body // 4096) + 16  # + a CRC per 4 KB block + footer
    assert 12 * len(p) < size <= 12 * len(p) * 1.012 + 80


def test_version_1_segments_are_still_read(tmp_path, rng):
    p = random_postings(rng, 3000)
    path = tmp_path / "old.sgm"
    with open(path, "wb") as fh:
        fh.write(SEGMENT_HEADER_V1.pack(SEGMENT_MAGIC_V1, len(p), 50))
        for a in (p.hashes, p.tracks, p.times):
            fh.write(a.astype("<u4").tobytes())
    seg = open_segment(path)
    assert seg.fences is None
    keys = np.unique(p.hashes[::7])
    lo, hi = seg.bounds(keys)
    assert np.array_equal(hi - lo, np.searchsorted(p.hashes, keys, "right") - np.searchsorted(p.hashes, keys))
    write_segment(tmp_path / "new.sgm", random_postings(rng, 100))
    n, _ = merge_segments(tmp_path / "m.sgm", [seg, open_segment(tmp_path / "new.sgm")])
    assert n == 3100 and open_segment(tmp_path / "m.sgm").fences is not None


@pytest.mark.parametrize("with_dead", [False, True])
def test_merge_equals_in_memory_concat(tmp_path, rng, monkeypatch, with_dead):
    monkeypatch.setattr(seg_mod, "MERGE_CHUNK", 5000)  # many hash-range chunks
    monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)
    monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)
    parts = [random_postings(rng, n) for n in (20_000, 7000, 0, 1, 13_000)]
    segs = []
    for i, p in enumerate(parts):
        write_segment(tmp_path / f"{i}.sgm", p)
        segs.append(open_segment(tmp_path / f"{i}.sgm"))
    dead = np.zeros(30, dtype=bool)
    if with_dead:
        dead[[3, 7, 29]] = True
    n, n_tracks = merge_segments(tmp_path / "m.sgm", segs, dead=dead)
    ref = Postings.concat(parts).without_tracks(np.nonzero(dead)[0])
    merged = open_segment(tmp_path / "m.sgm")
    assert n == len(ref) == len(merged) and n_tracks == np.unique(ref.tracks).shape[0]
    assert np.array_equal(merged.postings.hashes, ref.hashes)
    # ties may be ordered differently: compare as multisets of (hash, track, time)
    key = lambda p: np.sort(p.hashes.astype(np.uint64) << np.uint64(32) | p.tracks.astype(np.uint64) * 10_000 + p.times)
    assert np.array_equal(key(merged.postings), key(ref))
    assert np.array_equal(merged.fences, ref.hashes[:: merged.step])  # fences written chunk by chunk
    keys = np.unique(np.concatenate([ref.hashes[::11], rng.integers(0, 2**32, 100, dtype=np.uint32)]))
    lo, hi = merged.bounds(keys)
    assert np.array_equal(lo, np.searchsorted(ref.hashes, keys))
    assert np.array_equal(hi, np.searchsorted(ref.hashes, keys, "right"))
    assert not list(tmp_path.glob(".*.tmp"))


def test_truncated_and_foreign_files_are_format_errors(tmp_path, rng):
    write_segment(tmp_path / "s.sgm", random_postings(rng, 100))
    data = (tmp_path / "s.sgm").read_bytes()
    (tmp_path / "t.sgm").write_bytes(data[:-1])
    with pytest.raises(IndexFormatError, match="header says"):
        open_segment(tmp_path / "t.sgm")
    (tmp_path / "f.sgm").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(IndexFormatError, match="not a songmine segment"):
        open_segment(tmp_path / "f.sgm")
    with pytest.raises(IndexFormatError, match="missing"):
        open_segment(tmp_path / "nothing.sgm")


def test_hit_budget_keeps_the_rarest_hashes_whole(rng):
    from songmine.fingerprint.postings import rarest_within

    # hash v has v postings (v = 1..40), in random order
    h = np.repeat(np.arange(1, 41, dtype=np.uint32), np.arange(1, 41))
    p = Postings.from_unsorted(h, rng.integers(0, 5, h.size, dtype=np.uint32), rng.integers(0, 99, h.size, dtype=np.uint32))
    q = rng.permutation(np.arange(1, 41, dtype=np.uint32))
    q = np.concatenate([q, q[:3]])  # repeats cost their postings again
    full = p.lookup(q)
    assert full[0].shape[0] == int(q.astype(np.int64).sum())
    for budget in (0, 1, 10, 55, 300, 10**6):
        qp, tr, t = p.lookup(q, max_hits=budget)
        kept = np.unique(q[qp])
        assert qp.shape[0] <= budget
        # a prefix of the hashes by count (= value here), each with all its postings
        assert kept.tolist() == list(range(1, kept.size + 1))
        assert qp.shape[0] == int(q[np.isin(q, kept)].astype(np.int64).sum())
        # the next-rarest hash would not have fitted
        if kept.size < 40:
            nxt = kept.size + 1
            assert qp.shape[0] + nxt * int((q == nxt).sum()) > budget
    assert rarest_within(np.array([5, 5, 1]), np.array([1, 1, 1]), 6).tolist() == [True, False, True]
