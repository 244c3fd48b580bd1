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

Every 4 KB block of the body has a CRC-32 (:class:`BlockSums`). Opening
checks the header, the footer, the block table and the fences, and a segment
of at most :data:`CHECK_AT_OPEN` bytes whole; a bigger one is checked block
by block as lookups first touch it (:meth:`Segment.check_bounds`,
:meth:`Segment.check_runs`), merges check every block they read, and
:meth:`Segment.check_all` checks everything. A block that fails its checksum
raises :class:`~songmine.errors.IndexCorruptError`: no lookup answers from
damaged data.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import IndexCorruptError, IndexFormatError
from ..postings import Postings
from .schema import (
    BLOCK_SIZE,
    SEGMENT_FOOTER,
    SEGMENT_FOOTER_MAGIC,
    SEGMENT_HEADER,
    SEGMENT_HEADER_SIZE,
    SEGMENT_HEADER_V1,
    SEGMENT_HEADER_V2,
    SEGMENT_HEADER_V3,
    SEGMENT_MAGIC,
    SEGMENT_MAGIC_V1,
    SEGMENT_MAGIC_V2,
    SEGMENT_MAGIC_V3,
)

__all__ = [
    "Segment",
    "BlockSums",
    "write_segment",
    "open_segment",
    "merge_segments",
    "segment_checksum",
    "fsync_dir",
    "lower_bounds",
    "run_bounds",
]

#: Postings handled at a time while merging (x ~40 bytes while sorting: ~80 MB).
MERGE_CHUNK = 2_000_000
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


class BlockSums:
    """The CRC-32 of every block of a segment's body (bytes 64 to the end of ``times``), and which were checked.

    A block is checked at most once per process (then marked); the marks are
    shared by the threads that use the segment.
    """

    def __init__(self, path: Path, raw: np.ndarray, table: np.ndarray, block: int, end: int, checksum: int,
                 regions: Sequence[tuple[str, int]]):
        self.path = path
        self.raw = raw  # the whole file, memory-mapped (uint8)
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

    def check_buffer(self, first: int, buf: np.ndarray) -> None:
        """Check blocks ``first, first + 1, …`` against ``buf``, their bytes as read from the file."""
        mv = memoryview(buf).cast("B")
        n = -(-len(mv) // self.block)
        for i in range(n):  # loop over blocks
            if zlib.crc32(mv[i * self.block:(i + 1) * self.block]) != int(self.table[first + i]):
                raise self.damage(first + i)
        self._mark(np.arange(first, first + n))

    def check_all(self) -> None:
        """Check every block not checked yet."""
        if not self.complete:
            self.check(np.nonzero(~self.checked)[0])

    def _mark(self, blocks: np.ndarray) -> None:
        with self._lock:
            self.checked[blocks] = True
            if not self.complete and self.checked.all():
                self.complete = True

    def region(self, offset: int) -> str:
        """Which part of the segment holds byte ``offset`` (fences, hashes, tracks or times)."""
        name = self.regions[0][0]
        for r, first in self.regions:
            if offset >= first:
                name = r
        return name

    def damage(self, b: int) -> IndexCorruptError:
        start, stop = self.span(b)
        where = sorted({self.region(start), self.region(stop - 1)}, key=[r for r, _ in self.regions].index)
        return IndexCorruptError(
            f"{self.path}: segment is damaged: block {b} of {len(self)} (bytes {start}-{stop - 1}, "
            f"the {' and '.join(where)}) fails its checksum",
            part=str(self.path),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """A memory-mapped segment: its postings, fences (None for version 1 and 2 files) and checksums.

    ``sums`` is None for files written before segments had checksums (read unchecked).
    """

    path: Path
    postings: Postings
    fences: np.ndarray | None
    step: int
    data_offset: int  # byte offset of hashes[0]
    sums: BlockSums | None = None

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
        keys = np.asarray(keys, dtype=np.uint32)
        pos = np.concatenate([lo - 1, lo, hi - 1, hi])
        pos = pos[(pos >= 0) & (pos < n)]
        self.sums.check(self.sums.blocks_of(self.data_offset + 4 * pos))
        h = self.postings.hashes
        ok = (np.all(h[lo[lo > 0] - 1] < keys[lo > 0]) and np.all(h[lo[lo < n]] >= keys[lo < n])
              and np.all(h[hi[hi > 0] - 1] <= keys[hi > 0]) and np.all(h[hi[hi < n]] > keys[hi < n]))
        if not ok:
            self.sums.check_range(self.data_offset, self.data_offset + 4 * n)
            raise IndexCorruptError(
                f"{self.path}: segment is damaged: its hashes are out of order", part=str(self.path)
            )

    def check_runs(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Check the blocks of ``tracks[lo:hi]`` and ``times[lo:hi]`` for each run (what a lookup reads)."""
        if self.checked:
            return
        keep = hi > lo
        lo, hi = lo[keep], hi[keep]
        if lo.shape[0] == 0:
            return
        n = len(self)
        for row in (1, 2):
            first = self.sums.blocks_of(self.data_offset + 4 * (row * n + lo))
            last = self.sums.blocks_of(self.data_offset + 4 * (row * n + hi) - 1)
            count = last - first + 1
            if np.all(count == 1):
                self.sums.check(first)
            else:  # runs over several blocks: all of them
                starts = np.repeat(first - (np.cumsum(count) - count), count)
                self.sums.check(starts + np.arange(int(count.sum()), dtype=np.int64))


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


def _n_blocks(body_end: int, block: int) -> int:
    return -(-(body_end - SEGMENT_HEADER_SIZE) // block)


class _Summer:
    """CRC-32 per ``block`` bytes of a stream fed in pieces of any size."""

    def __init__(self, block: int = BLOCK_SIZE):
        self.block = block
        self.sums: list[int] = []
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
        self.sums += [zlib.crc32(mv[i:i + B]) for i in range(0, whole, B)]
        if whole < len(mv):
            self.crc = zlib.crc32(mv[whole:])
            self.fill = len(mv) - whole

    def table(self) -> np.ndarray:
        sums = self.sums + ([self.crc] if self.fill else [])
        return np.asarray(sums, dtype="<u4")


def _header(n: int, n_tracks: int, step: int, checksum: int) -> bytes:
    head = SEGMENT_HEADER.pack(SEGMENT_MAGIC, n, n_tracks, step, BLOCK_SIZE, checksum, 0)
    return head[:-4] + zlib.crc32(head[:-4]).to_bytes(4, "little")


def _tail(table: np.ndarray) -> tuple[bytes, int]:
    """The block table and footer as written after the body, and the segment's checksum."""
    raw = np.ascontiguousarray(table, dtype="<u4").tobytes()
    checksum = zlib.crc32(raw)
    return raw + SEGMENT_FOOTER.pack(table.shape[0], checksum, SEGMENT_FOOTER_MAGIC), checksum


def write_segment(dest: Path, postings: Postings) -> int:
    """Write ``postings`` (already sorted by hash) to ``dest`` atomically, with its checksums.

    Returns the number of bytes written.
    """
    n = len(postings)
    if n >= 1 << 32:
        raise ValueError(f"a segment holds at most 2**32 - 1 postings, got {n}")
    h = np.ascontiguousarray(postings.hashes, dtype="<u4")
    n_tracks = int(np.unique(postings.tracks).shape[0]) if n else 0
    body = [np.ascontiguousarray(h[::FENCE_STEP])] + [
        np.ascontiguousarray(a, dtype="<u4") for a in (h, postings.tracks, postings.times)
    ]
    summer = _Summer()
    for a in body:
        summer.feed(a)
    tail, checksum = _tail(summer.table())
    tmp = _tmp_name(dest)
    with open(tmp, "wb") as fh:
        fh.write(_header(n, n_tracks, FENCE_STEP, checksum))
        for a in body:
            fh.write(memoryview(a).cast("B"))
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
    if len(head) != SEGMENT_HEADER_SIZE or head[:8] != SEGMENT_MAGIC:
        return None
    return SEGMENT_HEADER.unpack(head)[5]


def open_segment(path: Path) -> Segment:
    """Memory-map a segment read-only and check its header, footer, block table and fences.

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
        return _open_v4(path, head, size)
    step = 0
    if magic == SEGMENT_MAGIC_V3:
        _, n, _, step = SEGMENT_HEADER_V3.unpack(head)
        if step < 1:
            raise IndexCorruptError(f"{path}: fence step {step} must be >= 1", part=str(path))
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
        raise IndexCorruptError(f"{path}: segment is {size} bytes, header says {expected}", part=str(path))
    fences = None
    if step and n:
        fences = np.asarray(
            np.memmap(path, dtype="<u4", mode="r", offset=SEGMENT_HEADER_SIZE, shape=(-(-n // step),))
        )
    if n == 0:
        return Segment(path, Postings.empty(), fences, step, data_off)
    m = np.asarray(np.memmap(path, dtype="<u4", mode="r", offset=data_off, shape=(3, n)))
    return Segment(path, Postings(m[0], m[1], m[2]), fences, step, data_off)


def _open_v4(path: Path, head: bytes, size: int) -> Segment:
    def damaged(what: str) -> IndexCorruptError:
        return IndexCorruptError(f"{path}: segment is damaged: {what}", part=str(path))

    if zlib.crc32(head[:-4]) != int.from_bytes(head[-4:], "little"):
        raise damaged("its header fails its checksum")
    _, n, _, step, block, checksum, _ = SEGMENT_HEADER.unpack(head)
    if step < 1 or block < 4 or block % 4:
        raise damaged(f"fence step {step}, block size {block}")
    data_off = _data_offset(n, step)
    end = data_off + 12 * n
    n_blocks = _n_blocks(end, block)
    expected = end + 4 * n_blocks + SEGMENT_FOOTER.size
    if size != expected:
        raise damaged(f"it is {size} bytes, its header says {expected}")
    raw = np.asarray(np.memmap(path, dtype=np.uint8, mode="r"))
    k, foot_sum, foot_magic = SEGMENT_FOOTER.unpack(bytes(raw[size - SEGMENT_FOOTER.size:]))
    table = raw[end:end + 4 * n_blocks].view("<u4")
    if foot_magic != SEGMENT_FOOTER_MAGIC or k != n_blocks or foot_sum != checksum or zlib.crc32(table) != checksum:
        raise damaged("its footer or block table fails its checksum")
    regions = [("fences", SEGMENT_HEADER_SIZE), ("hashes", data_off), ("tracks", data_off + 4 * n),
               ("times", data_off + 8 * n)]
    sums = BlockSums(path, raw, table, block, end, checksum, regions)
    sums.check_range(SEGMENT_HEADER_SIZE, data_off)  # the fences steer every lookup: checked now
    if end - SEGMENT_HEADER_SIZE <= CHECK_AT_OPEN:
        sums.check_all()
    fences = raw[SEGMENT_HEADER_SIZE:data_off].view("<u4") if n else None
    if n == 0:
        return Segment(path, Postings.empty(), fences, step, data_off, sums)
    m = raw[data_off:end].view("<u4").reshape(3, n)
    return Segment(path, Postings(m[0], m[1], m[2]), fences, step, data_off, sums)


def _read(seg: Segment, row: int, lo: int, hi: int) -> np.ndarray:
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
    return buf[start - a:stop - a].view("<u4")


def _pwrite(fd: int, a: np.ndarray, offset: int) -> None:
    buf = memoryview(np.ascontiguousarray(a, dtype="<u4")).cast("B")
    while buf.nbytes:
        k = os.pwrite(fd, buf, offset)
        buf, offset = buf[k:], offset + k


#: Bytes read at a time to sum a merged segment's blocks.
_SUM_CHUNK = 1024 * BLOCK_SIZE


def merge_segments(dest: Path, parts: Sequence[Segment], *, dead: np.ndarray | None = None) -> tuple[int, int]:
    """Merge sorted segments into one at ``dest``, dropping postings of ``dead`` tracks.

    Works hash range by hash range with plain reads and writes (at most
    :data:`MERGE_CHUNK` postings in memory, no growing memory maps), so merging
    a 1,000-hour index needs well under 100 MB. Every block read from a part is
    checked against its checksum first (damage is never copied into a segment
    with fresh checksums); the output's block sums are computed from the file
    as written, read back.

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
    end = data_off + 12 * n_live
    all_tracks = np.zeros(0, dtype=np.uint32)

    tmp = _tmp_name(dest)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, end + 4 * _n_blocks(end, BLOCK_SIZE) + SEGMENT_FOOTER.size)
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
        summer = _Summer()  # the block sums of what is on disk now (read back: the page cache has it)
        for off in range(SEGMENT_HEADER_SIZE, end, _SUM_CHUNK):
            summer.feed(os.pread(fd, min(_SUM_CHUNK, end - off), off))
        tail, checksum = _tail(summer.table())
        os.pwrite(fd, tail, end)
        os.pwrite(fd, _header(n_live, all_tracks.shape[0], step, checksum), 0)
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
