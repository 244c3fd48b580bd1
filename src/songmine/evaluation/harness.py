"""The evaluation harness: accuracy, false positives, calibration, latency, size and memory.

Every identification change is judged by :func:`evaluate`. It

1. splits a library into indexed tracks and held-out tracks (seeded);
2. plans deterministic queries: for every condition × duration cell,
   ``queries_per_cell`` clips of indexed tracks, plus ``nonmember_queries``
   clips of held-out tracks spread over the cells (they measure false
   positives);
3. builds the method's index over the indexed tracks (timed, with the peak
   memory of the harness and every child process sampled together);
4. cuts each clip at a seeded random offset (near-silent cuts are re-drawn),
   degrades it (:mod:`songmine.degrade`), and asks the method, timing the
   call in process;
5. aggregates everything into an :class:`EvalReport` (plain dataclasses: JSON
   ready), rendered by :func:`report_markdown` and :func:`plot_report`.

Methods plug in through the small :class:`Identifier` protocol — ``build``
a reference over files, ``query`` a clip — registered by name
(:func:`register_method`, or a lazy ``"module:factory"`` entry in
:data:`METHODS`). A factory takes ``(index_path, options)``; ``options`` are
the method-specific ``key=value`` strings of ``songmine eval --option``.

Correctness: a top-1 is right when its track is the clip's source track; the
offset is reported separately and counts as right within
``offset_tolerance_s`` (±0.5 s). A non-member query is a false positive when
the method returns any match at all.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..errors import SongmineError
from .config import EvalConfig
from .degrade import check_available
from .identifiers import Identifier
from .queries import Outcome, Query, QuerySpec, cut_queries, plan_queries, split_library
from .report import EvalReport, summarise
from .resources import PeakMemory

log = logging.getLogger(__name__)

__all__ = ["run_queries", "evaluate", "same_file"]


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (as given, or after resolving links)."""
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def run_queries(
    identifier: Identifier,
    queries: Iterator[Query | tuple[QuerySpec, str]],
    config: EvalConfig,
    *,
    progress: Callable[[Query | None], None] | None = None,
) -> list[Outcome]:
    """Ask ``identifier`` every query (resampled to its rate first), timing each ``query`` call.

    The first clip is also asked once untimed before (warm-up).
    """

    out: list[Outcome] = []
    warm = False
    for q in queries:
        if not warm and not isinstance(q, tuple):
            # one untimed call first: lazy imports, mmap page-in and caches are not query latency
            try:
                identifier.query(_resample_for(identifier, q), name=q.name)
            except SongmineError:
                pass
            warm = True
        if isinstance(q, tuple):
            s, err = q
            out.append(Outcome(s.qid, s.track, s.member, s.condition, s.duration_s, None, error=err))
            if progress is not None:
                progress(None)
            continue
        s = q.spec
        clip = _resample_for(identifier, q)
        o = Outcome(s.qid, s.track, s.member, s.condition, s.duration_s, q.offset_s)
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            res = identifier.query(clip, name=q.name)
        except SongmineError as exc:
            o.latency_s = time.perf_counter() - t0
            o.cpu_s = time.thread_time() - c0
            o.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out.append(o)
            continue
        o.latency_s = time.perf_counter() - t0
        o.cpu_s = time.thread_time() - c0
        o.error = res.error
        if res.matches:
            m = res.matches[0]
            o.answered = True
            o.top_path, o.top_offset_s = m.path, float(m.offset_s)
            o.score, o.confidence = float(m.score), float(m.confidence)
            o.correct = s.member and same_file(m.path, s.track)
            if o.correct:
                o.offset_error_s = o.top_offset_s - q.offset_s
                o.offset_ok = abs(o.offset_error_s) <= config.offset_tolerance_s
        out.append(o)
        if progress is not None:
            progress(q)
    out.sort(key=lambda o: o.qid)
    return out


def _resample_for(identifier: Identifier, q: Query) -> np.ndarray:
    import soxr

    return q.clip if identifier.sr == q.sr else soxr.resample(q.clip, q.sr, identifier.sr, quality="HQ")


def evaluate(
    library: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    identifier: Identifier,
    config: EvalConfig = EvalConfig(),
    *,
    jobs: int = 1,
    build_progress: Callable[[int, int], None] | None = None,
    query_progress: Callable[[int, int], None] | None = None,
    clamp_tracks: bool = False,
) -> EvalReport:
    """Split, build, query and summarise: one full evaluation of ``identifier`` on ``library``.

    Examples
    --------
    >>> from songmine.evaluate import EvalConfig, evaluate, make_identifier  # doctest: +SKIP
    >>> rep = evaluate("music/", make_identifier("landmark"), EvalConfig(tracks=10))  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    check_available(config.conditions)  # before any work: a missing extra is one line, not a crash mid-run
    indexed, held, durations = split_library(library, config, clamp_tracks=clamp_tracks)
    specs = plan_queries(indexed, held, durations, config)
    log.info("%d indexed, %d held out, %d queries", len(indexed), len(held), len(specs))
    with PeakMemory() as mem:
        build = identifier.build(indexed, jobs=jobs, progress=build_progress)
    build.peak_rss_mb, build.peak_rss_how, build.cpu_seconds = mem.peak_mb, mem.how, mem.cpu_seconds
    done = [0]

    def tick(_q: Query | None) -> None:
        done[0] += 1
        if query_progress is not None:
            query_progress(done[0], len(specs))

    outcomes = run_queries(identifier, cut_queries(specs, config), config, progress=tick)
    lib = os.fspath(library) if isinstance(library, (str, os.PathLike)) else ", ".join(map(os.fspath, library))
    rep = summarise(
        outcomes,
        config,
        build=build,
        method=identifier.name,
        library=lib,
        n_indexed=len(indexed),
        n_held_out=len(held),
    )
    rep.seconds = time.perf_counter() - t_start
    return rep
