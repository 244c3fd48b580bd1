"""FMA features of many files: parallel, resumable, one bad file never fatal.

The per-file work (:func:`extract_one`) and how its results are filed
(:func:`file_result`, :func:`results_frame`) are shared by the local process pool
(:func:`extract_folder`) and the Spark job (:mod:`songmine.spark.features`).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import atomic_path
from ..errors import DataError, DecodeError, ParameterError
from ..workers import pool
from .decoding import DECODERS, decode
from .librosa050 import extract_families, summarize
from .schema import FEATURE_COLUMNS
from .tags import read_tags

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["Failure", "extract_folder", "extract_one", "file_result", "results_frame", "write_features_csv"]


@dataclass(frozen=True, slots=True)
class Failure:
    """A file that could not be processed, and why (one line)."""

    track_id: str
    path: str
    error: str


def extract_one(args: tuple) -> tuple[str, np.ndarray | None, str | None, float, dict[str, Any], float]:
    """One file's work (in a worker process or a Spark task): (track_id, path, with_tags[, decoder]) → (track_id, vector | None, error | None, duration_s,
    tags, cpu_s); cpu_s includes a decoder child process (``decoder="ffmpeg"``)."""
    track_id, path, with_tags = args[:3]
    decoder = args[3] if len(args) > 3 else "pyav"
    t0 = _cpu_s()
    tags: dict[str, Any] = {}
    try:
        y, sr = decode(path, decoder=decoder)
        dur = len(y) / sr
        vec = summarize(extract_families(y, sr))
        if not np.all(np.isfinite(vec)):
            bad = [FEATURE_COLUMNS[i] for i in np.flatnonzero(~np.isfinite(vec))[:3]]
            raise DataError(f"non-finite features {bad}")
        if with_tags:
            tags = read_tags(path)
        return track_id, vec, None, dur, tags, _cpu_s() - t0
    except (DecodeError, ParameterError, DataError) as exc:
        return track_id, None, str(exc).splitlines()[0], 0.0, tags, _cpu_s() - t0
    except Exception as exc:  # one bad file never aborts the batch
        err = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return track_id, None, err, 0.0, tags, _cpu_s() - t0


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (an ``ffmpeg`` decoder)."""
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + c.ru_utime + c.ru_stime


def file_result(res: tuple, *, where: dict, rows: dict, durations: dict, tags: dict, failures: dict) -> None:
    """File one worker result ``(track_id, vector, error, duration, tags, cpu_s)`` into the run's tables."""
    tid, vec, err, dur, tg, _cpu = res
    if vec is None:
        failures[tid] = Failure(tid, where.get(tid, tid), err or "failed")
        log.info("features: %s: %s", tid, err)
    else:
        rows[tid] = vec
        durations[tid] = dur
        if tg:
            tags[tid] = tg


def extract_folder(
    paths: Sequence[str | os.PathLike[str]] | dict[str, str | os.PathLike[str]],
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    resume_from: pd.DataFrame | None = None,
    with_tags: bool = False,
    checkpoint: Callable[[pd.DataFrame, dict[str, dict[str, Any]]], None] | None = None,
    checkpoint_every_s: float = 30.0,
    decoder: str = "pyav",
) -> tuple[pd.DataFrame, list[Failure]]:
    """Features of many files, in parallel processes, skipping those already done.

    Parameters
    ----------
    paths : sequence of paths, or dict track_id → path
        With a plain sequence, the track id is the path as given.
    jobs : int
        Worker processes (1 = in this process).
    progress : callable(done, total), optional
        Called after every file.
    resume_from : DataFrame, optional
        A previous result (same columns); rows whose ``track_id`` is in it are
        not recomputed and are kept in the output.
    with_tags : bool
        Also read tags; they are returned in ``df.attrs["tags"]`` (id → dict)
        with ``df.attrs["durations"]``. ``df.attrs["cpu_s"]`` always holds the CPU
        seconds spent on each file computed in this call (by its worker).
    checkpoint : callable(df, tags), optional
        Called with the partial result at most every ``checkpoint_every_s``
        seconds (used by the CLI to keep the output file resumable).
    decoder : {"pyav", "ffmpeg"}
        Who decodes compressed files (:func:`decode`).

    Returns
    -------
    (DataFrame, list[Failure])
        Index ``track_id`` (sorted), the 518 :data:`FEATURE_COLUMNS` (3-level
        MultiIndex ``feature, statistics, number``), float32; failures in input order.
    """

    if jobs < 1:
        raise ParameterError(f"jobs={jobs} must be >= 1")
    if decoder not in DECODERS:
        raise ParameterError(f"decoder={decoder!r}: expected one of {', '.join(DECODERS)}")
    items = list(paths.items()) if isinstance(paths, dict) else [(os.fspath(p), os.fspath(p)) for p in paths]
    items = [(str(k), os.fspath(v)) for k, v in items]
    done_ids: set[str] = set()
    rows: dict[str, np.ndarray] = {}
    tags: dict[str, dict[str, Any]] = {}
    durations: dict[str, float] = {}
    cpu_s: dict[str, float] = {}
    if resume_from is not None and len(resume_from):
        prev = resume_from.dropna(how="any")
        for tid, vec in zip(prev.index.astype(str), prev.to_numpy(dtype=np.float32)):
            rows[tid] = vec
        done_ids = set(rows)
        tags.update({k: v for k, v in resume_from.attrs.get("tags", {}).items()})
    todo = [(k, v, with_tags, decoder) for k, v in items if k not in done_ids]
    total = len(items)
    done = total - len(todo)
    failures: dict[str, Failure] = {}
    if progress:
        progress(done, total)
    last_ckpt = time.monotonic()

    def frame() -> pd.DataFrame:
        df = results_frame(rows, tags, durations)
        df.attrs["cpu_s"] = dict(cpu_s)
        return df

    where = dict(items)

    def handle(res) -> None:
        nonlocal done, last_ckpt
        cpu_s[res[0]] = res[5]
        done += 1
        file_result(res, where=where, rows=rows, durations=durations, tags=tags, failures=failures)
        if progress:
            progress(done, total)
        if checkpoint and time.monotonic() - last_ckpt >= checkpoint_every_s:
            checkpoint(frame(), tags)
            last_ckpt = time.monotonic()

    if jobs == 1 or len(todo) <= 1:
        for it in todo:
            handle(extract_one(it))
    else:
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        with pool(jobs, mp_context=ctx, initializer=_init_worker) as ex:
            futs = [ex.submit(extract_one, it) for it in sorted(todo, key=lambda it: -_size(it[1]))]
            for f in as_completed(futs):
                handle(f.result())
    order = {k: i for i, (k, _) in enumerate(items)}
    return frame(), sorted(failures.values(), key=lambda f: order.get(f.track_id, 0))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _init_worker() -> None:
    # BLAS threads would fight the process pool for the same cores: one per worker
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


def results_frame(rows: dict[str, np.ndarray], tags: dict, durations: dict) -> pd.DataFrame:
    """The filed results as the features frame: ``track_id`` index (sorted), the 518 columns, float32."""
    import pandas as pd

    cols = pd.MultiIndex.from_tuples(FEATURE_COLUMNS, names=["feature", "statistics", "number"])
    ids = sorted(rows)
    data = np.vstack([rows[i] for i in ids]) if ids else np.zeros((0, len(FEATURE_COLUMNS)), np.float32)
    df = pd.DataFrame(data, index=pd.Index(ids, name="track_id", dtype=object), columns=cols)
    df.attrs["tags"] = {k: tags[k] for k in ids if k in tags}
    df.attrs["durations"] = {k: durations[k] for k in ids if k in durations}
    return df


def write_features_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` in the exact FMA layout (3 header rows + ``track_id`` row, ``%.10e``), atomically."""
    out = df.sort_index(axis=0).sort_index(axis=1)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, float_format="%.10e")
