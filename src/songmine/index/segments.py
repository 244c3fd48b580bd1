"""Immutable posting segments: write atomically, memory-map, look up, merge with bounded memory.

A segment is one file (layout in :mod:`songmine.index.schema`) holding a
:class:`~songmine.postings.Postings` table sorted by hash, plus a small hash
directory (``dir[b]`` = first posting whose ``hash >> shift`` is ``b``) so a
lookup jumps straight to a bucket of ~16 postings instead of binary-searching
the whole array (which costs ~27 cache misses per query hash at 100 M
postings).

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

from ..errors import IndexFormatError
from ..postings import Postings
from .schema import (
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    SEGMENT_HEADER_V1,
    SEGMENT_MAGIC,
    SEGMENT_MAGIC_V1,
)

__all__ = ["Segment", "write_segment", "open_segment", "merge_segments", "fsync_dir", "directory_bits"]

#: Postings handled at a time while merging (x ~40 bytes while sorting: ~80 MB).
MERGE_CHUNK = 2_000_000
#: Average postings per directory bucket.
BUCKET_TARGET = 16
#: Buckets up to this long are searched with one dense compare per key.
WINDOW = 32
#: Segments smaller than this are searched with plain ``np.searchsorted`` (cache-resident, faster there).
DIRECTORY_MIN = 1 << 22


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def directory_bits(n: int, max_hash: int) -> tuple[int, int]:
    """``(bits, shift)`` of the hash directory of a segment of ``n`` postings.

    ``2**bits`` buckets of about :data:`BUCKET_TARGET` postings each, keyed by
    ``hash >> shift`` — ``shift`` taken from the largest hash, so hashes that
    use only the low bits (landmarks use 25) still spread over every bucket.
    """
    bits = int(np.clip(np.ceil(np.log2(max(n, 1) / BUCKET_TARGET)), 4, 24))
    shift = max(0, int(max_hash).bit_length() - bits)
    return bits, shift


@dataclass(frozen=True, slots=True)
class Segment:
    """A memory-mapped segment: its postings and hash directory (None for v1 files)."""

    path: Path
    postings: Postings
    directory: np.ndarray | None
    shift: int
    data_offset: int  # byte offset of hashes[0]

    def __len__(self) -> int:
        return len(self.postings)

    def bounds(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``searchsorted(hashes, keys, 'left')`` and ``'right'`` for sorted unique uint32 ``keys``."""
        h = self.postings.hashes
        if self.directory is None or len(h) < DIRECTORY_MIN or len(h) == 0:
            return np.searchsorted(h, keys, side="left"), np.searchsorted(h, keys, side="right")
        d = self.directory
        n_b = d.shape[0] - 1
        b = (keys >> np.uint32(self.shift)).astype(np.int64)
        inside = b < n_b
        bb = np.where(inside, b, 0)
        lo = np.where(inside, d[bb], len(h)).astype(np.int64)
        hi = np.where(inside, d[bb + 1], len(h)).astype(np.int64)
        left, right = lo.copy(), lo.copy()
        # most buckets are short: one dense compare of a fixed-width window per key
        small = np.nonzero(hi - lo <= WINDOW)[0]
        if small.shape[0]:
            idx = lo[small, None] + np.arange(WINDOW)
            valid = idx < hi[small, None]
            vals = h[np.minimum(idx, len(h) - 1)]
            k = keys[small, None]
            left[small] += ((vals < k) & valid).sum(axis=1)
            right[small] += ((vals <= k) & valid).sum(axis=1)
        big = np.nonzero(hi - lo > WINDOW)[0]  # common hashes' buckets: vectorised binary search
        if big.shape[0]:
            kb = keys[big]
            left[big] = _bounded_search(h, kb, lo[big], hi[big], right=False)
            right[big] = _bounded_search(h, kb, left[big], hi[big], right=True)
        return left, right


def _bounded_search(h: np.ndarray, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, right: bool) -> np.ndarray:
    """Vectorised binary search of each key inside its own ``[lo, hi)`` window of ``h``."""
    lo = lo.copy()
    hi = hi.copy()
    act = np.nonzero(lo < hi)[0]
    while act.shape[0]:
        mid = (lo[act] + hi[act]) >> 1
        v = h[mid]
        go = (v <= keys[act]) if right else (v < keys[act])
        lo[act[go]] = mid[go] + 1
        hi[act[~go]] = mid[~go]
        act = act[lo[act] < hi[act]]
    return lo


def _tmp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.tmp")


def _publish(tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def _layout(n: int, bits: int) -> tuple[int, int]:
    """(byte offset of the directory, byte offset of hashes[0])."""
    return SEGMENT_HEADER_SIZE, SEGMENT_HEADER_SIZE + 4 * ((1 << bits) + 1)


def write_segment(dest: Path, postings: Postings) -> int:
    """Write ``postings`` (already sorted by hash) to ``dest`` atomically.

    Returns the number of bytes written.
    """
    n = len(postings)
    if n >= 1 << 32:
        raise ValueError(f"a segment holds at most 2**32 - 1 postings, got {n}")
    h = np.ascontiguousarray(postings.hashes, dtype="<u4")
    bits, shift = directory_bits(n, int(h[-1]) if n else 0)
    counts = np.bincount(h >> np.uint32(shift), minlength=1 << bits) if n else np.zeros(1 << bits, np.int64)
    directory = np.zeros((1 << bits) + 1, dtype="<u4")
    np.cumsum(counts, out=directory[1:])
    n_tracks = int(np.unique(postings.tracks).shape[0]) if n else 0
    tmp = _tmp_name(dest)
    with open(tmp, "wb") as fh:
        fh.write(SEGMENT_HEADER.pack(SEGMENT_MAGIC, n, n_tracks, bits, shift))
        fh.write(directory.tobytes())
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
    if magic == SEGMENT_MAGIC:
        _, n, _, bits, shift = SEGMENT_HEADER.unpack(head)
        dir_off, data_off = _layout(n, bits)
    elif magic == SEGMENT_MAGIC_V1:  # no directory: plain binary search
        _, n, _ = SEGMENT_HEADER_V1.unpack(head)
        bits = shift = 0
        dir_off = data_off = SEGMENT_HEADER_SIZE
    else:
        raise IndexFormatError(f"{path}: not a songmine segment (magic {magic!r}, expected {SEGMENT_MAGIC!r})")
    expected = data_off + 12 * n
    if size != expected:
        raise IndexFormatError(f"{path}: segment is {size} bytes, header says {expected}")
    directory = None
    if magic == SEGMENT_MAGIC:
        directory = np.asarray(np.memmap(path, dtype="<u4", mode="r", offset=dir_off, shape=((1 << bits) + 1,)))
    if n == 0:
        return Segment(path, Postings.empty(), directory, shift, data_off)
    m = np.asarray(np.memmap(path, dtype="<u4", mode="r", offset=data_off, shape=(3, n)))
    return Segment(path, Postings(m[0], m[1], m[2]), directory, shift, data_off)


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
    max_hash = max((int(p.postings.hashes[-1]) for p in parts), default=0)
    bits, shift = directory_bits(n_live, max_hash)
    dir_off, data_off = _layout(n_live, bits)
    directory = np.zeros((1 << bits) + 1, dtype="<u4")  # bucket counts at [1:], cumulated at the end
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
            b = h >> np.uint32(shift)  # sorted: count only this chunk's bucket range
            b0 = int(b[0]) if k else 0
            if k:
                directory[1 + b0 : 2 + int(b[-1])] += np.bincount(b - np.uint32(b0)).astype(np.uint32)
            all_tracks = np.union1d(all_tracks, tr)
            pos += k
        assert pos == n_live, (pos, n_live)
        np.cumsum(directory, out=directory)
        _pwrite(fd, directory, dir_off)
        os.pwrite(fd, SEGMENT_HEADER.pack(SEGMENT_MAGIC, n_live, all_tracks.shape[0], bits, shift), 0)
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
