"""K-means as a scikit-learn estimator, with Lloyd's iterations and greedy k-means++ written here.

The estimator validates, initialises and restarts; the Lloyd iterations run in an
engine (:mod:`songmine.cluster.engines`: ``"local"`` numpy, ``"spark"``).
scikit-learn provides the conventions only — ``BaseEstimator`` (``get_params`` /
``set_params``, so ``clone``, pipelines and grid searches work), the mixins, and
input validation (``validate_data``: dense 2-D real input, ``n_features_in_``,
``feature_names_in_``); none of its clustering code runs here.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings

import numpy as np

from ..extras import require

require("cluster", __name__)  # before the extra's packages: a missing one is one line naming the extra

from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin  # noqa: E402
from sklearn.exceptions import NotFittedError as SklearnNotFittedError  # noqa: E402
from sklearn.utils import check_array as sk_check_array  # noqa: E402
from sklearn.utils.validation import validate_data  # noqa: E402

from .. import errors  # noqa: E402
from ..errors import ConvergenceWarning, DataError, ParameterError  # noqa: E402
from ..random_state import check_random_state  # noqa: E402
from .engines import Engine, assign, get_engine  # noqa: E402

__all__ = ["KMeans", "kmeans_plusplus", "random_init", "check_array", "NotFittedError", "InputTypeError"]

log = logging.getLogger(__name__)


class NotFittedError(errors.NotFittedError, SklearnNotFittedError):
    """:class:`KMeans` used before ``fit``: songmine's error (CLI exit 2) and scikit-learn's at once."""


class InputTypeError(DataError, TypeError):
    """Input of a type an estimator cannot take (sparse matrices, dicts in an object array).

    A ``TypeError`` as scikit-learn raises it, and a :class:`~songmine.errors.DataError`.
    """


def _as_songmine_error(exc: Exception) -> DataError:
    """scikit-learn's validation error as songmine's, same message and same builtin class."""
    return InputTypeError(str(exc)) if isinstance(exc, TypeError) else DataError(str(exc))


def check_finite(X: np.ndarray, *, name: str = "X") -> np.ndarray:
    """``X`` unchanged if finite, else a DataError counting the NaN and ±inf values and their rows."""
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


def check_array(X, *, name: str = "X") -> np.ndarray:
    """A finite, dense, real 2-D float32/float64 C-contiguous array (float32 kept, anything else → float64).

    scikit-learn's ``check_array`` rules (sparse and complex input refused, at
    least one row and one column) with songmine's errors.

    Raises
    ------
    InputTypeError
        Sparse input, or objects that are not numbers (a ``TypeError`` too).
    DataError
        Not 2-D, empty, complex, non-numeric strings, or containing NaN/±inf (with counts).
    """
    try:
        X = sk_check_array(
            X, accept_sparse=False, dtype=[np.float64, np.float32], order="C", ensure_all_finite=False, input_name=name
        )
    except (TypeError, ValueError) as exc:
        raise _as_songmine_error(exc) from None
    return check_finite(X, name=name)


def random_init(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """``n_clusters`` distinct rows of ``X`` chosen uniformly (Forgy initialisation)."""
    idx = rng.choice(X.shape[0], size=n_clusters, replace=False)
    return X[np.sort(idx)].copy()


def kmeans_plusplus(
    X: np.ndarray,
    n_clusters: int,
    *,
    random_state=None,
    n_local_trials: int | None = None,
    x_sq: np.ndarray | None = None,
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


class KMeans(ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin, BaseEstimator):
    """K-means clustering (Lloyd's algorithm), a scikit-learn estimator.

    ``__init__`` only stores the parameters (``get_params`` / ``set_params``,
    ``sklearn.base.clone``, pipelines and grid searches work); they are checked
    in :meth:`fit`. ``transform`` gives the distances to the centres,
    ``score`` the opposite of the inertia, as scikit-learn's ``KMeans``.

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
    feature_names_in_ : np.ndarray [shape=(d,)]
        Column names, when ``X`` was a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0., 0.], [0.5, 0.], [0.5, 1.], [1., 1.]])
    >>> km = KMeans(2, init=np.array([[0., 0.], [1., 1.]])).fit(X)
    >>> km.labels_.tolist(), round(km.inertia_, 3)
    ([0, 0, 1, 1], 0.25)
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init="k-means++",
        n_init="auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state=None,
        engine="local",
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.engine = engine

    # -- validation ----------------------------------------------------------------------
    def _validate(self, X, *, reset: bool) -> np.ndarray:
        """scikit-learn's ``validate_data`` (sets or checks ``n_features_in_`` / ``feature_names_in_``), finite."""
        try:
            X = validate_data(
                self,
                X,
                reset=reset,
                accept_sparse=False,
                dtype=[np.float64, np.float32],
                order="C",
                ensure_all_finite=False,
            )
        except (TypeError, ValueError) as exc:
            raise _as_songmine_error(exc) from None
        return check_finite(X)

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
                    f"init array has shape={init_array.shape}, expected (n_clusters={k}, n_features={d})"
                )
            if not np.isfinite(init_array).all():
                raise ParameterError("init array contains NaN or inf")
        n_init = self.n_init
        if isinstance(n_init, str) and n_init == "auto":
            n_init = 10 if isinstance(self.init, str) and self.init == "random" else 1
        if not isinstance(n_init, numbers.Integral) or isinstance(n_init, bool) or n_init < 1:
            raise ParameterError(f"n_init={self.n_init!r} must be an integer >= 1 or 'auto'")
        if init_array is not None and n_init != 1:
            warnings.warn(f"init is an array of centres: n_init={n_init} reduced to 1", RuntimeWarning, stacklevel=3)
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
        """Compute the clustering; returns ``self``. ``y`` is ignored (scikit-learn's signature).

        Raises
        ------
        ParameterError
            Bad ``n_clusters`` (``< 1`` or ``> n_samples``), ``init``, ``n_init``, ``max_iter``, ``tol``.
        DataError
            ``X`` not a finite, dense, real 2-D array (:class:`InputTypeError` for sparse input).
        """
        return self._fit(self._validate(X, reset=True))

    def _fit(self, X: np.ndarray) -> KMeans:
        """Guts of :meth:`fit` on validated ``X``."""
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
            warnings.warn(
                f"only {n_distinct} distinct clusters found for n_clusters={self.n_clusters} "
                "(duplicate points or empty clusters)",
                ConvergenceWarning,
                stacklevel=2,
            )
        if not best.converged:
            warnings.warn(
                f"k-means did not converge in max_iter={self.max_iter} iterations; increase max_iter or tol",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.cluster_centers_ = np.asarray(best.centers)
        self.labels_ = np.asarray(best.labels, dtype=np.int64)
        self.inertia_ = float(best.inertia)
        self.n_iter_ = int(best.n_iter)
        self.converged_ = bool(best.converged)
        return self

    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X).transform(X)``, validating ``X`` once."""
        X = self._validate(X, reset=True)
        return self._fit(X)._transform(X)

    # -- using a fitted model ------------------------------------------------------------------
    @property
    def _n_features_out(self) -> int:
        """Output columns of :meth:`transform` (names ``kmeans0``… from ``get_feature_names_out``)."""
        return self.cluster_centers_.shape[0]

    def _check_fitted(self, X) -> np.ndarray:
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(f"this {type(self).__name__} instance is not fitted yet; call fit(X) first")
        return self._validate(X, reset=False)

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
        """Opposite of the inertia of ``X`` on the fitted centres (higher is better, as scikit-learn)."""
        X = self._check_fitted(X)
        _, d = assign(X, self.cluster_centers_.astype(X.dtype, copy=False))
        return -float(d.sum(dtype=np.float64))
