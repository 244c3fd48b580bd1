"""The Spark engine: same results as the local engine, MLlib's inertia, bounded failures.

One SparkSession (local[2], loopback) is shared by every test (session-scoped
fixture). Without Java/pyspark the tests skip locally and FAIL under CI=true.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from conftest import need

from songmine.errors import ConvergenceWarning, DataError, EngineError, ParameterError

pytestmark = pytest.mark.spark


@pytest.fixture(scope="session")
def spark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need(False, "pyspark is not installed (pip install 'songmine[spark]')")
    from songmine.spark import get_session

    try:
        session = get_session("local[2]")
    except EngineError as exc:
        need(False, f"Spark cannot start here: {exc}")
    yield session
    # left running for the rest of the test session; the JVM exits with pytest


@pytest.fixture(scope="module")
def blobs():
    """Four Gaussian blobs in 5-D, 3,000 rows, float64, and initial centres drawn from the rows."""
    g = np.random.default_rng(7)
    means = g.normal(scale=4.0, size=(4, 5))
    X = np.concatenate([m + g.normal(size=(750, 5)) for m in means])
    X = X[g.permutation(len(X))]
    init = X[g.choice(len(X), 4, replace=False)].copy()
    return X, init


@pytest.fixture(scope="module")
def near_means(blobs):
    """Initial centres close to the blob means: Lloyd converges in a few iterations (few Spark jobs)."""
    from songmine.cluster.engines import LocalEngine

    X, init = blobs
    done = LocalEngine().lloyd(X, init, max_iter=100, tol=0.0)
    return done.centers + np.random.default_rng(1).normal(scale=0.3, size=done.centers.shape)


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.parametrize("reducer, n_iter", [("tree", 5), ("by-key", 2)])
def test_same_result_as_local_engine(spark, blobs, reducer, n_iter):
    from songmine.cluster.engines import LocalEngine
    from songmine.spark.kmeans import SparkEngine

    X, init = blobs
    spark_res = SparkEngine(n_partitions=3, reducer=reducer).lloyd(X, init, max_iter=n_iter, tol=0.0)
    for algorithm in ("lloyd", "hamerly"):
        local = LocalEngine(algorithm=algorithm).lloyd(X, init, max_iter=n_iter, tol=0.0)
        assert spark_res.n_iter == local.n_iter == n_iter
        assert rel(spark_res.centers, local.centers) < 1e-9
        assert np.array_equal(spark_res.labels, local.labels)
        assert spark_res.inertia == pytest.approx(local.inertia, rel=1e-9)
        assert spark_res.converged == local.converged


def test_same_convergence_point_with_tolerance(spark, blobs, near_means):
    from songmine.cluster.engines import LocalEngine
    from songmine.spark.kmeans import SparkEngine

    X, _ = blobs
    init = near_means
    tol = 1e-6 * float(np.var(X, axis=0).mean())
    local = LocalEngine().lloyd(X, init, max_iter=100, tol=tol)
    res = SparkEngine().lloyd(X, init, max_iter=100, tol=tol)
    assert local.converged and res.converged
    assert res.n_iter == local.n_iter
    assert rel(res.centers, local.centers) < 1e-9
    assert np.array_equal(res.labels, local.labels)


def test_float32_and_empty_cluster_rule(spark, blobs):
    from songmine.cluster.engines import LocalEngine
    from songmine.spark.kmeans import SparkEngine

    X, init = blobs
    X32 = X.astype(np.float32)
    init = init.astype(np.float32).copy()
    init[3] = 1e4  # no point is ever nearest: the cluster stays empty and keeps its centre
    with pytest.warns(ConvergenceWarning, match="empty clusters"):
        res = SparkEngine().lloyd(X32, init, max_iter=2, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        local = LocalEngine(algorithm="lloyd").lloyd(X32, init, max_iter=2, tol=0.0)
    assert res.centers.dtype == np.float32
    assert np.array_equal(res.centers[3], init[3])
    assert np.array_equal(res.labels, local.labels)
    assert rel(res.centers, local.centers) < 1e-5  # float32 sums in another order


def test_kmeans_estimator_with_spark_engine(spark, blobs, near_means):
    from songmine.cluster import KMeans, get_engine

    X, _ = blobs
    init = near_means
    engine = get_engine("spark")
    assert engine.name == "spark"
    a = KMeans(4, init=init, engine=engine, max_iter=50).fit(X)
    b = KMeans(4, init=init, engine="local", max_iter=50).fit(X)
    assert a.n_iter_ == b.n_iter_
    assert np.array_equal(a.labels_, b.labels_)
    assert rel(a.cluster_centers_, b.cluster_centers_) < 1e-9


def test_inertia_matches_mllib_seeded_with_initial_model(spark, blobs):
    from pyspark.mllib.clustering import KMeans as MLlibKMeans
    from pyspark.mllib.clustering import KMeansModel

    from songmine.spark.kmeans import SparkEngine

    X, init = blobs
    ours = SparkEngine().lloyd(X, init, max_iter=4, tol=0.0)
    rdd = spark.sparkContext.parallelize([row for row in X], 2).cache()
    model = MLlibKMeans.train(rdd, 4, maxIterations=4, initialModel=KMeansModel([c for c in init]), epsilon=0.0)
    mllib_cost = model.computeCost(rdd)
    rdd.unpersist()
    assert ours.inertia == pytest.approx(mllib_cost, rel=5e-3)


def test_kmeans_parallel_init_is_good(spark, blobs, near_means):
    from songmine.cluster.engines import LocalEngine
    from songmine.spark.kmeans import SparkEngine

    X, _ = blobs
    c1 = SparkEngine(n_partitions=3).init_centers(X, 4, random_state=3)
    assert c1.shape == (4, 5) and np.unique(c1, axis=0).shape[0] == 4
    # well-separated blobs: k-means|| seeds one centre per blob, Lloyd then reaches the optimum
    res = LocalEngine().lloyd(X, c1, max_iter=100, tol=0.0)
    best = LocalEngine().lloyd(X, near_means, max_iter=100, tol=0.0)
    assert res.inertia == pytest.approx(best.inertia, rel=1e-6)


def test_estimator_seeds_with_kmeans_parallel_on_spark(spark, blobs, near_means, monkeypatch):
    from songmine.cluster import KMeans
    from songmine.cluster.engines import LocalEngine
    from songmine.spark.kmeans import SparkEngine

    X, _ = blobs
    engine = SparkEngine(n_partitions=2)
    calls = []
    original = engine.init_centers
    monkeypatch.setattr(engine, "init_centers", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    km = KMeans(4, init="k-means++", n_init=1, tol=0.0, random_state=0, engine=engine).fit(X)
    assert calls == [1]  # k-means|| on Spark, not k-means++ on the driver
    best = LocalEngine().lloyd(X, near_means, max_iter=100, tol=0.0)
    assert km.inertia_ == pytest.approx(best.inertia, rel=1e-6)


def test_parquet_table_read_by_spark(spark, blobs, tmp_path):
    import pandas as pd

    from songmine.cluster.engines import LocalEngine
    from songmine.spark.kmeans import fit_parquet

    X, init = blobs
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    df.insert(0, "track_id", np.arange(len(X)) * 10)
    for i, start in enumerate(range(0, len(df), 1000)):  # a folder of parquet files, as Spark writes them
        df.iloc[start : start + 1000].to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    res, ids = fit_parquet(str(tmp_path), 4, id_column="track_id", init=init, max_iter=3, tol=0.0)
    local = LocalEngine().lloyd(X[ids // 10], init, max_iter=3, tol=0.0)
    assert sorted(ids.tolist()) == df["track_id"].tolist()
    assert np.array_equal(res.labels, local.labels)
    assert rel(res.centers, local.centers) < 1e-9
    with pytest.raises(DataError, match="cannot read parquet"):
        fit_parquet(str(tmp_path / "missing"), 4)


def test_unreachable_master_fails_fast_and_keeps_the_session(spark):
    from songmine.spark import get_session

    t0 = time.perf_counter()
    with pytest.raises(EngineError, match="not reachable"):
        get_session("spark://127.0.0.1:9", settings=None)
    assert time.perf_counter() - t0 < 15
    assert get_session() is spark  # the working session was not stopped


def test_missing_java_is_a_clear_error(spark, monkeypatch, tmp_path):
    from songmine.spark import find_java, get_session

    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(EngineError, match="Java 17"):
        find_java()
    with pytest.raises(EngineError, match="Java"):
        get_session("local[1]")
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match="Java not found"):
        find_java()


def test_worker_failure_and_hung_job_are_bounded(spark):
    from songmine.spark import run_job

    sc = spark.sparkContext
    # (stdlib functions as task bodies: workers cannot import this test module)
    with pytest.raises(EngineError, match="a failing job failed: ValueError: invalid literal for int"):
        run_job(spark, lambda: sc.parallelize(["1", "x"], 2).map(int).collect(), timeout_s=120, what="a failing job")
    t0 = time.perf_counter()
    with pytest.raises(EngineError, match="did not finish within 3 s"):
        run_job(spark, lambda: sc.parallelize([600], 1).map(time.sleep).collect(), timeout_s=3, what="a hung job")
    assert time.perf_counter() - t0 < 30
    assert sc.parallelize([1, 2, 3], 1).sum() == 6  # still usable


def test_bad_parameters():
    from songmine.spark import SparkSettings
    from songmine.spark.kmeans import SparkEngine

    with pytest.raises(ParameterError, match="reducer"):
        SparkEngine(reducer="fast")
    with pytest.raises(ParameterError, match="n_partitions"):
        SparkEngine(n_partitions=0)
    with pytest.raises(ParameterError, match="master"):
        SparkSettings(master="localhost[2]")


def test_features_as_a_spark_job_match_local(spark, tmp_path, synth_music):
    import soundfile as sf

    from songmine.catalog.features import extract_folder
    from songmine.spark.features import extract_folder_spark

    paths = {}
    for i in range(2):
        p = tmp_path / f"t{i}.wav"
        sf.write(p, synth_music(sr=22050, seconds=4.0, seed=i), 22050)
        paths[f"t{i}.wav"] = str(p)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    paths["bad.wav"] = str(tmp_path / "bad.wav")
    local, local_fail = extract_folder(paths)
    got, fails = extract_folder_spark(paths, n_partitions=2)
    assert list(got.index) == list(local.index) == ["t0.wav", "t1.wav"]
    assert got.shape == (2, 518)
    np.testing.assert_allclose(got.to_numpy(), local.to_numpy(), rtol=1e-5, atol=1e-6)
    assert [(f.track_id, f.error) for f in fails] == [(f.track_id, f.error) for f in local_fail]
    assert fails[0].track_id == "bad.wav"
