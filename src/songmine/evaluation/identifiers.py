"""Identification methods as the evaluation harness sees them: build a reference, answer a clip.

Each method of :mod:`songmine.methods` names an adapter here (or its own) that
implements the small :class:`Identifier` protocol. A factory takes
``(index_path, options)``; ``options`` are the method-specific ``key=value``
strings of ``songmine eval --option``.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ParameterError
from ..fingerprint.heap import keep_heap
from ..fingerprint.index import Index, index_files
from ..fingerprint.landmarks import FingerprintConfig
from ..fingerprint.memory import MemoryIndex
from ..fingerprint.query import identify
from ..fingerprint.search import SearchConfig
from ..minhash.onset import SeedConfig, SeedIndex
from ..minhash.sketch import SketchConfig, SketchIndex
from ..records import QueryResult

__all__ = [
    "BuildStats",
    "Identifier",
    "LandmarkIdentifier",
    "MemoryLandmarkIdentifier",
    "SeedIdentifier",
    "SketchIdentifier",
    "dir_bytes",
    "parse_option_value",
    "split_options",
]


@dataclass(slots=True)
class BuildStats:
    """What building a method's reference cost. ``peak_rss_mb`` is filled in by the harness."""

    n_tracks: int = 0
    n_failed: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    index_bytes: int = 0
    peak_rss_mb: float | None = None
    peak_rss_how: str = ""
    cpu_seconds: float | None = None

    @property
    def x_realtime(self) -> float | None:
        return self.audio_seconds / self.seconds if self.seconds > 0 else None

    @property
    def mb_per_hour(self) -> float | None:
        hours = self.audio_seconds / 3600.0
        return self.index_bytes / 1e6 / hours if hours > 0 else None


@runtime_checkable
class Identifier(Protocol):
    """A song-identification method, as the harness sees it.

    ``sr`` is the rate the method wants its clips at (the harness resamples
    before timing ``query``). ``build`` indexes the files (it may skip files
    already indexed) and says what that cost; ``query`` answers one clip with
    the contract's record; ``close`` releases resources.
    """

    name: str
    sr: int

    def build(self, paths: Sequence[Path], *, jobs: int, progress: Callable[[int, int], None] | None) -> BuildStats: ...

    def query(self, clip: np.ndarray, *, name: str) -> QueryResult: ...

    def close(self) -> None: ...


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def split_options(opts: dict[str, Any], *classes: type) -> list[dict[str, Any]]:
    """Route ``key=value`` options to the dataclass that has a field of that name (first wins)."""
    out: list[dict[str, Any]] = [{} for _ in classes]
    for k, v in opts.items():
        for i, cls in enumerate(classes):
            if cls is not None and k in {f.name for f in dataclasses.fields(cls)}:
                out[i][k] = v
                break
        else:
            known = sorted({f.name for c in classes if c is not None for f in dataclasses.fields(c)})
            raise ParameterError(f"option {k!r} is unknown to this method; known: {', '.join(known)}, top")
    return out


class LandmarkIdentifier:
    """The landmark method through the durable index (:mod:`songmine.fingerprint.index` + :func:`songmine.identify`).

    Options: any field of ``FingerprintConfig`` or of ``identify.SearchConfig``
    (``key=value``, parsed as int, float, bool or string), plus ``top``
    (matches asked per query, default 5). Without ``index_path`` the index
    lives in a temporary directory removed by :meth:`close`.
    """

    name = "landmark"

    def __init__(self, index_path: Path | None, options: Mapping[str, str]):
        opts = {k: parse_option_value(v) for k, v in options.items()}
        self.top = int(opts.pop("top", 5))
        opts.pop("thresholds", None)
        fp_opts, search_opts = split_options(opts, FingerprintConfig, SearchConfig)
        self.config = FingerprintConfig(**fp_opts)
        self.search = SearchConfig(**search_opts)
        self.sr = int(self.config.sr)
        self._tmp = None if index_path is not None else tempfile.mkdtemp(prefix="songmine-eval-")
        self.path = Path(index_path) if index_path is not None else Path(self._tmp) / "index"
        self.index = None

    def build(self, paths, *, jobs, progress):
        self.index = Index(self.path, create=True, config=self.config)
        t0 = time.perf_counter()
        rep = index_files(self.index, list(paths), jobs=jobs, progress=progress)
        seconds = time.perf_counter() - t0
        reopen = getattr(self.index, "refresh", None)
        if callable(reopen):
            reopen()
        return BuildStats(
            n_tracks=int(rep.added) + int(rep.unchanged),
            n_failed=len(rep.failed) if hasattr(rep.failed, "__len__") else int(rep.failed),
            audio_seconds=float(rep.audio_seconds),
            seconds=float(seconds),
            index_bytes=dir_bytes(self.path),
        )

    def query(self, clip, *, name):
        keep_heap()  # this process now exists to search (indexing is over)
        return identify(self.index, clip, top=self.top, name=name, config=self.search)

    def close(self):
        close = getattr(self.index, "close", None)
        if callable(close):
            close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


class MemoryLandmarkIdentifier(LandmarkIdentifier):
    """The landmark method over ``identify.MemoryIndex`` (no disk, one process): for quick tuning.

    Index size is the postings' bytes (12 per posting). ``jobs`` is ignored.
    """

    name = "landmark-memory"

    def build(self, paths, *, jobs, progress):
        t0 = time.perf_counter()
        self.index = MemoryIndex.from_files(list(paths), self.config, progress=progress)
        seconds = time.perf_counter() - t0
        return BuildStats(
            n_tracks=int(self.index.n_tracks),
            n_failed=len(self.index.skipped),
            audio_seconds=float(self.index.duration_s),
            seconds=seconds,
            index_bytes=int(self.index.n_postings) * 12,
        )


class _PayloadIdentifier:
    """A method whose index keeps a payload per track (seed, sketch): built through the index store.

    The index is an :class:`~songmine.fingerprint.index.Index` in the method's
    sub-folder of ``index_path`` (a temporary directory without one, removed by
    :meth:`close`), built by :func:`~songmine.fingerprint.index.index_files`
    with ``jobs`` workers (files already there are skipped), then read into the
    method's in-memory searcher (``searcher.from_store``).
    """

    name = ""
    searcher: Any = None

    def _setup(self, index_path: Path | None) -> None:
        self._tmp = None if index_path is not None else tempfile.mkdtemp(prefix=f"songmine-eval-{self.name}-")
        root = Path(index_path) if index_path is not None else Path(self._tmp)
        self.path = root / self.name
        self.index = None

    def build(self, paths, *, jobs, progress):
        t0 = time.perf_counter()
        with Index(self.path, create=True, config=self.config) as ix:
            rep = index_files(ix, list(paths), jobs=jobs, progress=progress)
            self.index = self.searcher.from_store(ix, config=self.config)
            audio = ix.duration_s
        seconds = time.perf_counter() - t0
        return BuildStats(
            n_tracks=len(self.index),
            n_failed=len(rep.failed),
            audio_seconds=audio,
            seconds=seconds,
            index_bytes=dir_bytes(self.path),
        )

    def close(self):
        self.index = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


class SeedIdentifier(_PayloadIdentifier):
    """The course's onset-peak MinHash/LSH method (:class:`songmine.minhash.onset.SeedIndex`).

    Options: any field of ``SeedConfig`` (``threshold``, ``n_bands``, ``n_rows``,
    ``variant``, ...), plus ``top``. With ``--thresholds`` the index is asked
    at the lowest threshold so the sweep sees every candidate above it.
    """

    name = "seed"
    searcher = SeedIndex

    def __init__(self, index_path: Path | None, options: Mapping[str, str]):
        opts = {k: parse_option_value(v) for k, v in options.items()}
        self.top = int(opts.pop("top", 5))
        sweep = opts.pop("thresholds", None)
        if sweep is not None and "threshold" not in opts:
            opts["threshold"] = max(1e-6, min(float(t) for t in str(sweep).split(",") if t.strip()))
        self.config = SeedConfig(**opts)
        self.sr = int(self.config.sr)
        self._setup(index_path)

    def query(self, clip, *, name):
        return self.index.query_audio(clip, query=name, top=self.top)


def parse_option_value(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    if v.lower() == "none":
        return None
    return v


class SketchIdentifier(_PayloadIdentifier):
    """The sketch index as an eval-harness method (``songmine eval --method sketch``).

    Options: any field of :class:`SketchConfig`, plus ``top``.
    """

    name = "sketch"
    searcher = SketchIndex

    def __init__(self, index_path: Path | None, options: Mapping[str, str]):
        opts = {k: parse_option_value(v) for k, v in options.items()}
        self.top = int(opts.pop("top", 5))
        opts.pop("thresholds", None)
        if "shifts" in opts:
            opts["shifts"] = tuple(int(x) for x in str(opts["shifts"]).split("+"))
        self.config = SketchConfig(**opts)
        self.sr = int(SketchIndex(self.config).fp_config.sr)
        self._setup(index_path)

    def query(self, clip, *, name):
        return self.index.query_audio(clip, query=name, top=self.top)
