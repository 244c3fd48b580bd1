"""Indexing runs: decode + fingerprint files in worker processes, commit batches as segments.

The parent process is the single writer. Workers hash each file (sha256),
decode it at the index's rate, fingerprint it and read its tags; the parent
skips content it already has, collects results and commits a new segment every
``batch_tracks`` tracks (or ``batch_postings`` postings). So:

* ``kill -9`` loses at most the uncommitted batch; a rerun skips everything
  committed (same path, size and mtime → not even re-hashed; same sha256 →
  not decoded) and does the rest;
* Ctrl-C commits every file already fingerprinted, then raises
  :class:`IndexingInterrupted` (a ``KeyboardInterrupt``) carrying the report;
* one bad file is a line in ``IndexReport.failed``, never an abort — a worker
  that dies (e.g. killed by the OOM killer) fails only its in-flight files;
* memory is flat in library size but for 40 bytes a track: at most
  ``2 × jobs`` files in flight, one batch of postings in the parent, the
  catalogue's rows asked for by path and content hash (indexed look-ups) and
  the content every worker may skip as sorted digests
  (:class:`~songmine.fingerprint.index.contents.ContentSet`);
* workers die with the parent, even one killed with ``kill -9``
  (:func:`songmine.workers.pool`).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...audio import info, load
from ...errors import EngineError, ParameterError, SongmineError, one_line
from ...library import file_sha256, iter_audio_files
from ...methods import method_of_config, resolve
from ...workers import default_jobs, pool
from ..landmarks import FingerprintConfig, fingerprint
from ..profiles import profile, supported
from .contents import ContentSet
from .store import Index, NewTrack, TrackRecord, UnknownTrackError

__all__ = [
    "IndexReport",
    "IndexingInterrupted",
    "index_files",
    "fingerprint_file",
    "process_file",
    "add_file",
    "AddedFile",
    "Runner",
]

log = logging.getLogger(__name__)

#: Files whose catalogue rows are asked for in one go when a run decides what to skip.
_STAT_CHUNK = 2000
#: Default batch size: a new segment every this many new tracks...
BATCH_TRACKS = 50
#: ...or this many postings, whichever comes first.
BATCH_POSTINGS = 2_000_000

Extractor = Callable[[np.ndarray, Any], tuple[np.ndarray, np.ndarray]]
#: A method's per-track payload (:attr:`songmine.methods.Method.payload`): ``(path, config) -> (duration_s, data)``.
PayloadFunction = Callable[[str, Any], tuple[float, bytes]]
#: Who processes the files of a run: ``runner(todo, config, extractor, known)`` yields
#: ``(kind, path, value)`` per file, in any order (what :func:`process_file` returns, with the path).
#: The default is the local process pool; ``songmine.spark.index`` runs the files as Spark tasks.
Runner = Callable[[Sequence[str], Any, "Extractor | None", Container[str]], Iterable[tuple[str, str, Any]]]


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What an indexing run did.

    ``failed`` lists ``(path, one-line reason)``; ``removed`` counts tracks
    pruned because their file is gone; ``audio_seconds`` is the audio decoded
    and added in this run, so ``audio_seconds / seconds`` is the speed in ×
    real time.
    """

    added: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    removed: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    n_postings: int = 0
    interrupted: bool = False

    @property
    def realtime_factor(self) -> float:
        """Audio seconds indexed per wall-clock second."""
        return self.audio_seconds / self.seconds if self.seconds > 0 else float("nan")


class IndexingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`index_files`, after the finished work was committed.

    ``report`` holds what was done (``interrupted=True``).
    """

    def __init__(self, report: IndexReport):
        super().__init__("indexing interrupted")
        self.report = report


# ------------------------------------------------------------------ worker side
_W: dict[str, Any] = {}


def _init_worker(
    config: Any, extractor: Extractor | None, known: Container[str], payload: PayloadFunction | None = None
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    _W.update(config=config, extractor=extractor, known=known, payload=payload)


def payload_function(config: Any) -> PayloadFunction | None:
    """The payload function of the method whose index stores ``config`` (None: a posting method)."""
    ref = method_of_config(config).payload
    return None if ref is None else resolve(ref)


def fingerprint_file(path: str | os.PathLike[str], config: Any, extractor: Extractor | None = None) -> NewTrack:
    """Hash, decode, fingerprint and tag one file (what a worker does).

    For a method that keeps a payload per track (``seed``, ``sketch``) the
    payload is computed instead of postings.

    Raises
    ------
    DecodeError
        When the file cannot be decoded.
    """
    if extractor is None:
        extractor = fingerprint
    path = os.fspath(path)
    st = os.stat(path)
    sha = file_sha256(path)
    return _fingerprint(path, sha, st, config, extractor, payload_function(config))


def _with_payload(path, sha, st, config, payload: PayloadFunction) -> NewTrack:
    duration_s, data = payload(path, config)
    tags = info(path).tags
    empty = np.zeros(0, dtype=np.uint32)
    return NewTrack(
        path=path,
        sha256=sha,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        duration_s=float(duration_s),
        title=tags.get("title") or None,
        artist=tags.get("artist") or None,
        album=tags.get("album") or None,
        hashes=empty,
        times=empty,
        payload=bytes(data),
    )


def _fingerprint(path, sha, st, config, extractor, payload: PayloadFunction | None = None) -> NewTrack:
    if payload is not None:
        return _with_payload(path, sha, st, config, payload)
    y = load(path, sr=config.sr)
    hashes, times = extractor(y, config)
    tags = info(path).tags
    prof = None
    if isinstance(config, FingerprintConfig) and supported(
        config.sr
    ):  # landmark indexes keep a profile to verify uncertain answers
        prof = profile(y, config.sr).to_bytes()
    return NewTrack(
        path=path,
        sha256=sha,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        duration_s=y.shape[-1] / config.sr,
        title=tags.get("title") or None,
        artist=tags.get("artist") or None,
        album=tags.get("album") or None,
        hashes=np.asarray(hashes, dtype=np.uint32),
        times=np.asarray(times, dtype=np.uint32),
        profile=prof,
    )


def _work(path: str) -> tuple[str, Any]:
    """Worker task: :func:`process_file` with the pool's settings."""
    return process_file(path, _W["config"], _W["extractor"], _W["known"], _W.get("payload"))


def process_file(
    path: str,
    config: Any,
    extractor: Extractor | None = None,
    known: Container[str] = frozenset(),
    payload: PayloadFunction | None = None,
) -> tuple[str, Any]:
    """The per-file work of an indexing run, whatever runs it (a pool worker, a Spark task).

    Returns ``("known", (sha, size, mtime_ns))`` when the content (sha256) is in
    ``known`` (not decoded), ``("ok", NewTrack)``, or ``("failed", one-line reason)``:
    a bad file is a result, never an exception. ``payload`` defaults to the
    payload function of the method of ``config`` (:func:`payload_function`).
    """
    try:
        st = os.stat(path)
        sha = file_sha256(path)
        if sha in known:
            return "known", (sha, st.st_size, st.st_mtime_ns)
        if payload is None:
            payload = payload_function(config)
        if extractor is None and payload is None:
            extractor = fingerprint
        return "ok", _fingerprint(path, sha, st, config, extractor, payload)
    except SongmineError as exc:
        return "failed", one_line(exc)
    except OSError as exc:
        return "failed", f"{path}: {exc.strerror or exc}"
    except MemoryError:
        return "failed", f"{path}: out of memory while decoding"
    except Exception as exc:  # an extractor bug must not abort a 10,000-file run
        return "failed", f"{path}: {type(exc).__name__}: {one_line(exc)}"


# ------------------------------------------------------------------ parent side
def index_files(
    index: Index,
    paths: Iterable[str | os.PathLike[str]],
    *,
    jobs: int | None = None,
    prune: bool = False,
    progress: Callable[[int, int], None] | None = None,
    extractor: Extractor | None = None,
    batch_tracks: int = BATCH_TRACKS,
    batch_postings: int = BATCH_POSTINGS,
    merge: bool = True,
    runner: Runner | None = None,
) -> IndexReport:
    """Add the audio files under ``paths`` to ``index`` (recursively, in parallel).

    Parameters
    ----------
    index : Index
        Opened for writing (this process becomes its single writer meanwhile).
    paths : iterable of paths
        Files and folders; folders are walked recursively
        (:func:`songmine.library.iter_audio_files`).
    jobs : int or None
        Worker processes (default: :func:`songmine.workers.default_jobs`, every core this process may
        run on). ``1`` works in-process.
    prune : bool
        Also remove tracks whose file no longer exists.
    progress : callable(done, total) or None
        Called after each file.
    extractor : callable(y, config) -> (hashes, times) or None
        The fingerprint function (default :func:`songmine.landmarks.fingerprint`);
        must be picklable (a module-level function) when ``jobs > 1``.
    batch_tracks, batch_postings : int
        A segment is committed when the pending batch reaches either.
    merge : bool
        At the end (not after Ctrl-C), when the run committed more than one
        batch, merge the segments committed since it started into one
        (``Index._merge_run``): a lookup costs about one search per segment,
        and the run's postings are rewritten once more for it. A run of one
        batch (the server adding a file) merges nothing, not even segments
        another writer committed meanwhile.
    runner : callable or None
        Who processes the files (:data:`Runner`): default, a pool of ``jobs``
        local processes; :func:`songmine.spark.index.index_files_spark` passes
        Spark tasks. Whatever runs them, each file gets :func:`process_file`
        and this process commits the results, so the index is the same.

    Returns
    -------
    IndexReport

    Raises
    ------
    ParameterError
        When a path does not exist or ``jobs`` < 1.
    IndexingInterrupted
        On Ctrl-C, after committing the files already fingerprinted.
    """
    if jobs is None:
        jobs = default_jobs()
    if not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"jobs={jobs!r} must be a positive integer")
    if batch_tracks < 1 or batch_postings < 1:
        raise ParameterError(f"batch_tracks={batch_tracks} and batch_postings={batch_postings} must be >= 1")
    t0 = time.perf_counter()
    config = index.config
    run = _Run(index, batch_tracks, batch_postings)
    gen = None

    # The write lock is taken per commit, not for the whole run, so another
    # writer (the server adding a track) is never blocked for long; commits
    # re-check content against what others committed meanwhile.
    index.refresh()
    with index._mutex:
        first_segment = int(index._setting("next_segment_id"))  # this run's segments get ids from here on
    files = [str(Path(p).resolve()) for p in iter_audio_files(paths)]
    todo: list[str] = []
    sizes: dict[str, int] = {}
    for lo in range(0, len(files), _STAT_CHUNK):  # loop over chunks of files: the catalogue's rows of each
        part = files[lo : lo + _STAT_CHUNK]
        rows = index._files_at(part)
        for f in part:
            row = rows.get(f)
            try:
                st = os.stat(f)
            except OSError as exc:
                run.failed.append((f, f"{f}: {exc.strerror or exc}"))
                continue
            if row is not None and row[1] == st.st_size and row[2] == st.st_mtime_ns:
                run.unchanged += 1
            else:
                todo.append(f)
                sizes[f] = st.st_size
                if row is not None:
                    run.previous[f] = row[0]
    if jobs > 1 or runner is not None:
        # largest files first (size as a proxy for duration): the run does not end with
        # one worker busy on a long track while the others are idle
        todo.sort(key=sizes.__getitem__, reverse=True)
    done = len(files) - len(todo)
    if progress is not None:
        progress(done, len(files))

    try:
        known = _known_contents(index, todo, jobs, runner)
        gen = iter(
            runner(todo, config, extractor, known)
            if runner is not None
            else _results(todo, jobs, config, extractor, known, payload_function(config))
        )
        for kind, path, value in gen:
            run.take(kind, path, value)
            done += 1
            if progress is not None:
                progress(done, len(files))
        _close(gen)
        run.flush()
        if prune:
            gone = [t for t in index.track_ids().tolist() if not os.path.exists(index.track(t).path)]
            run.removed = index.remove(gone) if gone else 0
        if merge and run.commits > 1:  # (one commit: nothing of ours to merge, maybe another writer's)
            index._merge_run(first_segment)
    except KeyboardInterrupt:
        if gen is not None:
            _close(gen)  # stop the pool: workers finish their current file, queued ones are cancelled
        run.flush()
        raise IndexingInterrupted(run.report(t0, interrupted=True)) from None
    except EngineError:  # the runner's engine failed (a Spark cluster lost): keep what was fingerprinted
        if gen is not None:
            _close(gen)
        run.flush()
        raise
    return run.report(t0)


def _known_contents(index: Index, todo: Sequence[str], jobs: int, runner: Runner | None) -> Container[str]:
    """The content hashes the files of ``todo`` are skipped for (already in the index).

    Nothing to do, nothing to hold; in this process (one job, no runner: the server adding a file)
    the catalogue is asked per file; other processes get the live tracks' hashes of the snapshot
    refreshed as the run began, as sorted digests.
    """
    if not todo:
        return ContentSet()
    if jobs == 1 and runner is None:
        return _CatalogueContents(index)
    return index._tracks.live_contents()


class _CatalogueContents(Container[str]):
    """The live tracks' content hashes, asked of the catalogue one at a time (its live-hash index)."""

    def __init__(self, index: Index):
        self.index = index

    def __contains__(self, sha: object) -> bool:
        return isinstance(sha, str) and self.index._live_id_of(sha) is not None


def _close(gen: Any) -> None:
    """Stop a runner's result stream (a generator stops its pool or its Spark jobs)."""
    close = getattr(gen, "close", None)
    if close is not None:
        close()


class _Run:
    """Parent-side bookkeeping of one run: dedup by sha256, batching, commits.

    It holds the run's own files only: what the catalogue knows of content and paths is asked
    of SQLite (indexed look-ups), so a run beside 160,000 tracks holds what it holds beside none.
    """

    def __init__(self, index: Index, batch_tracks: int, batch_postings: int):
        self.index = index
        self.batch_tracks, self.batch_postings = batch_tracks, batch_postings
        #: path -> the track id of the content a changed file held (replaced when its new content commits)
        self.previous: dict[str, int] = {}
        self.batch: list[NewTrack] = []
        self.batch_shas: set[str] = set()
        self.replace: list[int] = []
        self.n_batch_postings = 0
        self.commits = 0
        self.added = self.unchanged = self.removed = self.n_postings = 0
        self.audio_seconds = 0.0
        self.failed: list[tuple[str, str]] = []

    def take(self, kind: str, path: str, value: Any) -> None:
        if kind == "failed":
            self.failed.append((path, value))
            return
        ix = self.index
        if kind == "known":
            sha, size, mtime_ns = value
            tid = ix._live_id_of(sha)
            if tid is None:  # removed by another writer since the run began
                self.unchanged += 1
                return
            try:
                old = ix.track(tid).path
            except UnknownTrackError:  # committed by another writer, not in this snapshot yet
                self.unchanged += 1
                return
            if old == path or not os.path.exists(old):  # touched, or moved/renamed: same content
                ix._update_paths([(tid, path, size, mtime_ns)])
            self.unchanged += 1
            return
        t: NewTrack = value
        # the same content twice in this run, or already in the index (a copy, or another writer's)
        if t.sha256 in self.batch_shas or ix._live_id_of(t.sha256) is not None:
            self.unchanged += 1
            return
        prev = self.previous.pop(path, None)  # this path held other content before: replace it
        if prev is not None:
            self.replace.append(prev)
        self.batch.append(t)
        self.batch_shas.add(t.sha256)
        self.n_batch_postings += t.hashes.shape[0]
        if len(self.batch) >= self.batch_tracks or self.n_batch_postings >= self.batch_postings:
            self.flush()

    def flush(self) -> None:
        if not self.batch and not self.replace:
            return
        ids = self.index._add_tracks(self.batch, replace=self.replace)
        self.commits += 1
        for (_, created), t in zip(ids, self.batch):
            if created:
                self.added += 1
                self.audio_seconds += t.duration_s
                self.n_postings += t.hashes.shape[0]
            else:  # another writer committed the same content meanwhile
                self.unchanged += 1
        self.batch, self.batch_shas, self.replace, self.n_batch_postings = [], set(), [], 0

    def report(self, t0: float, *, interrupted: bool = False) -> IndexReport:
        return IndexReport(
            added=self.added,
            unchanged=self.unchanged,
            failed=list(self.failed),
            removed=self.removed,
            seconds=time.perf_counter() - t0,
            audio_seconds=self.audio_seconds,
            n_postings=self.n_postings,
            interrupted=interrupted,
        )


_DIED = "{path}: the worker process died while processing this file (decoder crash or out of memory)"


def _alone(path: str, initargs: tuple) -> tuple[str, Any] | None:
    """Process one file in a fresh one-worker pool; None when that worker dies too."""
    with pool(1, initializer=_init_worker, initargs=initargs) as ex:
        try:
            return ex.submit(_work, path).result()
        except cf.process.BrokenProcessPool:
            return None


def _preload(extractor: Callable | None) -> None:
    """Import the decoding and fingerprinting stack here, once, before workers are forked.

    With the ``fork`` start method the workers inherit the imported modules
    instead of each importing them again (~0.5 CPU-second per worker: a few %
    of a short run). Nothing to gain with ``spawn``/``forkserver``: skipped.
    A payload function's own ``preload`` (e.g. compiling numba kernels) runs here too.
    """
    if multiprocessing.get_start_method() != "fork":  # what ProcessPoolExecutor will use
        return
    import av  # noqa: F401
    import soxr  # noqa: F401

    if extractor is None:
        import scipy.fft  # noqa: F401
        import scipy.ndimage  # noqa: F401
    else:
        warm = getattr(extractor, "preload", None)
        if callable(warm):
            warm()


def _results(
    todo: Sequence[str],
    jobs: int,
    config: Any,
    extractor: Extractor | None,
    known: Container[str],
    payload: PayloadFunction | None = None,
):
    """Yield ``(kind, path, value)`` per file, in completion order, with at most 2×jobs in flight."""
    if not todo:
        return
    if jobs == 1:
        _W.update(config=config, extractor=extractor, known=known, payload=payload)
        for path in todo:
            kind, value = _work(path)
            yield kind, path, value
        return
    _preload(extractor if payload is None else payload)
    pending = iter(todo)
    max_inflight = 2 * jobs
    while True:  # one pass per pool; a pool that breaks (worker killed) is replaced
        initargs = (config, extractor, known, payload)
        ex = pool(jobs, initializer=_init_worker, initargs=initargs)
        inflight: dict[cf.Future, str] = {}
        broken = False
        try:
            while True:
                while len(inflight) < max_inflight:
                    path = next(pending, None)
                    if path is None:
                        break
                    inflight[ex.submit(_work, path)] = path
                if not inflight:
                    return
                finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                for fut in finished:
                    path = inflight.pop(fut)
                    try:
                        kind, value = fut.result()
                    except cf.process.BrokenProcessPool:
                        broken = True
                        inflight[fut] = path  # a suspect like the others still in flight
                        continue
                    yield kind, path, value
                if broken:
                    # a worker died (crash in a decoder, OOM killer): retry each file that was in
                    # flight alone, so only the culprit is reported, then go on with a new pool
                    suspects = list(inflight.values())
                    inflight.clear()
                    for path in suspects:
                        r = _alone(path, initargs)
                        yield ("failed", path, _DIED.format(path=path)) if r is None else (r[0], path, r[1])
                    break
        finally:
            for fut in inflight:
                fut.cancel()
            ex.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class AddedFile:
    """What :func:`add_file` did: the track holding the file's audio, whether it is new, or why not."""

    track: TrackRecord | None
    created: bool
    error: str | None = None


def add_file(index: Index, path: str | os.PathLike[str]) -> AddedFile:
    """Index one file and say which track holds its audio afterwards.

    The same audio already indexed (by sha256) is not added again: the existing
    track comes back with ``created=False``. A file that cannot be indexed gives
    ``track=None`` and the reason.
    """
    sha = file_sha256(os.fspath(path))
    before = index._live_id_of(sha)  # (the catalogue's live-hash index: not every track listed)
    report = index_files(index, [path], jobs=1)
    after = index._live_id_of(sha)
    if after is None:
        return AddedFile(None, False, report.failed[0][1] if report.failed else "the file could not be indexed")
    index.refresh()  # (a track another writer committed since the run's own refresh)
    return AddedFile(index.track(after), after != before)
