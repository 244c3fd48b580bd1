"""MinHash signatures, written from scratch (no hashing or MinHash library).

Two signature variants, so they can be compared:

* ``variant="universal"`` (default): ``n_perm`` hash functions
  ``h_i(x) = (a_i·x + b_i) mod p`` with ``p`` a Mersenne prime (2³¹−1 by
  default: about 8× faster in numpy; or 2⁶¹−1), ``1 <= a_i < p``,
  ``0 <= b_i < p`` drawn from a seeded generator. Elements are any non-negative integers below 2⁶⁴; they are first
  reduced mod ``p``. With ``p = 2³¹−1`` the product ``a·x + b < 2⁶³`` fits in
  ``uint64`` directly; with ``p = 2⁶¹−1`` the product is formed from 32-bit
  limbs and folded with ``2⁶¹ ≡ 1 (mod p)``, so nothing ever wraps (tested
  against Python integers). This avoids the silent ``uint64`` overflow of
  datasketch's ``a·x`` on ``uint64``.
* ``variant="permutation"``: the textbook formulation for a binary vector over
  a universe ``{0 … universe-1}`` (e.g. 431 frames): ``n_perm`` random
  shuffles of the rows; the signature is, per shuffle, the smallest shuffled
  position of a 1-bit.

Everything is vectorised over all permutations at once (an ``(n_perm, n)``
matrix of hash values, processed in chunks of elements to bound memory).

The Jaccard estimate is the **fraction of signature positions that are
equal** (not the overlap of the sets of signature values). The empty set has a
defined signature: every position holds :data:`EMPTY` (larger than any hash
value); positions holding :data:`EMPTY` never count as agreement, so an empty
set has estimated similarity 0 with everything, itself included.

LSH banding over these signatures: :mod:`songmine.minhash.lsh`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import ParameterError
from ..random_state import check_random_state

__all__ = [
    "MERSENNE_61",
    "MERSENNE_31",
    "EMPTY",
    "MinHasher",
    "mulmod61",
    "fold61",
    "estimate_jaccard",
    "estimate_jaccard_many",
    "exact_jaccard",
]

#: The Mersenne prime 2⁶¹−1 (products formed from 32-bit limbs).
MERSENNE_61 = (1 << 61) - 1
#: The Mersenne prime 2³¹−1, the default modulus (a·x+b < 2⁶³ without limb arithmetic).
MERSENNE_31 = (1 << 31) - 1
#: Signature value of a position that saw no element (the empty set).
EMPTY = np.uint64(np.iinfo(np.uint64).max)

_P61 = np.uint64(MERSENNE_61)
_MASK32 = np.uint64(0xFFFFFFFF)
_MASK29 = np.uint64((1 << 29) - 1)
_CHUNK = 4096  # elements hashed at a time: n_perm × 4096 uint64 scratch


# ----------------------------------------------------------------- arithmetic


def fold61(v: np.ndarray) -> np.ndarray:
    """Reduce uint64 ``v`` (any value) to ``[0, p)`` for p = 2⁶¹−1."""
    v = (v & _P61) + (v >> np.uint64(61))  # < 2^61 + 8
    return np.where(v >= _P61, v - _P61, v)


def mulmod61(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(a * x) mod (2⁶¹−1)`` for uint64 ``a, x < 2⁶¹`` without overflow (broadcasts).

    ``a = a1·2³² + a0`` and ``x = x1·2³² + x0`` (``a1, x1 < 2²⁹``); with
    ``2⁶¹ ≡ 1``: ``2⁶⁴ ≡ 8``, so
    ``a·x ≡ 8·a1·x1 + fold(mid·2³²) + fold(a0·x0)`` where every partial
    product fits in 64 bits and the sum stays below 2⁶³.

    Examples
    --------
    >>> a = np.array([MERSENNE_61 - 1], np.uint64)
    >>> int(mulmod61(a, a)[0]) == (MERSENNE_61 - 1) ** 2 % MERSENNE_61
    True
    """
    a = np.asarray(a, dtype=np.uint64)
    x = np.asarray(x, dtype=np.uint64)
    s32 = np.uint64(32)
    a1, a0 = a >> s32, a & _MASK32
    x1, x0 = x >> s32, x & _MASK32
    hi = (a1 * x1) << np.uint64(3)  # a1·x1·2^64 ≡ 8·a1·x1 < 2^61
    mid = a1 * x0 + a0 * x1  # < 2^62
    mid_part = (mid >> np.uint64(29)) + ((mid & _MASK29) << s32)  # mid·2^32 mod p, < 2^61 + 2^33
    lo = a0 * x0  # < 2^64, exact in uint64
    lo_part = (lo & _P61) + (lo >> np.uint64(61))  # < 2^61 + 8
    return fold61(fold61(hi + mid_part) + lo_part)


def _reduce_elements(x: np.ndarray, prime: int) -> np.ndarray:
    """Elements as uint64 reduced mod ``prime``; rejects negative or non-integer input."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == bool:
            raise ParameterError("elements must be integers, got a boolean array (use np.flatnonzero for a bit vector)")
        raise ParameterError(f"elements must be integers, got dtype {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and int(arr.min()) < 0:
        raise ParameterError(f"elements must be non-negative integers, got min {int(arr.min())}")
    u = arr.astype(np.uint64, copy=False)
    if prime == MERSENNE_61:
        return fold61(u)
    return u % np.uint64(prime)


# ------------------------------------------------------------------- MinHash


class MinHasher:
    """MinHash signatures of integer sets, vectorised over all permutations.

    Parameters
    ----------
    n_perm : int
        Signature length (number of hash functions or permutations).
    variant : {"universal", "permutation"}
        Universal hashing ``(a·x+b) mod p`` or explicit random permutations of
        ``range(universe)``.
    prime : int
        :data:`MERSENNE_31` (default) or :data:`MERSENNE_61`; universal variant.
        With 2³¹−1, elements ≥ p (e.g. 32-bit hashes) are reduced mod p first,
        so a pair ``x, x+p`` is one element — negligible for random hashes.
    universe : int or None
        Size of the element universe; required by the permutation variant
        (elements must then lie in ``[0, universe)``).
    random_state : int, Generator or None
        Seed of the hash parameters; two hashers with the same seed,
        ``n_perm``, variant and prime give identical signatures.

    Attributes
    ----------
    a, b : np.ndarray [shape=(n_perm,), dtype=uint64]
        Universal-hash coefficients (universal variant).
    permutations : np.ndarray [shape=(n_perm, universe), dtype=uint32]
        ``permutations[i, x]`` = position of element ``x`` under shuffle ``i``
        (permutation variant).

    Examples
    --------
    >>> mh = MinHasher(128, random_state=1)
    >>> s1 = mh.signature(np.arange(0, 100)); s2 = mh.signature(np.arange(50, 150))
    >>> round(estimate_jaccard(s1, s2), 1)  # exact: 50/150 = 0.33
    0.3
    """

    def __init__(
        self,
        n_perm: int = 128,
        *,
        variant: str = "universal",
        prime: int = MERSENNE_31,
        universe: int | None = None,
        random_state: int | np.random.Generator | None = 0,
    ) -> None:
        if not isinstance(n_perm, (int, np.integer)) or isinstance(n_perm, bool) or n_perm < 1:
            raise ParameterError(f"n_perm={n_perm!r} must be a positive integer")
        if variant not in ("universal", "permutation"):
            raise ParameterError(f"variant={variant!r} must be 'universal' or 'permutation'")
        if prime not in (MERSENNE_61, MERSENNE_31):
            raise ParameterError(f"prime={prime} must be MERSENNE_61 (2**61-1) or MERSENNE_31 (2**31-1)")
        if variant == "permutation":
            if universe is None or int(universe) < 1:
                raise ParameterError(f"variant='permutation' needs universe >= 1, got universe={universe!r}")
            if int(universe) >= 2**32:
                raise ParameterError(f"universe={universe} must be < 2**32")
        self.n_perm = int(n_perm)
        self.variant = variant
        self.prime = int(prime)
        self.universe = None if universe is None else int(universe)
        rng = check_random_state(random_state)
        self.seed_repr = random_state if isinstance(random_state, (int, np.integer)) else None
        if variant == "universal":
            self.a = rng.integers(1, self.prime, size=self.n_perm, dtype=np.uint64)
            self.b = rng.integers(0, self.prime, size=self.n_perm, dtype=np.uint64)
            self.permutations = None
        else:
            base = np.tile(np.arange(self.universe, dtype=np.uint32), (self.n_perm, 1))
            self.permutations = rng.permuted(base, axis=1)
            self.a = self.b = None

    def __repr__(self) -> str:
        extra = (
            f", universe={self.universe}"
            if self.variant == "permutation"
            else f", prime=2**{self.prime.bit_length()}-1"
        )
        return f"MinHasher(n_perm={self.n_perm}, variant={self.variant!r}{extra})"

    # -- hash values -----------------------------------------------------
    def _check_elements(self, x: np.ndarray) -> np.ndarray:
        if self.variant == "universal":
            return _reduce_elements(x, self.prime)
        arr = np.asarray(x).reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ParameterError(f"elements must be integers, got dtype {arr.dtype}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= self.universe):
            raise ParameterError(
                f"elements must lie in [0, universe={self.universe}), got range [{int(arr.min())}, {int(arr.max())}]"
            )
        return arr.astype(np.intp, copy=False)

    def _hash_chunk(self, xr: np.ndarray) -> np.ndarray:
        """(n_perm, len(xr)) hash values of validated, reduced elements."""
        if self.variant == "permutation":
            return self.permutations[:, xr].astype(np.uint64)
        if self.prime == MERSENNE_31:
            # a, x < 2^31 ⇒ a·x + b < 2^62 + 2^31: no overflow in uint64
            return (self.a[:, None] * xr[None, :] + self.b[:, None]) % np.uint64(self.prime)
        return fold61(mulmod61(self.a[:, None], xr[None, :]) + self.b[:, None])

    def hash_values(self, x: np.ndarray) -> np.ndarray:
        """All hash values, shape ``(n_perm, len(x))`` uint64 (for tests and block minima)."""
        xr = self._check_elements(x)
        return self._hash_chunk(xr)

    # -- signatures --------------------------------------------------------
    def signature(self, x: np.ndarray) -> np.ndarray:
        """MinHash signature of the set of integers ``x`` (repeats allowed).

        Parameters
        ----------
        x : np.ndarray [shape=(n,), integer dtype]
            The set's elements; ``n = 0`` gives the all-:data:`EMPTY` signature.

        Returns
        -------
        np.ndarray [shape=(n_perm,), dtype=uint64]
        """
        xr = self._check_elements(x)
        sig = np.full(self.n_perm, EMPTY, dtype=np.uint64)
        for start in range(0, xr.shape[0], _CHUNK):  # chunks of elements, not one element at a time
            np.minimum(sig, self._hash_chunk(xr[start : start + _CHUNK]).min(axis=1), out=sig)
        return sig

    def signatures(self, sets: Iterable[np.ndarray]) -> np.ndarray:
        """Signatures of several sets, shape ``(n_sets, n_perm)`` uint64."""
        sets = list(sets)
        if not sets:
            return np.zeros((0, self.n_perm), dtype=np.uint64)
        lengths = np.array([np.asarray(s).size for s in sets], dtype=np.int64)
        flat = np.concatenate([np.asarray(s).reshape(-1) for s in sets]) if lengths.sum() else np.zeros(0, np.int64)
        return self.segment_signatures(flat, np.concatenate([[0], np.cumsum(lengths)[:-1]]), len(flat))

    def segment_signatures(self, x: np.ndarray, starts: np.ndarray, end: int | None = None) -> np.ndarray:
        """Signatures of the contiguous segments ``x[starts[i]:starts[i+1]]``.

        The last segment runs to ``end`` (default ``len(x)``). Segments may be
        empty (their signature is all :data:`EMPTY`). Uses one
        ``np.minimum.reduceat`` per chunk of hash values: no loop over segments.

        Returns
        -------
        np.ndarray [shape=(len(starts), n_perm), dtype=uint64]
        """
        xr = self._check_elements(x)
        n = xr.shape[0] if end is None else int(end)
        starts = np.asarray(starts, dtype=np.int64)
        if starts.ndim != 1 or (starts.size and (np.any(np.diff(starts) < 0) or starts[0] < 0 or starts[-1] > n)):
            raise ParameterError("starts must be a non-decreasing 1-D array within [0, len(x)]")
        n_seg = starts.shape[0]
        out = np.full((n_seg, self.n_perm), EMPTY, dtype=np.uint64)
        if n_seg == 0 or n == 0:
            return out
        ends = np.append(starts[1:], n)
        nonempty = ends > starts
        if not nonempty.any():
            return out
        s_ne = starts[nonempty]
        # process elements in chunks; each chunk contributes to the segments it overlaps
        step = max(_CHUNK, 1)
        seg_out = np.full((s_ne.shape[0], self.n_perm), EMPTY, dtype=np.uint64)
        e_ne = ends[nonempty]
        for c0 in range(0, n, step):
            c1 = min(n, c0 + step)
            # segments overlapping [c0, c1)
            lo = int(np.searchsorted(e_ne, c0, side="right"))
            hi = int(np.searchsorted(s_ne, c1, side="left"))
            if hi <= lo:
                continue
            hv = self._hash_chunk(xr[c0:c1])  # (n_perm, c1-c0)
            local = np.clip(s_ne[lo:hi], c0, c1) - c0
            # reduceat needs strictly valid indices < len; segments starting at/after c1 excluded by hi
            mins = np.minimum.reduceat(hv, local, axis=1).T  # (hi-lo, n_perm)
            # reduceat over [local[i], local[i+1]) — clip segment ends inside chunk
            seg_ends = np.clip(e_ne[lo:hi], c0, c1) - c0
            # a segment whose clipped end equals the next clipped start is exact; if a
            # segment ends before the next starts (never: segments are contiguous) we'd over-take.
            valid = seg_ends > local
            np.minimum(seg_out[lo:hi], np.where(valid[:, None], mins, EMPTY), out=seg_out[lo:hi])
        out[nonempty] = seg_out
        return out

    def check_signature(self, sig: np.ndarray) -> np.ndarray:
        """``sig`` as uint64 of shape (..., n_perm), else a ParameterError naming the lengths."""
        arr = np.asarray(sig)
        if arr.shape[-1:] != (self.n_perm,):
            raise ParameterError(f"signature length {arr.shape[-1] if arr.ndim else 0} != n_perm={self.n_perm}")
        return arr.astype(np.uint64, copy=False)


# --------------------------------------------------------- similarity tools


def estimate_jaccard(sig1: np.ndarray, sig2: np.ndarray) -> float:
    """Fraction of positions where two signatures agree (EMPTY positions never agree).

    Raises
    ------
    ParameterError
        If the signature lengths differ.
    """
    s1 = np.asarray(sig1)
    s2 = np.asarray(sig2)
    if s1.shape != s2.shape or s1.ndim != 1:
        raise ParameterError(f"signature length mismatch: {s1.shape} vs {s2.shape}")
    if s1.shape[0] == 0:
        raise ParameterError("signatures must not be empty (length 0)")
    return float(np.mean((s1 == s2) & (s1 != EMPTY)))


def estimate_jaccard_many(query: np.ndarray, sigs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of one query signature against each row of ``sigs``."""
    q = np.asarray(query)
    S = np.asarray(sigs)
    if S.ndim != 2 or q.ndim != 1 or S.shape[1] != q.shape[0]:
        raise ParameterError(f"signature length mismatch: query {q.shape} vs table {S.shape}")
    return np.mean((S == q[None, :]) & (q[None, :] != EMPTY), axis=1)


def exact_jaccard(x: np.ndarray, y: np.ndarray) -> float:
    """|x ∩ y| / |x ∪ y| of two integer arrays taken as sets (0 when both are empty)."""
    ux = np.unique(np.asarray(x))
    uy = np.unique(np.asarray(y))
    inter = np.intersect1d(ux, uy, assume_unique=True).size
    union = ux.size + uy.size - inter
    return 0.0 if union == 0 else inter / union
