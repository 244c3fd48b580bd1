"""What routes receive through ``Depends``: settings, the index snapshot, the token check, uploads, slots."""

from __future__ import annotations

import hmac
import threading
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..fingerprint.index import Index
from . import trackstore
from .errors import reason_header
from .settings import ServerSettings
from .state import IndexHolder
from .uploads import ReceivedUpload, receive_upload

__all__ = [
    "QuerySlots",
    "SettingsDep",
    "IndexDep",
    "HolderDep",
    "require_token",
    "query_upload",
    "track_upload",
]


class QuerySlots:
    """Bounded concurrency for CPU-bound work: wait up to ``timeout`` for a slot, else 503."""

    def __init__(self, n: int, timeout: float):
        self._sem = threading.BoundedSemaphore(n)
        self._timeout = timeout

    def __enter__(self) -> None:
        if not self._sem.acquire(timeout=self._timeout):
            raise HTTPException(
                503,
                f"server busy: no identification slot free within {self._timeout:g} s, retry shortly",
                headers=reason_header("busy", **{"Retry-After": "2"}),
            )

    def __exit__(self, *exc: object) -> None:
        self._sem.release()


# The dependencies that only read app state are ``async``: FastAPI runs a plain ``def`` dependency in
# its thread pool, a hand-off that cost more CPU than the lookup itself, several times per request.


async def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


async def get_holder(request: Request) -> IndexHolder:
    holder = request.app.state.holder
    if holder is None:  # pragma: no cover - lifespan not run
        raise HTTPException(503, "the index is not open yet", headers=reason_header("starting"))
    return holder


def get_index(holder: Annotated[IndexHolder, Depends(get_holder)]) -> Index:
    """The reader snapshot for this request (fixed for the request's whole life; checked fresh first,
    which reads the catalogue: a thread-pool dependency, off the event loop)."""
    return holder.current()


async def get_slots(request: Request) -> QuerySlots:
    return request.app.state.slots


SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
IndexDep = Annotated[Index, Depends(get_index)]
HolderDep = Annotated[IndexHolder, Depends(get_holder)]
SlotsDep = Annotated[QuerySlots, Depends(get_slots)]

_bearer = HTTPBearer(auto_error=False, description="The server's SONGMINE_TOKEN")


async def require_token(
    settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Editing needs ``Authorization: Bearer <SONGMINE_TOKEN>``; refused when none is configured."""
    if settings.token is None:
        raise HTTPException(
            403,
            "track editing is disabled: start the server with SONGMINE_TOKEN set to enable it",
            headers=reason_header("editing-disabled"),
        )
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), settings.token.encode()):
        raise HTTPException(
            401,
            "missing or wrong bearer token",
            headers=reason_header("unauthorized", **{"WWW-Authenticate": 'Bearer realm="songmine"'}),
        )


async def query_upload(request: Request, settings: SettingsDep) -> AsyncIterator[ReceivedUpload]:
    """The query body, streamed into a temp file within the query limits; removed afterwards."""
    up = await receive_upload(request, max_bytes=settings.max_upload_bytes, timeout_s=settings.upload_timeout_s)
    try:
        yield up
    finally:
        up.discard()


async def track_upload(
    request: Request, settings: SettingsDep, _auth: Annotated[None, Depends(require_token)]
) -> AsyncIterator[ReceivedUpload]:
    """A library track upload (authorised first, then read within the larger track limits).

    It streams into the upload folder under a temporary name, locked for the
    request's life (see :mod:`songmine.server.trackstore`).
    """
    folder = settings.track_dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    up = await receive_upload(
        request,
        max_bytes=settings.max_track_upload_bytes,
        timeout_s=settings.upload_timeout_s * 10,
        tmp_dir=folder,
        prefix=trackstore.STAGE_PREFIX,
        suffix=trackstore.PART_SUFFIX,
        locked=True,
    )
    try:
        yield up
    finally:
        up.discard()
