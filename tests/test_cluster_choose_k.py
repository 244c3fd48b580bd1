"""Choosing k: metrics equal scikit-learn's, the knee, and a planted k is recovered."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.cluster.choose_k import (
    ChooseKConfig,
    calinski_harabasz_score,
    choose_k,
    davies_bouldin_score,
    gap_choice,
    knee,
    parse_k_range,
    silhouette_score,
)
from songmine.errors import ParameterError


@pytest.fixture
def planted(rng):
    centres = rng.normal(scale=6, size=(4, 5))
    y = rng.integers(0, 4, 1500)
    return centres[y] + rng.normal(size=(1500, 5)), y


def test_metrics_equal_sklearn(planted, rng):
    from sklearn import metrics

    X, y = planted
    lab = np.where(rng.random(len(y)) < 0.1, (y + 1) % 4, y)
    assert silhouette_score(X, lab) == pytest.approx(metrics.silhouette_score(X, lab), rel=1e-9)
    assert calinski_harabasz_score(X, lab) == pytest.approx(metrics.calinski_harabasz_score(X, lab), rel=1e-9)
    assert davies_bouldin_score(X, lab) == pytest.approx(metrics.davies_bouldin_score(X, lab), rel=1e-9)


def test_knee():
    ks = list(range(1, 9))
    inertia = [100, 40, 12, 10, 9, 8.5, 8, 7.6]
    assert ks[knee(ks, inertia)] == 3


def test_recovers_planted_k(planted):
    X, y = planted
    res = choose_k(
        X, config=ChooseKConfig(k_values=tuple(range(2, 9)), n_init=5, gap_sample=800, silhouette_sample=800)
    )
    assert res.recommended_k == 4 and res.votes["gap"] == 4 and res.evidence == "clear"
    assert res.rule == "gap" and "k=4: the gap statistic's choice" in res.reason and "1-SE" in res.reason
    assert res.gap_one < res.gap[res.k_values.index(4)] - 0.3  # four blobs beat one by far
    assert [r["k"] for r in res.table()] == list(range(2, 9))
    assert np.all(np.diff(res.inertia) < 0)
    d = res.to_dict()
    assert d["evidence"] == "clear" and set(d["gap_k1"]) == {"gap", "gap_sd"}


def test_majority_rule_still_available(planted):
    X, _ = planted
    res = choose_k(
        X,
        config=ChooseKConfig(
            k_values=tuple(range(2, 9)), n_init=5, gap_sample=800, silhouette_sample=800, rule="majority"
        ),
    )
    assert res.recommended_k == 4
    assert sum(v == 4 for v in res.votes.values()) >= 3
    assert "k=4" in res.reason and "ties go to the smaller k" in res.reason


def test_one_gaussian_has_no_structure(rng):
    X = rng.normal(size=(2000, 6)) * np.array([3.0, 2.0, 1.5, 1.0, 1.0, 0.5])
    res = choose_k(
        X, config=ChooseKConfig(k_values=tuple(range(2, 8)), n_init=3, gap_sample=1000, silhouette_sample=800)
    )
    assert res.votes["gap"] == 1 and res.evidence == "none"
    assert res.recommended_k == 2  # the smallest k tried, flagged as such
    assert "no cluster structure" in res.reason and "Evidence: none" in res.reason


def test_gap_choice_is_the_1se_rule():
    ks = [1, 2, 3, 4, 5]
    assert gap_choice(ks, [0.1, 0.5, 0.9, 0.88, 0.95], [0.01] * 5) == 3  # 0.9 >= 0.88 - 0.01
    assert gap_choice(ks, [0.1, 0.5, 0.9, 0.95, 0.955], [0.01] * 5) == 4  # 0.95 >= 0.955 - 0.01
    assert gap_choice(ks, [0.5, 0.49, 0.51, 0.5, 0.4], [0.02] * 5) == 1
    assert gap_choice(ks, [0.1, 0.2, 0.3, 0.4, 0.5], [0.01] * 5) == 5  # still rising: the largest k


def test_parse_and_bad_config():
    assert parse_k_range("2..5") == [2, 3, 4, 5]
    assert parse_k_range("8,3,5") == [3, 5, 8]
    with pytest.raises(ParameterError, match="'2-5'"):
        parse_k_range("2-5")
    with pytest.raises(ParameterError, match=">= 1"):
        parse_k_range("0..3")
    with pytest.raises(ParameterError, match="at least 3"):
        ChooseKConfig(k_values=(2, 3))
    with pytest.raises(ParameterError, match="rule='vote'"):
        ChooseKConfig(rule="vote")
    with pytest.raises(ParameterError, match="n_samples=5"):  # 2, 3 left: fewer than three
        choose_k(np.random.default_rng(0).normal(size=(5, 2)), config=ChooseKConfig(k_values=(2, 3, 6)))
