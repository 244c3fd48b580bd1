"""Identify one clip: decode it, search, and answer with the match record (or "no match").

:func:`identify` is the library call behind ``songmine identify`` and
``POST /api/identify``: bad audio is an ``error`` in the record, never an
exception; candidates below ``SearchConfig.min_confidence`` are not matches.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..audio import load
from ..errors import DecodeError, ParameterError, one_line
from ..records import Match, QueryResult
from .landmarks import FingerprintConfig
from .search import Candidate, IndexLike, SearchConfig, known_track, search

__all__ = ["identify", "matches_of"]


def _query_name(clip: Any, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(clip, (str, os.PathLike)):
        return os.fspath(clip)
    if isinstance(clip, np.ndarray):
        return "<array>"
    return getattr(clip, "name", None) or "<upload>"


def identify(
    index: IndexLike,
    clip: Any,
    *,
    top: int = 5,
    name: str | None = None,
    max_duration_s: float | None = 60.0,
    config: SearchConfig = SearchConfig(),
) -> QueryResult:
    """Identify one clip against ``index``.

    Parameters
    ----------
    index : songmine.index.Index or MemoryIndex
    clip : path, bytes, binary file object, or np.ndarray
        An array must be mono float32 at ``index.config.sr``.
    top : int
        Report at most this many matches.
    name : str or None
        The ``query`` field of the record (default: the path, or ``<array>``/``<upload>``).
    max_duration_s : float or None
        Longer clips are refused (``error``), not decoded; None: no limit (a whole file).
    config : SearchConfig
        Query-side knobs.

    Returns
    -------
    QueryResult
        ``matches`` best first, ``[]`` for "no match"; ``error`` set when the clip
        could not be decoded (never raises for bad audio).

    Raises
    ------
    ParameterError
        ``top < 1`` or a malformed array.
    IndexCorruptError
        The index is damaged (what the search reads fails its checksum, or
        the postings and the catalogue disagree): never blamed on the clip.
    """
    if not isinstance(top, int) or top < 1:
        raise ParameterError(f"top={top!r} must be an integer >= 1")
    qname = _query_name(clip, name)
    fc: FingerprintConfig = index.config
    if isinstance(clip, np.ndarray):
        y = clip
        if y.ndim != 1:
            raise ParameterError(f"clip array must be mono (1-D), got shape {y.shape}")
        if max_duration_s is not None and y.shape[0] > (max_duration_s + 0.5) * fc.sr:
            return QueryResult(
                query=qname,
                error=f"clip is {y.shape[0] / fc.sr:.1f} s long, more than the limit of {max_duration_s:g} s",
            )
    else:
        try:
            y = load(clip, sr=fc.sr, max_duration=max_duration_s)
        except DecodeError as exc:
            return QueryResult(query=qname, error=one_line(exc))
    cands = search(index, y, top=top, config=config)
    return QueryResult(query=qname, matches=matches_of(index, cands, config))


def matches_of(index: IndexLike, cands: list[Candidate], config: SearchConfig) -> list[Match]:
    """The match records of a search's candidates: those at ``min_confidence`` or above, with their track."""
    fc: FingerprintConfig = index.config
    matches = []
    for c in cands:
        if c.confidence < config.min_confidence:
            continue
        tr = known_track(index, c.track_id)
        matches.append(
            Match(
                track_id=int(tr.track_id),
                path=str(tr.path),
                title=tr.title,
                artist=tr.artist,
                album=tr.album,
                offset_s=round(float(c.offset * fc.hop_s), 3),
                score=float(c.votes),
                confidence=float(min(max(c.confidence, 0.0), 1.0)),
                tempo=round(float(c.rate[0]), 4),
                pitch=round(float(c.rate[1]), 4),
            )
        )
    return matches
