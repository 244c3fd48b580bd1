"""``GET /api/health``: liveness plus what a client needs to know (track count, limits)."""

from __future__ import annotations

from fastapi import APIRouter

from ... import __version__
from ..deps import IndexDep, SettingsDep
from ..models import Health

__all__ = ["router"]

router = APIRouter(tags=["service"])


@router.get("/api/health", response_model=Health)
def health(index: IndexDep, settings: SettingsDep) -> Health:
    """Liveness plus what a client needs to know: track count and limits."""
    return Health(
        status="ok",
        version=__version__,
        n_tracks=index.n_tracks,
        editing=settings.token is not None,
        max_upload_bytes=settings.max_upload_bytes,
        max_query_s=settings.max_query_s,
        top=settings.top,
    )
