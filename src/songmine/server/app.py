"""The HTTP service: ``create_app(settings)`` → a FastAPI app over one index.

Routes (OpenAPI at ``/docs``):

* ``POST /api/identify`` — an audio upload (multipart ``file`` or a raw
  ``audio/*`` body) → :class:`songmine.records.QueryResult`;
* ``GET /api/tracks`` (paginated), ``GET /api/tracks/{id}``;
* ``POST /api/tracks``, ``DELETE /api/tracks/{id}`` — bearer token
  (``SONGMINE_TOKEN``); refused when the server has no token;
* ``GET /api/health``;
* ``/`` — the page (drop a file or record from the microphone).

No business logic here: decoding is :func:`songmine.audio.load`,
identification :func:`songmine.identify.identify`, indexing
:func:`songmine.index.index_files`. This module parses, enforces limits, calls
the library and maps its typed errors to 4xx JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import http
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import DecodeError, IndexFormatError, SongmineError
from ..records import QueryResult
from . import trackstore
from .guards import HostAllowList, RequestGuard
from .settings import ServerSettings
from .state import IndexHolder
from .uploads import ReceivedUpload, receive_upload

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger(__name__)

#: DecodeError.reason → HTTP status: the format is not audio we can read (415),
#: or it is audio but unusable for this request (422).
_REASON_STATUS = {
    "not-audio": 415,
    "no-audio-stream": 415,
    "undecodable": 415,
    "empty": 422,
    "zero-length": 422,
    "truncated": 422,
    "too-long": 422,
    "missing": 422,
}

#: The page's files, served from memory under fixed names (no request path reaches the disk).
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "Permissions-Policy": "microphone=(self)",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


# --- response models (the HTTP schema; the match record itself is songmine.records) --------------


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


_ERRORS = {
    408: {"model": ErrorOut, "description": "The body did not arrive in time"},
    413: {"model": ErrorOut, "description": "Upload larger than the limit"},
    415: {"model": ErrorOut, "description": "Not an audio upload / format not decodable"},
    422: {"model": ErrorOut, "description": "Audio unusable (corrupt, empty, too long or too short)"},
    500: {"model": ErrorOut, "description": "Server-side fault, e.g. a damaged index (reason 'index-damaged')"},
    503: {"model": ErrorOut, "description": "Server busy; retry after the Retry-After delay"},
}
_AUTH_ERRORS = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorOut, "description": "Track editing disabled (no SONGMINE_TOKEN configured)"},
}

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "video/webm": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


# --- dependencies ------------------------------------------------------------------------------


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def get_holder(request: Request) -> IndexHolder:
    holder = getattr(request.app.state, "holder", None)
    if holder is None:  # pragma: no cover - lifespan not run
        raise HTTPException(503, "the index is not open yet", headers={"X-Songmine-Reason": "starting"})
    return holder


def get_index(holder: Annotated[IndexHolder, Depends(get_holder)]) -> Any:
    """The reader snapshot for this request (fixed for the request's whole life)."""
    return holder.snapshot()


SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
IndexDep = Annotated[Any, Depends(get_index)]
HolderDep = Annotated[IndexHolder, Depends(get_holder)]

_bearer = HTTPBearer(auto_error=False, description="The server's SONGMINE_TOKEN")


def require_token(
    settings: SettingsDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Editing needs ``Authorization: Bearer <SONGMINE_TOKEN>``; refused when none is configured."""
    if settings.token is None:
        raise HTTPException(
            403, "track editing is disabled: start the server with SONGMINE_TOKEN set to enable it",
            headers={"X-Songmine-Reason": "editing-disabled"},
        )
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), settings.token.encode()):
        raise HTTPException(
            401, "missing or wrong bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="songmine"', "X-Songmine-Reason": "unauthorized"},
        )


async def query_upload(request: Request, settings: SettingsDep) -> AsyncIterator[ReceivedUpload]:
    """The query body, streamed into a temp file within the query limits; removed afterwards."""
    up = await receive_upload(
        request, max_bytes=settings.max_upload_bytes, timeout_s=settings.upload_timeout_s
    )
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
        request, max_bytes=settings.max_track_upload_bytes, timeout_s=settings.upload_timeout_s * 10,
        tmp_dir=folder, prefix=trackstore.STAGE_PREFIX, suffix=trackstore.PART_SUFFIX, locked=True,
    )
    try:
        yield up
    finally:
        up.discard()


# --- helpers -----------------------------------------------------------------------------------


class _ServerFault(SongmineError):
    """A library error that the request cannot have caused (mapped to 500, not 422)."""

    def __init__(self, message: str, reason: str = "internal"):
        super().__init__(message)
        self.reason = reason


def _status_reason(status: int) -> str:
    """The default ``reason`` of an error: its status phrase as a slug (404 → ``not-found``)."""
    try:
        return http.HTTPStatus(status).phrase.lower().replace(" ", "-")
    except ValueError:
        return "error"


def _validation_detail(errors: list[dict]) -> str:
    """FastAPI's list of validation errors as one line: ``query parameter 'top': Input should be ...``."""
    if not errors:
        return "invalid request"
    where = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body field"}
    parts = []
    for e in errors[:3]:
        loc = [str(x) for x in e.get("loc", ())]
        kind = where.get(loc[0], loc[0]) if loc else "request"
        name = ".".join(loc[1:])
        parts.append(f"{kind} {name!r}: {e.get('msg', 'invalid')}" if name else f"{kind}: {e.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _decode_error(exc: DecodeError, *, what: str) -> HTTPException:
    status = _REASON_STATUS.get(exc.reason, 422)
    msg = str(exc)
    # the message starts with the temp file's name: replace it by what the client sent
    if exc.path and msg.startswith(exc.path):
        msg = what + msg[len(exc.path) :]
    return HTTPException(status, msg, headers={"X-Songmine-Reason": exc.reason})


class _Slots:
    """Bounded concurrency for CPU-bound work: wait up to ``timeout`` for a slot, else 503."""

    def __init__(self, n: int, timeout: float):
        self._sem = threading.BoundedSemaphore(n)
        self._timeout = timeout

    def __enter__(self) -> None:
        if not self._sem.acquire(timeout=self._timeout):
            raise HTTPException(
                503,
                f"server busy: no identification slot free within {self._timeout:g} s, retry shortly",
                headers={"Retry-After": "2", "X-Songmine-Reason": "busy"},
            )

    def __exit__(self, *exc: object) -> None:
        self._sem.release()


def _track_out(t: Any) -> TrackOut:
    """Adapt the index's track record (dataclass, mapping or object) to the HTTP model."""
    get = t.get if isinstance(t, dict) else (lambda k, d=None: getattr(t, k, d))
    tags = get("tags") or {}
    tid = get("id", None)
    if tid is None:
        tid = get("track_id")

    def tag(k: str) -> str | None:
        v = get(k)
        return v if v is not None else (tags.get(k) if isinstance(tags, dict) else None)

    dur = get("duration_s", None)
    if dur is None:
        dur = get("duration", None)
    return TrackOut(
        id=int(tid),
        path=str(get("path", "")),
        title=tag("title"),
        artist=tag("artist"),
        album=tag("album"),
        duration_s=None if dur is None else float(dur),
    )


def _query_rate(index: Any) -> int:
    """The sample rate the index's fingerprints are computed at (queries are decoded to it)."""
    cfg = getattr(index, "config", None)
    return int(getattr(cfg, "sr", 11025))


_EXT_BY_CODEC = {
    "mp3": ".mp3", "mp3float": ".mp3", "flac": ".flac", "vorbis": ".ogg", "libvorbis": ".ogg",
    "opus": ".opus", "libopus": ".opus", "aac": ".m4a", "alac": ".m4a", "wmav2": ".wma",
}  # fmt: skip


# --- the app -----------------------------------------------------------------------------------


def create_app(settings: ServerSettings) -> FastAPI:
    """Build the app for ``settings``; the index is opened in the lifespan (once).

    Use ``with fastapi.testclient.TestClient(create_app(s)) as client:`` in
    tests (the ``with`` runs the lifespan), or serve it with uvicorn.
    """
    static = {name: resources.files(__package__).joinpath("static", name).read_bytes() for name in _STATIC}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from ..identify import keep_heap
        from ..index import Index

        keep_heap()  # the server process exists to search

        path = settings.index_path
        holder = await anyio.to_thread.run_sync(lambda: IndexHolder(lambda: Index(path)))
        app.state.holder = holder
        await anyio.to_thread.run_sync(_recover_uploads, holder, settings.track_dir)
        log.info("serving %s (%s tracks)", path, getattr(holder.snapshot(), "n_tracks", "?"))
        async with anyio.create_task_group() as tg:
            if settings.refresh_interval_s > 0:
                tg.start_soon(_refresher, holder, settings.refresh_interval_s)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
        holder.close()
        app.state.holder = None

    # Swagger UI and ReDoc served from the package, not a CDN: the service
    # often runs where the browser has no internet.
    app = FastAPIOffline(
        title="songmine",
        version=__version__,
        summary="Identify a song from a few seconds of audio; manage the indexed library.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.slots = _Slots(settings.max_concurrent_queries, settings.queue_timeout_s)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    # outermost of the app's own layers: a wrong Host or a full house is answered before anything else runs
    app.add_middleware(
        RequestGuard, hosts=HostAllowList(settings.allowed_hosts), max_requests=settings.max_requests
    )

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException, and the router's 404/405
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        reason = headers.pop("X-Songmine-Reason", None) or _status_reason(exc.status_code)
        return JSONResponse({"detail": str(exc.detail), "reason": reason}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        return JSONResponse(
            {"detail": _validation_detail(errors), "reason": "invalid-parameter", "errors": errors}, status_code=422
        )

    @app.exception_handler(SongmineError)
    async def _library_error(request: Request, exc: SongmineError) -> JSONResponse:
        if isinstance(exc, DecodeError):
            h = _decode_error(exc, what="upload")
            return JSONResponse({"detail": h.detail, "reason": exc.reason}, status_code=h.status_code)
        from ..index import IndexLockedError

        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, IndexLockedError):  # another process holds the index's write lock
            return JSONResponse({"detail": line, "reason": "index-locked"}, status_code=503, headers={"Retry-After": "5"})
        if isinstance(exc, (IndexFormatError, _ServerFault)):  # the server's data, not the request: never a 4xx
            log.error("server-side failure on %s %s: %s", request.method, request.url.path, line, exc_info=exc)
            reason = "index-damaged" if isinstance(exc, IndexFormatError) else exc.reason
            return JSONResponse({"detail": f"server error: {line}", "reason": reason}, status_code=500)
        return JSONResponse({"detail": line, "reason": type(exc).__name__}, status_code=422)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}", "reason": "internal"}, status_code=500)

    # -- page --------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(static["index.html"], media_type=_STATIC["index.html"], headers=_PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str) -> Response:
        if name not in static:  # a fixed whitelist, served from memory
            raise HTTPException(404, "not found")
        return Response(static[name], media_type=_STATIC[name], headers=_PAGE_HEADERS)

    # -- API ---------------------------------------------------------------------------------
    @app.get("/api/health", response_model=Health, tags=["service"])
    def health(index: IndexDep, settings: SettingsDep) -> Health:
        """Liveness plus what a client needs to know: track count and limits."""
        return Health(
            status="ok",
            version=__version__,
            n_tracks=int(index.n_tracks),
            editing=settings.token is not None,
            max_upload_bytes=settings.max_upload_bytes,
            max_query_s=settings.max_query_s,
            top=settings.top,
        )

    @app.post(
        "/api/identify",
        response_model=QueryResult,
        responses=_ERRORS,
        openapi_extra=_UPLOAD_BODY,
        tags=["identify"],
    )
    def identify_clip(
        upload: Annotated[ReceivedUpload, Depends(query_upload)],
        index: IndexDep,
        settings: SettingsDep,
        request: Request,
        top: Annotated[int | None, Query(ge=1, le=100, description="Matches to return (capped by the server)")] = None,
    ) -> QueryResult:
        """Identify an audio clip (any format FFmpeg decodes, incl. browsers' WebM/Opus).

        ``matches`` empty means no match; limits: upload size (413), clip
        duration (422), undecodable or non-audio content (415).
        """
        from ..audio import load
        from ..identify import identify

        with request.app.state.slots:
            try:
                sr = _query_rate(index)
                y = load(upload.path, sr=sr, max_duration=settings.max_query_s)
            except DecodeError as exc:
                raise _decode_error(exc, what=upload.label) from None
            if y.shape[0] < settings.min_query_s * sr:
                raise HTTPException(
                    422,
                    f"{upload.label}: clip is {y.shape[0] / sr:.2f} s long; send at least "
                    f"{settings.min_query_s:g} s of audio",
                    headers={"X-Songmine-Reason": "too-short"},
                )
            n_top = settings.top if top is None else min(top, settings.top)
            try:
                return identify(index, y, top=n_top, name=upload.label, max_duration_s=settings.max_query_s)
            except IndexFormatError:
                raise
            except SongmineError as exc:  # the clip decoded fine: what fails now is not the client's fault
                from ..index import UnknownTrackError  # a posting names a track the catalogue lacks

                reason = "index-damaged" if isinstance(exc, UnknownTrackError) else "internal"
                raise _ServerFault(f"identification failed: {exc}", reason) from exc

    @app.get("/api/tracks", response_model=TrackPage, tags=["library"])
    def list_tracks(
        index: IndexDep,
        offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> TrackPage:
        """The library's tracks in id order, ``limit`` at a time from ``offset``."""
        tracks = index.tracks()  # live tracks, by id
        page = [_track_out(t) for t in tracks[offset : offset + limit]]
        return TrackPage(total=len(tracks), offset=offset, limit=limit, tracks=page)

    @app.get("/api/tracks/{track_id}", response_model=TrackOut, responses={404: {"model": ErrorOut}}, tags=["library"])
    def get_track(index: IndexDep, track_id: Annotated[int, PathParam(ge=0, le=2**32)]) -> TrackOut:
        """One track by id."""
        t = _lookup(index, track_id)
        return _track_out(t)

    @app.post(
        "/api/tracks",
        response_model=AddedTrack,
        status_code=201,
        responses={**_ERRORS, **_AUTH_ERRORS},
        openapi_extra=_UPLOAD_BODY,
        tags=["library"],
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
        from ..audio import info
        from ..index import index_files

        try:
            meta = info(upload.path)
        except DecodeError as exc:
            raise _decode_error(exc, what=upload.label) from None
        if meta.duration_s == meta.duration_s and meta.duration_s > settings.max_track_s:
            raise HTTPException(
                422,
                f"{upload.label}: track is {meta.duration_s:.0f} s long, more than the limit of "
                f"{settings.max_track_s:g} s",
                headers={"X-Songmine-Reason": "too-long"},
            )
        ext = _EXT_BY_CODEC.get(meta.codec) or (".wav" if meta.codec.startswith("pcm_") else ".webm")
        with open(upload.path, "rb") as fh:
            sha = hashlib.file_digest(fh, "sha256").hexdigest()
        staged = upload.path = trackstore.stage(upload.path, ext, upload.lock_fd)
        with holder.writing() as writer:
            before = {t.track_id: t for t in writer.tracks()}
            report = index_files(writer, [staged], jobs=1)
            after = [t for t in writer.tracks() if t.sha256 == sha]
            if after and Path(after[0].path) == staged:  # this file is the track's now: give it its name
                upload.path = trackstore.publish(writer, staged, sha)
                upload.keep()
                after = [writer.track(after[0].track_id)]
        if not after:
            failed = getattr(report, "failed", None) or []
            msg = failed[0][1] if failed else "the file could not be indexed"
            if staged.name in msg:
                msg = msg.replace(str(staged), upload.label)
            raise HTTPException(
                422, f"{upload.label}: {msg}" if upload.label not in msg else msg,
                headers={"X-Songmine-Reason": "not-indexed"},
            )
        track = after[0]  # (when the same audio was already in the library, the upload is discarded)
        created = track.track_id not in before
        if not created:
            response.status_code = 200
        return AddedTrack(track=_track_out(track), created=created)

    @app.delete(
        "/api/tracks/{track_id}",
        status_code=204,
        responses={404: {"model": ErrorOut}, **_AUTH_ERRORS},
        dependencies=[Depends(require_token)],
        tags=["library"],
    )
    def delete_track(
        holder: HolderDep, settings: SettingsDep, track_id: Annotated[int, PathParam(ge=0, le=2**32)]
    ) -> Response:
        """Remove a track from the library (bearer token). Audio the server stored itself is deleted too."""
        with holder.writing() as writer:
            t = _lookup(writer, track_id)
            writer.remove([track_id])
        stored = Path(t.path)
        try:
            if stored.parent.resolve() == settings.track_dir.resolve():
                stored.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - best effort
            log.warning("could not delete stored upload %s", stored, exc_info=True)
        return Response(status_code=204)

    return app


def _lookup(index: Any, track_id: int) -> Any:
    """A live track by id, or 404 (removed tracks are gone for HTTP clients)."""
    try:
        t = index.track(track_id)
    except KeyError:
        t = None
    if t is None or getattr(t, "status", "ok") != "ok":
        raise HTTPException(404, f"no track with id {track_id}")
    return t


def _recover_uploads(holder: IndexHolder, folder: Path) -> None:
    """Undo or finish adds a crash interrupted (best effort: serving does not depend on it)."""
    try:
        trackstore.recover(holder, folder)
    except Exception:
        log.warning("could not clean up the upload folder %s", folder, exc_info=True)


async def _refresher(holder: IndexHolder, every_s: float) -> None:
    """Pick up segments committed by other processes (other workers, the CLI)."""
    while True:
        await anyio.sleep(every_s)
        try:
            if await anyio.to_thread.run_sync(holder.refresh):
                log.info("index changed on disk: new reader snapshot (generation %d)", holder.generation)
        except Exception:  # keep serving the old snapshot
            log.warning("index refresh failed; still serving the previous snapshot", exc_info=True)


def create_app_from_env() -> FastAPI:
    """uvicorn factory for worker processes (``songmine serve --workers N``)."""
    from .settings import settings_from_env

    return create_app(settings_from_env())


