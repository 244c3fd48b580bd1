"""``songmine cluster run TABLE --engine spark``: the whole clustering pipeline on Spark's executors.

:func:`songmine.cluster.analysis.run` reads the table with pandas and works on
it in memory; here the table (parquet: a file or a folder of them, any Hadoop
URL) is read by the executors and every step runs where the rows are, as
MapReduce jobs over cached row blocks. The driver only ever holds aggregates:
column sums, a ``d × d`` covariance, k centres, count tables, a few order
statistics, and bounded samples.

1. **read** — ``spark.read.parquet``; the rows are put in the table's own
   order (file path, then row within the file: the order pandas reads) and
   cut into numpy blocks, one per partition (``mapInArrow``), with each row's
   position, id and the few interpretation columns; the input columns are
   chosen as locally (:func:`songmine.cluster.data.input_columns`).
2. **non-finite values** — counted per column (an error, as locally, or the
   rows dropped with ``--nonfinite drop``; ``impute`` needs exact medians and
   runs locally only).
3. **standardise** — means and (two-pass) standard deviations from column
   sums; constant columns dropped as locally.
4. **PCA** — the covariance ``ZᵀZ − n·μμᵀ`` summed over blocks
   (``treeReduce``), its eigendecomposition on the driver with
   scikit-learn's ``covariance_eigh`` steps and the local sign convention and
   variance rule; the blocks projected on the kept components.
5. **k** — when not given, :func:`songmine.cluster.choose_k.choose_k` on a
   uniform sample of at most ``choose_sample`` rows (choose-k fits its k-means
   on samples of a few thousand rows anyway).
6. **k-means** — :class:`songmine.spark.kmeans.SparkEngine` (Lloyd as
   map + treeReduce jobs), from given centres or k-means‖ (``n_init`` runs,
   the lowest inertia kept); labels and distances stay in the blocks.
7. **analysis from aggregates** — cluster sizes; per interpretation variable
   its categories (rank-based quartiles from three exact order statistics of
   ``(value, position)`` found by a distributed sort; top categories from
   merged value counts) and the cluster × category count table summed over
   blocks; then the pivots, representative genres and descriptions with the
   local functions (:mod:`songmine.cluster.analysis`); the 2-D projection from
   the same ``projection_sample`` row positions the local run draws.
8. **assignments** — written by the executors (parquet or CSV folder).

Given the same initial centres, the labels are the local ones (the projected
rows agree to rounding; tested), and so are sizes, pivots, genres and
descriptions. The scikit-learn and with/without-echonest comparisons refit on
the whole table in memory: they are not run here (the result says so).
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..cluster.analysis import (
    UNKNOWN,
    ClusterAnalysis,
    RunConfig,
    Variable,
    date_labels,
    describe_cluster,
    find_variables,
    informative_variables,
    pivot_from_counts,
    quartile_labels,
    representative_from_counts,
    within_clusters,
)
from ..cluster.choose_k import ChooseKConfig, choose_k, narrow_k_values
from ..cluster.data import FeaturePlan, input_columns
from ..cluster.engines import assign
from ..cluster.reduce import Reduction, components_for, sign_convention
from ..errors import DataError, ParameterError
from ..random_state import check_random_state
from .kmeans import SparkBlocks, SparkEngine, kmeans_parallel_init
from .session import describe_failure, get_session, run_job

__all__ = ["run_spark", "CHOOSE_SAMPLE"]

log = logging.getLogger(__name__)

#: Rows sampled (uniformly) to choose k when it is not given.
CHOOSE_SAMPLE = 20_000

_NUMERIC = ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType", "DecimalType")


# --------------------------------------------------------------------------- executor-side functions


def _to_block(features: list[str], id_column: str | None, meta: list[str], meta_names: list[str]):
    """mapInArrow: a partition of the ordered table → one pickled block {X, ids, meta} (meta columns renamed
    back to ``meta_names``)."""

    def fn(batches):
        import pyarrow as pa
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        batches = [b for b in batches if b.num_rows]
        if not batches:
            return
        t = pa.Table.from_batches(batches)
        X = (
            np.column_stack([t.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in features])
            if features
            else np.zeros((t.num_rows, 0))
        )
        block = {
            "X": np.ascontiguousarray(X),
            "ids": t.column(id_column).to_numpy(zero_copy_only=False) if id_column else None,
            "meta": t.select(meta).rename_columns(meta_names).to_pandas() if meta else None,
        }
        yield pa.RecordBatch.from_pydict(
            {"part": [part], "block": [pickle.dumps(block, protocol=5)]},
            schema=pa.schema([("part", pa.int64()), ("block", pa.binary())]),
        )

    return fn


def _first_pass(item):
    """One block's count of rows, of non-finite cells per column and of rows holding one; and over its
    finite rows (the rows kept): their number, column sums and max |x|."""
    part, b = item
    X = b["X"]
    bad = ~np.isfinite(X)
    bad_rows = bad.any(axis=1)
    ok = X[~bad_rows] if bad_rows.any() else X
    return (
        X.shape[0],
        bad.sum(axis=0).astype(np.int64),
        int(bad_rows.sum()),
        {part: ok.shape[0]},
        ok.sum(axis=0),
        np.abs(ok).max(axis=0, initial=0.0),
    )


def _merge_first(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], {**a[3], **b[3]}, a[4] + b[4], np.maximum(a[5], b[5]))


def _drop_bad(item):
    part, b = item
    keep = np.isfinite(b["X"]).all(axis=1)
    if keep.all():
        return item
    out = dict(b, X=b["X"][keep], ids=None if b["ids"] is None else b["ids"][keep])
    if b["meta"] is not None:
        out["meta"] = b["meta"][keep].reset_index(drop=True)
    return part, out


def _add3(a, b):
    return tuple(x + y for x, y in zip(a, b))


# --------------------------------------------------------------------------- the pipeline


class _Run:
    """One pipeline run: the session, the cached blocks, the time bound."""

    def __init__(self, session, job_timeout_s: float | None, progress):
        self.session = session
        self.sc = session.sparkContext
        self.timeout = job_timeout_s
        self.progress = progress

    def job(self, action: Callable[[], Any], what: str):
        return run_job(self.session, action, timeout_s=self.timeout, what=what)

    def step(self, msg: str) -> None:
        log.info(msg)
        if self.progress:
            self.progress(msg)


def _read(run: _Run, path: str, config: RunConfig, n_partitions: int | None):
    """The table as ordered blocks: ``(blocks RDD of (part, block), plan pieces, variables, coverage)``."""
    from pyspark.sql import functions as F

    try:
        df = run.session.read.parquet(str(path))
    except Exception as exc:  # noqa: BLE001  (AnalysisException: no such path, not parquet...)
        raise DataError(f"cannot read parquet {path}: {describe_failure(exc)}") from None
    types = {f.name: type(f.dataType).__name__ for f in df.schema.fields}
    columns = [c for c in df.columns]
    id_column = "track_id" if "track_id" in types else None
    data_columns = [c for c in columns if c != id_column and not c.startswith("__index_level")]
    cols, feats, echo, generic = input_columns(
        data_columns, echonest=config.echonest, numeric=lambda c: types.get(c) in _NUMERIC
    )
    # interpretation variables: found by name, coverage from one aggregate
    variables = find_variables(
        _Columns(data_columns),
        genre_column=config.genre_column,
        max_variables=config.max_variables,
        coverage=lambda c: _coverage(run, df, c),
    )
    if id_column is not None:  # a join or a label by track_id would be ambiguous: refused, as the local engine does
        dup = run.job(
            lambda: df.groupBy(_col(id_column)).count().filter(F.col("count") > 1).limit(1).collect(),
            "checking that track ids are unique",
        )
        if dup:
            raise DataError(f"{path}: duplicate track_id {dup[0][0]!r}")
    meta = list(dict.fromkeys(v.column for v in variables))
    # plain names inside Spark (mapInArrow resolves columns by name, and FMA names hold dots)
    fname = {c: f"f{i}" for i, c in enumerate(cols)}
    mname = {c: fname.get(c, f"m{j}") for j, c in enumerate(meta)}
    ordered = (
        df.select(
            F.col("_metadata.file_path").alias("__file"),
            F.col("_metadata.row_index").alias("__row"),
            *([_col(id_column).alias("__id")] if id_column else []),
            *[_col(c).cast("double").alias(fname[c]) for c in cols],
            *[_col(c).alias(mname[c]) for c in meta if c not in fname],
        )
        .repartitionByRange(
            n_partitions or max(2 * run.sc.defaultParallelism, df.rdd.getNumPartitions()), "__file", "__row"
        )
        .sortWithinPartitions("__file", "__row")
    )
    blocks = (
        ordered.mapInArrow(
            _to_block([fname[c] for c in cols], "__id" if id_column else None, [mname[c] for c in meta], meta),
            "part long, block binary",
        )
        .rdd.map(lambda r: (int(r["part"]), pickle.loads(r["block"])))
        .cache()
    )
    return blocks, (cols, feats, echo, generic), variables


def _col(name: str):
    """A column by its exact name (FMA names hold dots, which Spark would read as struct fields)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


class _Columns:
    """What :func:`find_variables` reads of a table here: its columns."""

    def __init__(self, columns):
        self.columns = columns


def _coverage(run: _Run, df, column: str) -> float:
    from pyspark.sql import functions as F

    row = run.job(
        lambda: df.select(F.count(_col(column)).alias("n"), F.count(F.lit(1)).alias("all")).first(),
        f"coverage of {column}",
    )
    return row["n"] / row["all"] if row["all"] else 0.0


def _nonfinite(run: _Run, blocks, cols: list[str], policy: str):
    """Count non-finite features; raise (error), drop the rows (drop). One job, which also gives what the
    standardisation needs first: ``(blocks, n_in, cells, rows, rows kept per block, column sums, max |x|)``."""
    n_in, per_col, bad_rows, sizes, s1, amax = run.job(
        lambda: blocks.map(_first_pass).treeReduce(_merge_first, 2), "counting NaN/inf, column sums"
    )
    n_bad = int(per_col.sum())
    if n_bad:
        worst = [cols[i] for i in np.argsort(-per_col)[:3] if per_col[i]]
        msg = (
            f"{n_bad} NaN/±inf feature values in {int(bad_rows)} of {int(n_in)} rows "
            f"(most in {', '.join(map(str, worst))})"
        )
        if policy == "error":
            raise DataError(msg + "; rerun with --nonfinite drop or --nonfinite impute")
        log.warning("%s: dropping those rows", msg)
        if bad_rows == n_in:
            raise DataError(msg + "; no row left after dropping them")
        kept = blocks.map(_drop_bad).cache()
        blocks.unpersist()
        blocks = kept
    return blocks, int(n_in), n_bad, int(bad_rows), sizes, s1, amax


def _positions(sizes: dict[int, int]):
    """Each block's first row position in table order (blocks come in order of their partition)."""
    first, at = {}, 0
    for part in sorted(sizes):
        first[part] = at
        at += sizes[part]
    return first, at


def _reduce(
    run: _Run,
    blocks,
    n: int,
    names: list[str],
    config: RunConfig,
    first: dict[int, int],
    s1: np.ndarray,
    amax: np.ndarray,
    variables: list[Variable],
):
    """Standardise + PCA/SVD as MapReduce (module doc, steps 3–4): the blocks with ``Z``, the reduction,
    warnings, the column means and variances of ``Z`` and what the blocks say of each interpretation variable."""
    cfg = config.reduce
    d = len(names)
    if n < 2:
        raise DataError(f"need a 2-D table with at least 2 rows and 1 column, got shape=({n}, {d})")
    mean_x = s1 / n
    ss = run.job(
        lambda: blocks.map(lambda kv: ((kv[1]["X"] - mean_x) ** 2).sum(axis=0)).treeReduce(np.add, 2),
        "feature variances",
    )
    var = ss / n
    std = np.sqrt(var)
    const = std <= 1e-12 * np.maximum(1.0, amax)
    if const.all():
        raise DataError(f"all {d} feature columns are constant: nothing to cluster on")
    dropped = [names[i] for i in np.flatnonzero(const)]
    notes = []
    if dropped:
        notes.append(f"{len(dropped)} constant column(s) dropped: {dropped[:5]}{'…' if len(dropped) > 5 else ''}")
    keep = ~const
    names = [c for c, k in zip(names, const) if not k]
    d = len(names)
    center = cfg.method != "svd"
    mean = mean_x[keep] if center else np.zeros(d)
    scale = std[keep] if cfg.standardize else np.ones(d)
    if cfg.method == "svd" and cfg.standardize:
        rms2 = run.job(
            lambda: blocks.map(lambda kv: (kv[1]["X"][:, keep] ** 2).sum(axis=0)).treeReduce(np.add, 2), "feature RMS"
        )
        scale = np.sqrt(rms2 / n)
    bc = run.sc.broadcast((keep, mean, scale))

    def standard(kv, bc=bc):
        k_, m_, s_ = bc.value
        return (kv[1]["X"][:, k_] - m_) / s_

    # one pass: Σ z, Σ z², Gram
    sz, sz2, G = run.job(
        lambda: blocks.map(
            lambda kv: (lambda Z: (Z.sum(axis=0), (Z**2).sum(axis=0), Z.T @ Z))(standard(kv))
        ).treeReduce(_add3, 2),
        "covariance",
    )
    if cfg.method == "none":
        zvar = sz2 / n - (sz / n) ** 2
        ratios = zvar / zvar.sum()
        red = Reduction("none", names, dropped, mean, scale, np.eye(d), ratios, d, "none", cfg.variance)
        components = np.eye(d)
    else:
        rank = min(n - 1, d) if center else min(n, d)
        want = cfg.n_components
        if want is not None and want > rank:
            raise ParameterError(
                f"n_components={want} must be <= {'n_samples − 1' if center else 'n_samples'} "
                f"and <= n_features: at most {rank} here"
            )
        if center:  # scikit-learn's PCA(svd_solver="covariance_eigh"), step by step
            mu = sz / n
            C = G - n * np.outer(mu, mu)
            C /= n - 1
            evals, evecs = np.linalg.eigh(C)
            evals, evecs = evals[::-1].copy(), evecs[:, ::-1]
            evals[evals < 0.0] = 0.0
            ratios = (evals / evals.sum())[:rank]
            Vt = evecs.T[:rank]
        else:
            total = float(sz2.sum())
            evals, evecs = np.linalg.eigh(G)
            order = np.argsort(evals)[::-1][:rank]
            Vt = evecs[:, order].T
            ratios = np.maximum(evals[order], 0) / total
        Vt = sign_convention(np.array(Vt, dtype=np.float64))
        m = want if want is not None else components_for(ratios, cfg.variance)
        if m is None:
            m = len(ratios)
        components = Vt[:m]
        red = Reduction(cfg.method, names, dropped, mean, scale, components, ratios, int(m), "gram", cfg.variance)
    bcz = run.sc.broadcast((components, red.method != "none", first))

    def project(kv, bc=bc, bcz=bcz):
        part, b = kv
        k_, m_, s_ = bc.value
        comps, rotate, firsts = bcz.value
        Z = (b["X"][:, k_] - m_) / s_
        out = {key: v for key, v in b.items() if key != "X"}
        out["pos"] = firsts[part] + np.arange(Z.shape[0], dtype=np.int64)
        return part, np.ascontiguousarray(Z @ comps.T if rotate else Z), out

    zblocks = blocks.map(project).cache()

    def moments(kv):
        Z = kv[1]
        return Z.sum(axis=0), (Z**2).sum(axis=0), _block_stats(kv, variables) if variables else []

    # cached before the feature blocks go; the k-means tolerance and the variables' stats on the way
    zs, zs2, stats = run.job(
        lambda: zblocks.map(moments).treeReduce(lambda a, b: (a[0] + b[0], a[1] + b[1], _merge_stats(a[2], b[2])), 2),
        "projecting the rows",
    )
    zmean = zs / n
    return zblocks, red, notes, zmean, np.maximum(zs2 / n - zmean**2, 0.0), stats


def run_spark(
    path: str,
    *,
    config: RunConfig = RunConfig(),
    master: str | None = None,
    session=None,
    assignments: str | None = None,
    n_partitions: int | None = None,
    choose_sample: int = CHOOSE_SAMPLE,
    job_timeout_s: float | None = None,
    progress=None,
) -> ClusterAnalysis:
    """The ``cluster run`` analysis of a parquet table, computed by Spark (see the module doc).

    Parameters
    ----------
    path : str
        A parquet file or folder (any URL Spark reads).
    config : RunConfig
        As for the local run; ``config.engine`` is ignored (this is the Spark
        engine), ``config.init`` may give the initial centres.
    assignments : str or None
        Where the executors write ``track_id, cluster, distance`` (a folder;
        CSV when the name ends with ``.csv``, else parquet).

    Returns
    -------
    ClusterAnalysis
        Its per-row arrays (labels, distances, ids) are empty: they stay on
        the executors (``assignments`` writes them).

    Raises
    ------
    DataError, ParameterError, EngineError
    """
    if config.nonfinite == "impute":
        raise ParameterError(
            "--nonfinite impute needs exact column medians and runs with --engine local only; "
            "use --nonfinite drop, or impute the table first"
        )
    session = session or get_session(master)
    run = _Run(session, job_timeout_s, progress)
    t_start = time.perf_counter()
    run.step(f"reading {path} on the executors")
    blocks, (cols, feats, echo, generic), variables = _read(run, path, config, n_partitions)
    zblocks = None
    try:
        blocks, n_in, n_bad, bad_rows, sizes, s1, amax = _nonfinite(run, blocks, cols, config.nonfinite)
        warn_msgs: list[str] = []
        if n_bad:
            warn_msgs.append(f"{n_bad} NaN/inf values in {bad_rows} rows were dropped")
        if generic:
            warn_msgs.append("no FMA feature columns: clustered on every numeric non-metadata column")
        first, n = _positions(sizes)
        plan = FeaturePlan(cols, feats, echo, n_in, n, n_bad, bad_rows, config.nonfinite, generic)
        if config.k is not None and config.k > n:
            raise ParameterError(f"k={config.k} must be <= the number of rows ({n})")
        run.step(f"reducing {n:,} × {len(cols)} features")
        zblocks, red, notes, zmean, zvar, stats = _reduce(
            run, blocks, n, [str(c) for c in cols], config, first, s1, amax, variables
        )
        blocks.unpersist()
        variables, dropped_vars, by_key = _informative(variables, stats)
        warn_msgs += dropped_vars + notes  # (the local run's order)
        kblocks = SparkBlocks(zblocks, n, red.n_components, np.dtype(np.float64), sizes)
        chooser, k = None, config.k
        if k is None:
            ks, note = narrow_k_values(config.k_values, n)
            if note:
                warn_msgs.append(note)
            m = min(n, choose_sample)
            run.step(f"choosing k among {ks[0]}..{ks[-1]} on {m:,} sampled rows")
            sample = _sample_rows(run, zblocks, np.random.default_rng(config.seed).choice(n, m, replace=False))
            chooser = choose_k(sample["Z"], config=ChooseKConfig(k_values=ks, random_state=config.seed))
            chooser.note = (note + "; " if note else "") + f"k chosen on a uniform sample of {m:,} rows"
            k = chooser.recommended_k
        run.step(f"k-means with k={k} on Spark")
        engine = SparkEngine(session=session, job_timeout_s=job_timeout_s)
        t0 = time.perf_counter()
        res, n_init = _kmeans(engine, kblocks, k, config, tol=1e-4 * float(np.mean(zvar)))
        secs = time.perf_counter() - t0
        bc = run.sc.broadcast(res.centers)
        labelled = zblocks.map(lambda kv, c=bc: _label(kv, c.value)).cache()
        counts_by = run.job(
            lambda: labelled.map(lambda kv: np.bincount(kv[2]["labels"], minlength=k)).treeReduce(np.add, 2),
            "labelling the rows, cluster sizes",
        )
        zblocks.unpersist()
        zblocks = labelled
        model = {
            "engine": "spark",
            "init": "given centres" if not isinstance(config.init, str) else "k-means|| (Spark)",
            "n_init": n_init,
            "inertia": res.inertia,
            "n_iter": res.n_iter,
            "converged": res.converged,
            "seconds": secs,
            "seed": config.seed,
        }
        run.step("interpreting clusters")
        cluster_sizes = counts_by.astype(np.int64).tolist()
        tables = _tables(run, zblocks, variables, by_key, k)
        pivots, counts, within = {}, {}, {}
        genre_tab = None
        for v in variables:
            tab = tables[v.key]
            if v.key == "genre":
                genre_tab = tab
            pct, tab = pivot_from_counts(tab, k)
            pivots[v.key], counts[v.key] = pct, tab
            within[v.key] = within_clusters(tab)
        if genre_tab is not None:
            known = [c for c in genre_tab.columns if c != UNKNOWN and genre_tab[c].sum() > 0]
            genres = np.array(sorted(known), dtype=object)
            C = genre_tab[list(genres)].to_numpy(dtype=np.float64) if len(genres) else np.zeros((k, 0))
            unknown = genre_tab[UNKNOWN].to_numpy() if UNKNOWN in genre_tab.columns else np.zeros(k, np.int64)
            rep = representative_from_counts(C, genres, unknown, k=k)
        else:
            warn_msgs.append("no genre column: representative genres not computed")
            rep = [{"cluster": c, "genre": None, "unknown_share": None} for c in range(k)]
        descriptions = [describe_cluster(c, cluster_sizes[c], n, rep[c], within, variables) for c in range(k)]
        warn_msgs.append(
            "with --engine spark the comparisons with scikit-learn and with/without echonest are not "
            "run (they refit on the whole table in memory)"
        )
        rng = np.random.default_rng(config.seed)
        pick = np.sort(rng.choice(n, min(n, config.projection_sample), replace=False))
        got = _sample_rows(run, zblocks, pick)
        Z2 = got["Z"]
        proj = {
            "xy": Z2[:, :2] if Z2.shape[1] >= 2 else np.c_[Z2[:, :1], np.zeros(len(Z2))],
            "labels": got["labels"],
            "centers": res.centers[:, :2] if Z2.shape[1] >= 2 else None,
        }
        if assignments is not None:
            run.step(f"writing the assignments to {assignments}")
            _write_assignments(run, zblocks, assignments)
        log.info("cluster run on Spark: %.1f s", time.perf_counter() - t_start)
        empty = np.zeros(0)
        return ClusterAnalysis(
            str(path),
            config,
            n,
            plan,
            red,
            chooser,
            k,
            empty.astype(np.int64),
            empty,
            empty,
            model,
            cluster_sizes,
            variables,
            pivots,
            counts,
            within,
            rep,
            descriptions,
            None,
            None,
            proj,
            None,
            warn_msgs,
        )
    finally:
        for rdd in (blocks, zblocks):
            if rdd is not None:
                try:
                    rdd.unpersist()
                except Exception:  # noqa: BLE001
                    pass


def _kmeans(engine: SparkEngine, data: SparkBlocks, k: int, config: RunConfig, *, tol: float):
    """The best of ``n_init`` runs (k-means‖ seeds), or one run from the given centres; ``tol``: KMeans'
    default, scaled as KMeans scales it (by the mean column variance)."""
    if k > data.n_rows:
        raise ParameterError(f"n_clusters={k} must be in [1, n_samples={data.n_rows}]")
    if not isinstance(config.init, str):
        centers = np.asarray(config.init, dtype=np.float64)
        if centers.shape != (k, data.n_features):
            raise ParameterError(f"init array has shape={centers.shape}, expected ({k}, {data.n_features})")
        return engine.lloyd_blocks(data, centers, max_iter=config.max_iter, tol=tol, labels=False), 1

    rng = check_random_state(config.seed)
    best = None
    for _ in range(config.n_init):
        centers = kmeans_parallel_init(engine, data, k, random_state=rng)
        res = engine.lloyd_blocks(data, centers, max_iter=config.max_iter, tol=tol, labels=False)
        if best is None or res.inertia < best.inertia:
            best = res
    return best, config.n_init


def _label(kv, centers):
    part, Z, extra = kv
    labels, _ = assign(Z, centers)
    dist = np.sqrt(((Z - centers[labels]) ** 2).sum(axis=1))
    return part, Z, dict(extra, labels=labels.astype(np.int64), dist=dist)


def _sample_rows(run: _Run, zblocks, positions: np.ndarray) -> dict:
    """The rows at ``positions`` (a bounded number): their Z (and labels, once known), in position order."""
    want = np.sort(np.asarray(positions, dtype=np.int64))
    bc = run.sc.broadcast(want)

    def pick(kv, bc=bc):
        _, Z, extra = kv
        pos = extra["pos"]
        sel = np.flatnonzero(np.isin(pos, bc.value))
        return pos[sel], Z[sel], extra["labels"][sel] if "labels" in extra else None

    parts = run.job(lambda: zblocks.map(pick).collect(), f"sampling {len(want):,} rows")
    pos = np.concatenate([p[0] for p in parts])
    order = np.argsort(pos)
    out = {"Z": np.concatenate([p[1] for p in parts])[order]}
    if parts and parts[0][2] is not None:
        out["labels"] = np.concatenate([p[2] for p in parts])[order]
    return out


def _write_assignments(run: _Run, zblocks, path: str) -> None:
    def rows(kv):
        _, _, extra = kv
        ids = extra["ids"] if extra["ids"] is not None else extra["pos"]
        yield from zip(ids.tolist(), extra["labels"].tolist(), extra["dist"].tolist())

    df = run.session.createDataFrame(zblocks.flatMap(rows), "track_id long, cluster long, distance double")
    writer = df.write.mode("overwrite")
    run.job(
        lambda: writer.option("header", True).csv(path) if str(path).endswith(".csv") else writer.parquet(path),
        f"writing {path}",
    )


# --------------------------------------------------------------------------- variables from aggregates


def _values(meta, v: Variable):
    """A variable's column of a block as what the local categorisation reads (see ``categorize``)."""
    import pandas as pd

    s = meta[v.column]
    if v.kind == "year" and not np.issubdtype(np.asarray(s).dtype, np.number):
        dt = pd.to_datetime(s, errors="coerce")
        if getattr(dt.dt, "tz", None) is not None:
            dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
        return "date", dt
    if v.kind in ("numeric", "year"):
        return "number", pd.to_numeric(
            pd.Series(np.asarray(s, dtype=float) if v.kind == "year" else s), errors="coerce"
        ).to_numpy(dtype=np.float64, na_value=np.nan)
    s = s.astype("object").where(s.notna(), UNKNOWN).astype(str)
    return "text", s.where(s.str.strip() != "", UNKNOWN)


def _block_stats(kv, variables: list[Variable]) -> list:
    """Per variable, what one block says: its first few distinct known values (with its first position),
    and for text variables the value counts with each value's first position."""
    meta, pos = kv[2]["meta"], kv[2]["pos"]
    first = int(pos[0]) if len(pos) else 0
    out = []
    for v in variables:
        s = meta[v.column]
        known = s[s.notna()]
        if known.dtype == object or str(known.dtype) in ("str", "string"):
            known = known.astype(str).str.strip()
            known = known[known != ""]
        try:
            few = list(dict.fromkeys(known.tolist()))[:2]
        except TypeError:
            few = None
        kind, vals = _values(meta, v)
        counts = None
        if kind == "text":
            counts = {}
            for val, p in zip(vals.tolist(), pos.tolist()):
                if val != UNKNOWN:
                    c, f = counts.get(val, (0, p))
                    counts[val] = (c + 1, f)
        out.append((kind, few, first, counts))
    return out


def _merge_stats(a: list, b: list) -> list:
    out = []
    for (ka, fa, pa, ca), (_kb, fb, pb, cb) in zip(a, b):
        few = None if fa is None or fb is None else (fa + fb if pa <= pb else fb + fa)
        few = None if few is None else list(dict.fromkeys(few))[:2]
        counts = None
        if ca is not None:
            counts = dict(ca)
            for key, (c, f) in cb.items():
                c0, f0 = counts.get(key, (0, f))
                counts[key] = (c0 + c, min(f0, f))
        out.append((ka, few, min(pa, pb), counts))
    return out


def _informative(variables: list[Variable], stats: list) -> tuple[list[Variable], list[str], dict]:
    """The informative variables (the local ``informative_variables``), the notes on the others, and what
    the blocks said of each variable (``stats``: :func:`_block_stats` merged)."""
    if not variables:
        return [], [], {}
    by_key = {v.key: st for v, st in zip(variables, stats)}

    def distinct(v):
        few = by_key[v.key][1]
        return None if few is None else (len(few), few[0] if few else None)

    kept, notes = informative_variables(None, variables, distinct=distinct)
    return kept, notes, by_key


def _tables(run: _Run, zblocks, variables: list[Variable], by_key: dict, k: int) -> dict:
    """Each variable's clusters × categories counts, its categories as the local ``categorize`` makes them
    (a sort for the quartile cuts, then one job for every table)."""
    import pandas as pd

    if not variables:
        return {}
    plans: dict[str, Any] = {}
    ranked = []
    for v in variables:
        kind, _, _, counts = by_key[v.key]
        if kind == "text":
            plans[v.key] = [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1][0], kv[1][1]))[:12]]
        else:
            ranked.append(v)
    cuts = _cut_points(run, zblocks, ranked)
    for v in ranked:
        plans[v.key] = cuts[v.key]
    kinds = {v.key: by_key[v.key][0] for v in variables}
    parts = run.job(
        lambda: zblocks.map(lambda kv: _block_tables(kv, variables, kinds, plans, k)).treeReduce(_merge_tables, 2),
        "cluster × category counts",
    )
    tables = {}
    for v in variables:
        kind, plan = kinds[v.key], plans[v.key]
        if kind == "text":
            tab = parts[v.key]
            names = plan + ["other", UNKNOWN]
            if tab[:, len(plan)].sum() == 0:  # "other" only when some value is not a top one
                tab, names = np.delete(tab, len(plan), axis=1), plan + [UNKNOWN]
            tables[v.key] = _frame(tab, names, v)
            continue
        tab, lo, hi, years = parts[v.key]
        if plan[1] == 0:  # no known value
            tables[v.key] = _frame(tab[:, 4:], [UNKNOWN], v)
        elif kind == "date":
            ranges = [
                (pd.Timestamp(int(lo[i])), pd.Timestamp(int(hi[i]))) if np.isfinite(lo[i]) else None for i in range(4)
            ]
            known = [r for r in ranges if r is not None]
            span = (max(r[1] for r in known) - min(r[0] for r in known)) / pd.Timedelta(days=1)
            tables[v.key] = _frame(tab, date_labels(ranges, n_years=len(years), span_days=span) + [UNKNOWN], v)
        else:
            ranges = [(float(lo[i]), float(hi[i])) if np.isfinite(lo[i]) else None for i in range(4)]
            tables[v.key] = _frame(tab, quartile_labels(ranges, integer=v.kind == "year") + [UNKNOWN], v)
    return tables


def _block_tables(kv, variables: list[Variable], kinds: dict, plans: dict, k: int) -> dict:
    """One block's clusters × categories counts per variable (quartiles: with each one's min and max)."""
    meta, pos, labels = kv[2]["meta"], kv[2]["pos"], kv[2]["labels"]
    out = {}
    for v in variables:
        kind, plan = kinds[v.key], plans[v.key]
        _, vals = _values(meta, v)
        if kind == "text":
            idx = {c: i for i, c in enumerate(plan)}
            code = np.array(
                [len(plan) + 1 if x == UNKNOWN else idx.get(x, len(plan)) for x in vals.tolist()], dtype=np.int64
            )
            tab = np.zeros((k, len(plan) + 2), dtype=np.int64)
            np.add.at(tab, (labels, code), 1)
            out[v.key] = tab
            continue
        cuts, _ = plan
        x, ok = _ranked(vals)
        q = np.zeros(x.shape[0], dtype=np.int64)
        for cv, cp in cuts:
            q += (x > cv) | ((x == cv) & (pos >= cp))
        tab = np.zeros((k, 5), dtype=np.int64)
        np.add.at(tab, (labels, np.where(ok, q, 4)), 1)
        lo, hi = np.full(4, np.inf), np.full(4, -np.inf)
        raw = vals.to_numpy().astype("datetime64[ns]").astype(np.int64).astype(np.float64) if kind == "date" else x
        for i in range(4):
            sel = ok & (q == i)
            if sel.any():
                lo[i], hi[i] = raw[sel].min(), raw[sel].max()
        years = set(vals[ok].dt.year.tolist()) if kind == "date" else set()
        out[v.key] = (tab, lo, hi, years)
    return out


def _merge_tables(a: dict, b: dict) -> dict:
    out = {}
    for key, x in a.items():
        y = b[key]
        out[key] = (
            x + y
            if isinstance(x, np.ndarray)
            else (x[0] + y[0], np.minimum(x[1], y[1]), np.maximum(x[2], y[2]), x[3] | y[3])
        )
    return out


def _ranked(vals) -> tuple[np.ndarray, np.ndarray]:
    """The values the quartiles rank (dates as whole seconds, as the local run ranks them) and which are known."""
    if hasattr(vals, "dt"):
        ok = vals.notna().to_numpy()
        x = np.full(len(vals), np.nan)
        x[ok] = vals[ok].to_numpy().astype("datetime64[s]").astype(np.int64).astype(np.float64)
        return x, ok
    x = np.asarray(vals, dtype=np.float64)
    return x, np.isfinite(x)


def _cut_points(run: _Run, zblocks, variables: list[Variable]) -> dict[str, tuple[list[tuple[float, int]], int]]:
    """Per variable, the ``(value, position)`` pairs at ranks ⌈i·m/4⌉ (i = 1..3) among its ``m`` known
    values, and ``m``: a row is in quartile ``#{cut points <= (value, position)}`` — the local
    ``(rank · 4) // m``. One distributed sort of ``(variable, value, position)`` for all variables."""
    if not variables:
        return {}

    def triples(kv):
        out = []
        for j, v in enumerate(variables):
            _, vals = _values(kv[2]["meta"], v)
            x, ok = _ranked(vals)
            out += [(j, a, b) for a, b in zip(x[ok].tolist(), kv[2]["pos"][ok].tolist())]
        return out

    known = zblocks.flatMap(triples).cache()
    try:
        counts = dict(
            run.job(lambda: known.map(lambda t: (t[0], 1)).reduceByKey(lambda a, b: a + b).collect(), "known values")
        )
        m = [counts.get(j, 0) for j in range(len(variables))]
        start = np.concatenate([[0], np.cumsum(m)[:-1]]).astype(int).tolist()
        want = {
            start[j] + math.ceil(i * m[j] / 4): j
            for j in range(len(variables))
            for i in (1, 2, 3)
            if math.ceil(i * m[j] / 4) < m[j]
        }
        picked = (
            run.job(
                lambda: known.sortBy(lambda t: t).zipWithIndex().filter(lambda t, w=set(want): t[1] in w).collect(),
                "quartile cuts",
            )
            if want
            else []
        )
    finally:
        known.unpersist()
    cuts: dict[int, list] = {j: [] for j in range(len(variables))}
    for (j, a, b), _ in sorted(picked, key=lambda t: t[1]):
        cuts[j].append((a, b))
    return {v.key: (cuts[j], m[j]) for j, v in enumerate(variables)}


def _frame(tab: np.ndarray, names: list[str], v: Variable):
    """A count table as the local ``pd.crosstab`` gives it: clusters × categories."""
    import pandas as pd

    out = pd.DataFrame(
        np.asarray(tab, dtype=np.int64),
        index=pd.RangeIndex(tab.shape[0], name="cluster"),
        columns=pd.Index(names, name=v.key),
    )
    return out
