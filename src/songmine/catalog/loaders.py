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
import io
import json
import logging
import os
import re
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import DataError, ParameterError
from ..extras import require
from .cache import entry_for, read_entry, write_entry
from .schema import (
    CATEGORY_COLUMNS,
    DATE_COLUMNS,
    ECHONEST_COLUMNS,
    ECHONEST_FLOAT64_COLUMNS,
    ECHONEST_NAN_OK_COLUMNS,
    ECHONEST_STRING_COLUMNS,
    FEATURE_COLUMNS,
    FLOAT_COLUMNS,
    GENRES_COLUMNS,
    INT_COLUMNS,
    LIST_COLUMNS,
    SUBSETS,
    TRACKS_COLUMNS,
    USER_TRACKS_COLUMNS,
)
from .sources import ZIP_ERRORS, TableSource, resolve

require("catalog", __name__)  # a missing package of the extra: one line naming it, not a traceback

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["load", "load_tables", "detect_layout"]

Layout = Literal["official", "flat"]
NonFinite = Literal["raise", "drop", "keep"]


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
        except ZIP_ERRORS as exc:
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
                convert_options=pacsv.ConvertOptions(
                    column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
                ),
            )
    except ZIP_ERRORS as exc:
        raise DataError(f"{src.name}: corrupt or truncated: {exc}") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{src.name}: {_arrow_message(exc, names)}") from exc


def _arrow_message(exc: Exception, names: list[str]) -> str:
    msg = str(exc).strip().splitlines()[0]
    # "In CSV column #12: Row #40: CSV conversion error to float: invalid value 'abc'"
    m = re.search(r"column #(\d+)", msg)
    if m and int(m.group(1)) < len(names):
        msg += f" [column {names[int(m.group(1))]!r}]"
    return msg


def _sid(v) -> str:
    """An id as a message shows it (plain ints, quoted strings)."""
    return repr(v.item() if hasattr(v, "item") else v)


def _index_from(src: TableSource, values, *, kind: str = "track_id"):
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
        elif c in ECHONEST_STRING_COLUMNS:
            types[names[j + 1]] = pa.string()
        elif c in ECHONEST_FLOAT64_COLUMNS:
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
        numeric = [c for c in cols if c not in ECHONEST_STRING_COLUMNS]
        df = _check_finite(src, df, numeric, nonfinite, nan_ok=ECHONEST_NAN_OK_COLUMNS)
    return df


def _parse_list(src: TableSource, col, series):
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
    import pandas as pd

    skip = 1 if layout == "flat" else 3
    names = ["track_id"] + ["\x1f".join(c) for c in cols]
    dtypes = {"track_id": "string"}
    for c, n in zip(cols, names[1:]):
        if c in INT_COLUMNS or c in FLOAT_COLUMNS:
            dtypes[n] = "float64"
        else:
            dtypes[n] = "str"
    data = src.read_bytes()
    try:
        raw = pd.read_csv(
            io.BytesIO(data),
            skiprows=skip,
            header=None,
            names=names,
            dtype=dtypes,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
        )
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
        if c in INT_COLUMNS:
            v = s.to_numpy()
            if np.isnan(v).any():
                if c in {("track", "duration"), ("track", "bit_rate")}:
                    out[c] = s.astype("Int64") if not np.isnan(v).all() else s.astype("Int64")
                    continue
                r = int(np.flatnonzero(np.isnan(v))[0])
                raise DataError(
                    f"{src.name}: empty integer column {c!r} at track_id={_sid(index[r])} (data record {r + 1})"
                )
            if not np.all(np.isfinite(v)) or not np.all(v == np.round(v)):
                r = int(np.flatnonzero(~np.isfinite(v) | (v != np.round(v)))[0])
                raise DataError(
                    f"{src.name}: column {c!r} at track_id={_sid(index[r])} (data record {r + 1}): "
                    f"{v[r]!r} is not an integer"
                )
            out[c] = s.astype("int64")
        elif c in FLOAT_COLUMNS:
            out[c] = s
        elif c in LIST_COLUMNS:
            out[c] = pd.Series(_parse_list(src, c, s), index=index, dtype=object)
        elif c in DATE_COLUMNS:
            try:
                out[c] = pd.to_datetime(s, format="ISO8601").astype("datetime64[us]")  # one unit, whatever the data
            except (ValueError, TypeError):
                bad = pd.to_datetime(s, errors="coerce", format="ISO8601").isna() & s.notna()
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{src.name}: column {c!r} at track_id={_sid(index[r])} (data record {r + 1}): "
                    f"not a date: {s.iloc[r]!r}"
                ) from None
        elif c == ("set", "subset"):
            bad = s.notna() & ~s.isin(SUBSETS)
            if bad.any():
                r = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{src.name}: column {c!r} at track_id={_sid(index[r])} (data record {r + 1}): "
                    f"{s.iloc[r]!r} is not one of {SUBSETS}"
                )
            out[c] = s.astype(pd.CategoricalDtype(SUBSETS, ordered=True))
        elif c in CATEGORY_COLUMNS:
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
        df = pd.read_csv(
            io.BytesIO(src.read_bytes()),
            index_col=0,
            dtype={"#tracks": "int64", "parent": "int64", "top_level": "int64"},
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{src.name}: {str(exc).splitlines()[0]}") from exc
    df.index = _index_from(src, df.index.to_numpy(), kind="genre_id")
    return df


# --------------------------------------------------------------------------- cache + entry points


def load(
    source: str | os.PathLike[str],
    table: str | None = None,
    *,
    cache: bool = True,
    nonfinite: NonFinite = "raise",
) -> pd.DataFrame:
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
            cpath, record = entry_for(src, nonfinite)
            if cpath.exists():
                return read_entry(cpath)
        except DataError:
            raise
        except FileNotFoundError:  # evicted by another process between exists() and open: a miss
            pass
        except Exception as exc:  # a broken cache file is never fatal
            log.warning("ignoring unreadable catalogue cache %s: %s", cpath, exc)
    df = _load_uncached(src, nonfinite)
    if cpath is not None:
        try:
            write_entry(df, cpath, record)
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
) -> dict[str, pd.DataFrame]:
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
