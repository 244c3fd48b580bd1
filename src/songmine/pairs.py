"""Pairs of values with a given sum.

Given integers ``A`` and a target ``s``, find every pair that sums to ``s``:

* ``mode="values"`` (default): each *value* pair once, canonical (smaller value
  first), sorted. ``(v, v)`` is a pair only when ``v`` occurs at least twice.
* ``mode="indices"``: every *index* pair ``(i, j)`` with ``i < j`` and
  ``A[i] + A[j] == s``, sorted by ``(i, j)``.

Two algorithms give identical results:

``method="hash"`` — the O(n) expected-time hashing pass. One pass counts the
values in a hash table (``collections.Counter``), a second pass over the
*distinct* values looks up each partner ``s - v``. Works on arbitrary Python
ints (beyond int64). Its constant factor is Python's: ~1 µs per value.

``method="sort"`` — numpy, O(n log n): sort, group equal values, and
``searchsorted`` each distinct value's partner among the distinct values.
The log factor is paid inside a vectorised C sort, so on int64 arrays it is
far faster than hashing (see ``docs/pairs.md`` for measured numbers). Needs
every value and partner inside int64.

``method="auto"`` picks ``sort`` for integer numpy arrays of at least
:data:`AUTO_SORT_MIN_SIZE` elements whose values fit int64, ``hash`` otherwise.

The number of *index* pairs can be quadratic (``n`` equal values with
``s = 2v`` give ``n(n-1)/2`` pairs): :func:`count_pairs` counts them from the
value multiplicities without materialising anything, :func:`iter_index_pairs`
streams them in bounded chunks (globally sorted), and :func:`pairs_with_sum`
refuses to build more than ``max_pairs`` of them.

Examples
--------
>>> pairs_with_sum([7, -2, 8, 2, 6, 4, -7, 2, 1, 3, -3], 4).tolist()
[[-3, 7], [-2, 6], [1, 3], [2, 2]]
>>> pairs_with_sum([2, 2, 2], 4, mode="indices").tolist()
[[0, 1], [0, 2], [1, 2]]
>>> count_pairs([2] * 100_000, 4, mode="indices")
4999950000

**What counts as an integer** — one rule for the API and the CLI: a Python
``int`` or a numpy integer (not a ``bool``, not a float even when it is whole:
``4.0`` is refused rather than guessed at); in text (:func:`parse_int`,
:func:`parse_integers`, what ``songmine pairs`` reads), an optional sign and
ASCII digits — no ``.``, exponent or ``_``; values are separated by whitespace
and/or one comma, so an empty field (``1,,3``, a leading or trailing comma) is
an error naming its line.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Literal

import numpy as np

from .errors import DataError, ParameterError

__all__ = [
    "pairs_with_sum",
    "count_pairs",
    "iter_index_pairs",
    "parse_int",
    "parse_integers",
    "AUTO_SORT_MIN_SIZE",
    "DEFAULT_MAX_PAIRS",
]

Mode = Literal["values", "indices"]
Method = Literal["auto", "hash", "sort"]

#: ``method="auto"`` uses the numpy sort path for integer arrays at least this long.
AUTO_SORT_MIN_SIZE = 1024
#: Default cap on materialised index pairs (16 bytes each: 800 MB).
DEFAULT_MAX_PAIRS = 50_000_000

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1
_MODES = ("values", "indices")
_METHODS = ("auto", "hash", "sort")


# --------------------------------------------------------------------------- public API


def pairs_with_sum(
    values: Iterable[int] | np.ndarray,
    s: int,
    *,
    mode: Mode = "values",
    method: Method = "auto",
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
) -> np.ndarray:
    """All pairs of ``values`` that sum to ``s``.

    Parameters
    ----------
    values : array_like of int [shape=(n,)]
        Integers: a 1-D integer numpy array, or any iterable of Python ints
        (arbitrary size; values beyond int64 use the hashing path).
    s : int
        The target sum (any Python int).
    mode : {"values", "indices"}
        ``"values"``: each value pair once, smaller value first, sorted.
        ``"indices"``: every index pair ``i < j``, sorted by ``(i, j)``.
    method : {"auto", "hash", "sort"}
        Algorithm; see the module docstring. Results do not depend on it.
    max_pairs : int or None
        ``mode="indices"`` only: raise instead of building more pairs than
        this (their number can be quadratic). ``None``: no limit.

    Returns
    -------
    np.ndarray [shape=(m, 2)]
        ``int64`` (index pairs, and value pairs that fit int64) or ``object``
        (value pairs holding Python ints beyond int64).

    Raises
    ------
    ParameterError
        Non-integer values or target, a bad ``mode``/``method``,
        ``method="sort"`` on values outside int64, or more index pairs than
        ``max_pairs``.

    Examples
    --------
    >>> pairs_with_sum([1, 3, 3, 2, 2], 4).tolist()
    [[1, 3], [2, 2]]
    >>> pairs_with_sum([1, 3, 3, 2, 2], 4, mode="indices").tolist()
    [[0, 1], [0, 2], [3, 4]]
    >>> pairs_with_sum([2**70, -(2**70) + 5], 5).tolist()
    [[-1180591620717411303419, 1180591620717411303424]]
    """
    _check_mode(mode)
    prepared = _prepare(values, s, method)
    if mode == "values":
        return prepared.value_pairs()
    plan = prepared.index_plan()
    if max_pairs is not None and plan.total > max_pairs:
        raise ParameterError(
            f"{plan.total} index pairs sum to {s}, more than max_pairs={max_pairs}; "
            "count them with count_pairs() or stream them with iter_index_pairs()"
        )
    return plan.expand(0, plan.n)


def count_pairs(
    values: Iterable[int] | np.ndarray,
    s: int,
    *,
    mode: Mode = "values",
    method: Method = "auto",
) -> int:
    """How many pairs :func:`pairs_with_sum` would return, without building them.

    Index pairs are counted from value multiplicities (``c_v * c_w`` per value
    pair, ``c_v (c_v - 1) / 2`` for ``v = s/2``), so this is O(n) memory even
    when the answer is ~n²/2.

    Examples
    --------
    >>> count_pairs([7, -2, 8, 2, 6, 4, -7, 2, 1, 3, -3], 4)
    4
    >>> count_pairs([1, 3, 3, 2, 2], 4, mode="indices")
    3
    """
    _check_mode(mode)
    prepared = _prepare(values, s, method)
    return prepared.count_values() if mode == "values" else prepared.count_indices()


def iter_index_pairs(
    values: Iterable[int] | np.ndarray,
    s: int,
    *,
    chunk_size: int = 1 << 20,
    method: Method = "auto",
) -> Iterator[np.ndarray]:
    """Stream all index pairs ``i < j`` summing to ``s`` as ``int64`` blocks of shape (k, 2).

    Blocks hold at most ``chunk_size`` pairs (more only when a single index
    has more partners than that); concatenated, they equal
    ``pairs_with_sum(values, s, mode="indices")`` — sorted by ``(i, j)`` —
    with memory bounded by O(n + chunk_size) whatever the total.

    Examples
    --------
    >>> [b.tolist() for b in iter_index_pairs([2, 2, 2], 4, chunk_size=2)]
    [[[0, 1], [0, 2]], [[1, 2]]]
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ParameterError(f"chunk_size={chunk_size!r} must be a positive int")
    plan = _prepare(values, s, method).index_plan()
    return plan.chunks(chunk_size)


# --------------------------------------------------------------------------- input handling


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ParameterError(f"mode={mode!r} must be one of {_MODES}")


def _as_int(x: object, what: str) -> int:
    """``x`` as a Python int under the module's rule (int or numpy integer; no bool, float or text)."""
    if isinstance(x, (bool, np.bool_)):
        raise ParameterError(f"{what}={x!r} is a bool, not an integer")
    if isinstance(x, (float, np.floating)):
        hint = f" (pass {int(x)})" if float(x).is_integer() else ""
        raise ParameterError(f"{what}={x!r} is not an integer: floats are refused, even whole ones{hint}")
    if isinstance(x, (str, bytes)):
        raise ParameterError(f"{what}={x!r} is not an integer: text is read with parse_int() / parse_integers()")
    try:
        return operator.index(x)  # type: ignore[arg-type]
    except TypeError:
        raise ParameterError(f"{what}={x!r} is not an integer") from None


_INT_TOKEN = re.compile(r"[+-]?[0-9]+")
_INT_TEXT_BYTES = b"0123456789+-, \t\n\r\x0b\x0c"
_SPACE_BYTES = b" \t\n\r\x0b\x0c"
_NOT_INT_CHAR = re.compile(rb"[^0-9+\-,\s]")
_EMPTY_FIELD = re.compile(rb"\A\s*,|,\s*,|,\s*\Z")


def _why_not_int(token: str) -> str:
    if "_" in token:
        return " (no '_' separators)"
    if (
        any(c in token for c in ".eE")
        and token.strip("+-").replace(".", "").replace("e", "").replace("E", "").isdigit()
    ):
        return " (no decimal point or exponent)"
    return ""


def parse_int(text: str, *, what: str = "value") -> int:
    """One integer written in text: an optional sign and ASCII digits (``"-42"``, ``"+7"``).

    Raises
    ------
    ParameterError
        Anything else — ``"4.0"``, ``"1e3"``, ``"1_000"``, ``""``, non-ASCII digits.

    Examples
    --------
    >>> parse_int("-42")
    -42
    """
    if not isinstance(text, str) or not _INT_TOKEN.fullmatch(text.strip()):
        shown = text if isinstance(text, str) else repr(text)
        raise ParameterError(f"{what}: not an integer: {shown!r}{_why_not_int(str(text))}")
    return int(text)


def parse_integers(data: bytes | str, *, name: str = "<text>") -> np.ndarray | list[int]:
    """Integers written in text, separated by whitespace and/or one comma, in O(n).

    Returns an ``int64`` array, or a list of Python ints when one lies beyond int64.

    Raises
    ------
    DataError
        A token that is not an integer (:func:`parse_int`'s rule) or an empty
        field (``1,,3``, a leading or trailing comma); the message names the
        line and the token.

    Examples
    --------
    >>> parse_integers("7, -2 8\n+3").tolist()
    [7, -2, 8, 3]
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data.translate(None, _INT_TEXT_BYTES):  # '_', '.', letters, non-ASCII digits: int() would take some
        _raise_bad_token(data, name, _NOT_INT_CHAR.search(data).start())
    packed = data.translate(None, _SPACE_BYTES) if b"," in data else b""
    if b",," in packed or packed.startswith(b",") or packed.endswith(b","):
        comma = _EMPTY_FIELD.search(data)
        at = data.index(b",", comma.start())
        line = data.count(b"\n", 0, at) + 1
        where = (
            "a comma before the first value"
            if not data[:at].strip()
            else "a comma after the last value"
            if not data[at + 1 :].strip()
            else "an empty value between two commas"
        )
        raise DataError(f"{name}: line {line}: {where} (values are separated by whitespace and/or one comma)")
    tokens = data.replace(b",", b" ").split()
    try:
        ints = list(map(int, tokens))  # only signs and digits are left: int() takes exactly the rule
    except ValueError:
        _raise_bad_token(data, name, None)
        raise  # unreachable: _raise_bad_token always raises
    try:
        return np.array(ints, dtype=np.int64)
    except OverflowError:
        return ints  # Python ints beyond int64: the hashing path handles them


def _raise_bad_token(data: bytes, name: str, at: int | None) -> None:
    """Raise DataError naming the line and token at byte ``at`` (else the first token that is not an integer)."""
    if at is not None:
        first = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        lines = [(data.count(b"\n", 0, at) + 1, data[first : len(data) if end < 0 else end])]
    else:
        lines = enumerate(data.split(b"\n"), start=1)
    for lineno, line in lines:
        for token in line.replace(b",", b" ").split():
            shown = token.decode("utf-8", "replace")
            if not _INT_TOKEN.fullmatch(shown):
                hint = _why_not_int(shown)
                if len(shown) > 40:
                    shown = shown[:37] + "..."
                raise DataError(f"{name}: line {lineno}: not an integer: {shown!r}{hint}")
    raise DataError(f"{name}: not a list of integers")


def _prepare(values: Iterable[int] | np.ndarray, s: int, method: str) -> _HashPrepared | _SortPrepared:
    if method not in _METHODS:
        raise ParameterError(f"method={method!r} must be one of {_METHODS}")
    s = _as_int(s, "s")
    if isinstance(values, np.ndarray):
        arr = _int64_array_or_none(values)
        if arr is not None:
            if method == "hash" or (method == "auto" and arr.size < AUTO_SORT_MIN_SIZE):
                return _HashPrepared(arr.tolist(), s)
            return _SortPrepared(arr, s)
        xs = [_as_int(x, "value") for x in values.tolist()]
    else:
        if isinstance(values, (str, bytes)):
            raise ParameterError("values must be integers, got a string")
        xs = [_as_int(x, "value") for x in values]
    if method == "sort":
        try:
            arr = np.array(xs, dtype=np.int64)
        except OverflowError:
            raise ParameterError("method='sort' needs values within int64; use method='hash' for larger ints") from None
        return _SortPrepared(arr, s)
    return _HashPrepared(xs, s)


def _int64_array_or_none(values: np.ndarray) -> np.ndarray | None:
    """``values`` as a 1-D int64 array, or None when it needs Python ints (object/uint64 > int64)."""
    if values.ndim != 1:
        raise ParameterError(f"values must be 1-D, got shape {values.shape}")
    kind = values.dtype.kind
    if kind == "i":
        return values.astype(np.int64, copy=False)
    if kind == "u":
        if values.dtype.itemsize == 8 and values.size and int(values.max()) > _I64_MAX:
            return None
        return values.astype(np.int64)
    if kind == "O":
        return None
    raise ParameterError(f"values must be integers, got dtype {values.dtype}")


def _wrap_int64(x: int) -> np.int64:
    """``x`` modulo 2**64 as an int64 (exact for any difference that lands in int64)."""
    return np.int64(((x - _I64_MIN) % 2**64) + _I64_MIN)


# --------------------------------------------------------------------------- index expansion


@dataclass(frozen=True, slots=True)
class _IndexPlan:
    """Everything needed to enumerate index pairs in (i, j) order, in chunks.

    For each index ``i`` (ascending), its partners are ``k[i]`` consecutive
    entries of ``order`` starting at ``first[i]`` — positions ``j > i`` whose
    value is ``s - A[i]``, ascending (``order`` lists positions grouped by
    value, ascending inside a group).
    """

    n: int
    order: np.ndarray  # int64 [n]
    first: np.ndarray  # int64 [n]
    k: np.ndarray  # int64 [n]
    total: int

    def expand(self, lo: int, hi: int) -> np.ndarray:
        """Pairs of indices ``lo <= i < hi``, shape (m, 2), sorted."""
        k = self.k[lo:hi]
        m = int(k.sum())
        if m == 0:
            return np.empty((0, 2), dtype=np.int64)
        rows = np.repeat(np.arange(lo, hi, dtype=np.int64), k)
        starts = np.cumsum(k) - k  # offset of each row's block inside this chunk
        r = np.arange(m, dtype=np.int64) - np.repeat(starts, k)
        j = self.order[np.repeat(self.first[lo:hi], k) + r]
        return np.column_stack((rows, j))

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        if self.total == 0:
            return
        cum = np.cumsum(self.k)
        lo = 0
        while lo < self.n:
            base = int(cum[lo - 1]) if lo else 0
            hi = int(np.searchsorted(cum, base + chunk_size, side="right"))
            hi = max(hi, lo + 1)
            block = self.expand(lo, hi)
            if len(block):
                yield block
            lo = hi


def _plan_from_groups(
    gid: np.ndarray, order: np.ndarray, starts: np.ndarray, lens: np.ndarray, partner: np.ndarray
) -> _IndexPlan:
    """Build the plan from grouped positions.

    ``gid[i]``: group (distinct value) of index i; ``order``: positions sorted by
    (group, position); ``starts``/``lens``: each group's slice of ``order``;
    ``partner[g]``: the group holding ``s - value(g)``, or -1.
    """
    n = gid.size
    first = np.zeros(n, dtype=np.int64)
    k = np.zeros(n, dtype=np.int64)
    if n == 0:
        return _IndexPlan(0, order, first, k, 0)
    w = partner[gid]
    pos = np.arange(n, dtype=np.int64)
    # rank of each index inside its own group
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64) - np.repeat(starts, lens)
    same = w == gid
    first[same] = starts[gid[same]] + rank[same] + 1
    k[same] = lens[gid[same]] - rank[same] - 1
    other = (w >= 0) & ~same
    if other.any():
        # partners j > i in group w: skip the positions <= i via one searchsorted on
        # the (group, position) key, which is sorted because `order` is.
        key = np.repeat(np.arange(starts.size, dtype=np.int64), lens) * n + order
        # needles sorted (a fast int64 sort) so searchsorted walks `key` once; the
        # needle encodes its index (needle % n), so no argsort is needed to scatter back
        needles = np.sort(w[other] * n + pos[other])
        wo, io = needles // n, needles % n
        le = np.searchsorted(key, needles, side="right") - starts[wo]
        first[io] = starts[wo] + le
        k[io] = lens[wo] - le
    return _IndexPlan(n, order, first, k, int(k.sum()))


# --------------------------------------------------------------------------- hashing path


class _HashPrepared:
    """O(n) expected: a hash table of value counts; partners looked up per distinct value."""

    def __init__(self, xs: list[int], s: int):
        self.xs = xs
        self.s = s

    def _matches(self, counts: dict[int, int]) -> list[tuple[int, int]]:
        s = self.s
        out = []
        for v, c in counts.items():
            w = s - v
            if v < w:
                if w in counts:
                    out.append((v, w))
            elif v == w and c >= 2:
                out.append((v, v))
        out.sort()
        return out

    def value_pairs(self) -> np.ndarray:
        out = self._matches(Counter(self.xs))
        if not out:
            return np.empty((0, 2), dtype=np.int64)
        if all(_I64_MIN <= x <= _I64_MAX for pair in out for x in pair):
            return np.array(out, dtype=np.int64).reshape(-1, 2)
        res = np.empty((len(out), 2), dtype=object)
        res[:, 0] = [v for v, _ in out]
        res[:, 1] = [w for _, w in out]
        return res

    def count_values(self) -> int:
        return len(self._matches(Counter(self.xs)))

    def count_indices(self) -> int:
        counts = Counter(self.xs)
        total = 0
        for v, w in self._matches(counts):
            c = counts[v]
            total += c * (c - 1) // 2 if v == w else c * counts[w]
        return total

    def index_plan(self) -> _IndexPlan:
        positions: dict[int, list[int]] = {}
        for i, x in enumerate(self.xs):
            positions.setdefault(x, []).append(i)
        n = len(self.xs)
        gids = {v: g for g, v in enumerate(positions)}
        gid = np.fromiter((gids[x] for x in self.xs), dtype=np.int64, count=n)
        lens = np.fromiter((len(p) for p in positions.values()), dtype=np.int64, count=len(gids))
        starts = np.cumsum(lens) - lens
        order = np.fromiter(chain.from_iterable(positions.values()), dtype=np.int64, count=n)
        s = self.s
        partner = np.fromiter((gids.get(s - v, -1) for v in positions), dtype=np.int64, count=len(gids))
        same = partner == np.arange(len(gids))
        partner[same & (lens < 2)] = -1
        return _plan_from_groups(gid, order, starts, lens, partner)


# --------------------------------------------------------------------------- numpy sort path


class _SortPrepared:
    """O(n log n), vectorised: sort, group, ``searchsorted`` each distinct value's partner."""

    def __init__(self, arr: np.ndarray, s: int):
        self.a = arr
        self.s = s

    @staticmethod
    def _groups(sorted_a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = sorted_a.size
        flag = np.empty(n, dtype=bool)
        flag[:1] = True
        np.not_equal(sorted_a[1:], sorted_a[:-1], out=flag[1:])
        starts = np.flatnonzero(flag)
        lens = np.diff(np.append(starts, n))
        return sorted_a[starts], starts, lens

    def _match(self, u: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indices (gv, gw) into the distinct values ``u`` with u[gv] <= u[gw], u[gv] + u[gw] = s."""
        s = self.s
        # partner t = s - v must lie in int64, and v <= t means v <= floor(s / 2)
        lo = max(s - _I64_MAX, _I64_MIN)
        hi = min(s - _I64_MIN, _I64_MAX, s // 2)
        if u.size == 0 or lo > hi:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
        i0 = int(np.searchsorted(u, np.int64(lo), side="left"))
        i1 = int(np.searchsorted(u, np.int64(hi), side="right"))
        gv = np.arange(i0, i1)
        t = _wrap_int64(s) - u[i0:i1]  # exact: every t here lies in int64
        # t is decreasing: search it reversed (ascending needles walk `u` once)
        gw = np.searchsorted(u, t[::-1])[::-1]
        np.minimum(gw, u.size - 1, out=gw)
        hit = u[gw] == t
        hit &= (gv != gw) | (c[gv] >= 2)
        return gv[hit], gw[hit]

    def _value_groups(self) -> tuple[np.ndarray, np.ndarray]:
        u, _, c = self._groups(np.sort(self.a))
        return u, c

    def value_pairs(self) -> np.ndarray:
        u, c = self._value_groups()
        gv, gw = self._match(u, c)
        return np.column_stack((u[gv], u[gw]))

    def count_values(self) -> int:
        u, c = self._value_groups()
        return int(self._match(u, c)[0].size)

    def count_indices(self) -> int:
        u, c = self._value_groups()
        gv, gw = self._match(u, c)
        cv, cw = c[gv], c[gw]
        return int(np.where(gv == gw, cv * (cv - 1) // 2, cv * cw).sum())

    def index_plan(self) -> _IndexPlan:
        a = self.a
        n = a.size
        if n == 0:
            e = np.empty(0, dtype=np.int64)
            return _plan_from_groups(e, e, e, e, e)
        lo, hi = int(a.min()), int(a.max())
        if (hi - lo + 1) * n <= _I64_MAX:
            # pack (value - min, position) into one int64: one fast sort gives the
            # values and, inside each group of equal values, ascending positions
            packed = np.sort((a - np.int64(lo)) * np.int64(n) + np.arange(n, dtype=np.int64))
            order = packed % n
            sorted_a = packed // n + np.int64(lo)
            del packed
        else:
            order = np.argsort(a, kind="stable")
            sorted_a = a[order]
        u, starts, lens = self._groups(sorted_a)
        del sorted_a
        gid_sorted = np.repeat(np.arange(u.size, dtype=np.int64), lens)
        gid = np.empty(n, dtype=np.int64)
        gid[order] = gid_sorted
        gv, gw = self._match(u, lens)
        partner = np.full(u.size, -1, dtype=np.int64)
        partner[gv] = gw
        partner[gw] = gv
        return _plan_from_groups(gid, order, starts, lens, partner)
