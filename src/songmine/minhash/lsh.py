"""Locality-sensitive hashing of MinHash signatures by banding, written from scratch.

:class:`LSHIndex` splits a signature into ``n_bands`` bands of
``n_rows`` rows, hashes each band to one ``uint64`` key (a polynomial
universal hash mod 2⁶¹−1, written here too) and keeps **a separate table per
band**: two items are candidates when they collide in the *same* band. The
probability of that for Jaccard ``s`` is the S-curve ``1-(1-s^r)^b``
(:func:`s_curve`); :func:`choose_bands` picks ``(b, r)`` for a target threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NotFittedError, ParameterError
from .hashing import EMPTY, MERSENNE_61, fold61, mulmod61

__all__ = ["LSHConfig", "LSHIndex", "band_keys", "s_curve", "lsh_threshold", "check_threshold", "choose_bands"]


def s_curve(s: np.ndarray | float, n_bands: int, n_rows: int) -> np.ndarray | float:
    """Probability ``1-(1-s^r)^b`` that two sets with Jaccard ``s`` share a band."""
    _check_br(n_bands, n_rows)
    s = np.asarray(s, dtype=np.float64)
    out = 1.0 - (1.0 - s**n_rows) ** n_bands
    return float(out) if out.ndim == 0 else out


def lsh_threshold(n_bands: int, n_rows: int) -> float:
    """The S-curve's steepest point, approximately ``(1/b)^(1/r)``."""
    _check_br(n_bands, n_rows)
    return (1.0 / n_bands) ** (1.0 / n_rows)


def _check_br(n_bands: int, n_rows: int) -> None:
    for name, v in (("n_bands", n_bands), ("n_rows", n_rows)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ParameterError(f"{name}={v!r} must be a positive integer")


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """``threshold`` as float in (0, 1], else a ParameterError."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={threshold!r} must be a number in (0, 1]") from None
    if not (0.0 < t <= 1.0):
        raise ParameterError(f"{name}={threshold} must be in (0, 1]")
    return t


def choose_bands(
    n_perm: int,
    threshold: float,
    *,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """Pick ``(n_bands, n_rows)`` with ``n_bands·n_rows == n_perm`` for a Jaccard threshold.

    Minimises the weighted sum of the false-positive area (S-curve below the
    threshold) and the false-negative area (1 − S-curve above it), both
    integrated numerically; only exact divisors of ``n_perm`` are considered so
    the whole signature is used.

    Examples
    --------
    >>> choose_bands(100, 0.5)
    (20, 5)
    """
    if not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ParameterError(f"n_perm={n_perm!r} must be a positive integer")
    t = check_threshold(threshold)
    best, best_err = (n_perm, 1), np.inf
    lo = np.linspace(0.0, t, 201)
    hi = np.linspace(t, 1.0, 201)
    for r in range(1, n_perm + 1):  # loop over candidate shapes (≤ n_perm), not data
        if n_perm % r:
            continue
        b = n_perm // r
        fp = np.trapezoid(s_curve(lo, b, r), lo)
        fn = np.trapezoid(1.0 - s_curve(hi, b, r), hi)
        err = false_positive_weight * fp + false_negative_weight * fn
        if err < best_err - 1e-15:
            best, best_err = (b, r), err
    return best


# ----------------------------------------------------------------------- LSH


@dataclass(frozen=True, slots=True)
class LSHConfig:
    """Banding shape: ``n_bands`` bands of ``n_rows`` rows; ``n_bands·n_rows`` = signature length."""

    n_bands: int = 20
    n_rows: int = 5

    def __post_init__(self) -> None:
        _check_br(self.n_bands, self.n_rows)

    @property
    def n_perm(self) -> int:
        return self.n_bands * self.n_rows

    def check(self, n_perm: int) -> None:
        """Raise unless the bands tile a signature of length ``n_perm`` exactly."""
        if self.n_perm != n_perm:
            raise ParameterError(
                f"n_bands={self.n_bands} x n_rows={self.n_rows} = {self.n_perm} does not match "
                f"the signature length n_perm={n_perm} (b*r must equal it)"
            )


def band_keys(sigs: np.ndarray, config: LSHConfig, *, seed: int = 0x5EED) -> np.ndarray:
    """Hash each band of each signature to one uint64 key.

    ``key = (Σ_j c_j · v_j + band) mod (2⁶¹−1)``, the ``c_j`` drawn once from
    ``seed``; values are first folded mod 2⁶¹−1 (EMPTY folds to a fixed value,
    so empty signatures collide only with each other — and LSH callers drop
    them). Two different bands collide with probability ≈ r / 2⁶¹.

    Returns
    -------
    np.ndarray [shape=(n_sigs, n_bands), dtype=uint64]
    """
    S = np.asarray(sigs, dtype=np.uint64)
    if S.ndim == 1:
        S = S[None, :]
    config.check(S.shape[1])
    coef = np.random.default_rng(seed).integers(1, MERSENNE_61, size=config.n_rows, dtype=np.uint64)
    V = fold61(S.reshape(S.shape[0], config.n_bands, config.n_rows))
    acc = np.zeros(V.shape[:2], dtype=np.uint64)
    for j in range(config.n_rows):  # r ≤ a few dozen rows; vectorised over signatures and bands
        acc = fold61(acc + mulmod61(V[:, :, j], coef[j]))
    return fold61(acc + np.arange(config.n_bands, dtype=np.uint64)[None, :])


class LSHIndex:
    """Banded LSH over MinHash signatures: one sorted table per band.

    Each table is a pair of parallel arrays (band key sorted, item id), so
    lookups are ``np.searchsorted`` and the tables can be saved as ``.npy``.

    Parameters
    ----------
    n_bands, n_rows : int
        Banding shape; ``n_bands * n_rows`` must equal the signature length.

    Examples
    --------
    >>> mh = MinHasher(100, random_state=0)
    >>> lsh = LSHIndex(20, 5).fit(mh.signatures([np.arange(100), np.arange(500, 600)]))
    >>> lsh.query(mh.signature(np.arange(5, 100))).tolist()
    [0]
    """

    def __init__(self, n_bands: int = 20, n_rows: int = 5) -> None:
        self.n_bands = n_bands
        self.n_rows = n_rows

    @property
    def config(self) -> LSHConfig:
        return LSHConfig(self.n_bands, self.n_rows)

    def fit(self, sigs: np.ndarray, ids: np.ndarray | None = None) -> LSHIndex:
        """Build the band tables for signatures ``sigs`` (rows) with item ``ids`` (default row numbers).

        All-EMPTY signatures (empty sets) are not inserted: they would all collide.
        """
        cfg = self.config
        S = np.asarray(sigs, dtype=np.uint64)
        if S.ndim != 2:
            raise ParameterError(f"signatures must be 2-D (n_items, n_perm), got shape {S.shape}")
        cfg.check(S.shape[1])
        ids = np.arange(S.shape[0], dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if ids.shape != (S.shape[0],):
            raise ParameterError(f"ids shape {ids.shape} != ({S.shape[0]},)")
        keep = ~np.all(S == EMPTY, axis=1)
        S, ids = S[keep], ids[keep]
        keys = band_keys(S, cfg)  # (n, b)
        order = np.argsort(keys, axis=0, kind="stable")  # per band
        self.keys_ = np.take_along_axis(keys, order, axis=0).T.copy()  # (b, n) sorted per band
        self.ids_ = ids[order].T.copy()  # (b, n)
        self.signatures_ = S
        self.item_ids_ = ids
        self.n_perm_ = S.shape[1]
        return self

    @classmethod
    def from_arrays(cls, keys: np.ndarray, ids: np.ndarray, n_rows: int) -> LSHIndex:
        """Rebuild from saved ``keys_`` / ``ids_`` arrays (e.g. memory-mapped .npy)."""
        obj = cls(keys.shape[0], n_rows)
        obj.keys_, obj.ids_ = keys, ids
        obj.n_perm_ = keys.shape[0] * n_rows
        return obj

    def _check_fitted(self) -> None:
        if not hasattr(self, "keys_"):
            raise NotFittedError("LSHIndex is not fitted: call fit(signatures) first")

    def query_counts(self, sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate item ids and in how many bands each collided with ``sig``.

        Raises
        ------
        ParameterError
            If ``len(sig)`` differs from the indexed signature length.
        """
        self._check_fitted()
        q = np.asarray(sig, dtype=np.uint64)
        if q.ndim != 1 or q.shape[0] != self.n_perm_:
            raise ParameterError(
                f"signature length mismatch: query has {q.shape[-1] if q.ndim else 0}, index has n_perm={self.n_perm_}"
            )
        if np.all(q == EMPTY):
            z = np.zeros(0, np.int64)
            return z, z
        qk = band_keys(q, self.config)[0]  # (b,)
        lo = np.array([np.searchsorted(self.keys_[i], qk[i], side="left") for i in range(self.n_bands)])
        hi = np.array([np.searchsorted(self.keys_[i], qk[i], side="right") for i in range(self.n_bands)])
        counts = hi - lo
        if counts.sum() == 0:
            z = np.zeros(0, np.int64)
            return z, z
        band = np.repeat(np.arange(self.n_bands), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        hits = self.ids_[band, np.repeat(lo, counts) + within]
        ids, n = np.unique(hits, return_counts=True)
        return ids.astype(np.int64), n.astype(np.int64)

    def query(self, sig: np.ndarray) -> np.ndarray:
        """Ids of items sharing at least one band with ``sig`` (sorted)."""
        return self.query_counts(sig)[0]

    def candidate_pairs(self) -> np.ndarray:
        """All pairs ``(i, j)``, ``i < j``, of indexed ids that share at least one band.

        Pairs come from runs of equal keys in each sorted band table, so the
        cost grows with the number of colliding pairs, not with n².

        Returns
        -------
        np.ndarray [shape=(n_pairs, 2), dtype=int64], unique rows
        """
        self._check_fitted()
        out = []
        for i in range(self.n_bands):  # loop over bands (≤ n_perm), vectorised inside
            k, ids = self.keys_[i], self.ids_[i]
            if k.shape[0] < 2:
                continue
            starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
            sizes = np.diff(np.r_[starts, k.shape[0]])
            multi = sizes > 1
            if not multi.any():
                continue
            st, sz = starts[multi], sizes[multi]
            # all ordered pairs within each run: expand (run, a, b) with a < b
            n_pairs = sz * (sz - 1) // 2
            run = np.repeat(np.arange(st.shape[0]), n_pairs)
            rank = np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
            m = sz[run].astype(np.float64)
            # invert rank → (a, b) in row-major order of the upper triangle
            a = np.floor(((2 * m - 1) - np.sqrt((2 * m - 1) ** 2 - 8 * rank)) / 2).astype(np.int64)
            a = np.clip(a, 0, None)
            before = a * (2 * sz[run] - a - 1) // 2
            fix = before > rank  # float round-off guard
            a = np.where(fix, a - 1, a)
            before = a * (2 * sz[run] - a - 1) // 2
            b = rank - before + a + 1
            p = ids[st[run] + a]
            q = ids[st[run] + b]
            out.append(np.stack([np.minimum(p, q), np.maximum(p, q)], axis=1))
        if not out:
            return np.zeros((0, 2), dtype=np.int64)
        pairs = np.concatenate(out)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        return np.unique(pairs, axis=0)
