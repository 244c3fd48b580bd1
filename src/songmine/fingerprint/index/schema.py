"""On-disk layout of an index directory: the SQLite catalogue and the segment file format.

An index is a directory::

    <index>/
      catalog.sqlite        tracks, segments, settings, profiles, payloads (WAL mode)
      segments/seg-000042.sgm
      write.lock            held (flock) by the single writer while it writes

Everything about the format is here, in one place; ``docs/index.md`` explains it.

Segment file (little-endian, one per commit, immutable once registered)::

    offset 0   8 bytes  magic  b"SMSEGv04"
    offset 8   uint64   n      number of postings
    offset 16  uint32   n_tracks (distinct tracks inside, informative)
    offset 20  uint32   step   fence step K (32)
    offset 24  uint32   B      checksum block size in bytes (4096)
    offset 28  uint32   the segment's checksum: CRC-32 of the block table below
    offset 32  28 bytes zero padding
    offset 60  uint32   CRC-32 of bytes 0-59 (the header's own checksum; header is 64 bytes)
    offset 64          fences[ceil(n / K)] uint32: fences[j] = hashes[j K]
    D = 64 + 4 ceil(n / K)
    offset D           hashes[n]  uint32, sorted ascending
    offset D + 4n      tracks[n]  uint32
    offset D + 8n      times[n]   uint32 (frames)
    E = D + 12n        (the body is bytes 64 to E)
    offset E           block table: CRC-32 of each B-byte block of the body, uint32[ceil((E - 64) / B)]
    then a 16-byte footer: uint32 number of blocks, uint32 the segment's checksum, b"SMSEGEND"

so the postings are memory-mapped as one ``(3, n)`` uint32 array whose rows
are :class:`songmine.postings.Postings`' three arrays. Opening checks the
header, the footer and the block table (0.1 % of the file), the fences' blocks,
and every block of a small segment; a big one's blocks are checked when a
lookup first touches them (``docs/index.md``, "Integrity"). The catalogue keeps
each segment's checksum too, so a file cannot be swapped for another.

Versions 1 (magic ``SMSEGv01``: no fences, postings at offset 64), 2
(``SMSEGv02``: a hash-bucket directory, which skewed hash distributions
defeat) and 3 (``SMSEGv03``: version 4 without checksums) are still read,
unchecked (versions 1 and 2 with a plain binary search); merges, and so
``songmine compact``, rewrite them as version 4.
"""

from __future__ import annotations

import sqlite3
import struct

__all__ = [
    "FORMAT_VERSION",
    "CATALOG_NAME",
    "SEGMENT_DIR",
    "LOCK_NAME",
    "SEGMENT_MAGIC",
    "SEGMENT_HEADER",
    "SEGMENT_HEADER_SIZE",
    "SEGMENT_MAGIC_V1",
    "SEGMENT_HEADER_V1",
    "SEGMENT_MAGIC_V2",
    "SEGMENT_HEADER_V2",
    "SEGMENT_MAGIC_V3",
    "SEGMENT_HEADER_V3",
    "SEGMENT_FOOTER",
    "SEGMENT_FOOTER_MAGIC",
    "BLOCK_SIZE",
    "STATUS_OK",
    "STATUS_REMOVED",
    "migrate",
]

#: Schema version, kept in ``PRAGMA user_version``. Bump it with a migration below.
FORMAT_VERSION = 4

CATALOG_NAME = "catalog.sqlite"
SEGMENT_DIR = "segments"
LOCK_NAME = "write.lock"

SEGMENT_MAGIC = b"SMSEGv04"
#: magic, n postings, n tracks, fence step, block size, checksum, padding, header CRC: 64 bytes
SEGMENT_HEADER = struct.Struct("<8sQIIII28xI")
SEGMENT_HEADER_SIZE = SEGMENT_HEADER.size
#: number of blocks, checksum (CRC-32 of the block table), magic
SEGMENT_FOOTER = struct.Struct("<II8s")
SEGMENT_FOOTER_MAGIC = b"SMSEGEND"
#: Bytes per checksummed block of a segment's body: a page, the unit a lookup touches.
BLOCK_SIZE = 4096
#: older segment versions, still read (versions 1 and 2 looked up by plain binary search), unchecked
SEGMENT_MAGIC_V1 = b"SMSEGv01"
SEGMENT_HEADER_V1 = struct.Struct("<8sQI44x")
SEGMENT_MAGIC_V2 = b"SMSEGv02"
SEGMENT_HEADER_V2 = struct.Struct("<8sQIII36x")
SEGMENT_MAGIC_V3 = b"SMSEGv03"
SEGMENT_HEADER_V3 = struct.Struct("<8sQII40x")
assert SEGMENT_HEADER_SIZE == SEGMENT_HEADER_V1.size == SEGMENT_HEADER_V2.size == SEGMENT_HEADER_V3.size == 64

#: A track whose postings are live.
STATUS_OK = "ok"
#: A removed track: its postings stay in segments (filtered at lookup) until ``compact``.
STATUS_REMOVED = "removed"

_SCHEMA_V1 = """
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE tracks (
    track_id   INTEGER PRIMARY KEY,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    title      TEXT,
    artist     TEXT,
    album      TEXT,
    n_hashes   INTEGER NOT NULL,
    status     TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'removed')),
    added      REAL NOT NULL
);
-- one live track per content hash (removed tracks may share it until compact)
CREATE UNIQUE INDEX tracks_live_sha ON tracks(sha256) WHERE status = 'ok';
CREATE INDEX tracks_path ON tracks(path);
CREATE TABLE segments (
    segment_id INTEGER PRIMARY KEY,
    file       TEXT NOT NULL UNIQUE,
    n_postings INTEGER NOT NULL,
    n_tracks   INTEGER NOT NULL,
    created    REAL NOT NULL
)
"""

#: version -> DDL that brings a database from ``version - 1`` to ``version``
# version 2: one spectral profile per track (songmine.verify), written with the track; tracks
# indexed before have none (an uncertain answer about them is not verified)
_SCHEMA_V2 = """
CREATE TABLE profiles (
    track_id INTEGER PRIMARY KEY,
    version  INTEGER NOT NULL,
    data     BLOB NOT NULL
);
"""

# version 3: checksums. A segment's (the CRC-32 of its block table, as in its header and footer) and a
# profile's (CRC-32 of the blob); NULL for segments and profiles written before (read unchecked)
_SCHEMA_V3 = """
ALTER TABLE segments ADD COLUMN checksum INTEGER;
ALTER TABLE profiles ADD COLUMN checksum INTEGER;
"""

# version 4: a per-track payload for the methods whose index is not postings (seed: a MinHash
# signature; sketch: the window signatures), written with the track, with its CRC-32; the method's
# payload function (songmine.methods.Method.payload) makes it, its searcher reads it back
_SCHEMA_V4 = """
CREATE TABLE IF NOT EXISTS payloads (
    track_id INTEGER PRIMARY KEY,
    version  INTEGER NOT NULL,
    data     BLOB NOT NULL,
    checksum INTEGER NOT NULL
);
"""

_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4}


def migrate(conn: sqlite3.Connection, *, from_version: int) -> None:
    """Apply the migrations after ``from_version`` and set ``user_version``.

    The caller holds a write transaction (``BEGIN IMMEDIATE``) on an
    autocommit connection; SQLite DDL is transactional, so a crash mid-way
    leaves the old version.
    """
    for v in range(from_version + 1, FORMAT_VERSION + 1):
        for stmt in _MIGRATIONS[v].split(";"):
            if stmt.strip():
                try:
                    conn.execute(stmt)
                except sqlite3.OperationalError as exc:  # a column some earlier run already added
                    if "duplicate column name" not in str(exc):
                        raise
    conn.execute("UPDATE settings SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION),))
    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
