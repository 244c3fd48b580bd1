"""The HTTP schema beside the match record (:mod:`songmine.records`): tracks, pages, health, errors."""

from __future__ import annotations

from pathlib import PurePath

from pydantic import BaseModel, Field

from ..fingerprint.index import TrackRecord
from ..records import QueryResult

__all__ = ["ErrorOut", "TrackOut", "TrackPage", "AddedTrack", "Health", "shown_path", "shown_record"]


def shown_path(path: str, expose: bool) -> str:
    """``path`` as a client may see it: whole, or its file name when the server hides its paths."""
    return path if expose else PurePath(path).name


def shown_record(rec: QueryResult, expose: bool) -> QueryResult:
    """The match record with its paths whole or reduced to file names (``ServerSettings.expose_paths``)."""
    if expose:
        return rec
    return rec.model_copy(
        update={"matches": [m.model_copy(update={"path": shown_path(m.path, False)}) for m in rec.matches]}
    )


class ErrorOut(BaseModel):
    """Every 4xx/5xx body: ``detail`` is one human-readable line, ``reason`` a stable machine-friendly word."""

    detail: str
    reason: str = Field(description="Machine-friendly cause, e.g. 'not-audio', 'too-long', 'busy'")


class TrackOut(BaseModel):
    """One library track."""

    id: int
    path: str = Field(description="The file on the server: its absolute path, or its name when the server hides paths")
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    duration_s: float | None = None

    @classmethod
    def of(cls, t: TrackRecord, *, expose_paths: bool = True) -> TrackOut:
        """The HTTP view of a catalogue record (its path whole, or its file name: :func:`shown_path`)."""
        return cls(
            id=t.track_id,
            path=shown_path(t.path, expose_paths),
            title=t.title,
            artist=t.artist,
            album=t.album,
            duration_s=t.duration_s,
        )


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
