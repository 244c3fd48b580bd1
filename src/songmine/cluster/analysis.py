"""From a catalogue table to explained clusters: the whole ``songmine cluster run`` pipeline.

Steps (:func:`run`): pick the audio-feature columns (never ids, listens, dates
or genres) → NaN/inf policy → standardise + PCA (:mod:`.reduce`) → choose k
(:mod:`.choose_k`, unless given) → k-means (our estimator, chosen engine) →
interpretation on 5–10 metadata variables:

* numeric variables are cut into four **rank-based** quartiles (ties broken by
  order of appearance, so repeated values still give four equal groups);
  missing values are a visible ``unknown`` category, never dropped;
* one pivot table per variable, clusters × categories, **normalised by
  column** (each category's tracks split across clusters: every column sums
  to 100 %);
* per cluster, the most over-represented genre with its lift over the base
  rate, and a plain-words paragraph generated from these numbers;
* comparisons: our k-means (random and k-means++) vs scikit-learn's k-means++
  (inertia, adjusted Rand index, time), and with vs without echonest features
  (genre purity and normalised mutual information).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..extras import require

require("cluster", __name__)  # before the extra's packages: a missing one is one line naming the extra

from sklearn import metrics  # noqa: E402

from ..errors import DataError, ParameterError  # noqa: E402
from .choose_k import ChooseKConfig, ChooseKResult, choose_k, narrow_k_values, silhouette_score  # noqa: E402
from .data import clean_features, feature_columns, find_column, norm_name  # noqa: E402
from .kmeans import KMeans  # noqa: E402
from .reduce import ReduceConfig, Reduction, reduce  # noqa: E402

__all__ = [
    "RunConfig",
    "ClusterAnalysis",
    "Variable",
    "run",
    "quartiles",
    "categorize",
    "pivot_by_column",
    "informative_variables",
    "representative_genres",
    "genre_min_count",
    "genre_rule",
    "adjusted_rand_index",
    "normalized_mutual_info",
    "purity",
    "find_variables",
]

log = logging.getLogger(__name__)

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Settings of :func:`run` (the CLI options map one to one)."""

    k: int | None = None
    k_values: tuple[int, ...] = tuple(range(2, 16))
    seed: int = 0
    engine: str = "local"
    n_init: int = 3
    max_iter: int = 300
    echonest: bool = True
    nonfinite: str = "error"
    reduce: ReduceConfig = ReduceConfig()
    genre_column: str | None = None
    max_variables: int = 10
    compare_sklearn: bool = True
    compare_echonest: bool = True
    projection_sample: int = 6000
    init: object = "k-means++"  # or the initial centres (k × components): one run from them

    def __post_init__(self):
        if self.k is not None and (not isinstance(self.k, int) or self.k < 1):
            raise ParameterError(f"k={self.k!r} must be an integer >= 1")
        if self.n_init < 1 or self.max_iter < 1:
            raise ParameterError(f"n_init={self.n_init} and max_iter={self.max_iter} must be >= 1")
        if not 5 <= self.max_variables <= 20:
            raise ParameterError(f"max_variables={self.max_variables} must be in [5, 20]")


# -- metrics on labelings --------------------------------------------------------------------------
def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labelings (scikit-learn's ``adjusted_rand_score``)."""
    return float(metrics.adjusted_rand_score(np.asarray(a), np.asarray(b)))


def normalized_mutual_info(a, b) -> float:
    """Mutual information normalised by the arithmetic mean of the entropies (scikit-learn's default)."""
    return float(metrics.normalized_mutual_info_score(np.asarray(a), np.asarray(b)))


def purity(clusters, classes) -> float:
    """Share of tracks whose cluster's majority class is their class."""
    C = metrics.cluster.contingency_matrix(np.asarray(clusters), np.asarray(classes))
    return float(C.max(axis=1).sum() / C.sum())


# -- variables and categories ------------------------------------------------------------------------
@dataclass(frozen=True)
class Variable:
    """An interpretation variable: ``key`` (short), ``column`` in the table, human ``label``, ``kind``."""

    key: str
    column: object
    label: str
    kind: str  # "numeric" | "categorical" | "year"
    unit: str = ""


# (key, label, unit, kind, suffixes to look for)
_CANDIDATES = [
    ("genre", "top genre", "", "categorical", ("track_genre_top", "genre_top", "genre")),
    ("tempo", "tempo", "BPM", "numeric", ("audio_features_tempo", "tempo")),
    ("energy", "energy", "", "numeric", ("audio_features_energy", "energy")),
    ("danceability", "danceability", "", "numeric", ("audio_features_danceability", "danceability")),
    ("acousticness", "acousticness", "", "numeric", ("audio_features_acousticness", "acousticness")),
    ("valence", "valence (positiveness)", "", "numeric", ("audio_features_valence", "valence")),
    ("duration", "duration", "s", "numeric", ("track_duration", "duration_s", "duration")),
    ("listens", "listens", "", "numeric", ("track_listens", "listens")),
    ("year", "year created", "", "year", ("track_date_created", "album_date_released", "year", "date")),
    ("language", "language", "", "categorical", ("track_language_code", "language_code", "language")),
    ("brightness", "brightness (spectral centroid)", "Hz", "numeric", ("spectral_centroid_mean_01",)),
    ("loudness", "loudness (RMS energy)", "", "numeric", ("rmse_mean_01",)),
    ("noisiness", "noisiness (zero-crossing rate)", "", "numeric", ("zcr_mean_01",)),
    ("artist", "artist", "", "categorical", ("artist_name",)),
    ("album", "album", "", "categorical", ("album_title",)),
]


def find_variables(df, *, genre_column: str | None = None, max_variables: int = 10, coverage=None) -> list[Variable]:
    """The interpretation variables present in ``df`` (genre first), at most ``max_variables``.

    ``df`` needs only ``columns``; ``coverage(column)`` is the share of rows with a value
    (default: from ``df``; a Spark run passes its own aggregate).

    Raises
    ------
    DataError
        ``genre_column`` given but not in the table.
    """
    out: list[Variable] = []
    used = set()
    for key, label, unit, kind, suffixes in _CANDIDATES:
        if key == "genre" and genre_column is not None:
            if genre_column not in df.columns:
                near = [c for c in df.columns if "genre" in norm_name(c)][:5]
                raise DataError(f"genre column {genre_column!r} is not in the table (genre-like columns: {near})")
            col = genre_column
        else:
            col = find_column(df.columns, *suffixes)
        if col is None or col in used:
            continue
        if key == "language" and (coverage(col) if coverage else df[col].notna().mean()) < 0.01:
            continue
        if key == "year":  # say which date it is: FMA's date_created is the upload to the archive
            n = norm_name(col)
            label = "upload date" if "date_created" in n else "release date" if "date_released" in n else label
        used.add(col)
        out.append(Variable(key, col, label, kind, unit))
        if len(out) >= max_variables:
            break
    return out


def quartiles(values, *, integer: bool = False) -> tuple[np.ndarray, list[str]]:
    """Rank-based quartile codes 0–3 (−1 = missing) and labels with the value ranges.

    Ranks break ties by position, so a column of repeated values still splits into
    four groups of (nearly) equal size.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    codes = np.full(len(v), -1, dtype=np.int64)
    m = int(ok.sum())
    if m == 0:
        return codes, []
    order = np.argsort(v[ok], kind="stable")
    ranks = np.empty(m, dtype=np.int64)
    ranks[order] = np.arange(m)
    q = (ranks * 4) // m
    codes[ok] = q
    ranges = [(v[ok][q == i].min(), v[ok][q == i].max()) if (q == i).any() else None for i in range(4)]
    return codes, quartile_labels(ranges, integer=integer)


def quartile_labels(ranges, *, integer: bool = False) -> list[str]:
    """The four quartile labels from each quartile's ``(min, max)`` (None: empty), e.g. ``Q2 (0.041–0.045)``."""
    names = ("Q1 low", "Q2", "Q3", "Q4 high")
    labels = []
    texts = _distinct_texts([x for r in ranges if r for x in r], integer=integer)
    for i, r in enumerate(ranges):
        if r is None:
            labels.append(names[i])
        else:
            lo, hi = texts[r[0]], texts[r[1]]
            labels.append(f"{names[i]} ({lo}–{hi})" if r[0] != r[1] else f"{names[i]} ({lo})")
    return labels


def _distinct_texts(values, *, integer: bool = False) -> dict[float, str]:
    """Each value as text with the fewest significant digits (2 to 12) that keep distinct values distinct.

    Quartile bounds of 0.0412 and 0.0448 read "0.041–0.045", not "0.04–0.04".
    """
    distinct = sorted(set(float(x) for x in values))
    if integer:
        return {x: f"{x:.0f}" for x in distinct}
    for digits in range(2, 13):
        texts = {x: _sig(x, digits) for x in distinct}
        if len(set(texts.values())) == len(distinct):
            break
    return texts


def _sig(x: float, digits: int) -> str:
    """``x`` with ``digits`` significant digits in fixed notation (integer digits never dropped)."""
    if not math.isfinite(x) or x == 0:
        return "0" if x == 0 else str(x)
    whole = math.floor(math.log10(abs(x))) + 1
    decimals = max(0, digits - whole)
    return f"{x:,.{decimals}f}" if abs(x) >= 1000 else f"{x:.{decimals}f}"


def categorize(df, var: Variable, *, max_categories: int = 12):
    """A categorical Series for ``var``: quartiles for numbers, ``unknown`` for missing, rare → ``other``."""
    import pandas as pd

    s = df[var.column]
    if var.kind == "year":
        if np.issubdtype(np.asarray(s).dtype, np.number):
            s = pd.Series(np.asarray(s, dtype=float), index=df.index)
        else:
            return _date_quartiles(pd.to_datetime(s, errors="coerce"), var)
    if var.kind in ("numeric", "year"):
        codes, labels = quartiles(pd.to_numeric(s, errors="coerce"), integer=var.kind == "year")
        cats = labels + [UNKNOWN]
        return pd.Series(
            pd.Categorical.from_codes(np.where(codes < 0, len(labels), codes), categories=cats),
            index=df.index,
            name=var.key,
        )
    s = s.astype("object").where(s.notna(), UNKNOWN).astype(str)
    s = s.where(s.str.strip() != "", UNKNOWN)
    counts = s[s != UNKNOWN].value_counts()
    keep = list(counts.index[:max_categories])
    s = s.where(s.isin(keep) | (s == UNKNOWN), "other")
    cats = keep + (["other"] if (s == "other").any() else []) + [UNKNOWN]
    return pd.Series(pd.Categorical(s, categories=cats), index=df.index, name=var.key)


def date_labels(ranges, *, n_years: int, span_days: float) -> list[str]:
    """The four date-quartile labels from each quartile's ``(first, last)`` timestamps (None: empty), at the
    resolution the span needs (see :func:`_date_quartiles`); ``n_years``: distinct years among the dates."""
    fmt = "%Y" if n_years >= 4 else "%Y-%m" if span_days >= 60 else "%Y-%m-%d" if span_days >= 2 else "%Y-%m-%d %H:%M"
    names = ("Q1 low", "Q2", "Q3", "Q4 high")
    labels = []
    for i, r in enumerate(ranges):
        if r is not None:
            lo, hi = r[0].strftime(fmt), r[1].strftime(fmt)
            labels.append(f"{names[i]} ({lo}–{hi})" if lo != hi else f"{names[i]} ({lo})")
        else:
            labels.append(names[i])
    return labels


def _date_quartiles(dt, var: Variable):
    """Quartiles of dates ranked by the full timestamp, labelled at the resolution the span needs.

    Years when the dates span four years or more, months when they span two
    months or more, days when two days or more, minutes otherwise: a catalogue
    uploaded within a few hours reads ``2008-11-26 01:53–2008-11-26 02:04``, not
    ``2008–2008`` four times.
    """
    import pandas as pd

    ok = dt.notna().to_numpy()
    ts = np.full(len(dt), np.nan)
    ts[ok] = dt[ok].to_numpy().astype("datetime64[s]").astype(np.int64).astype(np.float64)
    codes, _ = quartiles(ts)
    labels = []
    if ok.any():
        known = dt[ok]
        ranges = []
        for i in range(4):
            sel = dt[codes == i]
            ranges.append((sel.min(), sel.max()) if len(sel) else None)
        labels = date_labels(
            ranges, n_years=int(known.dt.year.nunique()), span_days=(known.max() - known.min()) / pd.Timedelta(days=1)
        )
    cats = labels + [UNKNOWN]
    return pd.Series(
        pd.Categorical.from_codes(np.where(codes < 0, len(labels), codes), categories=cats),
        index=dt.index,
        name=var.key,
    )


def informative_variables(df, variables: list[Variable], *, distinct=None) -> tuple[list[Variable], list[str]]:
    """Drop interpretation variables with fewer than two distinct known values (a pivot of them says nothing).

    The genre is always kept (its absence is itself reported). Returns the kept
    variables and one note per dropped one. ``distinct(variable)`` gives
    ``(number of distinct known values, one of them)`` (None: unknown; keep it);
    default: counted in ``df``.
    """
    kept, notes = [], []
    for v in variables:
        if v.key == "genre":
            kept.append(v)
            continue
        got = distinct(v) if distinct else distinct_known(df[v.column])
        if got is None:  # unhashable cells (lists): keep, categorize() copes
            kept.append(v)
            continue
        n_distinct, example = got
        if n_distinct >= 2:
            kept.append(v)
        else:
            what = f"every track has the same value ({example})" if n_distinct else "no track has a value"
            notes.append(f"{v.label} ({v.column}) left out of the interpretation: {what}")
    return kept, notes


def distinct_known(col) -> tuple[int, object] | None:
    """Distinct known (non-missing, non-blank) values of a column and the first of them; None if unhashable."""
    known = col[col.notna()]
    if known.dtype == object or str(known.dtype) in ("str", "string"):
        known = known.astype(str).str.strip()
        known = known[known != ""]
    try:
        return int(known.nunique()), (known.iloc[0] if len(known) else None)
    except TypeError:
        return None


def pivot_by_column(labels, categories, *, k: int | None = None):
    """Clusters × categories, percent **per category** (each column sums to 100).

    Empty categories are left out (an all-zero column cannot sum to 100).
    """
    import pandas as pd

    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if k is None else k
    tab = pd.crosstab(
        pd.Series(labels, name="cluster"),
        categories.reset_index(drop=True) if hasattr(categories, "reset_index") else categories,
        dropna=False,
    )
    return pivot_from_counts(tab, k)


def pivot_from_counts(tab, k: int):
    """:func:`pivot_by_column` from the counts table (clusters × categories, in category order)."""
    tab = tab.reindex(range(k), fill_value=0)
    tab = tab.loc[:, tab.sum(axis=0) > 0]
    pct = tab / tab.sum(axis=0) * 100.0
    pct.index.name = "cluster"
    return pct, tab


def within_clusters(tab):
    """Each cluster's tracks split across the categories (rows sum to 100), ``attrs["overall"]`` the catalogue's."""
    w = tab.div(tab.sum(axis=1).replace(0, 1), axis=0) * 100
    w.attrs["overall"] = (tab.sum(axis=0) / tab.values.sum() * 100).to_dict()
    return w


def genre_min_count(n_known: int) -> int:
    """Tracks of a genre a cluster needs before its lift counts: 0.1 % of the tracks with a genre, at least 2.

    One track is never evidence (its lift is 1 ÷ the genre's base rate, whatever the
    music); the share grows with the table, so 13,000 FMA tracks ask for 13.
    """
    return max(2, math.ceil(0.001 * int(n_known)))


def genre_rule(min_count: int, n_known: int) -> str:
    """The representative-genre rule in words, with its numbers (the report's footnote, the JSON)."""
    return (
        f"most over-represented genre = the highest lift (share in the cluster ÷ share in the catalogue) "
        f"among genres with lift > 1 and at least {min_count} tracks in the cluster "
        f"({min_count} = max(2, 0.1 % of the {n_known:,} tracks with a known genre)); "
        f"none when no genre qualifies"
    )


def representative_genres(labels, genre, *, k: int, min_count: int | None = None) -> list[dict]:
    """Per cluster: the genre most over-represented among its known-genre tracks, by the stated rule.

    The rule (:func:`genre_rule`): among genres with lift > 1 and at least
    ``min_count`` tracks in the cluster (default :func:`genre_min_count` of the
    tracks with a known genre), the highest lift wins (ties: more tracks, then
    the name); no genre qualifies → ``genre`` is None, never a fallback. The
    most frequent genre and the share of unknown genres are reported beside it.
    """
    g = np.asarray(genre, dtype=object)
    labels = np.asarray(labels)
    known = g != UNKNOWN
    genres, gi = np.unique(g[known], return_inverse=True)
    C = np.zeros((k, len(genres)))
    np.add.at(C, (labels[known], gi), 1)
    unknown = np.bincount(labels[~known], minlength=k)
    return representative_from_counts(C, genres, unknown, k=k, min_count=min_count)


def representative_from_counts(
    C: np.ndarray, genres, unknown: np.ndarray, *, k: int, min_count: int | None = None
) -> list[dict]:
    """:func:`representative_genres` from the counts: ``C[c, j]`` tracks of cluster ``c`` with genre
    ``genres[j]`` (sorted names), ``unknown[c]`` tracks of cluster ``c`` without a genre."""
    C = np.asarray(C, dtype=np.float64)
    n_known = int(C.sum())
    m = genre_min_count(n_known) if min_count is None else int(min_count)
    empty = {
        "genre": None,
        "share": None,
        "base_rate": None,
        "lift": None,
        "count": 0,
        "top_genre": None,
        "top_share": None,
        "n_known": 0,
        "min_count": m,
    }
    out = []
    if n_known == 0:
        return [{"cluster": c, **empty, "unknown_share": 1.0} for c in range(k)]
    base = C.sum(axis=0) / C.sum()
    for c in range(k):
        n_c = C[c].sum()
        unk = float(unknown[c] / max(1, n_c + unknown[c]))
        if n_c == 0:
            out.append({"cluster": c, **empty, "unknown_share": unk})
            continue
        share = C[c] / n_c
        lift = share / base
        t = int(np.argmax(share))
        row = {
            "cluster": c,
            "genre": None,
            "share": None,
            "base_rate": None,
            "lift": None,
            "count": 0,
            "top_genre": str(genres[t]),
            "top_share": float(share[t]),
            "unknown_share": unk,
            "n_known": int(n_c),
            "min_count": m,
        }
        ok = np.flatnonzero((lift > 1 + 1e-12) & (C[c] >= m))
        if ok.size:
            j = min(ok, key=lambda x: (-lift[x], -C[c, x], str(genres[x])))
            row.update(
                genre=str(genres[j]),
                share=float(share[j]),
                base_rate=float(base[j]),
                lift=float(lift[j]),
                count=int(C[c, j]),
            )
        out.append(row)
    return out


# -- the result -------------------------------------------------------------------------------------------
@dataclass
class ClusterAnalysis:
    """Everything :func:`run` computed; :meth:`to_dict` is the ``--json`` record, :mod:`.report` renders it."""

    source: str
    config: RunConfig
    n_rows: int
    plan: object
    reduction: Reduction
    choose: ChooseKResult | None
    k: int
    labels: np.ndarray
    distances: np.ndarray
    track_ids: np.ndarray
    model: dict
    sizes: list[int]
    variables: list[Variable]
    pivots: dict
    counts: dict
    within: dict
    representative: list[dict]
    descriptions: list[str]
    kmeans_comparison: dict | None
    echonest_comparison: dict | None
    projection: dict
    truth: dict | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def representative_rule(self) -> str | None:
        """:func:`genre_rule` with this table's numbers (None without a genre column)."""
        if not self.representative or "min_count" not in self.representative[0]:
            return None
        return genre_rule(self.representative[0]["min_count"], sum(r["n_known"] for r in self.representative))

    def assignments(self):
        """Per-track assignments: ``track_id`` → ``cluster``, ``distance`` (to its centre, in PCA space)."""
        import pandas as pd

        return pd.DataFrame({"track_id": self.track_ids, "cluster": self.labels, "distance": self.distances})

    def to_dict(self) -> dict:
        def table(df):
            return {
                "columns": [str(c) for c in df.columns],
                "rows": {int(i): [float(x) for x in df.loc[i]] for i in df.index},
            }

        return {
            "source": self.source,
            "n_rows": self.n_rows,
            "inputs": self.plan.summary(),
            "reduction": self.reduction.summary(),
            "choose_k": self.choose.to_dict() if self.choose else None,
            "k": self.k,
            "model": self.model,
            "cluster_sizes": self.sizes,
            "variables": [
                {"key": v.key, "column": str(v.column), "label": v.label, "kind": v.kind} for v in self.variables
            ],
            "pivots_percent_by_column": {k: table(v) for k, v in self.pivots.items()},
            "counts": {k: table(v) for k, v in self.counts.items()},
            "representative_genres": self.representative,
            "representative_rule": self.representative_rule,
            "descriptions": self.descriptions,
            "kmeans_comparison": self.kmeans_comparison,
            "echonest_comparison": self.echonest_comparison,
            "planted_truth": self.truth,
            "warnings": self.warnings,
        }


# -- the pipeline --------------------------------------------------------------------------------------------
def _fit(Z, k, *, init, seed, n_init, max_iter, engine):
    t = time.perf_counter()
    km = KMeans(k, init=init, n_init=n_init, max_iter=max_iter, random_state=seed, engine=engine).fit(Z)
    return km, time.perf_counter() - t


def compare_kmeans(Z: np.ndarray, k: int, *, seed: int = 0, n_init: int = 1, max_iter: int = 300) -> dict:
    """Our k-means (random, k-means++) vs scikit-learn's k-means++ on the same data: inertia, ARI, time."""
    runs = {}
    ours_r, t_r = _fit(Z, k, init="random", seed=seed, n_init=n_init, max_iter=max_iter, engine="local")
    ours_p, t_p = _fit(Z, k, init="k-means++", seed=seed, n_init=n_init, max_iter=max_iter, engine="local")
    runs["songmine random"] = (ours_r.labels_, ours_r.inertia_, t_r, ours_r.n_iter_)
    runs["songmine k-means++"] = (ours_p.labels_, ours_p.inertia_, t_p, ours_p.n_iter_)
    try:
        from sklearn.cluster import KMeans as SKMeans

        SKMeans(1, n_init=1).fit(Z[:2])  # warm-up: first-call library probing is not k-means time
        t = time.perf_counter()
        sk = SKMeans(k, init="k-means++", n_init=n_init, max_iter=max_iter, random_state=seed, algorithm="lloyd").fit(Z)
        runs["scikit-learn k-means++"] = (sk.labels_, float(sk.inertia_), time.perf_counter() - t, int(sk.n_iter_))
    except ImportError:  # pragma: no cover
        log.warning("scikit-learn not installed: comparison without it")
    names = list(runs)
    ref = "scikit-learn k-means++" if "scikit-learn k-means++" in runs else names[-1]
    rows = []
    for nme in names:
        lab, inertia, secs, it = runs[nme]
        rows.append(
            {
                "method": nme,
                "inertia": inertia,
                "seconds": secs,
                "n_iter": it,
                "inertia_vs_reference_pct": 100 * (inertia / runs[ref][1] - 1),
                "ari_vs_reference": adjusted_rand_index(lab, runs[ref][0]),
            }
        )
    return {
        "k": k,
        "n_init": n_init,
        "reference": ref,
        "rows": rows,
        "ari_random_vs_plusplus": adjusted_rand_index(runs[names[0]][0], runs[names[1]][0]),
    }


def _genre_fit(df, k, *, echonest, cfg: RunConfig, genre_col) -> dict:
    X, keep, plan = clean_features(
        df, echonest=echonest, nonfinite="drop" if cfg.nonfinite == "error" else cfg.nonfinite
    )
    Z, red = reduce(X, columns=plan.columns, config=cfg.reduce)
    km, secs = _fit(Z, k, init="k-means++", seed=cfg.seed, n_init=cfg.n_init, max_iter=cfg.max_iter, engine=cfg.engine)
    g = df[genre_col].astype("object").to_numpy()[keep] if genre_col is not None else None
    known = np.array([x is not None and x == x and str(x).strip() != "" for x in g]) if g is not None else None
    out = {
        "rows": int(len(Z)),
        "n_features": len(plan.columns),
        "n_components": red.n_components,
        "retained_variance": red.retained_variance,
        "k": k,
        "seconds": secs,
        "silhouette": silhouette_score(Z, km.labels_, sample_size=min(len(Z), 3000), random_state=cfg.seed),
    }
    if known is not None and known.sum() > 0:
        gk = g[known].astype(str)
        out.update(
            {
                "rows_with_genre": int(known.sum()),
                "nmi_genre": normalized_mutual_info(km.labels_[known], gk),
                "purity_genre": purity(km.labels_[known], gk),
                "purity_baseline": float(np.unique(gk, return_counts=True)[1].max() / len(gk)),
            }
        )
    return out


def compare_echonest(df, other, k: int, cfg: RunConfig, genre_col) -> dict | None:
    """The same clustering with and without echonest features (and, given ``other``, with more rows)."""
    _, echo = feature_columns(df.columns)
    _, echo2 = feature_columns(other.columns) if other is not None else ([], [])
    with_e, without = (df, other) if echo else (other, df) if echo2 else (None, df if other is None else None)
    variants = {}

    def has_fma(t):
        return bool(feature_columns(t.columns)[0])

    if with_e is not None:
        variants[f"features + echonest ({len(with_e):,} rows)"] = (with_e, True)
        if has_fma(with_e):
            variants[f"features only, same {len(with_e):,} rows"] = (with_e, False)
    if without is not None and with_e is not None and without is not with_e and has_fma(without):
        variants[f"features only, all {len(without):,} rows"] = (without, False)
    if len(variants) < 2:
        return None
    rows = []
    for name, (table, use_echo) in variants.items():
        gcol = (
            genre_col
            if (genre_col is not None and genre_col in table.columns)
            else find_column(table.columns, "track_genre_top", "genre_top", "genre")
        )
        r = _genre_fit(table, k, echonest=use_echo, cfg=cfg, genre_col=gcol)
        r["variant"] = name
        rows.append(r)
    scored = [r for r in rows if "nmi_genre" in r]
    verdict = None
    if scored:
        best = max(scored, key=lambda r: r["nmi_genre"])
        verdict = (
            f"Most genre-coherent: '{best['variant']}' (NMI {best['nmi_genre']:.3f}, purity "
            f"{100 * best['purity_genre']:.1f} % vs a majority-genre baseline of "
            f"{100 * best['purity_baseline']:.1f} %)."
        )
    return {"k": k, "rows": rows, "verdict": verdict}


def describe_cluster(c: int, size: int, n: int, rep: dict, within: dict, variables: list[Variable]) -> str:
    """The plain-words paragraph of cluster ``c`` (from its size, genre and the within-cluster splits)."""
    parts = [f"Cluster {c} holds {size:,} track{'' if size == 1 else 's'} ({100 * size / n:.1f} % of the catalogue)."]
    if rep.get("genre"):
        parts.append(
            f"Its most characteristic genre is {rep['genre']}: {100 * rep['share']:.0f} % of its tracks with a "
            f"known genre, {rep['lift']:.1f}× the catalogue-wide {100 * rep['base_rate']:.0f} %"
            + (
                f" (the most frequent is {rep['top_genre']}, {100 * rep['top_share']:.0f} %)."
                if rep["top_genre"] != rep["genre"]
                else "."
            )
        )
    elif rep.get("top_genre"):
        parts.append(
            f"No genre is over-represented in it (lift > 1 with at least {rep['min_count']} tracks); "
            f"the most frequent is {rep['top_genre']}, {100 * rep['top_share']:.0f} % of its tracks "
            "with a known genre."
        )
    if rep.get("unknown_share") is not None:
        parts.append(f"{100 * rep['unknown_share']:.0f} % of its tracks have no top genre.")
    traits = []
    for v in variables:
        if v.kind == "categorical":
            continue
        row = within[v.key].loc[c]
        overall = within[v.key].attrs.get("overall", {})
        cats = [x for x in row.index if x != UNKNOWN]
        if not cats:
            continue
        best = max(cats, key=lambda x: row[x] - overall.get(x, 25.0))
        excess = row[best] - overall.get(best, 25.0)
        if excess >= 8:
            hi, lo = ("late", "early") if v.kind == "year" else ("high", "low")
            level = hi if best.startswith("Q4") else lo if best.startswith("Q1") else "middling"
            rng = best[best.find("(") + 1 : best.rfind(")")] if "(" in best else ""
            traits.append(
                (
                    excess,
                    f"{level} {v.label} ({row[best]:.0f} % of its tracks in "
                    f"{best.split(' (')[0]}{', ' + rng + (' ' + v.unit if v.unit else '') if rng else ''}; "
                    f"{overall.get(best, 25.0):.0f} % overall)",
                )
            )
    traits.sort(key=lambda t: -t[0])
    if traits:
        parts.append("It stands out by " + "; ".join(t for _, t in traits[:3]) + ".")
    else:
        parts.append("Its tempo/energy/duration profile is close to the catalogue average.")
    return " ".join(parts)


def run(
    df, *, config: RunConfig = RunConfig(), source: str = "<table>", other=None, truth=None, progress=None
) -> ClusterAnalysis:
    """Run the full analysis on a catalogue table (see the module doc).

    Parameters
    ----------
    df : DataFrame indexed by track_id
    config : RunConfig
    other : DataFrame or None
        The catalogue's other variant (e.g. without echonest, all rows) for the
        with/without-echonest comparison.
    truth : Series or None
        Planted cluster per track_id (synthetic data): the result reports how well it was recovered.
    progress : callable(stage: str) or None

    Raises
    ------
    DataError, ParameterError
        Bad table, bad k, missing genre column, NaN/inf with the ``error`` policy.
    """
    import pandas as pd

    def step(msg):
        log.info(msg)
        if progress:
            progress(msg)

    warn_msgs: list[str] = []
    variables = find_variables(df, genre_column=config.genre_column, max_variables=config.max_variables)
    X, keep, plan = clean_features(df, echonest=config.echonest, nonfinite=config.nonfinite)
    if plan.nonfinite_cells:
        warn_msgs.append(
            f"{plan.nonfinite_cells} NaN/inf values in {plan.nonfinite_rows} rows were "
            f"{'dropped' if plan.policy == 'drop' else 'imputed with column medians'}"
        )
    if plan.generic:
        warn_msgs.append("no FMA feature columns: clustered on every numeric non-metadata column")
    data = df.loc[keep] if not keep.all() else df
    variables, notes = informative_variables(data, variables)
    warn_msgs += notes
    n = len(X)
    if config.k is not None and config.k > n:
        raise ParameterError(f"k={config.k} must be <= the number of rows ({n})")
    step(f"reducing {n:,} × {X.shape[1]} features")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Z, red = reduce(X, columns=[str(c) for c in plan.columns], config=config.reduce)
    warn_msgs += [str(w.message) for w in caught]
    chooser = None
    k = config.k
    if k is None:
        ks, note = narrow_k_values(config.k_values, n)
        if note:
            warn_msgs.append(note)
        step(f"choosing k among {ks[0]}..{ks[-1]}" + (f" ({note})" if note else ""))
        chooser = choose_k(Z, config=ChooseKConfig(k_values=ks, random_state=config.seed), engine=config.engine)
        chooser.note = note
        k = chooser.recommended_k
    step(f"k-means with k={k} on {config.engine}")
    given = not isinstance(config.init, str)
    km, secs = _fit(
        Z,
        k,
        init=config.init,
        seed=config.seed,
        n_init=1 if given else config.n_init,
        max_iter=config.max_iter,
        engine=config.engine,
    )
    labels = km.labels_
    dist = np.sqrt(((Z - km.cluster_centers_[labels]) ** 2).sum(axis=1))
    sizes = np.bincount(labels, minlength=k).tolist()
    model = {
        "engine": str(getattr(config.engine, "name", config.engine)),
        "init": "given centres" if given else config.init,
        "n_init": 1 if given else config.n_init,
        "inertia": km.inertia_,
        "n_iter": km.n_iter_,
        "converged": km.converged_,
        "seconds": secs,
        "seed": config.seed,
    }

    step("interpreting clusters")
    pivots, counts, within = {}, {}, {}
    genre_cats = None
    for v in variables:
        cats = categorize(data, v)
        if v.key == "genre":
            genre_cats = cats
        pct, tab = pivot_by_column(labels, cats, k=k)
        pivots[v.key] = pct
        counts[v.key] = tab
        within[v.key] = within_clusters(tab)
    if genre_cats is not None:
        rep = representative_genres(labels, np.asarray(genre_cats.astype(str)), k=k)
    else:
        warn_msgs.append("no genre column: representative genres not computed")
        rep = [{"cluster": c, "genre": None, "unknown_share": None} for c in range(k)]
    descriptions = [describe_cluster(c, sizes[c], n, rep[c], within, variables) for c in range(k)]

    km_cmp = None
    if config.compare_sklearn:
        step("comparing with scikit-learn")
        km_cmp = compare_kmeans(Z, k, seed=config.seed, n_init=config.n_init, max_iter=config.max_iter)
    echo_cmp = None
    if config.compare_echonest:
        step("comparing with / without echonest")
        gcol = next((v.column for v in variables if v.key == "genre"), None)
        echo_cmp = compare_echonest(df, other, k, config, gcol)

    rng = np.random.default_rng(config.seed)
    sample = np.sort(rng.choice(n, min(n, config.projection_sample), replace=False))
    proj = {
        "xy": Z[sample, :2] if Z.shape[1] >= 2 else np.c_[Z[sample, :1], np.zeros(len(sample))],
        "labels": labels[sample],
        "centers": km.cluster_centers_[:, :2] if Z.shape[1] >= 2 else None,
    }
    truth_info = None
    if truth is not None:
        t = pd.Series(truth).reindex(data.index)
        ok = t.notna().to_numpy()
        if ok.any():
            tv = t.to_numpy()[ok]
            truth_info = {
                "n_planted": int(pd.Series(tv).nunique()),
                "k_found": k,
                "ari": adjusted_rand_index(labels[ok], tv),
                "nmi": normalized_mutual_info(labels[ok], tv),
            }
    return ClusterAnalysis(
        source,
        config,
        n,
        plan,
        red,
        chooser,
        k,
        labels,
        dist,
        np.asarray(data.index),
        model,
        sizes,
        variables,
        pivots,
        counts,
        within,
        rep,
        descriptions,
        km_cmp,
        echo_cmp,
        proj,
        truth_info,
        warn_msgs,
    )
