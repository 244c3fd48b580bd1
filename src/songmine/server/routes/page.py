"""``/`` and ``/static/*``: the page that records from the microphone or takes a dropped file."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Response

__all__ = ["router"]

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

_FILES = {name: resources.files("songmine.server").joinpath("static", name).read_bytes() for name in _STATIC}

router = APIRouter(include_in_schema=False)


@router.get("/")
def page() -> Response:
    return Response(_FILES["index.html"], media_type=_STATIC["index.html"], headers=_PAGE_HEADERS)


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    if name not in _FILES:  # a fixed whitelist, served from memory
        raise HTTPException(404, "not found")
    return Response(_FILES[name], media_type=_STATIC[name], headers=_PAGE_HEADERS)
