"""Song identification by landmark fingerprints: index a library, identify a short clip.

* :mod:`~songmine.fingerprint.spectral` — spectrogram and peak picking;
* :mod:`~songmine.fingerprint.landmarks` — peak pairs → 32-bit hashes (:class:`FingerprintConfig`);
* :mod:`~songmine.fingerprint.postings` — sorted ``(hash, track, time)`` arrays and their lookup;
* :mod:`~songmine.fingerprint.profiles` — small spectral profiles that verify a candidate;
* :mod:`~songmine.fingerprint.scoring` — offset voting, the null model, the runner-up margin;
* :mod:`~songmine.fingerprint.search` — the staged multi-speed search (:class:`SearchConfig`);
* :mod:`~songmine.fingerprint.query` — :func:`identify`: one clip → the match record;
* :mod:`~songmine.fingerprint.memory` — :class:`MemoryIndex`, an in-memory index;
* :mod:`~songmine.fingerprint.index` — :class:`Index`, the on-disk store (SQLite + segments);
* :mod:`~songmine.fingerprint.heap` — allocator tuning for search processes.
"""

from __future__ import annotations

from .heap import keep_heap
from .index import Index, index_files
from .landmarks import FingerprintConfig, fingerprint
from .memory import MemoryIndex, TrackInfo
from .query import identify
from .search import Candidate, SearchConfig, search

__all__ = [
    "FingerprintConfig",
    "SearchConfig",
    "Candidate",
    "TrackInfo",
    "Index",
    "MemoryIndex",
    "fingerprint",
    "identify",
    "index_files",
    "keep_heap",
    "search",
]
