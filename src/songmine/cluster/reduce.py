"""Dimensionality reduction before k-means: standardise, then PCA (or TruncatedSVD).

Default: standardise every feature (mean 0, std 1: FMA features mix kurtoses in
the hundreds with chroma means below 1, so unscaled PCA would be a ranking of
units), then PCA keeping the **smallest number of components whose cumulative
explained variance exceeds 70 %** (configurable). The PCA is scikit-learn's:
``PCA(svd_solver="covariance_eigh")`` (the ``d × d`` covariance and its exact
eigendecomposition: the whole spectrum, for the variance curve) up to 1,500
features, and its ``randomized_svd`` (Halko, Martinsson & Tropp 2011) beyond,
with the rank doubled until the threshold is passed. Only the components with
variance are kept: at most ``min(n − 1, d)``. ``method="svd"`` is a
TruncatedSVD: no centring (what you want for sparse or non-negative data; for
dense audio features its first component mostly encodes the mean, which is why
PCA is the default) — an eigendecomposition of the uncentred ``d × d`` Gram
matrix here, because scikit-learn's ``TruncatedSVD`` needs the number of
components up front and cannot give the whole spectrum the variance rule reads.
``method="none"`` only standardises.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..extras import require

require("cluster", __name__)  # before the extra's packages: a missing one is one line naming the extra

from sklearn.decomposition import PCA  # noqa: E402
from sklearn.utils.extmath import randomized_svd  # noqa: E402

from ..errors import DataError, ParameterError  # noqa: E402
from .engines import limit_blas_threads  # noqa: E402

__all__ = ["ReduceConfig", "Reduction", "reduce", "components_for", "sign_convention"]

log = logging.getLogger(__name__)

METHODS = ("pca", "svd", "none")


@dataclass(frozen=True, slots=True)
class ReduceConfig:
    """How to reduce.

    Attributes
    ----------
    method : {"pca", "svd", "none"}
    variance : float
        Keep the smallest number of components whose cumulative explained
        variance ratio is ``> variance`` (0 < variance <= 1).
    n_components : int or None
        A fixed number of components instead of the variance rule.
    standardize : bool
        Scale features to unit variance first (recommended; the default).
    solver : {"auto", "gram", "randomized"}
        ``auto`` = gram when ``n_features <= 1500``, else randomized.
    random_state : int
    """

    method: str = "pca"
    variance: float = 0.70
    n_components: int | None = None
    standardize: bool = True
    solver: str = "auto"
    random_state: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ParameterError(f"method={self.method!r} must be one of {list(METHODS)}")
        if not 0 < self.variance <= 1:
            raise ParameterError(f"variance={self.variance} must be in (0, 1]")
        if self.n_components is not None and self.n_components < 1:
            raise ParameterError(f"n_components={self.n_components} must be >= 1")
        if self.solver not in ("auto", "gram", "randomized"):
            raise ParameterError(f"solver={self.solver!r} must be 'auto', 'gram' or 'randomized'")


@dataclass
class Reduction:
    """A fitted reduction: apply it with :meth:`transform`.

    Attributes
    ----------
    columns : list[str]
        Input feature names kept (constant ones dropped).
    dropped_constant : list[str]
        Input features dropped because they are constant.
    mean, scale : np.ndarray [shape=(d,)]
        Standardisation (``scale`` = 1 where not standardised; ``mean`` = 0 for svd).
    components : np.ndarray [shape=(m, d)]
        Kept directions (rows), ``m`` = :attr:`n_components`.
    explained_variance_ratio : np.ndarray [shape=(r,)]
        Ratio of every computed component (``r >= m``), for the variance curve.
    n_components : int
    solver : str
        ``"exact"``, ``"randomized"`` or ``"none"``.
    """

    method: str
    columns: list[str]
    dropped_constant: list[str]
    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray
    n_components: int
    solver: str
    variance_threshold: float
    extra: dict = field(default_factory=dict)

    @property
    def cumulative_variance(self) -> np.ndarray:
        return np.cumsum(self.explained_variance_ratio)

    @property
    def retained_variance(self) -> float:
        return float(self.explained_variance_ratio[: self.n_components].sum())

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardise with the fitted mean/scale and project on the kept components."""
        Z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        if self.method == "none":
            return Z
        return Z @ self.components.T

    def summary(self) -> dict:
        return {
            "method": self.method,
            "solver": self.solver,
            "n_features_in": len(self.columns) + len(self.dropped_constant),
            "n_features_used": len(self.columns),
            "dropped_constant": self.dropped_constant,
            "n_components": self.n_components,
            "variance_threshold": self.variance_threshold,
            "retained_variance": self.retained_variance,
            "explained_variance_ratio": self.explained_variance_ratio.tolist(),
        }


def _one_blas_thread():
    return limit_blas_threads(1)


def components_for(ratios: np.ndarray, threshold: float) -> int | None:
    """The fewest leading components whose cumulative variance ratio passes ``threshold`` (None: none does)."""
    cum = np.cumsum(ratios)
    hit = np.flatnonzero(cum > threshold - 1e-12 if threshold >= 1 else cum > threshold)
    return int(hit[0]) + 1 if hit.size else None


def sign_convention(Vt: np.ndarray) -> np.ndarray:
    """Each direction (row) turned so that its largest-magnitude entry is positive (in place; returned)."""
    Vt *= np.where(Vt[np.arange(len(Vt)), np.abs(Vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    return Vt


def reduce(
    X: np.ndarray, *, columns: list[str] | None = None, config: ReduceConfig = ReduceConfig()
) -> tuple[np.ndarray, Reduction]:
    """Fit the reduction on ``X`` and return ``(Z, reduction)``.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
        Finite audio features (rows = tracks).
    columns : list of str, optional
        Feature names, for reporting dropped constant columns.
    config : ReduceConfig

    Returns
    -------
    Z : np.ndarray [shape=(n, m)], float64
    reduction : Reduction

    Raises
    ------
    DataError
        Non-finite values, fewer than 2 rows, or every column constant.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise DataError(f"need a 2-D table with at least 2 rows and 1 column, got shape={X.shape}")
    if not np.isfinite(X).all():
        raise DataError(f"{int((~np.isfinite(X)).sum())} non-finite values in the features; impute or drop first")
    n, d = X.shape
    names = list(columns) if columns is not None else [f"x{i}" for i in range(d)]
    if len(names) != d:
        raise ParameterError(f"{len(names)} column names for {d} columns")
    std = X.std(axis=0)
    const = std <= 1e-12 * np.maximum(1.0, np.abs(X).max(axis=0))
    if const.all():
        raise DataError(f"all {d} feature columns are constant: nothing to cluster on")
    dropped = [names[i] for i in np.flatnonzero(const)]
    if dropped:
        warnings.warn(
            f"{len(dropped)} constant column(s) dropped: {dropped[:5]}{'…' if len(dropped) > 5 else ''}",
            UserWarning,
            stacklevel=2,
        )
        X = X[:, ~const]
        std = std[~const]
        names = [c for c, k in zip(names, const) if not k]
    d = X.shape[1]
    center = config.method != "svd"
    mean = X.mean(axis=0) if center else np.zeros(d)
    scale = std if config.standardize else np.ones(d)
    if config.method == "svd" and config.standardize:
        scale = np.sqrt((X**2).mean(axis=0))  # RMS scaling: no centring
    Z = (X - mean) / scale
    total = float((Z**2).sum()) if not center else float(Z.var(axis=0).sum() * n)
    if config.method == "none":
        ratios = Z.var(axis=0) / Z.var(axis=0).sum()
        return Z, Reduction("none", names, dropped, mean, scale, np.eye(d), ratios, d, "none", config.variance)

    randomized = config.solver == "randomized" or (config.solver == "auto" and d > 1500)
    want = config.n_components
    rank = min(n - 1, d) if center else min(n, d)  # components that can carry variance
    if want is not None and want > rank:
        raise ParameterError(
            f"n_components={want} must be <= {'n_samples − 1' if center else 'n_samples'} "
            f"and <= n_features: at most {rank} here"
        )
    if not randomized:
        with _one_blas_thread():  # a small LAPACK call: threads only add contention (30× slower when loaded)
            if center:
                pca = PCA(svd_solver="covariance_eigh").fit(Z)
                Vt, ratios = pca.components_[:rank], pca.explained_variance_ratio_[:rank]
            else:
                evals, evecs = np.linalg.eigh(Z.T @ Z)
                order = np.argsort(evals)[::-1][:rank]
                Vt = evecs[:, order].T
                ratios = np.maximum(evals[order], 0) / total
        solver = "gram"
    else:
        Zc = Z - Z.mean(axis=0) if center else Z
        k = want or min(rank, max(10, d // 8))
        while True:
            _, sv, Vt = randomized_svd(Zc, k, n_iter=4, random_state=config.random_state)
            ratios = sv**2 / total
            if want is not None or components_for(ratios, config.variance) is not None or k >= rank:
                break
            k = min(rank, k * 2)
        solver = "randomized"
    Vt = sign_convention(np.array(Vt, dtype=np.float64))
    m = want if want is not None else components_for(ratios, config.variance)
    if m is None:  # rounding: the full spectrum sums to ~1 but not > threshold
        m = len(ratios)
    components = Vt[:m]
    log.info(
        "reduce: %s (%s) kept %d of %d components, %.1f %% of the variance",
        config.method,
        solver,
        m,
        d,
        100 * ratios[:m].sum(),
    )
    red = Reduction(config.method, names, dropped, mean, scale, components, ratios, int(m), solver, config.variance)
    return Z @ components.T, red
