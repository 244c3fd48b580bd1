"""The match record: the one shape shared by ``identify --json`` and ``POST /api/identify``.

``confidence`` is the probability that the match is right under a null model
of chance offset agreement (see ``docs/identify.md``); ``tempo`` and ``pitch``
the time and frequency factors the match was found at (a turntable speed
change: both the same); ``matches == []`` means "no match";
``error`` is a one-line reason when the query itself failed.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["Match", "QueryResult"]


class Match(BaseModel):
    """One library track that a query matched."""

    track_id: int
    path: str
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    offset_s: float = Field(description="Where the query starts in the track, seconds")
    score: float = Field(description="Method-specific strength of the match (e.g. aligned hashes)")
    confidence: float = Field(ge=0.0, le=1.0, description="P(match is right) under the null model")
    tempo: float = Field(
        1.0,
        gt=0.0,
        description="Time factor of the query against the track that the match was "
        "found at (1.03: it plays 3 % faster); 1.0 for methods that search "
        "none",
    )
    pitch: float = Field(
        1.0,
        gt=0.0,
        description="Frequency factor of the query against the track (2**(1/12): a "
        "semitone higher); a turntable speed change moves both: "
        "tempo == pitch",
    )


class QueryResult(BaseModel):
    """The answer for one query clip."""

    query: str
    matches: list[Match] = Field(default_factory=list)
    error: str | None = None
