"""Loaders for the FMA metadata tables, with the reference loader's semantics.

``tracks.csv`` (two header rows + index row), ``features.csv`` and
``echonest.csv`` (three header rows + index row), ``genres.csv``; or the
"flattened" one-header variant of the same tables (``track_id`` as first
column, level names joined with ``_``). The layout is detected from the first
header line, and both give the same frame: a ``track_id`` index and the
official column MultiIndex, so code written for the FMA loader keeps working.

Sources: a CSV file, a directory holding the tables, or ``fma_metadata.zip``
(read in place, never unpacked). Every loaded table is validated — the exact
expected columns, unique ids, finite feature values — and cached as parquet in
``songmine.paths.cache_dir()/catalog`` keyed by the file's identity (path,
size, mtime, zip member), so a second load is a parquet read; writing an entry
evicts the stale ones (:mod:`songmine.catalog.cache`).

Errors are :class:`songmine.errors.DataError` naming the file, the column and
the row where that applies.
"""

from __future__ import annotations

import ast
import csv
import gc
import io
import json
import logging
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from ..errors import DataError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "TABLES",
    "FEATURE_FAMILIES",
    "FEATURE_STATISTICS",
    "FEATURE_COLUMNS",
    "TRACKS_COLUMNS",
    "USER_TRACKS_COLUMNS",
    "ECHONEST_COLUMNS",
    "GENRES_COLUMNS",
    "TableSource",
    "load",
    "load_tables",
    "resolve",
    "detect_layout",
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

_ECHONEST_GROUPS = {
    "audio_features": "acousticness danceability energy instrumentalness liveness speechiness tempo valence".split(),
    "metadata": "album_date album_name artist_latitude artist_location artist_longitude artist_name release".split(),
    "ranks": "artist_discovery_rank artist_familiarity_rank artist_hotttnesss_rank song_currency_rank "
    "song_hotttnesss_rank".split(),
    "social_features": "artist_discovery artist_familiarity artist_hotttnesss song_currency song_hotttnesss".split(),
    "temporal_features": [f"{i:03d}" for i in range(224)],
}
#: The 249 ('echonest', group, field) columns of echonest.csv, in file order.
ECHONEST_COLUMNS: tuple[tuple[str, str, str], ...] = tuple(
    ("echonest", g, f) for g, fields in _ECHONEST_GROUPS.items() for f in fields
)
_ECHONEST_STRINGS = {("echonest", "metadata", f) for f in
                     ("album_date", "album_name", "artist_location", "artist_name", "release")}
_ECHONEST_FLOAT64 = {("echonest", "metadata", "artist_latitude"), ("echonest", "metadata", "artist_longitude")}
_ECHONEST_NAN_OK = {("echonest", "ranks", f) for f in _ECHONEST_GROUPS["ranks"]} | _ECHONEST_FLOAT64

#: Columns of genres.csv (index ``genre_id``).
GENRES_COLUMNS = ("#tracks", "parent", "title", "top_level")

_LIST_COLUMNS = [("track", "tags"), ("album", "tags"), ("artist", "tags"), ("track", "genres"),
                 ("track", "genres_all")]
_DATE_COLUMNS = [("track", "date_created"), ("track", "date_recorded"), ("album", "date_created"),
                 ("album", "date_released"), ("artist", "date_created"), ("artist", "active_year_begin"),
                 ("artist", "active_year_end")]
_CATEGORY_COLUMNS = [("track", "genre_top"), ("track", "license"), ("album", "type"),
                     ("album", "information"), ("artist", "bio")]
_SUBSETS = ["small", "medium", "large"]
_INT_COLUMNS = {("album", "comments"), ("album", "favorites"), ("album", "id"), ("album", "listens"),
                ("album", "tracks"), ("artist", "comments"), ("artist", "favorites"), ("artist", "id"),
                ("track", "bit_rate"), ("track", "comments"), ("track", "duration"), ("track", "favorites"),
                ("track", "interest"), ("track", "listens"), ("track", "number")}
_FLOAT_COLUMNS = {("artist", "latitude"), ("artist", "longitude")}

#: Bumped whenever the loaded representation changes (invalidates parquet caches).
LOADER_VERSION = 5

_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError)

Layout = Literal["official", "flat"]
NonFinite = Literal["raise", "drop", "keep"]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class TableSource:
    """Where one table lives: a plain file, or a member of a zip archive.

    ``name`` is what error messages show (``fma_metadata.zip:fma_metadata/tracks.csv``).
    """

    table: str
    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def identity(self) -> str:
        """A string that changes whenever the bytes may have changed (for the cache key)."""
        st = self.path.stat()
        ident = f"{self.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.member}"
        if self.member:
            with _zip(self.path) as zf:
                zi = zf.getinfo(self.member)
                ident += f"|{zi.CRC}|{zi.file_size}"
        return ident

    @contextmanager
    def open_text(self) -> Iterator[IO[str]]:
        """Open as UTF-8 text (zip members are streamed, not unpacked)."""
        with self.open_binary() as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            yield fh

    @contextmanager
    def open_binary(self) -> Iterator[IO[bytes]]:
        """Open for streaming binary reads (zip members decompress on the fly, CRC-checked at EOF)."""
        if self.member is None:
            try:
                fh = open(self.path, "rb")
            except OSError as exc:
                raise DataError(f"{self.name}: cannot open: {exc.strerror or exc}") from exc
            with fh:
                yield fh
            return
        with _zip(self.path) as zf:
            try:
                raw = zf.open(self.member)
            except _ZIP_ERRORS as exc:
                raise DataError(f"{self.name}: corrupt or truncated zip member: {exc}") from exc
            with raw:
                yield raw

    def read_bytes(self) -> bytes:
        """The whole content (zip members are decompressed and CRC-checked)."""
        if self.member is None:
            try:
                return self.path.read_bytes()
            except OSError as exc:
                raise DataError(f"{self.name}: cannot read: {exc.strerror or exc}") from exc
        with _zip(self.path) as zf:
            try:
                return zf.read(self.member)
            except _ZIP_ERRORS as exc:
                raise DataError(f"{self.name}: corrupt or truncated zip member: {exc}") from exc


@contextmanager
def _zip(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except _ZIP_ERRORS as exc:
        raise DataError(f"{path}: not a readable zip archive (truncated or corrupt): {exc}") from exc
    with zf:
        yield zf


def _table_of(name: str) -> str | None:
    """The FMA dispatch rule: which table a file is, by substring of its name."""
    base = os.path.basename(name).lower()
    for t in ("features", "echonest", "genres", "tracks"):
        if t in base and base.endswith(".csv"):
            return t
    return None


def resolve(source: str | os.PathLike[str], table: str | None = None) -> TableSource:
    """Find one table in ``source`` (a CSV file, a directory, or ``fma_metadata.zip``).

    Raises
    ------
    DataError
        The file or the table is missing, or the zip is unreadable.
    ParameterError
        ``table`` is not one of :data:`TABLES`.
    """
    if table is not None and table not in TABLES:
        raise ParameterError(f"table={table!r} must be one of {', '.join(TABLES)}")
    p = Path(source).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or directory")
    if p.is_dir():
        if table is None:
            raise ParameterError(f"{p} is a directory: say which table to load ({', '.join(TABLES)})")
        f = p / f"{table}.csv"
        if not f.exists():
            found = sorted(x.name for x in p.glob("*.csv") if _table_of(x.name) == table)
            if not found:
                raise DataError(f"{p}: missing {table}.csv")
            f = p / found[0]
        return TableSource(table, f)
    if zipfile.is_zipfile(p) or p.suffix.lower() == ".zip":
        if table is None:
            raise ParameterError(f"{p} is an archive: say which table to load ({', '.join(TABLES)})")
        with _zip(p) as zf:
            members = [n for n in zf.namelist() if _table_of(n) == table and not n.startswith("__MACOSX")]
        exact = [n for n in members if os.path.basename(n) == f"{table}.csv"]
        if not (exact or members):
            raise DataError(f"{p}: archive has no {table}.csv")
        return TableSource(table, p, (exact or members)[0])
    t = table or _table_of(p.name)
    if t is None:
        raise ParameterError(
            f"{p}: cannot tell which FMA table this is from its name; pass table= one of {', '.join(TABLES)}"
        )
    return TableSource(t, p)


# --------------------------------------------------------------------------- headers


def _read_header_rows(src: TableSource, n: int) -> list[list[str]]:
    with src.open_text() as fh:
        try:
            reader = csv.reader(fh)
            rows = []
            for _ in range(n):
                try:
                    rows.append(next(reader))
                except StopIteration:
                    break
        except _ZIP_ERRORS as exc:
            raise DataError(f"{src.name}: corrupt or truncated: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise DataError(f"{src.name}: not UTF-8 text: {exc}") from exc
    if not rows:
        raise DataError(f"{src.name}: empty file")
    return rows


def detect_layout(src: TableSource) -> Layout:
    """``"official"`` (multi-row header + index-name row) or ``"flat"`` (one header row)."""
    first = _read_header_rows(src, 1)[0]
    if src.table == "genres":
        return "flat"
    if first and first[0] == "track_id":
        return "flat"
    if first and first[0] in ("", "feature"):
        return "official"
    raise DataError(
        f"{src.name}: unrecognised header: first cell {first[0]!r} "
        f"(expected '' or 'feature' for the official layout, 'track_id' for the flattened one)"
    )


def _flat_name(col: tuple[str, ...], table: str) -> str:
    parts = col[1:] if table == "echonest" else col
    return "_".join(parts)


def _expected(table: str) -> tuple[tuple[str, ...], ...]:
    return {"tracks": TRACKS_COLUMNS, "features": FEATURE_COLUMNS, "echonest": ECHONEST_COLUMNS}[table]


def _header_columns(src: TableSource, layout: Layout) -> list[tuple[str, ...]]:
    """Column tuples named by the file's header (index column excluded), validated."""
    table = src.table
    expected = _expected(table)
    if layout == "official":
        levels = 2 if table == "tracks" else 3
        rows = _read_header_rows(src, levels + 1)
        if len(rows) < levels + 1:
            raise DataError(f"{src.name}: header has {len(rows)} rows, expected {levels} + the track_id row")
        width = len(rows[0])
        for i, r in enumerate(rows[:levels]):
            if len(r) != width:
                raise DataError(f"{src.name}: header row {i + 1} has {len(r)} cells, row 1 has {width}")
        if rows[levels][:1] != ["track_id"]:
            raise DataError(
                f"{src.name}: header row {levels + 1} should start with 'track_id' (the index name), "
                f"got {rows[levels][:1]!r}"
            )
        cols = [tuple(r[j] for r in rows[:levels]) for j in range(1, width)]
    else:
        row = _read_header_rows(src, 1)[0]
        lookup = {_flat_name(c, table): c for c in expected}
        if table == "echonest":
            lookup.update({"_".join(c): c for c in expected})  # 'echonest_audio_features_tempo' too
        cols = []
        for j, name in enumerate(row[1:], start=2):
            cols.append(lookup.get(name, ("?", name, j)))
    _check_columns(src, cols, expected, layout)
    return cols


def _check_columns(src: TableSource, cols, expected, layout: Layout) -> None:
    def show(c):
        if c[0] == "?":
            return repr(c[1])
        return repr(_flat_name(c, src.table)) if layout == "flat" else repr(c)

    seen: dict = {}
    for j, c in enumerate(cols, start=2):
        if c in seen:
            raise DataError(f"{src.name}: column {show(c)} appears twice (header cells {seen[c]} and {j})")
        seen[c] = j
    known = set(expected)
    unknown = [(j, c) for j, c in enumerate(cols, start=2) if c not in known]
    present = set(cols)
    if src.table == "tracks" and present <= known and set(USER_TRACKS_COLUMNS) <= present:
        missing = []  # the subset songmine writes for a user's own library
        if present != known:
            missing = [c for c in USER_TRACKS_COLUMNS if c not in present]
    else:
        missing = [c for c in expected if c not in present]
    if unknown or missing:
        parts = []
        if missing:
            more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            parts.append("missing column " + ", ".join(show(c) for c in missing[:5]) + more)
        if unknown:
            more = f" (+{len(unknown) - 5} more)" if len(unknown) > 5 else ""
            parts.append(
                "unexpected column " + ", ".join(f"{show(c)} (header cell {j})" for j, c in unknown[:5]) + more
            )
        raise DataError(f"{src.name}: {'; '.join(parts)}")


# --------------------------------------------------------------------------- parsing


def _arrow_read(src: TableSource, skip_rows: int, names: list[str], types: dict, newlines: bool):
    import pyarrow as pa
    from pyarrow import csv as pacsv

    try:
        with src.open_binary() as fh:  # streamed: the file is never held in memory as a whole
            return pacsv.read_csv(
                fh,
                read_options=pacsv.ReadOptions(skip_rows=skip_rows, column_names=names, block_size=1 << 22),
                parse_options=pacsv.ParseOptions(newlines_in_values=newlines),
                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                                     quoted_strings_can_be_null=False),
            )
    except _ZIP_ERRORS as exc:
        raise DataError(f"{src.name}: corrupt or truncated: {exc}") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{src.name}: {_arrow_message(exc, names)}") from exc


def _arrow_message(exc: Exception, names: list[str]) -> str:
    msg = str(exc).strip().splitlines()[0]
    # "In CSV column #12: Row #40: CSV conversion error to float: invalid value 'abc'"
    import re

    m = re.search(r"column #(\d+)", msg)
    if m and int(m.group(1)) < len(names):
        msg += f" [column {names[int(m.group(1))]!r}]"
    return msg


def _sid(v) -> str:
    """An id as a message shows it (plain ints, quoted strings)."""
    return repr(v.item() if hasattr(v, "item") else v)


def _index_from(src: TableSource, values, *, kind: str = "track_id"):
    import numpy as np
    import pandas as pd

    idx = pd.Index(values, name=kind)
    if idx.hasnans:
        row = int(np.flatnonzero(pd.isna(idx))[0]) + 1
        raise DataError(f"{src.name}: empty {kind} in data record {row}")
    if idx.dtype == object or pd.api.types.is_string_dtype(idx.dtype):
        # integer ids written as text (e.g. after a float format) stay as they are
        pass
    dup = idx.duplicated(keep=False)
    if dup.any():
        rows = np.flatnonzero(dup)
        first = idx[rows[0]]
        where = [int(r) + 1 for r in rows if idx[r] == first]
        n_dup = int(idx.duplicated().sum())
        raise DataError(
            f"{src.name}: duplicate {kind} {_sid(first)} in data records {where}"
            + (f" ({n_dup} duplicated ids in total)" if n_dup > 1 else "")
        )
    return idx


def _check_finite(src: TableSource, df, columns, mode: NonFinite, *, nan_ok=frozenset()):
    """Raise on NaN/±inf in ``columns`` (or drop those rows, or keep them)."""
    import numpy as np

    if mode == "keep" or len(df) == 0:
        return df
    cols = [c for c in columns]
    vals = df.to_numpy(copy=False) if len(cols) == df.shape[1] else df[cols].to_numpy()
    if not nan_ok and np.isfinite(vals).all():  # the common case, without building masks
        return df
    bad_inf = ~np.isfinite(vals) & ~np.isnan(vals)
    nan_cols = np.array([c not in nan_ok for c in cols])
    bad = bad_inf | (np.isnan(vals) & nan_cols[None, :])
    if not bad.any():
        return df
    rows = np.flatnonzero(bad.any(axis=1))
    if mode == "drop":
        log.warning("%s: dropping %d rows with NaN/inf feature values", src.name, len(rows))
        return df.drop(index=df.index[rows])
    r, c = int(rows[0]), int(np.flatnonzero(bad[rows[0]])[0])
    v = vals[r, c]
    what = "NaN (empty)" if np.isnan(v) else str(v)
    allnan = bool(np.isnan(vals[r]).all())
    raise DataError(
        f"{src.name}: {what} in column {cols[c]!r} at track_id={_sid(df.index[r])} (data record {r + 1})"
        + (" — the whole row is empty (a track whose extraction failed)" if allnan else "")
        + f"; {len(rows)} row(s) affected; pass nonfinite='drop' to skip them"
    )


def _parse_numeric(src: TableSource, layout: Layout, cols: list[tuple], nonfinite: NonFinite):
    import pandas as pd
    import pyarrow as pa

    table = src.table
    skip = 1 if layout == "flat" else (4 if table != "tracks" else 3)
    names = ["track_id"] + [f"c{j}" for j in range(len(cols))]
    types = {}
    for j, c in enumerate(cols):
        if table == "features":
            types[names[j + 1]] = pa.float32()
        elif c in _ECHONEST_STRINGS:
            types[names[j + 1]] = pa.string()
        elif c in _ECHONEST_FLOAT64:
            types[names[j + 1]] = pa.float64()
        else:
            types[names[j + 1]] = pa.float32()
    t = _arrow_read(src, skip, names, types, newlines=(table == "echonest"))
    ids = t.column(0).to_pandas()
    index = _index_from(src, ids)
    t = t.drop_columns(["track_id"])
    mi_names = ["feature", "statistics", "number"] if table == "features" else [None, None, None]
    columns = pd.MultiIndex.from_tuples(cols, names=mi_names)
    if table == "features":
        # one Fortran-ordered float32 array filled column by column while the Arrow columns are
        # released: pandas adopts it as its single block without another copy
        import numpy as np

        arr = np.empty((t.num_rows, t.num_columns), dtype=np.float32, order="F")
        for j in range(t.num_columns):
            arr[:, j] = t.column(0).to_numpy()
            t = t.remove_column(0)
        del t
        df = pd.DataFrame(arr, index=index, columns=columns, copy=False)
    else:
        df = t.to_pandas(split_blocks=False)
        del t
        df.index = index
        df.columns = columns
    if table == "features":
        df = _check_finite(src, df, list(df.columns), nonfinite)
    else:
        numeric = [c for c in cols if c not in _ECHONEST_STRINGS]
        df = _check_finite(src, df, numeric, nonfinite, nan_ok=_ECHONEST_NAN_OK)
    return df


def _parse_list(src: TableSource, col, series):
    import numpy as np

    out = np.empty(len(series), dtype=object)
    for i, v in enumerate(series.to_numpy()):
        if not isinstance(v, str):
            out[i] = [] if v is None or (isinstance(v, float) and np.isnan(v)) else v
            continue
        try:
            out[i] = json.loads(v) if "'" not in v else ast.literal_eval(v)
        except (ValueError, SyntaxError):
            try:
                out[i] = ast.literal_eval(v)
            except (ValueError, SyntaxError) as exc:
                raise DataError(
                    f"{src.name}: column {col!r} at track_id={_sid(series.index[i])} (data record {i + 1}): "
                    f"not a Python list literal: {v[:60]!r}"
                ) from exc
        if not isinstance(out[i], list):
            raise DataError(
                f"{src.name}: column {col!r} at track_id={_sid(series.index[i])} (data record {i + 1}): "
                f"expected a list, got {v[:60]!r}"
            )
    return out


def _parse_tracks(src: TableSource, layout: Layout, cols: list[tuple]):
    import numpy as np
    import pandas as pd

    skip = 1 if layout == "flat" else 3
    names = ["track_id"] + ["\x1f".join(c) for c in cols]
    dtypes = {"track_id": "string"}
    for c, n in zip(cols, names[1:]):
        if c in _INT_COLUMNS or c in _FLOAT_COLUMNS:
            dtypes[n] = "float64"
        else:
            dtypes[n] = "str"
    data = src.read_bytes()
    try:
        raw = pd.read_csv(io.BytesIO(data), skiprows=skip, header=None, names=names, dtype=dtypes,
                          keep_default_na=False, na_values=[""], encoding="utf-8")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{src.name}: {str(exc).splitlines()[0]}") from exc
    ids = raw.pop("track_id")
    try:
        idv = pd.to_numeric(ids, errors="raise").astype("int64") if ids.notna().all() else ids
    except (ValueError, TypeError):
        idv = ids.astype(object)  # songmine's own tracks.csv: relative paths
    index = _index_from(src, idv.to_numpy() if hasattr(idv, "to_numpy") else idv)
    raw.index = index
    raw.columns = pd.MultiIndex.from_tuples(cols)
    out = {}
    for c in cols:
        s = raw[c]
        if c in _INT_COLUMNS:
            v = s.to_numpy()
            if np.isnan(v).any():
                if c in {("track", "duration"), ("track", "bit_rate")}:
                    out[c] = s.astype("Int64") if not np.isnan(v).all() else s.astype("Int64")
                    continue
                r = int(np.flatnonzero(np.isnan(v))[0])
                raise DataError(f"{src.name}: empty integer column {c!r} at track_id={_sid(index[r])} "
                                f"(data record {r + 1})")
            if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
                r = int(np.flatnonzero(~np.isfinite(v) | (v != np.round(v)))[0])
                raise DataError(f"{src.name}: column {c!r} at track_id={_sid(index[r])} (data record {r + 1}): "
                                f"{v[r]!r} is not an integer")
            out[c] = s.astype("int64")
        elif c in _FLOAT_COLUMNS:
            out[c] = s
        elif c in _LIST_COLUMNS:
            out[c] = pd.Series(_parse_list(src, c, s), index=index, dtype=object)
        elif c in _DATE_COLUMNS:
            try:
                out[c] = pd.to_datetime(s, format="ISO8601").astype("datetime64[us]")  # one unit, whatever the data
            except (ValueError, TypeError):
                bad = pd.to_datetime(s, errors="coerce", format="ISO8601").isna() & s.notna()
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{src.name}: column {c!r} at track_id={_sid(index[r])} (data record {r + 1}): "
                                f"not a date: {s.iloc[r]!r}") from None
        elif c == ("set", "subset"):
            bad = s.notna() & ~s.isin(_SUBSETS)
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{src.name}: column {c!r} at track_id={_sid(index[r])} (data record {r + 1}): "
                                f"{s.iloc[r]!r} is not one of {_SUBSETS}")
            out[c] = s.astype(pd.CategoricalDtype(_SUBSETS, ordered=True))
        elif c in _CATEGORY_COLUMNS:
            out[c] = s.astype("category")
        else:
            out[c] = s
    df = pd.DataFrame(out, index=index)
    df.columns = pd.MultiIndex.from_tuples(cols)
    return df


def _parse_genres(src: TableSource):
    import pandas as pd

    rows = _read_header_rows(src, 1)
    header = rows[0]
    if header[:1] != ["genre_id"] or tuple(header[1:]) != GENRES_COLUMNS:
        missing = [c for c in GENRES_COLUMNS if c not in header[1:]]
        extra = [c for c in header[1:] if c not in GENRES_COLUMNS]
        raise DataError(
            f"{src.name}: header {header!r} != ['genre_id', {', '.join(map(repr, GENRES_COLUMNS))}]"
            + (f"; missing column {', '.join(map(repr, missing))}" if missing else "")
            + (f"; unexpected column {', '.join(map(repr, extra))}" if extra else "")
        )
    try:
        df = pd.read_csv(io.BytesIO(src.read_bytes()), index_col=0,
                         dtype={"#tracks": "int64", "parent": "int64", "top_level": "int64"})
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{src.name}: {str(exc).splitlines()[0]}") from exc
    df.index = _index_from(src, df.index.to_numpy(), kind="genre_id")
    return df


# --------------------------------------------------------------------------- cache + entry points


def _cache_path(src: TableSource, nonfinite: NonFinite) -> tuple[Path, dict]:
    """The cache file of ``src`` (naming and eviction: :mod:`songmine.catalog.cache`) and the
    source record stored in it (for ``songmine catalog cache``)."""
    from .cache import entry_path

    identity = src.identity()
    source = f"{src.path.resolve()}|{src.member}|{nonfinite}"
    record = {"table": src.table, "path": str(src.path.resolve()), "member": src.member,
              "identity": identity, "nonfinite": nonfinite}
    return entry_path(src.table, source, identity, LOADER_VERSION), record


def _to_parquet(df, path: Path, source: dict | None = None) -> None:
    """Write with flattened string column names; the levels go in the file metadata.

    Written to a temp name in the same directory, then renamed: readers see a whole
    file or none. With ``source`` (a cache entry), stale entries are evicted after.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = df.copy(deep=False)
    levels = df.columns.nlevels
    names = list(df.columns.names)
    flat.columns = ["\x1f".join(c) if levels > 1 else c for c in df.columns]
    list_codes = {}
    for name in flat.columns:  # list columns: a code per row + the distinct lists (few: genres, tags)
        if flat[name].dtype == object:
            enc = _encode_lists(flat[name])
            if enc is not None:
                flat[name], list_codes[name] = enc
    t = pa.Table.from_pandas(flat, preserve_index=True)
    meta = dict(t.schema.metadata or {})
    import numpy as np

    all_f32 = bool(len(df.columns)) and all(dt == np.float32 for dt in df.dtypes)
    meta[b"songmine.catalog"] = json.dumps({"levels": levels, "names": names, "float32": all_f32,
                                            "columns": list(flat.columns), "list_codes": list_codes,
                                            "source": source}).encode()
    # Cheap to read back: floats keep NaN as a value (not null) in non-nullable columns, so parquet stores
    # them REQUIRED with no definition levels to decode; floats are not dictionary-encoded (a fallback
    # to plain anyway on real data); no statistics (nobody filters this file).
    import pyarrow.compute as pc

    fields, arrays = [], []
    for f, col in zip(t.schema, t.columns):
        if pa.types.is_floating(f.type):
            if col.null_count:
                col = pc.fill_null(col, pa.scalar(float("nan"), f.type))
            f = f.with_nullable(False)
        fields.append(f)
        arrays.append(col)
    t = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))
    dictionary = [f.name for f in fields if not pa.types.is_floating(f.type)]
    from .cache import evict, temp_path

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        pq.write_table(t, tmp, use_dictionary=dictionary, write_statistics=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if source is not None:
        evict(path, LOADER_VERSION)


def _from_parquet(path: Path):
    """Read a cache file written by :func:`_to_parquet` (no validation: the file was validated when cached).

    Memory-mapped ``ParquetFile.read`` (not ``pq.read_table``, which imports the
    dataset machinery, a noticeable share of a small table's load). Dates and
    categoricals come back natively from the Arrow types; list columns are
    rebuilt from their flat values and offsets (one slice per row) instead of
    going through per-row numpy arrays.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.ParquetFile(path, memory_map=True).read()
    info = json.loads(t.schema.metadata[b"songmine.catalog"])
    if info.get("float32"):
        # all-float32 table (features): fill one Fortran-ordered array, releasing Arrow columns as we go
        index_name = [n for n in t.column_names if n not in info["columns"]]
        idx = t.column(index_name[0]).to_pandas() if index_name else None
        if index_name:
            t = t.drop_columns(index_name)
        arr = np.empty((t.num_rows, t.num_columns), dtype=np.float32, order="F")
        names = t.column_names
        for j in range(t.num_columns):
            arr[:, j] = t.column(0).to_numpy()
            t = t.remove_column(0)
        cols = pd.MultiIndex.from_tuples([tuple(c.split("\x1f")) for c in names], names=info["names"])
        index = pd.Index(idx, name="track_id") if idx is not None else None
        return pd.DataFrame(arr, index=index, columns=cols, copy=False)
    coded = info.get("list_codes", {})
    lists = [(j, f.name) for j, f in enumerate(t.schema)
             if f.name in info["columns"] and (f.name in coded or pa.types.is_list(f.type))]
    gc_was_on = gc.isenabled()
    gc.disable()  # ~500K new lists that all stay alive: the cyclic collector would rescan them in vain
    try:
        rebuilt = {name: _decode_lists(t.column(name), coded[name]) if name in coded else
                   _lists_from_arrow(t.column(name)) for _, name in lists}
    finally:
        if gc_was_on:
            gc.enable()
    if lists:
        t = t.drop_columns([name for _, name in lists])
    df = t.to_pandas()
    order = info["columns"]
    for _, name in sorted(lists, key=lambda x: order.index(x[1])):  # back in place, in column order
        df.insert(order.index(name), name, rebuilt[name])
    if info["levels"] > 1:
        df.columns = pd.MultiIndex.from_tuples([tuple(c.split("\x1f")) for c in df.columns],
                                               names=info["names"])
    return df


def _encode_lists(series):
    """``(int32 codes, distinct lists)`` for a column of lists of ints/strings (JSON-exact), else None."""
    import numpy as np
    import pandas as pd

    values = series.to_numpy()
    if not len(values) or not all(type(v) is list for v in values):
        return None
    keys = [tuple(v) for v in values]
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    distinct = [list(u) for u in uniques]
    if not all(type(x) in (int, str) for u in distinct for x in u) or len(distinct) > 2**31 - 1:
        return None  # anything json would not give back exactly stays an Arrow list column
    return pd.Series(codes.astype(np.int32), index=series.index), distinct


def _decode_lists(col, distinct: list) -> "np.ndarray":
    """Codes + distinct lists → an object array of fresh Python lists (one per row, never shared)."""
    import numpy as np

    codes = col.to_numpy().tolist()
    return np.fromiter(map(list.copy, map(distinct.__getitem__, codes)), dtype=object, count=len(codes))


def _lists_from_arrow(col) -> "np.ndarray":
    """An Arrow list column as an object array of Python lists (nulls → empty lists)."""
    import numpy as np
    import pyarrow as pa

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        arr = arr.fill_null(pa.scalar([], type=arr.type))
    off = arr.offsets.to_numpy()
    values = arr.values.slice(int(off[0]), int(off[-1] - off[0])) if len(arr) else arr.values.slice(0, 0)
    flat = values.to_pylist() if not pa.types.is_integer(values.type) else values.to_numpy().tolist()
    start = (off - off[0]).tolist()
    return np.fromiter((flat[a:b] for a, b in zip(start[:-1], start[1:])), dtype=object, count=len(arr))


def load(
    source: str | os.PathLike[str],
    table: str | None = None,
    *,
    cache: bool = True,
    nonfinite: NonFinite = "raise",
) -> "pd.DataFrame":
    """Load one FMA table (official or flattened layout) with the reference loader's semantics.

    Parameters
    ----------
    source : path
        A CSV file (its name says which table, as in FMA's ``utils.load``), a
        directory holding the tables, or ``fma_metadata.zip``.
    table : {"tracks", "genres", "features", "echonest"}, optional
        Which table; required for a directory or an archive.
    cache : bool
        Read/write a parquet copy in ``cache_dir()/catalog`` keyed by the file's
        identity (path, size, mtime, zip member CRC).
    nonfinite : {"raise", "drop", "keep"}
        What to do with NaN/±inf in feature values (features.csv; the float
        columns of echonest.csv other than ``ranks`` and coordinates).

    Returns
    -------
    pandas.DataFrame
        Index ``track_id`` (``genre_id`` for genres); columns the official
        MultiIndex: tracks 2 levels (52 columns, or songmine's subset for a
        user's library), features 3 levels named ``feature, statistics,
        number`` (518 float32 columns), echonest 3 levels (249 columns, float32
        except strings and coordinates). tracks: list columns parsed, dates as
        datetimes, categoricals (``set.subset`` ordered small < medium < large).

    Raises
    ------
    DataError
        Missing file, missing/renamed/duplicated column, duplicate ids,
        non-finite features, unparsable values, truncated zip — naming the
        file, the column and the record.

    Examples
    --------
    >>> from songmine.catalog import load
    >>> tracks = load("fma_metadata.zip", "tracks")          # doctest: +SKIP
    >>> features = load("fma_metadata/features.csv")           # doctest: +SKIP
    >>> features["mfcc", "mean"].shape                          # doctest: +SKIP
    (106574, 20)
    """
    if nonfinite not in ("raise", "drop", "keep"):
        raise ParameterError(f"nonfinite={nonfinite!r} must be 'raise', 'drop' or 'keep'")
    src = resolve(source, table)
    cpath = None
    record = None
    if cache:
        try:
            cpath, record = _cache_path(src, nonfinite)
            if cpath.exists():
                return _from_parquet(cpath)
        except DataError:
            raise
        except FileNotFoundError:  # evicted by another process between exists() and open: a miss
            pass
        except Exception as exc:  # a broken cache file is never fatal
            log.warning("ignoring unreadable catalogue cache %s: %s", cpath, exc)
    df = _load_uncached(src, nonfinite)
    if cpath is not None:
        try:
            _to_parquet(df, cpath, record)
        except Exception as exc:  # read-only cache dir, odd dtypes...: loading still worked
            log.warning("could not write catalogue cache %s: %s", cpath, exc)
    return df


def _load_uncached(src: TableSource, nonfinite: NonFinite):
    if src.table == "genres":
        return _parse_genres(src)
    layout = detect_layout(src)
    cols = _header_columns(src, layout)
    if src.table == "tracks":
        return _parse_tracks(src, layout, cols)
    return _parse_numeric(src, layout, cols, nonfinite)


def load_tables(
    source: str | os.PathLike[str],
    tables: tuple[str, ...] = ("tracks", "features", "echonest"),
    *,
    cache: bool = True,
    nonfinite: NonFinite = "raise",
) -> dict[str, "pd.DataFrame"]:
    """Load several tables from one directory or archive (all must be present)."""
    missing = []
    srcs = {}
    for t in tables:
        try:
            srcs[t] = resolve(source, t)
        except DataError as exc:
            missing.append(str(exc))
    if missing:
        raise DataError("; ".join(missing))
    return {t: load(source, t, cache=cache, nonfinite=nonfinite) for t in tables}
