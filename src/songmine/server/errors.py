"""HTTP errors: every 4xx/5xx body is JSON ``{detail, reason}``, and library errors map by kind.

A :class:`~songmine.errors.DecodeError` is the upload's fault (415 or 422 by
its reason); a damaged or locked index is the server's (500 / 503), never a
4xx; FastAPI's own validation, 404 and 405 errors get the same shape.
"""

from __future__ import annotations

import http
import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import DecodeError, IndexFormatError, SongmineError, one_line
from ..fingerprint.index import IndexLockedError
from .models import ErrorOut

__all__ = [
    "ServerFault",
    "decode_error",
    "install_error_handlers",
    "reason_header",
    "ERROR_RESPONSES",
    "AUTH_ERROR_RESPONSES",
]

log = logging.getLogger(__name__)

#: The response header through which a route names its error's ``reason`` (removed from the response).
_REASON_HEADER = "X-Songmine-Reason"

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

#: The error responses of the upload routes, for the OpenAPI document.
ERROR_RESPONSES = {
    408: {"model": ErrorOut, "description": "The body did not arrive in time"},
    413: {"model": ErrorOut, "description": "Upload larger than the limit"},
    415: {"model": ErrorOut, "description": "Not an audio upload / format not decodable"},
    422: {"model": ErrorOut, "description": "Audio unusable (corrupt, empty, too long or too short)"},
    500: {"model": ErrorOut, "description": "Server-side fault, e.g. a damaged index (reason 'index-damaged')"},
    503: {"model": ErrorOut, "description": "Server busy; retry after the Retry-After delay"},
}
AUTH_ERROR_RESPONSES = {
    401: {"model": ErrorOut, "description": "Missing or wrong bearer token"},
    403: {"model": ErrorOut, "description": "Track editing disabled (no SONGMINE_TOKEN configured)"},
}


class ServerFault(SongmineError):
    """A library error that the request cannot have caused (mapped to 500, not 422)."""

    def __init__(self, message: str, reason: str = "internal"):
        super().__init__(message)
        self.reason = reason


def reason_header(reason: str, **headers: str) -> dict[str, str]:
    """Headers for an ``HTTPException`` whose JSON body should carry ``reason``."""
    return {_REASON_HEADER: reason, **headers}


def decode_error(exc: DecodeError, *, what: str) -> HTTPException:
    """The HTTP error for an upload that did not decode, naming it as the client knows it (``what``)."""
    status = _REASON_STATUS.get(exc.reason, 422)
    msg = str(exc)
    # the message starts with the temp file's name: replace it by what the client sent
    if exc.path and msg.startswith(exc.path):
        msg = what + msg[len(exc.path) :]
    return HTTPException(status, msg, headers=reason_header(exc.reason))


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


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app answers a JSON ``{detail, reason}`` body."""

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException, and the router's 404/405
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        reason = headers.pop(_REASON_HEADER, None) or _status_reason(exc.status_code)
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
            h = decode_error(exc, what="upload")
            return JSONResponse({"detail": h.detail, "reason": exc.reason}, status_code=h.status_code)
        line = one_line(exc)
        if isinstance(exc, IndexLockedError):  # another process holds the index's write lock
            return JSONResponse(
                {"detail": line, "reason": "index-locked"}, status_code=503, headers={"Retry-After": "5"}
            )
        if isinstance(exc, (IndexFormatError, ServerFault)):  # the server's data, not the request: never a 4xx
            log.error("server-side failure on %s %s: %s", request.method, request.url.path, line, exc_info=exc)
            reason = exc.reason  # index-damaged, index-too-new, index-format, or the fault's own
            settings = getattr(request.app.state, "settings", None)
            if settings is not None and not settings.expose_paths:  # the message names server files
                line = f"{reason} (details in the server's log)"
            return JSONResponse({"detail": f"server error: {line}", "reason": reason}, status_code=500)
        return JSONResponse({"detail": line, "reason": type(exc).__name__}, status_code=422)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}", "reason": "internal"}, status_code=500)
