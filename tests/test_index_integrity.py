"""Segment checksums: damage anywhere in a segment is refused, never answered from.

Small segments are checked whole when opened; big ones block by block as
lookups first touch them (forced here with ``CHECK_AT_OPEN = 0``), by merges,
and whole by ``check_all``. Both formats: version 5 (packed records and a
window directory) and version 4 (hashes, tracks and times).
"""

from __future__ import annotations

import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from songmine.errors import IndexCorruptError, IndexFormatError
from songmine.fingerprint.index import segments as seg_mod
from songmine.fingerprint.index.schema import BLOCK_SIZE, SEGMENT_HEADER, SEGMENT_HEADER_V3, SEGMENT_MAGIC_V3
from songmine.fingerprint.index.segments import _Summer, merge_segments, open_segment, write_segment
from songmine.fingerprint.postings import Postings

N = 60_000  # ~720 KB: 176 blocks


def postings(rng, n: int = N) -> Postings:
    h = np.where(rng.random(n) < 0.2, rng.integers(0, 30, n), rng.integers(0, 1 << 26, n))
    return Postings.from_unsorted(
        h.astype(np.uint32), rng.integers(0, 40, n, dtype=np.uint32), rng.integers(0, 9000, n, dtype=np.uint32)
    )


def layout(path, n: int) -> dict[str, int]:
    """Byte offsets of a segment's parts, as docs/index.md specifies them (version 4 or 5)."""
    head = path.read_bytes()[:64]
    if head[:8] == b"SMSEGv04":
        d = 64 + 4 * -(-n // 32)
        end = d + 12 * n
        parts = {"fences": 64, "hashes": d, "tracks": d + 4 * n, "times": d + 8 * n, "end": end}
    else:
        _, n, t, w, _, _, record, _, c, _, _ = SEGMENT_HEADER.unpack(head)
        classes = 64 + -(-5 * t // 8) * 8
        records = classes + 24 * c
        wkeys = records + record * n
        end = wkeys + 4 * w + 4 * (w + 1)
        parts = {
            "tracks": 64,
            "time bits": 64 + 4 * t,
            "slot classes": classes,
            "records": records,
            "window keys": wkeys,
            "window starts": wkeys + 4 * w,
            "end": end,
        }
    return {**parts, "table": end, "footer": end + 4 * -(-(end - 64) // BLOCK_SIZE)}


def following(lay: dict[str, int], part: str) -> str:
    """The part after ``part`` in the file."""
    names = list(lay)
    return names[names.index(part) + 1]


def damage(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def flip(path, offset: int, k: int = 8) -> None:
    with open(path, "rb") as fh:
        fh.seek(offset)
        old = fh.read(k)
    damage(path, offset, bytes(b ^ 0xFF for b in old))


@pytest.fixture(params=[4, 5])
def seg(tmp_path, rng, request):
    p = postings(rng)
    path = tmp_path / "s.sgm"
    write_segment(path, p, version=request.param)
    return path, p


def test_block_sums_do_not_depend_on_how_the_stream_is_cut(rng):
    data = rng.integers(0, 256, 3 * BLOCK_SIZE + 123, dtype=np.uint8).tobytes()
    ref = [zlib.crc32(data[i : i + BLOCK_SIZE]) for i in range(0, len(data), BLOCK_SIZE)]
    for cuts in ([], [1], [BLOCK_SIZE], [5, 4091, 4096, 7000, 12000], list(range(0, len(data), 777))):
        s = _Summer()
        for a, b in zip([0, *cuts], [*cuts, len(data)]):
            s.feed(data[a:b])
        assert s.table().tolist() == ref


def test_block_sums_take_four_bytes_a_block_and_a_merge_writes_them_as_it_sums(rng, tmp_path):
    """A merge sums every 4-KB block of the segment it wrote (2 million of them at 10,000 hours):
    the sums are kept 4 bytes each, not as Python ints (~40 bytes), and the merge writes each chunk's
    sums into the table as it goes, so its memory does not grow with the segment."""
    piece = rng.integers(0, 256, 4 << 20, dtype=np.uint8).tobytes()  # 1,024 blocks
    tracemalloc.start()
    s = _Summer()
    for _ in range(16):  # a 64-MB stream: 16,384 blocks
        s.feed(piece)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert s.table().shape[0] == 16 * 1024
    assert kept < 100_000 and peak < 200_000, (kept, peak)  # 64 KB of sums (as ints: ~650 KB)

    peaks = {}
    for mb in (4, 64):
        path = tmp_path / f"{mb}.body"
        end = seg_mod.SEGMENT_HEADER_SIZE + (mb << 20) + 123  # a partial last block
        with open(path, "wb") as fh:
            fh.write(bytes(seg_mod.SEGMENT_HEADER_SIZE))
            for _ in range(mb // 4):
                fh.write(piece)
            fh.write(piece[:123])
        fd = os.open(path, os.O_RDWR)
        try:
            tracemalloc.start()
            n, checksum = seg_mod._write_block_table(fd, end)
            peaks[mb] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        finally:
            os.close(fd)
        data = path.read_bytes()
        table = np.frombuffer(data[end:], dtype="<u4")
        assert n == table.shape[0] == -(-(end - seg_mod.SEGMENT_HEADER_SIZE) // BLOCK_SIZE)
        want = [
            zlib.crc32(data[a : min(a + BLOCK_SIZE, end)]) for a in range(seg_mod.SEGMENT_HEADER_SIZE, end, BLOCK_SIZE)
        ]
        assert table.tolist() == want and checksum == zlib.crc32(table.tobytes())
    assert peaks[64] < peaks[4] + 50_000, peaks  # one chunk at a time, whatever the size


def test_an_intact_segment_opens_checked(seg):
    path, p = seg
    s = open_segment(path)
    assert s.checked and s.sums.complete and np.array_equal(s.decode().hashes, p.hashes)


@pytest.mark.parametrize(
    "version, part, where",
    [
        (4, "fences", 0.5),
        (4, "hashes", 0.0),
        (4, "hashes", 0.5),
        (4, "tracks", 0.3),
        (4, "times", 0.99),
        (4, "table", 0.0),
        (5, "tracks", 0.5),
        (5, "time bits", 0.0),
        (5, "slot classes", 0.0),
        (5, "records", 0.0),
        (5, "records", 0.5),
        (5, "records", 0.99),
        (5, "window keys", 0.5),
        (5, "window starts", 0.3),
        (5, "table", 0.0),
    ],
)
def test_damage_anywhere_is_refused_at_open(tmp_path, rng, version, part, where):
    path, p = tmp_path / "s.sgm", postings(rng)
    write_segment(path, p, version=version)
    lay = layout(path, len(p))
    nxt = following(lay, part)
    flip(path, lay[part] + int(where * (lay[nxt] - lay[part] - 8)) // 4 * 4, min(8, lay[nxt] - lay[part]))
    with pytest.raises(IndexCorruptError, match="segment is damaged") as exc:
        open_segment(path)
    assert exc.value.part == str(path) and exc.value.reason == "index-damaged"
    if part != "table":
        assert part in str(exc.value).split("the ")[-1] and "fails its checksum" in str(exc.value)


@pytest.mark.parametrize("offset, what", [(12, "header"), (30, "header"), (-4, "footer"), (-10, "footer")])
def test_damaged_header_or_footer_is_refused(seg, offset, what):
    path, _ = seg
    flip(path, offset if offset >= 0 else path.stat().st_size + offset, 2)
    with pytest.raises(IndexCorruptError, match=what):
        open_segment(path)


def test_zeros_random_bytes_and_truncation_are_refused(seg, rng):
    path, p = seg
    lay = layout(path, len(p))
    good = path.read_bytes()
    first = lay.get("hashes", lay.get("records"))
    for offset, data in [
        (first + 4 * (N // 3), bytes(4096)),
        (first + 4 * (N // 2), bytes(4096)),
        (len(good) // 2, rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
    ]:
        path.write_bytes(good)
        damage(path, offset, data)
        with pytest.raises(IndexCorruptError, match="fails its checksum"):
            open_segment(path)
    path.write_bytes(good[:-1])
    with pytest.raises(IndexCorruptError, match="header says"):
        open_segment(path)
    path.write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(IndexFormatError, match="not a songmine segment"):
        open_segment(path)


@pytest.fixture
def lazy(monkeypatch):
    """Check blocks on first touch, as for a big segment."""
    monkeypatch.setattr(seg_mod, "CHECK_AT_OPEN", 0)


def lookup(s, keys):
    """What Index.lookup does with one segment: bounds, their check, the runs' check, the hits."""
    keys = np.unique(np.asarray(keys, dtype=np.uint32))
    lo, hi = seg_mod.run_bounds([s], keys)
    s.check_bounds(keys, lo[0], hi[0])
    s.check_runs(lo[0], hi[0])
    idx = np.concatenate([np.arange(a, b) for a, b in zip(lo[0], hi[0])]) if keys.size else np.zeros(0, int)
    return s.gather(idx)


@pytest.mark.parametrize("fenced", [False, True])
def test_lazy_checks_answer_only_from_checked_blocks(seg, lazy, monkeypatch, rng, fenced):
    if fenced:
        monkeypatch.setattr(seg_mod, "FENCES_MIN", 0)
        monkeypatch.setattr(seg_mod, "FENCED_MIN_KEYS", 0)
    path, p = seg
    lay = layout(path, len(p))
    part = "hashes" if "hashes" in lay else "records"  # where a search reads the hashes
    # a block near 80 % of them: searches for keys below the median never probe it
    bad = (lay[part] + (lay[following(lay, part)] - lay[part]) * 4 // 5 - 64) // BLOCK_SIZE
    start = 64 + bad * BLOCK_SIZE
    assert lay[part] < start and start + BLOCK_SIZE < lay[following(lay, part)]
    first = (start - lay[part]) // 4
    inside = np.unique(p.hashes[first + 10 : first + 1000])  # keys whose runs lie in the damaged block
    inside = inside[(inside > p.hashes[first]) & (inside < p.hashes[first + BLOCK_SIZE // 4 - 1])]
    far = np.unique(p.hashes[: 2 * N // 5 : 7])  # keys far from it
    damage(path, start + 40, bytes(64))  # 16 hashes (or records) set to 0: no longer sorted there
    s = open_segment(path)  # opens: only the header, table and fences (tables, directory) are checked
    assert not s.checked
    if part == "records" and not fenced:  # a small packed segment decodes its hashes, every block checked, first
        with pytest.raises(IndexCorruptError, match=f"block {bad} of .*the records"):
            lookup(s, far)
        return
    tr, t = lookup(s, far)  # answers from intact blocks are the true ones
    ref_idx = np.concatenate(
        [np.arange(a, b) for a, b in zip(np.searchsorted(p.hashes, far), np.searchsorted(p.hashes, far, "right"))]
    )
    assert np.array_equal(tr, p.tracks[ref_idx]) and np.array_equal(t, p.times[ref_idx])
    with pytest.raises(IndexCorruptError, match=f"block {bad} of .*the {part}"):
        lookup(s, inside[:50])
    with pytest.raises(IndexCorruptError, match=f"block {bad} "):
        s.check_all()


def test_lazy_checks_catch_damaged_tracks_and_times(seg, lazy, rng):
    path, p = seg
    lay = layout(path, len(p))
    for part in ("tracks", "times") if "times" in lay else ("records",):
        good = path.read_bytes()
        at = lay[part] + 4 * (N // 2)
        damage(path, at, bytes(4096))
        s = open_segment(path)
        key = p.hashes[N // 2 + 100]
        with pytest.raises(IndexCorruptError, match=f"the .*{part}"):
            lookup(s, [key])
        path.write_bytes(good)


def test_a_search_misled_by_damage_is_caught(seg, lazy):
    """Damage in a block that only the binary search reads (never the bounds' own blocks) still raises."""
    path, p = seg
    lay = layout(path, len(p))
    part = "hashes" if "hashes" in lay else "records"
    mid = (lay[following(lay, part)] - lay[part]) // 2 // BLOCK_SIZE * BLOCK_SIZE + lay[part]
    damage(path, mid, b"\xff" * BLOCK_SIZE)  # huge hashes in the middle: searches turn left too early
    s = open_segment(path)
    key = p.hashes[-50]  # a key from the end: the first probe lands in the damage (version 4)
    if part == "records":  # the window directory was checked at open: a search only reads its key's window
        key = s.hashes_at(np.array([(mid - lay[part]) // 4 + 100]))[0]
    with pytest.raises(IndexCorruptError, match=f"the {part}"):
        lookup(s, [key])


def test_merge_refuses_damaged_parts(tmp_path, seg, lazy, rng):
    path, p = seg
    write_segment(tmp_path / "other.sgm", postings(rng, 5000))
    lay = layout(path, len(p))
    part = "times" if "times" in lay else "records"
    flip(path, lay[part] + 4 * 1000)
    with pytest.raises(IndexCorruptError, match=part):
        merge_segments(tmp_path / "m.sgm", [open_segment(path), open_segment(tmp_path / "other.sgm")])
    assert not (tmp_path / "m.sgm").exists() and not list(tmp_path.glob(".*"))  # no temporary file, no side file


def _rss_file_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("RssFile:"))


def test_opening_a_big_segment_checks_its_directory_without_mapping_it(tmp_path, rng):
    """The window directory of a segment too big to check whole is checked at open by plain reads: the
    process maps none of it (its memory stays what lookups touch), and damage there is still refused."""
    n = 4_000_000  # random 32-bit hashes: ~1 M windows, an 8 MB directory; 24 MB in all (> CHECK_AT_OPEN)
    p = Postings.from_unsorted(
        rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
        rng.integers(0, 40, n, dtype=np.uint32),
        rng.integers(0, 9000, n, dtype=np.uint32),
    )
    path = tmp_path / "big.sgm"
    write_segment(path, p)
    lay = layout(path, n)
    assert lay["end"] - lay["window keys"] > 6_000_000 and lay["end"] - 64 > seg_mod.CHECK_AT_OPEN
    before = _rss_file_kb()
    s = open_segment(path)
    assert _rss_file_kb() - before < 1024  # kB: the 8 MB directory was read, not mapped
    assert not s.checked and s.sums.checked[s.sums.blocks_of([lay["window keys"], lay["end"] - 1])].all()
    del s
    flip(path, lay["window starts"] + 4 * 1000)
    with pytest.raises(IndexCorruptError, match="window starts"):
        open_segment(path)


def test_version_3_segments_are_read_unchecked_and_merged_into_version_5(tmp_path, rng):
    p = postings(rng, 3000)
    path = tmp_path / "v3.sgm"
    h = p.hashes.astype("<u4")
    with open(path, "wb") as fh:
        fh.write(SEGMENT_HEADER_V3.pack(SEGMENT_MAGIC_V3, len(p), 40, 32))
        fh.write(h[::32].tobytes())
        for a in (p.hashes, p.tracks, p.times):
            fh.write(a.astype("<u4").tobytes())
    s = open_segment(path)
    assert s.sums is None and s.checked and np.array_equal(s.fences, h[::32])
    lo, hi = s.bounds(np.unique(p.hashes[::5]))
    assert np.array_equal(lo, np.searchsorted(p.hashes, np.unique(p.hashes[::5])))
    n, _ = merge_segments(tmp_path / "m.sgm", [s])
    m = open_segment(tmp_path / "m.sgm")
    assert n == 3000 and m.version == 5 and m.checked and np.array_equal(m.decode().hashes, p.hashes)
    assert struct.unpack_from("<I", (tmp_path / "m.sgm").read_bytes(), 28)[0] == m.sums.checksum
