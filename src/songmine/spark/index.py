"""Indexing on Spark (``songmine index DIR --engine spark``): the executors decode and fingerprint.

The run is :func:`songmine.fingerprint.index.index_files` with a Spark
*runner*: the driver walks the folders, skips files whose path, size and
mtime are already indexed, and deals the rest (largest first) into small
tasks; each task runs :func:`~songmine.fingerprint.index.process_file` — the
very function a local pool worker runs — on its files, on an executor. The
content already in the index travels as a broadcast set of sha256s, so known
content is hashed but not decoded there (resumable: a rerun after a crash
redoes only what was not committed).

Each task is one small Spark job, at most a few per executor core in flight
(:func:`songmine.spark.session.run_jobs`), so the results stream back as
tasks finish and the driver holds a bounded number of them; the driver, the
index's single writer, commits them in batches as segments exactly as a local
run does (same deduplication by sha256, same batches, same final merge of the
run's segments). Hence the same tracks and the same postings as a local build
of the same files; only the track ids follow the order in which files finish,
as with a local pool.

A bad file is a ``failed`` line of the report, never an abort. A task whose
Python worker dies (a decoder crash, the OOM killer) is retried file by file,
so only the culprit is reported; a lost Spark context ends the run with an
:class:`~songmine.errors.EngineError` after committing what had arrived.

Executors need the audio files at the same paths as the driver (a shared
filesystem) and songmine installed; the index itself is written by the driver
only (``docs/spark.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Any

from ..errors import EngineError, ParameterError, one_line
from ..fingerprint.index import Index, IndexReport, index_files, process_file
from ..fingerprint.index.build import BATCH_POSTINGS, BATCH_TRACKS
from .session import get_session, run_jobs

__all__ = ["index_files_spark", "SparkRunner"]

#: A file whose task (alone) lost its Python worker.
DIED = "{path}: the Spark task died while processing this file (decoder crash or out of memory)"


def single_threaded() -> None:
    """One BLAS/OpenMP thread per Python worker: Spark already runs one worker per core."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _index_task(paths: Iterable[str], config: Any, extractor, known) -> Iterator[tuple[str, str, Any]]:
    """A Spark task: :func:`process_file` on each of its files, ``(path, kind, value)`` each."""
    single_threaded()
    for path in paths:
        kind, value = process_file(path, config, extractor, known)
        yield path, kind, value


class SparkRunner:
    """Runs an indexing run's files as Spark tasks (a :data:`~songmine.fingerprint.index.build.Runner`).

    Parameters
    ----------
    session : SparkSession
    files_per_task : int or None
        Files per task (one small job each); default: enough tasks for about
        four per core, at most 8 files each, so a slow file holds up little.
    inflight : int or None
        Jobs in flight at once (default twice the cores Spark offers).
    job_timeout_s : float or None
        Bound on one task's job; a task over it is cancelled and its files
        are retried one by one (each with the same bound).
    """

    def __init__(
        self,
        session,
        *,
        files_per_task: int | None = None,
        inflight: int | None = None,
        job_timeout_s: float | None = None,
    ):
        if files_per_task is not None and files_per_task < 1:
            raise ParameterError(f"files_per_task={files_per_task} must be >= 1")
        if inflight is not None and inflight < 1:
            raise ParameterError(f"inflight={inflight} must be >= 1")
        self.session = session
        self.files_per_task = files_per_task
        self.inflight = inflight
        self.job_timeout_s = job_timeout_s
        self.n_jobs = 0  # jobs run by the last call (tasks plus file-by-file retries)

    def __call__(
        self, todo: Sequence[str], config: Any, extractor, known: Container[str]
    ) -> Iterator[tuple[str, str, Any]]:
        if not todo:
            return
        sc = self.session.sparkContext
        cores = max(1, sc.defaultParallelism)
        per = self.files_per_task or max(1, min(8, math.ceil(len(todo) / (4 * cores))))
        tasks = [list(todo[i : i + per]) for i in range(0, len(todo), per)]
        bc = sc.broadcast(known)
        self.n_jobs = 0
        try:
            retry: list[str] = []
            for i, got in run_jobs(
                self.session,
                (self._job(t, config, extractor, bc) for t in tasks),
                inflight=self.inflight or 2 * cores,
                timeout_s=self.job_timeout_s,
                what=f"indexing {len(todo)} files",
            ):
                self.n_jobs += 1
                if isinstance(got, EngineError):
                    self._check_alive(got)
                    retry += tasks[i] if len(tasks[i]) > 1 else []
                    if len(tasks[i]) == 1:
                        yield "failed", tasks[i][0], self._reason(tasks[i][0], got)
                    continue
                for path, kind, value in got:
                    yield kind, path, value
            if retry:  # alone, so that only the file that kills its worker is reported
                for i, got in run_jobs(
                    self.session,
                    (self._job([p], config, extractor, bc) for p in retry),
                    inflight=self.inflight or 2 * cores,
                    timeout_s=self.job_timeout_s,
                    what="indexing again, file by file",
                ):
                    self.n_jobs += 1
                    if isinstance(got, EngineError):
                        self._check_alive(got)
                        yield "failed", retry[i], self._reason(retry[i], got)
                        continue
                    for path, kind, value in got:
                        yield kind, path, value
        finally:
            try:
                bc.unpersist()
            except Exception:  # noqa: BLE001  (the context may be gone)
                pass

    def _job(self, paths: list[str], config, extractor, bc) -> Callable[[], list]:
        sc = self.session.sparkContext
        return lambda: (
            sc.parallelize(paths, 1).mapPartitions(lambda it: _index_task(it, config, extractor, bc.value)).collect()
        )

    def _check_alive(self, exc: EngineError) -> None:
        """A failed job is the file's fault unless the Spark context itself is gone."""
        try:
            stopped = self.session.sparkContext._jsc.sc().isStopped()
        except Exception:  # noqa: BLE001  (a dead gateway raises anything)
            stopped = True
        if stopped:
            raise EngineError(f"Spark stopped during indexing: {one_line(exc)}") from exc

    @staticmethod
    def _reason(path: str, exc: EngineError) -> str:
        text = one_line(exc)
        if "did not finish within" in text:
            return f"{path}: {text.split(': ', 1)[-1]}"
        return DIED.format(path=path)


def index_files_spark(
    index: Index,
    paths: Iterable[str | os.PathLike[str]],
    *,
    master: str | None = None,
    session=None,
    prune: bool = False,
    progress: Callable[[int, int], None] | None = None,
    extractor=None,
    batch_tracks: int = BATCH_TRACKS,
    batch_postings: int = BATCH_POSTINGS,
    merge: bool = True,
    files_per_task: int | None = None,
    job_timeout_s: float | None = None,
) -> IndexReport:
    """:func:`~songmine.fingerprint.index.index_files` with the files decoded and fingerprinted by Spark.

    Same parameters and report as the local call (``jobs`` is Spark's cores);
    ``master`` (default: the running shared session, else ``local[*]``) or
    ``session`` picks the cluster. See the module doc.

    Raises
    ------
    EngineError
        Spark cannot start, or stops during the run (what arrived is committed).
    """
    runner = SparkRunner(session or get_session(master), files_per_task=files_per_task, job_timeout_s=job_timeout_s)
    return index_files(
        index,
        paths,
        prune=prune,
        progress=progress,
        extractor=extractor,
        batch_tracks=batch_tracks,
        batch_postings=batch_postings,
        merge=merge,
        runner=runner,
    )
