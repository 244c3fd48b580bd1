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
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .degrade import BASE_CONDITIONS, CONDITIONS, check_available, degrade, source_seconds
from .errors import ParameterError, SongmineError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .records import QueryResult

log = logging.getLogger(__name__)

__all__ = [
    "EvalConfig",
    "QuerySpec",
    "Query",
    "Outcome",
    "BuildStats",
    "Identifier",
    "EvalReport",
    "METHODS",
    "PEER_BEST",
    "register_method",
    "make_identifier",
    "split_library",
    "plan_queries",
    "cut_queries",
    "run_queries",
    "summarise",
    "evaluate",
    "report_markdown",
    "plot_report",
    "PeakMemory",
]

#: Best peer top-1 % per (condition, duration s), with the peer's name — ``/work/shared/PEERS.md``
#: (audfprint, Olaf, Chromaprint on 131 held-out real tracks, 40 clips per cell).
PEER_BEST: dict[tuple[str, float], tuple[float, str]] = {
    (c, d): (v, who)
    for c, row in {
        "clean": ((97.5, "olaf"), (100.0, "chromaprint"), (100.0, "olaf")),
        "white15": ((75.0, "olaf"), (100.0, "chromaprint"), (100.0, "chromaprint")),
        "white5": ((55.0, "olaf"), (100.0, "chromaprint"), (97.5, "chromaprint")),
        "white0": ((37.5, "olaf"), (97.5, "chromaprint"), (97.5, "chromaprint")),
        "pink5": ((47.5, "olaf"), (97.5, "chromaprint"), (97.5, "chromaprint")),
        "mp3_32k": ((75.0, "olaf"), (100.0, "chromaprint"), (100.0, "olaf")),
        "telephone": ((37.5, "olaf"), (80.0, "audfprint"), (97.5, "audfprint")),
        "gain-20": ((95.0, "olaf"), (100.0, "chromaprint"), (100.0, "olaf")),
        "speed+2": ((32.5, "olaf"), (75.0, "chromaprint"), (92.5, "chromaprint")),
        "speed-2": ((27.5, "olaf"), (55.0, "chromaprint"), (87.5, "chromaprint")),
        "speed+5": ((2.5, "olaf"), (5.0, "chromaprint"), (12.5, "chromaprint")),
        "speed-5": ((5.0, "olaf"), (5.0, "olaf"), (15.0, "olaf")),
        "reverb_noise10": ((45.0, "olaf"), (92.5, "chromaprint"), (100.0, "chromaprint")),
    }.items()
    for d, (v, who) in zip((3.0, 5.0, 10.0), row)
}
#: Pooled best-peer top-1 % per duration (mean of the best, PEERS.md) and the issue's targets.
PEER_POOLED: dict[float, float] = {3.0: 48.7, 5.0: 77.5, 10.0: 84.4}
TARGET_POOLED: dict[float, float] = {3.0: 80.0, 5.0: 92.0, 10.0: 95.0}

#: Edges of the confidence bins of the reliability table.
RELIABILITY_EDGES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """What to measure. Defaults are those of ``songmine eval``.

    Attributes
    ----------
    tracks : int
        Tracks to index; the rest of the library is held out (non-members).
    durations : tuple of float
        Clip lengths, seconds.
    conditions : tuple of str
        Names from :data:`songmine.degrade.CONDITIONS`.
    queries_per_cell : int
        Member queries per condition × duration cell.
    nonmember_queries : int
        Queries from held-out tracks, spread round-robin over the cells
        (0 when nothing is held out is allowed only if set explicitly).
    seed : int
        Seeds the split, the plan, the offsets and the noise.
    sr : int
        Rate at which clips are cut and degraded (resampled to the method's rate after).
    silence_dbfs : float
        Cuts whose RMS is below this level are re-drawn (up to ``max_redraws``).
    offset_tolerance_s : float
        A right track with ``|offset error| <= this`` is also offset-correct.
    thresholds : tuple of float
        Optional sweep: a top-1 whose ``threshold_on`` value is below the
        threshold counts as "no match" (precision / recall / no-match rate).
    threshold_on : {"score", "confidence"}
    """

    tracks: int = 40
    durations: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 10.0)
    conditions: tuple[str, ...] = CONDITIONS
    queries_per_cell: int = 40
    nonmember_queries: int = 200
    seed: int = 0
    sr: int = 22050
    silence_dbfs: float = -45.0
    max_redraws: int = 20
    offset_tolerance_s: float = 0.5
    thresholds: tuple[float, ...] = ()
    threshold_on: str = "score"

    def __post_init__(self) -> None:
        if self.tracks < 1:
            raise ParameterError(f"tracks={self.tracks} must be >= 1")
        if not self.durations or any(not (0.5 <= d <= 120) for d in self.durations):
            raise ParameterError(f"durations={self.durations} must be non-empty, each in [0.5, 120] s")
        if len(set(self.durations)) != len(self.durations):
            raise ParameterError(f"durations={self.durations} has duplicates")
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown or not self.conditions or len(set(self.conditions)) != len(self.conditions):
            raise ParameterError(
                f"conditions={self.conditions} must be distinct names from: {', '.join(CONDITIONS)}"
            )
        if self.queries_per_cell < 1:
            raise ParameterError(f"queries_per_cell={self.queries_per_cell} must be >= 1")
        if self.nonmember_queries < 0:
            raise ParameterError(f"nonmember_queries={self.nonmember_queries} must be >= 0")
        if not 4000 <= self.sr <= 96000:
            raise ParameterError(f"sr={self.sr} must be in [4000, 96000] Hz")
        if self.offset_tolerance_s <= 0:
            raise ParameterError(f"offset_tolerance_s={self.offset_tolerance_s} must be > 0")
        if self.threshold_on not in ("score", "confidence"):
            raise ParameterError(f"threshold_on={self.threshold_on!r} must be 'score' or 'confidence'")
        if any(not (t == t) for t in self.thresholds):  # NaN
            raise ParameterError(f"thresholds={self.thresholds} must be numbers")

    @property
    def cells(self) -> list[tuple[str, float]]:
        """(condition, duration) pairs in table order."""
        return [(c, d) for c in self.conditions for d in self.durations]


# --------------------------------------------------------------------------- methods


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

    def build(
        self, paths: Sequence[Path], *, jobs: int, progress: Callable[[int, int], None] | None
    ) -> BuildStats: ...

    def query(self, clip: "np.ndarray", *, name: str) -> "QueryResult": ...

    def close(self) -> None: ...


#: ``name -> factory(index_path, options)``, or a lazy ``"module:attribute"`` string.
METHODS: dict[str, Any] = {
    "landmark": "songmine.evaluate:LandmarkIdentifier",
    "landmark-memory": "songmine.evaluate:MemoryLandmarkIdentifier",
    "seed": "songmine.evaluate:SeedIdentifier",
    "sketch": "songmine.minhash.sketch:SketchIdentifier",
}


def register_method(name: str, factory: Callable[[Path | None, Mapping[str, str]], Identifier]) -> None:
    """Make ``factory(index_path, options) -> Identifier`` available as ``--method name``."""
    METHODS[name] = factory


def make_identifier(method: str, *, index_path: Path | None = None, options: Mapping[str, str] | None = None) -> Identifier:
    """Instantiate a registered method.

    Raises
    ------
    ParameterError
        Unknown method, or its module is not available in this build.
    """
    import importlib

    if method not in METHODS:
        raise ParameterError(f"method={method!r} is unknown; known: {', '.join(sorted(METHODS))}")
    factory = METHODS[method]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ParameterError(f"method={method!r} is not available in this build ({factory}: {exc})") from exc
    return factory(index_path, dict(options or {}))


def _dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _split_options(opts: dict[str, Any], *classes: type) -> list[dict[str, Any]]:
    """Route ``key=value`` options to the dataclass that has a field of that name (first wins)."""
    import dataclasses

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
        from .fingerprint.landmarks import FingerprintConfig
        from .fingerprint.search import SearchConfig

        opts = {k: _parse_value(v) for k, v in options.items()}
        self.top = int(opts.pop("top", 5))
        opts.pop("thresholds", None)
        fp_opts, search_opts = _split_options(opts, FingerprintConfig, SearchConfig)
        self.config = FingerprintConfig(**fp_opts)
        self.search = SearchConfig(**search_opts)
        self.sr = int(self.config.sr)
        self._tmp = None if index_path is not None else tempfile.mkdtemp(prefix="songmine-eval-")
        self.path = Path(index_path) if index_path is not None else Path(self._tmp) / "index"
        self.index = None

    def build(self, paths, *, jobs, progress):
        from .fingerprint.index import Index, index_files

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
            index_bytes=_dir_bytes(self.path),
        )

    def query(self, clip, *, name):
        from .fingerprint.query import identify
        from .fingerprint.heap import keep_heap

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
        from .fingerprint.memory import MemoryIndex

        t0 = time.perf_counter()
        self.index = MemoryIndex.from_files(list(paths), self.config, progress=progress)
        seconds = time.perf_counter() - t0
        return BuildStats(
            n_tracks=int(self.index.n_tracks), n_failed=len(self.index.skipped),
            audio_seconds=float(self.index.duration_s), seconds=seconds,
            index_bytes=int(self.index.n_postings) * 12,
        )


class SeedIdentifier:
    """The brief's onset-peak MinHash/LSH method (:class:`songmine.minhash.onset.SeedIndex`), in memory.

    Options: any field of ``SeedConfig`` (``threshold``, ``n_bands``, ``n_rows``,
    ``variant``, ...), plus ``top``. With ``--thresholds`` the index is asked
    at the lowest threshold so the sweep sees every candidate above it.
    The reported index size is that of :meth:`SeedIndex.save` in a temp folder.
    """

    name = "seed"

    def __init__(self, index_path: Path | None, options: Mapping[str, str]):
        from .minhash.onset import SeedConfig

        opts = {k: _parse_value(v) for k, v in options.items()}
        self.top = int(opts.pop("top", 5))
        sweep = opts.pop("thresholds", None)
        if sweep is not None and "threshold" not in opts:
            opts["threshold"] = max(1e-6, min(float(t) for t in str(sweep).split(",") if t.strip()))
        self.config = SeedConfig(**opts)
        self.sr = int(self.config.sr)
        self.index_path = index_path
        self.index = None

    def build(self, paths, *, jobs, progress):
        from .audio import info
        from .minhash.onset import SeedIndex

        t0 = time.perf_counter()
        self.index = SeedIndex(self.config)
        self.index.add_files(paths, progress=progress)
        seconds = time.perf_counter() - t0
        audio = sum(float(info(p).duration_s) for p in paths if str(p) not in dict(self.index.skipped))
        with tempfile.TemporaryDirectory(prefix="songmine-eval-seed-") as tmp:
            folder = Path(self.index_path) if self.index_path is not None else Path(tmp) / "seed"
            self.index.save(folder)
            size = _dir_bytes(folder)
        return BuildStats(
            n_tracks=len(self.index), n_failed=len(self.index.skipped), audio_seconds=audio,
            seconds=seconds, index_bytes=size,
        )

    def query(self, clip, *, name):
        return self.index.query_audio(clip, query=name, top=self.top)

    def close(self):
        self.index = None


def _parse_value(v: str) -> Any:
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


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """One planned query: which track, how long, which degradation; the offset comes at cut time."""

    qid: int
    track: str
    member: bool
    condition: str
    duration_s: float


@dataclass(slots=True)
class Query:
    """A cut and degraded clip, ready to be asked: ``clip`` is mono float32 at ``sr``."""

    spec: QuerySpec
    offset_s: float
    clip: "np.ndarray"
    sr: int

    @property
    def name(self) -> str:
        s = self.spec
        return f"q{s.qid:05d}_{s.condition}_{s.duration_s:g}s_{Path(s.track).stem}@{self.offset_s:.2f}"


def _duration(path: Path) -> float | None:
    from .audio import info

    try:
        return float(info(path).duration_s)
    except SongmineError as exc:
        log.warning("skipping %s: %s", path, exc)
        return None


def split_library(
    library: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    config: EvalConfig,
    *,
    clamp_tracks: bool = False,
) -> tuple[list[Path], list[Path], dict[str, float]]:
    """Seeded split of the library's files into (indexed, held_out), plus each file's duration.

    Files whose container cannot be read are left out (logged). With
    ``clamp_tracks``, a library too small for ``config.tracks`` (plus one
    held out) has three quarters of its files indexed instead (a warning).

    Raises
    ------
    ParameterError
        No audio, or too few files for ``config.tracks`` (plus one held out
        when non-member queries are asked for).
    """
    import numpy as np

    from .library import iter_audio_files

    roots = [library] if isinstance(library, (str, os.PathLike)) else list(library)
    files = list(iter_audio_files(roots))
    durations = {str(p): d for p in files if (d := _duration(p)) is not None}
    files = [p for p in files if str(p) in durations]
    need = config.tracks + (1 if config.nonmember_queries else 0)
    n_index = config.tracks
    if len(files) < need and clamp_tracks and len(files) >= 2:
        n_index = max(1, len(files) - max(1, len(files) // 4))
        log.warning("library has %d files: indexing %d instead of tracks=%d", len(files), n_index, config.tracks)
    elif len(files) < need:
        raise ParameterError(
            f"library has {len(files)} readable audio files; tracks={config.tracks} needs at least {need}"
            + (" (one held out for non-member queries)" if config.nonmember_queries else "")
        )
    order = np.random.default_rng([config.seed, 1]).permutation(len(files))
    indexed = sorted(files[i] for i in order[:n_index])
    held = sorted(files[i] for i in order[n_index:])
    return indexed, held, durations


def plan_queries(
    indexed: Sequence[Path], held_out: Sequence[Path], durations: Mapping[str, float], config: EvalConfig
) -> list[QuerySpec]:
    """The deterministic query plan: member queries per cell, then non-members round-robin.

    Only tracks long enough for the longest clip (plus the 5 % a slow-down
    needs, plus 1 s) give queries; within a cell tracks are drawn without
    replacement in a seeded order (so 40 queries over 40 tracks is one per track).

    Raises
    ------
    ParameterError
        No indexed (or, when asked for, held-out) track is long enough.
    """
    import numpy as np

    longest = max(source_seconds(c, d) for c, d in config.cells) + 1.0
    members = [str(p) for p in indexed if durations[str(p)] >= longest]
    others = [str(p) for p in held_out if durations[str(p)] >= longest]
    if not members:
        raise ParameterError(f"no indexed track is longer than {longest:.1f} s: cannot cut member queries")
    if config.nonmember_queries and not others:
        raise ParameterError(f"no held-out track is longer than {longest:.1f} s: cannot cut non-member queries")
    rng = np.random.default_rng([config.seed, 2])
    specs: list[QuerySpec] = []
    for cond, dur in config.cells:
        order = rng.permutation(len(members))
        for k in range(config.queries_per_cell):
            specs.append(QuerySpec(len(specs), members[order[k % len(members)]], True, cond, dur))
    cells = config.cells
    cell_order = rng.permutation(len(cells))
    track_order = rng.permutation(len(others)) if others else []
    for k in range(config.nonmember_queries):
        cond, dur = cells[cell_order[k % len(cells)]]
        specs.append(QuerySpec(len(specs), others[track_order[k % len(others)]], False, cond, dur))
    return specs


def _dbfs(y: "np.ndarray") -> float:
    import numpy as np

    p = float(np.mean(np.square(y, dtype=np.float64))) if y.size else 0.0
    return 10.0 * np.log10(p) if p > 0 else float("-inf")


def cut_queries(specs: Sequence[QuerySpec], config: EvalConfig) -> Iterator[Query | tuple[QuerySpec, str]]:
    """Cut and degrade every planned query, one source track decoded at a time.

    Yields :class:`Query` objects in plan order within each track (tracks in
    first-appearance order), or ``(spec, error)`` when the track cannot be
    decoded. The offset of query ``qid`` is drawn by ``default_rng([seed, 3,
    qid])`` uniformly over the track; a cut quieter than ``silence_dbfs`` is
    re-drawn (the last draw is kept after ``max_redraws``). The same generator
    then seeds the degradation, so a query depends only on (seed, qid, plan).
    """
    import numpy as np

    from .audio import load

    by_track: dict[str, list[QuerySpec]] = {}
    for s in specs:
        by_track.setdefault(s.track, []).append(s)
    sr = config.sr
    for track, group in by_track.items():
        try:
            y = load(track, sr=sr)
        except SongmineError as exc:
            for s in group:
                yield (s, f"{track}: {exc}")
            continue
        for s in group:
            rng = np.random.default_rng([config.seed, 3, s.qid])
            n_src = int(round(source_seconds(s.condition, s.duration_s) * sr))
            n_out = int(round(s.duration_s * sr))
            if y.size < n_src:
                yield (s, f"{track}: {y.size / sr:.1f} s decoded, shorter than the {n_src / sr:.1f} s clip")
                continue
            for _ in range(config.max_redraws + 1):
                start = int(rng.integers(0, y.size - n_src + 1))
                cut = y[start : start + n_src]
                if _dbfs(cut) >= config.silence_dbfs:
                    break
            clip = degrade(cut, sr, s.condition, random_state=rng)
            if clip.size != n_out:  # speed changes: exact length
                clip = clip[:n_out] if clip.size > n_out else np.pad(clip, (0, n_out - clip.size))
            yield Query(s, start / sr, np.ascontiguousarray(clip, dtype=np.float32), sr)
        del y


# --------------------------------------------------------------------------- running


@dataclass(slots=True)
class Outcome:
    """What happened to one query."""

    qid: int
    track: str
    member: bool
    condition: str
    duration_s: float
    offset_s: float | None
    answered: bool = False
    top_path: str | None = None
    top_offset_s: float | None = None
    score: float | None = None
    confidence: float | None = None
    correct: bool = False
    offset_error_s: float | None = None
    offset_ok: bool = False
    latency_s: float | None = None
    cpu_s: float | None = None
    error: str | None = None


def _same_file(a: str, b: str) -> bool:
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
            o.correct = s.member and _same_file(m.path, s.track)
            if o.correct:
                o.offset_error_s = o.top_offset_s - q.offset_s
                o.offset_ok = abs(o.offset_error_s) <= config.offset_tolerance_s
        out.append(o)
        if progress is not None:
            progress(q)
    out.sort(key=lambda o: o.qid)
    return out


def _resample_for(identifier: Identifier, q: Query) -> "np.ndarray":
    import soxr

    return q.clip if identifier.sr == q.sr else soxr.resample(q.clip, q.sr, identifier.sr, quality="HQ")


class PeakMemory:
    """Peak resident memory of this process and all its descendants, summed, while in the block.

    On Linux a thread samples ``/proc`` every ``interval`` seconds (so the
    sum is over processes alive at the same moment); the result is at least
    this process's own ``ru_maxrss`` over the block. Elsewhere it falls back to
    ``ru_maxrss(self) + ru_maxrss(children)`` (an upper bound).
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak_mb = 0.0
        self.how = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = Path("/proc/self/stat").exists()
        self.cpu_seconds: float | None = None
        self._cpu0 = 0.0
        self._sampler_cpu = 0.0

    @staticmethod
    def _tree_rss_bytes(root: int) -> int:
        page = os.sysconf("SC_PAGE_SIZE")
        children: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat", "rb") as fh:
                    stat = fh.read()
                ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/statm", "rb") as fh:
                    total += int(fh.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                pass
            todo.extend(children.get(pid, ()))
        return total

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._tree_rss_bytes(me) / 1e6)
            self._sampler_cpu = time.thread_time()  # the sampler's own CPU is not the build's
            self._stop.wait(self.interval)

    @staticmethod
    def _cpu() -> float:
        import resource

        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def __enter__(self) -> "PeakMemory":
        self._cpu0 = self._cpu()
        if self._proc:
            self.how = f"sum of RSS over this process and its children, sampled every {self.interval * 1e3:.0f} ms"
            self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        import resource

        cpu = self._cpu() - self._cpu0
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.cpu_seconds = max(0.0, cpu - self._sampler_cpu)
        if self._thread is not None:
            self.peak_mb = max(self.peak_mb, self._tree_rss_bytes(os.getpid()) / 1e6)
        else:
            ru_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            self.peak_mb = (ru_self + ru_kids) / 1e3
            self.how = "ru_maxrss of this process + largest child (upper bound)"


# --------------------------------------------------------------------------- report


@dataclass(slots=True)
class Cell:
    condition: str
    duration_s: float
    n: int
    correct: int
    top1: float | None
    offset_ok: float | None
    answered_wrong: int
    no_answer: int
    errors: int
    peer_top1: float | None = None
    peer: str | None = None


@dataclass(slots=True)
class EvalReport:
    """Everything :func:`evaluate` measured (plain data: ``dataclasses.asdict`` gives the JSON)."""

    method: str
    library: str
    config: dict[str, Any]
    n_indexed: int
    n_held_out: int
    cells: list[Cell]
    pooled: dict[str, dict[str, Any]]
    false_positives: dict[str, Any]
    reliability: list[dict[str, Any]]
    latency_ms: dict[str, Any]
    build: dict[str, Any]
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    offset_error_s: dict[str, Any] = field(default_factory=dict)
    n_queries: int = 0
    n_errors: int = 0
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)


def _pct(k: int, n: int) -> float | None:
    return 100.0 * k / n if n else None


def summarise(
    outcomes: Sequence[Outcome], config: EvalConfig, *, build: BuildStats, method: str, library: str,
    n_indexed: int, n_held_out: int,
) -> EvalReport:
    """Aggregate per-query outcomes into the report's tables."""
    import numpy as np

    members = [o for o in outcomes if o.member]
    others = [o for o in outcomes if not o.member]
    cells = []
    for cond, dur in config.cells:
        cell = [o for o in members if o.condition == cond and o.duration_s == dur]
        n, k = len(cell), sum(o.correct for o in cell)
        peer = PEER_BEST.get((cond, float(dur)))
        cells.append(
            Cell(
                cond, dur, n, k, _pct(k, n), _pct(sum(o.offset_ok for o in cell), k),
                sum(o.answered and not o.correct for o in cell), sum(not o.answered for o in cell),
                sum(o.error is not None for o in cell),
                peer[0] if peer else None, peer[1] if peer else None,
            )
        )
    pooled = {}
    for dur in config.durations:
        cs = [c for c in cells if c.duration_s == dur]
        n, k = sum(c.n for c in cs), sum(c.correct for c in cs)
        fp = [o for o in others if o.duration_s == dur]
        pooled[f"{dur:g}"] = {
            "duration_s": dur, "n": n, "correct": k, "top1": _pct(k, n),
            "peer_best_mean": PEER_POOLED.get(float(dur)) if tuple(config.conditions) == BASE_CONDITIONS else None,
            "target": TARGET_POOLED.get(float(dur)),
            "fp_n": len(fp), "fp_rate": _pct(sum(o.answered for o in fp), len(fp)),
        }
    n_fp = sum(o.answered for o in others)
    fps = {
        "n": len(others), "false_positives": n_fp, "rate": _pct(n_fp, len(others)),
        "members_answered_wrong": sum(o.answered and not o.correct for o in members),
        "members_answered_wrong_rate": _pct(sum(o.answered and not o.correct for o in members), len(members)),
        "examples": [
            {"query": f"q{o.qid}", "track": Path(o.track).name, "answer": Path(o.top_path or "").name,
             "confidence": o.confidence, "score": o.score}
            for o in others if o.answered
        ][:10],
    }
    answered = [o for o in outcomes if o.answered and o.confidence is not None]
    reliability = []
    edges = RELIABILITY_EDGES
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        b = [o for o in answered if lo <= o.confidence < hi or (last and o.confidence == hi)]
        reliability.append({
            "bin": f"[{lo:g}, {hi:g}{']' if last else ')'}", "n": len(b),
            "mean_confidence": float(np.mean([o.confidence for o in b])) if b else None,
            "accuracy": _pct(sum(o.correct for o in b), len(b)),
        })
    lat = np.array([o.latency_s for o in outcomes if o.latency_s is not None]) * 1e3
    latency: dict[str, Any] = {"n": int(lat.size)}
    if lat.size:
        latency.update(median=float(np.median(lat)), p95=float(np.percentile(lat, 95)), mean=float(lat.mean()))
    cpu = np.array([o.cpu_s for o in outcomes if o.cpu_s is not None]) * 1e3
    if cpu.size:
        latency.update(cpu_median=float(np.median(cpu)), cpu_p95=float(np.percentile(cpu, 95)))
    for dur in config.durations:
        d = np.array([o.latency_s for o in outcomes if o.latency_s is not None and o.duration_s == dur]) * 1e3
        if d.size:
            latency[f"{dur:g}s"] = {"median": float(np.median(d)), "p95": float(np.percentile(d, 95))}
    errs = np.array([o.offset_error_s for o in members if o.offset_error_s is not None])
    offset = {"n": int(errs.size)}
    if errs.size:
        offset.update(
            median_abs=float(np.median(np.abs(errs))), p95_abs=float(np.percentile(np.abs(errs), 95)),
            within_tolerance=_pct(int(np.sum(np.abs(errs) <= config.offset_tolerance_s)), errs.size),
            tolerance_s=config.offset_tolerance_s,
        )
    sweep = []
    for t in config.thresholds:
        def value(o: Outcome) -> float | None:
            return o.score if config.threshold_on == "score" else o.confidence

        acc = [o for o in outcomes if o.answered and value(o) is not None and value(o) >= t]
        right = sum(o.correct for o in acc)
        sweep.append({
            "threshold": t, "on": config.threshold_on, "accepted": len(acc),
            "precision": _pct(right, len(acc)), "recall": _pct(right, len(members)),
            "no_match_rate": _pct(len(outcomes) - len(acc), len(outcomes)),
            "fp_rate": _pct(sum(not o.member for o in acc), len(others)),
        })
    b = {
        "n_tracks": build.n_tracks, "n_failed": build.n_failed, "audio_hours": build.audio_seconds / 3600,
        "seconds": build.seconds, "x_realtime": build.x_realtime, "index_mb": build.index_bytes / 1e6,
        "mb_per_hour": build.mb_per_hour, "peak_rss_mb": build.peak_rss_mb, "peak_rss_how": build.peak_rss_how,
        "cpu_seconds": build.cpu_seconds,
        "x_realtime_per_cpu": build.audio_seconds / build.cpu_seconds if build.cpu_seconds else None,
    }
    import dataclasses

    return EvalReport(
        method=method, library=library, config=dataclasses.asdict(config), n_indexed=n_indexed,
        n_held_out=n_held_out, cells=cells, pooled=pooled, false_positives=fps, reliability=reliability,
        latency_ms=latency, build=b, thresholds=sweep, offset_error_s=offset, n_queries=len(outcomes),
        n_errors=sum(o.error is not None for o in outcomes), outcomes=list(outcomes),
    )


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
        outcomes, config, build=build, method=identifier.name, library=lib,
        n_indexed=len(indexed), n_held_out=len(held),
    )
    rep.seconds = time.perf_counter() - t_start
    return rep


# --------------------------------------------------------------------------- rendering


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if v is None else fmt.format(v)


def report_markdown(rep: EvalReport) -> str:
    """The report as Markdown tables (what ``--markdown`` writes)."""
    durs = [float(d) for d in rep.config["durations"]]
    lines = [
        f"# songmine eval — method `{rep.method}`",
        "",
        f"Library `{rep.library}`: {rep.n_indexed} tracks indexed, {rep.n_held_out} held out; "
        f"{rep.n_queries} queries (seed {rep.config['seed']}), {rep.n_errors} errors; {rep.seconds:.0f} s.",
        "",
        "## Top-1 accuracy % per condition × duration (n; best peer from PEERS.md)",
        "",
        "| condition | " + " | ".join(f"{d:g} s" for d in durs) + " |",
        "|---|" + "---|" * len(durs),
    ]
    for cond in rep.config["conditions"]:
        row = []
        for d in durs:
            c = next(c for c in rep.cells if c.condition == cond and c.duration_s == d)
            peer = f"; peer {c.peer_top1:.1f}" if c.peer_top1 is not None else ""
            row.append(f"{_f(c.top1)} (n={c.n}{peer})")
        lines.append(f"| {cond} | " + " | ".join(row) + " |")
    lines += ["", "## Pooled top-1 % per duration", "", "| duration | n | top-1 | best peer (mean) | target | FP rate (n) |", "|---|---:|---:|---:|---:|---:|"]
    for p in rep.pooled.values():
        lines.append(
            f"| {p['duration_s']:g} s | {p['n']} | {_f(p['top1'])} | {_f(p['peer_best_mean'])} | "
            f"{_f(p['target'])} | {_f(p['fp_rate'])} ({p['fp_n']}) |"
        )
    fp = rep.false_positives
    lines += [
        "",
        f"False positives on non-member queries: {fp['false_positives']}/{fp['n']} = {_f(fp['rate'], '{:.2f}')} %. "
        f"Member queries answered with a wrong track: {fp['members_answered_wrong']} "
        f"({_f(fp['members_answered_wrong_rate'], '{:.2f}')} %).",
        "",
        "## Reliability of the confidence (answered queries)",
        "",
        "| confidence bin | n | mean confidence | observed accuracy % |",
        "|---|---:|---:|---:|",
    ]
    for r in rep.reliability:
        lines.append(f"| {r['bin']} | {r['n']} | {_f(r['mean_confidence'], '{:.3f}')} | {_f(r['accuracy'])} |")
    if rep.thresholds:
        lines += ["", f"## Threshold sweep (on {rep.thresholds[0]['on']})", "",
                  "| threshold | accepted | precision % | recall % | no-match % | FP rate % |", "|---:|---:|---:|---:|---:|---:|"]
        for t in rep.thresholds:
            lines.append(
                f"| {t['threshold']:g} | {t['accepted']} | {_f(t['precision'])} | {_f(t['recall'])} | "
                f"{_f(t['no_match_rate'])} | {_f(t['fp_rate'])} |"
            )
    lat, b, off = rep.latency_ms, rep.build, rep.offset_error_s
    lines += [
        "",
        "## Cost",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| query latency, median / p95 (in process) | {_f(lat.get('median'))} / {_f(lat.get('p95'))} ms |",
        *(f"| latency {d:g} s clips, median / p95 | {_f(lat[f'{d:g}s']['median'])} / {_f(lat[f'{d:g}s']['p95'])} ms |"
          for d in durs if f"{d:g}s" in lat),
        f"| build | {b['n_tracks']} tracks ({b['n_failed']} failed), {b['audio_hours']:.2f} h in {b['seconds']:.1f} s |",
        f"| build speed | {_f(b['x_realtime'])} × real time (wall); {_f(b.get('x_realtime_per_cpu'))} × per CPU second "
        f"({_f(b.get('cpu_seconds'))} CPU s, this process + children) |",
        f"| query CPU time, median / p95 | {_f(lat.get('cpu_median'))} / {_f(lat.get('cpu_p95'))} ms |",
        f"| index size | {b['index_mb']:.2f} MB = {_f(b['mb_per_hour'], '{:.2f}')} MB per hour of audio |",
        f"| peak memory while building | {_f(b['peak_rss_mb'], '{:.0f}')} MB ({b['peak_rss_how']}) |",
        f"| offset error of right answers, median / p95 | {_f(off.get('median_abs'), '{:.3f}')} / "
        f"{_f(off.get('p95_abs'), '{:.3f}')} s; {_f(off.get('within_tolerance'))} % within ±{rep.config['offset_tolerance_s']:g} s |",
    ]
    return "\n".join(lines) + "\n"


def plot_report(rep: EvalReport, path: str | os.PathLike[str]) -> None:
    """Write a PNG: top-1 per condition (one line per duration, peers dashed) and the reliability diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    conds = list(rep.config["conditions"])
    durs = [float(d) for d in rep.config["durations"]]
    n_panels = 3 if rep.thresholds else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(6 + 4.5 * (n_panels - 1), 4.5),
                             gridspec_kw={"width_ratios": [2] + [1] * (n_panels - 1)})
    ax = axes[0]
    x = np.arange(len(conds))
    for i, d in enumerate(durs):
        ys = [next(c.top1 for c in rep.cells if c.condition == k and c.duration_s == d) for k in conds]
        line, = ax.plot(x, [np.nan if v is None else v for v in ys], "o-", label=f"{rep.method} {d:g} s")
        peer = [PEER_BEST.get((k, d), (np.nan,))[0] for k in conds]
        if not np.all(np.isnan(peer)):
            ax.plot(x, peer, "x--", color=line.get_color(), alpha=0.5, label=f"best peer {d:g} s")
    ax.set_xticks(x, conds, rotation=60, ha="right")
    ax.set_ylim(-2, 102)
    ax.set_ylabel("top-1 %")
    ax.set_title("accuracy per condition")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    pts = [(r["mean_confidence"], r["accuracy"] / 100, r["n"]) for r in rep.reliability if r["n"]]
    ax.plot([0, 1], [0, 1], ":", color="grey")
    if pts:
        mc, acc, n = map(np.array, zip(*pts))
        ax.scatter(mc, acc, s=20 + 200 * n / n.max())
        ax.plot(mc, acc, "-")
    ax.set_xlabel("predicted confidence")
    ax.set_ylabel("observed accuracy")
    ax.set_title("reliability")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    if rep.thresholds:
        ax = axes[2]
        t = [s["threshold"] for s in rep.thresholds]
        for key in ("precision", "recall", "no_match_rate"):
            ax.plot(t, [np.nan if s[key] is None else s[key] for s in rep.thresholds], "o-", label=key)
        ax.set_xlabel(f"threshold on {rep.thresholds[0]['on']}")
        ax.set_ylabel("%")
        ax.set_title("threshold sweep")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
