"""The HTTP/1.1 connection layer: uvicorn's h11 protocol with deadlines, a connection cap and JSON errors.

uvicorn alone arms a timer only after a response (the keep-alive timeout): a
client that connects and sends nothing, or sends its header lines slowly,
keeps its socket for as long as it likes, and ``limit_concurrency`` then
answers every other request with a plain-text 503. :class:`GuardedH11Protocol`
instead

* gives every request head a deadline (``header_timeout_s``, counted from the
  connection's start or from the end of the previous response): a client that
  has sent part of a head by then gets a JSON 408, one that sent nothing is
  closed;
* caps open connections per process (``max_connections``): a connection over
  the cap takes the place of the one that has waited longest for a request
  head (connections that never completed a request go first); a request in
  progress is never dropped, and when every connection has one, the newcomer
  gets a JSON 503;
* drops a client that stops reading its response for ``send_timeout_s``
  (its request would otherwise hold a slot for ever);
* answers a malformed request with JSON ``{detail, reason}`` (400, or 431 for
  a head over ``max_header_bytes``) instead of uvicorn's plain text.

Requests in progress are capped inside the app (:mod:`songmine.server.guards`),
where the 503 is the same JSON as every other error; uvicorn's own
``limit_concurrency`` is left off. :func:`uvicorn_options` gives the keyword
arguments that run an app this way (``songmine serve`` and the tests use it).
"""

from __future__ import annotations

import asyncio
import functools
import http
import json
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .balance import Peers

__all__ = ["ConnectionLimits", "GuardedH11Protocol", "uvicorn_options", "with_peers", "json_error_bytes"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one server process allows each connection (see :class:`songmine.server.ServerSettings`)."""

    max_connections: int = 512
    header_timeout_s: float = 10.0
    send_timeout_s: float = 30.0
    max_header_bytes: int = 16 * 1024


def json_error_bytes(status: int, detail: str, reason: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response with the JSON error body."""
    body = json.dumps({"detail": detail, "reason": reason}).encode()
    phrase = http.HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "x-content-type-options: nosniff",
        "connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(h11.Connection):
    """h11's server side, remembering the last protocol error (for its status hint and message)."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self):  # type: ignore[override]
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.last_error = exc
            raise


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the deadlines, the cap and the JSON errors of the module docstring."""

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: ConnectionLimits = ConnectionLimits(),
        peers: Peers | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.peers = peers  # this worker's load (songmine.server.balance): told when a connection closes
        self.conn = _Connection(h11.SERVER, limits.max_header_bytes)
        self._head_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None  # waiting for a request head since (loop time); None: a request runs
        self._head_started = False  # bytes of the awaited head have arrived
        self._served = 0  # responses completed on this connection
        self._cycle_seen: Any = None

    # -- connection life ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            victim = self._longest_waiting()
            if victim is None:
                log.warning(
                    "connection cap (%d) reached and every connection has a request in progress",
                    self.limits.max_connections,
                )
                self._close_with(
                    503, "server busy: too many open connections, retry shortly", "busy", {"retry-after": "1"}
                )
                return
            victim._close_with(
                503,
                "connection closed to make room for another client",
                "busy",
                {"retry-after": "1"},
                silent_if_idle=True,
            )
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_send_timer()
        self._waiting_since = None
        if self.peers is not None:
            self.peers.connection_closed(self.client)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._waiting_since is not None and data:
            self._head_started = True
        super().data_received(data)
        self._note_request()

    def on_response_complete(self) -> None:
        self._served += 1
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle is not self._cycle_seen:  # a pipelined request started
            self._note_request()
        else:
            self._await_head()

    # -- request heads --------------------------------------------------------------------------
    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._waiting_since = self.loop.time()
        self._head_started = False
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _note_request(self) -> None:
        """A new request cycle started: its head is complete, the deadline is met."""
        if self.cycle is not None and self.cycle is not self._cycle_seen:
            self._cycle_seen = self.cycle
            self._cancel_head_timer()
            self._waiting_since = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._waiting_since is None or self.transport.is_closing():
            return
        self._close_with(
            408,
            f"request head not received within {self.limits.header_timeout_s:g} s",
            "timeout",
            silent_if_idle=True,
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _longest_waiting(self) -> GuardedH11Protocol | None:
        """The connection to drop for a newcomer: waiting for a head, never served first, then the oldest."""
        best, best_key = None, None
        for c in self.connections:
            if c is self or not isinstance(c, GuardedH11Protocol) or c._waiting_since is None:
                continue
            if c.transport is None or c.transport.is_closing():
                continue
            key = (c._served > 0, c._waiting_since)
            if best_key is None or key < best_key:
                best, best_key = c, key
        return best

    def _close_with(
        self,
        status: int,
        detail: str,
        reason: str,
        headers: dict[str, str] | None = None,
        *,
        silent_if_idle: bool = False,
    ) -> None:
        """End the connection; say why in JSON unless it is idle between requests (nothing to answer)."""
        self._cancel_head_timer()
        self._waiting_since = None
        if not (silent_if_idle and not self._head_started):
            self.transport.write(json_error_bytes(status, detail, reason, headers))
        self.transport.close()

    # -- slow readers ---------------------------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout_s, self._send_timeout)

    def resume_writing(self) -> None:
        self._cancel_send_timer()
        super().resume_writing()

    def _send_timeout(self) -> None:
        self._send_timer = None
        if not self.transport.is_closing():
            log.info("dropping a client that read nothing for %g s", self.limits.send_timeout_s)
            self.transport.abort()

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- malformed requests ---------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        exc = getattr(self.conn, "last_error", None)
        status = exc.error_status_hint if exc is not None and 400 <= exc.error_status_hint < 600 else 400
        if status == 431:
            detail, reason = f"request head larger than {self.limits.max_header_bytes} bytes", "head-too-large"
        else:
            detail, reason = f"malformed HTTP request: {exc or msg}", "bad-request"
        self._cancel_head_timer()
        self._waiting_since = None
        self.transport.write(json_error_bytes(status, detail, reason))
        self.transport.close()


def uvicorn_options(settings: Any, *, peers: Peers | None = None) -> dict[str, Any]:
    """``uvicorn.Config``/``uvicorn.run`` keyword arguments for ``settings`` (a ServerSettings).

    The protocol class travels as a ``functools.partial`` (picklable, so
    ``--workers N`` processes get it too). ``peers``: a worker's slot in the
    load table, the one its app was created with (see :func:`with_peers`).
    """
    limits = ConnectionLimits(
        max_connections=settings.max_connections,
        header_timeout_s=settings.header_timeout_s,
        send_timeout_s=settings.send_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
    return dict(
        http=functools.partial(GuardedH11Protocol, limits=limits, peers=peers),
        timeout_keep_alive=settings.keep_alive_s,
        limit_concurrency=None,  # requests in progress are capped in the app, with a JSON 503
        h11_max_incomplete_event_size=settings.max_header_bytes,
        proxy_headers=False,
        server_header=False,
    )


def with_peers(options: dict[str, Any], peers: Peers) -> dict[str, Any]:
    """``options`` (from :func:`uvicorn_options`) whose connections tell ``peers`` when they close."""
    return {**options, "http": functools.partial(options["http"], peers=peers)}
