"""Merge FMA tables on the ``track_id`` index — never positionally.

Column names are flattened to one level with a prefix scheme that cannot
collide: ``<table>.<level>.<level>…`` joined with dots (FMA names contain
underscores, never dots), e.g. ``tracks.track.genre_top``,
``features.mfcc.mean.01``, ``echonest.audio_features.tempo`` (echonest's
constant first level ``echonest`` is dropped: the table prefix says it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import atomic_path
from ..errors import DataError, ParameterError
from ..extras import require
from .loaders import load_tables

require("catalog", __name__)  # a missing package of the extra: one line naming it, not a traceback

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["MergeReport", "flatten_columns", "merge", "merge_source", "audio_feature_columns", "SEP"]

#: Separator of the flattened column names.
SEP = "."


@dataclass(frozen=True, slots=True)
class InputCount:
    """Rows of one input table, how many survived the inner join, and how many were dropped."""

    table: str
    rows: int
    kept: int
    dropped: int
    columns: int


@dataclass(frozen=True, slots=True)
class MergeReport:
    """What :func:`merge` did: per-input row counts and the result's shape."""

    inputs: list[InputCount] = field(default_factory=list)
    rows: int = 0
    columns: int = 0
    output: str | None = None


def flatten_columns(df: pd.DataFrame, table: str) -> list[str]:
    """One-level names ``<table>.<l0>.<l1>…`` (echonest's constant level 0 dropped)."""
    out = []
    for c in df.columns:
        parts = list(c) if isinstance(c, tuple) else [str(c)]
        if table == "echonest" and parts and parts[0] == "echonest":
            parts = parts[1:]
        for p in parts:
            if SEP in str(p):
                raise DataError(f"{table}: column {c!r} contains {SEP!r}; cannot flatten unambiguously")
        out.append(SEP.join([table, *map(str, parts)]))
    return out


def merge(
    tables: dict[str, pd.DataFrame],
    *,
    order: tuple[str, ...] = ("tracks", "features", "echonest"),
) -> tuple[pd.DataFrame, MergeReport]:
    """Inner-join the given tables on their ``track_id`` index.

    Parameters
    ----------
    tables : dict of name → DataFrame
        As returned by :func:`songmine.catalog.load` (any of tracks, features,
        echonest; at least two).
    order : tuple of str
        Column-block order of the result.

    Returns
    -------
    (DataFrame, MergeReport)
        Rows sorted by ``track_id``; columns flattened (see module doc).

    Raises
    ------
    DataError
        Duplicate ids, ids of incompatible types (int vs path strings), or an
        empty intersection.
    """
    import pandas as pd

    names = [t for t in order if t in tables] + [t for t in tables if t not in order]
    if len(names) < 2:
        raise ParameterError(f"merge needs at least two tables, got {names}")
    kinds = {}
    for t in names:
        idx = tables[t].index
        if idx.has_duplicates:
            dup = np.asarray(idx[idx.duplicated()][0]).item()  # 656, not np.int64(656)
            raise DataError(f"{t}: duplicate track_id {dup!r}: refusing an ambiguous join")
        kinds[t] = "int" if pd.api.types.is_integer_dtype(idx.dtype) else "str"
    if len(set(kinds.values())) > 1:
        raise DataError(
            "track_id types differ between tables ("
            + ", ".join(f"{t}: {k}" for t, k in kinds.items())
            + "): FMA ids are integers, songmine's own are relative paths; they cannot be joined"
        )
    common = tables[names[0]].index
    for t in names[1:]:
        common = common.intersection(tables[t].index)
    common = common.sort_values()
    if len(common) == 0:
        raise DataError("the tables share no track_id: " + ", ".join(f"{t} {len(tables[t])} rows" for t in names))
    parts, counts = [], []
    for t in names:
        df = tables[t]
        sub = df.loc[common]  # label-based: aligned by id, never by position
        sub = sub.set_axis(flatten_columns(df, t), axis=1)
        parts.append(sub)
        counts.append(InputCount(t, len(df), len(common), len(df) - len(common), df.shape[1]))
    out = pd.concat(parts, axis=1)
    out.index.name = "track_id"
    if out.columns.has_duplicates:
        raise DataError(f"flattened column names collide: {list(out.columns[out.columns.duplicated()][:3])}")
    return out, MergeReport(counts, out.shape[0], out.shape[1])


def merge_source(
    source: str | os.PathLike[str],
    *,
    echonest: bool = True,
    cache: bool = True,
    nonfinite: str = "raise",
) -> tuple[pd.DataFrame, MergeReport]:
    """Load tracks + features (+ echonest) from a directory or ``fma_metadata.zip`` and merge them."""
    names = ("tracks", "features", "echonest") if echonest else ("tracks", "features")
    tables = load_tables(source, names, cache=cache, nonfinite=nonfinite)
    return merge(tables)


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> str:
    """Write a merged table: parquet by default, CSV when the name ends in ``.csv`` (or ``.csv.gz``)."""
    p = Path(path)
    name = p.name.lower()
    with atomic_path(p) as tmp:
        if name.endswith(".csv") or name.endswith(".csv.gz"):
            df.to_csv(tmp, compression="gzip" if name.endswith(".gz") else None)
        else:
            df.to_parquet(tmp, index=True)
    return str(p)


def audio_feature_columns(df: pd.DataFrame) -> list[str]:
    """The columns of a merged table that are audio features (the inputs for clustering).

    ``features.*`` plus ``echonest.audio_features.*`` and
    ``echonest.temporal_features.*`` — never ids, counts, dates or genres.
    """
    keep = ("features" + SEP, f"echonest{SEP}audio_features{SEP}", f"echonest{SEP}temporal_features{SEP}")
    return [c for c in df.columns if isinstance(c, str) and c.startswith(keep)]
