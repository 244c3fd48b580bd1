"""MinHash / LSH primitives: exactness of the arithmetic, estimate accuracy, S-curve."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.errors import NotFittedError, ParameterError
from songmine.minhash import (
    EMPTY,
    MERSENNE_31,
    MERSENNE_61,
    LSHConfig,
    LSHIndex,
    MinHasher,
    band_keys,
    choose_bands,
    estimate_jaccard,
    estimate_jaccard_many,
    exact_jaccard,
    lsh_threshold,
    mulmod61,
    s_curve,
)


def _pair_with_jaccard(rng, j: float, n_union: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Two random sets of 32-bit ints whose exact Jaccard is round(j*n)/n."""
    universe = rng.choice(2**32, size=n_union, replace=False).astype(np.uint64)
    n_common = int(round(j * n_union))
    common, rest = universe[:n_common], universe[n_common:]
    half = rest.shape[0] // 2
    return np.concatenate([common, rest[:half]]), np.concatenate([common, rest[half:]])


# ------------------------------------------------------------ arithmetic


def test_mulmod61_matches_python_ints_including_extremes(rng):
    p = MERSENNE_61
    a = rng.integers(0, p, size=5000, dtype=np.uint64)
    x = rng.integers(0, p, size=5000, dtype=np.uint64)
    edge = np.array([0, 1, 2, p - 1, p - 2, 2**32 - 1, 2**32, 2**60, 2**61 - 2], dtype=np.uint64)
    a = np.concatenate([a, np.repeat(edge, edge.size)])
    x = np.concatenate([x, np.tile(edge, edge.size)])
    got = mulmod61(a, x)
    want = [int(ai) * int(xi) % p for ai, xi in zip(a.tolist(), x.tolist())]
    assert got.tolist() == want


@pytest.mark.parametrize("prime", [MERSENNE_31, MERSENNE_61])
def test_universal_hash_values_match_python_ints(rng, prime):
    mh = MinHasher(16, prime=prime, random_state=7)
    # elements spanning the whole uint64 range, including values >= p and 2**64-1
    x = np.concatenate(
        [
            rng.integers(0, 2**63, size=300, dtype=np.uint64),
            np.array([0, prime - 1, prime, prime + 1, 2**32 - 1, 2**64 - 1], dtype=np.uint64),
        ]
    )
    hv = mh.hash_values(x)
    assert hv.dtype == np.uint64 and hv.shape == (16, x.size)
    for i in range(16):
        a, b = int(mh.a[i]), int(mh.b[i])
        want = [(a * (int(v) % prime) + b) % prime for v in x.tolist()]
        assert hv[i].tolist() == want
    assert int(hv.max()) < prime


def test_signature_is_min_of_hash_values_and_reproducible(rng):
    x = rng.integers(0, 2**32, size=10_000, dtype=np.uint64)  # more than one chunk
    m1, m2, m3 = MinHasher(64, random_state=3), MinHasher(64, random_state=3), MinHasher(64, random_state=4)
    s = m1.signature(x)
    assert s.dtype == np.uint64 and s.shape == (64,)
    np.testing.assert_array_equal(s, m1.hash_values(x).min(axis=1))
    np.testing.assert_array_equal(s, m2.signature(x))
    assert not np.array_equal(s, m3.signature(x))
    # order and repeats don't matter: it is a set
    np.testing.assert_array_equal(s, m1.signature(np.concatenate([x[::-1], x[:50]])))


@pytest.mark.parametrize("variant", ["universal", "permutation"])
def test_segment_signatures_equal_per_set_signatures(rng, variant):
    mh = MinHasher(32, variant=variant, universe=9000, random_state=0)
    sizes = [0, 5, 4100, 0, 1, 9000, 3]
    sets = [rng.integers(0, 9000, size=n) for n in sizes]
    S = mh.signatures(sets)
    for s, row in zip(sets, S):
        np.testing.assert_array_equal(row, mh.signature(s))


def test_empty_set_has_defined_signature_and_zero_similarity():
    mh = MinHasher(20, random_state=0)
    e = mh.signature(np.array([], dtype=np.uint32))
    assert e.shape == (20,) and np.all(e == EMPTY)
    assert estimate_jaccard(e, e) == 0.0
    assert estimate_jaccard(e, mh.signature([1, 2, 3])) == 0.0
    lsh = LSHIndex(4, 5).fit(np.stack([e, mh.signature([1, 2, 3])]))
    assert lsh.query(e).tolist() == []  # empty sets never become candidates
    assert exact_jaccard([], []) == 0.0


# ------------------------------------------------------------ estimation


@pytest.mark.parametrize("variant", ["universal", "permutation"])
def test_estimate_within_theoretical_bound(rng, variant):
    """Estimate error ~ sqrt(J(1-J)/k); check every pair within 4 sd and the mean unbiased."""
    k = 256
    mh = MinHasher(k, variant=variant, universe=5000, random_state=11)
    errors, sds = [], []
    for j in np.linspace(0.05, 0.95, 30):
        x, y = _pair_with_jaccard(rng, j)
        if variant == "permutation":
            x, y = x % 5000, y % 5000
        J = exact_jaccard(x, y)
        est = estimate_jaccard(mh.signature(x), mh.signature(y))
        sd = np.sqrt(J * (1 - J) / k)
        errors.append(est - J)
        sds.append(sd)
        assert abs(est - J) <= 4 * sd + 1e-9, (J, est)
    errors = np.array(errors)
    # mean of 30 errors: sd ≈ mean(sd)/sqrt(30)
    assert abs(errors.mean()) <= 4 * np.mean(sds) / np.sqrt(len(errors))
    # and the spread is of the theoretical size (not much larger)
    assert np.sqrt(np.mean(errors**2)) <= 1.6 * np.sqrt(np.mean(np.square(sds)))


def test_estimate_is_fraction_of_equal_positions_not_value_overlap():
    a = np.array([1, 2, 3, 4], dtype=np.uint64)
    b = np.array([4, 3, 2, 1], dtype=np.uint64)  # same values, no equal position
    assert estimate_jaccard(a, b) == 0.0
    assert estimate_jaccard(a, np.array([1, 2, 9, 9], dtype=np.uint64)) == 0.5
    np.testing.assert_allclose(estimate_jaccard_many(a, np.stack([a, b])), [1.0, 0.0])


def test_signature_length_mismatch_is_a_clear_error():
    with pytest.raises(ParameterError, match="length mismatch"):
        estimate_jaccard(np.zeros(10, np.uint64), np.zeros(12, np.uint64))
    lsh = LSHIndex(2, 5).fit(np.zeros((3, 10), np.uint64) + 1)
    with pytest.raises(ParameterError, match="n_perm=10"):
        lsh.query(np.zeros(12, np.uint64))
    with pytest.raises(ParameterError, match="n_perm=100"):
        MinHasher(100).check_signature(np.zeros(64, np.uint64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_perm": 0}, "n_perm"),
        ({"n_perm": 10, "variant": "shuffle"}, "variant"),
        ({"n_perm": 10, "prime": 97}, "prime"),
        ({"n_perm": 10, "variant": "permutation"}, "universe"),
    ],
)
def test_bad_hasher_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        MinHasher(**kwargs)


def test_bad_elements_are_rejected():
    mh = MinHasher(8)
    with pytest.raises(ParameterError, match="non-negative"):
        mh.signature(np.array([-1, 2]))
    with pytest.raises(ParameterError, match="integers"):
        mh.signature(np.array([0.5]))
    mp = MinHasher(8, variant="permutation", universe=10)
    with pytest.raises(ParameterError, match="universe=10"):
        mp.signature(np.array([3, 10]))


# ------------------------------------------------------------------- LSH


@pytest.mark.parametrize("b, r", [(20, 5), (10, 10), (50, 2)])
def test_lsh_collision_probability_follows_s_curve(rng, b, r):
    """Fraction of pairs sharing ≥ 1 band matches 1-(1-s^r)^b within binomial error."""
    k, n_pairs = b * r, 150
    mh = MinHasher(k, random_state=5)
    for s in (0.3, 0.5, 0.7):
        sigs = []
        for _ in range(n_pairs):
            x, y = _pair_with_jaccard(rng, s, n_union=200)
            sigs += [mh.signature(x), mh.signature(y)]
        S = np.stack(sigs)
        keys = band_keys(S, LSHConfig(b, r))
        hit = np.any(keys[0::2] == keys[1::2], axis=1)
        p = s_curve(s, b, r)
        sd = np.sqrt(max(p * (1 - p), 1e-3) / n_pairs)
        assert abs(hit.mean() - p) <= 4 * sd + 0.02, (b, r, s, hit.mean(), p)


def test_lsh_tables_are_per_band(rng):
    """Equal values in *different* bands must not make a candidate (the original's bug)."""
    sig_a = np.arange(100, dtype=np.uint64)  # band 0 = 0..4
    sig_b = np.arange(100, dtype=np.uint64) + 1000
    sig_b[10:15] = np.arange(5)  # band 2 of b equals band 0 of a
    lsh = LSHIndex(20, 5).fit(np.stack([sig_a]))
    assert lsh.query(sig_b).tolist() == []
    sig_c = sig_b.copy()
    sig_c[:5] = np.arange(5)  # same band, same values
    ids, counts = lsh.query_counts(sig_c)
    assert ids.tolist() == [0] and counts.tolist() == [1]


def test_lsh_candidate_pairs_equal_brute_force(rng):
    mh = MinHasher(40, random_state=2)
    base = [rng.integers(0, 2**32, size=200) for _ in range(30)]
    sets = base + [np.concatenate([s[:150], rng.integers(0, 2**32, size=40)]) for s in base[:15]]
    S = mh.signatures(sets)
    lsh = LSHIndex(20, 2).fit(S, ids=np.arange(100, 100 + len(sets)))
    pairs = {tuple(p) for p in lsh.candidate_pairs().tolist()}
    keys = band_keys(S, LSHConfig(20, 2))
    brute = {
        (100 + i, 100 + j) for i in range(len(sets)) for j in range(i + 1, len(sets)) if np.any(keys[i] == keys[j])
    }
    assert pairs == brute
    assert {(100 + i, 130 + i) for i in range(15)} <= pairs


def test_lsh_query_finds_near_duplicates(rng):
    mh = MinHasher(100, random_state=0)
    sets = [rng.integers(0, 2**32, size=500) for _ in range(50)]
    lsh = LSHIndex(20, 5).fit(mh.signatures(sets))
    q = np.concatenate([sets[17][:450], rng.integers(0, 2**32, size=30)])
    ids, counts = lsh.query_counts(mh.signature(q))
    assert ids[np.argmax(counts)] == 17


def test_lsh_bad_shapes():
    with pytest.raises(ParameterError, match="b\\*r must equal"):
        LSHIndex(7, 3).fit(np.zeros((2, 20), np.uint64))
    with pytest.raises(ParameterError, match="n_rows"):
        LSHConfig(4, 0)
    with pytest.raises(NotFittedError):
        LSHIndex(2, 2).query(np.zeros(4, np.uint64))


def test_s_curve_and_band_choice():
    assert s_curve(0.0, 20, 5) == 0.0 and s_curve(1.0, 20, 5) == 1.0
    np.testing.assert_allclose(s_curve(0.5, 20, 5), 1 - (1 - 0.5**5) ** 20)
    assert np.all(np.diff(s_curve(np.linspace(0, 1, 50), 20, 5)) >= 0)
    assert lsh_threshold(20, 5) == pytest.approx(0.549, abs=1e-3)
    for t in (0.2, 0.4, 0.6, 0.8):
        b, r = choose_bands(120, t)
        assert b * r == 120
        assert abs(lsh_threshold(b, r) - t) < 0.15, (t, b, r)
    # higher thresholds need more rows per band
    assert choose_bands(120, 0.8)[1] > choose_bands(120, 0.2)[1]
    for bad in (0, -0.1, 1.5, float("nan")):
        with pytest.raises(ParameterError, match="threshold"):
            choose_bands(100, bad)


def test_docs_state_what_the_code_does():
    """The default prime and the seed method's confidence model, as documented."""
    import inspect
    import re
    from pathlib import Path

    from scipy.stats import hypergeom

    import songmine.minhash.hashing as hashing
    from songmine.minhash.onset import _confidence

    default = inspect.signature(hashing.MinHasher).parameters["prime"].default
    assert default == hashing.MERSENNE_31 and MinHasher(4).prime == hashing.MERSENNE_31
    doc = " ".join(hashing.__doc__.split())
    assert "(2³¹−1 by default" in doc and "2⁶¹−1 by default" not in doc
    section = Path(__file__).parents[1].joinpath("docs", "minhash.md").read_text(encoding="utf-8")
    section = section.split("## 2.", 1)[1].split("## 3.", 1)[0]
    assert "Hypergeometric(u, n, m)" in section and not re.search(r"Binomial\(", section)
    # the documented formula: x = ceil(J(m+n)/(1+J)), confidence = (1 − P(X ≥ x))^N
    u, n, m, jac, n_tracks = 431, 30, 25, 0.25, 40
    x = int(np.ceil(jac * (m + n) / (1 + jac)))
    assert _confidence(jac, m, n, u, n_tracks) == pytest.approx((1 - hypergeom.sf(x - 1, u, n, m)) ** n_tracks)
