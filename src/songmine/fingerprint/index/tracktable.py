"""The tracks of a catalogue snapshot, kept by column: what every open index holds of every track.

A dict of record objects costs ~0.65 KB per track in every process that opens
the index (103 MB at 160,000 tracks, in each server worker); columns cost the
strings' bytes plus a few more, and a :class:`TrackRecord` is made when one is
asked for. Counts and totals over the live tracks come from the arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

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
    """Many strings in one UTF-8 buffer and their bounds (16 bytes a string instead of the ~57 of
    a ``str`` in a list); a string is decoded when asked for. Lone surrogates (file names that
    were not valid UTF-8) round-trip."""

    __slots__ = ("_blob", "_starts", "_ends")

    def __init__(self, strings: Sequence[str]):
        n = len(strings)
        joined = "\0".join(strings).encode("utf-8", "surrogatepass")
        if joined.count(b"\0") == max(n - 1, 0):  # no string holds a NUL (no path can): one scan finds the cuts
            cuts = np.flatnonzero(np.frombuffer(joined, dtype=np.uint8) == 0)
            self._blob = joined
            self._starts = np.concatenate([[0], cuts + 1]).astype(np.int64) if n else np.zeros(0, np.int64)
            self._ends = np.concatenate([cuts, [len(joined)]]).astype(np.int64) if n else np.zeros(0, np.int64)
        else:
            parts = [x.encode("utf-8", "surrogatepass") for x in strings]
            self._blob = b"".join(parts)
            self._ends = np.cumsum(np.fromiter((len(x) for x in parts), dtype=np.int64, count=n))
            self._starts = self._ends - np.fromiter((len(x) for x in parts), dtype=np.int64, count=n)

    def __getitem__(self, i: int) -> str:
        return self._blob[int(self._starts[i]) : int(self._ends[i])].decode("utf-8", "surrogatepass")

    @classmethod
    def concat(cls, parts: Sequence[_Strings]) -> _Strings:
        """The strings of ``parts``, in order, in one buffer."""
        out = cls.__new__(cls)
        shift = np.cumsum([0] + [len(p._blob) for p in parts[:-1]]).astype(np.int64)
        out._blob = b"".join(p._blob for p in parts)
        out._starts = np.concatenate([np.zeros(0, np.int64)] + [p._starts + d for p, d in zip(parts, shift)])
        out._ends = np.concatenate([np.zeros(0, np.int64)] + [p._ends + d for p, d in zip(parts, shift)])
        return out


class TrackTable(Mapping[int, TrackRecord]):
    """``{track_id: TrackRecord}`` of a snapshot, read-only, stored by column.

    Built from the catalogue's rows ``(track_id, path, sha256, duration_s,
    title, artist, album, n_hashes, status)`` in any order; iterates in
    ascending track id.
    """

    __slots__ = ("_ids", "_paths", "_sha", "_dur", "_tags", "_n_hashes", "_status", "_codes", "_live")

    def __init__(self, rows: Sequence[tuple]):
        if any(rows[i][0] >= rows[i + 1][0] for i in range(len(rows) - 1)):
            rows = sorted(rows, key=lambda r: r[0])
        self._ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        self._paths = _Strings([r[1] for r in rows])
        self._sha = _Strings([r[2] for r in rows])
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
    def concat(cls, parts: Sequence[TrackTable]) -> TrackTable:
        """One table of the tracks of ``parts``, whose ids ascend from one part to the next.

        What a snapshot is built from in pieces: the catalogue read a chunk of rows at a time (the
        rows of a whole catalogue as Python tuples would take ~0.6 KB a track at once), or the last
        snapshot's table followed by the tracks committed since.
        """
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        for a, b in zip(parts, parts[1:]):
            if a._ids[-1] >= b._ids[0]:
                raise ValueError(f"track ids do not ascend across the parts ({a._ids[-1]} then {b._ids[0]})")
        out = cls(())
        if not parts:
            return out
        names = sorted({n for p in parts for n in p._status})
        code = {n: i for i, n in enumerate(names)}
        out._ids = np.concatenate([p._ids for p in parts])
        out._paths = _Strings.concat([p._paths for p in parts])
        out._sha = _Strings.concat([p._sha for p in parts])
        out._dur = np.concatenate([p._dur for p in parts])
        out._tags = [t for p in parts for t in p._tags]
        out._n_hashes = np.concatenate([p._n_hashes for p in parts])
        out._status = names
        out._codes = np.concatenate([np.array([code[n] for n in p._status], dtype=np.uint8)[p._codes] for p in parts])
        out._live = out._codes == code[STATUS_OK] if STATUS_OK in code else np.zeros(len(out._ids), dtype=bool)
        return out

    def _row(self, track_id: object) -> int:
        if isinstance(track_id, bool) or not isinstance(track_id, int | np.integer):
            return -1
        i = int(np.searchsorted(self._ids, track_id))
        return i if i < self._ids.shape[0] and self._ids[i] == track_id else -1

    def __getitem__(self, track_id: int) -> TrackRecord:
        i = self._row(track_id)
        if i < 0:
            raise KeyError(track_id)
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

    def __contains__(self, track_id: object) -> bool:
        return self._row(track_id) >= 0

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids.tolist())

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @property
    def last_id(self) -> int:
        """The highest track id (0 when empty): tracks committed later have higher ones."""
        return int(self._ids[-1]) if self._ids.shape[0] else 0

    @property
    def n_live(self) -> int:
        """Tracks whose status is ``ok``."""
        return int(self._live.sum())

    @property
    def live_duration_s(self) -> float:
        """Seconds of audio of the tracks whose status is ``ok``."""
        return float(self._dur[self._live].sum())

    def ids_where(self, *, live: bool) -> list[int]:
        """Track ids whose status is ``ok`` (``live``) or not, ascending."""
        return self._ids[self._live if live else ~self._live].tolist()
