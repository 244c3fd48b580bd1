"""Immutable posting segments: write atomically, memory-map, look up, merge with bounded memory.

A segment is one file (layout in :mod:`songmine.index.schema`) holding a
:class:`~songmine.postings.Postings` table sorted by hash, plus fences — every
32nd hash — so a lookup binary-searches a 32× smaller, cache-friendlier array
and then finishes with a branch-free binary search of a 32-posting window per
key, in every segment at once (:func:`lower_bounds`).
Fences follow the hash distribution, so common hashes cost no more than rare
ones (a bucket directory over hash values does not: query hashes crowd into
the same few huge buckets that the postings do).

It is written to a temporary name, fsynced, renamed into place and the
directory fsynced; only then does the writer register it in SQLite, so a
crash at any point leaves either no trace or an unregistered file that the
next writer deletes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import IndexFormatError
from ..postings import Postings
from .schema import (
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    SEGMENT_HEADER_V1,
    SEGMENT_HEADER_V2,
    SEGMENT_MAGIC,
    SEGMENT_MAGIC_V1,
    SEGMENT_MAGIC_V2,
)

__all__ = ["Segment", "write_segment", "open_segment", "merge_segments", "fsync_dir", "lower_bounds", "run_bounds"]

#: Postings handled at a time while merging (x ~40 bytes while sorting: ~80 MB).
MERGE_CHUNK = 2_000_000
#: One fence every this many postings.
FENCE_STEP = 32
#: Segments smaller than this are searched with plain ``np.searchsorted`` (cache-resident, faster there).
FENCES_MIN = 1 << 22
#: Fewer keys than this are searched with plain ``np.searchsorted``: the fenced search's ~7 vectorised
#: calls per segment cost more than they save (measured break-even: 64-256 keys, 12 M and 128 M postings).
FENCED_MIN_KEYS = 128


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Segment:
    """A memory-mapped segment: its postings and fences (None for version 1 and 2 files)."""

    path: Path
    postings: Postings
    fences: np.ndarray | None
    step: int
    data_offset: int  # byte offset of hashes[0]

    def __len__(self) -> int:
        return len(self.postings)

    def bounds(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``searchsorted(hashes, keys, 'left')`` and ``'right'`` for sorted uint32 ``keys``."""
        lo, hi = run_bounds([self], keys)
        return lo[0], hi[0]


def lower_bounds(segments: Sequence[Segment], keys: np.ndarray) -> np.ndarray:
    """``searchsorted(s.postings.hashes, keys, 'left')`` for every segment at once.

    Segments of :data:`FENCES_MIN` postings or more (with fences, and at
    least :data:`FENCED_MIN_KEYS` keys) are searched in two steps: a binary
    search of the fences (32× smaller, so mostly in cache) puts each key in a
    window of ``step`` postings, then one branch-free binary search runs in
    every window of every such segment together: ``log2(step)`` rounds, each
    one gather per segment and a few array operations over all segments and
    keys. ``np.searchsorted`` over the full hashes, per segment, does
    ``log2(n)`` dependent, mostly mispredicted reads per key; this is 1.4-1.9x
    faster on 11 segments of 12.7 M postings and ~1.3x on one of 128 M
    (1,000-1,300 real query keys; ``docs/index.md``, "Lookup"). What is
    left is about two cache misses per key and big segment.

    Parameters
    ----------
    segments : sequence of Segment
    keys : np.ndarray [shape=(m,), dtype=uint32]
        Sorted ascending.

    Returns
    -------
    np.ndarray [shape=(len(segments), m), dtype=int64]
    """
    keys = np.asarray(keys, dtype=np.uint32)
    m = keys.shape[0]
    out = np.empty((len(segments), m), dtype=np.int64)
    width = 1 << (max((seg.step for seg in segments), default=1) - 1).bit_length()  # a power of two >= step
    fenced = []
    for s, seg in enumerate(segments):  # loop over segments
        n = len(seg)
        if seg.fences is not None and n >= max(FENCES_MIN, width) and m >= FENCED_MIN_KEYS:
            i = np.searchsorted(seg.fences, keys, side="left")  # fences[i-1] < key <= fences[i]
            # the bound lies in [(i-1) step + 1, i step] (0 when i = 0), so inside [start, start + width):
            # any start <= (i-1) step + 1 with start + width > the bound will do; this one keeps every read
            # inside the segment (hashes past the window are >= key, so a window may overhang it)
            np.clip(i * seg.step - (seg.step - 1), 0, n + 1 - width, out=out[s])
            fenced.append(s)
        else:
            out[s] = np.searchsorted(seg.postings.hashes, keys, side="left")
    if fenced:
        rows = np.asarray(fenced)
        lo = out[rows]
        got = np.empty(lo.shape, dtype=np.uint32)
        half = width >> 1
        while half:  # log2(width) rounds, branch-free: the bound is in [lo, lo + 2 half)
            probe = lo + (half - 1)
            for r, s in enumerate(fenced):  # loop over segments: one gather each
                got[r] = segments[s].postings.hashes[probe[r]]
            lo += half * (got < keys)
            half >>= 1
        out[rows] = lo
    return out


def run_bounds(segments: Sequence[Segment], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key's run of postings starts and ends in every segment.

    ``searchsorted(hashes, keys, 'left')`` and ``'right'`` per segment, for
    sorted unique uint32 ``keys``, from one :func:`lower_bounds` call: a
    key's run ends where the next hash value's begins, so the keys and their
    successors are searched together (landmark queries hold runs of
    consecutive values — the dt jitter — so that is ~1.3 searches per key,
    not 2).

    Returns
    -------
    lo, hi : np.ndarray [shape=(len(segments), m), dtype=int64]
    """
    keys = np.asarray(keys, dtype=np.uint32)
    m = keys.shape[0]
    if m == 0:
        z = np.zeros((len(segments), 0), dtype=np.int64)
        return z, z
    if m < FENCED_MIN_KEYS or all(seg.fences is None or len(seg) < FENCES_MIN for seg in segments):
        # no segment takes the fenced search (small segments fit in cache): two plain searches per
        # segment cost less than merging the keys with their successors (0.29x on 318 k postings)
        lo = np.empty((len(segments), m), dtype=np.int64)
        hi = np.empty((len(segments), m), dtype=np.int64)
        for s, seg in enumerate(segments):  # loop over segments
            lo[s] = np.searchsorted(seg.postings.hashes, keys, side="left")
            hi[s] = np.searchsorted(seg.postings.hashes, keys, side="right")
        return lo, hi
    top = bool(keys[-1] == np.iinfo(np.uint32).max)  # its successor does not exist: its run ends at n
    nxt = keys[:-1] + np.uint32(1) if top else keys + np.uint32(1)
    both = np.union1d(keys, nxt)
    found = lower_bounds(segments, both)
    lo = found[:, np.searchsorted(both, keys)]
    hi = np.empty_like(lo)
    hi[:, : nxt.shape[0]] = found[:, np.searchsorted(both, nxt)]
    if top:
        hi[:, -1] = [len(s) for s in segments]
    return lo, hi


def _tmp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.tmp")


def _publish(tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def _data_offset(n: int, step: int) -> int:
    """Byte offset of hashes[0] (after the header and the fences)."""
    return SEGMENT_HEADER_SIZE + 4 * (-(-n // step))


def write_segment(dest: Path, postings: Postings) -> int:
    """Write ``postings`` (already sorted by hash) to ``dest`` atomically.

    Returns the number of bytes written.
    """
    n = len(postings)
    if n >= 1 << 32:
        raise ValueError(f"a segment holds at most 2**32 - 1 postings, got {n}")
    h = np.ascontiguousarray(postings.hashes, dtype="<u4")
    n_tracks = int(np.unique(postings.tracks).shape[0]) if n else 0
    tmp = _tmp_name(dest)
    with open(tmp, "wb") as fh:
        fh.write(SEGMENT_HEADER.pack(SEGMENT_MAGIC, n, n_tracks, FENCE_STEP))
        fh.write(h[::FENCE_STEP].tobytes())
        for a in (h, postings.tracks, postings.times):
            fh.write(np.ascontiguousarray(a, dtype="<u4").tobytes())
        fh.flush()
        os.fsync(fh.fileno())
        size = fh.tell()
    _publish(tmp, dest)
    return size


def open_segment(path: Path) -> Segment:
    """Memory-map a segment read-only (no posting is read yet).

    Raises
    ------
    IndexFormatError
        Missing file, bad magic, or a size that does not match the header.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(SEGMENT_HEADER_SIZE)
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path}: segment file is missing") from exc
    if len(head) != SEGMENT_HEADER_SIZE:
        raise IndexFormatError(f"{path}: segment header truncated ({len(head)} bytes)")
    magic = head[:8]
    step = 0
    if magic == SEGMENT_MAGIC:
        _, n, _, step = SEGMENT_HEADER.unpack(head)
        if step < 1:
            raise IndexFormatError(f"{path}: fence step {step} must be >= 1")
        data_off = _data_offset(n, step)
    elif magic == SEGMENT_MAGIC_V2:  # its bucket directory is ignored: plain binary search
        _, n, _, bits, _ = SEGMENT_HEADER_V2.unpack(head)
        data_off = SEGMENT_HEADER_SIZE + 4 * ((1 << bits) + 1)
    elif magic == SEGMENT_MAGIC_V1:
        _, n, _ = SEGMENT_HEADER_V1.unpack(head)
        data_off = SEGMENT_HEADER_SIZE
    else:
        raise IndexFormatError(f"{path}: not a songmine segment (magic {magic!r}, expected {SEGMENT_MAGIC!r})")
    expected = data_off + 12 * n
    if size != expected:
        raise IndexFormatError(f"{path}: segment is {size} bytes, header says {expected}")
    fences = None
    if step and n:
        fences = np.asarray(
            np.memmap(path, dtype="<u4", mode="r", offset=SEGMENT_HEADER_SIZE, shape=(-(-n // step),))
        )
    if n == 0:
        return Segment(path, Postings.empty(), fences, step, data_off)
    m = np.asarray(np.memmap(path, dtype="<u4", mode="r", offset=data_off, shape=(3, n)))
    return Segment(path, Postings(m[0], m[1], m[2]), fences, step, data_off)


def _read(seg: Segment, row: int, lo: int, hi: int) -> np.ndarray:
    """Rows of a segment read with plain file reads (page cache, not this process's memory map)."""
    n = len(seg)
    return np.fromfile(seg.path, dtype="<u4", count=hi - lo, offset=seg.data_offset + 4 * (row * n + lo))


def _pwrite(fd: int, a: np.ndarray, offset: int) -> None:
    buf = memoryview(np.ascontiguousarray(a, dtype="<u4")).cast("B")
    while buf.nbytes:
        k = os.pwrite(fd, buf, offset)
        buf, offset = buf[k:], offset + k


def merge_segments(dest: Path, parts: Sequence[Segment], *, dead: np.ndarray | None = None) -> tuple[int, int]:
    """Merge sorted segments into one at ``dest``, dropping postings of ``dead`` tracks.

    Works hash range by hash range with plain reads and writes (at most
    :data:`MERGE_CHUNK` postings in memory, no growing memory maps), so merging
    a 1,000-hour index needs well under 100 MB.

    Parameters
    ----------
    dest : Path
        Where the merged segment goes (written atomically).
    parts : sequence of Segment
        Sorted inputs.
    dead : np.ndarray [dtype=bool] or None
        ``dead[track_id]`` is True for tracks whose postings are dropped; track
        ids beyond its length are live.

    Returns
    -------
    n, n_tracks : int
        Postings written, distinct tracks among them.
    """
    parts = [p for p in parts if len(p)]
    dead = dead if dead is not None and dead.shape[0] and dead.any() else None

    def live(tracks: np.ndarray) -> np.ndarray:
        keep = np.ones(tracks.shape, dtype=bool)
        inside = tracks < dead.shape[0]
        keep[inside] = ~dead[tracks[inside]]
        return keep

    # chunk boundaries (hash values) and the slice of each part inside each chunk
    bounds = _hash_bounds(parts, sum(len(p) for p in parts))
    ranges = []
    for lo_h, hi_h in zip(bounds[:-1], bounds[1:]):
        rr = []
        for p in parts:
            h = p.postings.hashes
            lo = int(np.searchsorted(h, np.uint32(lo_h), side="left")) if lo_h > 0 else 0
            hi = int(np.searchsorted(h, np.uint32(hi_h), side="left")) if hi_h < (1 << 32) else len(p)
            rr.append((lo, hi))
        ranges.append(rr)
    # pass 1: postings that survive (reads only the track rows, when something is dropped)
    if dead is None:
        n_live = sum(len(p) for p in parts)
    else:
        n_live = 0
        for rr in ranges:
            for p, (lo, hi) in zip(parts, rr):
                for a in range(lo, hi, MERGE_CHUNK):
                    n_live += int(live(_read(p, 1, a, min(hi, a + MERGE_CHUNK))).sum())
    step = FENCE_STEP
    data_off = _data_offset(n_live, step)
    all_tracks = np.zeros(0, dtype=np.uint32)

    tmp = _tmp_name(dest)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, data_off + 12 * n_live)
        pos = 0
        for rr in ranges:
            pieces = [(p, lo, hi) for p, (lo, hi) in zip(parts, rr) if hi > lo]
            if not pieces:
                continue
            h = np.concatenate([_read(p, 0, lo, hi) for p, lo, hi in pieces])
            tr = np.concatenate([_read(p, 1, lo, hi) for p, lo, hi in pieces])
            t = np.concatenate([_read(p, 2, lo, hi) for p, lo, hi in pieces])
            if dead is not None:
                keep = live(tr)
                h, tr, t = h[keep], tr[keep], t[keep]
            order = np.argsort(h, kind="stable")
            h, tr, t = h[order], tr[order], t[order]
            k = h.shape[0]
            for row, a in enumerate((h, tr, t)):
                _pwrite(fd, a, data_off + 4 * (row * n_live + pos))
            first = (-pos) % step  # fences at global positions that are multiples of step
            if first < k:
                _pwrite(fd, h[first::step], SEGMENT_HEADER_SIZE + 4 * ((pos + first) // step))
            all_tracks = np.union1d(all_tracks, tr)
            pos += k
        assert pos == n_live, (pos, n_live)
        os.pwrite(fd, SEGMENT_HEADER.pack(SEGMENT_MAGIC, n_live, all_tracks.shape[0], step), 0)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        _publish(tmp, dest)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return n_live, int(all_tracks.shape[0])


def _hash_bounds(parts: Sequence[Segment], total: int) -> list[int]:
    """Hash values splitting the merged table into chunks of about MERGE_CHUNK postings.

    Ascending ints from 0 to 2**32 (the exclusive upper bound of the last
    chunk), at quantiles of the largest part (hash distributions are alike).
    """
    n_chunks = max(1, -(-total // MERGE_CHUNK))
    if n_chunks == 1 or not parts:
        return [0, 1 << 32]
    big = max(parts, key=len)
    qs = (np.arange(1, n_chunks) * len(big)) // n_chunks
    cuts = np.unique(np.asarray(big.postings.hashes[qs], dtype=np.int64)).tolist()
    return [0, *[c for c in cuts if c > 0], 1 << 32]
