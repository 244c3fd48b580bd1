"""``cluster run --engine spark``: the table read, reduced, clustered and interpreted by Spark's executors
gives the local analysis (same initial centres: the same labels, sizes, pivots, genres, descriptions).

One SparkSession (local[2], loopback) for the module; without Java/pyspark the tests skip locally and
FAIL under CI=true.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import need

from songmine.cluster.synthetic import make_fma_like
from songmine.errors import EngineError

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need(False, "pyspark is not installed (pip install 'songmine[spark]')")
    from songmine.spark import get_session

    try:
        return get_session("local[2]")
    except EngineError as exc:
        need(False, f"Spark cannot start here: {exc}")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A planted FMA-like catalogue (genre with missing values, dates, listens, a language column), as
    one parquet file, with a few NaN feature cells."""
    d = tmp_path_factory.mktemp("spark-cluster")
    cat = make_fma_like(1200, n_echonest=10, k=3, seed=11)
    df = cat.full.copy()
    df.iloc[[5, 700], 40] = np.nan
    df.to_parquet(d / "full.parquet")
    return d / "full.parquet"


def assert_same_analysis(loc, rem, assignments: pd.DataFrame):
    assert rem.n_rows == loc.n_rows and rem.k == loc.k
    assert rem.plan.columns == loc.plan.columns and rem.plan.rows_used == loc.plan.rows_used
    assert rem.reduction.n_components == loc.reduction.n_components
    np.testing.assert_allclose(
        rem.reduction.explained_variance_ratio[: rem.reduction.n_components],
        loc.reduction.explained_variance_ratio[: loc.reduction.n_components],
        rtol=1e-6,
    )
    got = assignments.set_index("track_id").loc[loc.track_ids]
    np.testing.assert_array_equal(got["cluster"].to_numpy(), loc.labels)
    np.testing.assert_allclose(got["distance"].to_numpy(), loc.distances, rtol=1e-6, atol=1e-9)
    assert rem.sizes == loc.sizes
    assert rem.model["n_iter"] == loc.model["n_iter"]
    assert rem.model["inertia"] == pytest.approx(loc.model["inertia"], rel=1e-9)
    assert [v.key for v in rem.variables] == [v.key for v in loc.variables]
    for key in loc.pivots:
        for got, want in ((rem.counts[key], loc.counts[key]), (rem.pivots[key], loc.pivots[key])):
            assert [str(c) for c in got.columns] == [str(c) for c in want.columns], key
            assert list(got.index) == list(want.index), key
            np.testing.assert_allclose(got.to_numpy(dtype=float), want.to_numpy(dtype=float), rtol=1e-12)
    assert rem.representative == loc.representative
    assert rem.descriptions == loc.descriptions
    np.testing.assert_array_equal(rem.projection["labels"], loc.projection["labels"])
    np.testing.assert_allclose(rem.projection["xy"], loc.projection["xy"], rtol=1e-6, atol=1e-9)


def test_cluster_run_on_spark_gives_the_local_analysis(spark, table, tmp_path):
    from songmine.cluster.analysis import RunConfig, run
    from songmine.cluster.data import clean_features, read_table
    from songmine.cluster.reduce import reduce
    from songmine.spark.cluster import run_spark

    df = read_table(table)
    base = RunConfig(k=3, seed=3, compare_sklearn=False, compare_echonest=False, nonfinite="drop")
    # the centres given to both runs: rows of the local reduction (the Spark one agrees to rounding)
    X, _, plan = clean_features(df, nonfinite="drop")
    Z, _ = reduce(X, columns=[str(c) for c in plan.columns], config=base.reduce)
    init = Z[[0, 400, 800]] + 0.1
    cfg = dataclasses.replace(base, init=init)
    loc = run(df, config=cfg)
    out = tmp_path / "assign.parquet"
    rem = run_spark(str(table), config=cfg, session=spark, assignments=str(out), n_partitions=3)
    assert rem.labels.size == 0  # the per-row results stayed on the executors
    assert rem.warnings[0].startswith("2 NaN/inf values in 2 rows were dropped")
    assert_same_analysis(loc, rem, pd.read_parquet(out))


def test_cluster_run_cli_with_the_spark_engine(spark, table, tmp_path, capsys):
    from songmine.cli._app import main

    out = tmp_path / "a.parquet"
    # k chosen on a sample, k-means|| seeds on the executors, assignments written there
    code = main(
        [
            "cluster",
            "run",
            str(table),
            "--engine",
            "spark",
            "--master",
            "local[2]",
            "--k-range",
            "2..4",
            "--nonfinite",
            "drop",
            "-o",
            str(out),
            "--report",
            str(tmp_path / "r.html"),
            "--json",
        ]
    )
    cap = capsys.readouterr()
    assert code == 0, cap.err
    rec = json.loads(cap.out)
    assert rec["k"] == 3 and rec["model"]["engine"] == "spark" and rec["n_rows"] == 1198
    assert "uniform sample" in json.dumps(rec)
    a = pd.read_parquet(out)
    assert len(a) == 1198 and sorted(a["cluster"].unique()) == [0, 1, 2]
    assert "Pivot tables" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nonfinite", "impute"], "--nonfinite impute"),
        (["--nonfinite", "error"], "NaN/±inf feature values"),
    ],
)
def test_cluster_run_on_spark_bad_input_is_one_line(spark, table, capsys, args, message):
    from songmine.cli._app import main

    code = main(["cluster", "run", str(table), "--engine", "spark", "--master", "local[2]", "--k", "3", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_cluster_run_on_spark_refuses_duplicate_track_ids_as_local_does(spark, table, tmp_path, capsys):
    from songmine.cli._app import main

    df = pd.read_parquet(table)
    twice = pd.concat([df, df.iloc[[7]]])
    bad = tmp_path / "twice.parquet"
    twice.to_parquet(bad)
    dup = int(twice.index[7])
    for engine in (["--engine", "local"], ["--engine", "spark", "--master", "local[2]"]):
        code = main(["cluster", "run", str(bad), *engine, "--k", "3"])
        err = capsys.readouterr().err
        assert code == 2 and f"duplicate track_id {dup}" in err and "Traceback" not in err, (engine, err)


def test_cluster_run_on_spark_missing_table(spark, tmp_path, capsys):
    from songmine.cli._app import main

    code = main(["cluster", "run", str(tmp_path / "nope.parquet"), "--engine", "spark", "--master", "local[2]"])
    err = capsys.readouterr().err
    assert code == 2 and "nope.parquet" in err
