"""The fingerprint index store: SQLite catalogue + immutable memory-mapped posting segments.

>>> from songmine.index import Index, index_files
>>> # ix = Index("lib.idx", create=True); index_files(ix, ["~/Music"])

See ``docs/index.md`` for the on-disk format and the crash-safety argument.
"""

from __future__ import annotations

from .build import AddedFile, IndexingInterrupted, IndexReport, add_file, fingerprint_file, index_files, process_file
from .store import CompactReport, Index, IndexLockedError, TrackRecord, UnknownTrackError

__all__ = [
    "Index",
    "TrackRecord",
    "CompactReport",
    "IndexReport",
    "IndexingInterrupted",
    "IndexLockedError",
    "UnknownTrackError",
    "index_files",
    "add_file",
    "AddedFile",
    "fingerprint_file",
    "process_file",
]
