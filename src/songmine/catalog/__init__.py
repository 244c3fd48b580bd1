"""The music catalogue: FMA metadata loaders, a correct merge, and FMA-compatible features.

* :func:`load` / :func:`load_tables` — ``tracks.csv``, ``genres.csv``,
  ``features.csv``, ``echonest.csv`` in the official multi-header layout or the
  flattened one, from files, a directory or ``fma_metadata.zip``.
* :func:`merge` — inner join on the ``track_id`` index, flattened column names.
* :mod:`songmine.catalog.features` — the 518 FMA audio features from any file.
* :mod:`songmine.catalog.tags` — title/artist/album/genre/year tags.
"""

from __future__ import annotations

from .loaders import load, load_tables
from .merge import MergeReport, audio_feature_columns, flatten_columns, merge, merge_source
from .schema import (
    ECHONEST_COLUMNS,
    FEATURE_COLUMNS,
    FEATURE_FAMILIES,
    FEATURE_STATISTICS,
    GENRES_COLUMNS,
    TABLES,
    TRACKS_COLUMNS,
    USER_TRACKS_COLUMNS,
)

__all__ = [
    "ECHONEST_COLUMNS",
    "FEATURE_COLUMNS",
    "FEATURE_FAMILIES",
    "FEATURE_STATISTICS",
    "GENRES_COLUMNS",
    "TABLES",
    "TRACKS_COLUMNS",
    "USER_TRACKS_COLUMNS",
    "MergeReport",
    "audio_feature_columns",
    "flatten_columns",
    "load",
    "load_tables",
    "merge",
    "merge_source",
]
