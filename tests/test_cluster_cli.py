"""`songmine cluster choose-k` and `cluster run` end to end on a small planted catalogue."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from songmine.cli._app import main
from songmine.cluster.synthetic import make_fma_like


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    cat = make_fma_like(1500, n_echonest=600, k=3, seed=5)
    cat.full.to_parquet(d / "full.parquet")
    cat.echonest.to_csv(d / "echonest.csv")  # CSV with a track_id column
    cat.truth.reset_index().to_csv(d / "truth.csv", index=False)
    return d, cat


def run_cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_choose_k_json_and_plot(tables, capsys):
    d, _ = tables
    code, out, err = run_cli(
        capsys,
        "cluster",
        "choose-k",
        str(d / "full.parquet"),
        "--k-range",
        "2..5",
        "--json",
        "--plot",
        str(d / "k.png"),
    )
    assert code == 0, err
    rec = json.loads(out)
    assert rec["recommended_k"] == 3 and len(rec["table"]) == 4
    assert (d / "k.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_run_report_assignments_json(tables, capsys):
    d, cat = tables
    code, out, err = run_cli(
        capsys,
        "cluster",
        "run",
        str(d / "echonest.csv"),
        "--k",
        "3",
        "--seed",
        "1",
        "--compare",
        str(d / "full.parquet"),
        "--report",
        str(d / "r.html"),
        "-o",
        str(d / "a.parquet"),
        "--planted",
        str(d / "truth.csv"),
        "--json",
    )
    assert code == 0, err
    rec = json.loads(out)
    assert rec["k"] == 3 and rec["inputs"]["n_echonest_columns"] == 232
    assert rec["planted_truth"]["ari"] > 0.95
    for piv in rec["pivots_percent_by_column"].values():
        sums = np.array(list(piv["rows"].values())).sum(axis=0)
        np.testing.assert_allclose(sums, 100)
    a = pd.read_parquet(d / "a.parquet")
    assert len(a) == 600 and a["track_id"].isin(cat.echonest.index).all()
    html = (d / "r.html").read_text()
    assert "With vs without echonest" in html and "Pivot tables" in html


@pytest.mark.parametrize(
    "args, message",
    [
        (["--k", "0"], "k=0"),
        (["--k", "999999"], "must be <= the number of rows"),
        (["--genre-column", "style"], "genre column 'style'"),
        (["--engine", "gpu"], "'gpu'"),
        (["--nonfinite", "zero"], "nonfinite='zero'"),
    ],
)
def test_bad_input_exit_2(tables, capsys, args, message):
    d, _ = tables
    code, out, err = run_cli(capsys, "cluster", "run", str(d / "full.parquet"), "--no-sklearn", *args)
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_missing_table_and_nan(tables, capsys, tmp_path):
    code, _, err = run_cli(capsys, "cluster", "run", str(tmp_path / "nope.parquet"))
    assert code == 2 and "no such file" in err
    d, cat = tables
    df = cat.full.iloc[:300].copy()
    df.iloc[0, df.columns.get_loc("features.mfcc.mean.01")] = np.nan
    df.to_parquet(tmp_path / "nan.parquet")
    code, _, err = run_cli(capsys, "cluster", "choose-k", str(tmp_path / "nan.parquet"))
    assert code == 2 and "1 NaN/±inf feature values in 1 of 300 rows" in err and "--nonfinite" in err
    code, out, err = run_cli(
        capsys,
        "cluster",
        "choose-k",
        str(tmp_path / "nan.parquet"),
        "--nonfinite",
        "drop",
        "--k-range",
        "2..4",
        "--json",
    )
    assert code == 0 and json.loads(out)["inputs"]["rows_used"] == 299


def test_help():
    assert main(["cluster", "--help"]) == 0
    assert main(["cluster", "run", "--help"]) == 0


def test_choose_k_narrows_the_range_on_a_small_table(tables, capsys, tmp_path):
    _, cat = tables
    cat.full.iloc[:8].to_parquet(tmp_path / "eight.parquet")
    code, out, err = run_cli(capsys, "cluster", "choose-k", str(tmp_path / "eight.parquet"), "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["k_values"] == list(range(2, 8)) and [r["k"] for r in rec["table"]] == list(range(2, 8))
    assert rec["k_range_note"] == "k range narrowed to 2..7: the table has 8 rows, and k must be at most n − 1 = 7"
    code, out, err = run_cli(capsys, "cluster", "choose-k", str(tmp_path / "eight.parquet"))
    assert code == 0 and "k range narrowed to 2..7" in err and "recommended k =" in out
    code, out, err = run_cli(capsys, "cluster", "run", str(tmp_path / "eight.parquet"), "--no-sklearn")
    assert code == 0 and "k range narrowed to 2..7" in err
    cat.full.iloc[:4].to_parquet(tmp_path / "four.parquet")
    code, _, err = run_cli(capsys, "cluster", "choose-k", str(tmp_path / "four.parquet"))
    assert code == 2 and "leaves 2 value(s) of k <= n_samples−1 = 3" in err and err.count("\n") == 1


def test_choose_k_reports_dropped_constant_columns_as_a_note(tables, capsys, tmp_path):
    _, cat = tables
    df = cat.full.iloc[:200].copy()
    df["features.mfcc.mean.01"] = 1.0
    df.to_parquet(tmp_path / "const.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stray Python warning would be printed raw on stderr
        code, out, err = run_cli(capsys, "cluster", "choose-k", str(tmp_path / "const.parquet"), "--k-range", "2..4")
    assert code == 0 and "note: 1 constant column(s) dropped: ['features.mfcc.mean.01']" in err
    code, out, err = run_cli(
        capsys, "cluster", "choose-k", str(tmp_path / "const.parquet"), "--k-range", "2..4", "--json"
    )
    assert code == 0 and err == "" and json.loads(out)["reduction"]["dropped_constant"] == ["features.mfcc.mean.01"]
