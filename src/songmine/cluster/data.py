"""Reading a table to cluster and telling its columns apart: audio features vs metadata.

Accepted tables (``TABLE`` of ``songmine cluster``):

* the output of ``songmine catalog merge`` (parquet or CSV; names like
  ``features.mfcc.mean.01``, ``echonest.audio_features.tempo``,
  ``tracks.track.genre_top``, index ``track_id``);
* FMA-layout ``features.csv`` (three header rows, e.g. from ``songmine
  features``), joined by ``track_id`` with a ``tracks.csv`` beside it when there is one;
* flattened one-header CSVs (``mfcc_mean_01``, ``audio_features_tempo``,
  ``echonest_audio_features_tempo``, ``track_genre_top``…).

**Clustering inputs are audio features only**: ``features`` columns (the 518
FMA statistics) plus echonest ``audio_features`` and ``temporal_features``.
Ids, listens, dates, genres and the other metadata are never inputs; they are
kept to interpret the clusters.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..catalog import load
from ..catalog.schema import ECHONEST_AUDIO_FEATURES, FEATURE_FAMILIES, FEATURE_STATISTICS
from ..errors import DataError, ParameterError
from ..extras import require

require("cluster", __name__)  # a missing package of the extra: one line naming it, not a traceback

if TYPE_CHECKING:  # pandas is imported where a table is built (the extra)
    import pandas as pd

__all__ = [
    "read_table",
    "feature_columns",
    "norm_name",
    "find_column",
    "clean_features",
    "input_columns",
    "FeaturePlan",
]

log = logging.getLogger(__name__)

FAMILIES = tuple(FEATURE_FAMILIES)
STATS = FEATURE_STATISTICS
ECHO_AUDIO = ECHONEST_AUDIO_FEATURES
_FEATURE_RE = re.compile(rf"^(?:features_)?(?:{'|'.join(FAMILIES)})_(?:{'|'.join(STATS)})_\d+$")
_ECHO_RE = re.compile(rf"^(?:echonest_)?(?:(?:audio_features_)?(?:{'|'.join(ECHO_AUDIO)})|temporal_features_\d{{3}})$")
_ECHO_AUDIO_RE = re.compile(rf"^(?:echonest_)?audio_features_(?:{'|'.join(ECHO_AUDIO)})$")


def norm_name(name) -> str:
    """Normalise a column name for matching: tuples/dots → underscores, lower case."""
    if isinstance(name, tuple):
        name = "_".join(str(p) for p in name if str(p) and not str(p).startswith("Unnamed"))
    return str(name).strip().lower().replace(".", "_").replace(" ", "_")


def feature_columns(columns, *, echonest: bool = True) -> tuple[list, list]:
    """Split column names into ``(fma_feature_columns, echonest_feature_columns)`` (audio only)."""
    feats, echo = [], []
    for c in columns:
        n = norm_name(c)
        if _FEATURE_RE.match(n):
            feats.append(c)
        elif echonest and _ECHO_RE.match(n):
            echo.append(c)
    return feats, echo


def find_column(columns, *suffixes: str):
    """The first column whose normalised name equals or ends with ``_<suffix>`` for the first matching suffix."""
    normed = [(c, norm_name(c)) for c in columns]
    for s in suffixes:
        for c, n in normed:
            if n == s or n.endswith("_" + s):
                return c
    return None


def _flatten(df, sep: str = "."):
    if hasattr(df.columns, "levels"):
        df.columns = [sep.join(str(p) for p in c if str(p) and not str(p).startswith("Unnamed")) for c in df.columns]
    return df


def _read_csv(path: Path):
    import pandas as pd

    with open(path, encoding="utf-8", errors="replace") as fh:
        head = [fh.readline() for _ in range(4)]
    first = head[0].split(",", 1)[0].strip()
    if first == "feature" or (
        first == "" and head[2].split(",", 1)[0].strip() not in ("track_id",) and head[3].startswith("track_id")
    ):
        table = "features" if first == "feature" else "echonest"
        try:
            df = load(path, table=table, nonfinite="keep", cache=False)
        except Exception:  # noqa: BLE001  (fall back to plain pandas: the layout is simple)
            df = pd.read_csv(path, index_col=0, header=[0, 1, 2])
        df = _flatten(df)
        df.columns = [f"{table}.{c}" if not str(c).startswith(table) else c for c in df.columns]
        df.index.name = "track_id"
        return df
    if head[0].startswith(",") and head[2].startswith("track_id"):  # tracks.csv layout
        try:
            df = load(path, table="tracks", cache=False)
        except Exception:  # noqa: BLE001
            df = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
        df = _flatten(df)
        df.columns = [f"tracks.{c}" for c in df.columns]
        df.index.name = "track_id"
        return df
    df = pd.read_csv(path, low_memory=False)
    idcol = find_column(df.columns, "track_id")
    if idcol is None and str(df.columns[0]).startswith("Unnamed"):
        idcol = df.columns[0]
    if idcol is not None:
        df = df.set_index(idcol)
        df.index.name = "track_id"
    return df


def read_table(path) -> pd.DataFrame:
    """Read a table to cluster (see the module doc); rows indexed by ``track_id``.

    Raises
    ------
    DataError
        Missing or unreadable file, duplicate track ids.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
            if "track_id" in df.columns:
                df = df.set_index("track_id")
        elif p.name.lower().endswith((".csv", ".csv.gz")):
            df = _read_csv(p)
        else:
            raise DataError(f"{p}: unknown table type (expected .parquet or .csv)")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{p}: cannot read the table: {type(exc).__name__}: {exc}") from None
    df = _flatten(df)
    # FMA layout features.csv next to a tracks.csv: bring in the metadata by track_id (never by position).
    feats, _ = feature_columns(df.columns)
    tracks = p.with_name("tracks.csv")
    if feats and find_column(df.columns, "genre_top", "genre") is None and tracks.exists() and tracks != p:
        try:
            meta = _read_csv(tracks)
            df = df.join(meta, how="left")
            log.info("joined %s by track_id (%d metadata columns)", tracks, meta.shape[1])
        except Exception as exc:  # noqa: BLE001
            log.warning("could not read %s for metadata: %s", tracks, exc)
    if df.index.has_duplicates:
        raise DataError(f"{p}: duplicate track_id {np.asarray(df.index[df.index.duplicated()][0]).item()!r}")
    return df


@dataclass
class FeaturePlan:
    """Which columns are clustered on, and what happened to non-finite values."""

    columns: list
    fma_columns: list
    echonest_columns: list
    rows_in: int
    rows_used: int
    nonfinite_cells: int
    nonfinite_rows: int
    policy: str
    generic: bool

    def summary(self) -> dict:
        return {
            "n_columns": len(self.columns),
            "n_fma_feature_columns": len(self.fma_columns),
            "n_echonest_columns": len(self.echonest_columns),
            "rows_in": self.rows_in,
            "rows_used": self.rows_used,
            "nonfinite_cells": self.nonfinite_cells,
            "nonfinite_rows": self.nonfinite_rows,
            "nonfinite_policy": self.policy,
            "generic_numeric_table": self.generic,
        }


_NOT_INPUTS = re.compile(
    r"(^|_)(id|ids|listens|favorites|comments|interest|date|year|number|bit_rate|"
    r"latitude|longitude|genre|genres|genre_top|tracks|rank|split|subset|duration)(_|$)"
)


def input_columns(columns, *, echonest: bool = True, numeric=None) -> tuple[list, list, list, bool]:
    """The columns clustered on: ``(columns, fma_columns, echonest_columns, generic)``.

    The FMA feature columns and (with ``echonest``) the echonest audio ones; a
    table without any is *generic*: every column ``numeric(column)`` says is a
    number and whose name is not metadata (ids, listens, dates, genres…).

    Raises
    ------
    DataError
        No such column.
    """
    feats, echo = feature_columns(columns, echonest=echonest)
    cols = feats + echo
    if cols:
        return cols, feats, echo, False
    num = [c for c in columns if numeric is not None and numeric(c) and not _NOT_INPUTS.search(norm_name(c))]
    if not num:
        raise DataError(f"the table has no numeric feature columns (columns: {list(columns)[:8]}…)")
    log.warning("no FMA feature columns found: clustering on %d numeric columns", len(num))
    return num, feats, echo, True


def clean_features(df, *, echonest: bool = True, nonfinite: str = "error"):
    """Select the audio-feature columns of ``df`` and deal with NaN/±inf.

    Parameters
    ----------
    df : DataFrame
    echonest : bool
        Include echonest audio/temporal features when present.
    nonfinite : {"error", "drop", "impute"}
        ``error`` reports counts and stops; ``drop`` removes the rows;
        ``impute`` replaces them by the column median.

    Returns
    -------
    X : np.ndarray [shape=(rows_used, d)], float64
    keep : np.ndarray of bool [shape=(len(df),)] rows used
    plan : FeaturePlan

    Raises
    ------
    DataError
        No numeric columns, or non-finite values with ``nonfinite="error"``.
    """
    if nonfinite not in ("error", "drop", "impute"):
        raise ParameterError(f"nonfinite={nonfinite!r} must be 'error', 'drop' or 'impute'")
    cols, feats, echo, generic = input_columns(
        df.columns, echonest=echonest, numeric=lambda c: np.issubdtype(np.asarray(df[c]).dtype, np.number)
    )
    X = df[cols].to_numpy(dtype=np.float64, na_value=np.nan) if hasattr(df, "to_numpy") else np.asarray(df[cols])
    bad = ~np.isfinite(X)
    n_bad = int(bad.sum())
    bad_rows = bad.any(axis=1)
    keep = np.ones(len(X), dtype=bool)
    if n_bad:
        worst = [cols[i] for i in np.argsort(-bad.sum(axis=0))[:3] if bad[:, i].any()]
        msg = (
            f"{n_bad} NaN/±inf feature values in {int(bad_rows.sum())} of {len(X)} rows "
            f"(most in {', '.join(map(str, worst))})"
        )
        if nonfinite == "error":
            raise DataError(msg + "; rerun with --nonfinite drop or --nonfinite impute")
        log.warning("%s: %s", msg, "dropping those rows" if nonfinite == "drop" else "imputing column medians")
        if nonfinite == "drop":
            keep = ~bad_rows
            X = X[keep]
            if len(X) == 0:
                raise DataError(msg + "; no row left after dropping them")
        else:
            Xm = np.where(bad, np.nan, X)
            med = np.nanmedian(Xm, axis=0)
            if np.isnan(med).any():
                raise DataError(
                    f"column {cols[int(np.flatnonzero(np.isnan(med))[0])]!r} has no finite value to impute from"
                )
            X = np.where(bad, med[None, :], X)
    plan = FeaturePlan(cols, feats, echo, len(df), int(keep.sum()), n_bad, int(bad_rows.sum()), nonfinite, generic)
    return X, keep, plan
