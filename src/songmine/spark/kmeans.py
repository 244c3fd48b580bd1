"""k-means on Apache Spark, in the MapReduce paradigm (engine ``"spark"``).

Data live in Spark as an RDD of numpy row blocks, one or more per partition,
cached in memory: ``(key, X_block)``. One Lloyd iteration is one job:

* **map** (per partition, vectorised): assign every row of the block to its
  nearest centre (broadcast), with the *same* code as the local engine
  (:func:`songmine.cluster.engines.assign`: ``−2 X·Cᵀ + ||c||²``, ties → lower
  index), and emit one record per non-empty cluster
  ``(cluster, (sum of rows, count, sse))`` — the partition is its own combiner;
* **reduce**: ``treeReduce`` (default: the k records of a partition travel as
  one dense triple, no shuffle) or ``reduceByKey`` (``reducer="by-key"``)
  adds the triples; the driver divides sums by
  counts. An empty cluster keeps its previous centre (and a
  :class:`~songmine.errors.ConvergenceWarning` is emitted), the shift
  ``Σ ||c_new − c_old||²`` is compared with the absolute ``tol``.

After stopping, one more job assigns every row to the final centres and
computes the exact inertia (differences, float64), as the local engine does —
so with the same initial centres and iterations, centres agree to rounding
(summation order differs) and labels are identical.

**Initialisation.** :meth:`SparkEngine.init_centers` implements
**k-means||** (Bahmani et al. 2012, the scheme of Spark MLlib's
``initMode="k-means||"``): one uniform point, then ``n_rounds`` (2) passes in
which every point joins the candidate set independently with probability
``min(1, ℓ·D²(x)/φ)`` (ℓ = ``oversampling``·k = 2k), candidates weighted by
how many points are nearest to them, and the weighted candidates reduced to k
centres on the driver by greedy weighted k-means++ then weighted Lloyd. Each round is
one distributed pass; sampling is seeded per (round, block), so a seed gives
the same centres whatever the scheduling.

Input: a numpy array (split into blocks and ``parallelize``-d), a Spark
DataFrame, or a parquet path read by Spark in parallel
(:func:`read_parquet_blocks`, used by ``songmine cluster run TABLE --engine spark``).
"""

from __future__ import annotations

import io
import logging
import math
import os
import pickle
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cluster.engines import LloydResult, assign, center_sums, inertia_of, warn_empty_clusters
from ..errors import DataError, ParameterError
from ..random_state import check_random_state
from .session import describe_failure, get_session, run_job

__all__ = ["SparkEngine", "SparkBlocks", "read_parquet_blocks", "kmeans_parallel_init"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- worker-side functions
# (module-level so cloudpickle ships them by reference: workers import songmine)


def _partials(blocks, centers: np.ndarray):
    """Map + combine: per block, per non-empty cluster, (sum of rows, count, sse)."""
    k = centers.shape[0]
    for _, X, *_ in blocks:
        if X.shape[0] == 0:
            continue
        labels, mind = assign(X, centers)
        sums, counts = center_sums(X, labels, k)
        sse = np.bincount(labels, weights=mind, minlength=k)
        for j in np.flatnonzero(counts):
            yield int(j), (sums[j], int(counts[j]), float(sse[j]))


def _partials_dense(blocks, centers: np.ndarray):
    """Map + combine, dense form: one (sums [k, d], counts [k], sse [k]) per partition."""
    k = centers.shape[0]
    sums = np.zeros_like(centers)
    counts = np.zeros(k, dtype=np.int64)
    sse = np.zeros(k, dtype=np.float64)
    for _, X, *_ in blocks:
        if X.shape[0] == 0:
            continue
        labels, mind = assign(X, centers)
        s, c = center_sums(X, labels, k)
        sums += s
        counts += c
        sse += np.bincount(labels, weights=mind, minlength=k)
    yield sums, counts, sse


def _add3(a, b):
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _final_labels(blocks, centers: np.ndarray):
    """Labels against the final centres and the exact inertia per block."""
    for key, X, *_ in blocks:
        labels, _ = assign(X, centers)
        yield key, labels, inertia_of(X, centers, labels)


def _min_sq_dist(blocks, centers: np.ndarray):
    for key, X, *_ in blocks:
        _, mind = assign(X, centers)
        yield key, mind.astype(np.float64)


def _cost(blocks, centers: np.ndarray):
    for _, mind in _min_sq_dist(blocks, centers):
        yield float(mind.sum())


def _sample(blocks, centers: np.ndarray, ell: float, phi: float, seed: int, round_no: int):
    for key, X, *_ in blocks:
        _, mind = assign(X, centers)
        rng = np.random.default_rng([seed, round_no, *_key_ints(key)])
        p = np.minimum(1.0, ell * mind.astype(np.float64) / phi)
        keep = rng.random(X.shape[0]) < p
        if keep.any():
            yield X[keep]


def _weights(blocks, centers: np.ndarray):
    k = centers.shape[0]
    for _, X, *_ in blocks:
        labels, _ = assign(X, centers)
        yield np.bincount(labels, minlength=k)


def _key_ints(key) -> tuple[int, ...]:
    return tuple(int(v) for v in (key if isinstance(key, tuple) else (key,)))


def _rows(blocks, wanted: dict):
    for key, X, *_ in blocks:
        rows = wanted.get(key)
        if rows:
            yield key, X[list(rows)]


# --------------------------------------------------------------------------- data in Spark


@dataclass
class SparkBlocks:
    """Rows as a cached RDD of ``(key, X_block)`` (keys sortable: row order = key order).

    Attributes
    ----------
    rdd : pyspark.RDD
    n_rows, n_features : int
    dtype : np.dtype
    sizes : dict key → rows in that block (to locate a global row index)
    ids : np.ndarray or None
        Row identifiers in key order (from a table's id column), if any.
    """

    rdd: Any
    n_rows: int
    n_features: int
    dtype: np.dtype
    sizes: dict
    ids: np.ndarray | None = None
    col_sums: tuple | None = None  # (Σx, Σx²) per column, float64, when known

    def unpersist(self) -> None:
        try:
            self.rdd.unpersist()
        except Exception:  # noqa: BLE001
            pass


def blocks_from_array(sc, X: np.ndarray, n_partitions: int) -> SparkBlocks:
    """Split ``X`` into ``n_partitions`` row blocks and cache them in Spark."""
    n = X.shape[0]
    n_partitions = max(1, min(n_partitions, n))
    bounds = np.linspace(0, n, n_partitions + 1).astype(np.int64)
    items = [(i, np.ascontiguousarray(X[bounds[i] : bounds[i + 1]])) for i in range(n_partitions)]
    rdd = sc.parallelize(items, n_partitions).cache()
    sizes = {i: int(bounds[i + 1] - bounds[i]) for i in range(n_partitions)}
    return SparkBlocks(rdd, n, X.shape[1], X.dtype, sizes)


def _arrow_to_blocks(columns: list[str], id_column: str | None, dtype: str):
    """mapInArrow function: all Arrow batches of a partition → one serialised numpy block."""

    def fn(batches):
        import pyarrow as pa
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        xs, ids = [], []
        for b in batches:
            if b.num_rows == 0:
                continue
            cols = [b.column(b.schema.get_field_index(c)).to_numpy(zero_copy_only=False) for c in columns]
            xs.append(np.column_stack(cols).astype(dtype, copy=False))
            if id_column is not None:
                ids.append(b.column(b.schema.get_field_index(id_column)).to_numpy(zero_copy_only=False))
        if not xs:
            return
        X = np.ascontiguousarray(np.concatenate(xs))
        buf = io.BytesIO()
        np.save(buf, X, allow_pickle=False)
        payload_ids = pickle.dumps(np.concatenate(ids)) if id_column is not None else b""
        yield pa.RecordBatch.from_pydict(
            {"part": [part], "x": [buf.getvalue()], "ids": [payload_ids]},
            schema=pa.schema([("part", pa.int64()), ("x", pa.binary()), ("ids", pa.binary())]),
        )

    return fn


def _decode_block(row):
    return int(row["part"]), np.load(io.BytesIO(row["x"]), allow_pickle=False), bytes(row["ids"])


def blocks_from_dataframe(
    session,
    df,
    *,
    columns: list[str] | None = None,
    id_column: str | None = None,
    dtype: str = "float64",
    n_partitions: int | None = None,
) -> SparkBlocks:
    """Numeric ``columns`` of a Spark DataFrame as cached numpy blocks (one per partition).

    Columns default to every numeric column except ``id_column``. Rows with
    nulls/NaN are an error (``DataError``) — impute or drop them first.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    numeric = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
    fields = {f.name: f.dataType for f in df.schema.fields}
    if id_column is not None and id_column not in fields:
        raise DataError(f"id column {id_column!r} not in the table (columns: {list(fields)[:10]}...)")
    if columns is None:
        columns = [c for c, t in fields.items() if isinstance(t, numeric) and c != id_column]
    missing = [c for c in columns if c not in fields]
    if missing:
        raise DataError(f"columns {missing} not in the table")
    bad = [c for c in columns if not isinstance(fields[c], numeric)]
    if bad:
        raise DataError(f"columns {bad} are not numeric")
    if not columns:
        raise DataError("the table has no numeric feature columns")
    sel = df.select(*([id_column] if id_column else []), *[F.col(c).cast("double").alias(c) for c in columns])
    if n_partitions:
        sel = sel.repartition(n_partitions)
    out = sel.mapInArrow(_arrow_to_blocks(columns, id_column, dtype), "part long, x binary, ids binary")
    rdd = out.rdd.map(_decode_block).cache()  # (part, X, ids-bytes), read in parallel
    # one job: materialise the cache and gather per block its size, bad rows, column sums, ids
    stats = sorted(rdd.map(_block_stats).collect(), key=lambda s: s[0])
    n = int(sum(s[1] for s in stats))
    if n == 0:
        rdd.unpersist()
        raise DataError("the table has no rows")
    n_bad = int(sum(s[2] for s in stats))
    if n_bad:
        rdd.unpersist()
        raise DataError(f"{n_bad} rows have null/NaN/inf features; impute or drop them first")
    ids = None
    if id_column is not None:
        ids = np.concatenate([pickle.loads(s[5]) for s in stats])
    blocks = SparkBlocks(rdd, n, len(columns), np.dtype(dtype), {s[0]: s[1] for s in stats}, ids)
    blocks.col_sums = (sum(s[3] for s in stats), sum(s[4] for s in stats))
    return blocks


def _block_stats(block):
    key, X, ids = block
    bad = ~np.isfinite(X).all(axis=1)
    Xf = X[~bad] if bad.any() else X
    return (
        key,
        X.shape[0],
        int(bad.sum()),
        Xf.sum(axis=0, dtype=np.float64),
        np.einsum("ij,ij->j", Xf, Xf, dtype=np.float64),
        ids,
    )


def read_parquet_blocks(
    session,
    path: str,
    *,
    columns: list[str] | None = None,
    id_column: str | None = None,
    n_partitions: int | None = None,
) -> SparkBlocks:
    """Read a parquet table (file or folder, any Hadoop URL) with Spark, in parallel."""
    try:
        df = session.read.parquet(str(path))
    except Exception as exc:  # noqa: BLE001  (AnalysisException: path does not exist, not parquet...)
        raise DataError(f"cannot read parquet {path}: {describe_failure(exc)}") from None
    return blocks_from_dataframe(session, df, columns=columns, id_column=id_column, n_partitions=n_partitions)


# --------------------------------------------------------------------------- the engine


class SparkEngine:
    """Lloyd's k-means as MapReduce jobs on Spark (see the module doc).

    Parameters
    ----------
    master : str or None
        Any Spark master URL; the session is shared (:func:`songmine.spark.get_session`).
        ``None``: the running shared session if any, else ``local[*]``.
    n_partitions : int or None
        Blocks a numpy input is split into; default ``2 × defaultParallelism``.
    reducer : {"tree", "by-key"}
        How the per-partition partials are added: ``"tree"`` (default) —
        each partition emits its k records as one dense ``(sums, counts, sse)``
        triple, added by ``treeReduce`` (one stage, no shuffle); ``"by-key"`` —
        one ``(cluster, (sum, count, sse))`` record per non-empty cluster,
        ``reduceByKey`` (a shuffle: the textbook MapReduce form, ~2× the job
        overhead at this scale). Identical results up to summation order.
    job_timeout_s : float or None
        Upper bound for each Spark job (an iteration); ``None``: no bound beyond
        Spark's own failure detection.
    session : SparkSession or None
        Use this session instead of the shared one.
    settings : songmine.spark.SparkSettings or None
        How to start the shared session (driver memory, timeouts...).
    """

    name = "spark"

    def __init__(
        self,
        master: str | None = None,
        *,
        n_partitions: int | None = None,
        reducer: str = "tree",
        job_timeout_s: float | None = None,
        session=None,
        settings=None,
    ):
        if reducer not in ("tree", "by-key"):
            raise ParameterError(f"reducer={reducer!r} must be 'tree' or 'by-key'")
        self.reducer = reducer
        if n_partitions is not None and (not isinstance(n_partitions, int) or n_partitions < 1):
            raise ParameterError(f"n_partitions={n_partitions!r} must be a positive int")
        if job_timeout_s is not None and not job_timeout_s > 0:
            raise ParameterError(f"job_timeout_s={job_timeout_s!r} must be > 0")
        self.master = master
        self.n_partitions = n_partitions
        self.job_timeout_s = job_timeout_s
        self._session = session
        self.settings = settings
        self._cached = None

    def __repr__(self) -> str:
        return f"SparkEngine(master={self.master!r}, n_partitions={self.n_partitions}, reducer={self.reducer!r})"

    # -- plumbing --------------------------------------------------------------------------
    @property
    def session(self):
        if self._session is None:
            self._session = get_session(self.master, settings=self.settings)
        return self._session

    def _run(self, action, what: str):
        return run_job(self.session, action, timeout_s=self.job_timeout_s, what=what)

    def blocks(self, X) -> tuple[SparkBlocks, bool]:
        """``X`` as SparkBlocks; the flag says whether we created (and must unpersist) them."""
        if isinstance(X, SparkBlocks):
            return X, False
        if isinstance(X, (str, os.PathLike)):
            return read_parquet_blocks(self.session, os.fspath(X), n_partitions=self.n_partitions), True
        if type(X).__name__ == "DataFrame" and hasattr(X, "mapInArrow"):
            return blocks_from_dataframe(self.session, X, n_partitions=self.n_partitions), True
        X = np.asarray(X)
        if X.ndim != 2 or X.dtype not in (np.float32, np.float64):
            raise ParameterError(f"X must be a 2-D float32/float64 array, got shape={X.shape} dtype={X.dtype}")
        # Repeated calls on the same array (n_init restarts, choose-k) reuse the cached blocks:
        # shipping the data to Spark is the expensive part. The array must not be modified in between.
        cached = self._cached
        if cached is not None and cached[0]() is X and cached[1] == (X.shape, X.dtype, X.ctypes.data):
            return cached[2], False
        self.close()
        parts = self.n_partitions or 2 * self.session.sparkContext.defaultParallelism
        blocks = blocks_from_array(self.session.sparkContext, X, parts)
        try:
            self._cached = (weakref.ref(X), (X.shape, X.dtype, X.ctypes.data), blocks)
        except TypeError:  # not weak-referenceable: do not cache
            return blocks, True
        return blocks, False

    def close(self) -> None:
        """Drop the cached copy of the last numpy input from Spark's memory."""
        if self._cached is not None:
            self._cached[2].unpersist()
            self._cached = None

    # -- Lloyd -------------------------------------------------------------------------------
    def lloyd(self, X, centers: np.ndarray, *, max_iter: int, tol: float) -> LloydResult:
        """Lloyd iterations from ``centers`` (shared semantics: :mod:`songmine.cluster.engines`).

        ``X``: numpy array, Spark DataFrame, parquet path or :class:`SparkBlocks`.
        Labels are returned in row order (for a table: the order of its partitions,
        with ``blocks.ids`` giving the ids).
        """
        if max_iter < 0:
            raise ParameterError(f"max_iter={max_iter} must be >= 0")
        if not tol >= 0:
            raise ParameterError(f"tol={tol} must be >= 0")
        data, owned = self.blocks(X)
        try:
            return self._lloyd(data, centers, int(max_iter), float(tol))
        finally:
            if owned:
                data.unpersist()

    def lloyd_blocks(
        self, data: SparkBlocks, centers, *, max_iter: int, tol: float, labels: bool = True
    ) -> LloydResult:
        """Lloyd iterations over blocks already in Spark; with ``labels=False`` the final assignment
        stays on the executors (the result's ``labels`` is empty, its inertia summed there): nothing
        proportional to the rows reaches the driver."""
        return self._lloyd(data, centers, int(max_iter), float(tol), collect_labels=labels)

    def _lloyd(
        self, data: SparkBlocks, centers, max_iter: int, tol: float, *, collect_labels: bool = True
    ) -> LloydResult:
        centers = np.array(centers, dtype=data.dtype, order="C", copy=True)
        if centers.ndim != 2 or centers.shape[1] != data.n_features:
            raise ParameterError(f"centers shape={centers.shape} does not match X with {data.n_features} features")
        sc = self.session.sparkContext
        k = centers.shape[0]
        converged = False
        n_iter = 0
        empty_seen: dict[int, list[int]] = {}
        for it in range(max_iter):
            bc = sc.broadcast(centers)
            try:
                parts = self._run(lambda c=bc: self._reduce(data, c), f"k-means iteration {it + 1}")
            finally:
                bc.unpersist()
            new = centers.copy()
            present = np.zeros(k, dtype=bool)
            for j, (s, c, _sse) in parts.items():
                new[j] = s / data.dtype.type(c)
                present[j] = True
            if not present.all():
                empty_seen[it + 1] = np.flatnonzero(~present).tolist()
            diff = new - centers
            shift = float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
            centers = new
            n_iter = it + 1
            log.debug("spark k-means iteration %d: shift=%.6g", n_iter, shift)
            if shift <= tol:
                converged = True
                break
        warn_empty_clusters(empty_seen)
        bc = sc.broadcast(centers)
        try:
            if not collect_labels:
                inertia = self._run(
                    lambda: data.rdd.mapPartitions(lambda b, c=bc: _final_labels(b, c.value)).map(lambda r: r[2]).sum(),
                    "k-means final inertia",
                )
                return LloydResult(
                    centers=centers,
                    labels=np.empty(0, dtype=np.int64),
                    inertia=float(inertia),
                    n_iter=n_iter,
                    converged=converged,
                )
            out = self._run(
                lambda: data.rdd.mapPartitions(lambda b, c=bc: _final_labels(b, c.value)).collect(),
                "k-means final assignment",
            )
        finally:
            bc.unpersist()
        out.sort(key=lambda r: r[0])
        labels = np.concatenate([r[1] for r in out]) if out else np.empty(0, dtype=np.int64)
        inertia = float(sum(r[2] for r in out))
        return LloydResult(
            centers=centers,
            labels=labels.astype(np.int64, copy=False),
            inertia=inertia,
            n_iter=n_iter,
            converged=converged,
        )

    def _reduce(self, data: SparkBlocks, bc) -> dict:
        """One map/reduce pass: {cluster: (sum of rows, count, sse)} for the non-empty clusters."""
        if self.reducer == "by-key":
            return (
                data.rdd.mapPartitions(lambda b: _partials(b, bc.value))
                .reduceByKey(_add3, numPartitions=self.session.sparkContext.defaultParallelism)
                .collectAsMap()
            )
        sums, counts, sse = data.rdd.mapPartitions(lambda b: _partials_dense(b, bc.value)).treeReduce(_add3, 2)
        return {int(j): (sums[j], int(counts[j]), float(sse[j])) for j in np.flatnonzero(counts)}

    # -- k-means|| ----------------------------------------------------------------------------
    def init_centers(
        self, X, n_clusters: int, *, random_state=None, oversampling: float = 2.0, n_rounds: int = 2
    ) -> np.ndarray:
        """k-means|| initial centres (distributed); see the module doc."""
        data, owned = self.blocks(X)
        try:
            return kmeans_parallel_init(
                self, data, n_clusters, random_state=random_state, oversampling=oversampling, n_rounds=n_rounds
            )
        finally:
            if owned:
                data.unpersist()


def kmeans_parallel_init(
    engine: SparkEngine,
    data: SparkBlocks,
    n_clusters: int,
    *,
    random_state=None,
    oversampling: float = 2.0,
    n_rounds: int = 2,
) -> np.ndarray:
    """k-means|| (Bahmani et al. 2012) over Spark blocks → ``(n_clusters, d)`` centres."""
    k = int(n_clusters)
    if not 1 <= k <= data.n_rows:
        raise ParameterError(f"n_clusters={k} must be in [1, n_samples={data.n_rows}]")
    if not oversampling > 0 or n_rounds < 1:
        raise ParameterError(f"oversampling={oversampling} must be > 0 and n_rounds={n_rounds} >= 1")
    rng = check_random_state(random_state)
    seed = int(rng.integers(2**31))
    sc = engine.session.sparkContext
    # 1. one uniform row
    keys = sorted(data.sizes)
    counts = np.array([data.sizes[kk] for kk in keys])
    r = int(rng.integers(data.n_rows))
    b = int(np.searchsorted(np.cumsum(counts), r, side="right"))
    row = r - int(counts[:b].sum())
    wanted = {keys[b]: [row]}
    first = engine._run(
        lambda: data.rdd.mapPartitions(lambda it, w=wanted: _rows(it, w)).collect(), "k-means|| first centre"
    )
    cand = np.asarray(first[0][1], dtype=data.dtype)
    ell = oversampling * k
    for round_no in range(n_rounds):
        bc = sc.broadcast(cand)
        try:
            phi = engine._run(
                lambda: data.rdd.mapPartitions(lambda it, c=bc: _cost(it, c.value)).sum(),
                f"k-means|| cost, round {round_no + 1}",
            )
            if phi <= 0:
                break
            new = engine._run(
                lambda: data.rdd.mapPartitions(
                    lambda it, c=bc, p=phi, rn=round_no: _sample(it, c.value, ell, p, seed, rn)
                ).collect(),
                f"k-means|| sampling, round {round_no + 1}",
            )
        finally:
            bc.unpersist()
        if new:
            cand = np.concatenate([cand, *new])
    cand = np.unique(cand, axis=0)
    bc = sc.broadcast(cand)
    try:
        w = engine._run(
            lambda: data.rdd.mapPartitions(lambda it, c=bc: _weights(it, c.value)).reduce(lambda a, b2: a + b2),
            "k-means|| candidate weights",
        )
    finally:
        bc.unpersist()
    if cand.shape[0] <= k:
        if cand.shape[0] < k:  # fewer distinct rows than k: repeat some (Lloyd leaves them empty)
            extra = cand[rng.integers(cand.shape[0], size=k - cand.shape[0])]
            cand = np.concatenate([cand, extra])
        return cand[:k].astype(data.dtype)
    return _weighted_kmeans(cand.astype(np.float64), w.astype(np.float64), k, rng).astype(data.dtype)


def _weighted_kmeans(C: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 30) -> np.ndarray:
    """Reduce weighted candidates to k centres on the driver (small): greedy weighted
    k-means++ (best of ``2 + ln k`` draws per step, by weighted potential), then weighted Lloyd."""
    m = C.shape[0]
    c_sq = np.einsum("ij,ij->i", C, C)
    trials = 2 + int(math.log(k))

    def sq_to(rows):  # (len(rows), m)
        return np.maximum(c_sq[rows, None] - 2 * C[rows] @ C.T + c_sq[None, :], 0)

    idx = [int(rng.choice(m, p=w / w.sum()))]
    closest = sq_to([idx[0]])[0]
    for _ in range(1, k):
        p = w * closest
        tot = p.sum()
        if tot <= 0:
            idx.append(int(rng.integers(m)))
            continue
        cand = np.minimum(np.searchsorted(np.cumsum(p), rng.random(trials) * tot, side="right"), m - 1)
        dist = np.minimum(closest[None, :], sq_to(cand))
        best = int(np.argmin(dist @ w))
        idx.append(int(cand[best]))
        closest = dist[best]
    centers = C[idx].copy()
    for _ in range(max_iter):
        D = c_sq[:, None] - 2 * C @ centers.T + np.einsum("ij,ij->i", centers, centers)[None, :]
        lab = D.argmin(axis=1)
        sw = np.bincount(lab, weights=w, minlength=k)
        new = centers.copy()
        nz = sw > 0
        for dcol in range(C.shape[1]):
            new[nz, dcol] = np.bincount(lab, weights=w * C[:, dcol], minlength=k)[nz] / sw[nz]
        if np.allclose(new, centers, rtol=0, atol=0):
            break
        centers = new
    return centers


def fit_parquet(
    path: str,
    n_clusters: int,
    *,
    columns: list[str] | None = None,
    id_column: str | None = None,
    init="k-means++",
    max_iter: int = 300,
    tol: float = 1e-4,
    random_state=None,
    master: str | None = None,
    n_partitions: int | None = None,
):
    """k-means of a parquet table, read and clustered by Spark end to end.

    ``init``: ``"k-means++"`` (→ k-means|| on Spark), ``"random"`` (k rows drawn
    uniformly on the driver from Spark), or an array of centres. ``tol`` is
    relative, as in :class:`~songmine.cluster.KMeans` (× mean feature variance,
    computed by Spark).

    Returns
    -------
    (LloydResult, ids) — ``ids`` from ``id_column`` in label order (None without one).
    """
    engine = SparkEngine(master, n_partitions=n_partitions)
    data = read_parquet_blocks(engine.session, path, columns=columns, id_column=id_column, n_partitions=n_partitions)
    try:
        rng = check_random_state(random_state)
        s1, s2 = data.col_sums
        n = data.n_rows
        var = np.maximum(s2 / n - (s1 / n) ** 2, 0)
        abs_tol = float(tol) * float(var.mean())
        if isinstance(init, str) and init == "k-means++":
            centers = kmeans_parallel_init(engine, data, n_clusters, random_state=rng)
        elif isinstance(init, str) and init == "random":
            rows = np.sort(rng.choice(data.n_rows, size=n_clusters, replace=False))
            keys = sorted(data.sizes)
            starts = np.cumsum([0] + [data.sizes[kk] for kk in keys])
            wanted: dict = {}
            for r in rows:
                b = int(np.searchsorted(starts, r, side="right") - 1)
                wanted.setdefault(keys[b], []).append(int(r - starts[b]))
            got = engine._run(
                lambda: data.rdd.mapPartitions(lambda it, w=wanted: _rows(it, w)).collect(), "random initial centres"
            )
            centers = np.concatenate([x for _, x in sorted(got, key=lambda t: t[0])])
        else:
            centers = np.asarray(init, dtype=data.dtype)
            if centers.shape != (n_clusters, data.n_features):
                raise ParameterError(
                    f"init array has shape={centers.shape}, expected ({n_clusters}, {data.n_features})"
                )
        res = engine._lloyd(data, centers, int(max_iter), abs_tol)
        return res, data.ids
    finally:
        data.unpersist()
