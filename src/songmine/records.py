"""The match record: the one shape shared by ``identify --json`` and ``POST /api/identify``.

``confidence`` is the probability that the match is right under a null model
of chance offset agreement (see ``docs/identify.md``); ``speed`` the playback
speed factor the match was found at; ``matches == []`` means "no match";
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
    speed: float = Field(1.0, gt=0.0, description="Playback speed of the query relative to the track that the "
                                                  "match was found at (1.02: the query plays 2 % faster, higher "
                                                  "in pitch; 1.0 for methods that do not search speeds)")


class QueryResult(BaseModel):
    """The answer for one query clip."""

    query: str
    matches: list[Match] = Field(default_factory=list)
    error: str | None = None
