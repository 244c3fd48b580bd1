"""What an evaluation measures: the split, the cells (condition × duration), the queries per cell."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError
from .degrade import CONDITIONS

__all__ = ["EvalConfig"]


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
            raise ParameterError(f"conditions={self.conditions} must be distinct names from: {', '.join(CONDITIONS)}")
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
