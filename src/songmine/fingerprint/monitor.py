"""What played when: a long recording cut into windows, each window identified, the answers joined.

Broadcast monitoring asks of an hour of radio which library tracks played,
from when to when. The recording is decoded once, cut into windows of
``window_s`` seconds every ``hop_s`` seconds (:func:`window_spans`), and
each window is an ordinary clip for :func:`songmine.fingerprint.query.identify`.
:func:`timeline` then joins consecutive windows whose best match is the same
track *at the same alignment* (the recording time where the track's first
second would lie, ``anchor = window start - offset in the track``, agrees
within ``window_s``) into one :class:`Played` span:

* ``start_s`` / ``end_s``: the first matched window's start and the last
  one's end, narrowed to the track's own extent when the alignment puts its
  beginning or end inside them (a track that starts 3 s into a window started
  there, not at the window's start), and a span ends where the next one
  starts. So they are right to within a window: exact where a track is heard
  from its beginning, or to its end, or up to the next track heard; otherwise
  somewhere inside the first (last) window that heard it (a window with a
  couple of seconds of the track can name it). Shorter windows and hops give
  finer boundaries, at more searches;
* ``track_start_s``: where in the track the span begins.

The local engine and the Spark engine (:mod:`songmine.spark.identify`) cut the
same windows from the same decoded samples with these functions, so they
answer each window alike and draw the same timeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..audio import load
from ..errors import DecodeError, ParameterError, one_line
from ..records import QueryResult
from .query import identify
from .search import SearchConfig

__all__ = [
    "WindowResult",
    "Played",
    "RecordingResult",
    "check_windows",
    "window_spans",
    "window_name",
    "timeline",
    "cut",
    "identify_recording",
    "finish",
    "MAX_RECORDING_S",
]

#: Longest recording decoded for monitoring: its samples are held in memory (an hour at 11,025 Hz is
#: 160 MB), so a longer one should be split first.
MAX_RECORDING_S = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window of a recording and its answer."""

    start_s: float
    end_s: float
    result: QueryResult


@dataclass(frozen=True, slots=True)
class Played:
    """A library track heard from ``start_s`` to ``end_s`` of the recording."""

    track_id: int
    path: str
    title: str | None
    artist: str | None
    album: str | None
    start_s: float
    end_s: float
    track_start_s: float  # position in the track at start_s
    windows: int  # windows that matched it here
    confidence: float  # the best of those windows'


@dataclass(slots=True)
class RecordingResult:
    """A recording's windows and its timeline (``error`` set when it could not be decoded)."""

    recording: str
    duration_s: float = 0.0
    played: list[Played] = field(default_factory=list)
    windows: list[WindowResult] = field(default_factory=list)
    error: str | None = None


def check_windows(window_s: float, hop_s: float | None, max_clip_s: float = 60.0) -> float:
    """Validate a window length and hop (default hop: half a window); returns the hop."""
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and 1.0 <= window_s <= max_clip_s):
        raise ParameterError(f"window={window_s!r} s must be between 1 and {max_clip_s:g} s")
    hop = window_s / 2 if hop_s is None else hop_s
    if not (isinstance(hop, (int, float)) and math.isfinite(hop) and 0.5 <= hop <= window_s):
        raise ParameterError(f"hop={hop!r} s must be between 0.5 s and the window ({window_s:g} s)")
    return float(hop)


def window_spans(n_samples: int, sr: int, window_s: float, hop_s: float) -> list[tuple[int, int]]:
    """Sample spans ``[a, b)`` of the windows: every ``hop_s`` from 0, each ``window_s`` long.

    The last window ends at the recording's end (shorter, or the whole
    recording when it is shorter than one window); a tail shorter than a
    second after the previous window's end adds no window.
    """
    win = int(round(window_s * sr))
    hop = int(round(hop_s * sr))
    spans: list[tuple[int, int]] = []
    a = 0
    while a < n_samples:
        b = min(a + win, n_samples)
        if spans and b - a < sr:  # a tail of less than a second: the previous window covers most of it
            break
        spans.append((a, b))
        if b == n_samples:
            break
        a += hop
    return spans


def window_name(recording: str, start_s: float, end_s: float) -> str:
    """The ``query`` field of a window's record: ``recording@start-end`` (seconds)."""
    return f"{recording}@{start_s:.3f}-{end_s:.3f}"


def timeline(
    windows: Sequence[WindowResult],
    *,
    window_s: float,
    duration_of: Callable[[int], float | None] = lambda track_id: None,
    recording_s: float | None = None,
) -> list[Played]:
    """Join consecutive windows that heard the same track at the same alignment (see the module doc).

    Parameters
    ----------
    windows : sequence of WindowResult
        In time order; only each window's best match counts.
    window_s : float
        The window length: alignments closer than this are the same playing,
        and windows of one playing may be up to this far apart (a window that
        heard nothing, or straddled a change, does not split it).
    duration_of : callable(track_id) -> seconds or None
        The track's duration (from the index), to narrow the span's end.
    recording_s : float or None
        The recording's duration (the last span ends there at the latest).
    """
    out: list[Played] = []
    cur: dict | None = None

    def close() -> None:
        if cur is None:
            return
        anchor = cur["anchor"]
        start = max(cur["start"], anchor)
        end = cur["end"]
        dur = duration_of(cur["m"].track_id)
        if dur is not None and dur > 0:
            end = min(end, anchor + dur)
        if recording_s is not None:
            end = min(end, recording_s)
        end = max(end, start)
        m = cur["m"]
        out.append(
            Played(
                track_id=m.track_id,
                path=m.path,
                title=m.title,
                artist=m.artist,
                album=m.album,
                start_s=round(start, 3),
                end_s=round(end, 3),
                track_start_s=round(start - anchor, 3),
                windows=cur["n"],
                confidence=cur["conf"],
            )
        )

    for w in windows:
        if not w.result.matches:
            continue
        m = w.result.matches[0]
        anchor = w.start_s - m.offset_s
        if (
            cur is not None
            and m.track_id == cur["m"].track_id
            and abs(anchor - cur["anchor"]) <= window_s
            and w.start_s - cur["end"] <= window_s
        ):
            cur["end"] = max(cur["end"], w.end_s)
            cur["n"] += 1
            cur["conf"] = max(cur["conf"], m.confidence)
            continue
        close()
        cur = {"m": m, "anchor": anchor, "start": w.start_s, "end": w.end_s, "n": 1, "conf": m.confidence}
    close()
    for i in range(len(out) - 1):  # two playings overlap only by the windows' width: the next one's start wins
        a, b = out[i], out[i + 1]
        if a.end_s > b.start_s >= a.start_s:
            out[i] = replace(a, end_s=b.start_s)
    return out


def cut(y: np.ndarray, sr: int, window_s: float, hop_s: float) -> list[tuple[float, float, np.ndarray]]:
    """The windows of decoded samples ``y``: ``(start_s, end_s, samples)`` each (views, no copies)."""
    return [(a / sr, b / sr, y[a:b]) for a, b in window_spans(y.shape[0], sr, window_s, hop_s)]


def identify_recording(
    index,
    recording: str,
    *,
    window_s: float,
    hop_s: float | None = None,
    top: int = 3,
    config=None,
    max_duration_s: float = MAX_RECORDING_S,
) -> RecordingResult:
    """Decode ``recording``, identify each window against ``index``, and draw its timeline.

    A recording that cannot be decoded gives a :class:`RecordingResult` with
    ``error`` set (never raises for bad audio).
    """
    hop = check_windows(window_s, hop_s)
    config = config or SearchConfig()
    sr = index.config.sr
    try:
        y = load(recording, sr=sr, max_duration=max_duration_s)
    except DecodeError as exc:
        return RecordingResult(recording=str(recording), error=one_line(exc))
    wins = [
        WindowResult(a, b, identify(index, part, top=top, name=window_name(str(recording), a, b), config=config))
        for a, b, part in cut(y, sr, window_s, hop)
    ]  # loop over windows
    return finish(str(recording), y.shape[0] / sr, wins, window_s=window_s, index=index)


def finish(recording: str, duration_s: float, wins: list[WindowResult], *, window_s: float, index) -> RecordingResult:
    """A recording's result from its window answers (both engines end here)."""

    def duration_of(track_id: int) -> float | None:
        try:
            return float(index.track(track_id).duration_s)
        except (KeyError, AttributeError):
            return None

    wins = sorted(wins, key=lambda w: w.start_s)
    return RecordingResult(
        recording=recording,
        duration_s=round(duration_s, 3),
        played=timeline(wins, window_s=window_s, duration_of=duration_of, recording_s=duration_s),
        windows=wins,
    )
