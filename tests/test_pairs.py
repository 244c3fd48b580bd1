"""Pairs with a given sum: the exercise's example, edge cases, and properties vs brute force."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from songmine.errors import DataError, ParameterError
from songmine.pairs import count_pairs, iter_index_pairs, pairs_with_sum, parse_int, parse_integers

EXAMPLE = [7, -2, 8, 2, 6, 4, -7, 2, 1, 3, -3]
METHODS = ["hash", "sort"]


# ---------------------------------------------------------------- the reference (tests only)


def brute_force(values: list[int], s: int, mode: str) -> list[tuple[int, int]]:
    """O(n²): every i < j, checked one by one."""
    n = len(values)
    idx = [(i, j) for i in range(n) for j in range(i + 1, n) if values[i] + values[j] == s]
    if mode == "indices":
        return idx
    return sorted({(min(values[i], values[j]), max(values[i], values[j])) for i, j in idx})


def as_tuples(arr: np.ndarray) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in arr.tolist()]


# ---------------------------------------------------------------- hand-computed cases


@pytest.mark.parametrize("method", METHODS)
def test_brief_example(method):
    got = pairs_with_sum(np.array(EXAMPLE), 4, method=method)
    assert got.dtype == np.int64 and got.shape == (4, 2)
    assert as_tuples(got) == [(-3, 7), (-2, 6), (1, 3), (2, 2)]
    assert count_pairs(EXAMPLE, 4, method=method) == 4


@pytest.mark.parametrize("method", METHODS)
def test_half_once_vs_twice(method):
    assert as_tuples(pairs_with_sum([2, 5], 4, method=method)) == []
    assert as_tuples(pairs_with_sum([2, 5, 2], 4, method=method)) == [(2, 2)]
    assert as_tuples(pairs_with_sum([2, 5, 2], 4, mode="indices", method=method)) == [(0, 2)]
    # odd target: no value equals s/2
    assert as_tuples(pairs_with_sum([2, 2, 3], 5, method=method)) == [(2, 3)]


@pytest.mark.parametrize("method", METHODS)
def test_empty_and_single(method):
    for vals in ([], [4]):
        for mode in ("values", "indices"):
            got = pairs_with_sum(np.array(vals, dtype=np.int64), 4, mode=mode, method=method)
            assert got.shape == (0, 2)
            assert count_pairs(vals, 4, mode=mode, method=method) == 0
            assert list(iter_index_pairs(vals, 4, method=method)) == []


@pytest.mark.parametrize("method", METHODS)
def test_negative_values_and_target(method):
    vals = [-5, -1, -4, 0, -9, 4, -3]
    assert as_tuples(pairs_with_sum(vals, -5, method=method)) == [(-9, 4), (-5, 0), (-4, -1)]


@pytest.mark.parametrize("method", METHODS)
def test_indices_duplicates(method):
    vals = [1, 3, 3, 2, 2, 1]
    assert as_tuples(pairs_with_sum(vals, 4, mode="indices", method=method)) == [(0, 1), (0, 2), (1, 5), (2, 5), (3, 4)]
    assert count_pairs(vals, 4, mode="indices", method=method) == 5


def test_beyond_int64_on_hashing_path():
    big = 2**70
    vals = [big, 3, -big + 10, 7, 2**64, -(2**64) + 10]
    got = pairs_with_sum(vals, 10)
    assert got.dtype == object
    assert [tuple(p) for p in got.tolist()] == [(-big + 10, big), (-(2**64) + 10, 2**64), (3, 7)]
    assert as_tuples(pairs_with_sum(vals, 10, mode="indices")) == [(0, 2), (1, 3), (4, 5)]
    with pytest.raises(ParameterError, match="int64"):
        pairs_with_sum(vals, 10, method="sort")


@pytest.mark.parametrize("method", METHODS)
def test_int64_edges_and_target_outside_int64(method):
    hi, lo = 2**63 - 1, -(2**63)
    vals = np.array([hi, lo, 1, hi, -1, 0], dtype=np.int64)
    assert as_tuples(pairs_with_sum(vals, 2**64 - 2, method=method)) == [(hi, hi)]
    assert as_tuples(pairs_with_sum(vals, -(2**63), method=method)) == [(lo, 0)]
    assert as_tuples(pairs_with_sum(vals, -1, method=method)) == [(lo, hi), (-1, 0)]
    assert as_tuples(pairs_with_sum(vals, 2**65, method=method)) == []


def test_uint64_beyond_int64_uses_python_ints():
    vals = np.array([2**64 - 1, 1, 5], dtype=np.uint64)
    assert [tuple(p) for p in pairs_with_sum(vals, 2**64).tolist()] == [(1, 2**64 - 1)]


def test_quadratic_index_pairs_are_counted_not_built():
    vals = np.full(200_000, 7, dtype=np.int64)
    assert count_pairs(vals, 14, mode="indices") == 200_000 * 199_999 // 2
    with pytest.raises(ParameterError, match="max_pairs"):
        pairs_with_sum(vals, 14, mode="indices")
    first = next(iter_index_pairs(vals, 14, chunk_size=1000))
    assert first.shape == (199_999, 2)  # one index's partners are never split
    assert as_tuples(first[:3]) == [(0, 1), (0, 2), (0, 3)]


def test_chunks_concatenate_to_the_sorted_answer(rng):
    vals = rng.integers(-20, 20, 3000)
    whole = pairs_with_sum(vals, 3, mode="indices")
    blocks = list(iter_index_pairs(vals, 3, chunk_size=500))
    assert len(blocks) > 1 and all(len(b) <= 500 for b in blocks)
    assert np.array_equal(np.concatenate(blocks), whole)


def test_auto_picks_sort_for_large_arrays_and_agrees(rng):
    vals = rng.integers(-(10**6), 10**6, 50_000)
    auto = pairs_with_sum(vals, 12_345)
    assert np.array_equal(auto, pairs_with_sum(vals, 12_345, method="hash"))
    assert np.array_equal(auto, pairs_with_sum(vals, 12_345, method="sort"))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(values=[1.5, 2], s=3), "not an integer"),
        (dict(values=np.array([1.0, 2.0]), s=3), "dtype float64"),
        (dict(values=np.zeros((2, 2), dtype=int), s=3), "1-D"),
        (dict(values=[1, 2], s=3.0), "s=3.0"),
        (dict(values=[1, 2], s=3, mode="pairs"), "mode='pairs'"),
        (dict(values=[1, 2], s=3, method="fast"), "method='fast'"),
        (dict(values="12", s=3), "string"),
    ],
)
def test_bad_input_is_a_parameter_error(bad, match):
    with pytest.raises(ParameterError, match=match):
        pairs_with_sum(**bad)


# ---------------------------------------------------------------- properties vs brute force

small_ints = st.lists(st.integers(-12, 12), max_size=40)
wide_ints = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=30)


@settings(max_examples=150, deadline=None)
@given(values=small_ints, s=st.integers(-26, 26), method=st.sampled_from(METHODS))
def test_property_values_mode(values, s, method):
    assert as_tuples(pairs_with_sum(np.array(values, dtype=np.int64), s, method=method)) == brute_force(
        values, s, "values"
    )


@settings(max_examples=150, deadline=None)
@given(values=small_ints, s=st.integers(-26, 26), method=st.sampled_from(METHODS), chunk=st.integers(1, 7))
def test_property_indices_mode(values, s, method, chunk):
    ref = brute_force(values, s, "indices")
    arr = np.array(values, dtype=np.int64)
    assert as_tuples(pairs_with_sum(arr, s, mode="indices", method=method)) == ref
    assert count_pairs(arr, s, mode="indices", method=method) == len(ref)
    streamed = [p for b in iter_index_pairs(arr, s, chunk_size=chunk, method=method) for p in as_tuples(b)]
    assert streamed == ref


@settings(max_examples=100, deadline=None)
@given(values=wide_ints, data=st.data(), method=st.sampled_from(METHODS))
def test_property_full_int64_range(values, data, method):
    # a target that is a real sum of two elements when possible (else random), even outside int64
    if len(values) >= 2:
        i, j = data.draw(st.integers(0, len(values) - 1)), data.draw(st.integers(0, len(values) - 1))
        s = values[i] + values[j]
    else:
        s = data.draw(st.integers(-(2**64), 2**64))
    arr = np.array(values, dtype=np.int64)
    for mode in ("values", "indices"):
        assert as_tuples(pairs_with_sum(arr, s, mode=mode, method=method)) == brute_force(values, s, mode)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-(2**80), 2**80) | st.integers(-5, 5), max_size=25))
def test_property_python_bigints(values):
    s = values[0] + values[-1] if len(values) >= 2 else 0
    for mode in ("values", "indices"):
        got = [tuple(int(x) for x in p) for p in pairs_with_sum(values, s, mode=mode).tolist()]
        assert got == brute_force(values, s, mode)


# ---------------------------------------------------------------- CLI


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    exe = [sys.executable, "-c", "import sys; from songmine.cli import main; sys.argv[0]='songmine'; main()"]
    return subprocess.run([*exe, *args], input=stdin, capture_output=True, timeout=60)


def test_cli_text_stdin_and_json():
    text = ", ".join(map(str, EXAMPLE)).encode()
    r = run_cli("pairs", "--sum", "4", stdin=text)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split("\n")[:-1] == ["-3 7", "-2 6", "1 3", "2 2"]
    r = run_cli("pairs", "--sum", "4", "-", "--json", stdin=text)
    assert json.loads(r.stdout) == {"sum": 4, "mode": "values", "count": 4, "pairs": [[-3, 7], [-2, 6], [1, 3], [2, 2]]}


def test_cli_npy_count_and_indices(tmp_path, rng):
    vals = rng.integers(-50, 50, 5000)
    path = tmp_path / "v.npy"
    np.save(path, vals)
    r = run_cli("pairs", "--sum", "7", str(path), "--count", "--indices", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["count"] == count_pairs(vals, 7, mode="indices")
    r = run_cli("pairs", "--sum", "7", str(path), "--indices")
    lines = r.stdout.decode().splitlines()
    assert lines == [f"{i} {j}" for i, j in pairs_with_sum(vals, 7, mode="indices").tolist()]


def test_cli_bad_token_names_line_and_token(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("1 2 3\n4, 5\n6 seven 8\n")
    r = run_cli("pairs", "--sum", "4", str(path))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "line 3" in err and "'seven'" in err and len(err.strip().splitlines()) == 1


def test_cli_missing_file_and_float_npy(tmp_path):
    r = run_cli("pairs", "--sum", "4", str(tmp_path / "nope.txt"))
    assert r.returncode == 2 and "nope.txt" in r.stderr.decode()
    np.save(tmp_path / "f.npy", np.ones(3))
    r = run_cli("pairs", "--sum", "4", str(tmp_path / "f.npy"))
    assert r.returncode == 2 and "integer" in r.stderr.decode()


def test_cli_big_ints_in_text():
    r = run_cli("pairs", "--sum", "9", "--json", stdin=b"99999999999999999999999\n-99999999999999999999990\n")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pairs"] == [[-99999999999999999999990, 99999999999999999999999]]


# ---------------------------------------------------------------- one rule for what an integer is


def test_api_and_cli_refuse_a_float_target_alike():
    with pytest.raises(
        ParameterError, match=r"s=4.0 is not an integer: floats are refused, even whole ones \(pass 4\)"
    ):
        pairs_with_sum([1, 3], 4.0)
    with pytest.raises(ParameterError, match="s=True is a bool"):
        pairs_with_sum([1, 3], True)
    with pytest.raises(ParameterError, match="value=False is a bool"):
        pairs_with_sum([1, False, 3], 4)
    assert pairs_with_sum([1, 3], np.int16(4)).tolist() == [[1, 3]]
    r = run_cli("pairs", "--sum", "4.0", stdin=b"1 3 2 2")
    assert r.returncode == 2
    assert r.stderr.decode() == "songmine: error: --sum: not an integer: '4.0' (no decimal point or exponent)\n"
    r = run_cli("pairs", "--sum", "-4", stdin=b"1 -5 -2 -2")
    assert r.returncode == 0 and r.stdout.decode().splitlines() == ["-5 1", "-2 -2"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("1_000 3", "line 1: not an integer: '1_000' (no '_' separators)"),
        ("1 2\n1,,3", "line 2: an empty value between two commas"),
        (",1 2", "line 1: a comma before the first value"),
        ("1 2,\n", "line 1: a comma after the last value"),
        ("1\n2\n4.0", "line 3: not an integer: '4.0' (no decimal point or exponent)"),
        ("1 1e3", "line 1: not an integer: '1e3' (no decimal point or exponent)"),
        ("1 \u0663", "line 1: not an integer: '\u0663'"),  # an Arabic-Indic 3: int() would take it
        ("1 +-3", "line 1: not an integer: '+-3'"),
    ],
)
def test_text_rule_refuses_what_int_would_take_or_skip(text, message):
    with pytest.raises(DataError, match=re.escape(message)):
        parse_integers(text)
    r = run_cli("pairs", "--sum", "4", stdin=text.encode())
    assert r.returncode == 2 and message in r.stderr.decode() and r.stderr.decode().count("\n") == 1


def test_text_rule_accepts_signs_commas_and_newlines():
    got = parse_integers("7, -2 8\n+3,\n-0\t 99999999999999999999999")
    assert got == [7, -2, 8, 3, 0, 99999999999999999999999]
    assert parse_integers(b"1,2, 3 ,4\r\n5").tolist() == [1, 2, 3, 4, 5]
    assert parse_integers("").tolist() == []
    assert parse_int(" -42 ") == -42 and parse_int("+7") == 7
    for bad in ("4.0", "1_000", "", "٣", "0x10"):
        with pytest.raises(ParameterError, match="not an integer"):
            parse_int(bad, what="--sum")
