"""Choosing k: elbow (automatic knee), silhouette, Calinski-Harabasz, Davies-Bouldin, gap statistic.

Every k in the range is fitted once (the best of ``n_init`` k-means++ restarts
on a subsample of at most ``fit_sample`` rows, refined on all rows) and scored
five ways; each method names its k:

* elbow — the knee of the inertia curve: after scaling k and inertia to [0, 1],
  the k farthest below the chord from the first to the last point (Kneedle);
* silhouette — the highest mean silhouette (on a random sample of at most
  ``silhouette_sample`` points, distances among the sample);
* Calinski-Harabasz — the highest ratio of between- to within-cluster dispersion;
* Davies-Bouldin — the lowest average similarity of each cluster to its closest;
* gap — Tibshirani, Walther & Hastie (2001): on a subsample of at most
  ``gap_sample`` points, ``gap(k) = E*[log W_k] − log W_k`` against
  ``gap_references`` data sets uniform in the bounding box of the (PCA-rotated)
  data; the choice is the smallest k with ``gap(k) >= gap(k+1) − s(k+1)``
  (the 1-SE rule), where k = 1 is always a candidate.

**Recommendation rule** (``rule="gap"``, the default): the gap statistic's k.
It is the only one of the five with a null model — it asks whether splitting
into k clusters reduces the dispersion more than it would for structureless
data — and the only one that can answer "one cluster". Silhouette,
Calinski-Harabasz, Davies-Bouldin and the elbow score the *shape* of a
partition (compact, well-separated groups); they are reported beside it, but on
data whose retained components include many noise directions they all drift to
2–5 clusters whatever was planted (measured in ``docs/cluster.md``), so a vote
among them mostly counts the same bias several times. When the gap rule stops
at k = 1 the evidence is ``"none"``: the smallest k of the range is returned and
the reason says the partition is of a continuum, not of groups. ``rule=
"majority"`` keeps the earlier vote (most votes, ties to the smaller k).

Silhouette, Calinski-Harabasz and Davies-Bouldin are scikit-learn's
(``sklearn.metrics``); the wrappers here only return NaN where a k cannot be
scored (fewer than 2 or as many clusters as points), so a table keeps its row.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..extras import require

require("cluster", __name__)  # before the extra's packages: a missing one is one line naming the extra

from sklearn import metrics  # noqa: E402

from ..errors import ParameterError  # noqa: E402
from ..random_state import check_random_state  # noqa: E402
from .kmeans import KMeans, check_array  # noqa: E402

__all__ = [
    "ChooseKConfig",
    "ChooseKResult",
    "choose_k",
    "silhouette_score",
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "knee",
    "gap_statistic",
    "parse_k_range",
    "narrow_k_values",
]

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


RULES = ("gap", "majority")


@dataclass(frozen=True, slots=True)
class ChooseKConfig:
    """Settings of :func:`choose_k`.

    Attributes
    ----------
    k_values : tuple[int, ...]
        Increasing values of k to score (at least 3).
    n_init : int
        k-means++ restarts per k. With more than ``fit_sample`` rows the restarts
        run on a random ``fit_sample``-row subsample and the best centres are
        refined on all rows (one Lloyd run). Restarts matter: on planted data
        with 20+ retained components one k-means++ run reached the best
        partition in 1–3 of 20 seeds (ours and scikit-learn's alike); a planted
        k fitted in a poor local optimum (two clusters merged, one split) lowers
        every score at exactly that k. Many cheap restarts on a few thousand rows
        found it where 10 restarts on 20,000 rows did not.
    rule : {"gap", "majority"}
        How the recommendation is made (module doc).
    """

    k_values: tuple[int, ...] = tuple(range(2, 16))
    n_init: int = 50
    fit_sample: int = 3000
    max_iter: int = 300
    silhouette_sample: int = 3000
    gap_sample: int = 4000
    gap_references: int = 10
    gap_reference: str = "gaussian"
    rule: str = "gap"
    random_state: int = 0

    def __post_init__(self):
        ks = list(self.k_values)
        if len(ks) < 3:
            raise ParameterError(f"k_values={ks} needs at least 3 values to compare")
        if any(k < 1 for k in ks) or sorted(set(ks)) != ks:
            raise ParameterError(f"k_values={ks} must be increasing integers >= 1")
        if (
            self.n_init < 1
            or self.silhouette_sample < 10
            or self.gap_sample < 10
            or self.gap_references < 2
            or self.fit_sample < 10
        ):
            raise ParameterError(
                "n_init >= 1, fit_sample/silhouette_sample/gap_sample >= 10 and gap_references >= 2 are required"
            )
        if self.gap_reference not in ("gaussian", "uniform"):
            raise ParameterError(f"gap_reference={self.gap_reference!r} must be 'gaussian' or 'uniform'")
        if self.rule not in RULES:
            raise ParameterError(f"rule={self.rule!r} must be one of {list(RULES)}")


@dataclass
class ChooseKResult:
    """Per-k scores, each method's choice, the recommendation, its evidence and why.

    ``gap_one``/``gap_one_sd`` are gap(1) and s(1) (k = 1 is always a gap
    candidate, even when it is not in ``k_values``); ``evidence`` is ``"none"``
    (the gap rule stops at k = 1), ``"weak"`` or ``"clear"`` (see :func:`choose_k`).
    """

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
    gap_one: float = float("nan")
    gap_one_sd: float = float("nan")
    evidence: str = "clear"
    rule: str = "gap"
    note: str | None = None

    def table(self) -> list[dict]:
        return [
            {
                "k": k,
                "inertia": self.inertia[i],
                "silhouette": self.silhouette[i],
                "calinski_harabasz": self.calinski_harabasz[i],
                "davies_bouldin": self.davies_bouldin[i],
                "gap": self.gap[i],
                "gap_sd": self.gap_sd[i],
            }
            for i, k in enumerate(self.k_values)
        ]

    def to_dict(self) -> dict:
        return {
            "k_values": self.k_values,
            "table": self.table(),
            "votes": self.votes,
            "recommended_k": self.recommended_k,
            "evidence": self.evidence,
            "rule": self.rule,
            "gap_k1": {"gap": self.gap_one, "gap_sd": self.gap_one_sd},
            "reason": self.reason,
            "k_range_note": self.note,
        }


# -- metrics --------------------------------------------------------------------------------------
def _scorable(labels: np.ndarray, n: int) -> bool:
    """scikit-learn's metrics need 2 <= number of clusters <= n − 1."""
    return 2 <= np.unique(labels).size <= n - 1


def silhouette_score(X: np.ndarray, labels: np.ndarray, *, sample_size: int | None = None, random_state=0) -> float:
    """Mean silhouette coefficient (scikit-learn's); on a random sample of rows if ``sample_size`` is set.

    NaN when the (sampled) labels have fewer than 2 or more than ``n − 1`` clusters.
    """
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if sample_size is not None and sample_size < len(X):
        idx = check_random_state(random_state).choice(len(X), sample_size, replace=False)
        X, labels = X[idx], labels[idx]
    return float(metrics.silhouette_score(X, labels)) if _scorable(labels, len(X)) else float("nan")


def calinski_harabasz_score(X: np.ndarray, labels: np.ndarray) -> float:
    """Between- over within-cluster dispersion (scikit-learn's); NaN when it is undefined."""
    labels = np.asarray(labels)
    return float(metrics.calinski_harabasz_score(X, labels)) if _scorable(labels, len(labels)) else float("nan")


def davies_bouldin_score(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean worst similarity of each cluster to another (scikit-learn's; lower is better); NaN when undefined."""
    labels = np.asarray(labels)
    return float(metrics.davies_bouldin_score(X, labels)) if _scorable(labels, len(labels)) else float("nan")


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


def gap_statistic(
    X: np.ndarray,
    k_values,
    *,
    n_references: int = 5,
    n_init: int = 1,
    random_state=0,
    observed_log_w: list[float] | None = None,
    reference: str = "uniform",
) -> tuple[np.ndarray, np.ndarray]:
    """Gap(k) and its standard error ``s(k) = sd · sqrt(1 + 1/B)`` for each k.

    ``reference="uniform"``: uniform in the bounding box of ``X`` (Tibshirani's
    choice; pass PCA-rotated data for their variant (b)). ``"gaussian"``: one
    Gaussian with the per-column mean and variance of ``X`` — for PCA scores
    (uncorrelated columns) that is the Gaussian with the data's covariance.
    """
    rng = check_random_state(random_state)
    X = np.asarray(X, dtype=np.float64)
    if reference == "uniform":
        lo, hi = X.min(axis=0), X.max(axis=0)
        refs = [rng.uniform(lo, hi, size=X.shape) for _ in range(n_references)]
    elif reference == "gaussian":
        mu, sd = X.mean(axis=0), X.std(axis=0)
        refs = [mu + sd * rng.standard_normal(X.shape) for _ in range(n_references)]
    else:
        raise ParameterError(f"reference={reference!r} must be 'uniform' or 'gaussian'")
    gaps, sds = [], []
    for i, k in enumerate(k_values):
        log_w = observed_log_w[i] if observed_log_w is not None else _within_log(X, k, rng, n_init)
        ref_logs = np.array([_within_log(R, k, rng, n_init) for R in refs])
        gaps.append(ref_logs.mean() - log_w)
        sds.append(ref_logs.std() * np.sqrt(1 + 1 / n_references))
    return np.array(gaps), np.array(sds)


# -- the procedure ----------------------------------------------------------------------------------
def narrow_k_values(k_values, n: int) -> tuple[tuple[int, ...], str | None]:
    """The k values a table of ``n`` rows can score (``k <= n − 1``), and a note when some were dropped.

    ``k = n`` puts every row alone (silhouette and Calinski-Harabasz are undefined
    there), so it is never scored. At least three values must remain.

    Raises
    ------
    ParameterError
        Fewer than three values of k left.
    """
    ks = tuple(int(k) for k in k_values)
    kept = tuple(k for k in ks if k <= n - 1)
    if len(kept) < 3:
        raise ParameterError(
            f"k range {ks[0]}..{ks[-1]} leaves {len(kept)} value(s) of k <= n_samples−1 = {n - 1} "
            f"(n_samples={n}); at least 3 are needed to compare them"
        )
    if kept == ks:
        return ks, None
    return kept, (
        f"k range narrowed to {kept[0]}..{kept[-1]}: the table has {n} rows, and k must be at most n − 1 = {n - 1}"
    )


def gap_choice(k_values, gap, gap_sd) -> int:
    """Tibshirani's 1-SE rule: the smallest k with ``gap(k) >= gap(k+1) − s(k+1)`` (else the largest k)."""
    for i in range(len(k_values) - 1):
        if gap[i] >= gap[i + 1] - gap_sd[i + 1]:
            return int(k_values[i])
    return int(k_values[-1])


def _fit_k(X, k, *, config: ChooseKConfig, engine, rng) -> KMeans:
    """Best of ``n_init`` k-means++ restarts (on a subsample when X is large), refined on all rows."""
    n = len(X)
    if config.n_init > 1 and n > config.fit_sample:
        sub = rng.choice(n, config.fit_sample, replace=False)
        pre = KMeans(k, n_init=config.n_init, max_iter=config.max_iter, random_state=rng).fit(X[sub])
        return KMeans(k, init=pre.cluster_centers_, n_init=1, max_iter=config.max_iter, engine=engine).fit(X)
    return KMeans(k, n_init=config.n_init, max_iter=config.max_iter, random_state=rng, engine=engine).fit(X)


def _log_w(X: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> float:
    d = X - centers[labels]
    return float(np.log(max(float(np.einsum("ij,ij->", d, d)), 1e-300)))


def choose_k(X, *, config: ChooseKConfig = ChooseKConfig(), engine="local", progress=None) -> ChooseKResult:
    """Fit k-means for every k in ``config.k_values``, score each k five ways, recommend one.

    Evidence (rule ``"gap"``): ``"none"`` when the gap rule stops at k = 1;
    ``"weak"`` when the gap gained from k = 1 to the chosen k is less than
    0.05 (a 5 % lower dispersion than structureless data would give, beyond
    what k = 1 already shows — tiny against the 0.3–0.5 of well-separated
    planted clusters), else ``"clear"``.

    Parameters
    ----------
    X : array [shape=(n, d)]
        Usually the PCA-reduced features.
    progress : callable(done, total) or None

    The range is narrowed to ``k <= n − 1`` when the table is smaller
    (:func:`narrow_k_values`); the result's ``note`` says so.

    Raises
    ------
    ParameterError
        Fewer than three values of k at most ``n − 1``.
    """
    X = check_array(X)
    n = len(X)
    narrowed, note = narrow_k_values(config.k_values, n)
    if note:
        log.warning(note)
    ks = list(narrowed)
    rng = check_random_state(config.random_state)
    sub_sil = rng.choice(n, min(n, config.silhouette_sample), replace=False)
    sub_gap = rng.choice(n, min(n, config.gap_sample), replace=False)
    Xg = X[sub_gap].astype(np.float64)
    inertia, sil, ch, db, obs_log_w = [], [], [], [], []
    labels: dict[int, np.ndarray] = {}
    total = len(ks) + 1
    for i, k in enumerate(ks):
        km = _fit_k(X, k, config=config, engine=engine, rng=rng)
        labels[k] = km.labels_
        inertia.append(km.inertia_)
        sil.append(silhouette_score(X[sub_sil], km.labels_[sub_sil]) if k > 1 else float("nan"))
        ch.append(calinski_harabasz_score(X, km.labels_) if k > 1 else float("nan"))
        db.append(davies_bouldin_score(X, km.labels_) if k > 1 else float("nan"))
        obs_log_w.append(_log_w(Xg, np.asarray(km.cluster_centers_, dtype=np.float64), km.labels_[sub_gap]))
        if progress:
            progress(i + 1, total)
    # gap: k = 1 is always a candidate (the null answer "no clusters")
    gap_ks = ks if ks[0] == 1 else [1] + ks
    if ks[0] != 1:
        obs_log_w = [_log_w(Xg, Xg.mean(axis=0, keepdims=True), np.zeros(len(Xg), dtype=np.int64))] + obs_log_w
    gaps, sds = gap_statistic(
        Xg,
        gap_ks,
        n_references=config.gap_references,
        n_init=1,
        random_state=rng,
        observed_log_w=obs_log_w,
        reference=config.gap_reference,
    )
    if progress:
        progress(total, total)
    off = len(gap_ks) - len(ks)
    gap, gap_sd = gaps[off:], sds[off:]

    def best(values, higher=True):
        v = np.array(values, dtype=float)
        v = np.where(np.isfinite(v), v, -np.inf if higher else np.inf)
        return ks[int(np.argmax(v) if higher else np.argmin(v))]

    gap_k = gap_choice(gap_ks, gaps, sds)
    votes = {
        "elbow": ks[knee(ks, inertia)],
        "silhouette": best(sil),
        "calinski_harabasz": best(ch),
        "davies_bouldin": best(db, higher=False),
        "gap": gap_k,
    }
    if config.rule == "majority":
        rec, evidence, reason = _majority(votes)
    else:
        rec, evidence, reason = _gap_rule(votes, gap_ks, gaps, sds, ks)
    log.info(reason)
    return ChooseKResult(
        ks,
        inertia,
        sil,
        ch,
        db,
        gap.tolist(),
        gap_sd.tolist(),
        votes,
        rec,
        reason,
        labels,
        gap_one=float(gaps[0]),
        gap_one_sd=float(sds[0]),
        evidence=evidence,
        rule=config.rule,
        note=note,
    )


_NAMES = {
    "elbow": "elbow",
    "silhouette": "silhouette",
    "calinski_harabasz": "Calinski-Harabasz",
    "davies_bouldin": "Davies-Bouldin",
    "gap": "gap",
}
WEAK_GAP_GAIN = 0.05


def _majority(votes: dict[str, int]) -> tuple[int, str, str]:
    count = Counter(votes.values())
    top = max(count.values())
    rec = min(k for k, c in count.items() if c == top)
    behind = [m for m, k in votes.items() if k == rec]
    others = ", ".join(f"{_NAMES[m]} {k}" for m, k in votes.items() if k != rec)
    evidence = "clear" if top >= 3 else "weak"
    reason = (
        f"k={rec}: chosen by {len(behind)} of 5 methods ({', '.join(_NAMES[m] for m in behind)})"
        + (f"; the others said {others}" if others else "")
        + ". Rule: the k with the most votes of the five methods; ties go to the smaller k."
    )
    return rec, evidence, reason


def _gap_rule(votes, gap_ks, gaps, sds, ks) -> tuple[int, str, str]:
    g = dict(zip(gap_ks, gaps))
    s = dict(zip(gap_ks, sds))
    k_hat = votes["gap"]
    nxt = gap_ks[gap_ks.index(k_hat) + 1] if k_hat != gap_ks[-1] else None
    why = (
        f"gap({k_hat})={g[k_hat]:.3f} >= gap({nxt}) − s({nxt}) = {g[nxt] - s[nxt]:.3f}"
        if nxt is not None
        else f"the gap still grows at the largest k tried ({k_hat}); try a wider --k-range"
    )
    others = {m: k for m, k in votes.items() if m != "gap"}
    agree = [_NAMES[m] for m, k in others.items() if k == k_hat]
    rule = (
        "Rule: the gap statistic's k (Tibshirani's 1-SE rule, k = 1 included: the only method here "
        "with a null model); the other four are shown for comparison."
    )
    if k_hat == 1:
        rec = ks[0]
        reason = (
            f"no cluster structure found: the gap statistic prefers one cluster ({why}), i.e. splitting "
            f"lowers the dispersion no more than it would for structureless data. k={rec} is only the "
            f"smallest k tried — its clusters would cut a continuum, not find groups "
            f"(the other methods said {_fmt(others)}). Evidence: none. {rule}"
        )
        return rec, "none", reason
    gain = g[k_hat] - g[1]
    evidence = "weak" if gain < WEAK_GAP_GAIN else "clear"
    reason = (
        f"k={k_hat}: the gap statistic's choice ({why}); gap rises by {gain:.3f} from k=1 "
        f"(evidence: {evidence}{'' if evidence == 'clear' else f', gain < {WEAK_GAP_GAIN}'})."
        + (f" Agreeing: {', '.join(agree)}." if agree else "")
        + f" Other methods: {_fmt({m: k for m, k in others.items() if k != k_hat}) or 'none disagree'}. "
        + rule
    )
    return k_hat, evidence, reason


def _fmt(d: dict[str, int]) -> str:
    return ", ".join(f"{_NAMES[m]} {k}" for m, k in d.items())
