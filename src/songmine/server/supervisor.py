"""``songmine serve`` on every core: worker processes on one listening socket, and a supervisor.

One Python process identifies on one core at a time (the interpreter lock),
so the server runs one worker process per core. The supervisor (the process
``songmine serve`` started) binds the socket, starts the workers, and replaces
any that dies; it serves nothing itself.

* Each worker is a fresh interpreter (``spawn``) running uvicorn with the
  connection layer of :mod:`songmine.server.protocol` on the shared socket.
  It opens the index itself: the segment files are memory-mapped, so their
  pages are shared by all workers through the page cache.
* Writes: each worker may add or remove tracks; the index lets one writer
  commit at a time (its write lock) and every worker reads the catalogue's
  commit counter per request (:mod:`songmine.server.state`), so an add made
  through one worker is seen by the next request on any worker.
* Load: :mod:`songmine.server.balance` — a table in shared memory of each
  worker's requests in progress; a worker well above the least loaded one
  moves a client away (``Connection: close``).
* A worker that dies (crash, ``kill -9``, the OOM killer) is replaced; its
  clients' connections break, the others keep being served. The new worker's
  start-up clean-up finishes or undoes the add it may have been making
  (:mod:`songmine.server.trackstore`). Workers die with the supervisor.
* SIGTERM or SIGINT: every worker stops gracefully (uvicorn's shutdown), then
  the supervisor exits. A worker that fails before it ever served (a broken
  index, a TLS key it cannot read) stops the whole server: a replacement
  would fail the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from .balance import NOT_SERVING, Peers

__all__ = ["serve_workers"]

log = logging.getLogger("uvicorn.error")

#: Seconds between two replacements of the same worker slot (a worker that keeps dying must not spin).
RESTART_BACKOFF_S = 1.0
#: Seconds a worker has to finish after SIGTERM before it is killed (on top of uvicorn's graceful timeout).
STOP_GRACE_S = 5.0
#: Exit status of a worker that failed before serving (uvicorn's ``STARTUP_FAILURE``).
STARTUP_FAILURE = 3


def serve_workers(settings: Any, config_options: dict[str, Any], workers: int) -> int:
    """Serve ``settings`` with ``workers`` processes until SIGTERM/SIGINT; returns the exit status.

    ``config_options`` are ``uvicorn.Config`` keyword arguments (host, port,
    TLS, logging, and :func:`songmine.server.protocol.uvicorn_options`).
    """
    import uvicorn

    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    config = uvicorn.Config("songmine.server.app:create_app_from_env", factory=True, **config_options)
    sock = config.bind_socket()
    ctx = multiprocessing.get_context("spawn")
    table = ctx.RawArray("i", [NOT_SERVING] * workers)  # requests in progress per worker (balance.py)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: list[Any] = [None] * workers
    started = [0.0] * workers
    status = 0
    try:
        log.info("Started supervisor [%d] with %d worker processes", os.getpid(), workers)
        for i in range(workers):
            procs[i], started[i] = _start(ctx, settings, config_options, sock, table, i), time.monotonic()
        while not stop.is_set():
            ready = wait([p.sentinel for p in procs], timeout=0.5)
            for i, p in enumerate(procs):
                if p.sentinel not in ready or stop.is_set():
                    continue
                p.join()
                table[i] = NOT_SERVING
                if p.exitcode == STARTUP_FAILURE:
                    log.error("worker %d [%d] failed to start: stopping the server", i, p.pid)
                    status = STARTUP_FAILURE
                    stop.set()
                    break
                log.warning("worker %d [%d] exited (code %s); starting a new one", i, p.pid, p.exitcode)
                time.sleep(max(0.0, started[i] + RESTART_BACKOFF_S - time.monotonic()))
                procs[i], started[i] = _start(ctx, settings, config_options, sock, table, i), time.monotonic()
    finally:
        _stop_all([p for p in procs if p is not None], config.timeout_graceful_shutdown)
        for s, h in old.items():
            signal.signal(s, h)
        sock.close()
        log.info("Stopped supervisor [%d]", os.getpid())
    return status


def _start(ctx: Any, settings: Any, options: dict[str, Any], sock: socket.socket, table: Any, slot: int) -> Any:
    p = ctx.Process(
        target=_worker, args=(settings, options, sock, table, slot, os.getpid()), name=f"songmine-worker-{slot}"
    )
    p.start()
    return p


def _stop_all(procs: list[Any], graceful_s: float | None) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()  # SIGTERM: uvicorn finishes the requests in progress
    deadline = time.monotonic() + (graceful_s or 0.0) + STOP_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            log.warning("worker [%d] did not stop in time: killing it", p.pid)
            p.kill()
            p.join()


def _worker(settings: Any, options: dict[str, Any], sock: socket.socket, table: Any, slot: int, parent: int) -> None:
    """One worker process: the app on the shared socket, with its slot in the load table."""
    from ..workers import die_with_parent

    die_with_parent(parent, "spawn")
    import sys

    import uvicorn

    from .app import create_app
    from .protocol import with_peers

    try:
        peers = Peers(table, slot)
        config = uvicorn.Config(create_app(settings, peers=peers), **with_peers(options, peers))
        server = uvicorn.Server(config)
    except Exception:
        log.exception("worker %d could not start", slot)
        sys.exit(STARTUP_FAILURE)
    try:
        server.run(sockets=[sock])
    except Exception:
        if server.started:
            raise
        log.exception("worker %d could not start", slot)  # uvicorn's own start-up (e.g. the TLS context)
        sys.exit(STARTUP_FAILURE)
    if not server.started:
        sys.exit(STARTUP_FAILURE)
