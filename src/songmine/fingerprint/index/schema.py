"""On-disk layout of an index directory: the SQLite catalogue and the segment file format.

An index is a directory::

    <index>/
      catalog.sqlite        tracks, segments, settings, profiles, payloads (WAL mode)
      segments/seg-000042.sgm
      write.lock            held (flock) by the single writer while it writes

Everything about the format is here, in one place; ``docs/index.md`` explains it.

Segment file, version 5 (little-endian, one per commit, immutable once registered)::

    offset 0   8 bytes  magic  b"SMSEGv05"
    offset 8   uint64   n      number of postings (< 2**32)
    offset 16  uint32   T      tracks in the segment
    offset 20  uint32   W      windows
    offset 24  uint32   B      checksum block size in bytes (4096)
    offset 28  uint32   the segment's checksum: CRC-32 of the block table below
    offset 32  uint8    record bytes R (4 or 8)
    offset 33  uint8    h      low hash bits kept in each record (0-32)
    offset 34  uint8    C      slot classes
    offset 35  uint8    window cap K: most postings in a window (31)
    offset 36  24 bytes zero padding
    offset 60  uint32   CRC-32 of bytes 0-59 (the header's own checksum; header is 64 bytes)
    offset 64          tracks[T]     uint32  global track ids, in slot order
                       time_bits[T]  uint8   each track's own times are < 2**time_bits
                                     (zero padding to a multiple of 8 bytes)
                       classes[C, 3] uint64  (slot bits, first track, first slot position), slot bits descending
                       records[n]    uint32 (R = 4) or uint64 (R = 8), in hash order:
                                     (slot position of the track + time) << h | (hash & (2**h - 1))
                       window keys[W]       uint32  the hash of each window's first posting
                       window starts[W + 1] uint32  each window's first posting; starts[W] = n
    E                  (the body is bytes 64 to E)
    offset E           block table: CRC-32 of each B-byte block of the body, uint32[ceil((E - 64) / B)]
    then a 16-byte footer: uint32 number of blocks, uint32 the segment's checksum, b"SMSEGEND"

A window is at most K postings whose hashes share their bits above the low
``h`` (with ``h = 0``: one hash, any number of postings), so a posting's hash
is its window key's high bits and its record's low bits. Opening checks the
header, the footer and the block table (0.1 % of the file), the tables and
the window directory (they steer every lookup), and every block of a small
segment; a big one's records are checked when a lookup first touches them
(``docs/index.md``, "Integrity"). The catalogue keeps each segment's checksum
too, so a file cannot be swapped for another. :mod:`songmine.fingerprint.index.packing`
encodes and decodes the records.

Version 4 (``SMSEGv04``): a 64-byte header like version 5's up to the
checksum (fence step at offset 20, block size at 24), then fences (every
32nd hash), the hashes, tracks and times as three uint32 arrays of ``n``, and
the same block table and footer — 12 bytes per posting. Versions 1
(``SMSEGv01``: no fences, postings at offset 64), 2 (``SMSEGv02``: a
hash-bucket directory, which skewed hash distributions defeat) and 3
(``SMSEGv03``: version 4 without checksums) are read unchecked (1 and 2 with
a plain binary search). Versions 1-4 are all still read, and merges, and so
``songmine compact``, rewrite them as version 5.
"""

from __future__ import annotations

import sqlite3
import struct

__all__ = [
    "FORMAT_VERSION",
    "CATALOG_NAME",
    "SEGMENT_DIR",
    "LOCK_NAME",
    "SEGMENT_VERSION",
    "SEGMENT_MAGIC",
    "SEGMENT_HEADER",
    "SEGMENT_HEADER_SIZE",
    "WINDOW_CAP",
    "SEGMENT_MAGIC_V4",
    "SEGMENT_HEADER_V4",
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
    "TRANSIENT_SEGMENTS_DDL",
    "TRACKS_REWRITES_DDL",
    "migrate",
]

#: Schema version, kept in ``PRAGMA user_version``. Bump it with a migration below.
FORMAT_VERSION = 4

CATALOG_NAME = "catalog.sqlite"
SEGMENT_DIR = "segments"
LOCK_NAME = "write.lock"

#: The segment format written now.
SEGMENT_VERSION = 5
SEGMENT_MAGIC = b"SMSEGv05"
#: magic, n postings, n tracks, n windows, block size, checksum, record bytes, hash bits, slot classes,
#: the window cap K (most postings in a window: 31), padding, header CRC: 64 bytes
SEGMENT_HEADER = struct.Struct("<8sQIIIIBBBB24xI")
SEGMENT_HEADER_SIZE = SEGMENT_HEADER.size
#: A window holds at most this many postings, 2**k - 1 so that a lookup's search inside one takes k steps (5).
WINDOW_CAP = 31
#: number of blocks, checksum (CRC-32 of the block table), magic
SEGMENT_FOOTER = struct.Struct("<II8s")
SEGMENT_FOOTER_MAGIC = b"SMSEGEND"
#: Bytes per checksummed block of a segment's body: a page, the unit a lookup touches.
BLOCK_SIZE = 4096
#: older segment versions, still read: version 4 checked, 1-3 unchecked (1 and 2 by plain binary search)
SEGMENT_MAGIC_V4 = b"SMSEGv04"
#: magic, n postings, n tracks, fence step, block size, checksum, padding, header CRC: 64 bytes
SEGMENT_HEADER_V4 = struct.Struct("<8sQIIII28xI")
SEGMENT_MAGIC_V1 = b"SMSEGv01"
SEGMENT_HEADER_V1 = struct.Struct("<8sQI44x")
SEGMENT_MAGIC_V2 = b"SMSEGv02"
SEGMENT_HEADER_V2 = struct.Struct("<8sQIII36x")
SEGMENT_MAGIC_V3 = b"SMSEGv03"
SEGMENT_HEADER_V3 = struct.Struct("<8sQII40x")
assert (
    SEGMENT_HEADER_SIZE
    == SEGMENT_HEADER_V4.size
    == SEGMENT_HEADER_V1.size
    == SEGMENT_HEADER_V2.size
    == SEGMENT_HEADER_V3.size
    == 64
)

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

# Segment files on disk that no snapshot lists, and why: ``writing`` (the writer holding the lock
# is writing it; the transaction that registers it in ``segments`` deletes the row) or ``retired``
# (a merge or a repair replaced it; the row goes once the file is deleted). A writer killed between
# a file and its transaction leaves the row: ``verify`` then knows the file for what it is, not for
# unexplained damage, and the next writer deletes both. A table older songmine ignore, so it is
# made by the first writer that needs it rather than by a format version.
TRANSIENT_SEGMENTS_DDL = """
CREATE TABLE IF NOT EXISTS transient_segments (
    file  TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('writing', 'retired'))
)
"""

# Counts the changes to the tracks table other than appending a track with a higher id (a status, a
# path changed; a track deleted; an id inserted below the highest). A snapshot taken at the same
# count needs only the rows with ids above its own to be current: ``Index.refresh`` reads those
# alone. Triggers, so that every writer counts, older songmine too; made with the table above.
TRACKS_REWRITES_DDL = """
INSERT OR IGNORE INTO settings(key, value) VALUES ('tracks_rewrites', '0');
CREATE TRIGGER IF NOT EXISTS tracks_rewritten_by_update AFTER UPDATE ON tracks BEGIN
    UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'tracks_rewrites';
END;
CREATE TRIGGER IF NOT EXISTS tracks_rewritten_by_delete AFTER DELETE ON tracks BEGIN
    UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'tracks_rewrites';
END;
CREATE TRIGGER IF NOT EXISTS tracks_rewritten_by_insert AFTER INSERT ON tracks
WHEN NEW.track_id < (SELECT max(track_id) FROM tracks) BEGIN
    UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'tracks_rewrites';
END;
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
