"""Immutable posting segments: write atomically, memory-map, look up, merge with bounded memory.

A segment is one file (layout in :mod:`songmine.fingerprint.index.schema`)
holding postings sorted by hash. Version 5 (written now) packs each posting
into one 4-byte record — its track's slot position plus its time, and the
hash's low bits (:mod:`songmine.fingerprint.index.packing`) — behind a window
directory: the first hash and the start of every window of at most 32
postings whose hashes share their high bits. A lookup binary-searches the
window keys, then finishes with a branch-free binary search inside one
window per key, in every segment at once (:func:`run_bounds`). Versions 1-4
(12 bytes a posting: hashes, tracks and times as three arrays, with fences —
every 32nd hash — from version 3) are still read (:class:`FlatSegment`);
merges rewrite them as version 5.

It is written to a temporary name, fsynced, renamed into place and the
directory fsynced; only then does the writer register it in SQLite, so a
crash at any point leaves either no trace or an unregistered file that the
next writer deletes.

Every 4 KB block of the body has a CRC-32 (:class:`BlockSums`, versions 4
and 5). Opening checks the header, the footer, the block table and what
steers every lookup (a version-5 segment's tables and window directory, a
version-4 segment's fences), and a segment of at most :data:`CHECK_AT_OPEN`
bytes whole; a bigger one is checked block by block as lookups first touch
it (``check_bounds``, ``check_runs``), merges check every block they read,
and ``check_all`` checks everything. A block that fails its checksum raises
:class:`~songmine.errors.IndexCorruptError`: no lookup answers from damaged
data.
"""

from __future__ import annotations

import mmap
import os
import threading
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import IndexCorruptError, IndexFormatError, IndexTooNewError
from ..postings import Postings
from .packing import Layout, cut_windows, layout_problem, plan_layout, track_time_bits, window_of
from .schema import (
    BLOCK_SIZE,
    SEGMENT_FOOTER,
    SEGMENT_FOOTER_MAGIC,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    SEGMENT_HEADER_V1,
    SEGMENT_HEADER_V2,
    SEGMENT_HEADER_V3,
    SEGMENT_HEADER_V4,
    SEGMENT_MAGIC,
    SEGMENT_MAGIC_V1,
    SEGMENT_MAGIC_V2,
    SEGMENT_MAGIC_V3,
    SEGMENT_MAGIC_V4,
    SEGMENT_VERSION,
    WINDOW_CAP,
)

__all__ = [
    "Segment",
    "FlatSegment",
    "PackedSegment",
    "BlockSums",
    "write_segment",
    "open_segment",
    "merge_segments",
    "segment_checksum",
    "fsync_dir",
    "lower_bounds",
    "run_bounds",
]

#: Postings handled at a time while merging (~40 bytes each while joined and sorted: ~40 MB;
#: a build of 1,000 hours peaked 47 MB higher with twice as many, and no lower with half).
MERGE_CHUNK = 1_000_000
#: One fence every this many postings.
FENCE_STEP = 32
#: Segments smaller than this are searched with plain ``np.searchsorted`` (cache-resident, faster there).
FENCES_MIN = 1 << 22
#: Fewer keys than this are searched with plain ``np.searchsorted``: the fenced search's ~7 vectorised
#: calls per segment cost more than they save (measured break-even: 64-256 keys, 12 M and 128 M postings).
FENCED_MIN_KEYS = 128
#: Segments whose body is at most this many bytes are checked whole when opened (~10 ms; ~1.4 M
#: postings, ~10 hours of audio); bigger ones block by block, as lookups first touch them.
CHECK_AT_OPEN = 16 << 20


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Blocks read at a time when checking by plain reads (4 MB).
_READ_BLOCKS = 1024


class BlockSums:
    """The CRC-32 of every block of a segment's body (bytes 64 to the end of ``times``), and which were checked.

    A block is checked at most once per process (then marked); the marks are
    shared by the threads that use the segment.
    """

    def __init__(
        self,
        path: Path,
        raw: np.ndarray,
        table: np.ndarray,
        block: int,
        end: int,
        checksum: int,
        regions: Sequence[tuple[str, int]],
        mapping: mmap.mmap,
    ):
        self.path = path
        self.raw = raw  # the whole file, memory-mapped (uint8)
        self.mapping = mapping  # that map
        self.table = table
        self.block = block
        self.end = end  # the body is raw[SEGMENT_HEADER_SIZE:end]
        self.checksum = checksum
        self.regions = regions  # (name, first byte) of fences, hashes, tracks, times
        self.checked = np.zeros(table.shape[0], dtype=bool)
        self.complete = table.shape[0] == 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.table.shape[0]

    def drop_pages(self) -> None:
        """Unmap the pages of the file this process touched (they stay in the page cache: a later
        access maps them again). A merge that reads a big part calls it as it goes, so that the
        part's pages faulted in by its directory look-ups do not pile up in the process's memory."""
        if hasattr(mmap, "MADV_DONTNEED"):  # not on Windows
            self.mapping.madvise(mmap.MADV_DONTNEED)

    def span(self, b: int) -> tuple[int, int]:
        """Bytes ``[start, stop)`` of block ``b``."""
        start = SEGMENT_HEADER_SIZE + b * self.block
        return start, min(start + self.block, self.end)

    def blocks_of(self, offsets: np.ndarray) -> np.ndarray:
        """The block of each byte offset (inside the body)."""
        return (np.asarray(offsets, dtype=np.int64) - SEGMENT_HEADER_SIZE) // self.block

    def check(self, blocks: np.ndarray) -> None:
        """Check the blocks not checked yet among ``blocks`` (ids, repeats allowed)."""
        if self.complete:
            return
        blocks = np.asarray(blocks, dtype=np.int64)
        todo = np.unique(blocks[~self.checked[blocks]])
        if todo.shape[0] == 0:
            return
        for b in todo.tolist():  # loop over blocks: one CRC each
            start, stop = self.span(b)
            if zlib.crc32(self.raw[start:stop]) != int(self.table[b]):
                raise self.damage(b)
        self._mark(todo)

    def check_range(self, start: int, stop: int) -> None:
        """Check every block holding a byte of ``[start, stop)``."""
        if stop > start and not self.complete:
            lo, hi = self.blocks_of([start, stop - 1]).tolist()
            self.check(np.arange(lo, hi + 1))

    def check_range_read(self, start: int, stop: int) -> None:
        """:meth:`check_range` through plain file reads (the page cache), not the memory map.

        What is checked at open (a big segment's window directory: ~10 % of
        it) is then not mapped into the process: its memory stays what its
        lookups touch, not a share of the index's size.
        """
        if stop <= start or self.complete:
            return
        lo, hi = self.blocks_of([start, stop - 1]).tolist()
        for b in range(lo, hi + 1, _READ_BLOCKS):  # loop over chunks of blocks
            e = min(b + _READ_BLOCKS, hi + 1) - 1
            if self.checked[b : e + 1].all():
                continue
            a = self.span(b)[0]
            self.check_buffer(b, np.fromfile(self.path, dtype=np.uint8, count=self.span(e)[1] - a, offset=a))

    def check_buffer(self, first: int, buf: np.ndarray) -> None:
        """Check blocks ``first, first + 1, …`` against ``buf``, their bytes as read from the file."""
        mv = memoryview(buf).cast("B")
        n = -(-len(mv) // self.block)
        for i in range(n):  # loop over blocks
            if zlib.crc32(mv[i * self.block : (i + 1) * self.block]) != int(self.table[first + i]):
                raise self.damage(first + i)
        self._mark(np.arange(first, first + n))

    def check_all(self) -> None:
        """Check every block not checked yet, by plain reads: a segment checked whole (at open when
        small, on a refresh that finds it changed, by ``verify``) is not thereby mapped into this
        process's memory, which stays what its lookups touch (a build that checks each segment it
        opens keeps a memory independent of the index's size)."""
        self.check_range_read(SEGMENT_HEADER_SIZE, self.end)

    def _mark(self, blocks: np.ndarray) -> None:
        with self._lock:
            self.checked[blocks] = True
            if not self.complete and self.checked.all():
                self.complete = True

    def parts(self, start: int, stop: int) -> list[str]:
        """The parts of the segment (e.g. fences, hashes, tracks, times) holding bytes ``[start, stop)``."""
        ends = [first for _, first in self.regions[1:]] + [self.end]
        return [r for (r, first), end in zip(self.regions, ends) if first < stop and end > start and end > first]

    def damage(self, b: int) -> IndexCorruptError:
        start, stop = self.span(b)
        where = self.parts(start, stop)
        return IndexCorruptError(
            f"{self.path}: segment is damaged: block {b} of {len(self)} (bytes {start}-{stop - 1}, "
            f"the {' and '.join(where)}) fails its checksum",
            part=str(self.path),
        )


@dataclass(frozen=True, slots=True)
class FlatSegment:
    """A memory-mapped segment of versions 1-4: its postings as three uint32 arrays, fences, checksums.

    ``fences`` is None for version 1 and 2 files, ``sums`` for files written
    before segments had checksums (versions 1-3, read unchecked).
    """

    path: Path
    postings: Postings
    fences: np.ndarray | None
    step: int
    data_offset: int  # byte offset of hashes[0]
    sums: BlockSums | None = None
    version: int = 4

    def __len__(self) -> int:
        return len(self.postings)

    @property
    def checked(self) -> bool:
        """True when every block was checked (or the file has no checksums): lookups skip the checks."""
        return self.sums is None or self.sums.complete

    def bounds(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``searchsorted(hashes, keys, 'left')`` and ``'right'`` for sorted uint32 ``keys``."""
        lo, hi = run_bounds([self], keys)
        self.check_bounds(keys, lo[0], hi[0])
        return lo[0], hi[0]

    def check_all(self) -> None:
        """Check every block (reads the whole file once)."""
        if self.sums is not None:
            self.sums.check_all()

    def check_bounds(self, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Make sure ``lo``, ``hi`` are ``searchsorted(hashes, keys)``'s answers, from checked blocks.

        A binary search reads hashes from blocks nobody checked: a damaged one
        can send it astray. Its answers are right exactly when
        ``hashes[lo - 1] < key <= hashes[lo]`` and ``hashes[hi - 1] <= key < hashes[hi]``
        (the hashes were sorted when written), so those four hashes per key are
        checked (their blocks) and compared; a mismatch means damage somewhere
        in the hashes, which are then checked whole to name the block.
        """
        if self.checked or len(self) == 0:
            return
        n = len(self)
        pos = _edges(lo, hi, n)
        self.sums.check(self.sums.blocks_of(self.data_offset + 4 * pos))
        if not _bounds_hold(self.postings.hashes, keys, lo, hi, n):
            self.sums.check_range(self.data_offset, self.data_offset + 4 * n)
            raise IndexCorruptError(
                f"{self.path}: segment is damaged: its hashes are out of order", part=str(self.path)
            )

    def check_runs(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Check the blocks of ``tracks[lo:hi]`` and ``times[lo:hi]`` for each run (what a lookup reads)."""
        if self.checked:
            return
        n = len(self)
        for row in (1, 2):
            _check_spans(self.sums, self.data_offset + 4 * (row * n + lo), self.data_offset + 4 * (row * n + hi))

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tracks and times of the postings at ``rows`` (memory-mapped; check them first)."""
        return self.postings.tracks[rows], self.postings.times[rows]

    def hashes_at(self, rows: np.ndarray) -> np.ndarray:
        """The hashes at ``rows``."""
        return np.asarray(self.postings.hashes[rows])

    def lower_bound(self, keys: np.ndarray) -> np.ndarray:
        """``searchsorted(hashes, keys, 'left')`` (unchecked: what a merge uses to cut hash ranges)."""
        return np.searchsorted(self.postings.hashes, np.asarray(keys, dtype=np.uint32), side="left")

    def read(self, lo: int, hi: int) -> Postings:
        """Postings ``[lo, hi)`` with plain file reads (not the memory map), every block read checked."""
        return Postings(*(_read(self, row, lo, hi) for row in range(3)))

    def decode(self) -> Postings:
        """All the postings (the memory map itself, once checked whole)."""
        self.check_all()
        return self.postings

    def track_counts(self) -> dict[int, int]:
        """Postings per track (reads the tracks, checked, in bounded memory)."""
        return _count_tracks(
            _read(self, 1, a, min(a + MERGE_CHUNK, len(self))) for a in range(0, len(self), MERGE_CHUNK)
        )

    def track_bits(self) -> tuple[np.ndarray, np.ndarray]:
        """The tracks inside (ascending) and each one's time bits (reads the tracks and times, checked)."""
        ids, bits = np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint8)
        for a in range(0, len(self), MERGE_CHUNK):  # bounded memory
            b = min(a + MERGE_CHUNK, len(self))
            i, t = track_time_bits(_read(self, 1, a, b), _read(self, 2, a, b))
            ids, bits = _max_bits(np.concatenate([ids, i]), np.concatenate([bits, t]))
        return ids, bits


@dataclass(frozen=True, slots=True, eq=False)
class PackedSegment:
    """A memory-mapped version-5 segment: packed records, the window directory, the tracks' layout, checksums."""

    path: Path
    n: int
    layout: Layout
    records: np.ndarray  # uint32 or uint64 [n]
    wkeys: np.ndarray  # uint32 [W]: each window's first hash
    wstarts: np.ndarray  # uint32 [W + 1]: each window's first posting, then n
    records_offset: int  # byte offset of records[0]
    cap: int  # most postings in a window (2**k - 1)
    sums: BlockSums
    version: int = 5
    memo: dict = field(default_factory=dict, repr=False)  # hashes of a small segment, once decoded

    def small_hashes(self) -> np.ndarray | None:
        """All the hashes of a segment under :data:`FENCES_MIN` postings (decoded once; every block checked).

        A small segment is searched like a version-4 one, with plain binary
        searches of its hashes (at most 16 MB of memory, for a segment of at
        most ~30 hours): its window search would cost more in numpy calls
        than the search itself. None for a bigger segment.
        """
        if self.n >= FENCES_MIN:
            return None
        h = self.memo.get("hashes")
        if h is None:
            h = self.memo["hashes"] = self.read(0, self.n).hashes
        return h

    def __len__(self) -> int:
        return self.n

    @property
    def checked(self) -> bool:
        """True when every block was checked: lookups skip the checks."""
        return self.sums.complete

    def bounds(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``searchsorted(hashes, keys, 'left')`` and ``'right'`` for sorted uint32 ``keys``."""
        lo, hi = run_bounds([self], keys)
        self.check_bounds(keys, lo[0], hi[0])
        return lo[0], hi[0]

    def check_all(self) -> None:
        """Check every block (reads the whole file once)."""
        self.sums.check_all()

    def _rec_bytes(self, rows: np.ndarray) -> np.ndarray:
        return self.records_offset + self.layout.record * np.asarray(rows, dtype=np.int64)

    def check_bounds(self, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Make sure ``lo``, ``hi`` came from checked blocks: those of the records the search read.

        The window directory (checked at open) gives each key its window; the
        search then read only records of that window, whose bound it returns:
        every window it read lies within ``cap`` records of ``lo`` or ``hi``.
        Those blocks are checked (a damaged one raises, naming it). With no
        hash bits in the records, the directory alone gave the bounds.
        """
        if self.checked or self.n == 0 or self.layout.hash_bits == 0:
            return
        c = self.cap
        edges = np.concatenate([lo, hi])
        _check_spans(
            self.sums, self._rec_bytes(np.maximum(edges - c, 0)), self._rec_bytes(np.minimum(edges + c, self.n))
        )

    def check_runs(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Check the blocks of ``records[lo:hi]`` for each run (what a lookup reads)."""
        if not self.checked:
            _check_spans(self.sums, self._rec_bytes(lo), self._rec_bytes(hi))

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tracks and times of the postings at ``rows`` (memory-mapped; check them first)."""
        return self.layout.decode(self.records[rows])

    def hashes_at(self, rows: np.ndarray) -> np.ndarray:
        """The hashes at ``rows``: their window's high bits and their records' low bits."""
        rows = np.asarray(rows, dtype=np.int64)
        return _join_hashes(
            self.wkeys[window_of(self.wstarts, rows)], self.layout.low_hashes(self.records[rows]), self.layout.hash_bits
        )

    def lower_bound(self, keys: np.ndarray) -> np.ndarray:
        """``searchsorted(hashes, keys, 'left')`` (unchecked: what a merge uses to cut hash ranges)."""
        return _packed_lower_bounds([self], np.asarray(keys, dtype=np.uint32))[0]

    def read(self, lo: int, hi: int) -> Postings:
        """Postings ``[lo, hi)`` with plain file reads (not the memory map), every block read checked."""
        if hi <= lo:
            return Postings.empty()
        start, stop = int(self._rec_bytes(lo)), int(self._rec_bytes(hi))
        s = self.sums
        first, last = s.blocks_of([start, stop - 1]).tolist()
        a = s.span(first)[0]
        buf = np.fromfile(self.path, dtype=np.uint8, count=s.span(last)[1] - a, offset=a)
        s.check_buffer(first, buf)
        rec = buf[start - a : stop - a].view(self.layout.dtype)
        tracks, times = self.layout.decode(rec)
        # the windows overlapping [lo, hi), each clipped to it
        w0, w1 = window_of(self.wstarts, np.array([lo, hi - 1])).tolist()
        edges = np.clip(self.wstarts[w0 : w1 + 2].astype(np.int64), lo, hi)
        keys = np.repeat(self.wkeys[w0 : w1 + 1], np.diff(edges))
        return Postings(_join_hashes(keys, self.layout.low_hashes(rec), self.layout.hash_bits), tracks, times)

    def decode(self) -> Postings:
        """All the postings (a copy; every block checked)."""
        return self.read(0, self.n)

    def track_counts(self) -> dict[int, int]:
        """Postings per track (reads the records, checked, in bounded memory)."""
        return _count_tracks(self.read(a, min(a + MERGE_CHUNK, self.n)).tracks for a in range(0, self.n, MERGE_CHUNK))

    def track_bits(self) -> tuple[np.ndarray, np.ndarray]:
        """The tracks inside (ascending) and each one's time bits (from the layout: nothing read)."""
        order = np.argsort(self.layout.ids, kind="stable")
        return np.asarray(self.layout.ids[order]), np.asarray(self.layout.time_bits[order])


#: Any segment :func:`open_segment` returns.
Segment = FlatSegment | PackedSegment


def _join_hashes(keys: np.ndarray, low: np.ndarray, hash_bits: int) -> np.ndarray:
    """Hashes from their window keys' high bits and their low bits."""
    high = (np.asarray(keys, dtype=np.uint64) >> np.uint64(hash_bits)) << np.uint64(hash_bits)
    return (high | np.asarray(low, dtype=np.uint64)).astype(np.uint32)


def _edges(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """The rows ``lo - 1, lo, hi - 1, hi`` that exist: where a bound's correctness shows."""
    pos = np.concatenate([lo - 1, lo, hi - 1, hi])
    return pos[(pos >= 0) & (pos < n)]


def _bounds_hold(h, keys: np.ndarray, lo: np.ndarray, hi: np.ndarray, n: int) -> bool:
    """``hashes[lo - 1] < key <= hashes[lo]`` and ``hashes[hi - 1] <= key < hashes[hi]`` wherever they exist."""
    keys = np.asarray(keys, dtype=np.uint32)
    return bool(
        np.all(h[lo[lo > 0] - 1] < keys[lo > 0])
        and np.all(h[lo[lo < n]] >= keys[lo < n])
        and np.all(h[hi[hi > 0] - 1] <= keys[hi > 0])
        and np.all(h[hi[hi < n]] > keys[hi < n])
    )


def _check_spans(sums: BlockSums, start: np.ndarray, stop: np.ndarray) -> None:
    """Check the blocks of every byte span ``[start, stop)`` (empty spans skipped)."""
    keep = stop > start
    start, stop = start[keep], stop[keep]
    if start.shape[0] == 0:
        return
    first = sums.blocks_of(start)
    last = sums.blocks_of(stop - 1)
    count = last - first + 1
    if np.all(count == 1):
        sums.check(first)
    else:  # spans over several blocks: all of them
        starts = np.repeat(first - (np.cumsum(count) - count), count)
        sums.check(starts + np.arange(int(count.sum()), dtype=np.int64))


def _count_tracks(chunks) -> dict[int, int]:
    counts: dict[int, int] = {}
    for tracks in chunks:  # loop over chunks
        ids, c = np.unique(tracks, return_counts=True)
        for i, k in zip(ids.tolist(), c.tolist()):
            counts[i] = counts.get(i, 0) + k
    return counts


def _max_bits(ids: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``ids`` (ascending), each with the largest of its ``bits``."""
    u, inv = np.unique(ids, return_inverse=True)
    out = np.zeros(u.shape[0], dtype=np.uint8)
    np.maximum.at(out, inv, bits)
    return u, out


def _flat_lower_bounds(segments: Sequence[FlatSegment], keys: np.ndarray) -> np.ndarray:
    """``searchsorted(s.postings.hashes, keys, 'left')`` for every version 1-4 segment at once.

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


def _packed_lower_bounds(segments: Sequence[PackedSegment], keys: np.ndarray) -> np.ndarray:
    """``searchsorted(hashes, keys, 'left')`` for every version-5 segment at once.

    The key's window is found by a binary search of the window keys: the
    last window whose key is smaller. When the key shares that window's high
    hash bits its bound lies inside the window or at its end, found by a
    branch-free binary search of the records' low hash bits: ``bit_length(cap)``
    rounds (5), each one gather per segment and a few array operations over
    all segments and keys together, on the window extended to ``cap + 1``
    postings by repeating its last (so that a bound at its end is found too).
    Otherwise the bound is the next window's start. With no low bits
    (``h = 0``, huge segments) every window is one hash and the bound is
    always a window start.

    Returns
    -------
    np.ndarray [shape=(len(segments), m), dtype=int64]
    """
    keys = np.asarray(keys, dtype=np.uint32)
    m = keys.shape[0]
    out = np.empty((len(segments), m), dtype=np.int64)
    search = [s for s, seg in enumerate(segments) if seg.layout.hash_bits and seg.n]
    lo = np.empty((len(search), m), dtype=np.int64)
    end = np.empty((len(search), m), dtype=np.int64)
    target = np.empty((len(search), m), dtype=np.uint64)
    k64 = keys.astype(np.uint64)
    r = 0
    for s, seg in enumerate(segments):  # loop over segments
        i = np.searchsorted(seg.wkeys, keys, side="left")  # wkeys[i - 1] < key <= wkeys[i]
        out[s] = seg.wstarts[i]  # the bound when the window before holds only smaller hashes
        if not (seg.layout.hash_bits and seg.n):
            continue
        hb = np.uint64(seg.layout.hash_bits)
        j = np.maximum(i - 1, 0)
        inside = (seg.wkeys[j] >> hb == k64 >> hb) & (i > 0)
        # keys inside search their window for their low bits; the others "search" for 0 from the next window's start
        target[r] = (k64 & np.uint64((1 << seg.layout.hash_bits) - 1)) * inside
        lo[r] = np.where(inside, seg.wstarts[j], out[s])
        end[r] = out[s]
        r += 1
    if not search:
        return out
    last = np.minimum(np.maximum(end - 1, lo), [[segments[s].n - 1] for s in search])  # inside the segment
    got = np.empty(lo.shape, dtype=np.uint64)
    half = 1 << (max(segments[s].cap for s in search).bit_length() - 1)
    while half:  # the bound is in [lo, end]: the window's last posting repeated past its end
        at = np.minimum(lo + (half - 1), last)
        for row, s in enumerate(search):  # loop over segments: one gather each
            got[row] = segments[s].records[at[row]]
            got[row] &= np.uint64((1 << segments[s].layout.hash_bits) - 1)
        lo += (got < target) * half
        half >>= 1
    out[search] = np.minimum(lo, end)
    return out


def lower_bounds(segments: Sequence[Segment], keys: np.ndarray) -> np.ndarray:
    """``searchsorted(hashes, keys, 'left')`` for every segment at once (sorted uint32 ``keys``).

    Returns
    -------
    np.ndarray [shape=(len(segments), m), dtype=int64]
    """
    keys = np.asarray(keys, dtype=np.uint32)
    out = np.empty((len(segments), keys.shape[0]), dtype=np.int64)
    for kind, bounds in ((FlatSegment, _flat_lower_bounds), (PackedSegment, _packed_lower_bounds)):
        rows = [s for s, seg in enumerate(segments) if isinstance(seg, kind)]
        if rows:
            out[rows] = bounds([segments[s] for s in rows], keys)
    return out


def run_bounds(segments: Sequence[Segment], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each key's run of postings starts and ends in every segment.

    ``searchsorted(hashes, keys, 'left')`` and ``'right'`` per segment, for
    sorted unique uint32 ``keys``. A key's run ends where the next hash
    value's begins, so the keys and their successors are searched together
    (landmark queries hold runs of consecutive values — the dt jitter — so
    that is ~1.3 searches per key, not 2); small segments (of any version)
    take two plain binary searches instead.

    Returns
    -------
    lo, hi : np.ndarray [shape=(len(segments), m), dtype=int64]
    """
    keys = np.asarray(keys, dtype=np.uint32)
    m = keys.shape[0]
    lo = np.zeros((len(segments), m), dtype=np.int64)
    hi = np.zeros((len(segments), m), dtype=np.int64)
    if m == 0:
        return lo, hi
    flat = [s for s, seg in enumerate(segments) if isinstance(seg, FlatSegment)]
    if flat:
        lo[flat], hi[flat] = _flat_run_bounds([segments[s] for s in flat], keys)
    packed = []
    for s, seg in enumerate(segments):  # loop over segments: small packed ones by plain binary searches
        if isinstance(seg, PackedSegment):
            h = seg.small_hashes()
            if h is None:
                packed.append(s)
            else:
                lo[s] = np.searchsorted(h, keys, side="left")
                hi[s] = np.searchsorted(h, keys, side="right")
    if packed:
        top = bool(keys[-1] == np.iinfo(np.uint32).max)  # its successor does not exist: its run ends at n
        nxt = keys[:-1] + np.uint32(1) if top else keys + np.uint32(1)
        both = _union(keys, nxt)
        found = _packed_lower_bounds([segments[s] for s in packed], both)
        lo[packed] = found[:, np.searchsorted(both, keys)]
        h = found[:, np.searchsorted(both, nxt)]
        if top:
            h = np.concatenate([h, np.array([[len(segments[s])] for s in packed], dtype=np.int64)], axis=1)
        hi[packed] = h
    return lo, hi


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.union1d`` of two uint32 arrays by sorting (numpy's hash-based unique is ~5x slower here)."""
    both = np.concatenate([a, b])
    both.sort()
    return both[np.concatenate([[True], both[1:] != both[:-1]])]


def _flat_run_bounds(segments: Sequence[FlatSegment], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`run_bounds` of version 1-4 segments (a non-empty ``keys``)."""
    keys = np.asarray(keys, dtype=np.uint32)
    m = keys.shape[0]
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
    both = _union(keys, nxt)
    found = _flat_lower_bounds(segments, both)
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


def _n_blocks(body_end: int, block: int) -> int:
    return -(-(body_end - SEGMENT_HEADER_SIZE) // block)


#: An array typecode of 4-byte unsigned ints (``"I"`` wherever C's int is 32 bits).
_U32 = next(code for code in "IL" if array(code).itemsize == 4)


class _Summer:
    """CRC-32 per ``block`` bytes of a stream fed in pieces of any size.

    The sums are kept 4 bytes each: as Python ints they took ~40 bytes a block
    (80 MB for the 2 million blocks of an 8-GB segment).
    """

    def __init__(self, block: int = BLOCK_SIZE):
        self.block = block
        self.sums = array(_U32)
        self.crc = 0
        self.fill = 0

    def feed(self, data) -> None:
        mv = memoryview(data).cast("B")
        B = self.block
        if self.fill:  # finish the open block
            take = min(B - self.fill, len(mv))
            self.crc = zlib.crc32(mv[:take], self.crc)
            self.fill += take
            mv = mv[take:]
            if self.fill < B:
                return
            self.sums.append(self.crc)
            self.crc = self.fill = 0
        whole = len(mv) // B * B
        self.sums.extend(zlib.crc32(mv[i : i + B]) for i in range(0, whole, B))
        if whole < len(mv):
            self.crc = zlib.crc32(mv[whole:])
            self.fill = len(mv) - whole

    def table(self) -> np.ndarray:
        sums = np.frombuffer(self.sums, dtype=np.uint32) if len(self.sums) else np.zeros(0, dtype=np.uint32)
        return np.append(sums, np.uint32(self.crc)).astype("<u4") if self.fill else sums.astype("<u4")


def _sealed(head: bytes) -> bytes:
    """A 64-byte header with its own CRC-32 in its last 4 bytes."""
    return head[:-4] + zlib.crc32(head[:-4]).to_bytes(4, "little")


def _header_v4(n: int, n_tracks: int, step: int, checksum: int) -> bytes:
    return _sealed(SEGMENT_HEADER_V4.pack(SEGMENT_MAGIC_V4, n, n_tracks, step, BLOCK_SIZE, checksum, 0))


def _header(n: int, layout: Layout, n_windows: int, checksum: int) -> bytes:
    return _sealed(
        SEGMENT_HEADER.pack(
            SEGMENT_MAGIC,
            n,
            layout.ids.shape[0],
            n_windows,
            BLOCK_SIZE,
            checksum,
            layout.record,
            layout.hash_bits,
            layout.classes.shape[0],
            WINDOW_CAP,
            0,
        )
    )


def _tail(table: np.ndarray) -> tuple[bytes, int]:
    """The block table and footer as written after the body, and the segment's checksum."""
    raw = np.ascontiguousarray(table, dtype="<u4").tobytes()
    checksum = zlib.crc32(raw)
    return raw + _footer(table.shape[0], checksum), checksum


def _footer(n_blocks: int, checksum: int) -> bytes:
    """The footer after the block table: its length, its CRC-32 (the segment's checksum), the magic."""
    return SEGMENT_FOOTER.pack(n_blocks, checksum, SEGMENT_FOOTER_MAGIC)


@dataclass(frozen=True, slots=True)
class _Offsets:
    """Byte offsets of a version-5 segment's parts (from its header's counts)."""

    time_bits: int
    classes: int
    records: int
    wkeys: int
    wstarts: int
    end: int  # of the body

    @classmethod
    def of(cls, n: int, n_tracks: int, n_classes: int, record: int, n_windows: int) -> _Offsets:
        bits = SEGMENT_HEADER_SIZE + 4 * n_tracks
        classes = -(-(bits + n_tracks) // 8) * 8
        records = classes + 24 * n_classes
        wkeys = records + record * n
        wstarts = wkeys + 4 * n_windows
        return cls(bits, classes, records, wkeys, wstarts, wstarts + 4 * (n_windows + 1))

    def regions(self) -> list[tuple[str, int]]:
        return [
            ("tracks", SEGMENT_HEADER_SIZE),
            ("time bits", self.time_bits),
            ("slot classes", self.classes),
            ("records", self.records),
            ("window keys", self.wkeys),
            ("window starts", self.wstarts),
        ]


def _tables(layout: Layout, at: _Offsets) -> bytes:
    """The tracks, time bits (padded) and slot classes of a layout: the bytes from offset 64 to the records."""
    pad = at.classes - at.time_bits - layout.ids.shape[0]
    return (
        np.ascontiguousarray(layout.ids, dtype="<u4").tobytes()
        + np.ascontiguousarray(layout.time_bits, dtype=np.uint8).tobytes()
        + bytes(pad)
        + np.ascontiguousarray(layout.classes, dtype="<u8").tobytes()
    )


def _windows(h: np.ndarray, layout: Layout, first: int, step: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Keys and starts of the windows of sorted hashes ``h`` (postings ``first, first + 1, ...``).

    With ``step``, cut about ``step`` postings at a time (each piece ends where a run of equal
    high bits does, so the windows are the same): the cutting's temporaries (~40 bytes a
    posting) stay those of a step, not of a merge's chunk.
    """
    n, bits = h.shape[0], layout.hash_bits
    keys, starts = [], []
    a = 0
    while a < n:  # loop over steps (one without step)
        b = n if step is None or a + step >= n else a + step
        if b < n:  # to the end of the run holding posting b - 1
            end = ((int(h[b - 1]) >> bits) + 1) << bits
            b = n if end >= 1 << 32 else int(np.searchsorted(h, np.uint32(end), side="left"))
        s = cut_windows(h[a:b], bits, WINDOW_CAP) + a
        keys.append(np.ascontiguousarray(h[s], dtype="<u4"))
        starts.append((s + first).astype("<u4"))
        a = b
    if len(keys) == 1:
        return keys[0], starts[0]
    return np.concatenate(keys or [np.zeros(0, "<u4")]), np.concatenate(starts or [np.zeros(0, "<u4")])


def write_segment(dest: Path, postings: Postings, *, version: int = SEGMENT_VERSION) -> int:
    """Write ``postings`` (already sorted by hash) to ``dest`` atomically, with its checksums.

    ``version`` 5 (the default) or 4 (12 bytes a posting, for compatibility
    tests and benchmarks). Returns the number of bytes written.
    """
    n = len(postings)
    if n >= 1 << 32:
        raise ValueError(f"a segment holds at most 2**32 - 1 postings, got {n}")
    h = np.ascontiguousarray(postings.hashes, dtype="<u4")
    if version == 4:
        n_tracks = int(np.unique(postings.tracks).shape[0]) if n else 0
        body = [np.ascontiguousarray(h[::FENCE_STEP])] + [
            np.ascontiguousarray(a, dtype="<u4") for a in (h, postings.tracks, postings.times)
        ]
        head = lambda checksum: _header_v4(n, n_tracks, FENCE_STEP, checksum)  # noqa: E731
    elif version == SEGMENT_VERSION:
        layout = plan_layout(*track_time_bits(postings.tracks, postings.times))
        wkeys, wstarts = _windows(h, layout, 0)
        at = _Offsets.of(n, layout.ids.shape[0], layout.classes.shape[0], layout.record, wkeys.shape[0])
        records = layout.encode(h, postings.tracks, postings.times).astype(np.dtype(layout.dtype).newbyteorder("<"))
        body = [
            np.frombuffer(_tables(layout, at), dtype=np.uint8),
            records,
            wkeys,
            np.append(wstarts, np.uint32(n)).astype("<u4"),
        ]
        head = lambda checksum: _header(n, layout, wkeys.shape[0], checksum)  # noqa: E731
    else:
        raise ValueError(f"segment version {version} cannot be written (4 or {SEGMENT_VERSION})")
    summer = _Summer()
    for a in body:
        summer.feed(a)
    tail, checksum = _tail(summer.table())
    tmp = _tmp_name(dest)
    with open(tmp, "wb") as fh:
        fh.write(head(checksum))
        for a in body:
            fh.write(memoryview(np.ascontiguousarray(a)).cast("B"))
        fh.write(tail)
        fh.flush()
        os.fsync(fh.fileno())
        size = fh.tell()
    _publish(tmp, dest)
    return size


def segment_checksum(path: Path) -> int | None:
    """The checksum a segment file's header declares (None for files written without checksums)."""
    with open(path, "rb") as fh:
        head = fh.read(SEGMENT_HEADER_SIZE)
    if len(head) != SEGMENT_HEADER_SIZE:
        return None
    if head[:8] == SEGMENT_MAGIC:
        return SEGMENT_HEADER.unpack(head)[5]
    if head[:8] == SEGMENT_MAGIC_V4:
        return SEGMENT_HEADER_V4.unpack(head)[5]
    return None


def open_segment(path: Path) -> Segment:
    """Memory-map a segment read-only and check its header, footer, block table and what steers lookups.

    A segment of at most :data:`CHECK_AT_OPEN` bytes is checked whole; a
    bigger one block by block as lookups first touch it.

    Raises
    ------
    IndexCorruptError
        A part fails its checksum, or the file is cut short.
    IndexFormatError
        Missing file, not a segment (bad magic).
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(SEGMENT_HEADER_SIZE)
    except FileNotFoundError as exc:
        raise IndexFormatError(f"{path}: segment file is missing") from exc
    if len(head) != SEGMENT_HEADER_SIZE:
        raise IndexCorruptError(f"{path}: segment header truncated ({len(head)} bytes)", part=str(path))
    magic = head[:8]
    if magic == SEGMENT_MAGIC:
        return _open_v5(path, head, size)
    if magic == SEGMENT_MAGIC_V4:
        return _open_v4(path, head, size)
    step = 0
    if magic == SEGMENT_MAGIC_V3:
        _, n, _, step = SEGMENT_HEADER_V3.unpack(head)
        if step < 1:
            raise IndexCorruptError(f"{path}: fence step {step} must be >= 1", part=str(path))
        data_off = _data_offset(n, step)
        version = 3
    elif magic == SEGMENT_MAGIC_V2:  # its bucket directory is ignored: plain binary search
        _, n, _, bits, _ = SEGMENT_HEADER_V2.unpack(head)
        data_off = SEGMENT_HEADER_SIZE + 4 * ((1 << bits) + 1)
        version = 2
    elif magic == SEGMENT_MAGIC_V1:
        _, n, _ = SEGMENT_HEADER_V1.unpack(head)
        data_off = SEGMENT_HEADER_SIZE
        version = 1
    elif magic[:6] == SEGMENT_MAGIC[:6] and magic[6:].isdigit() and int(magic[6:]) > SEGMENT_VERSION:
        raise IndexTooNewError(
            f"{path}: segment format version {int(magic[6:])} is newer than this songmine, which reads versions "
            f"1-{SEGMENT_VERSION}: upgrade songmine, or rebuild the index with this version (move "
            f"{path.parent.parent} away and run songmine index <music folders> --index {path.parent.parent})"
        )
    else:
        raise IndexFormatError(f"{path}: not a songmine segment (magic {magic!r}, expected {SEGMENT_MAGIC!r})")
    expected = data_off + 12 * n
    if size != expected:
        raise IndexCorruptError(f"{path}: segment is {size} bytes, header says {expected}", part=str(path))
    fences = None
    if step and n:
        fences = np.asarray(np.memmap(path, dtype="<u4", mode="r", offset=SEGMENT_HEADER_SIZE, shape=(-(-n // step),)))
    if n == 0:
        return FlatSegment(path, Postings.empty(), fences, step, data_off, version=version)
    m = np.asarray(np.memmap(path, dtype="<u4", mode="r", offset=data_off, shape=(3, n)))
    return FlatSegment(path, Postings(m[0], m[1], m[2]), fences, step, data_off, version=version)


def _damaged(path: Path, what: str) -> IndexCorruptError:
    return IndexCorruptError(f"{path}: segment is damaged: {what}", part=str(path))


def _map_checked(
    path: Path, size: int, end: int, block: int, checksum: int, regions: list[tuple[str, int]]
) -> BlockSums:
    """Map a version 4/5 file and check its footer and block table (the body ends at byte ``end``)."""
    n_blocks = _n_blocks(end, block)
    expected = end + 4 * n_blocks + SEGMENT_FOOTER.size
    if size != expected:
        raise _damaged(path, f"it is {size} bytes, its header says {expected}")
    with open(path, "rb") as fh:
        mapping = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    raw = np.frombuffer(mapping, dtype=np.uint8)
    k, foot_sum, foot_magic = SEGMENT_FOOTER.unpack(bytes(raw[size - SEGMENT_FOOTER.size :]))
    table = raw[end : end + 4 * n_blocks].view("<u4")
    if foot_magic != SEGMENT_FOOTER_MAGIC or k != n_blocks or foot_sum != checksum or zlib.crc32(table) != checksum:
        raise _damaged(path, "its footer or block table fails its checksum")
    return BlockSums(path, raw, table, block, end, checksum, regions, mapping)


def _open_v4(path: Path, head: bytes, size: int) -> FlatSegment:
    if zlib.crc32(head[:-4]) != int.from_bytes(head[-4:], "little"):
        raise _damaged(path, "its header fails its checksum")
    _, n, _, step, block, checksum, _ = SEGMENT_HEADER_V4.unpack(head)
    if step < 1 or block < 4 or block % 4:
        raise _damaged(path, f"fence step {step}, block size {block}")
    data_off = _data_offset(n, step)
    end = data_off + 12 * n
    regions = [
        ("fences", SEGMENT_HEADER_SIZE),
        ("hashes", data_off),
        ("tracks", data_off + 4 * n),
        ("times", data_off + 8 * n),
    ]
    sums = _map_checked(path, size, end, block, checksum, regions)
    raw = sums.raw
    sums.check_range(SEGMENT_HEADER_SIZE, data_off)  # the fences steer every lookup: checked now
    if end - SEGMENT_HEADER_SIZE <= CHECK_AT_OPEN:
        sums.check_all()
    fences = raw[SEGMENT_HEADER_SIZE:data_off].view("<u4") if n else None
    if n == 0:
        return FlatSegment(path, Postings.empty(), fences, step, data_off, sums)
    m = raw[data_off:end].view("<u4").reshape(3, n)
    return FlatSegment(path, Postings(m[0], m[1], m[2]), fences, step, data_off, sums)


def _open_v5(path: Path, head: bytes, size: int) -> PackedSegment:
    if zlib.crc32(head[:-4]) != int.from_bytes(head[-4:], "little"):
        raise _damaged(path, "its header fails its checksum")
    _, n, n_tracks, n_windows, block, checksum, record, hash_bits, n_classes, cap, _ = SEGMENT_HEADER.unpack(head)
    if (
        record not in (4, 8)
        or hash_bits > min(8 * record - 1, 32)
        or block < 8
        or block % 8
        or cap < 1
        or n_windows > n
        or (n and not n_windows)
        or (n_tracks and not n_classes)
        or n_classes > n_tracks
    ):
        raise _damaged(
            path,
            f"impossible header (record {record} bytes, {hash_bits} hash bits, block {block}, "
            f"{n_windows} windows of {n}, {n_classes} classes of {n_tracks} tracks)",
        )
    at = _Offsets.of(n, n_tracks, n_classes, record, n_windows)
    sums = _map_checked(path, size, at.end, block, checksum, at.regions())
    raw = sums.raw
    if at.end - SEGMENT_HEADER_SIZE <= CHECK_AT_OPEN:
        sums.check_all()
    else:  # the tables and the directory steer every lookup: checked now, by reads (not mapped)
        sums.check_range_read(SEGMENT_HEADER_SIZE, at.records)
        sums.check_range_read(at.wkeys, at.end)
    ids = raw[SEGMENT_HEADER_SIZE : at.time_bits].view("<u4")
    bits = raw[at.time_bits : at.time_bits + n_tracks]
    classes = raw[at.classes : at.records].view("<u8").reshape(n_classes, 3)
    wstarts = raw[at.wstarts : at.end].view("<u4")
    problem = layout_problem(ids, bits, classes, record, hash_bits)
    if problem is None and (wstarts[0] != 0 or wstarts[-1] != n):
        problem = "its window directory does not span its postings"
    if problem is not None:
        raise _damaged(path, problem)
    layout = Layout(ids, bits, classes, record, hash_bits)
    dtype = np.dtype("<u4" if record == 4 else "<u8")
    return PackedSegment(
        path,
        n,
        layout,
        raw[at.records : at.wkeys].view(dtype),
        raw[at.wkeys : at.wstarts].view("<u4"),
        wstarts,
        at.records,
        cap,
        sums,
    )


def _read(seg: FlatSegment, row: int, lo: int, hi: int) -> np.ndarray:
    """Rows of a segment read with plain file reads (page cache, not this process's memory map).

    With checksums, whole blocks are read and checked before the rows are taken from them.
    """
    n = len(seg)
    start, stop = seg.data_offset + 4 * (row * n + lo), seg.data_offset + 4 * (row * n + hi)
    s = seg.sums
    if s is None or stop <= start:
        return np.fromfile(seg.path, dtype="<u4", count=hi - lo, offset=start)
    first, last = s.blocks_of([start, stop - 1]).tolist()
    a = s.span(first)[0]
    buf = np.fromfile(seg.path, dtype=np.uint8, count=s.span(last)[1] - a, offset=a)
    s.check_buffer(first, buf)
    return buf[start - a : stop - a].view("<u4")


def _pwrite(fd: int, a, offset: int) -> None:
    buf = memoryview(np.ascontiguousarray(a)).cast("B")
    while buf.nbytes:
        k = os.pwrite(fd, buf, offset)
        buf, offset = buf[k:], offset + k


#: Bytes read at a time to sum a merged segment's blocks.
_SUM_CHUNK = 1024 * BLOCK_SIZE


def _write_block_table(fd: int, end: int) -> tuple[int, int]:
    """Sum the body's blocks as they are on disk (read back: the page cache has them) and write the
    table after the body, at ``end``, a chunk at a time: ``(blocks, the table's CRC-32)``.

    The table is 0.1 % of the segment (8 MB at 10,000 hours); written as it is
    summed, a merge's memory does not grow with the segment it writes.
    """
    n = checksum = 0
    for off in range(SEGMENT_HEADER_SIZE, end, _SUM_CHUNK):  # chunks of whole blocks
        table = _sums_read_back(fd, off, min(_SUM_CHUNK, end - off))
        _pwrite(fd, table, end + 4 * n)
        checksum = zlib.crc32(table, checksum)
        n += table.shape[0]
    return n, checksum


def _sums_read_back(fd: int, offset: int, size: int) -> np.ndarray:
    """The block sums of ``size`` bytes at ``offset`` (whole blocks but the last), read from ``fd``."""
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise OSError(f"read {len(data)} of {size} bytes at {offset} back from a segment being written")
    summer = _Summer()
    summer.feed(data)
    return summer.table()


def merge_segments(dest: Path, parts: Sequence[Segment], *, dead: np.ndarray | None = None) -> tuple[int, int]:
    """Merge sorted segments (any version) into one version-5 segment at ``dest``, dropping ``dead`` tracks.

    Works hash range by hash range with plain reads and writes (at most
    :data:`MERGE_CHUNK` postings in memory), each part read front to back and
    none through its memory map (whose pages would count in this process's
    memory: a share of the index's size), so merging a 10,000-hour index
    needs well under 200 MB. Every block read from a part is
    checked against its checksum first (damage is never copied into a segment
    with fresh checksums); the output's block sums are computed from the file
    as written, read back.

    The tracks and their time bits (the layout) come from the parts' tables
    first (a version 1-4 part's tracks and times are read for them); the
    records go to their place as each hash range is merged, the window keys
    after them, and the window starts — whose offset depends on how many
    windows there are — to a side file copied into place at the end.

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

    # the merged tracks and their time bits: the layout
    ids, bits = np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint8)
    for p in parts:  # loop over parts
        i, b = p.track_bits()
        ids, bits = _max_bits(np.concatenate([ids, i]), np.concatenate([bits, b]))
    if dead is not None:
        keep = live(ids)
        ids, bits = ids[keep], bits[keep]
    layout = plan_layout(ids, bits)
    # chunk boundaries (hash values); each part is then read front to back, a chunk at a time
    bounds = _hash_bounds(parts, sum(len(p) for p in parts))
    # pass 1: postings that survive (reads the parts, when something is dropped)
    if dead is None:
        n_live = sum(len(p) for p in parts)
    else:
        n_live = 0
        for p in parts:
            for a in range(0, len(p), MERGE_CHUNK):
                n_live += int(live(p.read(a, min(len(p), a + MERGE_CHUNK)).tracks).sum())
    at = _Offsets.of(n_live, layout.ids.shape[0], layout.classes.shape[0], layout.record, 0)  # windows: not yet

    tmp = _tmp_name(dest)
    side = tmp.with_name(tmp.name + ".starts")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with open(side, "w+b") as starts_fh:
            _pwrite(fd, np.frombuffer(_tables(layout, at), dtype=np.uint8), SEGMENT_HEADER_SIZE)
            pos = n_windows = 0
            readers = [_PartReader(p, max(1, MERGE_CHUNK // len(parts))) for p in parts]
            live_only = live if dead is not None else None
            for bound in bounds[1:]:  # loop over chunks: no name holds one while the next is read
                pieces = [x for r in readers if len(x := r.below(bound))]
                n, w = _write_chunk(fd, starts_fh, layout, at, _sorted_chunk(pieces, live_only), pos, n_windows)
                pos, n_windows = pos + n, n_windows + w
            assert pos == n_live, (pos, n_live)
            starts_fh.write(np.uint32(n_live).astype("<u4").tobytes())
            at = _Offsets.of(n_live, layout.ids.shape[0], layout.classes.shape[0], layout.record, n_windows)
            starts_fh.seek(0)
            off = at.wstarts
            while chunk := starts_fh.read(_SUM_CHUNK):  # the window starts into place
                _pwrite(fd, np.frombuffer(chunk, dtype=np.uint8), off)
                off += len(chunk)
        end = at.end
        n_blocks, checksum = _write_block_table(fd, end)
        os.pwrite(fd, _footer(n_blocks, checksum), end + 4 * n_blocks)
        os.pwrite(fd, _header(n_live, layout, n_windows, checksum), 0)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        _publish(tmp, dest)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    finally:
        side.unlink(missing_ok=True)
    return n_live, int(layout.ids.shape[0])


#: Postings encoded (and cut into windows) at a time while merging: the temporaries (~70 and ~40
#: bytes a posting) stay a few MB instead of growing with the merge's chunk.
_WRITE_STEP = 1 << 18


def _sorted_chunk(pieces: list[Postings], live) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One merge chunk: the parts' pieces of a hash range joined (live postings only, when ``live`` is
    given) and sorted by hash; None when there are none. The pieces are let go on return."""
    if not pieces:
        return None
    h = np.concatenate([x.hashes for x in pieces])
    tr = np.concatenate([x.tracks for x in pieces])
    t = np.concatenate([x.times for x in pieces])
    pieces.clear()
    if live is not None:
        keep = live(tr)
        h, tr, t = h[keep], tr[keep], t[keep]
    order = np.argsort(h, kind="stable")
    return h[order], tr[order], t[order]


def _write_chunk(fd: int, starts_fh, layout: Layout, at: _Offsets, chunk, pos: int, n_windows: int) -> tuple[int, int]:
    """Write a sorted chunk's records and window keys (its window starts to ``starts_fh``), after the
    ``pos`` postings and ``n_windows`` windows before it: ``(postings, windows)`` written."""
    if chunk is None:
        return 0, 0
    h, tr, t = chunk
    _write_records(fd, layout, h, tr, t, at.records + layout.record * pos)
    wkeys, wstarts = _windows(h, layout, pos, _WRITE_STEP)
    _pwrite(fd, wkeys, at.wkeys + 4 * n_windows)
    starts_fh.write(memoryview(wstarts).cast("B"))
    return h.shape[0], wkeys.shape[0]


def _write_records(fd: int, layout: Layout, h: np.ndarray, tr: np.ndarray, t: np.ndarray, offset: int) -> None:
    """Encode sorted postings as ``layout``'s records and write them at ``offset``, a step at a time."""
    dtype = np.dtype(layout.dtype).newbyteorder("<")
    for a in range(0, h.shape[0], _WRITE_STEP):  # loop over steps of a chunk
        b = min(a + _WRITE_STEP, h.shape[0])
        _pwrite(fd, layout.encode(h[a:b], tr[a:b], t[a:b]).astype(dtype), offset + layout.record * a)


class _PartReader:
    """A merge's reader of one part: front to back with plain reads, a hash range at a time.

    Nothing of the part is touched through its memory map (whose pages would
    count in the merging process's memory, a share of the index's size).
    """

    def __init__(self, part: Segment, step: int):
        self.part, self.step, self.pos = part, step, 0
        self.rest = Postings.empty()  # read past the last bound

    def below(self, bound: int) -> Postings:
        """The part's next postings whose hash is below ``bound`` (``2**32``: all the rest)."""
        buf, n = self.rest, len(self.part)
        while self.pos < n and (len(buf) == 0 or int(buf.hashes[-1]) < bound):
            more = self.part.read(self.pos, min(n, self.pos + self.step))
            self.pos += len(more)
            if len(buf):
                more = Postings(
                    np.concatenate([buf.hashes, more.hashes]),
                    np.concatenate([buf.tracks, more.tracks]),
                    np.concatenate([buf.times, more.times]),
                )
            buf = more
        if self.part.sums is not None:
            self.part.sums.drop_pages()
        cut = len(buf) if bound >= 1 << 32 else int(np.searchsorted(buf.hashes, np.uint32(bound), side="left"))
        self.rest = Postings(buf.hashes[cut:], buf.tracks[cut:], buf.times[cut:])
        return Postings(buf.hashes[:cut], buf.tracks[:cut], buf.times[:cut])


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
    at = [int(big.read(q, q + 1).hashes[0]) for q in qs.tolist()]  # plain reads, not the memory map
    cuts = np.unique(np.asarray(at, dtype=np.int64)).tolist()
    return [0, *[c for c in cuts if c > 0], 1 << 32]
