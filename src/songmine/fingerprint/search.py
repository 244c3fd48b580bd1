"""The search: a clip's landmarks looked up at each speed, in stages, until an answer is certain.

The query is fingerprinted, its hashes are looked up in the index, and every
hit votes for ``(track, offset = t_track - t_query)`` (:mod:`~songmine.fingerprint.scoring`).
A true match piles its votes into one offset bin; chance hits spread over all
offsets of all tracks.

Speed changes (pitch and tempo together, ±5 %) are handled by a query-time
multi-rate search over the factors of ``SearchConfig.speeds``, in stages
(``docs/identify.md``, "Search stages"): the clip's index-density landmarks at
every speed (peaks picked once and moved to each speed, each lookup within a
hit budget), stopping at the first certain answer; a speed where one track
clearly leads is climbed to along the speed grid and searched at once with the
dense query landmarks; otherwise the dense landmarks at the most promising
speeds. Candidates left unanswered are compared with their track's spectral
profile (:mod:`~songmine.fingerprint.profiles`). The common unmodified case costs
one pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import soxr

from ..errors import IndexCorruptError, ParameterError
from ..stages import stage
from . import profiles
from .landmarks import DT_BITS, FingerprintConfig, fingerprint, speed_fingerprinter, unpack_hashes
from .scoring import (
    confidence_from,
    distinct_votes,
    expected_votes,
    margin_confidence,
    other_offsets,
    vote,
)

__all__ = [
    "SearchConfig",
    "Candidate",
    "IndexLike",
    "search",
    "known_track",
    "rank",
    "candidates",
    "at_speed",
    "dense_query",
    "expand_query",
    "one_pass",
]


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """Knobs of the query side (they do not change the index).

    Attributes
    ----------
    speeds : tuple of float
        Playback-speed factors tried, in order (1.0 first). A clip played
        ``s`` times faster is resampled by ``s`` before fingerprinting
        (a turntable: time and pitch together).
    tempos : tuple of float
        Tempo factors tried after the speeds: time moves, frequency does
        not (DJ software, "sped up" edits: Rubber Band, WSOLA). Searched by
        moving the clip's peaks in time only.
    pitches : tuple of float
        Frequency factors tried after the tempos with the tempo kept (a key
        change: ``2 ** (1 / 12)`` is a semitone up). Searched by moving the
        clip's peaks in frequency only.
    stop_confidence : float
        Stop trying further speeds once a match reaches this confidence.
    min_confidence : float
        Matches below this confidence are not reported ("no match").
    tolerance : int
        Votes within ±``tolerance`` frames of an offset count for it.
    max_per_hash : int or None
        Query hashes with more postings than this are skipped.
    max_hits : int or None
        Hit budget of one lookup (per speed): the query's hashes are taken
        rarest first while their postings fit; the commonest are skipped.
        Bounds the work on a big index (a dense 10-s query hits ~1.3 M
        postings at 1,000 hours); an index below ~300 hours never reaches it.
    coarse : bool
        First search every speed with the clip's landmarks at the *index*
        density (``fingerprint(query=False)``: few hashes, most of them stored
        for the right track), stopping when certain; only then the dense
        query landmarks. Most clips end in the coarse stage.
    warp : bool
        The coarse stage fingerprints the other speeds by moving the clip's
        peaks (:func:`songmine.fingerprint.landmarks.speed_fingerprinter`: one STFT and
        peak picking for all speeds) instead of resampling the clip and
        fingerprinting it again per speed. The dense stage resamples for a speed
        and moves the dense peaks for a tempo or pitch rate.
    coarse_max_hits : int or None
        Hit budget of one coarse lookup (rarest hashes first, as ``max_hits``).
        Binds only on a big index (~150 hours and up): it bounds the cost of
        each of the coarse stage's speeds, which a non-member clip all tries.
    lead_margin : float or None
        A coarse speed whose most-voted track has this many times the
        runner-up's votes (``v1 / max(v2, margin_floor)``) is searched with the
        dense landmarks at once, and the search stops if that is certain
        (None: never; then the coarse stage always runs to its end).
    refine_margin : float
        After the first dense speed, the next ``refine_speeds`` speeds are
        searched only if their coarse lead ratio reaches this: at a speed
        where no track leads, the coarse votes are at chance and the dense
        pass would only add chance candidates (0: always, as before).
    rate_refine_margin : float
        ``refine_margin`` for the tempo and pitch rates: there a coarse lead
        must be clearer to earn a dense pass (their leads at chance would
        take the dense passes from the speed grid's).
    refine_speeds : int or None
        Rates searched with the dense landmarks after an uncertain coarse
        stage: the first configured one, then those whose coarse probe saw a
        track lead, most votes first (None: all).
    dt_jitter : int
        Each query hash is also looked up with its ``dt`` field moved by up to
        ±``dt_jitter`` frames (a peak's frame depends on the grid phase).
    distinct : bool
        Score a bin by its distinct hash values rather than its hits.
    rescore : int
        Tracks (best bins) rescored by distinct hash values per speed.
    overdispersion : float
        Votes are divided by this before the Poisson tail: landmark hits come
        in clusters (a peak takes part in several pairs), so raw counts
        overstate the evidence. Calibrated on non-member clips.
    margin_alpha : float
        Tail index of the runner-up (margin) null model: by chance, the best
        track out-votes the runner-up track by a factor ``>= r`` with
        probability ``r ** -margin_alpha``. 0 turns the margin test off.
    margin_tests : float
        Multiplicity of the margin test: its confidence is
        ``exp(-margin_tests * r ** -margin_alpha)``; at 0.5 it accepts a
        chance top with probability ``ln 2 / margin_tests``.
    margin_floor : int
        The runner-up's votes count as at least this (small counts are noisy).
    margin_min_tracks : int
        The margin test needs at least this many tracks with hits (the
        runner-up only estimates the chance maximum when many tracks compete).
    speed_margin_alpha : float
        Tail index of the *per-speed* margin test: at each speed of the dense
        stage, the best track against the runner-up track *of that speed*
        (a chance maximum at another speed does not count against it). The
        most-voted track of the dense stage may get
        ``exp(-speed_margin_tests * r ** -speed_margin_alpha)``. 0 turns it off.
    speed_margin_tests : float
        Multiplicity of the per-speed margin test (sets its false-positive budget).
    boost_peaks : float
        When no candidate is accepted after the dense passes, one more dense
        pass at the first rate with this many times the query's peak density
        (1: none). Its candidates count with ``boost_overdispersion`` and the
        per-rate runner-up test.
    boost_overdispersion : float
        ``overdispersion`` of that pass (denser peaks: more clustered hits).
    talk_peaks : float
        When still no candidate is accepted after stage 2b, one more pass at the
        first rate (stage 2c) with this many times the query's peak density,
        its peaks picked for music under a voice: a local maximum over only
        ±``talk_f_radius`` bins (a voice's harmonics ~150 Hz apart no longer
        hide the music's peaks between them), ranked by how little the peak's
        bin (±1) falls within ±``talk_persist_frames`` frames, times
        ``talk_persist_weight`` (a partial lasts, a speech harmonic glides).
        Its top counts only through its own runner-up test (0: no such pass).
    talk_f_radius, talk_persist_frames : int
    talk_persist_weight : float
        Its peak picking (above).
    talk_margin_alpha, talk_margin_tests : float
        Its runner-up test: the most-voted track gets
        ``exp(-talk_margin_tests * r ** -talk_margin_alpha)`` for ``r = v1 / max(v2, margin_floor)``
        against the runner-up track of that pass; nothing else of the pass is kept.
        Calibrated on non-member clips (``docs/identify.md``).
    verify_candidates : int
        When no candidate is accepted, the best this many tracks are compared
        with the index's stored spectral profile of the track at their voted
        offset and speed (:mod:`songmine.fingerprint.profiles`; 0: never). A candidate whose
        profile agrees gets the confidence of that agreement.
    verify_offsets : int
        Offsets of each candidate track compared in stage 4: its best bin and,
        from the dense passes, the next best ones a clip length apart (a looped
        piece repeats its passages; the votes may crown the wrong repeat).
    verify_bands_at, verify_bands_scale : float
        The band-change statistic ``z_bands`` gives confidence
        ``0.5 ** exp(-(z_bands - at) / scale)``: 0.5 at ``at``, → 1 above.
        Calibrated on non-member clips (``benchmarks/verify_null.py``).
    verify_chroma_at, verify_chroma_scale : float
        The same for the chroma statistic ``z_chroma``.
    """

    speeds: tuple[float, ...] = (1.0, 0.98, 1.02, 0.96, 1.04, 0.95, 1.05, 0.97, 1.03, 0.99, 1.01)
    tempos: tuple[float, ...] = (1.03, 0.97, 1.06, 0.94, 1.09, 0.91)
    pitches: tuple[float, ...] = (2 ** (1 / 12), 2 ** (-1 / 12))
    warp: bool = True
    coarse_max_hits: int | None = 50_000
    lead_margin: float | None = 4.0
    refine_margin: float = 1.5
    rate_refine_margin: float = 3.0
    stop_confidence: float = 0.999
    min_confidence: float = 0.5
    tolerance: int = 1
    max_per_hash: int | None = 2000
    max_hits: int | None = 500_000
    coarse: bool = True
    refine_speeds: int | None = 3
    dt_jitter: int = 1
    distinct: bool = True
    rescore: int = 10
    overdispersion: float = 6.0
    margin_alpha: float = 7.5
    margin_tests: float = 140.0
    margin_floor: int = 4
    margin_min_tracks: int = 20
    speed_margin_alpha: float = 5.0
    speed_margin_tests: float = 1280.0
    boost_peaks: float = 3.0
    boost_overdispersion: float = 7.5
    talk_peaks: float = 3.0
    talk_f_radius: int = 4
    talk_persist_frames: int = 3
    talk_persist_weight: float = 2.0
    talk_margin_alpha: float = 7.5
    talk_margin_tests: float = 1370.0
    verify_candidates: int = 5
    verify_offsets: int = 3
    verify_bands_at: float = 1.9
    verify_bands_scale: float = 0.1
    verify_chroma_at: float = 9.5
    verify_chroma_scale: float = 0.8

    @property
    def rates(self) -> tuple[tuple[float, float], ...]:
        """Every ``(time factor, frequency factor)`` searched, in order: the speeds ``(s, s)``, then the
        tempos ``(t, 1)``, then the pitches ``(1, p)`` (each once)."""
        out: list[tuple[float, float]] = []
        for r in (
            [(float(v), float(v)) for v in self.speeds]
            + [(float(v), 1.0) for v in self.tempos]
            + [(1.0, float(v)) for v in self.pitches]
        ):
            if r not in out:
                out.append(r)
        return tuple(out)

    def __post_init__(self) -> None:
        if not self.speeds or any(not (0.5 <= float(s) <= 2.0) for s in self.speeds):
            raise ParameterError(f"speeds={self.speeds!r} must be a non-empty tuple of factors in [0.5, 2]")
        for name in ("tempos", "pitches"):
            if any(not (0.5 <= float(s) <= 2.0) for s in getattr(self, name)):
                raise ParameterError(f"{name}={getattr(self, name)!r} must be a tuple of factors in [0.5, 2]")
        if not 0.0 <= self.min_confidence <= 1.0 or not 0.0 <= self.stop_confidence <= 1.0:
            raise ParameterError(
                f"min_confidence={self.min_confidence} and stop_confidence={self.stop_confidence} must be in [0, 1]"
            )
        if not isinstance(self.tolerance, int) or self.tolerance < 0:
            raise ParameterError(f"tolerance={self.tolerance!r} must be an integer >= 0")
        if self.max_per_hash is not None and self.max_per_hash < 1:
            raise ParameterError(f"max_per_hash={self.max_per_hash} must be >= 1 or None")
        if self.max_hits is not None and (isinstance(self.max_hits, bool) or self.max_hits < 1):
            raise ParameterError(f"max_hits={self.max_hits!r} must be >= 1 or None")
        if self.coarse_max_hits is not None and (isinstance(self.coarse_max_hits, bool) or self.coarse_max_hits < 1):
            raise ParameterError(f"coarse_max_hits={self.coarse_max_hits!r} must be >= 1 or None")
        if self.lead_margin is not None and not (np.isfinite(self.lead_margin) and self.lead_margin >= 1):
            raise ParameterError(f"lead_margin={self.lead_margin} must be a finite number >= 1 or None")
        if not (np.isfinite(self.refine_margin) and self.refine_margin >= 0):
            raise ParameterError(f"refine_margin={self.refine_margin} must be a finite number >= 0")
        if not (np.isfinite(self.rate_refine_margin) and self.rate_refine_margin >= 0):
            raise ParameterError(f"rate_refine_margin={self.rate_refine_margin} must be a finite number >= 0")
        if self.refine_speeds is not None and (isinstance(self.refine_speeds, bool) or self.refine_speeds < 1):
            raise ParameterError(f"refine_speeds={self.refine_speeds!r} must be >= 1 or None")
        if not isinstance(self.dt_jitter, int) or not 0 <= self.dt_jitter <= 3:
            raise ParameterError(f"dt_jitter={self.dt_jitter!r} must be an integer in [0, 3]")
        if not self.overdispersion >= 1.0:
            raise ParameterError(f"overdispersion={self.overdispersion} must be >= 1")
        if not (np.isfinite(self.margin_alpha) and self.margin_alpha >= 0):
            raise ParameterError(f"margin_alpha={self.margin_alpha} must be a finite number >= 0")
        if not (np.isfinite(self.margin_tests) and self.margin_tests >= 1):
            raise ParameterError(f"margin_tests={self.margin_tests} must be a finite number >= 1")
        if not isinstance(self.margin_floor, int) or self.margin_floor < 1:
            raise ParameterError(f"margin_floor={self.margin_floor!r} must be an integer >= 1")
        if not isinstance(self.margin_min_tracks, int) or self.margin_min_tracks < 2:
            raise ParameterError(f"margin_min_tracks={self.margin_min_tracks!r} must be an integer >= 2")
        if not (np.isfinite(self.speed_margin_alpha) and self.speed_margin_alpha >= 0):
            raise ParameterError(f"speed_margin_alpha={self.speed_margin_alpha} must be a finite number >= 0")
        if not (np.isfinite(self.speed_margin_tests) and self.speed_margin_tests >= 1):
            raise ParameterError(f"speed_margin_tests={self.speed_margin_tests} must be a finite number >= 1")
        if not (np.isfinite(self.boost_peaks) and self.boost_peaks >= 1):
            raise ParameterError(f"boost_peaks={self.boost_peaks} must be a finite number >= 1 (1: no boosted pass)")
        if not (np.isfinite(self.talk_peaks) and (self.talk_peaks == 0 or self.talk_peaks >= 1)):
            raise ParameterError(f"talk_peaks={self.talk_peaks} must be 0 (no talk-over pass) or a finite number >= 1")
        for name in ("talk_f_radius", "talk_persist_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ParameterError(f"{name}={v!r} must be an integer >= 0")
        for name in ("talk_persist_weight", "talk_margin_alpha"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ParameterError(f"{name}={getattr(self, name)} must be a finite number >= 0")
        if not (np.isfinite(self.talk_margin_tests) and self.talk_margin_tests >= 1):
            raise ParameterError(f"talk_margin_tests={self.talk_margin_tests} must be a finite number >= 1")
        if not self.boost_overdispersion >= 1.0:
            raise ParameterError(f"boost_overdispersion={self.boost_overdispersion} must be >= 1")
        if (
            isinstance(self.verify_candidates, bool)
            or not isinstance(self.verify_candidates, int)
            or self.verify_candidates < 0
        ):
            raise ParameterError(f"verify_candidates={self.verify_candidates!r} must be an integer >= 0")
        if isinstance(self.verify_offsets, bool) or not isinstance(self.verify_offsets, int) or self.verify_offsets < 1:
            raise ParameterError(f"verify_offsets={self.verify_offsets!r} must be an integer >= 1")
        for name in ("verify_bands_at", "verify_chroma_at"):
            if np.isnan(getattr(self, name)):
                raise ParameterError(f"{name} must be a number (inf: never accept), not NaN")
        for name in ("verify_bands_scale", "verify_chroma_scale"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ParameterError(f"{name}={getattr(self, name)} must be a finite number > 0")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One (track, offset) hypothesis of a search, before catalogue look-up."""

    track_id: int
    offset: int  # frames, track time of the query's first frame
    votes: int  # hits within ±tolerance of the offset
    track_hits: int  # all hits of the query in this track
    speed: float
    confidence: float
    expected: float = 0.0  # chance votes expected in the offset bin (null model's lambda, before phi)
    n_tests: float = 1.0  # bins examined (multiple-comparison count)
    n_tracks_hit: int = 0  # tracks with any hit in the lookup that produced this candidate
    z_bands: float = float("nan")  # profile agreement at the voted offset (verify stage; NaN: not verified)
    z_chroma: float = float("nan")
    other_offsets: tuple[int, ...] = ()  # the track's next best offset bins (dense passes; stage 4 tries them too)
    pitch: float = float("nan")  # frequency factor of the lookup (NaN: the same as speed, a turntable)

    @property
    def rate(self) -> tuple[float, float]:
        """``(time factor, frequency factor)`` of the lookup that produced it."""
        return (self.speed, self.speed if self.pitch != self.pitch else self.pitch)


class IndexLike(Protocol):
    """What a search needs from an index (:class:`~songmine.fingerprint.index.Index` or
    :class:`~songmine.fingerprint.memory.MemoryIndex`)."""

    config: FingerprintConfig

    def lookup(
        self, hashes: np.ndarray, max_per_hash: int | None = None, max_hits: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def track(self, track_id: int) -> Any: ...

    def profile(self, track_id: int) -> profiles.Profile | None: ...

    @property
    def n_tracks(self) -> int: ...


def one_pass(config: SearchConfig | None = None) -> SearchConfig:
    """``config`` as a one-pass search: no coarse stage, no boosted pass, no profile stage, turntable
    speeds only — the dense landmarks at each speed in order until one is certain, then the runner-up
    tests (``identify --one-pass``; what the distributed vote of :mod:`songmine.spark.vote` computes)."""
    return dataclasses.replace(
        config or SearchConfig(), coarse=False, verify_candidates=0, tempos=(), pitches=(), boost_peaks=1.0
    )


def search(index: IndexLike, y: np.ndarray, *, top: int = 5, config: SearchConfig = SearchConfig()) -> list[Candidate]:
    """Candidates for mono audio ``y`` at ``index.config.sr``, best first (may be below min_confidence).

    The stages (``docs/identify.md``, "Search stages and scale"; each a method of
    :class:`_Search`): 1 the coarse probes over the speed grid, 1b a full
    look-up where a lead was cut short by the hit budget, 1c the rule for a
    clip without a lead anywhere, 2 the dense query landmarks at the best
    rates, 2b a denser pass when nothing would be accepted, 2c a pass with peaks picked for music
    under a voice when still nothing would be, 3 the runner-up
    tests, 4 the spectral profiles when nothing was accepted.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"clip must be mono (1-D), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    run = _Search(index, y, top, config)
    done = found = False  # done: certain in a coarse probe; found: certain in a dense pass
    if config.coarse:
        done, found = run.coarse_probes()
        if not (done or found):
            done = run.full_lookups_where_cut()
    long_shot = True
    if config.coarse and not (done or found):
        done, long_shot = run.without_a_lead()
    if not (done or found) and long_shot:
        run.dense_passes()
        if config.boost_peaks > 1 and not _accepted(run.best, run.dense_best, config):
            run.boosted()
        if (
            config.talk_peaks
            and config.talk_margin_alpha > 0
            and index.n_tracks >= config.margin_min_tracks
            and not _accepted(run.best, run.dense_best, config)
        ):
            run.talk_over()  # its runner-up test needs margin_min_tracks tracks hit: not on a smaller index
    return run.answers(margin_tests=not done)[:top]


Rate = tuple[float, float]  # (time factor, frequency factor) of a lookup


class _Search:
    """One search: the clip at each rate, the candidates so far, what the coarse probes saw.

    A *rate* ``(a, p)`` is a time factor and a frequency factor: ``(s, s)`` a turntable speed,
    ``(t, 1)`` a tempo change, ``(1, p)`` a pitch shift (``SearchConfig.rates``).
    """

    def __init__(self, index: IndexLike, y: np.ndarray, top: int, config: SearchConfig):
        self.index, self.y, self.top, self.config = index, y, top, config
        self.fc: FingerprintConfig = index.config
        self.rates = config.rates
        # the null model's multiplicity: the speed grid it was calibrated with (docs/identify.md, "Tempo and pitch")
        self.n_speeds = len(config.speeds)
        self.best: list[Candidate] = []  # every candidate of every lookup
        self.dense_best: list[Candidate] = []  # those of the dense passes
        self.durations: dict[int, float] = {}
        self.clips: dict[float, np.ndarray] = {}  # the clip resampled to each speed tried
        self.refined: set[Rate] = set()  # rates searched with the dense landmarks
        self.coarse_config = dataclasses.replace(config, max_hits=config.coarse_max_hits)
        self._coarse_warp = speed_fingerprinter(y, self.fc)  # picks its peaks at the first call
        self._dense_warp = speed_fingerprinter(y, self.fc, query=True)
        self.counter = _HitCounter(index)
        self.evidence: dict[Rate, int] = {}  # most votes of a track, per rate probed
        self.lead: dict[Rate, float] = {}  # how far the most-voted track leads the runner-up, per rate probed
        self.truncated: dict[Rate, bool] = {}  # did the coarse hit budget cut the lookup at this rate?
        self.steps = {
            axis: 1.5 * _grid_step([_along(r, axis) for r in self.rates if _on_axis(r, axis)]) for axis in _AXES
        }

    def prints(self, r: Rate) -> tuple[np.ndarray, np.ndarray]:
        """The clip's index-density landmarks at rate ``r``: its peaks moved (``warp``, and always for a
        tempo or pitch change), or the clip resampled and fingerprinted again (a speed without ``warp``)."""
        if self.config.warp or r[0] != r[1]:
            return self._coarse_warp(r[0], pitch=r[1])
        return fingerprint(self.at_speed(r[0]), self.fc)

    def at_speed(self, s: float) -> np.ndarray:
        if s not in self.clips:
            with stage("resample"):
                self.clips[s] = at_speed(self.y, s)
        return self.clips[s]

    def certain(self, cands: list[Candidate]) -> bool:
        return bool(cands) and max(c.confidence for c in cands) >= self.config.stop_confidence

    def refine(self, r: Rate) -> bool:
        """Dense landmarks at rate ``r`` (once); True when that is certain.

        A speed resamples the clip; a tempo or pitch change moves its dense peaks (time or frequency only).
        """
        if r in self.refined:
            return False
        self.refined.add(r)
        fc = self.fc
        if r[0] == r[1]:
            h, t, q_frames = dense_query(self.at_speed(r[0]), 1.0, fc, self.config)
        else:
            h, t = expand_query(*self._dense_warp(r[0], pitch=r[1]), self.config.dt_jitter)
            q_frames = 1 + int(round(self.y.shape[0] * r[0]) / fc.hop_length)
        cands = _score(
            self.index,
            h,
            t,
            speed=r[0],
            pitch=r[1],
            q_frames=q_frames,
            n_speeds=self.n_speeds,
            top=self.top,
            config=self.config,
            durations=self.durations,
            others=True,
        )
        self.best.extend(cands)
        self.dense_best.extend(cands)
        return self.certain(cands)

    def probe(self, r: Rate, budget: bool = True) -> bool:
        """Coarse landmarks at rate ``r`` (within the coarse hit budget or not); True when that is certain."""
        config, fc = self.config, self.fc
        h, t = expand_query(*self.prints(r), config.dt_jitter)
        n = round(self.y.shape[0] * r[0]) if (config.warp or r[0] != r[1]) else self.at_speed(r[0]).shape[0]
        cands = _score(
            self.counter,
            h,
            t,
            speed=r[0],
            pitch=r[1],
            q_frames=1 + int(n / fc.hop_length),
            n_speeds=self.n_speeds,
            top=self.top,
            config=self.coarse_config if budget else config,
            durations=self.durations,
        )
        if r[0] != r[1]:  # off the speed grid a coarse answer must be certain, or confirmed by a dense pass
            cands = [
                c if c.confidence >= config.stop_confidence else dataclasses.replace(c, confidence=0.0) for c in cands
            ]
        self.best.extend(cands)
        limit = self.coarse_config.max_hits
        # a hash left out had <= max_per_hash postings: a cut lookup is within that of the budget
        self.truncated[r] = (
            budget and limit is not None and self.counter.hits > limit - min(config.max_per_hash or limit, limit // 2)
        )
        self.evidence[r] = max((c.votes for c in cands), default=0)
        self.lead[r] = _lead_ratio(cands, config.margin_floor)
        return self.certain(cands)

    def neighbours(self, r: Rate, pending: list[Rate]) -> list[Rate]:
        """The pending rates next to ``r`` on a grid axis through it (speed, tempo or pitch)."""
        return [
            u
            for u in pending
            if any(
                _on_axis(r, ax) and _on_axis(u, ax) and abs(_along(u, ax) - _along(r, ax)) <= self.steps[ax]
                for ax in _AXES
            )
        ]

    def coarse_probes(self) -> tuple[bool, bool]:
        """Stage 1: the index's own sparse landmarks, every rate, until certain; ``(done, found)``.

        Where a track leads the runner-up by ``lead_margin``, the clip's rate is
        that one or next to it: the neighbours are probed, the clearest lead is
        climbed to and searched with the dense landmarks at once (``found``).
        """
        config = self.config
        done = found = False
        pending = list(self.rates)
        while pending and not (done or found):  # loop over a handful of rates
            r = pending.pop(0)
            done = self.probe(r)
            if done or config.lead_margin is None or self.lead[r] < config.lead_margin:
                continue
            while not done:  # a step or two along the grid
                near = self.neighbours(r, pending)
                for u in near:  # the (few) untried neighbours
                    pending.remove(u)
                    done = self.probe(u)
                    if done:
                        break
                top_r = max([r, *near], key=lambda u: self.lead.get(u, 0.0))
                if top_r == r:
                    break
                r = top_r
            if not done and self.truncated.get(r):  # the full coarse lookup first: cheaper than the dense one
                done = self.probe(r, budget=False)
            found = not done and self.refine(r)
        return done, found

    def full_lookups_where_cut(self) -> bool:
        """Stage 1b: a rate where a track leads (by refine_margin) but whose lookup the coarse budget
        cut short is looked up again in full (on a big index the right votes may sit in common hashes)."""
        config = self.config
        led = sorted(
            (r for r in self.rates if self.lead.get(r, 0.0) >= config.refine_margin),
            key=lambda r: -self.evidence.get(r, 0),
        )
        for r in led[: config.refine_speeds]:  # loop over a handful of rates
            if self.truncated.get(r) and self.probe(r, budget=False):
                return True
        return False

    def without_a_lead(self) -> tuple[bool, bool]:
        """Stage 1c: no track leads anywhere; ``(done, long_shot)``.

        On a small index the dense passes are the long shot for a clip whose
        coarse evidence is weak everywhere; where the coarse budget cut the
        probes short (a big index) a missing lead may only mean the votes sit
        in common hashes, so the top rate is looked up in full first, and
        without a lead there either the long shot is not taken (at 1,000 hours
        it cost a non-member clip half its time and found no member clip).
        """
        config = self.config
        if max(self.lead.values(), default=0.0) >= config.refine_margin:
            return False, True
        r0 = sorted(self.rates, key=lambda r: -self.evidence.get(r, 0))[0]
        if not self.truncated.get(r0):
            return False, True
        done = self.probe(r0, budget=False)
        return done, self.lead[r0] >= config.refine_margin

    def dense_passes(self) -> None:
        """Stage 2: the dense query landmarks, first at the rates where a coarse probe saw a track lead
        (by refine_margin), most votes first; then, as at chance the vote counts are noise, the configured
        order. A rate at chance is searched only while the best so far would be accepted: its dense pass
        is then the runner-up sample that may veto it; when nothing would be accepted it has nothing to veto.
        """
        config = self.config
        led = [
            r
            for r in self.rates
            if self.lead.get(r, 0.0) >= (config.refine_margin if r[0] == r[1] else config.rate_refine_margin)
        ]
        if config.coarse and config.refine_speeds is not None:
            led = sorted(led, key=lambda r: -self.evidence.get(r, 0))  # stable: the configured order on ties
            # the first configured rate (1.0: most clips are not sped up) first, then the led ones
            rates = list(dict.fromkeys([self.rates[0], *led, *self.rates]))[: config.refine_speeds]
        else:
            rates = sorted(self.rates, key=lambda r: -self.evidence.get(r, 0))
        for r in rates:  # loop over a handful of rates
            if config.coarse and self.refined and r not in led and not _accepted(self.best, self.dense_best, config):
                break  # the rest are at chance too
            if self.refine(r):
                break

    def boosted(self) -> None:
        """Stage 2b: when nothing is accepted, one more dense pass at the first rate with
        ``boost_peaks`` times the query's peak density. Interference with peaks of its own (a voice
        over the music, a room's babble) takes the query's peak slots; more of them reach the music's.
        Its chance level is its own: the Poisson test with ``boost_overdispersion``, the per-rate
        runner-up test over its own candidates (its votes are not on the other passes' scale)."""
        config = self.config
        fc = dataclasses.replace(self.fc, query_peaks_per_s=self.fc.query_peaks_per_s * config.boost_peaks)
        r = self.rates[0]
        ys = self.at_speed(r[0]) if r[0] == r[1] else self.y
        h, t = expand_query(*fingerprint(ys, fc, query=True), config.dt_jitter)
        cands = _score(
            self.index,
            h,
            t,
            speed=r[0],
            pitch=r[1],
            q_frames=1 + int(ys.shape[0] / fc.hop_length),
            n_speeds=self.n_speeds + 1,
            top=self.top,
            config=dataclasses.replace(config, overdispersion=config.boost_overdispersion),
            durations=self.durations,
            others=True,
        )
        self.best.extend(cands)
        if cands and config.speed_margin_alpha > 0:
            self.best.extend(_with_margin(cands, dataclasses.replace(config, margin_alpha=0.0)))

    def talk_over(self) -> None:
        """Stage 2c: when still nothing is accepted, a dense pass at the first rate with peaks picked
        for music under a voice (``talk_*``): small neighbourhoods, so a voice's harmonic comb does not
        hide the music's peaks between its teeth, and peaks that last ranked first. Its hit counts are
        on a scale of their own: only its most-voted track, and only if it passes this pass's
        runner-up test, joins the candidates (otherwise the later stages see what they saw before)."""
        config = self.config
        fc = dataclasses.replace(
            self.fc, query_peaks_per_s=self.fc.query_peaks_per_s * config.talk_peaks, f_radius=config.talk_f_radius
        )
        r = self.rates[0]
        ys = self.at_speed(r[0]) if r[0] == r[1] else self.y
        persist = (config.talk_persist_frames, config.talk_persist_weight)
        h, t = expand_query(*fingerprint(ys, fc, query=True, persist=persist), config.dt_jitter)
        cands = _score(
            self.index,
            h,
            t,
            speed=r[0],
            pitch=r[1],
            q_frames=1 + int(ys.shape[0] / fc.hop_length),
            n_speeds=self.n_speeds + 2,
            top=self.top,
            config=config,
            durations=self.durations,
        )
        if not cands or max(c.n_tracks_hit for c in cands) < config.margin_min_tracks:
            return
        top = max(cands, key=lambda c: c.votes)
        v2 = max((c.votes for c in cands if c.track_id != top.track_id), default=0)
        conf = margin_confidence(
            top.votes, v2, alpha=config.talk_margin_alpha, n_tests=config.talk_margin_tests, floor=config.margin_floor
        )
        if conf >= config.min_confidence:
            self.best.append(dataclasses.replace(top, confidence=conf))

    def answers(self, margin_tests: bool) -> list[Candidate]:
        """Stages 3 and 4: the runner-up tests over the dense candidates (unless a coarse probe was
        certain) and one candidate per track (its best rate; :func:`rank`), then the profiles when
        nothing is accepted."""
        config, best = self.config, self.best
        out = rank(best, self.dense_best, config, margin_tests=margin_tests)
        if config.verify_candidates and out and out[0].confidence < config.min_confidence:
            on_grid: dict[int, Candidate] = {}
            for c in best:  # best first: each track's best candidate at a turntable speed
                if c.rate[0] == c.rate[1]:
                    on_grid.setdefault(c.track_id, c)
            out = _verify(self.index, out, self.at_speed, config, on_grid)
        return out


def rank(
    best: list[Candidate], dense_best: list[Candidate], config: SearchConfig, *, margin_tests: bool = True
) -> list[Candidate]:
    """Stage 3: the runner-up tests over the dense candidates (with ``margin_tests``), then one
    candidate per track (its most confident), best first. ``best`` holds every candidate of the
    search in the order they were found (extended and sorted here), ``dense_best`` those of the dense passes."""
    if margin_tests and dense_best and (config.margin_alpha > 0 or config.speed_margin_alpha > 0):
        best.extend(_with_margin(dense_best, config))  # duplicates go with the one-per-track step
    best.sort(key=lambda c: (-c.confidence, -c.votes))
    seen: set[int] = set()
    out = []
    for c in best:
        if c.track_id not in seen:
            seen.add(c.track_id)
            out.append(c)
    return out


#: The axes of the rate grid: a turntable speed moves time and frequency together, a tempo change time
#: only, a pitch shift frequency only.
_AXES = ("speed", "tempo", "pitch")


def _on_axis(r: Rate, axis: str) -> bool:
    return r[0] == r[1] if axis == "speed" else (r[1] == 1.0 if axis == "tempo" else r[0] == 1.0)


def _along(r: Rate, axis: str) -> float:
    return r[1] if axis == "pitch" else r[0]


def _verify(
    index: IndexLike,
    cands: list[Candidate],
    at_speed: Callable[[float], np.ndarray],
    config: SearchConfig,
    on_grid: dict[int, Candidate] | None = None,
) -> list[Candidate]:
    """Compare the first ``verify_candidates`` candidates with their track's stored profile.

    Each gets ``z_bands``/``z_chroma``: the largest :func:`songmine.fingerprint.profiles.similarity`
    statistics over its voted offset and its ``other_offsets``, on the clip at
    its speed; when these say more, a higher confidence and the offset where
    the profiles agree. Profiles are compared at turntable speeds: a candidate
    at a tempo or pitch rate is verified as its track's best candidate on the
    speed grid (``on_grid``), if it has one. Indexes without profiles (a
    :class:`MemoryIndex` without them, an index built before they existed) are
    left as they are.
    """
    fc: FingerprintConfig = index.config
    if not profiles.supported(fc.sr):
        return cands
    hop = profiles.hop_length(fc.sr)
    clips: dict[tuple[float, int], Any] = {}
    out = list(cands)
    for i, c in enumerate(cands[: config.verify_candidates]):  # a handful of candidates
        ref = index.profile(c.track_id)
        if c.rate[0] != c.rate[1]:
            grid = (on_grid or {}).get(c.track_id)
            if grid is None:
                continue
            c = dataclasses.replace(grid, confidence=c.confidence)  # its rate, offsets and votes; the confidence so far
        if ref is None:
            continue
        zb_max = zc_max = -np.inf
        conf, at = 0.0, c.offset
        for offset in (c.offset, *c.other_offsets):  # its best offset bin, then the next ones
            start = offset * fc.hop_length  # track sample of the clip's first sample (at the candidate's speed)
            first = -(-start // hop)  # the clip's first whole profile frame of the track
            key = (c.speed, first * hop - start)
            if key not in clips:
                clips[key] = profiles.profile(at_speed(c.speed)[key[1] :], fc.sr)
            zb, zc, _ = profiles.similarity(clips[key], ref, first)
            zb_max, zc_max = max(zb_max, zb), max(zc_max, zc)
            here = max(
                _verify_confidence(zb, config.verify_bands_at, config.verify_bands_scale),
                _verify_confidence(zc, config.verify_chroma_at, config.verify_chroma_scale),
            )
            if here > conf:
                conf, at = here, offset
        if conf > c.confidence:  # the profiles answer: report the offset where they agree
            out[i] = dataclasses.replace(c, z_bands=zb_max, z_chroma=zc_max, confidence=conf, offset=at)
        else:
            out[i] = dataclasses.replace(out[i], z_bands=zb_max, z_chroma=zc_max)
    out.sort(key=lambda c: (-c.confidence, -c.votes))
    return out


def _verify_confidence(z: float, at: float, scale: float) -> float:
    """``0.5 ** exp(-(z - at) / scale)``: 0.5 at the threshold ``at``, → 1 above it, → 0 below."""
    if not np.isfinite(z) or not np.isfinite(at):
        return 0.0
    return float(0.5 ** np.exp(min(-(z - at) / scale, 700.0)))


class _HitCounter:
    """An index that remembers how many hits its last lookup returned."""

    def __init__(self, index: IndexLike):
        self._index, self.config, self.hits = index, index.config, 0

    def lookup(self, hashes: np.ndarray, max_per_hash: int | None = None, max_hits: int | None = None):
        out = self._index.lookup(hashes, max_per_hash=max_per_hash, max_hits=max_hits)
        self.hits = int(out[0].shape[0])
        return out

    def track(self, track_id: int) -> Any:
        return known_track(self._index, track_id)

    @property
    def n_tracks(self) -> int:
        return self._index.n_tracks


def known_track(index: IndexLike, track_id: int) -> Any:
    """``index.track(track_id)`` for a track id read from the postings: missing, the index is at fault, not the clip."""
    try:
        return index.track(track_id)
    except KeyError:
        path = getattr(index, "path", None)
        raise IndexCorruptError(
            f"{path or 'the index'}: postings name track {track_id}, which its catalogue does not know; "
            f"`songmine verify{f' --index {path}' if path else ''}` checks it",
            part=str(path) if path else None,
        ) from None


def _accepted(best: list[Candidate], dense_best: list[Candidate], config: SearchConfig) -> bool:
    """Would the candidates so far give an answer (a confidence, or the margin test's, >= min_confidence)?"""
    if any(c.confidence >= config.min_confidence for c in best):
        return True
    if not dense_best or (config.margin_alpha <= 0 and config.speed_margin_alpha <= 0):
        return False
    return any(c.confidence >= config.min_confidence for c in _with_margin(dense_best, config))


def _grid_step(speeds: Sequence[float]) -> float:
    """Smallest gap between two distinct speed factors (0 for a single speed)."""
    u = np.unique(np.asarray(speeds, dtype=np.float64))
    return float(np.diff(u).min()) if u.size > 1 else 0.0


def _lead_ratio(cands: list[Candidate], floor: int) -> float:
    """How far the most-voted track leads the runner-up: ``v1 / max(v2, floor)`` (0 without candidates)."""
    if not cands:
        return 0.0
    v = sorted((c.votes for c in cands), reverse=True)
    return v[0] / max(v[1] if len(v) > 1 else 0, floor, 1)


def _with_margin(best: list[Candidate], config: SearchConfig) -> list[Candidate]:
    """Raise the confidence of the most-voted track by the margin tests when they say more.

    ``best`` are candidates of comparable lookups (the dense query landmarks at
    every speed searched). Two runner-up tests, each calibrated on non-member
    clips (``docs/identify.md``), both for the most-voted track only:

    * pooled: against the runner-up track over every speed searched
      (``margin_alpha``, ``margin_tests``);
    * per speed: at the speed where it was most voted, against the runner-up
      track *of that speed* (``speed_margin_alpha``, ``speed_margin_tests``).

    Only lookups with ``margin_min_tracks`` tracks hit take part.
    """
    if max(c.n_tracks_hit for c in best) < config.margin_min_tracks:
        return best
    top = max(best, key=lambda c: c.votes)
    conf = 0.0
    if config.margin_alpha > 0:
        v2 = max((c.votes for c in best if c.track_id != top.track_id), default=0)
        conf = margin_confidence(
            top.votes, v2, alpha=config.margin_alpha, n_tests=config.margin_tests, floor=config.margin_floor
        )
    if config.speed_margin_alpha > 0 and top.n_tracks_hit >= config.margin_min_tracks:
        v2 = max((c.votes for c in best if c.rate == top.rate and c.track_id != top.track_id), default=0)
        conf = max(
            conf,
            margin_confidence(
                top.votes,
                v2,
                alpha=config.speed_margin_alpha,
                n_tests=config.speed_margin_tests,
                floor=config.margin_floor,
            ),
        )
    if conf <= top.confidence:
        return best
    return [dataclasses.replace(c, confidence=conf) if c is top else c for c in best]


def _score(
    index: IndexLike,
    h: np.ndarray,
    t: np.ndarray,
    *,
    speed: float,
    q_frames: int,
    n_speeds: int,
    top: int,
    config: SearchConfig,
    durations: dict[int, float],
    others: bool = False,
    pitch: float | None = None,
) -> list[Candidate]:
    """Look up one set of query hashes, vote, rescore and attach the null-model confidence.

    With ``others``, each candidate also gets its track's next best offset bins
    (``verify_offsets - 1`` of them, a clip length apart): in a looped piece the
    votes may crown a repeat of the passage the clip is not from, and stage 4
    compares the profiles at each.
    """
    if h.size == 0:
        return []
    qpos, tr, tt = index.lookup(h, max_per_hash=config.max_per_hash, max_hits=config.max_hits)
    tracks, offsets, votes, track_hits, n_hit = vote(t, qpos, tr, tt, tolerance=config.tolerance)
    if tracks.size == 0:
        return []
    k = min(max(top, config.rescore), tracks.size)
    if config.distinct:
        votes = votes.copy()
        votes[:k] = distinct_votes(h, t, qpos, tr, tt, tracks[:k], offsets[:k], tolerance=config.tolerance)
        order = np.argsort(-votes[:k], kind="stable")
        tracks, offsets, votes, track_hits = (a[:k][order] for a in (tracks, offsets, votes, track_hits))
    cands = candidates(
        index,
        tracks[:k],
        offsets[:k],
        votes[:k],
        track_hits[:k],
        n_hit,
        speed=speed,
        pitch=pitch,
        q_frames=q_frames,
        n_speeds=n_speeds,
        config=config,
        durations=durations,
    )
    # stage 4 runs only when no candidate anywhere reached min_confidence: a lookup with one never needs them
    if (
        others
        and config.verify_candidates
        and config.verify_offsets > 1
        and max(c.confidence for c in cands) < config.min_confidence
    ):
        alts = other_offsets(
            t,
            qpos,
            tr,
            tt,
            tracks[:k],
            offsets[:k],
            n=config.verify_offsets - 1,
            sep=q_frames,
            tolerance=config.tolerance,
        )
        cands = [dataclasses.replace(c, other_offsets=alt) for c, alt in zip(cands, alts)]
    return cands


def candidates(
    index: IndexLike,
    tracks: np.ndarray,
    offsets: np.ndarray,
    votes: np.ndarray,
    track_hits: np.ndarray,
    n_hit: int,
    *,
    speed: float,
    q_frames: int,
    n_speeds: int,
    config: SearchConfig,
    durations: dict[int, float],
    pitch: float | None = None,
) -> list[Candidate]:
    """What one lookup's votes are worth: the null-model confidence of each voted ``(track, offset)``.

    ``tracks``, ``offsets``, ``votes`` (distinct votes when ``config.distinct``) and
    ``track_hits`` (int64) are the lookup's best bins in rank order, as :func:`_score` leaves
    them after :func:`~songmine.fingerprint.scoring.vote` and the rescoring; ``n_hit`` the
    tracks it hit. The distributed vote (:mod:`songmine.spark.vote`) ends here too.
    """
    fc: FingerprintConfig = index.config
    width = 2 * config.tolerance + 1
    for tid in tracks.tolist():
        if tid not in durations:
            durations[tid] = float(index.track(tid).duration_s)
    span = np.array([durations[tid] / fc.hop_s + q_frames for tid in tracks.tolist()])
    # bins examined: every offset of every track that got hits, at every speed
    mean_span = float(np.mean(span))
    n_tests = float(n_hit) * mean_span / width * n_speeds
    lam = expected_votes(votes, track_hits, span, width=width, min_rate=width / mean_span)
    conf = confidence_from(votes, lam, n_tests=n_tests, overdispersion=config.overdispersion)
    p = float(speed if pitch is None else pitch)
    return [
        Candidate(int(a), int(b), int(c), int(d), float(speed), float(e), float(lm), n_tests, int(n_hit), pitch=p)
        for a, b, c, d, e, lm in zip(tracks, offsets, votes, track_hits, conf, lam)
    ]


def at_speed(y: np.ndarray, s: float) -> np.ndarray:
    """The clip as it would sound played ``s`` times slower (resampled by ``s``: what the dense passes fingerprint)."""
    return y if s == 1.0 else soxr.resample(y, 1.0, float(s), quality="LQ").astype(np.float32)


def dense_query(
    y: np.ndarray, s: float, fc: FingerprintConfig, config: SearchConfig
) -> tuple[np.ndarray, np.ndarray, int]:
    """The dense query landmarks of clip ``y`` at speed ``s`` (dt-jittered) and the clip's length in frames."""
    ys = at_speed(y, s)
    h, t = expand_query(*fingerprint(ys, fc, query=True), config.dt_jitter)
    return h, t, 1 + int(ys.shape[0] / fc.hop_length)


def expand_query(h: np.ndarray, t: np.ndarray, jitter: int) -> tuple[np.ndarray, np.ndarray]:
    """Query hashes plus their ``dt ± 1..jitter`` variants, deduplicated by (hash, time)."""
    if jitter == 0 or h.size == 0:
        return h, t
    _, _, dt = unpack_hashes(h)
    hs, ts = [h.astype(np.int64)], [t]
    for d in range(1, jitter + 1):  # a couple of shifts
        for sign in (-1, 1):
            ok = (dt + sign * d >= 0) & (dt + sign * d < (1 << DT_BITS))
            hs.append(h[ok].astype(np.int64) + sign * d)  # dt is the low field
            ts.append(t[ok])
    key = np.unique((np.concatenate(hs) << 32) | np.concatenate(ts).astype(np.int64))
    return (key >> 32).astype(np.uint32), (key & 0xFFFFFFFF).astype(np.uint32)
