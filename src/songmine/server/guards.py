"""The app's front door: which Host names it answers, and how many requests it runs at once.

Both checks answer with the service's JSON error ``{detail, reason}``:

* **Host allow-list** — a web page on another site can make a browser talk
  to this server by pointing its own DNS name at 127.0.0.1 (DNS rebinding);
  the browser then sends that name as ``Host``. Requests whose Host name is
  not on the list get 400 ``host-not-allowed``. Address literals
  (``127.0.0.1:8000``, ``[::1]``, ``192.168.1.5``) are always accepted: a
  rebinding page can only come with a name.
* **Requests in progress** — at most ``max_requests`` per process; beyond
  that, 503 ``busy`` with ``Retry-After`` (uvicorn's own limit would answer
  in plain text, and it counts idle connections too).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from .balance import Peers

__all__ = ["HostAllowList", "RequestGuard", "is_address", "parse_host"]


def parse_host(value: str) -> tuple[str, int | None]:
    """``"Name:8000"`` → ``("name", 8000)``; ``"[::1]:80"`` → ``("::1", 80)``; ``"::1"`` → ``("::1", None)``.

    Raises ``ValueError`` on anything that is not a host name or address with an optional port.
    """
    v = value.strip().lower()
    if not v:
        raise ValueError("empty host")
    port: int | None = None
    if v.startswith("["):
        end = v.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in {value!r}")
        name, rest = v[1:end], v[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"junk after ']' in {value!r}")
            port = _port(rest[1:], value)
        ipaddress.IPv6Address(name)
        return name, port
    if v.count(":") > 1:  # a bare IPv6 address
        ipaddress.IPv6Address(v)
        return v, None
    name, sep, p = v.partition(":")
    if sep:
        port = _port(p, value)
    name = name.removesuffix(".")
    if not name or not all(c.isalnum() or c in "-._*" for c in name):
        raise ValueError(f"not a host name: {value!r}")
    return name, port


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in {value!r}")
    return int(text)


def is_address(name: str) -> bool:
    """Whether ``name`` (as :func:`parse_host` returns it) is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostAllowList:
    """Host names a request may name; ``*.example.org`` allows subdomains, ``*`` allows any name.

    An entry with a port (``music.example.org:8443``) allows that port only;
    without one, any port. Address literals are always allowed.
    """

    def __init__(self, entries: Iterable[str]):
        self.any = False
        self.names: dict[str, set[int] | None] = {}  # name -> allowed ports (None: any)
        self.suffixes: list[tuple[str, int | None]] = []
        for e in entries:
            if e.strip() == "*":
                self.any = True
                continue
            name, port = parse_host(e)
            if name.startswith("*."):
                self.suffixes.append((name[1:], port))
            elif "*" in name:
                raise ValueError(f"{e!r}: '*' only as a whole entry or as '*.domain'")
            elif port is None:
                self.names[name] = None
            elif name not in self.names or self.names[name] is not None:
                self.names.setdefault(name, set()).add(port)  # type: ignore[union-attr]

    def allows(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header is served (no header: HTTP/1.0, not a browser)."""
        if host is None or self.any:
            return True
        try:
            name, port = parse_host(host)
        except ValueError:
            return False
        if is_address(name):
            return True
        if name in self.names:
            ports = self.names[name]
            return ports is None or port in ports
        return any(name.endswith(sfx) and (p is None or p == port) for sfx, p in self.suffixes)


class RequestGuard:
    """Pure ASGI middleware: the Host check, then the cap on requests in progress; every response
    it passes on carries ``X-Content-Type-Options: nosniff``.

    With ``peers`` (one of several workers, :mod:`songmine.server.balance`) it
    publishes how many client connections sent it a request lately, and closes
    the connection after a response when another worker has clearly fewer.
    """

    def __init__(self, app: Any, *, hosts: HostAllowList, max_requests: int, peers: Peers | None = None):
        self.app = app
        self.hosts = hosts
        self.max_requests = max_requests
        self.peers = peers
        self.active = 0  # one event loop per process: no lock needed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if not self.hosts.allows(host):
            shown = (host or "")[:100]
            await _json(
                send,
                400,
                f"Host {shown!r} is not served here (allow it with `songmine serve --allow-host`)",
                "host-not-allowed",
            )
            return
        if self.active >= self.max_requests:
            await _json(
                send,
                503,
                f"server busy: {self.max_requests} requests in progress, retry shortly",
                "busy",
                [(b"retry-after", b"1")],
            )
            return
        self.active += 1
        if self.peers is not None:
            self.peers.request_started(scope.get("client"))
        try:
            await self.app(scope, receive, _Send(send, self, scope.get("client")))
        finally:
            self.active -= 1

    def head_headers(self, headers: list, client: Any) -> list:
        """The response head's headers as this layer sends them (nosniff; ``connection: close`` to shed)."""
        if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
            headers.append((b"x-content-type-options", b"nosniff"))
        if self.peers is not None and self.peers.should_shed(self.peers.load()):
            headers.append((b"connection", b"close"))
            self.peers.connection_closed(client)
        return headers


class _Send:
    """``send`` with the guard's headers added to the response head."""

    __slots__ = ("send", "guard", "client")

    def __init__(self, send: Any, guard: RequestGuard, client: Any):
        self.send, self.guard, self.client = send, guard, client

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": self.guard.head_headers(list(message.get("headers") or ()), self.client)}
        await self.send(message)


def _header(scope: dict, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return v.decode("latin-1")
    return None


async def _json(send: Any, status: int, detail: str, reason: str, extra: list | None = None) -> None:
    body = json.dumps({"detail": detail, "reason": reason}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
