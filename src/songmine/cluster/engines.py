"""Compute engines for Lloyd's k-means iterations: the contract and the local engine.

An engine runs Lloyd iterations from given initial centres; everything else
(validation, initialisation, ``n_init`` restarts, tolerance scaling) lives in
:class:`songmine.cluster.KMeans`, so a second engine (Spark) plugs in
by implementing one method.

Shared semantics — every engine must reproduce them exactly
-----------------------------------------------------------
Given ``X`` of shape ``(n, d)`` and ``centers`` of shape ``(k, d)`` (same
floating dtype), one *iteration* is:

1. **Assign**: ``label[i] = argmin_j ||x_i - c_j||²``; ties go to the **lower
   index** ``j`` (what ``np.argmin`` does). Distances may be computed as
   ``||x||² − 2 x·c + ||c||²`` (the ``||x||²`` term does not change the argmin).
2. **Update**: ``c_j ← mean of the points labelled j``.
   **Empty cluster** (no point labelled ``j``): ``c_j`` keeps its previous
   value, and a :class:`~songmine.errors.ConvergenceWarning` is emitted once per
   ``lloyd`` call naming the iteration and cluster(s). (No relocation: the rule
   is deterministic and needs no global "farthest point" search.)
3. **Shift**: ``shift = Σ_j ||c_j(new) − c_j(old)||²`` (sum of squared centre
   moves, an *absolute* number — ``KMeans.fit`` turns the user's relative
   ``tol`` into ``tol × mean(var(X, axis=0))`` as scikit-learn does).

Iterate until ``shift <= tol`` (converged) or ``max_iter`` iterations were run
(not converged). ``n_iter`` = number of iterations run (each iteration counts,
including the converging one). After stopping, labels are recomputed against
the **returned** (final) centres (one more assignment step, not counted in
``n_iter``), and ``inertia = Σ_i ||x_i − c_label[i]||²`` is computed against
those final centres and labels. This matches scikit-learn's ``lloyd``: given
the same initial centres, centres agree to rounding and labels are identical
(barring exact ties).

``max_iter=0`` is allowed: no update, labels/inertia of the initial centres.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from dataclasses import dataclass
from importlib import import_module
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ConvergenceWarning, ParameterError

__all__ = ["LloydResult", "Engine", "LocalEngine", "get_engine", "ENGINES"]

log = logging.getLogger(__name__)

ENGINES = ("local", "spark")
#: Engines that live outside this package (optional extras), imported only when asked for.
_PLUGGED_ENGINES = {"spark": "songmine.spark.kmeans:SparkEngine"}

# Working-memory budget of one distance block (rows × k × itemsize bytes): about 1 MB keeps the block in
# L2 while the min/argmin passes run over it (8 MB blocks were 1.3-1.5x slower per dense pass).
_BLOCK_BYTES = 2**20


@dataclass(frozen=True)
class LloydResult:
    """What an engine returns from :meth:`Engine.lloyd`.

    Attributes
    ----------
    centers : np.ndarray [shape=(k, d)]
        Final centres, dtype of ``X``.
    labels : np.ndarray [shape=(n,), dtype=int64]
        Index of the nearest final centre per point (ties → lower index).
    inertia : float
        Sum of squared distances of points to their final centre.
    n_iter : int
        Lloyd iterations run.
    converged : bool
        Whether the centre shift fell to ``<= tol`` before ``max_iter``.
    """

    centers: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool


@runtime_checkable
class Engine(Protocol):
    """A k-means engine: Lloyd iterations from given centres (semantics in the module doc)."""

    name: str

    def lloyd(self, X, centers: np.ndarray, *, max_iter: int, tol: float) -> LloydResult:
        """Run Lloyd iterations on ``X`` from ``centers``; see the module doc for the exact rules."""
        ...


class LocalEngine:
    """In-process numpy engine: blocked BLAS distances, bounded memory.

    Distances are computed block by block as ``−2 C·X_bᵀ + ||c||²`` (one GEMM per
    block, blocks of at most ~1 MB of distances, laid out centres × rows), so memory is ``O(n + k·d +
    block)`` beyond ``X`` itself. Centre sums are one sparse-times-dense product
    (``O(n·d)``), in the dtype of ``X``.

    Parameters
    ----------
    algorithm : {"hamerly", "lloyd"}, default "hamerly"
        ``"lloyd"`` computes all ``n × k`` distances every iteration.
        ``"hamerly"`` (Hamerly 2010) keeps per point an upper bound on the
        distance to its centre and a lower bound on the distance to the second
        nearest, and recomputes distances only for points whose bounds no
        longer prove the assignment; bounds carry a rounding margin, so a point
        is skipped only when its centre is *strictly* nearest — the labels are
        those of ``"lloyd"`` (same rules, same result up to rounding of exact
        near-ties). Both follow the shared semantics above exactly.
    block_rows : int or None
        Rows per distance block; ``None`` sizes it from a 1 MB budget.
    blas_threads : int or None, default 1
        BLAS threads during the iterations. The GEMMs here are small (a block of
        rows × d × k), so extra BLAS threads mostly add synchronisation; on a
        busy machine they made the iterations 1.5–2.5× slower (benchmarks/kmeans.py).
        ``None`` leaves the BLAS setting alone.
    """

    name = "local"

    def __init__(self, *, algorithm: str = "hamerly", block_rows: int | None = None, blas_threads: int | None = 1):
        if algorithm not in ("hamerly", "lloyd"):
            raise ParameterError(f"algorithm={algorithm!r} must be 'hamerly' or 'lloyd'")
        if block_rows is not None and int(block_rows) < 1:
            raise ParameterError(f"block_rows={block_rows} must be >= 1")
        if blas_threads is not None and int(blas_threads) < 1:
            raise ParameterError(f"blas_threads={blas_threads} must be >= 1 or None")
        self.algorithm = algorithm
        self.block_rows = block_rows
        self.blas_threads = blas_threads

    def __repr__(self) -> str:
        return (
            f"LocalEngine(algorithm={self.algorithm!r}, block_rows={self.block_rows}, blas_threads={self.blas_threads})"
        )

    # -- public --------------------------------------------------------------------------
    def lloyd(self, X, centers: np.ndarray, *, max_iter: int, tol: float) -> LloydResult:
        X = np.asarray(X)
        if X.ndim != 2 or X.dtype not in (np.float32, np.float64):
            raise ParameterError(f"X must be a 2-D float32/float64 array, got shape={X.shape} dtype={X.dtype}")
        X = np.ascontiguousarray(X)
        centers = np.array(centers, dtype=X.dtype, order="C", copy=True)
        if centers.ndim != 2 or centers.shape[1] != X.shape[1]:
            raise ParameterError(f"centers shape={centers.shape} does not match X shape={X.shape}")
        if max_iter < 0:
            raise ParameterError(f"max_iter={max_iter} must be >= 0")
        if not tol >= 0:
            raise ParameterError(f"tol={tol} must be >= 0")
        run = _hamerly if self.algorithm == "hamerly" and centers.shape[0] > 1 else _lloyd
        with limit_blas_threads(self.blas_threads):
            return run(X, centers, max_iter=int(max_iter), tol=float(tol), block_rows=self.block_rows)


def limit_blas_threads(n: int | None):
    """A context in which BLAS uses at most ``n`` threads (no limit for None)."""
    if n is None:
        return contextlib.nullcontext()
    ctl = _threadpool_controller()
    if ctl is None:  # pragma: no cover
        return contextlib.nullcontext()
    return ctl.limit(limits=int(n), user_api="blas")


@functools.lru_cache(maxsize=1)
def _threadpool_controller():
    """One controller for the process: building it scans the loaded libraries (~0.1 s), limiting is cheap."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return None
    return ThreadpoolController()


def get_engine(name: str, **options) -> Engine:
    """Return the engine called ``name`` (``"local"`` or ``"spark"``) built with ``options``.

    The Spark engine is imported lazily (``songmine.spark.kmeans``), so pyspark is
    needed only when it is asked for.

    Raises
    ------
    ParameterError
        Unknown engine name, or options the engine does not accept.
    """
    if not isinstance(name, str) or name not in ENGINES:
        raise ParameterError(f"engine={name!r} is not one of {list(ENGINES)}")
    if name == "local":
        try:
            return LocalEngine(**options)
        except TypeError as exc:
            raise ParameterError(f"bad option for the local engine: {exc}") from None
    module, _, attr = _PLUGGED_ENGINES[name].partition(":")
    return getattr(import_module(module), attr)(**options)


# -- the guts (inputs validated) -----------------------------------------------------------------
def _block_rows(n: int, k: int, itemsize: int, block_rows: int | None) -> int:
    if block_rows is not None:
        return max(1, min(n, int(block_rows)))
    return max(256, min(n, _BLOCK_BYTES // max(1, k * itemsize)))


def assign(
    X: np.ndarray, centers: np.ndarray, *, x_sq: np.ndarray | None = None, block_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre per row (ties → lower index) and the squared distance to it.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
    centers : np.ndarray [shape=(k, d)], same dtype as ``X``
    x_sq : np.ndarray [shape=(n,)] or None
        Precomputed row norms ``||x||²``.

    Returns
    -------
    labels : np.ndarray [shape=(n,), dtype=int64]
    min_sq_dist : np.ndarray [shape=(n,)], clipped at 0
    """
    if x_sq is None:
        x_sq = np.einsum("ij,ij->i", X, X)
    labels, mind, _ = _nearest(X, centers, block_rows=block_rows, second=False)
    mind += x_sq
    np.maximum(mind, 0, out=mind)
    return labels, mind


def _nearest(X: np.ndarray, centers: np.ndarray, *, block_rows: int | None, second: bool):
    """Blocked nearest (and optionally second-nearest) centre by ``−2 c·x + ||c||²`` (``||x||²`` not added).

    The distance block is laid out centres × rows (``(k, b)``, one GEMM
    ``(−2C) · X_bᵀ``), so the minimum over centres is an element-wise
    reduction across ``k`` contiguous rows of length ``b`` — several times faster
    than a row-wise ``min``/``argmin`` over short rows of ``k`` values. The argmin
    is the first centre equal to the minimum (ties → lower index); the second
    nearest is the minimum after masking the nearest.

    Returns ``(labels int64, best [n], second [n] or None)`` in ``X``'s dtype.
    """
    n, k = X.shape[0], centers.shape[0]
    labels = np.empty(n, dtype=np.int64)
    best = np.empty(n, dtype=X.dtype)
    sec = np.empty(n, dtype=X.dtype) if second else None
    step = _block_rows(n, k, X.dtype.itemsize, block_rows)
    c2 = np.ascontiguousarray(-2.0 * centers, dtype=X.dtype)  # folds the −2 into the GEMM
    c_sq = np.einsum("ij,ij->i", centers, centers).astype(X.dtype, copy=False)[:, None]
    flat = np.empty(k * min(n, step), dtype=X.dtype)
    cols = np.arange(min(n, step))
    for start in range(0, n, step):
        stop = min(n, start + step)
        b = stop - start
        D = flat[: k * b].reshape(k, b)
        np.matmul(c2, X[start:stop].T, out=D)
        D += c_sq
        m1 = D.min(axis=0)
        lab = (D == m1).argmax(axis=0)
        labels[start:stop] = lab
        best[start:stop] = m1
        if second:
            D[lab, cols[:b]] = np.inf
            D.min(axis=0, out=sec[start:stop])
    return labels, best, sec


def center_sums(X: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of rows and counts: ``(sums [k, d], counts [k])`` in ``X``'s dtype."""
    import scipy.sparse as sp

    n = X.shape[0]
    onehot = sp.csc_matrix(
        (np.ones(n, dtype=X.dtype), labels.astype(np.int32, copy=False), np.arange(n + 1, dtype=np.int32)),
        shape=(k, n),
    )
    sums = np.asarray(onehot @ X)
    counts = np.bincount(labels, minlength=k)
    return sums, counts


def inertia_of(X: np.ndarray, centers: np.ndarray, labels: np.ndarray, *, block_rows: int = 65536) -> float:
    """Exact ``Σ ||x_i − c_label[i]||²`` (differences, not the expanded form), accumulated in float64."""
    total = 0.0
    n = X.shape[0]
    for start in range(0, n, block_rows):
        diff = X[start : start + block_rows] - centers[labels[start : start + block_rows]]
        total += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
    return total


def warn_empty_clusters(empty_seen: dict[int, list[int]], *, stacklevel: int = 4) -> None:
    """One ConvergenceWarning summarising the iterations that had empty clusters (every engine's rule)."""
    if empty_seen:
        first = next(iter(empty_seen))
        warnings.warn(
            f"{len(empty_seen)} iteration(s) had empty clusters (first: iteration {first}, "
            f"clusters {empty_seen[first]}); empty clusters kept their previous centre",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )


def _update_centers(X, labels, centers, it, empty_seen):
    k = centers.shape[0]
    sums, counts = center_sums(X, labels, k)
    new = centers.copy()
    nz = counts > 0
    new[nz] = sums[nz] / counts[nz, None].astype(X.dtype)
    if not nz.all():
        empty_seen[it + 1] = np.flatnonzero(~nz).tolist()
    return new


def _warn_empty(empty_seen):
    if empty_seen:
        first = next(iter(empty_seen))
        warnings.warn(
            f"{len(empty_seen)} iteration(s) had empty clusters (first: iteration {first}, "
            f"clusters {empty_seen[first]}); empty clusters kept their previous centre",
            ConvergenceWarning,
            stacklevel=4,
        )


def _assign_two(X, x_sq, centers, c_sq, block_rows):
    """Nearest centre, an upper bound on its distance and a lower bound on the 2nd nearest (not squared).

    Bounds include the rounding error of the expanded form ``||x||² − 2x·c + ||c||²``.
    """
    labels, best, second = _nearest(X, centers, block_rows=block_rows, second=True)
    err = 8 * np.finfo(X.dtype).eps * (x_sq.astype(np.float64) + float(c_sq.max(initial=0)))
    best = best + x_sq.astype(np.float64)
    second = second + x_sq.astype(np.float64)
    best += err
    second -= err
    upper = np.sqrt(np.maximum(best, 0, out=best), out=best)
    lower = np.sqrt(np.maximum(second, 0, out=second), out=second)
    return labels, upper, lower


def _hamerly(X: np.ndarray, centers: np.ndarray, *, max_iter: int, tol: float, block_rows: int | None) -> LloydResult:
    """Lloyd with Hamerly's bounds; same iterations and results as :func:`_lloyd`.

    Centre sums are kept (float64) and updated from the points that changed
    cluster; they are recomputed from scratch whenever more than a quarter of
    the points moved, and every 32 iterations (no drift).
    """
    n = X.shape[0]
    k = centers.shape[0]
    rel = 4 * np.finfo(X.dtype).eps
    x_sq = np.einsum("ij,ij->i", X, X)
    c_sq = np.einsum("ij,ij->i", centers, centers)
    labels, upper, lower = _assign_two(X, x_sq, centers, c_sq, block_rows)
    sums, counts = center_sums(X, labels, k)
    sums = sums.astype(np.float64)
    converged = False
    n_iter = 0
    since_full = 0
    empty_seen: dict[int, list[int]] = {}
    for it in range(max_iter):
        new = centers.copy()
        nz = counts > 0
        new[nz] = (sums[nz] / counts[nz, None]).astype(X.dtype)
        if not nz.all():
            empty_seen[it + 1] = np.flatnonzero(~nz).tolist()
        diff = new - centers
        delta_sq = np.einsum("ij,ij->i", diff, diff, dtype=np.float64)
        shift = float(delta_sq.sum())
        delta = np.sqrt(delta_sq) * (1 + rel)
        centers = new
        n_iter = it + 1
        # Bounds after the move: upper grows by its centre's move, lower shrinks by the largest other move.
        upper += delta[labels]
        upper *= 1 + rel
        order = np.argsort(delta)
        far = order[-1]
        # the largest move of any *other* centre, per centre (k values, then one gather)
        other = np.full(k, delta[far])
        other[far] = delta[order[-2]]
        lower -= other[labels]
        lower *= 1 - rel
        # s_j: half the distance from centre j to its nearest other centre.
        c_sq = np.einsum("ij,ij->i", centers, centers)
        cc = c_sq[:, None] - 2 * (centers @ centers.T).astype(np.float64) + c_sq[None, :]
        np.fill_diagonal(cc, np.inf)
        s = 0.5 * np.sqrt(np.maximum(cc.min(axis=1) - 8 * rel * c_sq.max(), 0))
        bound = np.maximum(s[labels], lower)
        cand = np.flatnonzero(upper >= bound)
        if cand.size > 0.4 * n:  # most bounds failed: one dense pass beats gathering rows
            old = labels
            labels, upper, lower = _assign_two(X, x_sq, centers, c_sq, block_rows)
            moved = np.flatnonzero(labels != old)
            old_of_moved = old[moved]
        else:
            if cand.size:
                d = X[cand] - centers[labels[cand]]
                upper[cand] = np.sqrt(np.einsum("ij,ij->i", d, d, dtype=np.float64)) * (1 + rel)
                cand = cand[upper[cand] >= bound[cand]]
            moved = old_of_moved = np.empty(0, dtype=np.int64)
            if cand.size:
                lab, up, lo = _assign_two(X[cand], x_sq[cand], centers, c_sq, block_rows)
                changed = lab != labels[cand]
                moved = cand[changed]
                old_of_moved = labels[moved]
                labels[cand] = lab
                upper[cand] = up
                lower[cand] = lo
        if shift <= tol:
            converged = True
            break
        since_full += 1
        if moved.size > n // 4 or since_full >= 32:
            sums, counts = center_sums(X, labels, k)
            sums = sums.astype(np.float64)
            since_full = 0
        elif moved.size:
            _move_sums(sums, counts, X[moved].astype(np.float64), old_of_moved, labels[moved])
    _warn_empty(empty_seen)
    inertia = inertia_of(X, centers, labels)
    return LloydResult(centers=centers, labels=labels, inertia=inertia, n_iter=n_iter, converged=converged)


def _move_sums(sums: np.ndarray, counts: np.ndarray, rows: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    """Move ``rows`` from clusters ``src`` to ``dst`` in the running sums/counts (in place).

    One sparse ``(k × m)`` matrix with +1 at ``dst`` and −1 at ``src`` per moved row,
    times the rows: ~25× faster than ``np.add.at``/``np.subtract.at`` (unbuffered).
    """
    import scipy.sparse as sp

    k, m = sums.shape[0], rows.shape[0]
    data = np.empty(2 * m, dtype=rows.dtype)
    data[0::2] = 1
    data[1::2] = -1
    ind = np.empty(2 * m, dtype=np.int32)
    ind[0::2] = dst
    ind[1::2] = src
    move = sp.csc_matrix((data, ind, np.arange(0, 2 * m + 1, 2, dtype=np.int32)), shape=(k, m))
    sums += move @ rows
    counts += np.bincount(dst, minlength=k) - np.bincount(src, minlength=k)


def _lloyd(X: np.ndarray, centers: np.ndarray, *, max_iter: int, tol: float, block_rows: int | None) -> LloydResult:
    x_sq = np.einsum("ij,ij->i", X, X)
    converged = False
    n_iter = 0
    empty_seen: dict[int, list[int]] = {}
    for it in range(max_iter):
        labels, _ = assign(X, centers, x_sq=x_sq, block_rows=block_rows)
        new = _update_centers(X, labels, centers, it, empty_seen)
        shift = float(np.einsum("ij,ij->", new - centers, new - centers, dtype=np.float64))
        centers = new
        n_iter = it + 1
        if shift <= tol:
            converged = True
            break
    warn_empty_clusters(empty_seen)
    labels, _ = assign(X, centers, x_sq=x_sq, block_rows=block_rows)
    inertia = inertia_of(X, centers, labels)
    log.debug("lloyd: %d iterations, converged=%s, inertia=%.6g", n_iter, converged, inertia)
    return LloydResult(centers=centers, labels=labels, inertia=inertia, n_iter=n_iter, converged=converged)
