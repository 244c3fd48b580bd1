"""K-means as a scikit-learn-style estimator, with greedy k-means++ written here.

The estimator validates, initialises and restarts; the Lloyd iterations run in an
engine (:mod:`songmine.cluster.engines`: ``"local"`` numpy, ``"spark"``).
scikit-learn is *not* imported here — it is the reference in the tests, the
benchmark and the report.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings

import numpy as np

from ..errors import ConvergenceWarning, DataError, NotFittedError, ParameterError
from ..extras import require
from ..random_state import check_random_state
from .engines import Engine, assign, get_engine

require("cluster", __name__)  # a missing package of the extra: one line naming it, not a traceback

__all__ = ["KMeans", "kmeans_plusplus", "random_init", "check_array"]

log = logging.getLogger(__name__)


def check_array(X, *, name: str = "X") -> np.ndarray:
    """A finite 2-D float32/float64 C-contiguous array (float32 kept, anything else → float64).

    Raises
    ------
    DataError
        Not 2-D, empty, non-numeric, or containing NaN/±inf (with counts).
    """
    if hasattr(X, "to_numpy"):  # pandas
        X = X.to_numpy()
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} is not a numeric array: {exc}") from None
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(f"{name} must be numeric, got dtype={X.dtype}")
    if X.ndim != 2:
        raise DataError(f"{name} must be 2-D (n_samples, n_features), got shape={X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{name} is empty: shape={X.shape}")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X = np.ascontiguousarray(X)
    finite = np.isfinite(X)
    if not finite.all():
        n_nan = int(np.isnan(X).sum())
        n_inf = int((~finite).sum()) - n_nan
        rows = np.flatnonzero(~finite.all(axis=1))
        raise DataError(
            f"{name} has {n_nan} NaN and {n_inf} ±inf values in {rows.size} rows "
            f"(first row {int(rows[0])}); impute or drop them first"
        )
    return X


def random_init(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """``n_clusters`` distinct rows of ``X`` chosen uniformly (Forgy initialisation)."""
    idx = rng.choice(X.shape[0], size=n_clusters, replace=False)
    return X[np.sort(idx)].copy()


def kmeans_plusplus(X: np.ndarray, n_clusters: int, *, random_state=None,
                    n_local_trials: int | None = None, x_sq: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, greedy variant).

    The first centre is a uniformly drawn row; each next centre is the best of
    ``n_local_trials`` candidates drawn with probability proportional to
    ``D(x)²`` (squared distance to the nearest chosen centre), "best" meaning
    the candidate that most reduces the total potential ``Σ D(x)²``.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)], validated
    n_clusters : int
    random_state : int | np.random.Generator | None
    n_local_trials : int or None
        Candidates per step; default ``2 + int(ln k)`` (as scikit-learn).
    x_sq : np.ndarray [shape=(n,)] or None
        Precomputed ``||x||²``.

    Returns
    -------
    centers : np.ndarray [shape=(n_clusters, d)]
    indices : np.ndarray [shape=(n_clusters,)] rows of ``X`` used as centres
    """
    rng = check_random_state(random_state)
    n = X.shape[0]
    if not 1 <= n_clusters <= n:
        raise ParameterError(f"n_clusters={n_clusters} must be in [1, n_samples={n}]")
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    if n_local_trials < 1:
        raise ParameterError(f"n_local_trials={n_local_trials} must be >= 1")
    if x_sq is None:
        x_sq = np.einsum("ij,ij->i", X, X)
    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = rng.integers(n)

    def sq_dist_to(rows: np.ndarray) -> np.ndarray:  # (len(rows), n), clipped ≥ 0
        D = X[rows] @ X.T
        D *= -2
        D += x_sq[rows, None]
        D += x_sq[None, :]
        return np.maximum(D, 0, out=D)

    closest = sq_dist_to(indices[:1])[0].astype(np.float64)
    potential = closest.sum()
    for c in range(1, n_clusters):
        if potential <= 0:  # every point already coincides with a centre: pick any unused row
            unused = np.setdiff1d(np.arange(n), indices[:c], assume_unique=False)
            indices[c] = unused[rng.integers(unused.size)] if unused.size else rng.integers(n)
            continue
        cum = np.cumsum(closest)
        draws = rng.random(n_local_trials) * cum[-1]
        cand = np.minimum(np.searchsorted(cum, draws, side="right"), n - 1)
        dist = np.minimum(closest[None, :], sq_dist_to(cand))
        pots = dist.sum(axis=1)
        best = int(np.argmin(pots))
        indices[c] = cand[best]
        closest = dist[best]
        potential = pots[best]
    return X[indices].copy(), indices


_INITS = ("k-means++", "random")


def _absolute_tol(X: np.ndarray, tol: float) -> float:
    """``tol × mean(var(X, axis=0))`` (scikit-learn's scaling); 0 without a pass over ``X`` when ``tol == 0``."""
    if tol == 0:
        return 0.0
    return tol * float(np.mean(np.var(X, axis=0, dtype=np.float64)))


class KMeans:
    """K-means clustering (Lloyd's algorithm) with scikit-learn's conventions.

    Parameters
    ----------
    n_clusters : int, default 8
        Number of clusters ``k`` (``1 <= k <= n_samples``).
    init : {"k-means++", "random"} or array [shape=(k, d)], default "k-means++"
        Greedy k-means++ seeding, ``k`` distinct random rows, or given centres.
    n_init : int or "auto", default "auto"
        Runs from different seeds; the lowest inertia wins. ``"auto"`` = 1 for
        k-means++ and an array, 10 for random (as scikit-learn ≥ 1.4).
    max_iter : int, default 300
        Lloyd iterations per run.
    tol : float, default 1e-4
        Relative tolerance: a run stops when the sum of squared centre shifts is
        ``<= tol × mean(var(X, axis=0))``.
    random_state : int | np.random.Generator | None
        Seed for initialisation.
    engine : "local" | "spark" | Engine, default "local"
        Where the Lloyd iterations run (see :mod:`songmine.cluster.engines`).

    Attributes
    ----------
    cluster_centers_ : np.ndarray [shape=(k, d)]
    labels_ : np.ndarray [shape=(n,), dtype=int64]
    inertia_ : float
        Sum of squared distances to the nearest centre.
    n_iter_ : int
        Iterations of the best run.
    converged_ : bool
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0., 0.], [0.5, 0.], [0.5, 1.], [1., 1.]])
    >>> km = KMeans(2, init=np.array([[0., 0.], [1., 1.]])).fit(X)
    >>> km.labels_.tolist(), round(km.inertia_, 3)
    ([0, 0, 1, 1], 0.25)
    """

    def __init__(self, n_clusters: int = 8, *, init="k-means++", n_init="auto", max_iter: int = 300,
                 tol: float = 1e-4, random_state=None, engine="local"):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.engine = engine

    def __repr__(self) -> str:
        init = "array" if isinstance(self.init, np.ndarray) else repr(self.init)
        return (f"KMeans(n_clusters={self.n_clusters}, init={init}, n_init={self.n_init!r}, "
                f"max_iter={self.max_iter}, tol={self.tol}, random_state={self.random_state!r}, "
                f"engine={getattr(self.engine, 'name', self.engine)!r})")

    # -- validation ----------------------------------------------------------------------
    def _check_params(self, X: np.ndarray) -> tuple[int, np.ndarray | None]:
        n, d = X.shape
        k = self.n_clusters
        if not isinstance(k, numbers.Integral) or isinstance(k, bool):
            raise ParameterError(f"n_clusters={k!r} must be an integer")
        if not 1 <= k <= n:
            raise ParameterError(f"n_clusters={k} must be in [1, n_samples={n}]")
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ParameterError(f"max_iter={self.max_iter!r} must be an integer >= 1")
        if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ParameterError(f"tol={self.tol!r} must be a number >= 0")
        init_array = None
        if isinstance(self.init, str):
            if self.init not in _INITS:
                raise ParameterError(f"init={self.init!r} must be one of {list(_INITS)} or an array of centres")
        else:
            init_array = np.asarray(self.init, dtype=X.dtype)
            if init_array.shape != (k, d):
                raise ParameterError(
                    f"init array has shape={init_array.shape}, expected (n_clusters={k}, n_features={d})")
            if not np.isfinite(init_array).all():
                raise ParameterError("init array contains NaN or inf")
        n_init = self.n_init
        if n_init == "auto":
            n_init = 10 if isinstance(self.init, str) and self.init == "random" else 1
        if not isinstance(n_init, numbers.Integral) or isinstance(n_init, bool) or n_init < 1:
            raise ParameterError(f"n_init={self.n_init!r} must be an integer >= 1 or 'auto'")
        if init_array is not None and n_init != 1:
            warnings.warn(f"init is an array of centres: n_init={n_init} reduced to 1",
                          RuntimeWarning, stacklevel=3)
            n_init = 1
        return int(n_init), init_array

    def _engine(self) -> Engine:
        if isinstance(self.engine, str):
            return get_engine(self.engine)
        if not hasattr(self.engine, "lloyd"):
            raise ParameterError(f"engine={self.engine!r} must be 'local', 'spark' or an Engine")
        return self.engine

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X, y=None) -> KMeans:
        """Compute the clustering; returns ``self``.

        Raises
        ------
        ParameterError
            Bad ``n_clusters`` (``< 1`` or ``> n_samples``), ``init``, ``n_init``, ``max_iter``, ``tol``.
        DataError
            ``X`` not a finite numeric 2-D array.
        """
        X = check_array(X)
        n_init, init_array = self._check_params(X)
        engine = self._engine()
        rng = check_random_state(self.random_state)
        tol = _absolute_tol(X, float(self.tol))
        x_sq = None
        best = None
        for run in range(n_init):
            if init_array is not None:
                centers = init_array
            elif self.init == "random":
                centers = random_init(X, self.n_clusters, rng)
            elif hasattr(engine, "init_centers"):  # a distributed engine seeds itself (Spark: k-means||)
                centers = engine.init_centers(X, self.n_clusters, random_state=rng)
            else:
                if x_sq is None:
                    x_sq = np.einsum("ij,ij->i", X, X)
                centers, _ = kmeans_plusplus(X, self.n_clusters, random_state=rng, x_sq=x_sq)
            res = engine.lloyd(X, centers, max_iter=int(self.max_iter), tol=tol)
            log.info("k-means run %d/%d: inertia=%.6g after %d iterations", run + 1, n_init, res.inertia, res.n_iter)
            if best is None or res.inertia < best.inertia:
                best = res
        n_distinct = int(np.count_nonzero(np.bincount(best.labels, minlength=self.n_clusters)))
        if n_distinct < self.n_clusters:
            warnings.warn(f"only {n_distinct} distinct clusters found for n_clusters={self.n_clusters} "
                          "(duplicate points or empty clusters)", ConvergenceWarning, stacklevel=2)
        if not best.converged:
            warnings.warn(f"k-means did not converge in max_iter={self.max_iter} iterations; "
                          "increase max_iter or tol", ConvergenceWarning, stacklevel=2)
        self.cluster_centers_ = np.asarray(best.centers)
        self.labels_ = np.asarray(best.labels, dtype=np.int64)
        self.inertia_ = float(best.inertia)
        self.n_iter_ = int(best.n_iter)
        self.converged_ = bool(best.converged)
        self.n_features_in_ = X.shape[1]
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """``fit(X).labels_``."""
        return self.fit(X).labels_

    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    # -- using a fitted model ------------------------------------------------------------------
    def _check_fitted(self, X) -> np.ndarray:
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError("this KMeans instance is not fitted yet; call fit(X) first")
        X = check_array(X)
        if X.shape[1] != self.n_features_in_:
            raise DataError(f"X has {X.shape[1]} features, but KMeans was fitted with {self.n_features_in_}")
        return X

    def predict(self, X) -> np.ndarray:
        """Index of the nearest centre for each row of ``X`` (ties → lower index)."""
        X = self._check_fitted(X)
        labels, _ = assign(X, self.cluster_centers_.astype(X.dtype, copy=False))
        return labels

    def transform(self, X) -> np.ndarray:
        """Euclidean distance of each row to every centre, shape ``(n, k)``."""
        X = self._check_fitted(X)
        return self._transform(X)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Guts of :meth:`transform`; no input validation."""
        C = self.cluster_centers_.astype(X.dtype, copy=False)
        D = X @ C.T
        D *= -2
        D += np.einsum("ij,ij->i", X, X)[:, None]
        D += np.einsum("ij,ij->i", C, C)[None, :]
        np.maximum(D, 0, out=D)
        return np.sqrt(D, out=D)

    def score(self, X, y=None) -> float:
        """Opposite of the inertia of ``X`` on the fitted centres."""
        X = self._check_fitted(X)
        _, d = assign(X, self.cluster_centers_.astype(X.dtype, copy=False))
        return -float(d.sum(dtype=np.float64))
