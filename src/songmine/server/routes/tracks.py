"""``/api/tracks``: list and read the library; add and remove tracks (bearer token)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi import Path as PathParam

from ...audio import info
from ...errors import DecodeError
from ...fingerprint.heap import release_heap
from ...fingerprint.index import Index, TrackRecord, add_file
from .. import trackstore
from ..deps import HolderDep, IndexDep, SettingsDep, require_token, track_upload
from ..errors import AUTH_ERROR_RESPONSES, ERROR_RESPONSES, decode_error, reason_header
from ..models import AddedTrack, ErrorOut, TrackOut, TrackPage
from ..uploads import UPLOAD_BODY, ReceivedUpload

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["library"])

TrackId = Annotated[int, PathParam(ge=0, le=2**32)]


@router.get("/api/tracks", response_model=TrackPage)
def list_tracks(
    index: IndexDep,
    holder: HolderDep,
    settings: SettingsDep,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TrackPage:
    """The library's tracks in id order, ``limit`` at a time from ``offset``."""
    ids = holder.live_track_ids(index)  # live tracks' ids, ascending (listed once per snapshot)
    page = [TrackOut.of(index.track(int(i)), expose_paths=settings.expose_paths) for i in ids[offset : offset + limit]]
    return TrackPage(total=int(ids.shape[0]), offset=offset, limit=limit, tracks=page)


@router.get("/api/tracks/{track_id}", response_model=TrackOut, responses={404: {"model": ErrorOut}})
def get_track(index: IndexDep, settings: SettingsDep, track_id: TrackId) -> TrackOut:
    """One track by id."""
    return TrackOut.of(_live_track(index, track_id), expose_paths=settings.expose_paths)


@router.post(
    "/api/tracks",
    response_model=AddedTrack,
    status_code=201,
    responses={**ERROR_RESPONSES, **AUTH_ERROR_RESPONSES},
    openapi_extra=UPLOAD_BODY,
)
def add_track(
    upload: Annotated[ReceivedUpload, Depends(track_upload)],
    holder: HolderDep,
    settings: SettingsDep,
    response: Response,
) -> AddedTrack:
    """Add one audio file to the library (bearer token). Tags come from the file itself.

    The audio is stored under the server's upload folder with a name made
    from its content hash; queries running meanwhile keep seeing the
    library as it was until the new track is fully committed. A crash at
    any point is undone or finished at the next start.
    """
    try:
        meta = info(upload.path)
    except DecodeError as exc:
        raise decode_error(exc, what=upload.label) from None
    if meta.duration_s == meta.duration_s and meta.duration_s > settings.max_track_s:
        raise HTTPException(
            422,
            f"{upload.label}: track is {meta.duration_s:.0f} s long, more than the limit of {settings.max_track_s:g} s",
            headers=reason_header("too-long"),
        )
    staged = upload.path = trackstore.stage(upload.path, trackstore.extension_for(meta.codec), upload.lock_fd)
    try:
        with holder.writing() as writer:
            added = add_file(writer, staged)
            track = added.track
            if track is not None and Path(track.path) == staged:  # this file is the track's now: give it its name
                upload.path = trackstore.publish(writer, staged, track.sha256)
                upload.keep()
                track = writer.track(track.track_id)
    finally:
        release_heap()  # the whole track was decoded here: do not keep that peak (see keep_heap)
    if track is None:
        msg = (added.error or "the file could not be indexed").replace(str(staged), upload.label)
        if not settings.expose_paths:
            msg = msg.replace(str(staged.parent), "<uploads>")
        raise HTTPException(
            422, msg if upload.label in msg else f"{upload.label}: {msg}", headers=reason_header("not-indexed")
        )
    if not added.created:  # the same audio was already in the library: the upload is discarded
        response.status_code = 200
    return AddedTrack(track=TrackOut.of(track, expose_paths=settings.expose_paths), created=added.created)


@router.delete(
    "/api/tracks/{track_id}",
    status_code=204,
    responses={404: {"model": ErrorOut}, **AUTH_ERROR_RESPONSES},
    dependencies=[Depends(require_token)],
)
def delete_track(holder: HolderDep, settings: SettingsDep, track_id: TrackId) -> Response:
    """Remove a track from the library (bearer token). Audio the server stored itself is deleted too."""
    with holder.writing() as writer:
        t = _live_track(writer, track_id)
        writer.remove([track_id])
    stored = Path(t.path)
    try:
        if stored.parent.resolve() == settings.track_dir.resolve():
            stored.unlink(missing_ok=True)
    except OSError:  # pragma: no cover - best effort
        log.warning("could not delete stored upload %s", stored, exc_info=True)
    return Response(status_code=204)


def _live_track(index: Index, track_id: int) -> TrackRecord:
    """A live track by id, or 404 (removed tracks are gone for HTTP clients)."""
    try:
        t = index.track(track_id)
    except KeyError:
        t = None
    if t is None or t.status != "ok":
        raise HTTPException(404, f"no track with id {track_id}")
    return t
