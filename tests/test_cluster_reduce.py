"""Reduction: standardise + PCA by variance threshold, TruncatedSVD, constant columns, vs scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.cluster.reduce import ReduceConfig, reduce
from songmine.errors import DataError, ParameterError


def low_rank(rng, n=2000, d=40, r=5):
    X = rng.normal(size=(n, r)) @ rng.normal(size=(r, d)) + 0.3 * rng.normal(size=(n, d))
    return X * np.exp(rng.normal(size=d)) + rng.normal(scale=10, size=d)  # wildly different units


def test_pca_matches_sklearn_and_threshold(rng):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = low_rank(rng)
    Z, red = reduce(X, config=ReduceConfig(variance=0.7))
    ref = PCA(0.7, svd_solver="full").fit(StandardScaler().fit_transform(X))
    assert red.n_components == ref.n_components_
    np.testing.assert_allclose(
        red.explained_variance_ratio[: red.n_components], ref.explained_variance_ratio_, rtol=1e-8
    )
    assert red.cumulative_variance[red.n_components - 1] > 0.7
    assert red.n_components == 1 or red.cumulative_variance[red.n_components - 2] <= 0.7
    # same subspace (up to sign): |cosines| of matching components are 1
    cos = np.abs((red.components * ref.components_).sum(axis=1))
    np.testing.assert_allclose(cos, 1, atol=1e-6)
    np.testing.assert_allclose(Z, red.transform(X), atol=1e-9)
    assert Z.shape == (len(X), red.n_components)


def test_randomized_solver_agrees(rng):
    X = low_rank(rng, n=3000, d=120, r=8)
    _, a = reduce(X, config=ReduceConfig(solver="gram", variance=0.8))
    _, b = reduce(X, config=ReduceConfig(solver="randomized", variance=0.8))
    assert a.n_components == b.n_components
    np.testing.assert_allclose(
        a.explained_variance_ratio[: a.n_components], b.explained_variance_ratio[: b.n_components], rtol=1e-4
    )


def test_svd_and_none_and_fixed(rng):
    X = np.abs(low_rank(rng))
    Z, red = reduce(X, config=ReduceConfig(method="svd", n_components=3))
    assert Z.shape[1] == 3 and red.method == "svd" and np.all(red.mean == 0)
    Z, red = reduce(X, config=ReduceConfig(method="none"))
    np.testing.assert_allclose(Z.std(axis=0), 1)


def test_constant_columns(rng):
    X = low_rank(rng, d=6)
    X[:, 2] = 7.0
    with pytest.warns(UserWarning, match="1 constant column"):
        _, red = reduce(X, columns=list("abcdef"))
    assert red.dropped_constant == ["c"] and "c" not in red.columns
    with pytest.raises(DataError, match="all 3 feature columns are constant"):
        reduce(np.ones((10, 3)))


def test_bad_input():
    with pytest.raises(DataError, match="non-finite"):
        reduce(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ParameterError, match="variance=1.5"):
        ReduceConfig(variance=1.5)
    with pytest.raises(ParameterError, match="method='ica'"):
        ReduceConfig(method="ica")


def test_spectrum_stops_at_the_rank(rng):
    """62 tracks × 518 features: at most 61 centred components carry variance, and only they are reported."""
    X = low_rank(rng, n=62, d=518, r=5)
    Z, red = reduce(X, config=ReduceConfig(variance=0.7))
    assert len(red.explained_variance_ratio) == 61
    assert red.explained_variance_ratio.min() > 1e-6 and red.cumulative_variance[-1] == pytest.approx(1.0)
    _, svd = reduce(np.abs(X), config=ReduceConfig(method="svd"))
    assert len(svd.explained_variance_ratio) == 62
    with pytest.raises(ParameterError, match="at most 61 here"):
        reduce(X, config=ReduceConfig(n_components=62))
