"""The queries of an evaluation: the library split, a deterministic plan, the clips cut and degraded.

A query is a clip of an indexed track (a member: it should be found at its
offset) or of a held-out track (a non-member: any answer is a false positive).
Plans and cuts are seeded, so two runs ask exactly the same clips.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import info, load
from ..errors import ParameterError, SongmineError
from ..library import iter_audio_files
from .config import EvalConfig
from .degrade import degrade, source_seconds

__all__ = ["QuerySpec", "Query", "Outcome", "split_library", "plan_queries", "cut_queries"]

log = logging.getLogger(__name__)


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
    clip: np.ndarray
    sr: int

    @property
    def name(self) -> str:
        s = self.spec
        return f"q{s.qid:05d}_{s.condition}_{s.duration_s:g}s_{Path(s.track).stem}@{self.offset_s:.2f}"


def _duration(path: Path) -> float | None:
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


def _dbfs(y: np.ndarray) -> float:
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
