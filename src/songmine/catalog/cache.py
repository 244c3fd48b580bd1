"""The catalogue's parquet cache: file names, eviction, listing and clearing.

:func:`songmine.catalog.load` keeps a validated copy of every table it loads in
``songmine.paths.cache_dir()/catalog`` (``$SONGMINE_CACHE/catalog``, else e.g.
``~/.cache/songmine/catalog``), one parquet file per (source, ``nonfinite``)::

    <table>-<source key>-v<format>-<identity key>.parquet

* ``source key``: 16 hex digits of SHA-1 over (absolute source path, zip member,
  ``nonfinite``) — the same for every version of one source file;
* ``format``: :data:`CACHE_FORMAT`, bumped whenever the cached representation
  changes (what the loaders produce, or :mod:`songmine.catalog.parquet`'s encoding);
* ``identity key``: 16 hex digits of SHA-1 over (size, mtime, zip member CRC and
  size, ...): it changes whenever the source's bytes may have changed.

Writing a new entry (temp file in the same directory → ``os.replace``) evicts, in
that directory only and only among names of the shapes above:

* the entries of the *same source key* and format (older versions of the same file);
* entries of *older* formats, and files of the pre-v5 naming
  (``<table>-<20 hex>.parquet``), which nothing reads any more;
* temp files of writers that died, once older than :data:`TEMP_GRACE_S`.

Entries of a newer format (a newer songmine sharing the cache dir) are left alone.
Concurrent processes stay safe: an entry is only ever created by a rename, never
modified in place, so a reader sees a whole old file or a whole new one; on POSIX an
entry evicted while another process has it memory-mapped stays readable by that
process until it unmaps it (the inode lives on); an entry that vanishes between a
reader's ``exists()`` and its open is a cache miss, and a delete that fails (another
process got there first; Windows refusing to delete an open file) is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..paths import cache_dir
from .parquet import FRAME_METADATA_KEY, read_frame, write_frame
from .sources import TableSource

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_FORMAT",
    "CacheEntry",
    "TEMP_GRACE_S",
    "cache_root",
    "clear",
    "entries",
    "entry_for",
    "entry_path",
    "evict",
    "prune",
    "read_entry",
    "write_entry",
]

#: Bumped whenever the cached representation changes (invalidates every entry of older formats).
CACHE_FORMAT = 5

#: A temp file younger than this may belong to a writer still running: never deleted.
TEMP_GRACE_S = 3600.0

_TABLES = "tracks|genres|features|echonest"
_ENTRY = re.compile(
    rf"^(?P<table>{_TABLES})-(?P<source>[0-9a-f]{{16}})-v(?P<version>[0-9]+)-(?P<ident>[0-9a-f]{{16}})\.parquet$"
)
_LEGACY = re.compile(rf"^(?P<table>{_TABLES})-[0-9a-f]{{20}}\.parquet$")  # the naming of formats <= 5
_TEMP = re.compile(rf"^(?P<table>{_TABLES})-[0-9a-fv-]+(\.parquet\.[0-9]+-[0-9a-f]+\.tmp|\.tmp[0-9]+)$")

Status = Literal["current", "stale", "orphan", "old-format", "newer-format", "temp", "unreadable"]


def cache_root() -> Path:
    """``songmine.paths.cache_dir()/catalog`` — the only directory this module ever deletes in."""
    return cache_dir() / "catalog"


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def entry_path(table: str, source: str, identity: str, version: int) -> Path:
    """The cache file of one (table, source, identity) at cache format ``version``.

    ``source`` names the source and the load options (stable across versions of
    the file); ``identity`` changes whenever the source's bytes may have changed.
    """
    return cache_root() / f"{table}-{_sha(source)}-v{version}-{_sha(identity)}.parquet"


def entry_for(src: TableSource, nonfinite: str) -> tuple[Path, dict]:
    """The cache file of ``src`` loaded with ``nonfinite``, and the source record stored in it
    (what ``songmine catalog cache`` shows and :func:`entries` checks for staleness)."""
    identity = src.identity()
    source = f"{src.path.resolve()}|{src.member}|{nonfinite}"
    record = {
        "table": src.table,
        "path": str(src.path.resolve()),
        "member": src.member,
        "identity": identity,
        "nonfinite": nonfinite,
    }
    return entry_path(src.table, source, identity, CACHE_FORMAT), record


def read_entry(path: Path):
    """The frame cached in ``path`` (raises ``FileNotFoundError`` when another process evicted it)."""
    return read_frame(path)


def write_entry(df, path: Path, record: dict) -> None:
    """Cache ``df`` in ``path`` (temp name in the same directory, then renamed: readers see a
    whole file or none), then evict what this entry makes stale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write_frame(df, tmp, record)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    evict(path, CACHE_FORMAT)


def temp_path(path: Path) -> Path:
    """A temp name beside ``path``, unique per process and call (threads included)."""
    return path.with_name(f"{path.name}.{os.getpid()}-{os.urandom(6).hex()}.tmp")


def _scan(root: Path):
    try:
        with os.scandir(root) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    yield e
    except FileNotFoundError:
        return


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:  # another process evicted it first
        return False
    except OSError as exc:  # e.g. Windows: open in another process; read-only dir
        log.debug("could not evict catalogue cache file %s: %s", path, exc)
        return False


def _classify(name: str, version: int, now: float, mtime: float) -> tuple[str | None, re.Match | None]:
    """Status by name alone: ``old-format``, ``newer-format``, ``temp`` (deletable or not), or None for
    an entry of this format (whose status needs its source)."""
    m = _ENTRY.match(name)
    if m:
        v = int(m["version"])
        if v < version:
            return "old-format", m
        if v > version:
            return "newer-format", m
        return None, m
    if _LEGACY.match(name):
        return "old-format", None
    if _TEMP.match(name):
        return ("temp-old" if now - mtime > TEMP_GRACE_S else "temp"), None
    return "foreign", None


def evict(written: Path, version: int) -> list[str]:
    """After ``written`` was renamed into place: delete what it makes stale (see module doc).

    Returns the names deleted. Never raises (eviction is housekeeping, loading already worked).
    """
    m_new = _ENTRY.match(written.name)
    if m_new is None or written.parent != cache_root():
        return []
    now, gone = time.time(), []
    for e in _scan(written.parent):
        if e.name == written.name:
            continue
        try:
            mtime = e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        status, m = _classify(e.name, version, now, mtime)
        same_source = status is None and m is not None and m["source"] == m_new["source"]
        if (same_source or status in ("old-format", "temp-old")) and _unlink(e.path):
            gone.append(e.name)
    if gone:
        log.debug("evicted %d catalogue cache file(s): %s", len(gone), ", ".join(gone))
    return gone


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One file of the cache dir and what it is.

    ``status``: ``current`` (its source is unchanged), ``stale`` (the source changed
    since), ``orphan`` (the source is gone), ``old-format`` / ``newer-format``
    (another cache format), ``temp`` (a writer's temp file), ``unreadable``.
    """

    path: str
    table: str | None
    size_bytes: int
    status: Status
    source: str | None = None


def entries(version: int | None = None) -> list[CacheEntry]:
    """Every cache file, with its status (reads each entry's parquet footer, never its data)."""
    version = CACHE_FORMAT if version is None else version
    now, out = time.time(), []
    for e in sorted(_scan(cache_root()), key=lambda e: e.name):
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        status, m = _classify(e.name, version, now, st.st_mtime)
        if status == "foreign":
            continue
        table = m["table"] if m else e.name.split("-", 1)[0]
        source = None
        if status is None:
            status, source = _source_status(Path(e.path))
        out.append(CacheEntry(e.path, table, int(st.st_size), "temp" if status == "temp-old" else status, source))
    return out


def _source_status(path: Path) -> tuple[Status, str | None]:
    """(``current`` | ``stale`` | ``orphan`` | ``unreadable``, source name) of an entry of this format."""
    try:
        import pyarrow.parquet as pq

        meta = json.loads(pq.read_schema(path).metadata[FRAME_METADATA_KEY])
        src = meta["source"]
    except Exception:  # noqa: BLE001 - a broken or foreign file: say so, never fail a listing
        return "unreadable", None
    ts = TableSource(src["table"], Path(src["path"]), src.get("member"))
    try:
        current = ts.identity() == src["identity"]
    except Exception:  # noqa: BLE001 - missing file or member, unreadable zip
        return "orphan", ts.name
    return ("current" if current else "stale"), ts.name


def clear() -> list[CacheEntry]:
    """Delete every cache file (temp files of a writer that may still run excepted); return them."""
    return _delete([e for e in entries() if e.status != "temp" or _old(e)])


def prune() -> list[CacheEntry]:
    """Delete the files no load will read again: stale, orphan, old-format, unreadable, dead temp files."""
    return _delete(
        [
            e
            for e in entries()
            if e.status in ("stale", "orphan", "old-format", "unreadable") or (e.status == "temp" and _old(e))
        ]
    )


def _old(e: CacheEntry) -> bool:
    try:
        return time.time() - os.stat(e.path, follow_symlinks=False).st_mtime > TEMP_GRACE_S
    except OSError:
        return False


def _delete(victims: list[CacheEntry]) -> list[CacheEntry]:
    return [e for e in victims if _unlink(e.path)]
