"""Choosing k: elbow (automatic knee), silhouette, Calinski-Harabasz, Davies-Bouldin, gap statistic.

Every method votes for one k; the **recommended k is the one with the most
votes, ties going to the smaller k** (simpler model), and the reason names the
methods behind it. Votes:

* elbow — the knee of the inertia curve: after scaling k and inertia to [0, 1],
  the k farthest below the chord from the first to the last point (Kneedle);
* silhouette — the highest mean silhouette (on a random sample of at most
  ``silhouette_sample`` points, distances among the sample);
* Calinski-Harabasz — the highest ratio of between- to within-cluster dispersion;
* Davies-Bouldin — the lowest average similarity of each cluster to its closest;
* gap — Tibshirani, Walther & Hastie (2001): the smallest k with
  ``gap(k) >= gap(k+1) − s(k+1)``, reference sets uniform in the bounding box
  of the (PCA-rotated) data, on a subsample of at most ``gap_sample`` points.

All metrics are computed here with numpy (scikit-learn's are the reference in
the tests).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import ParameterError
from .kmeans import KMeans, check_array, check_random_state

__all__ = ["ChooseKConfig", "ChooseKResult", "choose_k", "silhouette_score", "calinski_harabasz_score",
           "davies_bouldin_score", "knee", "gap_statistic", "parse_k_range"]

log = logging.getLogger(__name__)

METHODS = ("elbow", "silhouette", "calinski_harabasz", "davies_bouldin", "gap")


def parse_k_range(text: str) -> list[int]:
    """``"2..15"`` → [2, …, 15]; ``"3,5,8"`` → [3, 5, 8]."""
    try:
        if ".." in text:
            a, b = text.split("..", 1)
            ks = list(range(int(a), int(b) + 1))
        else:
            ks = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ParameterError(f"k range {text!r} must look like '2..15' or '3,5,8'") from None
    if not ks or ks[0] < 1:
        raise ParameterError(f"k range {text!r} must contain integers >= 1")
    return ks


@dataclass(frozen=True, slots=True)
class ChooseKConfig:
    """Settings of :func:`choose_k`."""

    k_values: tuple[int, ...] = tuple(range(2, 16))
    n_init: int = 2
    max_iter: int = 300
    silhouette_sample: int = 3000
    gap_sample: int = 4000
    gap_references: int = 5
    random_state: int = 0

    def __post_init__(self):
        ks = list(self.k_values)
        if len(ks) < 3:
            raise ParameterError(f"k_values={ks} needs at least 3 values to compare")
        if any(k < 1 for k in ks) or sorted(set(ks)) != ks:
            raise ParameterError(f"k_values={ks} must be increasing integers >= 1")
        if self.n_init < 1 or self.silhouette_sample < 10 or self.gap_sample < 10 or self.gap_references < 1:
            raise ParameterError("n_init, silhouette_sample, gap_sample, gap_references must be positive")


@dataclass
class ChooseKResult:
    """Per-k scores, each method's vote, the recommendation and why."""

    k_values: list[int]
    inertia: list[float]
    silhouette: list[float]
    calinski_harabasz: list[float]
    davies_bouldin: list[float]
    gap: list[float]
    gap_sd: list[float]
    votes: dict[str, int]
    recommended_k: int
    reason: str
    labels: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def table(self) -> list[dict]:
        return [
            {"k": k, "inertia": self.inertia[i], "silhouette": self.silhouette[i],
             "calinski_harabasz": self.calinski_harabasz[i], "davies_bouldin": self.davies_bouldin[i],
             "gap": self.gap[i], "gap_sd": self.gap_sd[i]}
            for i, k in enumerate(self.k_values)
        ]

    def to_dict(self) -> dict:
        return {"k_values": self.k_values, "table": self.table(), "votes": self.votes,
                "recommended_k": self.recommended_k, "reason": self.reason}


# -- metrics --------------------------------------------------------------------------------------
def _sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    D = A @ B.T
    D *= -2
    D += np.einsum("ij,ij->i", A, A)[:, None]
    D += np.einsum("ij,ij->i", B, B)[None, :]
    return np.maximum(D, 0, out=D)


def silhouette_score(X: np.ndarray, labels: np.ndarray, *, sample_size: int | None = None,
                     random_state=0) -> float:
    """Mean silhouette coefficient (Rousseeuw 1987); on a random sample if ``sample_size`` is set.

    Points alone in their cluster score 0 (as scikit-learn).
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if sample_size is not None and sample_size < len(X):
        idx = check_random_state(random_state).choice(len(X), sample_size, replace=False)
        X, labels = X[idx], labels[idx]
    uniq, lab = np.unique(labels, return_inverse=True)
    k = len(uniq)
    if not 2 <= k <= len(X) - 1:
        return float("nan")
    D = np.sqrt(_sq_dists(X, X))
    onehot = np.zeros((len(X), k))
    onehot[np.arange(len(X)), lab] = 1
    sums = D @ onehot  # (m, k): total distance from each point to each cluster
    counts = onehot.sum(axis=0)
    own = counts[lab]
    a = sums[np.arange(len(X)), lab] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[np.arange(len(X)), lab] = np.inf
    b = mean_other.min(axis=1)
    s = (b - a) / np.maximum(a, b)
    s[own <= 1] = 0.0
    return float(np.nan_to_num(s).mean())


def calinski_harabasz_score(X: np.ndarray, labels: np.ndarray) -> float:
    """Between- over within-cluster dispersion, each divided by its degrees of freedom."""
    X = np.asarray(X, dtype=np.float64)
    uniq, lab = np.unique(labels, return_inverse=True)
    n, k = len(X), len(uniq)
    if k < 2 or k >= n:
        return float("nan")
    counts = np.bincount(lab, minlength=k).astype(float)
    centroids = np.zeros((k, X.shape[1]))
    np.add.at(centroids, lab, X)
    centroids /= counts[:, None]
    mean = X.mean(axis=0)
    between = float((counts * ((centroids - mean) ** 2).sum(axis=1)).sum())
    within = float(((X - centroids[lab]) ** 2).sum())
    return float("inf") if within == 0 else between * (n - k) / (within * (k - 1))


def davies_bouldin_score(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean over clusters of the worst ``(s_i + s_j) / d(c_i, c_j)`` (lower is better)."""
    X = np.asarray(X, dtype=np.float64)
    uniq, lab = np.unique(labels, return_inverse=True)
    k = len(uniq)
    if k < 2:
        return float("nan")
    counts = np.bincount(lab, minlength=k).astype(float)
    centroids = np.zeros((k, X.shape[1]))
    np.add.at(centroids, lab, X)
    centroids /= counts[:, None]
    spread = np.bincount(lab, weights=np.linalg.norm(X - centroids[lab], axis=1), minlength=k) / counts
    cd = np.sqrt(_sq_dists(centroids, centroids))
    with np.errstate(divide="ignore", invalid="ignore"):
        R = (spread[:, None] + spread[None, :]) / cd
    np.fill_diagonal(R, -np.inf)
    R[~np.isfinite(R) & (R != -np.inf)] = 0.0
    return float(R.max(axis=1).mean())


def knee(x, y) -> int:
    """Index of the knee of a decreasing convex curve (largest drop below the first–last chord)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) < 3 or y[0] == y[-1]:
        return 0
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y[-1]) / (y[0] - y[-1])
    chord = 1 - xn
    return int(np.argmax(chord - yn))


def _within_log(X: np.ndarray, k: int, rng, n_init: int) -> float:
    km = KMeans(k, n_init=n_init, random_state=rng).fit(X)
    return float(np.log(max(km.inertia_, 1e-300)))


def gap_statistic(X: np.ndarray, k_values, *, n_references: int = 5, n_init: int = 1, random_state=0,
                  observed_log_w: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gap(k) and its standard error ``s(k) = sd · sqrt(1 + 1/B)`` for each k."""
    rng = check_random_state(random_state)
    X = np.asarray(X, dtype=np.float64)
    lo, hi = X.min(axis=0), X.max(axis=0)
    refs = [rng.uniform(lo, hi, size=X.shape) for _ in range(n_references)]
    gaps, sds = [], []
    for i, k in enumerate(k_values):
        log_w = observed_log_w[i] if observed_log_w is not None else _within_log(X, k, rng, n_init)
        ref_logs = np.array([_within_log(R, k, rng, n_init) for R in refs])
        gaps.append(ref_logs.mean() - log_w)
        sds.append(ref_logs.std() * np.sqrt(1 + 1 / n_references))
    return np.array(gaps), np.array(sds)


# -- the procedure ----------------------------------------------------------------------------------
def choose_k(X, *, config: ChooseKConfig = ChooseKConfig(), engine="local", progress=None) -> ChooseKResult:
    """Fit k-means for every k in ``config.k_values`` and score each k five ways.

    Parameters
    ----------
    X : array [shape=(n, d)]
        Usually the PCA-reduced features.
    progress : callable(done, total) or None

    Raises
    ------
    ParameterError
        A k larger than the number of rows.
    """
    X = check_array(X)
    ks = list(config.k_values)
    n = len(X)
    if ks[-1] > n:
        raise ParameterError(f"k={ks[-1]} must be <= n_samples={n}")
    rng = check_random_state(config.random_state)
    sub_sil = rng.choice(n, min(n, config.silhouette_sample), replace=False)
    sub_gap = rng.choice(n, min(n, config.gap_sample), replace=False)
    inertia, sil, ch, db, gap_log_w = [], [], [], [], []
    labels: dict[int, np.ndarray] = {}
    total = len(ks) * 2
    for i, k in enumerate(ks):
        km = KMeans(k, n_init=config.n_init, max_iter=config.max_iter, random_state=config.random_state,
                    engine=engine).fit(X)
        labels[k] = km.labels_
        inertia.append(km.inertia_)
        sil.append(silhouette_score(X[sub_sil], km.labels_[sub_sil]) if k > 1 else float("nan"))
        ch.append(calinski_harabasz_score(X, km.labels_) if k > 1 else float("nan"))
        db.append(davies_bouldin_score(X, km.labels_) if k > 1 else float("nan"))
        if progress:
            progress(i + 1, total)
    Xg = X[sub_gap].astype(np.float64)
    gap_log_w = [_within_log(Xg, k, rng, config.n_init) for k in ks]
    gap, gap_sd = gap_statistic(Xg, ks, n_references=config.gap_references, n_init=1,
                                random_state=rng, observed_log_w=gap_log_w)
    if progress:
        progress(total, total)

    def best(values, higher=True):
        v = np.array(values, dtype=float)
        v = np.where(np.isfinite(v), v, -np.inf if higher else np.inf)
        return ks[int(np.argmax(v) if higher else np.argmin(v))]

    gap_k = ks[-1]
    for i in range(len(ks) - 1):
        if gap[i] >= gap[i + 1] - gap_sd[i + 1]:
            gap_k = ks[i]
            break
    votes = {
        "elbow": ks[knee(ks, inertia)],
        "silhouette": best(sil),
        "calinski_harabasz": best(ch),
        "davies_bouldin": best(db, higher=False),
        "gap": gap_k,
    }
    count = Counter(votes.values())
    top = max(count.values())
    rec = min(k for k, c in count.items() if c == top)
    behind = [m for m, k in votes.items() if k == rec]
    others = ", ".join(f"{m.replace('_', '-')} {k}" for m, k in votes.items() if k != rec)
    rule = "the k with the most votes of the five methods; ties go to the smaller k"
    reason = (f"k={rec}: chosen by {len(behind)} of 5 methods ({', '.join(m.replace('_', '-') for m in behind)})"
              + (f"; the others said {others}" if others else "") + f". Rule: {rule}.")
    log.info(reason)
    return ChooseKResult(ks, inertia, sil, ch, db, gap.tolist(), gap_sd.tolist(), votes, rec, reason, labels)
