"""A catalogue frame as parquet and back, fast: MultiIndex columns, list cells, float32 blocks.

The catalogue's tables have two- or three-level column names, list-valued cells
(genres, tags) and, for features, 518 float32 columns. :func:`write_frame`
flattens the names (the levels go in the file's metadata), stores each list
column as a code per row plus its few distinct lists, and keeps floats plain
and non-nullable; :func:`read_frame` rebuilds the same frame with a
memory-mapped read. Used by the parquet cache (:mod:`songmine.catalog.cache`).
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np

from ..extras import require

require("catalog", __name__)  # a missing package of the extra: one line naming it, not a traceback

__all__ = ["write_frame", "read_frame", "FRAME_METADATA_KEY"]

#: The parquet metadata key under which the frame's layout (and its source) is stored.
FRAME_METADATA_KEY = b"songmine.catalog"


def write_frame(df, path: Path, source: dict | None = None) -> None:
    """Write ``df`` to ``path`` with flattened string column names; the levels go in the file metadata.

    ``source`` (a JSON-able record of where the frame came from) is stored beside them.
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

    all_f32 = bool(len(df.columns)) and all(dt == np.float32 for dt in df.dtypes)
    meta[FRAME_METADATA_KEY] = json.dumps(
        {
            "levels": levels,
            "names": names,
            "float32": all_f32,
            "columns": list(flat.columns),
            "list_codes": list_codes,
            "source": source,
        }
    ).encode()
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
    pq.write_table(t, path, use_dictionary=dictionary, write_statistics=False)


def read_frame(path: Path):
    """Read a file written by :func:`write_frame` (no validation: the frame was validated when written).

    Memory-mapped ``ParquetFile.read`` (not ``pq.read_table``, which imports the
    dataset machinery, a noticeable share of a small table's load). Dates and
    categoricals come back natively from the Arrow types; list columns are
    rebuilt from their flat values and offsets (one slice per row) instead of
    going through per-row numpy arrays.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.ParquetFile(path, memory_map=True).read()
    info = json.loads(t.schema.metadata[FRAME_METADATA_KEY])
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
    lists = [
        (j, f.name)
        for j, f in enumerate(t.schema)
        if f.name in info["columns"] and (f.name in coded or pa.types.is_list(f.type))
    ]
    gc_was_on = gc.isenabled()
    gc.disable()  # ~500K new lists that all stay alive: the cyclic collector would rescan them in vain
    try:
        rebuilt = {
            name: _decode_lists(t.column(name), coded[name]) if name in coded else _lists_from_arrow(t.column(name))
            for _, name in lists
        }
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
        df.columns = pd.MultiIndex.from_tuples([tuple(c.split("\x1f")) for c in df.columns], names=info["names"])
    return df


def _encode_lists(series):
    """``(int32 codes, distinct lists)`` for a column of lists of ints/strings (JSON-exact), else None."""
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


def _decode_lists(col, distinct: list) -> np.ndarray:
    """Codes + distinct lists → an object array of fresh Python lists (one per row, never shared)."""
    codes = col.to_numpy().tolist()
    return np.fromiter(map(list.copy, map(distinct.__getitem__, codes)), dtype=object, count=len(codes))


def _lists_from_arrow(col) -> np.ndarray:
    """An Arrow list column as an object array of Python lists (nulls → empty lists)."""
    import pyarrow as pa

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        arr = arr.fill_null(pa.scalar([], type=arr.type))
    off = arr.offsets.to_numpy()
    values = arr.values.slice(int(off[0]), int(off[-1] - off[0])) if len(arr) else arr.values.slice(0, 0)
    flat = values.to_pylist() if not pa.types.is_integer(values.type) else values.to_numpy().tolist()
    start = (off - off[0]).tolist()
    return np.fromiter((flat[a:b] for a, b in zip(start[:-1], start[1:])), dtype=object, count=len(arr))
