"""Segment files: both formats' lookups equal a plain binary search; the packed records decode to exactly
what was written; merges equal an in-memory concat."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from songmine.errors import IndexCorruptError, IndexFormatError
from songmine.fingerprint.index import segments as seg_mod
from songmine.fingerprint.index.packing import cut_windows, plan_layout, track_time_bits
from songmine.fingerprint.index.schema import SEGMENT_HEADER_V1, SEGMENT_MAGIC_V1
from songmine.fingerprint.index.segments import PackedSegment, merge_segments, open_segment, write_segment
from songmine.fingerprint.postings import Postings


def random_postings(rng, n: int, *, hash_bits: int = 25, skew: bool = True, n_tracks: int = 50) -> Postings:
    if skew:  # a few very common hashes, like real landmarks
        h = np.where(rng.random(n) < 0.3, rng.integers(0, 40, n), rng.integers(0, 1 << hash_bits, n))
    else:
        h = rng.integers(0, 1 << hash_bits, n)
    return Postings.from_unsorted(
        h.astype(np.uint32), rng.integers(0, n_tracks, n, dtype=np.uint32), rng.integers(0, 10_000, n, dtype=np.uint32)
    )


def same(a: Postings, b: Postings) -> bool:
    return all(np.array_equal(x, y) for x, y in zip((a.hashes, a.tracks, a.times), (b.hashes, b.tracks, b.times)))


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize(
    "n, hash_bits, skew",
    [(0, 25, False), (1, 25, False), (1000, 25, True), (50_000, 25, True), (20_000, 32, False), (5000, 8, True)],
)
def test_bounds_equal_searchsorted(tmp_path, rng, monkeypatch, n, hash_bits, skew, version):
    monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)  # use the fences at every size
    monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)  # and for any number of keys
    p = random_postings(rng, n, hash_bits=hash_bits, skew=skew)
    write_segment(tmp_path / "s.sgm", p, version=version)
    seg = open_segment(tmp_path / "s.sgm")
    assert seg.version == version and len(seg) == n
    if version == 4:
        assert (seg.fences is not None) == (n > 0)
        if n:
            assert np.array_equal(seg.fences, p.hashes[:: seg.step])
    assert same(seg.decode(), p) and same(seg.read(0, n), p)
    rows = rng.integers(0, n, 500) if n else np.zeros(0, np.int64)
    tracks, times = seg.gather(rows)
    assert np.array_equal(tracks, p.tracks[rows]) and np.array_equal(times, p.times[rows])
    assert tracks.dtype == times.dtype == np.uint32
    assert np.array_equal(seg.hashes_at(rows), p.hashes[rows])
    if n > 10:
        assert same(seg.read(3, n - 7), Postings(p.hashes[3 : n - 7], p.tracks[3 : n - 7], p.times[3 : n - 7]))
    present = p.hashes[rng.integers(0, n, 300)] if n else np.zeros(0, np.uint32)
    keys = np.unique(
        np.concatenate(
            [
                present,
                present + np.uint32(1),
                rng.integers(0, 1 << 32, 300, dtype=np.uint32),
                np.array([0, 2**32 - 1, min(1 << hash_bits, 2**32 - 1)], dtype=np.uint32),
            ]
        ).astype(np.uint32)
    )
    lo, hi = seg.bounds(keys)
    assert np.array_equal(lo, np.searchsorted(p.hashes, keys, "left"))
    assert np.array_equal(hi, np.searchsorted(p.hashes, keys, "right"))
    assert np.array_equal(seg.lower_bound(keys), lo)


def test_fences_and_checksums_cost_one_percent(tmp_path, rng):
    p = random_postings(rng, 100_000)
    size = write_segment(tmp_path / "s.sgm", p, version=4)
    assert size == (tmp_path / "s.sgm").stat().st_size
    body = 4 * -(-len(p) // 32) + 12 * len(p)  # fences + postings
    assert size == 64 + body + 4 * -(-body // 4096) + 16  # + a CRC per 4 KB block + footer
    assert 12 * len(p) < size <= 12 * len(p) * 1.012 + 80


def test_packed_segment_layout_and_size(tmp_path, rng):
    """4 bytes a record, 8 per window of at most 31 postings sharing their high hash bits, the tables, the
    checksums: 100 k skewed postings of 50 tracks take under 5 bytes each (12 in version 4)."""
    p = random_postings(rng, 100_000)
    size = write_segment(tmp_path / "s.sgm", p)
    seg = open_segment(tmp_path / "s.sgm")
    assert isinstance(seg, PackedSegment) and seg.layout.record == 4 and seg.cap == 31
    n, t, w = len(p), seg.layout.ids.shape[0], seg.wkeys.shape[0]
    assert t == 50 and seg.layout.classes.shape[0] == 1
    # 6 bits of track, 14 of time (< 10,000), so 12 bits of the hash live in each record
    assert seg.layout.hash_bits == 32 - 6 - 14 == 12
    body = -(-5 * t // 8) * 8 + 24 + 4 * n + 4 * w + 4 * (w + 1)  # tracks, time bits (padded), 1 class
    assert size == 64 + body + 4 * -(-body // 4096) + 16
    starts = np.asarray(seg.wstarts, dtype=np.int64)
    assert np.all(np.diff(starts) <= 31) and np.all(np.diff(starts) > 0)
    high = p.hashes.astype(np.int64) >> 12
    assert np.all(high[starts[:-1]] == high[starts[1:] - 1])  # one high part per window
    assert size < 5 * n


def test_layouts_for_big_segments(tmp_path, rng):
    """Tracks whose slots no longer fit 32 bits as one class are grouped by slot size (a 10,000-hour
    segment still fits 4-byte records); past 32 bits, records take 8 bytes. Both decode exactly."""
    ids = np.arange(1, 150_001, dtype=np.uint32) * 3
    bits = np.where(rng.random(ids.shape[0]) < 0.3, 15, 14).astype(np.uint8)
    bits[:5] = [16, 13, 12, 3, 0]
    big = plan_layout(ids, bits)  # one class of 2**16 slots would need 34 bits
    assert big.record == 4 and big.classes.shape[0] > 1 and big.classes[0, 0] == 16
    assert int(big.n_positions - 1).bit_length() + big.hash_bits <= 32
    huge = plan_layout(ids, np.full(ids.shape[0], 20, np.uint8))  # 150 k slots of 2**20 frames
    assert huge.record == 8 and huge.classes.shape[0] == 1
    for layout in (big, huge):
        n = 200_000
        k = rng.integers(0, ids.shape[0], n)
        times = (
            rng.random(n)
            * (
                1 << layout.time_bits[np.searchsorted(layout.ids, ids[k])]
                if layout is huge
                else rng.random(n) * (1 << bits[k].astype(np.int64))
            )
        ).astype(np.uint32)
        times[:5] = (1 << bits[k[:5]].astype(np.int64)) - 1 if layout is big else times[:5]
        h = np.sort(rng.integers(0, 1 << 25, n).astype(np.uint32))
        rec = layout.encode(h, ids[k], times)
        assert rec.dtype == (np.uint32 if layout.record == 4 else np.uint64)
        tr, t = layout.decode(rec)
        assert np.array_equal(tr, ids[k]) and np.array_equal(t, times)
        assert np.array_equal(layout.low_hashes(rec), h & ((1 << layout.hash_bits) - 1))
    p = random_postings(rng, 30_000, n_tracks=150_000)
    p = Postings(p.hashes, p.tracks * np.uint32(7), p.times * np.uint32(100))  # times up to ~2**20
    write_segment(tmp_path / "s.sgm", p)
    seg = open_segment(tmp_path / "s.sgm")
    assert same(seg.decode(), p)
    with pytest.raises(ValueError, match="time"):
        big.encode(np.zeros(1, np.uint32), ids[3:4], np.array([8], np.uint32))  # 3 time bits: 8 does not fit
    with pytest.raises(ValueError, match="track"):
        big.encode(np.zeros(1, np.uint32), np.array([2], np.uint32), np.zeros(1, np.uint32))


def test_windows_share_high_bits_and_hold_at_most_the_cap(rng):
    h = np.sort(rng.integers(0, 1 << 20, 5000).astype(np.uint32))
    h[100:300] = h[100]  # a long run of one hash
    for bits in (0, 4, 12):
        starts = cut_windows(h, bits, 32)
        ends = np.append(starts[1:], h.shape[0])
        assert starts[0] == 0 and np.all(ends > starts)
        high = h.astype(np.int64) >> bits
        assert np.all(high[starts] == high[ends - 1])
        if bits:  # a window ends where the high bits change, or when it is full
            assert np.all(ends - starts <= 32)
            assert np.all((high[ends[:-1] - 1] != high[ends[:-1]]) | (ends[:-1] - starts[:-1] == 32))
        else:  # one hash a window, uncut
            assert np.array_equal(starts, np.flatnonzero(np.r_[True, h[1:] != h[:-1]]))
    ids, bits = track_time_bits(np.array([5, 3, 5, 9], np.uint32), np.array([7, 0, 8, 1], np.uint32))
    assert ids.tolist() == [3, 5, 9] and bits.tolist() == [0, 4, 1]


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
    assert n == 3100 and open_segment(tmp_path / "m.sgm").version == 5


@pytest.mark.parametrize("with_dead", [False, True])
def test_merge_equals_in_memory_concat(tmp_path, rng, monkeypatch, with_dead):
    monkeypatch.setattr(seg_mod, "MERGE_CHUNK", 5000)  # many hash-range chunks
    monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)
    monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)
    parts = [random_postings(rng, n) for n in (20_000, 7000, 0, 1, 13_000)]
    segs = []
    for i, p in enumerate(parts):  # both formats in, the packed one out
        write_segment(tmp_path / f"{i}.sgm", p, version=4 if i % 2 else 5)
        segs.append(open_segment(tmp_path / f"{i}.sgm"))
    dead = np.zeros(30, dtype=bool)
    if with_dead:
        dead[[3, 7, 29]] = True
    n, n_tracks = merge_segments(tmp_path / "m.sgm", segs, dead=dead)
    ref = Postings.concat(parts).without_tracks(np.nonzero(dead)[0])
    merged = open_segment(tmp_path / "m.sgm")
    assert n == len(ref) == len(merged) and n_tracks == np.unique(ref.tracks).shape[0] == merged.layout.ids.shape[0]
    assert same(merged.decode(), ref)  # ties too: in the parts' order
    ends = np.append(merged.wstarts[1:-1], n)  # windows written chunk by chunk: still one high part each
    high = ref.hashes.astype(np.int64) >> merged.layout.hash_bits
    assert np.all(high[merged.wstarts[:-1]] == high[ends - 1]) and np.all(ends - merged.wstarts[:-1] <= 31)
    assert np.array_equal(merged.wkeys, ref.hashes[merged.wstarts[:-1]])
    keys = np.unique(np.concatenate([ref.hashes[::11], rng.integers(0, 2**32, 100, dtype=np.uint32)]))
    lo, hi = merged.bounds(keys)
    assert np.array_equal(lo, np.searchsorted(ref.hashes, keys))
    assert np.array_equal(hi, np.searchsorted(ref.hashes, keys, "right"))
    assert not list(tmp_path.glob(".*"))  # no temporary file left (the window starts' side file neither)


@pytest.mark.parametrize("hash_bits, top", [(0, 1 << 20), (5, 1 << 32), (12, 1 << 32), (31, 1 << 32)])
def test_windows_cut_a_step_at_a_time_are_the_windows_cut_whole(rng, hash_bits, top):
    """Cut ``step`` postings at a time (each step extended to the end of its run of equal high bits),
    the windows are those of the whole array: runs longer than a step, the last run reaching 2**32."""
    h = np.sort(np.concatenate([rng.integers(0, top, 20_000), np.full(700, top - 1), np.full(300, 77)]))
    h = h.astype(np.uint32)
    layout = plan_layout(*track_time_bits(np.zeros(1, np.uint32), np.zeros(1, np.uint32)))
    layout = dataclasses.replace(layout, hash_bits=hash_bits)
    whole = seg_mod._windows(h, layout, 1000)
    for step in (1, 50, 999, 4096, 19_999, 10**6):
        keys, starts = seg_mod._windows(h, layout, 1000, step)
        assert np.array_equal(keys, whole[0]) and np.array_equal(starts, whole[1]), step


def test_a_merge_holds_one_chunk_at_a_time(tmp_path, rng, monkeypatch):
    """A merge's memory is its chunk's: joined, sorted and written before the next is read, and
    encoded and cut into windows a step at a time. Traced over merges of 150,000 and 600,000
    postings in chunks of 30,000: under 75 bytes a chunk's posting (it was 90-115: the parts'
    pieces and the previous chunk held beside the next, and the temporaries of encoding and
    cutting a whole chunk at once), whatever the merge's size."""
    import tracemalloc

    chunk = 30_000
    monkeypatch.setattr(seg_mod, "MERGE_CHUNK", chunk)
    monkeypatch.setattr(seg_mod, "_WRITE_STEP", 4096, raising=False)
    monkeypatch.setattr(seg_mod, "_SUM_CHUNK", 16 * seg_mod.BLOCK_SIZE)  # the blocks read back to be summed
    peaks = {}
    for n in (150_000, 600_000):
        parts = [random_postings(rng, n // 3, skew=False, n_tracks=2000) for _ in range(3)]
        segs = []
        for i, p in enumerate(parts):
            write_segment(tmp_path / f"{n}-{i}.sgm", p)
            segs.append(open_segment(tmp_path / f"{n}-{i}.sgm"))
        tracemalloc.start()
        merge_segments(tmp_path / f"{n}.sgm", segs)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert same(open_segment(tmp_path / f"{n}.sgm").decode(), Postings.concat(parts))
    assert max(peaks.values()) < 75 * chunk and peaks[600_000] < peaks[150_000] + 200_000, peaks


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


def test_a_segment_of_a_newer_format_is_refused_with_what_to_do(tmp_path, rng):
    """A segment written by a newer songmine is named as such (not as a foreign file), with the two ways out."""
    write_segment(tmp_path / "s.sgm", random_postings(rng, 100))
    data = (tmp_path / "s.sgm").read_bytes()
    (tmp_path / "n.sgm").write_bytes(b"SMSEGv06" + data[8:])
    with pytest.raises(IndexFormatError) as info:
        open_segment(tmp_path / "n.sgm")
    msg = str(info.value)
    assert "segment format version 6" in msg and "reads versions 1-5" in msg
    assert "upgrade songmine" in msg and "songmine index <music folders>" in msg
    assert not isinstance(info.value, IndexCorruptError)  # not damage: nothing to repair


def test_hit_budget_keeps_the_rarest_hashes_whole(rng):
    from songmine.fingerprint.postings import rarest_within

    # hash v has v postings (v = 1..40), in random order
    h = np.repeat(np.arange(1, 41, dtype=np.uint32), np.arange(1, 41))
    p = Postings.from_unsorted(
        h, rng.integers(0, 5, h.size, dtype=np.uint32), rng.integers(0, 99, h.size, dtype=np.uint32)
    )
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
