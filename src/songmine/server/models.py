"""The HTTP schema beside the match record (:mod:`songmine.records`): tracks, pages, health, errors."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..fingerprint.index import TrackRecord

__all__ = ["ErrorOut", "TrackOut", "TrackPage", "AddedTrack", "Health"]


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: ``detail`` is one human-readable line, ``reason`` a stable machine-friendly word."""

    detail: str
    reason: str = Field(description="Machine-friendly cause, e.g. 'not-audio', 'too-long', 'busy'")


class TrackOut(BaseModel):
    """One library track."""

    id: int
    path: str
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    duration_s: float | None = None

    @classmethod
    def of(cls, t: TrackRecord) -> "TrackOut":
        """The HTTP view of a catalogue record."""
        return cls(id=t.track_id, path=t.path, title=t.title, artist=t.artist, album=t.album,
                   duration_s=t.duration_s)


class TrackPage(BaseModel):
    """A page of ``GET /api/tracks``."""

    total: int
    offset: int
    limit: int
    tracks: list[TrackOut]


class AddedTrack(BaseModel):
    """Result of ``POST /api/tracks``."""

    track: TrackOut
    created: bool = Field(description="False when the same audio was already in the library")


class Health(BaseModel):
    status: str
    version: str
    n_tracks: int
    editing: bool = Field(description="Whether POST/DELETE /api/tracks are enabled (a token is configured)")
    max_upload_bytes: int
    max_query_s: float
    top: int
