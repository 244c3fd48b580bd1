"""A worker's share of the clients (songmine.server.balance) counts the connections still open.

Real uvicorn with the serving protocol on 127.0.0.1, and a load table in which
one other worker serves no one; each client is a raw socket, so when it is
open or closed is the test's own doing.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi")

from conftest import run_uvicorn  # noqa: E402

from songmine.server.app import create_app  # noqa: E402
from songmine.server.balance import NOT_SERVING, Peers  # noqa: E402
from songmine.server.settings import ServerSettings  # noqa: E402

pytestmark = pytest.mark.corpus

HEALTH = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n"


def _head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data.partition(b"\r\n\r\n")[0].lower()


def _wait(cond, what: str, timeout: float = 10.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, what
        time.sleep(0.01)


def test_connections_closed_by_their_clients_stop_counting(server_index):
    """Clients that asked once and hung up are not this worker's load: the next client stays (before,
    every connection of the last two seconds counted, so it was sent away to the idle peer)."""
    table = [NOT_SERVING, 0]  # slot 1: another worker, serving, with no client
    peers = Peers(table, 0)
    app = create_app(ServerSettings(index_path=server_index, refresh_interval_s=0), peers=peers)
    with run_uvicorn(app, peers=peers) as url:
        addr = (urlsplit(url).hostname, urlsplit(url).port)
        for _ in range(4):  # one-shot clients: a request each, then closed
            with socket.create_connection(addr, timeout=10) as sock:
                sock.sendall(HEALTH)
                assert _head(sock).startswith(b"http/1.1 200")
        _wait(lambda: table[0] == 0, f"published load {table[0]} with no connection open")
        with socket.create_connection(addr, timeout=10) as sock:  # a keep-alive client arrives now
            sock.sendall(HEALTH)
            head = _head(sock)
            assert head.startswith(b"http/1.1 200") and b"connection: close" not in head, head
            assert table[0] == 1


def test_open_connections_still_move_to_an_idle_peer(server_index):
    """Open keep-alive clients two above the idle peer: the newest is answered with Connection: close."""
    table = [NOT_SERVING, 0]
    peers = Peers(table, 0)
    app = create_app(ServerSettings(index_path=server_index, refresh_interval_s=0), peers=peers)
    with run_uvicorn(app, peers=peers) as url:
        addr = (urlsplit(url).hostname, urlsplit(url).port)
        a = socket.create_connection(addr, timeout=10)
        b = socket.create_connection(addr, timeout=10)
        try:
            a.sendall(HEALTH)
            assert b"connection: close" not in _head(a)  # one client against none: it stays
            b.sendall(HEALTH)
            assert b"connection: close" in _head(b)  # two against none: this one moves
            _wait(lambda: table[0] == 1, f"published load {table[0]}, one client open")
        finally:
            a.close()
            b.close()
        _wait(lambda: table[0] == 0, f"published load {table[0]} after the last client closed")
