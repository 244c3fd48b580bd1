"""Batch feature extraction as a Spark job (``songmine features DIR --engine spark``).

The same per-file work as :func:`songmine.catalog.features.extract_folder`
(decode at the native rate, 518 FMA features, optional tags; one bad file is a
:class:`~songmine.catalog.features.Failure`, never an aborted batch) mapped
over the file list by Spark: each task processes a slice of the files, so a
cluster of workers shares the catalogue. Output is the same DataFrame (index
``track_id``, the 518 feature columns, float32) and the same failures list.

Workers must see the files at the same paths (a shared filesystem) and have
songmine with its audio dependencies installed (see ``docs/spark.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..catalog.batch import Failure, extract_one, file_result, results_frame
from ..catalog.decoding import DECODERS
from ..errors import ParameterError
from .session import get_session, run_job

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["extract_folder_spark"]


def _work_partition(items):
    """A Spark task: one worker Python process handles a slice of the files, one at a time."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    for it in items:
        yield extract_one(it)


def extract_folder_spark(
    paths: Sequence[str | os.PathLike[str]] | dict[str, str | os.PathLike[str]],
    *,
    master: str | None = None,
    n_partitions: int | None = None,
    resume_from: pd.DataFrame | None = None,
    with_tags: bool = False,
    progress: Callable[[int, int], None] | None = None,
    job_timeout_s: float | None = None,
    decoder: str = "pyav",
) -> tuple[pd.DataFrame, list[Failure]]:
    """Features of many files computed by a Spark job; same contract as ``extract_folder``.

    Parameters
    ----------
    paths : sequence of paths, or dict track_id → path
    master : str or None
        Spark master (default: the running shared session, else ``local[*]``).
    n_partitions : int or None
        Tasks; default ``min(files, 4 × defaultParallelism)`` (several per core
        so a slow file does not hold a whole core's share).
    resume_from : DataFrame, optional
        Rows already computed (kept, not recomputed).
    with_tags : bool
        Also read tags (``df.attrs["tags"]``).
    progress : callable(done, total), optional
        Called before and after the job (a Spark job reports no per-file progress).
    job_timeout_s : float or None
        Bound on the whole job (:func:`songmine.spark.run_job`).
    decoder : {"pyav", "ffmpeg"}
        Who decodes compressed files (:func:`songmine.catalog.features.decode`).
    """
    items = list(paths.items()) if isinstance(paths, dict) else [(os.fspath(p), os.fspath(p)) for p in paths]
    items = [(str(k), os.fspath(v)) for k, v in items]
    if decoder not in DECODERS:
        raise ParameterError(f"decoder={decoder!r}: expected one of {', '.join(DECODERS)}")
    if n_partitions is not None and n_partitions < 1:
        raise ParameterError(f"n_partitions={n_partitions} must be >= 1")
    rows: dict[str, np.ndarray] = {}
    tags: dict[str, dict[str, Any]] = {}
    durations: dict[str, float] = {}
    if resume_from is not None and len(resume_from):
        prev = resume_from.dropna(how="any")
        rows.update(zip(prev.index.astype(str), prev.to_numpy(dtype=np.float32)))
        tags.update(resume_from.attrs.get("tags", {}))
    todo = [(k, v, with_tags, decoder) for k, v in items if k not in rows]
    total = len(items)
    if progress:
        progress(total - len(todo), total)
    results: list = []
    if todo:
        session = get_session(master)
        sc = session.sparkContext
        parts = n_partitions or min(len(todo), 4 * sc.defaultParallelism)
        # big files first, dealt round-robin, so partitions get similar amounts of audio
        todo.sort(key=lambda it: -_size(it[1]))
        slices = [todo[i::parts] for i in range(parts)]
        rdd = sc.parallelize(slices, parts).flatMap(lambda s: s)
        results = run_job(
            session,
            lambda: rdd.mapPartitions(_work_partition).collect(),
            timeout_s=job_timeout_s,
            what=f"feature extraction of {len(todo)} files",
        )
    failures: dict[str, Failure] = {}
    where = dict(items)
    for res in results:
        file_result(res, where=where, rows=rows, durations=durations, tags=tags, failures=failures)
    if progress:
        progress(total, total)
    order = {k: i for i, (k, _) in enumerate(items)}
    return results_frame(rows, tags, durations), sorted(failures.values(), key=lambda f: order.get(f.track_id, 0))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
