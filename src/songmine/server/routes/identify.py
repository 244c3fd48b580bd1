"""``POST /api/identify``: an audio upload → :class:`songmine.records.QueryResult`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from ...audio import load
from ...errors import DecodeError, IndexFormatError, SongmineError
from ...fingerprint.query import identify
from ...fingerprint.index import UnknownTrackError
from ...records import QueryResult
from ..deps import IndexDep, SettingsDep, SlotsDep, query_upload
from ..errors import ERROR_RESPONSES, ServerFault, decode_error, reason_header
from ..models import shown_record
from ..uploads import UPLOAD_BODY, ReceivedUpload

__all__ = ["router"]

router = APIRouter(tags=["identify"])


@router.post("/api/identify", response_model=QueryResult, responses=ERROR_RESPONSES, openapi_extra=UPLOAD_BODY)
def identify_clip(
    upload: Annotated[ReceivedUpload, Depends(query_upload)],
    index: IndexDep,
    settings: SettingsDep,
    slots: SlotsDep,
    top: Annotated[int | None, Query(ge=1, le=100, description="Matches to return (capped by the server)")] = None,
) -> QueryResult:
    """Identify an audio clip (any format FFmpeg decodes, incl. browsers' WebM/Opus).

    ``matches`` empty means no match; limits: upload size (413), clip
    duration (422), undecodable or non-audio content (415).
    """
    with slots:
        sr = index.config.sr  # queries are decoded at the rate the index's fingerprints use
        try:
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
            rec = identify(index, y, top=n_top, name=upload.label, max_duration_s=settings.max_query_s)
        except IndexFormatError:
            raise
        except SongmineError as exc:  # the clip decoded fine: what fails now is not the client's fault
            # a posting that names a track the catalogue lacks is a damaged index
            reason = "index-damaged" if isinstance(exc, UnknownTrackError) else "internal"
            raise ServerFault(f"identification failed: {exc}", reason) from exc
    return shown_record(rec, settings.expose_paths)
