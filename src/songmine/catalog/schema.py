"""The FMA metadata schema, written once: tables, their columns in file order, and column kinds.

Everything that needs to know what ``tracks.csv``, ``features.csv``,
``echonest.csv`` or ``genres.csv`` hold (the loaders, the feature extractor,
the clustering's column picker, the synthetic catalogue) reads it from here.
"""

from __future__ import annotations

__all__ = [
    "TABLES",
    "FEATURE_FAMILIES",
    "FEATURE_STATISTICS",
    "FEATURE_COLUMNS",
    "TRACKS_COLUMNS",
    "USER_TRACKS_COLUMNS",
    "ECHONEST_GROUPS",
    "ECHONEST_AUDIO_FEATURES",
    "ECHONEST_COLUMNS",
    "GENRES_COLUMNS",
]

#: The four processed tables of ``fma_metadata.zip``.
TABLES = ("tracks", "genres", "features", "echonest")

#: Feature families and their dimensions, in file (alphabetical) order.
FEATURE_FAMILIES: dict[str, int] = {
    "chroma_cens": 12,
    "chroma_cqt": 12,
    "chroma_stft": 12,
    "mfcc": 20,
    "rmse": 1,
    "spectral_bandwidth": 1,
    "spectral_centroid": 1,
    "spectral_contrast": 7,
    "spectral_rolloff": 1,
    "tonnetz": 6,
    "zcr": 1,
}
#: Summary statistics in file (alphabetical) order.
FEATURE_STATISTICS = ("kurtosis", "max", "mean", "median", "min", "skew", "std")

#: The 518 (feature, statistics, number) column triples of features.csv, in file order.
FEATURE_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    (fam, stat, f"{i + 1:02d}")
    for fam, dim in FEATURE_FAMILIES.items()
    for stat in FEATURE_STATISTICS
    for i in range(dim)
)

_TRACKS_LEVEL1 = {
    "album": "comments date_created date_released engineer favorites id information listens producer tags "
    "title tracks type",
    "artist": "active_year_begin active_year_end associated_labels bio comments date_created favorites id "
    "latitude location longitude members name related_projects tags website wikipedia_page",
    "set": "split subset",
    "track": "bit_rate comments composer date_created date_recorded duration favorites genre_top genres "
    "genres_all information interest language_code license listens lyricist number publisher tags title",
}
#: The 52 (group, field) columns of tracks.csv, in file order.
TRACKS_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (g, f) for g, fields in _TRACKS_LEVEL1.items() for f in fields.split()
)
#: The subset of tracks.csv columns that ``songmine features`` writes for a user's own library.
USER_TRACKS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("album", "date_released"),
    ("album", "title"),
    ("artist", "name"),
    ("track", "duration"),
    ("track", "genre_top"),
    ("track", "title"),
)

ECHONEST_GROUPS = {
    "audio_features": "acousticness danceability energy instrumentalness liveness speechiness tempo valence".split(),
    "metadata": "album_date album_name artist_latitude artist_location artist_longitude artist_name release".split(),
    "ranks": "artist_discovery_rank artist_familiarity_rank artist_hotttnesss_rank song_currency_rank "
    "song_hotttnesss_rank".split(),
    "social_features": "artist_discovery artist_familiarity artist_hotttnesss song_currency song_hotttnesss".split(),
    "temporal_features": [f"{i:03d}" for i in range(224)],
}
#: The eight echonest audio features (acousticness ... valence).
ECHONEST_AUDIO_FEATURES: tuple[str, ...] = tuple(ECHONEST_GROUPS["audio_features"])
#: The 249 ('echonest', group, field) columns of echonest.csv, in file order.
ECHONEST_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    ("echonest", g, f) for g, fields in ECHONEST_GROUPS.items() for f in fields
)
#: Kinds of columns, for parsing.
ECHONEST_STRING_COLUMNS = {
    ("echonest", "metadata", f) for f in ("album_date", "album_name", "artist_location", "artist_name", "release")
}
ECHONEST_FLOAT64_COLUMNS = {("echonest", "metadata", "artist_latitude"), ("echonest", "metadata", "artist_longitude")}
ECHONEST_NAN_OK_COLUMNS = {("echonest", "ranks", f) for f in ECHONEST_GROUPS["ranks"]} | ECHONEST_FLOAT64_COLUMNS

#: Columns of genres.csv (index ``genre_id``).
GENRES_COLUMNS = ("#tracks", "parent", "title", "top_level")

LIST_COLUMNS = [("track", "tags"), ("album", "tags"), ("artist", "tags"), ("track", "genres"), ("track", "genres_all")]
DATE_COLUMNS = [
    ("track", "date_created"),
    ("track", "date_recorded"),
    ("album", "date_created"),
    ("album", "date_released"),
    ("artist", "date_created"),
    ("artist", "active_year_begin"),
    ("artist", "active_year_end"),
]
CATEGORY_COLUMNS = [
    ("track", "genre_top"),
    ("track", "license"),
    ("album", "type"),
    ("album", "information"),
    ("artist", "bio"),
]
SUBSETS = ["small", "medium", "large"]
INT_COLUMNS = {
    ("album", "comments"),
    ("album", "favorites"),
    ("album", "id"),
    ("album", "listens"),
    ("album", "tracks"),
    ("artist", "comments"),
    ("artist", "favorites"),
    ("artist", "id"),
    ("track", "bit_rate"),
    ("track", "comments"),
    ("track", "duration"),
    ("track", "favorites"),
    ("track", "interest"),
    ("track", "listens"),
    ("track", "number"),
}
FLOAT_COLUMNS = {("artist", "latitude"), ("artist", "longitude")}
