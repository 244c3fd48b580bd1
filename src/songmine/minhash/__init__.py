"""MinHash from scratch, LSH banding, and what is built on them.

* :mod:`~songmine.minhash.hashing` — :class:`MinHasher` (universal hashing, or
  permutations), Jaccard estimates;
* :mod:`~songmine.minhash.lsh` — :class:`LSHIndex`, the S-curve, choosing bands;
* :mod:`~songmine.minhash.onset` — the original course method (onset-peak bit
  vectors → MinHash → LSH), method ``seed``;
* :mod:`~songmine.minhash.sketch` — MinHash sketches of landmark windows, method ``sketch``;
* :mod:`~songmine.minhash.dedupe` — near-duplicate recordings of a library.
"""

from __future__ import annotations

from .hashing import (
    EMPTY,
    MERSENNE_31,
    MERSENNE_61,
    MinHasher,
    estimate_jaccard,
    estimate_jaccard_many,
    exact_jaccard,
    mulmod61,
)
from .lsh import LSHConfig, LSHIndex, band_keys, check_threshold, choose_bands, lsh_threshold, s_curve

__all__ = [
    "MERSENNE_61",
    "MERSENNE_31",
    "EMPTY",
    "MinHasher",
    "LSHConfig",
    "LSHIndex",
    "band_keys",
    "mulmod61",
    "estimate_jaccard",
    "estimate_jaccard_many",
    "exact_jaccard",
    "s_curve",
    "lsh_threshold",
    "check_threshold",
    "choose_bands",
]
