"""KMeans from scratch: hand-computed toys, equality with scikit-learn, k-means++ properties, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from songmine.cluster import KMeans, LocalEngine, get_engine, kmeans_plusplus
from songmine.cluster.engines import LloydResult, assign
from songmine.errors import ConvergenceWarning, DataError, NotFittedError, ParameterError

ALGOS = ["hamerly", "lloyd"]
DTYPES = [np.float32, np.float64]


def blobs(rng, n=600, k=4, d=5, spread=0.6, dtype=np.float64):
    centres = rng.normal(scale=4.0, size=(k, d))
    y = rng.integers(0, k, n)
    return (centres[y] + rng.normal(scale=spread, size=(n, d))).astype(dtype), y


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_toy_hand_computed(algorithm, dtype):
    # sklearn's 4-point toy: points (0,0) (0.5,0) (0.5,1) (1,1), init at (0,0) and (1,1).
    X = np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]], dtype=dtype)
    init = np.array([[0, 0], [1, 1]], dtype=dtype)
    km = KMeans(2, init=init, engine=LocalEngine(algorithm=algorithm)).fit(X)
    assert km.labels_.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(km.cluster_centers_, [[0.25, 0], [0.75, 1]])
    assert km.inertia_ == pytest.approx(4 * 0.25**2)  # each point is 0.25 from its centre
    assert km.n_iter_ == 2  # one move, then a zero shift
    assert km.cluster_centers_.dtype == dtype
    assert km.predict(np.array([[0.1, 0.1], [0.9, 0.8]], dtype=dtype)).tolist() == [0, 1]
    np.testing.assert_allclose(km.transform(X[:1]), [[0.25, np.hypot(0.75, 1)]], rtol=1e-6)


def test_ties_go_to_lower_index():
    X = np.array([[0.0], [2.0]])
    labels, d = assign(X, np.array([[1.0], [1.0], [-5.0]]))
    assert labels.tolist() == [0, 0]
    np.testing.assert_allclose(d, [1.0, 1.0])


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("k", [3, 8])
def test_equals_sklearn_same_init(rng, algorithm, k):
    from sklearn.cluster import KMeans as SKMeans

    X, _ = blobs(rng, n=3000, k=6, d=7, spread=1.5)
    init = X[rng.choice(len(X), k, replace=False)]
    ours = KMeans(k, init=init, tol=1e-6, engine=LocalEngine(algorithm=algorithm)).fit(X)
    ref = SKMeans(k, init=init, n_init=1, tol=1e-6, algorithm="lloyd").fit(X)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)


def test_float32_close_to_sklearn(rng):
    from sklearn.cluster import KMeans as SKMeans

    X, _ = blobs(rng, n=4000, k=5, d=10, spread=1.0, dtype=np.float32)
    init = X[:5].copy()
    ours = KMeans(5, init=init).fit(X)
    ref = SKMeans(5, init=init, n_init=1, algorithm="lloyd").fit(X)
    assert ours.cluster_centers_.dtype == np.float32
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-4)
    assert (ours.labels_ == ref.labels_).mean() > 0.999


def test_hamerly_equals_lloyd_iteration_by_iteration(rng):
    X, _ = blobs(rng, n=5000, k=10, d=4, spread=2.0)
    init = X[rng.choice(len(X), 10, replace=False)]
    for max_iter in (1, 3, 10, 50):
        a = LocalEngine(algorithm="lloyd").lloyd(X, init, max_iter=max_iter, tol=0.0)
        b = LocalEngine(algorithm="hamerly").lloyd(X, init, max_iter=max_iter, tol=0.0)
        assert isinstance(a, LloydResult) and a.n_iter == b.n_iter
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.centers, b.centers, rtol=1e-12, atol=1e-12)
        assert a.converged == b.converged


def test_small_blocks_same_result(rng):
    X, _ = blobs(rng, n=1000, k=3)
    init = X[:3]
    a = LocalEngine(block_rows=7).lloyd(X, init, max_iter=20, tol=0.0)
    b = LocalEngine().lloyd(X, init, max_iter=20, tol=0.0)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.centers, b.centers)


def test_recovers_blobs_and_is_reproducible(rng):
    from sklearn.metrics import adjusted_rand_score

    X, y = blobs(rng, n=2000, k=5, d=6, spread=0.5)
    a = KMeans(5, random_state=0).fit(X)
    b = KMeans(5, random_state=0).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert adjusted_rand_score(y, a.labels_) > 0.99
    r = KMeans(5, init="random", random_state=1).fit(X)  # n_init auto = 10
    assert adjusted_rand_score(y, r.labels_) > 0.99
    assert r.inertia_ == pytest.approx(float(((X - r.cluster_centers_[r.labels_]) ** 2).sum()))


def test_n_init_keeps_the_best_run(rng):
    X, _ = blobs(rng, n=800, k=8, d=2, spread=1.5)
    singles = [KMeans(8, init="random", n_init=1, random_state=s).fit(X).inertia_ for s in range(5)]
    many = KMeans(8, init="random", n_init=20, random_state=0).fit(X).inertia_
    assert many <= min(singles) + 1e-9


def test_kmeans_plusplus_properties(rng):
    X, y = blobs(rng, n=1500, k=6, d=3, spread=0.3)
    centers, idx = kmeans_plusplus(X, 6, random_state=3)
    assert len(set(idx.tolist())) == 6
    np.testing.assert_array_equal(centers, X[idx])
    # well-separated blobs: greedy ++ puts one seed in every blob, random seeding rarely does
    assert len(set(y[idx].tolist())) == 6
    c2, idx2 = kmeans_plusplus(X, 6, random_state=3)
    np.testing.assert_array_equal(idx, idx2)

    def potential(C):
        return assign(X, C)[1].sum()

    pp = np.mean([potential(kmeans_plusplus(X, 6, random_state=s)[0]) for s in range(10)])
    rnd = np.mean([potential(X[np.random.default_rng(s).choice(len(X), 6, replace=False)]) for s in range(10)])
    assert pp < rnd


def test_kmeans_plusplus_duplicate_points():
    X = np.zeros((5, 2))
    centers, idx = kmeans_plusplus(X, 3, random_state=0)
    assert len(set(idx.tolist())) == 3


def test_empty_cluster_keeps_centre_and_warns():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    init = np.array([[0.0, 0.0], [5.0, 5.0], [100.0, 100.0]])
    with pytest.warns(ConvergenceWarning, match="empty"):
        km = KMeans(3, init=init).fit(X)
    np.testing.assert_allclose(km.cluster_centers_[2], [100.0, 100.0])
    assert km.labels_.tolist() == [0, 0, 1, 1]


def test_max_iter_warns_not_converged(rng):
    X, _ = blobs(rng, n=2000, k=10, d=2, spread=3.0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        km = KMeans(10, init="random", n_init=1, max_iter=1, tol=0.0, random_state=0).fit(X)
    assert km.n_iter_ == 1 and not km.converged_


def test_tol_is_relative_to_variance(rng):
    X, _ = blobs(rng, n=1000, k=3)
    init = X[:3]
    a = KMeans(3, init=init, tol=1e-3).fit(X)
    b = KMeans(3, init=init * 1000, tol=1e-3).fit(X * 1000)
    assert a.n_iter_ == b.n_iter_


def test_not_fitted_and_bad_params(rng):
    X, _ = blobs(rng, n=50, k=2)
    with pytest.raises(NotFittedError):
        KMeans(2).predict(X)
    with pytest.raises(ParameterError, match="n_clusters=0"):
        KMeans(0).fit(X)
    with pytest.raises(ParameterError, match="n_clusters=51 must be in \\[1, n_samples=50\\]"):
        KMeans(51).fit(X)
    with pytest.raises(ParameterError, match="init='kmeans'"):
        KMeans(2, init="kmeans").fit(X)
    with pytest.raises(ParameterError, match="shape=\\(3, 5\\)"):
        KMeans(2, init=np.zeros((3, 5))).fit(X)
    with pytest.raises(ParameterError, match="n_init=0"):
        KMeans(2, n_init=0).fit(X)
    with pytest.raises(ParameterError, match="max_iter"):
        KMeans(2, max_iter=0).fit(X)
    with pytest.raises(ParameterError, match="tol=-1"):
        KMeans(2, tol=-1).fit(X)
    with pytest.raises(ParameterError, match="engine='gpu'"):
        KMeans(2, engine="gpu").fit(X)
    with pytest.raises(ParameterError, match="random_state"):
        KMeans(2, random_state="x").fit(X)
    with pytest.warns(RuntimeWarning, match="n_init=5 reduced to 1"):
        KMeans(2, init=X[:2], n_init=5).fit(X)
    km = KMeans(2, random_state=0).fit(X)
    with pytest.raises(DataError, match="X has 3 features, but KMeans is expecting 5 features"):
        km.predict(X[:, :3])


def test_bad_data():
    with pytest.raises(DataError, match="1 NaN and 1 ±inf values in 2 rows"):
        KMeans(2).fit(np.array([[0.0, np.nan], [1.0, 1.0], [np.inf, 2.0]]))
    with pytest.raises(DataError, match="Expected 2D array, got 1D array"):
        KMeans(2).fit(np.arange(5.0))
    with pytest.raises(DataError, match="could not convert string to float: 'a'"):
        KMeans(1).fit(np.array([["a", "b"]], dtype=object))
    with pytest.raises(DataError, match=r"Found array with 0 sample\(s\)"):
        KMeans(1).fit(np.zeros((0, 3)))
    with pytest.raises(DataError, match=r"0 feature\(s\)"):
        KMeans(1).fit(np.zeros((4, 0)))


def test_get_engine():
    assert get_engine("local").name == "local"
    assert get_engine("local", algorithm="lloyd").algorithm == "lloyd"
    with pytest.raises(ParameterError, match="'mapreduce'"):
        get_engine("mapreduce")
    with pytest.raises(ParameterError, match="algorithm='elkan'"):
        get_engine("local", algorithm="elkan")


def test_engine_max_iter_zero_returns_initial_assignment(rng):
    X, _ = blobs(rng, n=100, k=2)
    res = LocalEngine().lloyd(X, X[:2], max_iter=0, tol=0.0)
    assert res.n_iter == 0 and not res.converged
    np.testing.assert_array_equal(res.centers, X[:2])
    np.testing.assert_array_equal(res.labels, assign(X, X[:2])[0])


def test_no_warning_on_clean_fit(rng):
    X, _ = blobs(rng, n=500, k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KMeans(3, random_state=0).fit(X)
