"""The HTTP service: ``create_app(settings)`` → a FastAPI app over one index.

Routes (OpenAPI at ``/docs``), one router each under :mod:`songmine.server.routes`:

* ``POST /api/identify`` — an audio upload (multipart ``file`` or a raw
  ``audio/*`` body) → :class:`songmine.records.QueryResult`;
* ``GET /api/tracks`` (paginated), ``GET /api/tracks/{id}``;
* ``POST /api/tracks``, ``DELETE /api/tracks/{id}`` — bearer token
  (``SONGMINE_TOKEN``); refused when the server has no token;
* ``GET /api/health``;
* ``/`` — the page (drop a file or record from the microphone).

No library logic here: this module assembles the app — the index opened once
in the lifespan, the limits (:mod:`~songmine.server.guards`), the JSON error
handlers (:mod:`~songmine.server.errors`) and the routers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import numpy as np
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from .. import __version__
from ..fingerprint.heap import keep_heap
from ..fingerprint.index import Index
from ..fingerprint.query import identify as identify_clip
from . import trackstore
from .balance import Peers
from .deps import QuerySlots
from .errors import install_error_handlers
from .guards import HostAllowList, RequestGuard
from .routes import identify, page, service, tracks
from .settings import ServerSettings, settings_from_env
from .state import IndexHolder

__all__ = ["create_app", "create_app_from_env"]

log = logging.getLogger(__name__)


def create_app(settings: ServerSettings, *, peers: Peers | None = None) -> FastAPI:
    """Build the app for ``settings``; the index is opened in the lifespan (once).

    Use ``with fastapi.testclient.TestClient(create_app(s)) as client:`` in
    tests (the ``with`` runs the lifespan), or serve it with uvicorn.
    ``peers``: this process's slot in the load table of a multi-worker server
    (:mod:`songmine.server.balance`, :mod:`songmine.server.supervisor`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keep_heap()  # the server process exists to search
        path = settings.index_path
        holder = await anyio.to_thread.run_sync(lambda: IndexHolder(lambda: Index(path)))
        app.state.holder = holder
        await anyio.to_thread.run_sync(_recover_uploads, holder, settings.track_dir)
        await anyio.to_thread.run_sync(_warm_up, holder)
        log.info("serving %s (%d tracks)", path, holder.snapshot().n_tracks)
        if peers is not None:
            peers.serving()
        async with anyio.create_task_group() as tg:
            if settings.refresh_interval_s > 0:
                tg.start_soon(_refresher, holder, settings.refresh_interval_s)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                if peers is not None:
                    peers.stopped()
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
    app.state.holder = None
    app.state.slots = QuerySlots(settings.max_concurrent_queries, settings.queue_timeout_s)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )

    # outermost of the app's own layers: a wrong Host or a full house is answered before anything else runs;
    # it also adds X-Content-Type-Options to every response (a pure ASGI layer: Starlette's
    # BaseHTTPMiddleware would wrap each request in a task group and memory streams)
    app.add_middleware(
        RequestGuard, hosts=HostAllowList(settings.allowed_hosts), max_requests=settings.max_requests, peers=peers
    )
    install_error_handlers(app)
    for module in (page, service, identify, tracks):
        app.include_router(module.router)
    return app


def _recover_uploads(holder: IndexHolder, folder: Path) -> None:
    """Undo or finish adds a crash interrupted (best effort: serving does not depend on it)."""
    try:
        trackstore.recover(holder, folder)
    except Exception:
        log.warning("could not clean up the upload folder %s", folder, exc_info=True)


def _warm_up(holder: IndexHolder) -> None:
    """Identify two seconds of noise once, so that the first real query does not pay for what a process
    loads on first use (modules imported lazily, FFT plans, allocator arenas): about 0.5 s of CPU."""
    index = holder.snapshot()
    noise = np.random.default_rng(0).standard_normal(2 * index.config.sr).astype(np.float32) * 0.1
    try:
        identify_clip(index, noise, top=1)
    except Exception:  # serving does not depend on it
        log.debug("warm-up identification failed", exc_info=True)


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
    return create_app(settings_from_env())
