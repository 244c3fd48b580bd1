"""``POST /api/identify``: an audio upload → :class:`songmine.records.QueryResult`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from ...audio import load
from ...errors import DecodeError, IndexFormatError, SongmineError
from ...fingerprint.index import UnknownTrackError
from ...fingerprint.query import identify
from ...records import QueryResult
from ...stages import StageClock, measuring, stage
from ..deps import HolderDep, SettingsDep, SlotsDep, query_upload
from ..errors import ERROR_RESPONSES, ServerFault, decode_error, reason_header
from ..models import shown_record
from ..uploads import UPLOAD_BODY, ReceivedUpload

__all__ = ["router"]

router = APIRouter(tags=["identify"])


@router.post("/api/identify", response_model=QueryResult, responses=ERROR_RESPONSES, openapi_extra=UPLOAD_BODY)
def identify_clip(
    upload: Annotated[ReceivedUpload, Depends(query_upload)],
    holder: HolderDep,
    settings: SettingsDep,
    slots: SlotsDep,
    top: Annotated[int | None, Query(ge=1, le=100, description="Matches to return (capped by the server)")] = None,
) -> Response:
    """Identify an audio clip (any format FFmpeg decodes, incl. browsers' WebM/Opus).

    ``matches`` empty means no match; limits: upload size (413), clip
    duration (422), undecodable or non-audio content (415).
    """
    clock = StageClock()
    with slots, measuring(clock):
        index = holder.current()  # here, in the endpoint's thread: no thread-pool hop of its own
        sr = index.config.sr  # queries are decoded at the rate the index's fingerprints use
        try:
            with stage("decode"):
                y = load(upload.path, sr=sr, max_duration=settings.max_query_s)
        except DecodeError as exc:
            raise decode_error(exc, what=upload.label) from None
        if y.shape[0] < settings.min_query_s * sr:
            raise HTTPException(
                422,
                f"{upload.label}: clip is {y.shape[0] / sr:.2f} s long; send at least "
                f"{settings.min_query_s:g} s of audio",
                headers=reason_header("too-short"),
            )
        n_top = settings.top if top is None else min(top, settings.top)
        try:
            with stage("search"):
                result = identify(index, y, top=n_top, name=upload.label, max_duration_s=settings.max_query_s)
        except IndexFormatError:
            raise
        except SongmineError as exc:  # the clip decoded fine: what fails now is not the client's fault
            # a posting that names a track the catalogue lacks is a damaged index
            reason = "index-damaged" if isinstance(exc, UnknownTrackError) else "internal"
            raise ServerFault(f"identification failed: {exc}", reason) from exc
        with stage("respond"):  # the record as JSON, once (not validated and re-encoded by the framework)
            body = shown_record(result, settings.expose_paths).model_dump_json().encode()
    headers = None
    if settings.server_timing:
        clock.add("receive", upload.cpu_s)
        headers = {"Server-Timing": clock.server_timing()}
    return Response(body, media_type="application/json", headers=headers)
