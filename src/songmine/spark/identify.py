"""Identification on Spark: many clips, or long recordings cut into windows, searched by the executors.

``songmine identify --engine spark CLIPS… | --from-list FILE [--window S]``.

**Clips.** The clip list is dealt into tasks; each task opens the index
(read-only, once per Python worker: the segments are memory-mapped, the pages
a lookup touches come from the shared filesystem or the page cache) and runs
:func:`songmine.fingerprint.query.identify` on each of its clips — the very
function the local command runs, with the same index, so every record (matches,
offsets, scores, confidences, errors) is the local one, bit for bit.

**Recordings** (``window_s`` given; broadcast monitoring). A task decodes a
recording once and cuts it into windows with the functions of
:mod:`songmine.fingerprint.monitor`; the windows (≈ 0.4 MB each at 10 s) are
re-partitioned so that every executor searches its share of every recording;
the answers are grouped back by recording and joined into its timeline on the
executors (:func:`songmine.fingerprint.monitor.finish`). Only records
(a few hundred bytes a window) reach the driver.

Why the search itself runs per clip: the local search is staged (coarse
probes over a speed grid, dense passes where a track leads, runner-up tests,
profile checks when the votes are unsure), each stage deciding what to look up
next from the previous one's votes. Running that staged search per clip on
the executors keeps its answers exactly and its cost (most clips end after
one coarse pass). Its lookups are a join of the clip's hashes with the
posting table — the memory-mapped segments, sorted by hash, merged by binary
search inside the task — and its voting is the per-clip aggregation of
:func:`songmine.fingerprint.scoring.vote`.

Executors need the index and the clips at the same paths as the driver
(a shared filesystem; the index is only read).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import load
from ..errors import IndexFormatError, ParameterError, SongmineError, one_line
from ..fingerprint.index import Index
from ..fingerprint.monitor import (
    MAX_RECORDING_S,
    RecordingResult,
    WindowResult,
    check_windows,
    cut,
    finish,
    window_name,
)
from ..fingerprint.query import identify
from ..fingerprint.search import SearchConfig
from ..records import QueryResult
from .session import get_session, run_job

__all__ = ["identify_clips_spark", "identify_recordings_spark", "ClipOutcome"]

#: Indexes opened by this Python worker (Spark reuses its workers across tasks): path -> Index.
_OPEN: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class ClipOutcome:
    """A clip's record and what kind of failure it carries: ``ok``, ``index`` (the index, not the clip,
    failed), ``clip`` (the clip failed) or ``internal`` (a bug: the record says so)."""

    result: QueryResult
    kind: str = "ok"


def open_index(path: str):
    """This worker's read-only :class:`~songmine.fingerprint.index.Index` at ``path``, refreshed."""
    ix = _OPEN.get(path)
    if ix is None:
        ix = _OPEN[path] = Index(path)
    else:
        ix.refresh()
    return ix


def safe_identify(index, clip: Any, **kw) -> ClipOutcome:
    """:func:`~songmine.fingerprint.query.identify`, every failure a record (as ``songmine identify`` makes it)."""
    name = kw.get("name") or str(clip)
    try:
        return ClipOutcome(identify(index, clip, **kw))
    except IndexFormatError as exc:
        return ClipOutcome(QueryResult(query=name, error=one_line(exc)), "index")
    except SongmineError as exc:
        return ClipOutcome(QueryResult(query=name, error=one_line(exc)), "clip")
    except Exception as exc:  # noqa: BLE001  (a bug: report the clip, go on)
        return ClipOutcome(
            QueryResult(query=name, error=f"internal error: {type(exc).__name__}: {one_line(exc)}"), "internal"
        )


def _single_threaded() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _clip_task(items: Iterable[tuple[int, str]], index_path: str, kw: dict) -> Iterator[tuple[int, ClipOutcome]]:
    _single_threaded()
    items = list(items)
    try:
        ix = open_index(index_path)
    except SongmineError as exc:  # no index where the executor looks: every clip says so
        for i, clip in items:
            yield i, ClipOutcome(QueryResult(query=clip, error=one_line(exc)), "index")
        return
    for i, clip in items:
        yield i, safe_identify(ix, clip, **kw)


def _partitions(sc, n_items: int, n_partitions: int | None) -> int:
    if n_partitions is not None:
        if n_partitions < 1:
            raise ParameterError(f"n_partitions={n_partitions} must be >= 1")
        return min(n_partitions, max(1, n_items))
    return max(1, min(n_items, 4 * sc.defaultParallelism))


def identify_clips_spark(
    index_path: str | os.PathLike[str],
    clips: Sequence[str | os.PathLike[str]],
    *,
    top: int = 3,
    config=None,
    master: str | None = None,
    session=None,
    n_partitions: int | None = None,
    job_timeout_s: float | None = None,
    max_duration_s: float | None = 60.0,
) -> list[ClipOutcome]:
    """Identify many clips on Spark's executors; one :class:`ClipOutcome` per clip, in the given order.

    Each record equals what :func:`songmine.fingerprint.query.identify` answers
    locally for the clip against the same index (the executors run it).
    """
    if not isinstance(top, int) or top < 1:
        raise ParameterError(f"top={top!r} must be an integer >= 1")
    items = [(i, os.fspath(c)) for i, c in enumerate(clips)]
    if not items:
        return []
    session = session or get_session(master)
    sc = session.sparkContext
    kw = {"top": top, "config": config or SearchConfig(), "max_duration_s": max_duration_s}
    path = os.path.abspath(os.fspath(index_path))
    parts = _partitions(sc, len(items), n_partitions)
    slices = [items[i::parts] for i in range(parts)]  # round-robin: neighbours in a list are often alike
    rdd = sc.parallelize(slices, parts).flatMap(lambda s: s)
    got = run_job(
        session,
        lambda: rdd.mapPartitions(lambda it: _clip_task(it, path, kw)).collect(),
        timeout_s=job_timeout_s,
        what=f"identifying {len(items)} clips",
    )
    got.sort(key=lambda r: r[0])
    return [o for _, o in got]


# --------------------------------------------------------------------------- recordings


def _decode_task(
    items: Iterable[tuple[int, str]], sr: int, window_s: float, hop_s: float, max_duration_s: float
) -> Iterator[tuple]:
    """Decode each recording once and cut it: ``("win", rec, (start, end, samples))`` per window,
    ``("dur", rec, seconds)`` per recording, ``("err", rec, reason)`` when it cannot be decoded."""
    _single_threaded()
    for rec, path in items:
        try:
            y = load(path, sr=sr, max_duration=max_duration_s)
        except SongmineError as exc:
            yield "err", rec, one_line(exc)
            continue
        except Exception as exc:  # noqa: BLE001
            yield "err", rec, f"internal error: {type(exc).__name__}: {one_line(exc)}"
            continue
        yield "dur", rec, y.shape[0] / sr
        for a, b, part in cut(y, sr, window_s, hop_s):
            yield "win", rec, (a, b, np.ascontiguousarray(part))


def _search_task(records: Iterable[tuple], index_path: str, names: dict[int, str], kw: dict) -> Iterator[tuple]:
    """Search each window; other records pass through. ``("win", rec, (WindowResult, kind))``."""
    _single_threaded()
    ix = None
    for kind, rec, value in records:
        if kind != "win":
            yield kind, rec, value
            continue
        a, b, part = value
        name = window_name(names[rec], a, b)
        if ix is None:
            try:
                ix = open_index(index_path)
            except SongmineError as exc:
                yield "win", rec, (WindowResult(a, b, QueryResult(query=name, error=one_line(exc))), "index")
                continue
        out = safe_identify(ix, part, name=name, **kw)
        yield "win", rec, (WindowResult(a, b, out.result), out.kind)


def _finish_task(
    groups: Iterable[tuple[int, Iterable[tuple]]], index_path: str, names: dict[int, str], window_s: float
) -> Iterator[tuple[int, Any, list[str]]]:
    """A recording's windows → its :class:`~songmine.fingerprint.monitor.RecordingResult` (timeline here)."""
    for rec, values in groups:
        wins, kinds, duration, error = [], [], 0.0, None
        for kind, value in values:
            if kind == "err":
                error = value
            elif kind == "dur":
                duration = value
            else:
                wins.append(value[0])
                kinds.append(value[1])
        if error is not None:
            yield rec, RecordingResult(recording=names[rec], error=error), []
            continue
        try:
            ix = open_index(index_path)
        except SongmineError:
            ix = None
        yield rec, finish(names[rec], duration, wins, window_s=window_s, index=ix), kinds


def identify_recordings_spark(
    index_path: str | os.PathLike[str],
    recordings: Sequence[str | os.PathLike[str]],
    *,
    window_s: float,
    hop_s: float | None = None,
    top: int = 3,
    config=None,
    master: str | None = None,
    session=None,
    n_partitions: int | None = None,
    max_duration_s: float | None = None,
    job_timeout_s: float | None = None,
) -> list[tuple[Any, list[str]]]:
    """What played when in each recording, its windows searched on Spark's executors.

    Returns per recording (in the given order) its
    :class:`~songmine.fingerprint.monitor.RecordingResult` — equal to
    :func:`songmine.fingerprint.monitor.identify_recording` on the same index —
    and the failure kind of each window (see :class:`ClipOutcome`).
    """
    hop = check_windows(window_s, hop_s)
    if not isinstance(top, int) or top < 1:
        raise ParameterError(f"top={top!r} must be an integer >= 1")
    names = {i: os.fspath(r) for i, r in enumerate(recordings)}
    if not names:
        return []
    path = os.path.abspath(os.fspath(index_path))
    with Index(path) as ix:  # the rate to decode at (and a clear error here when there is no index)
        sr = int(ix.config.sr)
    session = session or get_session(master)
    sc = session.sparkContext
    kw = {"top": top, "config": config or SearchConfig(), "max_duration_s": max_duration_s}
    limit = MAX_RECORDING_S if max_duration_s is None else max_duration_s
    n_rec = len(names)
    parts_in = _partitions(sc, n_rec, None)
    slices = [list(names.items())[i::parts_in] for i in range(parts_in)]
    # windows per recording are unknown before decoding: aim at ~4 tasks per core for the search
    parts = n_partitions or 4 * sc.defaultParallelism
    pipeline = (
        sc.parallelize(slices, parts_in)
        .flatMap(lambda s: s)
        .mapPartitions(lambda it: _decode_task(it, sr, window_s, hop, limit))
        .repartition(parts)
        .mapPartitions(lambda it: _search_task(it, path, names, kw))
        .map(lambda r: (r[1], (r[0], r[2])))
        .groupByKey(numPartitions=max(1, min(n_rec, parts)))
        .mapPartitions(lambda it: _finish_task(it, path, names, window_s))
    )
    got = run_job(session, pipeline.collect, timeout_s=job_timeout_s, what=f"monitoring {n_rec} recording(s)")
    got.sort(key=lambda r: r[0])
    return [(res, kinds) for _, res, kinds in got]
