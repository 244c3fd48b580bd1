"""The tracks of a catalogue snapshot, kept by column: what every open index holds of every track.

A dict of record objects costs ~0.65 KB per track in every process that opens
the index (103 MB at 160,000 tracks, in each server worker); columns cost the
paths' bytes, 32 bytes a content hash and a few more (15 MB), and a
:class:`TrackRecord` is made when one is asked for. Counts and totals over the
live tracks come from the arrays. The columns come in parts of consecutive
tracks that successive snapshots share: a refresh appends the tracks
committed since without copying the rest.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .contents import ContentSet
from .schema import STATUS_OK

__all__ = ["TrackRecord", "TrackTable"]


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """One indexed file, as the catalogue knows it."""

    track_id: int
    path: str
    sha256: str
    duration_s: float
    title: str | None
    artist: str | None
    album: str | None
    n_hashes: int
    status: str


class _Strings:
    """Many strings in one UTF-8 buffer and where each starts (8 bytes a string instead of the ~57
    of a ``str`` in a list); a string is decoded when asked for. Lone surrogates (file names that
    were not valid UTF-8) round-trip."""

    __slots__ = ("_blob", "_bounds")

    def __init__(self, strings: Sequence[str]):
        n = len(strings)
        joined = "\0".join(strings).encode("utf-8", "surrogatepass")
        if joined.count(b"\0") == max(n - 1, 0):  # no string holds a NUL (no path can): one scan finds the cuts
            cuts = np.flatnonzero(np.frombuffer(joined, dtype=np.uint8) == 0)
            self._blob = joined.replace(b"\0", b"")
            # string i starts at byte cuts[i - 1] + 1 of joined, i.e. cuts[i - 1] + 1 - i without the NULs
            self._bounds = np.concatenate([[0], cuts + 1 - np.arange(1, n), [len(self._blob)]]).astype(np.int64)
        else:
            parts = [x.encode("utf-8", "surrogatepass") for x in strings]
            self._blob = b"".join(parts)
            lengths = np.fromiter((len(x) for x in parts), dtype=np.int64, count=n)
            self._bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if n == 0:
            self._bounds = np.zeros(1, np.int64)

    def __getitem__(self, i: int) -> str:
        return self._blob[int(self._bounds[i]) : int(self._bounds[i + 1])].decode("utf-8", "surrogatepass")

    @classmethod
    def concat(cls, parts: Sequence[_Strings]) -> _Strings:
        """The strings of ``parts``, in order, in one buffer."""
        out = cls.__new__(cls)
        shift = np.cumsum([0] + [len(p._blob) for p in parts]).astype(np.int64)
        out._blob = b"".join(p._blob for p in parts)
        out._bounds = np.concatenate([p._bounds[:-1] + d for p, d in zip(parts, shift)] + [shift[-1:]])
        return out


class _Digests:
    """Content hashes kept as the 32 bytes they spell (a SHA-256 in lowercase hex: 64 characters),
    fixed width, so no bounds either: 32 bytes a track instead of 72."""

    __slots__ = ("_blob",)

    def __init__(self, blob: bytes):
        self._blob = blob

    @classmethod
    def of(cls, strings: Sequence[str]) -> _Digests | None:
        """The digests of ``strings``, or None unless every one is 64 characters of lowercase hex."""
        if not all(len(x) == 64 for x in strings):
            return None
        joined = "".join(strings)
        try:
            blob = bytes.fromhex(joined)
        except ValueError:
            return None
        return cls(blob) if blob.hex() == joined else None  # (fromhex also takes capitals and spaces)

    def __getitem__(self, i: int) -> str:
        return self._blob[32 * i : 32 * i + 32].hex()

    def __len__(self) -> int:
        return len(self._blob) // 32


def _hashes(strings: Sequence[str]) -> _Digests | _Strings:
    return _Digests.of(strings) or _Strings(strings)


def _joined_hashes(parts: Sequence[_Digests | _Strings]) -> _Digests | _Strings:
    if all(isinstance(p, _Digests) for p in parts):
        return _Digests(b"".join(p._blob for p in parts))
    return _Strings.concat([p if isinstance(p, _Strings) else _Strings([p[i] for i in range(len(p))]) for p in parts])


class _Part:
    """The columns of a run of tracks with ascending ids (a table is a list of parts)."""

    __slots__ = ("_ids", "_paths", "_sha", "_dur", "_tags", "_n_hashes", "_status", "_codes", "_live")

    def __init__(self, rows: Sequence[tuple]):
        self._ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        self._paths = _Strings([r[1] for r in rows])
        self._sha = _hashes([r[2] for r in rows])
        self._dur = np.fromiter((r[3] for r in rows), dtype=np.float64, count=len(rows))
        self._tags = [
            (r[4], r[5], r[6]) if r[4] is not None or r[5] is not None or r[6] is not None else None for r in rows
        ]
        self._n_hashes = np.fromiter((r[7] for r in rows), dtype=np.int64, count=len(rows))
        names = sorted({r[8] for r in rows})
        self._status = names  # the distinct statuses; _codes indexes them
        code = {s: i for i, s in enumerate(names)}
        self._codes = np.fromiter((code[r[8]] for r in rows), dtype=np.uint8, count=len(rows))
        self._live = self._codes == code[STATUS_OK] if STATUS_OK in code else np.zeros(len(rows), dtype=bool)

    @classmethod
    def joined(cls, parts: Sequence[_Part]) -> _Part:
        """One part of the tracks of ``parts`` (ids ascending from one to the next)."""
        out = cls(())
        names = sorted({n for p in parts for n in p._status})
        code = {n: i for i, n in enumerate(names)}
        out._ids = np.concatenate([p._ids for p in parts])
        out._paths = _Strings.concat([p._paths for p in parts])
        out._sha = _joined_hashes([p._sha for p in parts])
        out._dur = np.concatenate([p._dur for p in parts])
        out._tags = [t for p in parts for t in p._tags]
        out._n_hashes = np.concatenate([p._n_hashes for p in parts])
        out._status = names
        out._codes = np.concatenate([np.array([code[n] for n in p._status], dtype=np.uint8)[p._codes] for p in parts])
        out._live = out._codes == code[STATUS_OK] if STATUS_OK in code else np.zeros(len(out._ids), dtype=bool)
        return out

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def row(self, track_id: int) -> int:
        i = int(np.searchsorted(self._ids, track_id))
        return i if i < self._ids.shape[0] and self._ids[i] == track_id else -1

    def record(self, i: int) -> TrackRecord:
        title, artist, album = self._tags[i] or (None, None, None)
        return TrackRecord(
            int(self._ids[i]),
            self._paths[i],
            self._sha[i],
            float(self._dur[i]),
            title,
            artist,
            album,
            int(self._n_hashes[i]),
            self._status[self._codes[i]],
        )

    @property
    def nbytes(self) -> int:
        strings = sum(
            len(c._blob) + (c._bounds.nbytes if isinstance(c, _Strings) else 0) for c in (self._paths, self._sha)
        )
        arrays = sum(a.nbytes for a in (self._ids, self._dur, self._n_hashes, self._codes, self._live))
        tags = sys.getsizeof(self._tags) + sum(
            sys.getsizeof(t) + sum(sys.getsizeof(x) for x in t if x is not None) for t in self._tags if t is not None
        )
        return strings + arrays + tags

    def live_digests(self) -> np.ndarray:
        """The live tracks' content hashes as rows of 32 bytes (a part whose hashes are digests)."""
        if not isinstance(self._sha, _Digests):
            raise TypeError("this part's content hashes are not all digests")
        return np.frombuffer(self._sha._blob, dtype=np.uint8).reshape(-1, 32)[self._live]

    def live_hashes(self) -> list[str]:
        return [self._sha[i] for i in np.flatnonzero(self._live).tolist()]


#: Rows of a part up to which a table joins a new part to its last one (~1.5 MB): a refresh copies at
#: most one part's worth, never the whole table, and a table of N tracks has about N / this parts.
PART_ROWS = 16_384


class TrackTable(Mapping[int, TrackRecord]):
    """``{track_id: TrackRecord}`` of a snapshot, read-only, stored by column.

    Built from the catalogue's rows ``(track_id, path, sha256, duration_s,
    title, artist, album, n_hashes, status)`` in any order; iterates in
    ascending track id. Kept in parts of consecutive tracks, so that joining
    the tracks committed since a snapshot to its table shares the old parts
    instead of copying them: a writer's table grows by its new rows alone.
    """

    __slots__ = ("_parts", "_firsts", "_n", "_n_live")

    def __init__(self, rows: Sequence[tuple]):
        if any(rows[i][0] >= rows[i + 1][0] for i in range(len(rows) - 1)):
            rows = sorted(rows, key=lambda r: r[0])
        self._set_parts([_Part(rows)] if len(rows) else [])

    def _set_parts(self, parts: list[_Part]) -> None:
        self._parts = parts
        self._firsts = np.array([p._ids[0] for p in parts], dtype=np.int64)
        self._n = sum(len(p) for p in parts)
        self._n_live = sum(int(p._live.sum()) for p in parts)

    @classmethod
    def concat(cls, tables: Sequence[TrackTable]) -> TrackTable:
        """One table of the tracks of ``tables``, whose ids ascend from one table to the next.

        What a snapshot is built from in pieces: the catalogue read a chunk of rows at a time (the
        rows of a whole catalogue as Python tuples would take ~0.6 KB a track at once), or the last
        snapshot's table followed by the tracks committed since. Parts are shared, not copied; a
        part is joined to the one before it while both together hold at most :data:`PART_ROWS`.
        """
        parts: list[_Part] = []
        for p in (p for t in tables for p in t._parts):  # loop over parts
            if parts and parts[-1]._ids[-1] >= p._ids[0]:
                raise ValueError(f"track ids do not ascend across the parts ({parts[-1]._ids[-1]} then {p._ids[0]})")
            if parts and len(parts[-1]) + len(p) <= PART_ROWS:
                parts[-1] = _Part.joined([parts[-1], p])
            else:
                parts.append(p)
        out = cls(())
        out._set_parts(parts)
        return out

    def _find(self, track_id: object) -> tuple[_Part, int] | None:
        if isinstance(track_id, bool) or not isinstance(track_id, int | np.integer):
            return None
        k = int(np.searchsorted(self._firsts, track_id, side="right")) - 1
        if k < 0:
            return None
        part = self._parts[k]
        i = part.row(track_id)
        return (part, i) if i >= 0 else None

    def __getitem__(self, track_id: int) -> TrackRecord:
        found = self._find(track_id)
        if found is None:
            raise KeyError(track_id)
        part, i = found
        return part.record(i)

    def __contains__(self, track_id: object) -> bool:
        return self._find(track_id) is not None

    def __iter__(self) -> Iterator[int]:
        for p in self._parts:  # loop over parts
            yield from p._ids.tolist()

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes the columns hold: arrays, string buffers, and the tags (Python objects, as ``sys.getsizeof``)."""
        return sum(p.nbytes for p in self._parts) + self._firsts.nbytes

    @property
    def last_id(self) -> int:
        """The highest track id (0 when empty): tracks committed later have higher ones."""
        return int(self._parts[-1]._ids[-1]) if self._parts else 0

    @property
    def n_live(self) -> int:
        """Tracks whose status is ``ok``."""
        return self._n_live

    @property
    def live_duration_s(self) -> float:
        """Seconds of audio of the tracks whose status is ``ok``."""
        return math.fsum(np.concatenate([p._dur[p._live] for p in self._parts]).tolist()) if self._parts else 0.0

    def live_contents(self) -> ContentSet:
        """The content hashes of the tracks whose status is ``ok`` (what an indexing run skips)."""
        if all(isinstance(p._sha, _Digests) for p in self._parts):
            return ContentSet((p.live_digests() for p in self._parts), count=self._n_live)
        return ContentSet.of(h for p in self._parts for h in p.live_hashes())

    def live_ids(self) -> np.ndarray:
        """Ids of the tracks whose status is ``ok``, ascending (int64; 8 bytes a track, no records made)."""
        return self._ids_with(live=True)

    def ids_where(self, *, live: bool) -> list[int]:
        """Track ids whose status is ``ok`` (``live``) or not, ascending."""
        return self._ids_with(live=live).tolist()

    def _ids_with(self, *, live: bool) -> np.ndarray:
        if not self._parts:
            return np.zeros(0, np.int64)
        return np.concatenate([p._ids[p._live if live else ~p._live] for p in self._parts])
