"""One pass of the search as Spark relations: lookups as a join, voting as an aggregation.

``songmine identify --engine spark --one-pass CLIPS… | --window S RECORDINGS…``.

The one-pass search (:func:`songmine.fingerprint.search.one_pass`: the search with ``coarse=False`` and
no profile stage) looks up the clip's dense query landmarks at each speed of
the grid, in order, until one speed gives a certain answer, then applies the
runner-up tests and keeps one candidate per track. Here a round per speed
does it for every clip (or window of a recording) still without a certain
answer, as relations:

1. **query hashes** — a ``mapInArrow`` over the clips: each task decodes its
   clips (a recording once, then cut into windows,
   :mod:`songmine.fingerprint.monitor`) and emits ``(q, pos, hash, qtime)``,
   ``q`` naming (clip, window, speed), with the very functions of the local
   search (:func:`songmine.fingerprint.search.dense_query`);
2. **the hit budget** — postings per distinct hash (``Index.counts``, a task per
   hash range), joined back: ``max_per_hash`` drops common hashes, and
   ``max_hits`` keeps the rarest hashes of each ``q`` whose running sum of
   hits (a window function ordered by count, then hash) fits — the rule of
   :func:`songmine.fingerprint.postings.rarest_within`;
3. **the join** — the kept hashes, range-partitioned, meet the posting table
   (each task reads its hash range from the memory-mapped segments,
   ``Index.lookup``) and are joined with the query rows on ``hash``:
   ``(q, track, offset = t_track - t_query, hash)``;
4. **the vote** — ``groupBy(q, track, offset).count()``, a ±tolerance window
   sum (``rangeBetween``), the best bin per track (highest score, then lowest
   offset), ``track_hits`` and tracks hit per ``q``, the ``max(top, rescore)``
   best tracks per ``q`` (votes, then track id), and their distinct hash
   values within ±tolerance (``countDistinct``) — exactly
   :func:`songmine.fingerprint.scoring.vote` and ``distinct_votes``.

Only those few candidates per ``q`` reach the driver, which gives them their
confidence with :func:`songmine.fingerprint.search.candidates`; a clip
(window) whose best is certain is done, the others go to the next speed's
round; at the end each one's candidates are ranked with
:func:`songmine.fingerprint.search.rank` and written as records by
:func:`songmine.fingerprint.query.matches_of`. So the records equal the local
``identify(index, clip, config=one_pass(config))`` bit for bit (tested), and
the work is the local search's; each round is a few Spark jobs, so a batch
pays their latency once per speed tried (a clip of no indexed track tries
them all, locally as well).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..audio import load
from ..errors import ParameterError, SongmineError, one_line
from ..fingerprint.index import Index
from ..fingerprint.monitor import (
    MAX_RECORDING_S,
    RecordingResult,
    WindowResult,
    check_windows,
    finish,
    window_name,
    window_spans,
)
from ..fingerprint.query import matches_of
from ..fingerprint.search import candidates, dense_query, one_pass, rank
from ..records import QueryResult
from .identify import ClipOutcome, open_index
from .session import get_session, run_job

__all__ = ["vote_clips_spark", "vote_recordings_spark"]

#: Windows per recording that the ``q`` numbering leaves room for.
_MAX_WINDOWS = 1 << 20

_FP_SCHEMA = "q long, pos int, hash long, qtime long, qframes int, a long, b long, dur double, err string, kind string"


def _speeds(config) -> list[tuple[int, float]]:
    """The speeds a one-pass search tries, in order (a repeated factor is searched once)."""
    seen, out = set(), []
    for i, s in enumerate(config.speeds):
        if s not in seen:
            seen.add(s)
            out.append((i, s))
    return out


def _fingerprint_fn(fc, config, window: tuple[float, float] | None, max_duration_s: float, speed: tuple[int, float]):
    """mapInArrow: ``(src, path, windows)`` rows → the query rows of speed ``speed`` (index, factor) of each
    pending window (``windows`` null: all) and one meta row per window (see the module doc)."""
    n_speeds = len(config.speeds)
    si, s = speed

    def fn(batches):
        import pyarrow as pa

        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")

        def rows(q, pos=None, h=None, t=None, qframes=None, a=None, b=None, dur=None, err=None, kind=None):
            n = 1 if pos is None else len(pos)
            col = lambda v, typ: pa.array(v if isinstance(v, (list, np.ndarray)) else [v] * n, type=typ)  # noqa: E731
            return pa.RecordBatch.from_arrays(
                [
                    col(q, pa.int64()),
                    col(-1 if pos is None else pos, pa.int32()),
                    col(None if h is None else h.astype(np.int64), pa.int64()),
                    col(None if t is None else t.astype(np.int64), pa.int64()),
                    col(qframes, pa.int32()),
                    col(a, pa.int64()),
                    col(b, pa.int64()),
                    col(dur, pa.float64()),
                    col(err, pa.string()),
                    col(kind, pa.string()),
                ],
                names=["q", "pos", "hash", "qtime", "qframes", "a", "b", "dur", "err", "kind"],
            )

        for batch in batches:
            for src, path, pending in zip(*(batch.column(i).to_pylist() for i in range(3))):
                base = src * _MAX_WINDOWS * n_speeds
                try:
                    y = load(path, sr=fc.sr, max_duration=max_duration_s)
                except SongmineError as exc:
                    yield rows(base, err=one_line(exc), kind="clip")
                    continue
                except Exception as exc:  # noqa: BLE001  (a bug: the record says so)
                    yield rows(base, err=f"internal error: {type(exc).__name__}: {one_line(exc)}", kind="internal")
                    continue
                spans = [(0, y.shape[0])] if window is None else window_spans(y.shape[0], fc.sr, *window)
                for w in range(len(spans)) if pending is None else pending:
                    a, b = spans[w]
                    part = np.asarray(y[a:b], dtype=np.float32)
                    if not np.all(np.isfinite(part)):
                        part = np.nan_to_num(part, nan=0.0, posinf=0.0, neginf=0.0)
                    q = base + w * n_speeds + si
                    h, t, qframes = dense_query(part, s, fc, config)
                    yield rows(q, qframes=qframes, a=a, b=b, dur=y.shape[0] / fc.sr)
                    if h.size:
                        yield rows(q, np.arange(h.size, dtype=np.int32), h, t)

    return fn


def _counts_fn(index_path: str):
    def fn(batches):
        import pyarrow as pa

        ix = open_index(index_path)
        for b in batches:
            h = b.column(0).to_numpy().astype(np.uint32)
            yield pa.RecordBatch.from_arrays(
                [pa.array(h.astype(np.int64)), pa.array(ix.counts(h))], names=["hash", "n"]
            )

    return fn


def _lookup_fn(index_path: str):
    def fn(batches):
        import pyarrow as pa

        ix = open_index(index_path)
        for b in batches:
            h = b.column(0).to_numpy().astype(np.uint32)
            qpos, tracks, times = ix.lookup(h)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(h[qpos].astype(np.int64)),
                    pa.array(tracks.astype(np.int64)),
                    pa.array(times.astype(np.int64)),
                ],
                names=["hash", "track", "ptime"],
            )

    return fn


def _votes(
    session,
    sources: list[tuple[int, str, list[int] | None]],
    index_path: str,
    fc,
    config,
    *,
    top: int,
    window: tuple[float, float] | None,
    max_duration_s: float,
    n_partitions: int,
    speed: tuple[int, float],
) -> tuple[list, list]:
    """The relational pipeline at one speed (module doc, steps 1–4): ``(meta rows, best-track rows)``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    tol = config.tolerance
    k = max(top, config.rescore)
    src = session.createDataFrame(sources, "src long, path string, windows array<int>").repartition(n_partitions)
    fp = src.mapInArrow(_fingerprint_fn(fc, config, window, max_duration_s, speed), _FP_SCHEMA).persist()
    try:
        meta = fp.filter(F.col("pos") < 0).select("q", "qframes", "a", "b", "dur", "err", "kind").collect()
        Q = fp.filter(F.col("pos") >= 0).select("q", "pos", "hash", "qtime")
        # 2. the hit budget
        counts = (
            Q.select("hash")
            .distinct()
            .repartitionByRange(n_partitions, "hash")
            .mapInArrow(_counts_fn(index_path), "hash long, n long")
        )
        U = Q.groupBy("q", "hash").agg(F.count("*").alias("mult")).join(counts, "hash")
        per_u = (
            F.col("n")
            if config.max_per_hash is None
            else F.when(F.col("n") > config.max_per_hash, F.lit(0)).otherwise(F.col("n"))
        )
        U = U.withColumn("per_u", per_u).withColumn("cost", F.col("per_u") * F.col("mult"))
        keep = F.col("per_u") > 0
        if config.max_hits is not None:
            by_q = Window.partitionBy("q")
            running = by_q.orderBy("per_u", "hash").rowsBetween(Window.unboundedPreceding, Window.currentRow)
            U = U.withColumn("total", F.sum("cost").over(by_q)).withColumn("cum", F.sum("cost").over(running))
            keep = keep & ((F.col("total") <= config.max_hits) | (F.col("cum") <= config.max_hits))
        QK = Q.join(U.filter(keep).select("q", "hash"), ["q", "hash"])
        # 3. the join with the posting table
        postings = (
            QK.select("hash")
            .distinct()
            .repartitionByRange(n_partitions, "hash")
            .mapInArrow(_lookup_fn(index_path), "hash long, track long, ptime long")
        )
        hits = (
            QK.join(postings, "hash")
            .select("q", "hash", "track", (F.col("ptime") - F.col("qtime")).alias("offset"))
            .persist()
        )
        try:
            # 4. the vote
            per_track = Window.partitionBy("q", "track")
            bins = (
                hits.groupBy("q", "track", "offset")
                .agg(F.count("*").alias("c"))
                .withColumn("score", F.sum("c").over(per_track.orderBy("offset").rangeBetween(-tol, tol)))
                .withColumn("track_hits", F.sum("c").over(per_track))
                .withColumn("rn", F.row_number().over(per_track.orderBy(F.desc("score"), F.asc("offset"))))
            )
            by_q = Window.partitionBy("q")
            best = (
                bins.filter(F.col("rn") == 1)
                .select("q", "track", "offset", F.col("score").alias("votes"), "track_hits")
                .withColumn("n_hit", F.count("*").over(by_q))
                .withColumn("rk", F.row_number().over(by_q.orderBy(F.desc("votes"), F.asc("track"))))
                .filter(F.col("rk") <= k)
            )
            if config.distinct:
                near = (
                    hits.join(best.select("q", "track", F.col("offset").alias("best")), ["q", "track"])
                    .filter(F.abs(F.col("offset") - F.col("best")) <= tol)
                    .groupBy("q", "track")
                    .agg(F.countDistinct("hash").alias("distinct"))
                )
                best = best.join(near, ["q", "track"], "left")
            else:
                best = best.withColumn("distinct", F.col("votes"))
            rows = best.select("q", "rk", "track", "offset", "votes", "distinct", "track_hits", "n_hit").collect()
        finally:
            hits.unpersist()
    finally:
        fp.unpersist()
    return meta, rows


def _search(
    session,
    ix,
    names: list[str],
    path: str,
    config,
    *,
    top: int,
    window: tuple[float, float] | None,
    max_duration_s: float,
    n_partitions: int,
    job_timeout_s: float | None,
) -> list:
    """The one-pass search of every clip (window), a speed per round: the clips (windows) still without
    a certain answer go on to the next speed, as the local search goes on. Per source: an error meta
    row, or ``[(a, b, duration, matches)]`` per window."""
    n_speeds = len(config.speeds)
    durations: dict[int, float] = {}
    errors: dict[int, Any] = {}
    wins: dict[tuple[int, int], dict] = {}  # (source, window) -> a, b, duration, candidates so far
    pending: dict[int, list[int] | None] = {i: None for i in range(len(names))}  # None: all (not cut yet)
    for si, s in _speeds(config):  # in the configured order, until each window is certain
        if not pending:
            break
        sources = [(i, names[i], w) for i, w in sorted(pending.items())]
        meta, rows = run_job(
            session,
            lambda: _votes(
                session,
                sources,
                path,
                ix.config,
                config,
                top=top,
                window=window,
                max_duration_s=max_duration_s,
                n_partitions=n_partitions,
                speed=(si, s),
            ),
            timeout_s=job_timeout_s,
            what=f"the one-pass vote at speed {s:g} ({len(sources)} sources)",
        )
        by_q: dict[int, list] = {}
        for r in rows:
            by_q.setdefault(int(r["q"]), []).append(r)
        for m in meta:
            q = int(m["q"])
            src, rest = divmod(q, _MAX_WINDOWS * n_speeds)
            if m["err"] is not None:
                errors[src] = m
                continue
            w = rest // n_speeds
            state = wins.setdefault((src, w), {"a": m["a"], "b": m["b"], "dur": m["dur"], "best": []})
            got = sorted(by_q.get(q, []), key=lambda r: r["rk"])
            cands = []
            if got:
                tracks, offsets, raw, dv, hits = (
                    np.array([r[c] for r in got], dtype=np.int64)
                    for c in ("track", "offset", "votes", "distinct", "track_hits")
                )
                votes = raw
                if config.distinct:
                    order = np.argsort(-dv, kind="stable")
                    tracks, offsets, votes, hits = (a[order] for a in (tracks, offsets, dv, hits))
                cands = candidates(
                    ix,
                    tracks,
                    offsets,
                    votes,
                    hits,
                    int(got[0]["n_hit"]),
                    speed=s,
                    q_frames=int(m["qframes"]),
                    n_speeds=n_speeds,
                    config=config,
                    durations=durations,
                )
            state["best"].extend(cands)
            state["done"] = bool(cands) and max(c.confidence for c in cands) >= config.stop_confidence
        pending = {}
        for (src, w), state in sorted(wins.items()):
            if not state["done"] and src not in errors:
                pending.setdefault(src, []).append(w)
    out = []
    for i in range(len(names)):
        if i in errors:
            out.append(errors[i])
            continue
        mine = sorted((w, st) for (src, w), st in wins.items() if src == i)
        out.append(
            [
                (
                    st["a"],
                    st["b"],
                    st["dur"],
                    matches_of(ix, rank(list(st["best"]), list(st["best"]), config, margin_tests=True)[:top], config),
                )
                for _, st in mine
            ]
        )
    return out


def _prepare(index_path, top, config, n_partitions, session, master):
    if not isinstance(top, int) or top < 1:
        raise ParameterError(f"top={top!r} must be an integer >= 1")
    path = os.path.abspath(os.fspath(index_path))
    ix = Index(path)
    session = session or get_session(master)
    parts = n_partitions or 4 * session.sparkContext.defaultParallelism
    if parts < 1:
        raise ParameterError(f"n_partitions={n_partitions} must be >= 1")
    return path, ix, session, one_pass(config), parts


def vote_clips_spark(
    index_path: str | os.PathLike[str],
    clips: Sequence[str | os.PathLike[str]],
    *,
    top: int = 3,
    config=None,
    master: str | None = None,
    session=None,
    n_partitions: int | None = None,
    max_duration_s: float | None = 60.0,
    job_timeout_s: float | None = None,
) -> list[ClipOutcome]:
    """The one-pass search of many clips as a distributed join and vote; one outcome per clip, in order.

    Each record equals ``identify(index, clip, top=top, config=one_pass(config))``
    (see the module doc). ``config`` is taken as :func:`one_pass` of it.
    """
    names = [os.fspath(c) for c in clips]
    if not names:
        return []
    path, ix, session, cfg, parts = _prepare(index_path, top, config, n_partitions, session, master)
    try:
        res = _search(
            session,
            ix,
            names,
            path,
            cfg,
            top=top,
            window=None,
            max_duration_s=max_duration_s,
            n_partitions=parts,
            job_timeout_s=job_timeout_s,
        )
    finally:
        ix.close()
    out = []
    for i, name in enumerate(names):
        r = res[i]
        if not isinstance(r, list):
            out.append(ClipOutcome(QueryResult(query=name, error=r["err"]), r["kind"]))
        else:
            out.append(ClipOutcome(QueryResult(query=name, matches=r[0][3])))
    return out


def vote_recordings_spark(
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
) -> list:
    """What played when, every window of every recording searched in one distributed pass.

    Returns a :class:`~songmine.fingerprint.monitor.RecordingResult` per
    recording, equal to ``identify_recording(index, rec, window_s=…, hop_s=…,
    config=one_pass(config))``.
    """
    hop = check_windows(window_s, hop_s)
    names = [os.fspath(r) for r in recordings]
    if not names:
        return []
    path, ix, session, cfg, parts = _prepare(index_path, top, config, n_partitions, session, master)
    limit = MAX_RECORDING_S if max_duration_s is None else max_duration_s
    try:
        res = _search(
            session,
            ix,
            names,
            path,
            cfg,
            top=top,
            window=(window_s, hop),
            max_duration_s=limit,
            n_partitions=parts,
            job_timeout_s=job_timeout_s,
        )
        sr = ix.config.sr
        out = []
        for i, name in enumerate(names):
            r = res[i]
            if not isinstance(r, list):
                out.append(RecordingResult(recording=name, error=r["err"]))
                continue
            wins = [
                WindowResult(a / sr, b / sr, QueryResult(query=window_name(name, a / sr, b / sr), matches=m))
                for a, b, _, m in r
            ]
            out.append(finish(name, r[0][2] if r else 0.0, wins, window_s=window_s, index=ix))
    finally:
        ix.close()
    return out
