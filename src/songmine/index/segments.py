"""Immutable posting segments: write atomically, memory-map, merge with bounded memory.

A segment is one file (layout in :mod:`songmine.index.schema`) holding a
:class:`~songmine.postings.Postings` table sorted by hash. It is written to a
temporary name, fsynced, renamed into place and the directory fsynced; only
then does the writer register it in SQLite, so a crash at any point leaves
either no trace or an unregistered file that the next writer deletes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError
from ..postings import Postings
from .schema import SEGMENT_HEADER, SEGMENT_HEADER_SIZE, SEGMENT_MAGIC

__all__ = ["write_segment", "open_segment", "merge_segments", "fsync_dir"]

#: Postings handled at a time while merging (about 12 bytes each, x3 while sorting).
MERGE_CHUNK = 4_000_000


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.tmp")


def _header(n: int, n_tracks: int) -> bytes:
    return SEGMENT_HEADER.pack(SEGMENT_MAGIC, n, n_tracks)


def _publish(tmp: Path, dest: Path) -> None:
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def write_segment(dest: Path, postings: Postings) -> int:
    """Write ``postings`` (already sorted by hash) to ``dest`` atomically.

    Returns the number of bytes written.
    """
    n = len(postings)
    n_tracks = int(np.unique(postings.tracks).shape[0]) if n else 0
    tmp = _tmp_name(dest)
    with open(tmp, "wb") as fh:
        fh.write(_header(n, n_tracks))
        for a in (postings.hashes, postings.tracks, postings.times):
            fh.write(np.ascontiguousarray(a, dtype="<u4").tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    _publish(tmp, dest)
    return SEGMENT_HEADER_SIZE + 12 * n


def open_segment(path: Path) -> Postings:
    """Memory-map a segment as a read-only :class:`Postings` (no data is read yet).

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
    magic, n, _ = SEGMENT_HEADER.unpack(head)
    if magic != SEGMENT_MAGIC:
        raise IndexFormatError(f"{path}: not a songmine segment (magic {magic!r}, expected {SEGMENT_MAGIC!r})")
    expected = SEGMENT_HEADER_SIZE + 12 * n
    if size != expected:
        raise IndexFormatError(f"{path}: segment is {size} bytes, header says {expected}")
    if n == 0:
        return Postings.empty()
    m = np.asarray(np.memmap(path, dtype="<u4", mode="r", offset=SEGMENT_HEADER_SIZE, shape=(3, n)))
    return Postings(m[0], m[1], m[2])


def merge_segments(dest: Path, parts: Sequence[Postings], *, dead: np.ndarray | None = None) -> tuple[int, int]:
    """Merge sorted segments into one at ``dest``, dropping postings of ``dead`` tracks.

    Works hash range by hash range (at most :data:`MERGE_CHUNK` postings in
    memory at once), so merging a 1,000-hour index needs little memory.

    Parameters
    ----------
    dest : Path
        Where the merged segment goes (written atomically).
    parts : sequence of Postings
        Sorted inputs (typically memory-mapped segments).
    dead : np.ndarray [dtype=bool] or None
        ``dead[track_id]`` is True for tracks whose postings are dropped; track
        ids beyond its length are live.

    Returns
    -------
    n, n_tracks : int
        Postings written, distinct tracks among them.
    """
    parts = [p for p in parts if len(p)]
    total_in = sum(len(p) for p in parts)
    bounds = _hash_bounds(parts, total_in)

    def is_dead(tracks: np.ndarray) -> np.ndarray:
        if dead is None or not dead.any():
            return np.zeros(tracks.shape, dtype=bool)
        out = np.zeros(tracks.shape, dtype=bool)
        inside = tracks < dead.shape[0]
        out[inside] = dead[tracks[inside]]
        return out

    # pass 1: count live postings per chunk (reads only the tracks arrays)
    ranges = []  # per chunk: list of (lo, hi) per part
    n_live = 0
    for lo_h, hi_h in zip(bounds[:-1], bounds[1:]):
        rr = []
        for p in parts:
            lo = int(np.searchsorted(p.hashes, lo_h, side="left")) if lo_h > 0 else 0
            hi = int(np.searchsorted(p.hashes, hi_h, side="left")) if hi_h <= 0xFFFFFFFF else len(p)
            rr.append((lo, hi))
            if dead is not None and hi > lo:
                n_live += int((~is_dead(np.asarray(p.tracks[lo:hi]))).sum())
            else:
                n_live += hi - lo
        ranges.append(rr)

    all_tracks: set[int] = set()
    tmp = _tmp_name(dest)
    with open(tmp, "wb") as fh:
        fh.write(_header(n_live, 0))
        fh.truncate(SEGMENT_HEADER_SIZE + 12 * n_live)
    try:
        if n_live:
            out = np.memmap(tmp, dtype="<u4", mode="r+", offset=SEGMENT_HEADER_SIZE, shape=(3, n_live))
            pos = 0
            for rr in ranges:
                h = np.concatenate([np.asarray(p.hashes[lo:hi]) for p, (lo, hi) in zip(parts, rr)])
                tr = np.concatenate([np.asarray(p.tracks[lo:hi]) for p, (lo, hi) in zip(parts, rr)])
                t = np.concatenate([np.asarray(p.times[lo:hi]) for p, (lo, hi) in zip(parts, rr)])
                if dead is not None:
                    keep = ~is_dead(tr)
                    h, tr, t = h[keep], tr[keep], t[keep]
                order = np.argsort(h, kind="stable")
                k = order.shape[0]
                out[0, pos : pos + k] = h[order]
                out[1, pos : pos + k] = tr[order]
                out[2, pos : pos + k] = t[order]
                all_tracks.update(np.unique(tr).tolist())
                pos += k
            assert pos == n_live, (pos, n_live)
            out.flush()
            del out
        with open(tmp, "r+b") as fh:
            fh.write(_header(n_live, len(all_tracks)))
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n_live, len(all_tracks)


def _hash_bounds(parts: Sequence[Postings], total: int) -> list[int]:
    """Hash values splitting the merged table into chunks of about MERGE_CHUNK postings.

    Returned as ascending ints from 0 to 2**32 (exclusive upper bound of the last chunk).
    Sampled from the largest part, assuming similar hash distributions.
    """
    n_chunks = max(1, -(-total // MERGE_CHUNK))
    if n_chunks == 1 or not parts:
        return [0, 1 << 32]
    big = max(parts, key=len)
    qs = (np.arange(1, n_chunks) * len(big)) // n_chunks
    cuts = np.unique(np.asarray(big.hashes[qs], dtype=np.int64)).tolist()
    return [0, *[c for c in cuts if c > 0], 1 << 32]
