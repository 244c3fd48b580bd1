"""The fingerprint index: a SQLite catalogue plus immutable memory-mapped posting segments.

* Readers take a **snapshot** (segment list, track table, tombstones) when they
  open and on :meth:`Index.refresh`; they never block on a writer and never see
  a half-written segment (a segment becomes visible only through the SQLite
  commit that registers it, after its file was fsynced and renamed).
* One **writer** at a time (an ``flock`` on ``write.lock``): it writes a
  segment file (tmp → fsync → rename → fsync dir), then registers the segment
  and its tracks in one SQLite transaction. On taking the lock it deletes
  segment files no committed transaction refers to (left by a crash).
* Removing a track marks it ``removed`` (a tombstone filtered at lookup);
  :meth:`Index.compact` rewrites the segments without it.
* Small segments are merged automatically (size-tiered: when
  :data:`MERGE_FANIN` segments share a size tier they become one), so the
  number of segments stays logarithmic in the index size.
* Damage is refused, never answered from: segments and profiles carry
  checksums (:mod:`songmine.fingerprint.index.segments`), a damaged catalogue page is
  caught where SQLite reports it; both raise
  :class:`~songmine.errors.IndexCorruptError`, whose message names the part
  and how to recover (``songmine verify``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import logging
import math
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import IndexCorruptError, IndexFormatError, IndexTooNewError, ParameterError, SongmineError
from ...methods import DEFAULT_METHOD, Method, get_method, method_of_config, register_method, resolve
from ..postings import Postings, rarest_within
from ..profiles import PROFILE_VERSION, Profile, n_bands
from .schema import (
    CATALOG_NAME,
    FORMAT_VERSION,
    LOCK_NAME,
    SEGMENT_DIR,
    SEGMENT_VERSION,
    STATUS_OK,
    STATUS_REMOVED,
    TRACKS_REWRITES_DDL,
    TRANSIENT_SEGMENTS_DDL,
    migrate,
)
from .segments import Segment, fsync_dir, merge_segments, open_segment, run_bounds, segment_checksum, write_segment
from .tracktable import TrackRecord, TrackTable

__all__ = [
    "Index",
    "TrackRecord",
    "CompactReport",
    "Finding",
    "UnknownTrackError",
    "IndexLockedError",
    "MERGE_FANIN",
]

log = logging.getLogger(__name__)

#: Segments in one size tier that trigger an automatic merge.
MERGE_FANIN = 8
#: Postings of the smallest tier (segments below this are all "tier 0").
MERGE_BASE = 200_000


def _config_class(method: str) -> type:
    """The config class an index of ``method`` stores (:mod:`songmine.methods`)."""
    try:
        m = get_method(method)
        if m.config is None:
            raise ParameterError(f"method {method!r} keeps no index")
        return resolve(m.config)
    except ParameterError as exc:
        raise IndexFormatError(f"fingerprint method {method!r}: {exc}") from None


def _keeps_payloads(method: str) -> bool:
    """Whether an index of ``method`` keeps a payload per track (:attr:`songmine.methods.Method.payload`)."""
    try:
        return get_method(method).payload is not None
    except ParameterError:
        return False


def _method_of(config: Any) -> str:
    return method_of_config(config).name


def _config_json(config: Any) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


#: SQLite's primary result codes for a damaged database file.
_SQLITE_DAMAGED = {11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}


def _catalogue_damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_DAMAGED
    return "malformed" in str(exc) or "not a database" in str(exc)


def _guarded(fn):
    """Turn damage met inside an :class:`Index` method into one IndexCorruptError that says how to recover.

    A damaged catalogue page surfaces as ``sqlite3.DatabaseError`` wherever
    SQLite reads it; a segment's as IndexCorruptError from the segment. Both
    leave here with the index's recovery advice appended (once).
    """

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except IndexCorruptError as exc:
            if getattr(exc, "advised", False):
                raise
            raise self._advise(exc) from exc
        except sqlite3.DatabaseError as exc:
            if not _catalogue_damaged(exc):
                raise
            raise self._advise(
                IndexCorruptError(f"{self._db_path}: the catalogue is damaged ({exc})", part=str(self._db_path))
            ) from exc

    return wrapper


#: Segment files already warned about (no checksums): once per process each.
_WARNED_UNCHECKED: set[str] = set()


class UnknownTrackError(ParameterError, KeyError):
    """A track id that is not in the index."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IndexLockedError(SongmineError):
    """Another process is writing to the index."""


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What :meth:`Index.compact` did."""

    segments_before: int
    segments_after: int
    postings_before: int
    postings_after: int
    tracks_purged: int
    bytes_before: int
    bytes_after: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem :meth:`Index.verify` found.

    ``kind``: ``catalogue`` (SQLite finds the catalogue damaged), ``segment``
    (a segment file fails a check), ``profile`` (a profile fails its
    checksum), ``payload`` (a payload fails its checksum, or a track of a
    payload method has none), ``track`` (the catalogue and the segments disagree about a
    track), ``lost`` (tracks whose postings were in damaged segments),
    ``orphan`` (a segment file nobody registered). ``tracks``: the track ids
    concerned.
    """

    part: str
    problem: str
    kind: str
    tracks: tuple[int, ...] = ()


def _stat(path: Path) -> tuple[int, int, int] | None:
    """What tells a file written since: (size, mtime, inode); None when it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _quick_check(path: Path) -> str | None:
    """SQLite's ``quick_check`` of a catalogue on a read-only connection of its own: None, or the problem."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if not _catalogue_damaged(exc):
            raise
        return str(exc)
    return None if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows[:3])


def _detail(message: str, path: Path) -> str:
    """A segment error's message without the path it starts with (the finding names the part)."""
    return message.removeprefix(f"{path}: ").removeprefix(f"{path}")


@dataclass(frozen=True, slots=True)
class _Segment:
    segment_id: int
    file: str
    n_postings: int
    data: Segment


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What a reader sees between two refreshes (replaced as a whole, never mutated)."""

    generation: int
    segments: tuple[_Segment, ...]
    tracks: TrackTable
    dead: np.ndarray  # dead[track_id] is True for removed tracks (shorter arrays: the rest live)
    tracks_rewrites: int | None = None  # the catalogue's count of track rewrites when read (None: unknown)


@dataclass(frozen=True, slots=True)
class NewTrack:
    """A fingerprinted file waiting to be committed (built by :mod:`songmine.index.build`)."""

    path: str
    sha256: str
    size: int
    mtime_ns: int
    duration_s: float
    title: str | None
    artist: str | None
    album: str | None
    hashes: np.ndarray
    times: np.ndarray
    profile: bytes | None = None  # songmine.verify.Profile.to_bytes() (landmark indexes)
    payload: bytes | None = None  # the track's data for a method whose index is not postings (Method.payload)
    payload_version: int = 1


_TRACK_COLS = "track_id, path, sha256, duration_s, title, artist, album, n_hashes, status"
#: Catalogue rows turned into a track table at a time (bounds what a refresh holds as Python tuples).
_TRACK_CHUNK = 8192
#: What a writer adds to a catalogue made before them (``schema.py``): the table and the triggers.
_ADDITIONS = (
    "transient_segments",
    "tracks_rewritten_by_update",
    "tracks_rewritten_by_delete",
    "tracks_rewritten_by_insert",
)


class Index:
    """A fingerprint index directory (see the module docstring and ``docs/index.md``).

    Parameters
    ----------
    path : str or PathLike
        The index directory.
    create : bool
        Create the index when it does not exist (with ``config``). When it
        exists and ``config`` is given, the stored config must be equal.
    config : FingerprintConfig or None
        Fingerprint configuration of a new index (default: the landmarks
        method's defaults).

    Raises
    ------
    IndexFormatError
        Missing index (without ``create``), unknown format version, another
        config than the stored one, or damaged files.

    Examples
    --------
    >>> import tempfile
    >>> with Index(tempfile.mkdtemp() + "/ix", create=True, config=_DemoConfig()) as ix:
    ...     ix.n_tracks, ix.n_postings
    (0, 0)
    """

    @_guarded
    def __init__(
        self, path: str | os.PathLike[str], *, create: bool = False, config: Any = None, _salvage: bool = False
    ):
        self.path = Path(path).expanduser()
        # salvage (songmine verify): damaged segments are left out of the snapshot and listed here
        self._salvage = _salvage
        self.damaged: dict[str, str] = {}
        self._db_path = self.path / CATALOG_NAME
        self._seg_dir = self.path / SEGMENT_DIR
        self._mutex = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._conn: sqlite3.Connection | None = None
        self._snap = _Snapshot(-1, (), TrackTable(()), np.zeros(0, dtype=bool))
        self._config: Any = None
        #: (size, mtime, inode) of each file as it was checked: a change means it was written since
        self._stats: dict[Path, tuple[int, int, int]] = {}

        exists = self._db_path.exists()
        #: True when this object created the index (see :meth:`discard_if_empty`).
        self.created = False
        self._created_dir = not self.path.exists()
        if not exists and not create:
            if self.path.exists() and not self.path.is_dir():
                raise IndexFormatError(f"{self.path}: not an index directory")
            raise IndexFormatError(
                f"{self.path}: no index here (create one with `songmine index DIR --index {self.path}`)"
            )
        if not exists:
            self._create(config)
            self.created = True
        self._conn = self._connect()
        try:
            self._check_version()
            self.method = self._setting("method")
            self._config_json = self._setting("config")
            if config is not None and _config_json(config) != self._config_json:
                raise IndexFormatError(
                    f"{self.path}: index was built with another fingerprint config "
                    f"({self.method} {self._config_json}); refusing {_config_json(config)}"
                )
            self.refresh()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self._db_path, isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(f"{self._db_path}: not a songmine catalogue ({exc})") from exc
        return conn

    def _create(self, config: Any) -> None:
        if config is None:
            config = _config_class(DEFAULT_METHOD)()
        method = _method_of(config)
        if self.path.exists() and not self.path.is_dir():
            raise IndexFormatError(f"{self.path}: exists and is not a directory")
        self._seg_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._db_path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:  # lost a creation race otherwise
                migrate(conn, from_version=0)
                settings = {
                    "method": method,
                    "config": _config_json(config),
                    "format_version": str(FORMAT_VERSION),
                    "generation": "0",
                    "next_track_id": "1",
                    "next_segment_id": "1",
                    "created": repr(time.time()),
                }
                conn.executemany("INSERT INTO settings(key, value) VALUES (?, ?)", settings.items())
            conn.execute("COMMIT")
        finally:
            conn.close()
        fsync_dir(self.path)

    def _check_version(self) -> None:
        try:
            v = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(f"{self._db_path}: not a songmine catalogue ({exc})") from exc
        if v == 0:
            raise IndexFormatError(f"{self._db_path}: not a songmine catalogue (no schema version)")
        if v > FORMAT_VERSION:
            raise IndexTooNewError(
                f"{self.path}: index format version {v} is newer than this songmine supports ({FORMAT_VERSION})"
            )
        if v < FORMAT_VERSION:
            with self._writing():
                self._conn.execute("BEGIN IMMEDIATE")
                migrate(self._conn, from_version=v)
                self._conn.execute("COMMIT")

    @_guarded
    def _setting(self, key: str) -> str:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise IndexFormatError(f"{self._db_path}: setting {key!r} is missing")
        return row[0]

    def _advise(self, exc: IndexCorruptError) -> IndexCorruptError:
        """``exc`` with how to recover appended (marked, so that it is appended once)."""
        if exc.part == str(self._db_path):
            how = (
                f"rebuild the index: move {self.path} away and run `songmine index <music folders> --index "
                f"{self.path}` (`songmine verify --index {self.path}` shows what is damaged)"
            )
        else:
            how = (
                f"run `songmine verify --index {self.path} --repair`, then `songmine index <music folders> "
                f"--index {self.path}` to index again what the damaged part held (or rebuild the index)"
            )
        new = IndexCorruptError(f"{exc}; to recover, {how}", part=exc.part)
        new.advised = True
        return new

    # snapshot parts (see refresh)
    @property
    def _segments(self) -> tuple[_Segment, ...]:
        return self._snap.segments

    @property
    def _tracks(self) -> TrackTable:
        return self._snap.tracks

    @property
    def _dead(self) -> np.ndarray:
        return self._snap.dead

    @property
    def generation(self) -> int:
        """The catalogue's commit counter as this object sees it: changes whenever another writer commits."""
        return self._snap.generation

    @_guarded
    def committed_generation(self) -> int:
        """The catalogue's commit counter now, in one read; this object's snapshot stays as it is.

        Larger than :attr:`generation` when some writer committed since the
        snapshot was taken: a server checks it per request (a few µs) to know
        when to open a fresh reader.
        """
        with self._mutex:
            return int(self._setting("generation"))

    # ----------------------------------------------------------- public state
    @property
    def config(self) -> Any:
        """The fingerprint config stored in the index (queries must use the same)."""
        if self._config is None:
            self._config = _config_class(self.method).from_dict(json.loads(self._config_json))
        return self._config

    @property
    def n_tracks(self) -> int:
        """Live tracks (removed ones excluded)."""
        return self._tracks.n_live

    @property
    def n_postings(self) -> int:
        """Postings stored in the segments (removed tracks' postings count until ``compact``)."""
        return sum(s.n_postings for s in self._segments)

    @property
    def n_segments(self) -> int:
        return len(self._segments)

    @property
    def duration_s(self) -> float:
        """Total audio of the live tracks, in seconds."""
        return self._tracks.live_duration_s

    @property
    def size_bytes(self) -> int:
        """Bytes on disk: catalogue (with its WAL) plus registered segments."""
        total = 0
        for p in [self._db_path, self._db_path.with_name(CATALOG_NAME + "-wal")]:
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
        for s in self._segments:
            with contextlib.suppress(FileNotFoundError):
                total += (self._seg_dir / s.file).stat().st_size
        return total

    def track(self, track_id: int) -> TrackRecord:
        """The record of ``track_id`` (live or removed) in the current snapshot.

        Raises
        ------
        UnknownTrackError
            When the id is not in the index.
        """
        try:
            return self._tracks[int(track_id)]
        except KeyError:
            raise UnknownTrackError(f"track_id={track_id} is not in the index {self.path}") from None

    def tracks(self) -> list[TrackRecord]:
        """Live tracks, by id."""
        return [self._tracks[i] for i in self._tracks.ids_where(live=True)]

    def track_ids(self) -> np.ndarray:
        """Ids of the live tracks, ascending: what :meth:`tracks` lists, without making a record of each
        (8 bytes a track; a page of them is then read with :meth:`track`)."""
        return self._tracks.live_ids()

    @_guarded
    def profile(self, track_id: int) -> Any:
        """The stored :class:`songmine.verify.Profile` of ``track_id``, or None.

        None for a track indexed before profiles existed (or with another
        profile version), and for indexes of other methods.

        Raises
        ------
        IndexCorruptError
            When the stored profile fails its checksum.
        """
        with self._mutex:
            row = self._conn.execute(
                "SELECT data, checksum FROM profiles WHERE track_id = ? AND version = ?",
                (int(track_id), PROFILE_VERSION),
            ).fetchone()
        if row is None:
            return None
        data, checksum = row
        if checksum is not None and zlib.crc32(data) != checksum:  # None: stored before profiles had checksums
            raise IndexCorruptError(
                f"{self._db_path}: the profile of track {int(track_id)} is damaged (fails its checksum)",
                part=f"profile of track {int(track_id)}",
            )
        return Profile.from_bytes(data, n_bands(self.config.sr))

    @_guarded
    def payloads(self) -> dict[int, tuple[int, bytes]]:
        """``{track_id: (version, data)}`` of every live track's payload (methods whose index is not postings).

        Each blob is checked against its CRC-32 as it is read.

        Raises
        ------
        IndexCorruptError
            A payload fails its checksum.
        """
        snap = self._snap
        with self._mutex:
            rows = self._conn.execute("SELECT track_id, version, data, checksum FROM payloads").fetchall()
        out = {}
        for tid, version, data, checksum in rows:  # loop over tracks
            r = snap.tracks.get(tid)
            if r is None or r.status != STATUS_OK:
                continue
            if zlib.crc32(data) != checksum:
                raise IndexCorruptError(
                    f"{self._db_path}: the payload of track {tid} is damaged (fails its checksum)",
                    part=f"payload of track {tid}",
                )
            out[int(tid)] = (int(version), bytes(data))
        return out

    @_guarded
    def landmarks(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """``{track_id: (hashes, times)}`` of every live track, read from the stored postings.

        What the indexer stored (``uint32``, in no particular order), nothing
        decoded; e.g. for :func:`songmine.minhash.dedupe.dedupe_index`.
        """
        snap = self._snap
        if not snap.segments:
            return {}
        ps = [s.data.decode() for s in snap.segments]  # everything is read: everything is checked
        tr = np.concatenate([p.tracks for p in ps])
        order = np.argsort(tr, kind="stable")
        tr = tr[order]
        h = np.concatenate([p.hashes for p in ps])[order]
        t = np.concatenate([p.times for p in ps])[order]
        del ps
        ids, starts = np.unique(tr, return_index=True)
        ends = np.append(starts[1:], tr.shape[0])
        live = {k for k, r in snap.tracks.items() if r.status == STATUS_OK}
        return {
            int(i): (h[a:b], t[a:b]) for i, a, b in zip(ids.tolist(), starts.tolist(), ends.tolist()) if i in live
        }  # loop over tracks

    # ----------------------------------------------------------------- lookup
    @_guarded
    def lookup(
        self, hashes: np.ndarray, max_per_hash: int | None = None, max_hits: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All live postings whose hash is in ``hashes``, over every segment.

        Same semantics as :meth:`songmine.postings.Postings.lookup`: hits come
        grouped by query position (ascending); ``max_per_hash`` skips query
        hashes with more stored postings than that (counted over all segments).
        Postings of removed tracks are filtered out. ``max_hits`` is a hit
        budget filled with the rarest query hashes first
        (:func:`songmine.postings.rarest_within`; counted over all segments,
        before removed tracks are filtered). What a lookup reads of a segment
        not checked whole yet is checked first (:meth:`Segment.check_bounds`,
        :meth:`Segment.check_runs`): damage raises IndexCorruptError.

        Parameters
        ----------
        hashes : np.ndarray [shape=(m,), dtype=uint32]
        max_per_hash : int or None
        max_hits : int or None

        Returns
        -------
        query_pos : np.ndarray [shape=(k,), dtype=int64]
        tracks, times : np.ndarray [shape=(k,), dtype=uint32]
        """
        q = np.asarray(hashes, dtype=np.uint32).ravel()
        snap = self._snap  # lookups read one immutable snapshot, even while another thread refreshes
        segs = snap.segments
        if q.shape[0] == 0 or not segs:
            z = np.zeros(0, dtype=np.uint32)
            return np.zeros(0, dtype=np.int64), z, z
        uq, inv = np.unique(q, return_inverse=True)  # sorted keys: searchsorted is cache-friendly
        datas = [s.data for s in segs]
        los, his = run_bounds(datas, uq)  # (segments, unique keys), all segments at once
        unchecked = [s for s, d in enumerate(datas) if not d.checked]
        for s in unchecked:  # loop over segments
            datas[s].check_bounds(uq, los[s], his[s])
        cnts = his - los
        per_u = cnts.sum(axis=0)
        if max_per_hash is not None:
            common = per_u > max_per_hash
            cnts[:, common] = 0
            per_u = np.where(common, 0, per_u)
        mult = np.bincount(inv, minlength=uq.shape[0]) if max_hits is not None else None
        if max_hits is not None and int(per_u @ mult) > max_hits:
            skip = ~rarest_within(per_u, mult, max_hits)
            cnts[:, skip] = 0
            per_u = np.where(skip, 0, per_u)
        for s in unchecked:  # loop over segments: what is read below
            used = cnts[s] > 0
            datas[s].check_runs(los[s][used], his[s][used])
        per_q = per_u[inv]
        total = int(per_q.sum())
        if total == 0:
            z = np.zeros(0, dtype=np.uint32)
            return np.zeros(0, dtype=np.int64), z, z
        query_pos = np.repeat(np.arange(q.shape[0], dtype=np.int64), per_q)
        # the hits segment by segment (each segment's query positions ascending), then put in their place:
        # grouped by query position, segments in order within a group (a compacted index's order)
        c = cnts[:, inv]  # (segments, query positions)
        flat = c.ravel()
        run0 = np.cumsum(flat) - flat  # where each (segment, query position) run begins, segment-major
        ramp = np.arange(total, dtype=np.int64)
        src = np.repeat(los[:, inv].ravel() - run0, flat) + ramp  # row of each hit in its segment
        if len(segs) == 1:
            out_tracks, out_times = datas[0].gather(src)
        else:
            # where each run goes in the output: its query position's block, after the earlier segments' hits
            dst_run = (np.cumsum(per_q) - per_q) + (np.cumsum(c, axis=0) - c)
            dst = np.repeat(dst_run.ravel() - run0, flat) + ramp
            ends = np.cumsum(c.sum(axis=1)).tolist()
            out_tracks = np.empty(total, dtype=np.uint32)
            out_times = np.empty(total, dtype=np.uint32)
            for d, a, b in zip(datas, [0, *ends[:-1]], ends):  # loop over segments
                if b > a:
                    out_tracks[dst[a:b]], out_times[dst[a:b]] = d.gather(src[a:b])
        dead = snap.dead
        if dead.shape[0]:
            inside = out_tracks < dead.shape[0]
            keep = np.ones(total, dtype=bool)
            keep[inside] = ~dead[out_tracks[inside]]
            query_pos, out_tracks, out_times = query_pos[keep], out_tracks[keep], out_times[keep]
        return query_pos, out_tracks, out_times

    @_guarded
    def counts(self, hashes: np.ndarray) -> np.ndarray:
        """Postings of each hash over every segment: what :meth:`lookup`'s ``max_per_hash`` and
        ``max_hits`` count (postings of removed tracks included, as there).

        Reads only the fences and bounds (checked as :meth:`lookup` checks them), no posting.

        Returns
        -------
        np.ndarray [shape=(m,), dtype=int64]
        """
        q = np.asarray(hashes, dtype=np.uint32).ravel()
        segs = self._snap.segments
        if q.shape[0] == 0 or not segs:
            return np.zeros(q.shape[0], dtype=np.int64)
        uq, inv = np.unique(q, return_inverse=True)
        datas = [s.data for s in segs]
        los, his = run_bounds(datas, uq)
        for s, d in enumerate(datas):  # loop over segments
            if not d.checked:
                d.check_bounds(uq, los[s], his[s])
        return (his - los).sum(axis=0).astype(np.int64)[inv]

    # ---------------------------------------------------------------- refresh
    @_guarded
    def refresh(self) -> bool:
        """Pick up what other writers committed since the last snapshot.

        Returns True when the snapshot changed. A reader keeps answering from
        its old snapshot until it calls this (old segment files stay readable
        through their memory maps even after a compaction unlinks them).

        Raises
        ------
        IndexCorruptError
            A segment is missing, cut short, fails a checksum, or is not the
            one the catalogue registered.
        """
        with self._mutex:
            for attempt in range(20):
                conn = self._conn
                conn.execute("BEGIN")  # one read snapshot for all three reads
                unchanged = False
                try:
                    gen = int(self._setting("generation"))
                    unchanged = gen == self.generation
                    if unchanged:
                        return False
                    seg_rows = conn.execute(
                        "SELECT segment_id, file, n_postings, checksum FROM segments ORDER BY segment_id"
                    ).fetchall()
                    tracks, rewrites = self._read_tracks()
                finally:
                    conn.execute("COMMIT")
                    if unchanged:
                        self._recheck_written()
                old = {s.file: s for s in self._segments}
                try:
                    segs = self._open_segments(seg_rows, old)
                except IndexFormatError:
                    # a concurrent compaction unlinked a file after our read: read again
                    if attempt < 19 and any(not (self._seg_dir / r[1]).exists() for r in seg_rows):
                        time.sleep(0.05)
                        continue
                    raise
                removed = tracks.ids_where(live=False)
                dead = np.zeros(max(removed) + 1 if removed else 0, dtype=bool)
                dead[removed] = True
                self._snap = _Snapshot(gen, tuple(segs), tracks, dead, rewrites)  # one assignment: old or new
                self._stats = {
                    p: st
                    for p in [self._db_path, *(self._seg_dir / g.file for g in segs)]
                    if (st := _stat(p)) is not None
                }
                return True
            raise IndexFormatError(f"{self.path}: could not take a consistent snapshot")  # pragma: no cover

    def _read_tracks(self) -> tuple[TrackTable, int | None]:
        """The catalogue's tracks (inside refresh's read transaction) and its count of track rewrites.

        When no track row was changed or deleted since this snapshot was read (the count is the
        same), the tracks committed since are the rows with higher ids: only those are read. Rows
        are read a chunk at a time either way.
        """
        row = self._conn.execute("SELECT value FROM settings WHERE key = 'tracks_rewrites'").fetchone()
        rewrites = None if row is None else int(row[0])
        old = self._snap.tracks
        if rewrites is not None and rewrites == self._snap.tracks_rewrites:
            parts = [old]
            cur = self._conn.execute(
                f"SELECT {_TRACK_COLS} FROM tracks WHERE track_id > ? ORDER BY track_id", (old.last_id,)
            )
        else:
            parts = []
            cur = self._conn.execute(f"SELECT {_TRACK_COLS} FROM tracks ORDER BY track_id")
        while chunk := cur.fetchmany(_TRACK_CHUNK):
            parts.append(TrackTable(chunk))
        return TrackTable.concat(parts), rewrites

    def _recheck_written(self) -> None:
        """Check again the files of the snapshot written since they were checked (no commit did it).

        Segments are never written once published, and the catalogue changes with the generation:
        a file changed in place under an unchanged generation is damage, which this process's
        memory maps and snapshot would answer from silently. A changed segment is checked whole, a
        changed catalogue with SQLite's ``quick_check`` on a connection of its own (this one's page
        cache may still hold the pages as they were).

        Raises
        ------
        IndexCorruptError
            A changed file fails its check (its recorded state is kept: the next call raises again).
        """
        for path, was in list(self._stats.items()):
            now = _stat(path)
            if now is None or now == was:  # gone: a compaction's (the generation moves with it)
                continue
            if path == self._db_path:
                problem = _quick_check(path)
                if problem:
                    raise IndexCorruptError(f"{path}: the catalogue is damaged ({problem})", part=str(path))
            else:
                data = open_segment(path)
                if data.sums is not None:
                    data.sums.check_all()
            self._stats[path] = now

    def _reload(self) -> None:
        """Forget the snapshot (and the damage noted) and take a fresh one, every segment opened again."""
        with self._mutex:
            self._snap = _Snapshot(-1, (), TrackTable(()), np.zeros(0, dtype=bool))
            self.damaged = {}
            self.refresh()

    def _open_segments(self, rows: Sequence[tuple], old: dict[str, _Segment]) -> list[_Segment]:
        """Open the registered segments (those of ``old`` are kept), checking each against the catalogue.

        In salvage mode a damaged segment is left out and noted in :attr:`damaged`.
        """
        segs = []
        for sid, f, n, checksum in rows:  # loop over segments
            if f in old:
                segs.append(old[f])
                continue
            path = self._seg_dir / f
            try:
                try:
                    data = open_segment(path)
                except (IndexCorruptError, IndexTooNewError):  # (a newer format is not damage: nothing to repair)
                    raise
                except IndexFormatError as exc:  # a registered file missing, or not a segment: damage
                    raise IndexCorruptError(str(exc), part=str(path)) from exc
                if len(data) != n:
                    raise IndexCorruptError(
                        f"{path}: holds {len(data)} postings, the catalogue says {n}", part=str(path)
                    )
                if checksum is not None and (data.sums is None or data.sums.checksum != checksum):
                    raise IndexCorruptError(
                        f"{path}: is not the segment the catalogue registered (checksum "
                        f"{'none' if data.sums is None else data.sums.checksum}, the catalogue says {checksum})",
                        part=str(path),
                    )
            except IndexCorruptError as exc:  # (a missing file may be a concurrent compaction: refresh reads again)
                if not self._salvage:
                    raise
                self.damaged[f] = str(exc)
                continue
            if data.sums is None and str(path) not in _WARNED_UNCHECKED:
                _WARNED_UNCHECKED.add(str(path))
                log.warning(
                    "%s: written by an older songmine, without checksums (read unchecked); "
                    "`songmine compact --index %s` rewrites it with them",
                    path,
                    self.path,
                )
            segs.append(_Segment(sid, f, n, data))
        return segs

    # ----------------------------------------------------------------- writer
    @contextlib.contextmanager
    def _writing(self, timeout: float = 30.0) -> Iterator[None]:
        """Hold the index's single-writer lock (re-entrant within this object)."""
        with self._mutex:
            if self._lock_depth == 0:
                fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError as exc:
                        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                            os.close(fd)
                            raise
                        if time.monotonic() > deadline:
                            os.close(fd)
                            raise IndexLockedError(
                                f"{self.path}: another process is writing to this index (waited {timeout:g} s)"
                            ) from None
                        time.sleep(0.1)
                self._lock_fd = fd
                try:
                    self._clean_up_after_crashes()
                except BaseException:
                    self._unlock()
                    raise
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _add_to_old_catalogue(self) -> None:
        """Give a catalogue made by an older songmine what this one's writers keep up (``schema.py``)."""
        conn = self._conn
        marks = ",".join("?" * len(_ADDITIONS))
        names = {r[0] for r in conn.execute(f"SELECT name FROM sqlite_master WHERE name IN ({marks})", _ADDITIONS)}
        if len(names) == len(_ADDITIONS):
            return
        try:
            conn.executescript(f"BEGIN IMMEDIATE; {TRANSIENT_SEGMENTS_DDL}; {TRACKS_REWRITES_DDL} COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _clean_up_after_crashes(self) -> None:
        """Delete segment files no committed transaction refers to (crash leftovers), and their rows.

        Runs as the write lock is taken: no other writer is between a file and its transaction.
        """
        self._add_to_old_catalogue()
        conn = self._conn
        known = {r[0] for r in conn.execute("SELECT file FROM segments")}
        removed = 0
        for p in self._seg_dir.iterdir():
            if p.name not in known:
                p.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("removed %d unregistered segment file(s) from %s", removed, self._seg_dir)
            fsync_dir(self._seg_dir)
        if conn.execute("SELECT 1 FROM transient_segments LIMIT 1").fetchone():
            conn.execute("DELETE FROM transient_segments")

    def _transient_files(self) -> set[str] | None:
        """The segment files a writer is writing or has retired (None: no writer has made the table yet)."""
        try:
            return {r[0] for r in self._conn.execute("SELECT file FROM transient_segments")}
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise

    def _mark_transient(self, conn: sqlite3.Connection, files: Iterable[str], state: str) -> None:
        """Record that ``files`` are on disk outside any snapshot (``writing`` or ``retired``); lock held."""
        conn.executemany(
            "INSERT OR REPLACE INTO transient_segments(file, state) VALUES (?, ?)", [(f, state) for f in files]
        )

    def _unmark_transient(self, conn: sqlite3.Connection, files: Sequence[str]) -> None:
        """Forget that ``files`` are transient (registered now, or deleted): one statement, one commit."""
        if files:
            marks = ",".join("?" * len(files))
            conn.execute(f"DELETE FROM transient_segments WHERE file IN ({marks})", tuple(files))

    def _delete_retired(self, files: Sequence[str]) -> None:
        """Delete segment files a committed transaction retired, then their rows (a crash between: next writer)."""
        for f in files:  # readers that mapped them keep their maps; new snapshots don't list them
            (self._seg_dir / f).unlink(missing_ok=True)
        fsync_dir(self._seg_dir)
        self._unmark_transient(self._conn, files)

    def _next(self, key: str, n: int = 1) -> int:
        """Allocate ``n`` ids from a monotonic counter (inside a write transaction)."""
        first = int(self._setting(key))
        self._conn.execute("UPDATE settings SET value = ? WHERE key = ?", (str(first + n), key))
        return first

    def _bump_generation(self) -> None:
        self._conn.execute(
            "UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'"
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            self._bump_generation()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @_guarded
    def _add_tracks(self, new: Sequence[NewTrack], *, replace: Iterable[int] = ()) -> list[tuple[int, bool]]:
        """Commit fingerprinted files as one new segment; mark ``replace`` tracks removed.

        The segment file is durable on disk before the transaction that makes
        it (and the tracks) visible commits. Content that another writer
        committed meanwhile is not added twice. Returns ``(track_id, created)``
        per input track.
        """
        replace = list(replace)
        if not new and not replace:
            return []
        with self._writing():
            live = self._live_ids_of([t.sha256 for t in new])
            out: list[tuple[int, bool]] = []
            fresh: list[NewTrack] = []
            first_id = int(self._setting("next_track_id"))
            for t in new:
                if t.sha256 in live:
                    out.append((live[t.sha256], False))
                else:
                    live[t.sha256] = first_id + len(fresh)
                    out.append((first_id + len(fresh), True))
                    fresh.append(t)
            new = fresh
            ids = list(range(first_id, first_id + len(new)))
            seg_file = None
            n_post = 0
            if new:
                hashes = np.concatenate([t.hashes for t in new]).astype(np.uint32, copy=False)
                times = np.concatenate([t.times for t in new]).astype(np.uint32, copy=False)
                tr = np.repeat(np.asarray(ids, dtype=np.uint32), [t.hashes.shape[0] for t in new])
                postings = Postings.from_unsorted(hashes, tr, times)
                n_post = len(postings)
                if n_post:
                    seg_id = int(self._setting("next_segment_id"))
                    seg_file = f"seg-{seg_id:06d}.sgm"
                    self._mark_transient(self._conn, [seg_file], "writing")
                    write_segment(self._seg_dir / seg_file, postings)
            try:
                with self._transaction() as conn:
                    if replace:
                        conn.executemany(
                            "UPDATE tracks SET status = ? WHERE track_id = ?",
                            [(STATUS_REMOVED, int(i)) for i in replace],
                        )
                    now = time.time()
                    conn.executemany(
                        "INSERT INTO tracks(track_id, path, sha256, size, mtime_ns, duration_s, title, artist,"
                        " album, n_hashes, status, added) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        [
                            (
                                i,
                                t.path,
                                t.sha256,
                                t.size,
                                t.mtime_ns,
                                float(t.duration_s),
                                t.title,
                                t.artist,
                                t.album,
                                int(t.hashes.shape[0]),
                                STATUS_OK,
                                now,
                            )
                            for i, t in zip(ids, new)
                        ],
                    )
                    conn.executemany(
                        "INSERT INTO profiles(track_id, version, data, checksum) VALUES (?,?,?,?)",
                        [
                            (i, PROFILE_VERSION, t.profile, zlib.crc32(t.profile))
                            for i, t in zip(ids, new)
                            if t.profile is not None
                        ],
                    )
                    conn.executemany(
                        "INSERT INTO payloads(track_id, version, data, checksum) VALUES (?,?,?,?)",
                        [
                            (i, t.payload_version, t.payload, zlib.crc32(t.payload))
                            for i, t in zip(ids, new)
                            if t.payload is not None
                        ],
                    )
                    self._next("next_track_id", len(new))
                    if seg_file is not None:
                        self._next("next_segment_id")
                        conn.execute(
                            "INSERT INTO segments(segment_id, file, n_postings, n_tracks, created, checksum)"
                            " VALUES (?,?,?,?,?,?)",
                            (seg_id, seg_file, n_post, len(new), now, segment_checksum(self._seg_dir / seg_file)),
                        )
                        self._unmark_transient(conn, [seg_file])
            except BaseException:
                if seg_file is not None:
                    (self._seg_dir / seg_file).unlink(missing_ok=True)
                raise
            self.refresh()
            self._auto_merge()
        return out

    @_guarded
    def _update_paths(self, moves: Sequence[tuple[int, str, int, int]]) -> None:
        """Record new (path, size, mtime_ns) of tracks whose file moved or was touched."""
        if not moves:
            return
        with self._writing(), self._transaction() as conn:
            conn.executemany(
                "UPDATE tracks SET path = ?, size = ?, mtime_ns = ? WHERE track_id = ?",
                [(p, s, m, int(i)) for i, p, s, m in moves],
            )
        self.refresh()

    @_guarded
    def _files_at(self, paths: Sequence[str]) -> dict[str, tuple[int, int, int, str]]:
        """path -> (track_id, size, mtime_ns, sha256) of the live tracks at these paths (the catalogue's)."""
        return {r[0]: r[1:] for r in self._live_rows_where("path", paths, "path, track_id, size, mtime_ns, sha256")}

    @_guarded
    def _live_paths_with_content(self, prefix: str) -> list[str]:
        """Paths of the live tracks whose content hash starts with ``prefix`` (a range of the live-hash index)."""
        if not prefix:
            raise ValueError("the prefix of a content hash must not be empty")
        q = "SELECT path FROM tracks WHERE status = ? AND sha256 >= ? AND sha256 < ?"
        return [r[0] for r in self._conn.execute(q, (STATUS_OK, prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)))]

    def _live_id_of(self, sha: str) -> int | None:
        """The live track holding content ``sha``, if any (the catalogue's, not a snapshot's)."""
        return self._live_ids_of([sha]).get(sha)

    @_guarded
    def _live_ids_of(self, shas: Sequence[str]) -> dict[str, int]:
        """sha256 -> track_id of the live tracks with these contents (the catalogue's, not a snapshot's)."""
        return dict(self._live_rows_where("sha256", shas, "sha256, track_id"))

    def _live_rows_where(self, column: str, values: Sequence[str], columns: str) -> Iterator[tuple]:
        """``columns`` of the live tracks whose ``column`` is one of ``values`` (indexed columns only),
        500 values a statement (SQLite binds at most 32,766 parameters)."""
        for i in range(0, len(values), 500):  # loop over statements
            part = values[i : i + 500]
            marks = ",".join("?" * len(part))
            q = f"SELECT {columns} FROM tracks WHERE status = ? AND {column} IN ({marks})"
            yield from self._conn.execute(q, (STATUS_OK, *part))

    @_guarded
    def remove(self, track_ids: Iterable[int]) -> int:
        """Remove tracks (tombstones; postings go at the next :meth:`compact`).

        Returns the number of tracks newly removed (already removed ones count 0).

        Raises
        ------
        UnknownTrackError
            When an id is not in the index (nothing is changed then).
        """
        ids = sorted({int(i) for i in track_ids})
        with self._writing():
            self.refresh()
            unknown = [i for i in ids if i not in self._tracks]
            if unknown:
                raise UnknownTrackError(
                    f"track_id {', '.join(map(str, unknown))} not in the index {self.path}; nothing removed"
                )
            live = [i for i in ids if self._tracks[i].status == STATUS_OK]
            if live:
                with self._transaction() as conn:
                    conn.executemany(
                        "UPDATE tracks SET status = ? WHERE track_id = ?", [(STATUS_REMOVED, i) for i in live]
                    )
                self.refresh()
        return len(live)

    @_guarded
    def compact(self) -> CompactReport:
        """Rewrite all segments into one without removed tracks, and forget those tracks.

        A segment of an older format (versions 1-4: 12 bytes a posting, some without checksums) is
        rewritten even when alone, and profiles stored without checksums get theirs.
        """
        t0 = time.perf_counter()
        with self._writing():
            self.refresh()
            before = list(self._segments)
            bytes_before = self.size_bytes
            removed = self._tracks.ids_where(live=False)
            n_after = self._merge(before, purge=removed, force=any(s.data.version < SEGMENT_VERSION for s in before))
            self._sum_old_profiles()
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return CompactReport(
                segments_before=len(before),
                segments_after=len(self._segments),
                postings_before=sum(s.n_postings for s in before),
                postings_after=n_after,
                tracks_purged=len(removed),
                bytes_before=bytes_before,
                bytes_after=self.size_bytes,
                seconds=time.perf_counter() - t0,
            )

    def _sum_old_profiles(self) -> None:
        """Give the profiles stored before checksums existed theirs (from here on, damage to them is seen)."""
        rows = self._conn.execute("SELECT track_id, data FROM profiles WHERE checksum IS NULL").fetchall()
        if rows:
            with self._transaction() as conn:
                conn.executemany(
                    "UPDATE profiles SET checksum = ? WHERE track_id = ?",
                    [(zlib.crc32(data), tid) for tid, data in rows],
                )

    def _merge(self, segs: Sequence[_Segment], *, purge: Sequence[int] = (), force: bool = False) -> int:
        """Replace ``segs`` by one merged segment (dropping ``purge`` tracks); caller holds the lock.

        One segment and nothing to purge is left as it is, unless ``force``.
        """
        if len(segs) <= 1 and not purge and not force:
            return sum(s.n_postings for s in segs)
        dead = self._dead if len(purge) else None
        seg_id = int(self._setting("next_segment_id"))
        seg_file = f"seg-{seg_id:06d}.sgm"
        n, n_tr = 0, 0
        if segs:
            self._mark_transient(self._conn, [seg_file], "writing")
            n, n_tr = merge_segments(self._seg_dir / seg_file, [s.data for s in segs], dead=dead)
        retired = [s.file for s in segs] + ([] if n else [seg_file])
        try:
            with self._transaction() as conn:
                self._next("next_segment_id")
                conn.executemany("DELETE FROM segments WHERE segment_id = ?", [(s.segment_id,) for s in segs])
                if n:
                    conn.execute(
                        "INSERT INTO segments(segment_id, file, n_postings, n_tracks, created, checksum)"
                        " VALUES (?,?,?,?,?,?)",
                        (seg_id, seg_file, n, n_tr, time.time(), segment_checksum(self._seg_dir / seg_file)),
                    )
                if purge:
                    conn.executemany("DELETE FROM tracks WHERE track_id = ?", [(int(i),) for i in purge])
                    conn.executemany("DELETE FROM profiles WHERE track_id = ?", [(int(i),) for i in purge])
                    conn.executemany("DELETE FROM payloads WHERE track_id = ?", [(int(i),) for i in purge])
                self._unmark_transient(conn, [seg_file])
                self._mark_transient(conn, retired, "retired")
        except BaseException:
            (self._seg_dir / seg_file).unlink(missing_ok=True)
            raise
        self._delete_retired(retired)
        self.refresh()
        return n

    @_guarded
    def _merge_run(self, first_segment_id: int) -> int:
        """Merge the segments committed since ``first_segment_id`` (one indexing run's) into one.

        A run commits a segment every batch (a crash loses at most one batch; another writer can
        commit in between), and the size tiers leave up to ``MERGE_FANIN - 1`` segments per tier,
        so a one-shot run over a big library ends with several big segments; a lookup costs about
        one search per segment and key (``docs/index.md``, "Lookup"). Rewriting the run's
        postings once more at its end leaves one. Returns the number of segments merged (0 when
        the run left fewer than two).
        """
        with self._writing():
            self.refresh()
            mine = [s for s in self._segments if s.segment_id >= first_segment_id]
            if len(mine) < 2:
                return 0
            log.info("merging the %d segments of this run (%d postings)", len(mine), sum(s.n_postings for s in mine))
            self._merge(mine)
            self._auto_merge()
        return len(mine)

    def _auto_merge(self) -> None:
        """Size-tiered merging: while MERGE_FANIN segments share a tier, merge them."""
        while True:
            tiers: dict[int, list[_Segment]] = {}
            for s in self._segments:
                tier = 0 if s.n_postings <= MERGE_BASE else int(math.log(s.n_postings / MERGE_BASE, MERGE_FANIN)) + 1
                tiers.setdefault(tier, []).append(s)
            full = [segs for _, segs in sorted(tiers.items()) if len(segs) >= MERGE_FANIN]
            if not full:
                return
            log.info("merging %d segments of tier size ~%d", len(full[0]), full[0][0].n_postings)
            self._merge(full[0])

    # ------------------------------------------------------------ consistency
    def verify(self) -> list[str]:
        """Check everything; returns the problems, one line each (empty when all is well).

        Every block of every segment against its checksum, every profile
        against its own, the catalogue (SQLite's ``integrity_check``), and the
        catalogue against the segments (postings per track). Reads the whole
        index once; ``songmine verify`` runs it and can repair what it finds.
        """
        return [f"{f.part}: {f.problem}" for f in self._check()]

    def _check(self) -> list[Finding]:
        findings: list[Finding] = []
        try:
            rows = self._conn.execute("PRAGMA integrity_check(20)").fetchall()
        except sqlite3.DatabaseError as exc:
            rows = [(str(exc),)]
        if rows != [("ok",)]:
            return [Finding(CATALOG_NAME, f"SQLite finds it damaged: {r[0]}", "catalogue") for r in rows]
        bad: set[str] = set()
        for f, msg in self.damaged.items():  # salvage mode: segments that could not even be opened
            findings.append(Finding(f"{SEGMENT_DIR}/{f}", _detail(msg, self._seg_dir / f), "segment"))
            bad.add(f)
        counts: dict[int, int] = {}
        for s in self._segments:  # loop over segments
            try:
                s.data.check_all()
            except IndexCorruptError as exc:
                findings.append(
                    Finding(f"{SEGMENT_DIR}/{s.file}", _detail(str(exc), self._seg_dir / s.file), "segment")
                )
                bad.add(s.file)
                continue
            if s.data.sums is None:  # files without checksums: at least their order
                h = s.data.postings.hashes
                if len(h) > 1 and np.any(h[1:] < h[:-1]):
                    findings.append(Finding(f"{SEGMENT_DIR}/{s.file}", "hashes not sorted", "segment"))
                    bad.add(s.file)
                    continue
            for i, k in s.data.track_counts().items():
                counts[i] = counts.get(i, 0) + k
        for tid, data, checksum in self._conn.execute("SELECT track_id, data, checksum FROM profiles"):
            if checksum is not None and zlib.crc32(data) != checksum:
                findings.append(Finding(f"profile of track {tid}", "fails its checksum", "profile", (tid,)))
        with_payload = set()
        for tid, data, checksum in self._conn.execute("SELECT track_id, data, checksum FROM payloads"):
            with_payload.add(tid)
            if zlib.crc32(data) != checksum:
                findings.append(Finding(f"payload of track {tid}", "fails its checksum", "payload", (tid,)))
        if _keeps_payloads(self.method):
            for tid in (t for t in self._tracks.ids_where(live=True) if t not in with_payload):
                findings.append(Finding(f"payload of track {tid}", "is missing", "payload", (tid,)))
        lost = []
        for tid, r in sorted(self._tracks.items()):
            got = counts.pop(tid, 0)
            if got == r.n_hashes:
                continue
            if got == 0 and bad:  # its postings were in a damaged segment (a track's postings share one)
                lost.append(tid)
            else:
                findings.append(
                    Finding(
                        f"track {tid}",
                        f"({r.path}): catalogue says {r.n_hashes} postings, segments hold {got}",
                        "track",
                        (tid,),
                    )
                )
        if lost:
            ids = ", ".join(map(str, lost[:20])) + (", …" if len(lost) > 20 else "")
            findings.append(
                Finding(
                    "tracks",
                    f"{len(lost)} track(s) had their postings in the damaged segment(s): {ids}",
                    "lost",
                    tuple(lost),
                )
            )
        for tid, k in counts.items():
            findings.append(
                Finding(f"track {tid}", f"segments hold {k} postings of it, the catalogue does not know it", "track")
            )
        on_disk = [p for p in self._seg_dir.iterdir() if not p.name.startswith(".")]  # temp files: "."
        # listed before the catalogue is read: a file on disk then was, when read, being written,
        # registered (perhaps after this snapshot), or retired (deleted before its row goes)
        known = {s.file for s in self._segments} | bad | self._catalogued_files()
        for p in on_disk:
            if p.name not in known and p.exists():
                findings.append(Finding(f"{SEGMENT_DIR}/{p.name}", "segment file not in the catalogue", "orphan"))
        return findings

    def _catalogued_files(self) -> set[str]:
        """Every segment file the catalogue knows now: registered, being written or retired."""
        with self._mutex:  # one statement, one read of the catalogue: a commit between two would hide a file
            if self._transient_files() is None:
                return {r[0] for r in self._conn.execute("SELECT file FROM segments")}
            rows = self._conn.execute("SELECT file FROM segments UNION SELECT file FROM transient_segments")
            return {r[0] for r in rows}

    # -------------------------------------------------------------- lifecycle
    @_guarded
    def discard_if_empty(self) -> bool:
        """Delete the index this object created if it holds nothing, and close it.

        For a first indexing run that could read no file: it must not leave an
        empty index behind. Returns True when the index was deleted (False,
        and nothing touched, when it holds a track or a segment, or existed
        before this object opened it). The directory goes too when this
        object made it.
        """
        if not self.created:
            return False
        with self._writing():
            self.refresh()
            if self._tracks or self._segments:
                return False
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            for name in (CATALOG_NAME, CATALOG_NAME + "-wal", CATALOG_NAME + "-shm", CATALOG_NAME + "-journal"):
                (self.path / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: someone put a file there
                self._seg_dir.rmdir()
            (self.path / LOCK_NAME).unlink(missing_ok=True)
        self.close()
        if self._created_dir:
            with contextlib.suppress(OSError):
                self.path.rmdir()
        return True

    def close(self) -> None:
        """Release the catalogue connection and the memory maps."""
        with self._mutex:
            self._unlock()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._snap = _Snapshot(-1, (), TrackTable(()), np.zeros(0, dtype=bool))

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Index({str(self.path)!r}, method={getattr(self, 'method', '?')!r}, n_tracks={self.n_tracks}, "
            f"n_postings={self.n_postings}, n_segments={self.n_segments})"
        )


@dataclass(frozen=True, slots=True)
class _DemoConfig:
    """A stand-in config for this module's doctest (registered as method ``"_demo"``)."""

    def to_dict(self) -> dict:
        return {}

    @classmethod
    def from_dict(cls, d: dict) -> _DemoConfig:
        return cls()


register_method(Method("_demo", "a stand-in for this module's doctest", _DemoConfig, None, indexable=False))
