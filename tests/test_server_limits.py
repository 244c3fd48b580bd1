"""Connection limits, Host allow-list and JSON error bodies, over real sockets to a real uvicorn.

The long probe (300 idle + 300 slow-header connections against ``songmine
serve`` while a client identifies real clips) runs here with a 3-s header
deadline; ``benchmarks/server_idle.py`` runs it with the defaults, for longer.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from conftest import require  # noqa: E402

require("fastapi")

import httpx  # noqa: E402
from conftest import run_uvicorn, songmine_serve  # noqa: E402

from songmine.server import ServerSettings, create_app  # noqa: E402
from songmine.server.balance import RECENT_S  # noqa: E402
from songmine.server.guards import HostAllowList, parse_host  # noqa: E402

pytestmark = pytest.mark.corpus


def _addr(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    return u.hostname, u.port


def _read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``timeout``); returns (bytes, seconds until close)."""
    sock.settimeout(timeout)
    t0 = time.monotonic()
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return data, float("inf")
    return data, time.monotonic() - t0


def _json_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


def _settings(index, **kw) -> ServerSettings:
    return ServerSettings(index_path=index, refresh_interval_s=0, **kw)


#: How a test serves the app: uvicorn in this process, or `songmine serve` with two worker processes.
MODES = ["in-process", "two-workers"]


@contextmanager
def serving(index, mode: str, **kw):
    """``with serving(index, mode, header_timeout_s=0.5) as url:`` — the app with those settings."""
    if mode == "in-process":
        with run_uvicorn(create_app(_settings(index, **kw))) as url:
            yield url
        return
    args = [a for k, v in kw.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    with songmine_serve(index, "--workers", "2", *args) as (url, _):
        yield url


# --- the probe: idle and slow clients do not starve real ones --------------------------------------


def test_idle_and_slow_header_connections_do_not_starve_clients(server_index, tagged_cuts):
    """600 attackers (300 send nothing, 300 send a header line every 0.5 s) against `songmine serve`
    with its default 512-connection cap: a client identifying real clips meanwhile gets every answer;
    every attacker is dropped by the 3-s header deadline (or earlier, to make room)."""
    from test_server import clip

    clips = [(i, clip(tagged_cuts[i], offset=4.0 + i, duration=6.0, fmt="wav")) for i in range(3)]
    deadline_s = 3.0
    with songmine_serve(server_index, "--workers", "2", "--header-timeout-s", str(deadline_s)) as (url, proc):
        addr = _addr(url)
        t_open = time.monotonic()
        idle = [socket.create_connection(addr) for _ in range(300)]
        slow = [socket.create_connection(addr) for _ in range(300)]
        for s in slow:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
        closed: dict[socket.socket, tuple[float, bytes]] = {}
        got: dict[socket.socket, bytes] = {s: b"" for s in idle + slow}
        stop = threading.Event()

        def watch() -> None:
            sel = selectors.DefaultSelector()
            for s in idle + slow:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            while not stop.is_set() and len(closed) < len(got):
                for key, _ in sel.select(timeout=0.1):
                    s = key.fileobj
                    try:
                        chunk = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if chunk:
                        got[s] += chunk
                    else:
                        closed[s] = (time.monotonic() - t_open, got[s])
                        sel.unregister(s)

        def trickle() -> None:
            while not stop.wait(0.5):
                for s in slow:
                    if s not in closed:
                        try:
                            s.send(b"X-Slow: 1\r\n")
                        except OSError:
                            pass

        threads = [threading.Thread(target=watch), threading.Thread(target=trickle)]
        for t in threads:
            t.start()
        answers = []
        try:
            with httpx.Client(timeout=60) as c:
                k = 0
                while time.monotonic() - t_open < deadline_s + 5:
                    i, body = clips[k % len(clips)]
                    r = c.post(url + "/api/identify", files={"file": (f"q{i}.wav", body, "audio/wav")})
                    best = r.json()["matches"][0]["path"] if r.status_code == 200 and r.json()["matches"] else None
                    answers.append((r.status_code, best is not None and best.endswith(tagged_cuts[i].name)))
                    k += 1
            while len(closed) < len(got) and time.monotonic() - t_open < deadline_s + 15:
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
            for s in idle + slow:
                s.close()
        assert proc.poll() is None

    assert len(answers) >= 4 and all(a == (200, True) for a in answers), answers
    assert len(closed) == 600, f"{600 - len(closed)} attacker connections still open"
    late = [t for t, _ in closed.values() if t > deadline_s + 4]
    assert not late, f"{len(late)} dropped late, up to {max(late):.1f} s"
    idle_bytes = [closed[s][1] for s in idle]
    assert all(b == b"" for b in idle_bytes), "an idle connection was sent something"
    for s in slow:
        status, body = _json_body(closed[s][1])
        assert (status, body["reason"]) in {(408, "timeout"), (503, "busy")}, (status, body)
    n408 = sum(closed[s][1].startswith(b"HTTP/1.1 408") for s in slow)
    assert n408 >= 200, n408  # the cap evicts the oldest waiters first: the idle ones


# --- the connection layer, piece by piece ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_protocol_errors_and_deadlines_are_json(server_index, mode):
    with serving(server_index, mode, header_timeout_s=0.5, keep_alive_s=5.0) as url:
        addr = _addr(url)

        def exchange(data: bytes, timeout: float = 5.0) -> tuple[bytes, float]:
            with socket.create_connection(addr) as sock:
                sock.sendall(data)
                return _read_all(sock, timeout)

        raw, _ = exchange(b"GET / HTTP/1.1\r\nthis is not a header\r\n\r\n")
        status, body = _json_body(raw)
        assert status == 400 and body["reason"] == "bad-request" and "malformed" in body["detail"]

        raw, _ = exchange(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 20000)  # and more to come
        status, body = _json_body(raw)
        assert status == 431 and body["reason"] == "head-too-large"

        raw, t = exchange(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")  # never finished
        status, body = _json_body(raw)
        assert status == 408 and body["reason"] == "timeout" and "0.5 s" in body["detail"] and t < 3

        raw, t = exchange(b"")  # connects, sends nothing
        assert raw == b"" and t < 3

        raw, _ = exchange(b"POST /api/identify HTTP/1.1\r\nHost: localhost\r\nContent-Length: zz\r\n\r\n")
        status, body = _json_body(raw)
        assert status == 400 and body["reason"] == "bad-request"

        # after a response, the next head has a deadline too (not only the idle keep-alive timer)
        for _ in range(5):
            with socket.create_connection(addr) as sock:
                sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                sock.settimeout(5)
                first = sock.recv(65536)
                assert first.startswith(b"HTTP/1.1 200")
                if b"\r\nconnection: close" in first.lower():
                    # two workers: this one moved the client away, as it counted open connections of the last
                    # RECENT_S seconds against an idle peer (another client's); once they age out it keeps it
                    time.sleep(RECENT_S + 0.1)
                    continue
                sock.sendall(b"GET /api/health HTTP/1.1\r\n")
                t0 = time.monotonic()
                try:
                    for _ in range(3):
                        time.sleep(0.1)
                        sock.sendall(b"X-Slow: 1\r\n")
                except (BrokenPipeError, ConnectionResetError):  # a loaded machine: the deadline came first
                    pass
                raw, _ = _read_all(sock, 5)
                assert time.monotonic() - t0 < 3
                status, body = _json_body(raw)
                assert status == 408 and body["reason"] == "timeout"
                break
        else:
            pytest.fail("every connection was moved away after its first response")


def _start_upload(addr, n_body: int = 100_000) -> socket.socket:
    """A request in progress: headers and a first part of the body, the rest never comes."""
    sock = socket.create_connection(addr)
    sock.sendall(
        b"POST /api/identify HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\n"
        + f"Content-Length: {n_body}\r\n\r\n".encode()
        + b"RIFF"
        + bytes(1000)
    )
    return sock


def test_connection_cap_drops_the_longest_waiting_and_refuses_when_all_are_busy(server_index):
    s = _settings(server_index, max_connections=4, header_timeout_s=30, upload_timeout_s=20)
    with run_uvicorn(create_app(s)) as url:
        addr = _addr(url)
        idle = []
        for _ in range(4):
            idle.append(socket.create_connection(addr))
            time.sleep(0.05)
        clients = []
        for _ in range(3):  # each comes as a 5th connection, is answered, and stays open (keep-alive)
            sock = socket.create_connection(addr)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            clients.append(sock)
        # each newcomer took the place of the oldest connection that never made a request,
        # not of a served client now waiting in keep-alive
        for sock in idle[:3]:
            raw, t = _read_all(sock, 3)
            assert raw == b"" and t < 3
        for sock in idle[3:] + clients:
            assert _read_all(sock, 0.3)[1] == float("inf")  # still open
        for sock in idle + clients:
            sock.close()

        busy = [_start_upload(addr) for _ in range(4)]
        time.sleep(0.3)
        with socket.create_connection(addr) as sock:
            raw, t = _read_all(sock, 3)
        status, body = _json_body(raw)
        assert status == 503 and body["reason"] == "busy" and b"retry-after: 1" in raw.lower() and t < 2
        for sock in busy:
            sock.close()
        time.sleep(0.3)
        with httpx.Client(timeout=10) as c:
            assert c.get(url + "/api/health").status_code == 200


def test_requests_in_progress_are_capped_with_a_json_503(server_index):
    s = _settings(server_index, max_requests=2, upload_timeout_s=20)
    with run_uvicorn(create_app(s)) as url:
        busy = [_start_upload(_addr(url)) for _ in range(2)]
        time.sleep(0.3)
        with httpx.Client(timeout=10) as c:
            r = c.get(url + "/api/health")
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["reason"] == "busy" and "2 requests in progress" in r.json()["detail"]
            for sock in busy:
                sock.close()
            time.sleep(0.3)
            assert c.get(url + "/api/health").status_code == 200


def test_a_client_that_stops_reading_is_dropped(server_index):
    """It would hold a request slot for ever: with one slot and a 1-s send timeout, the slot comes back."""
    s = _settings(server_index, max_requests=1, send_timeout_s=1.0)
    with run_uvicorn(create_app(s), sndbuf=16384) as url:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(_addr(url))
        sock.sendall(b"GET /static-offline-docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with httpx.Client(timeout=10) as c:
            time.sleep(0.3)
            held = c.get(url + "/api/health")
            assert held.status_code == 503 and held.json()["reason"] == "busy"  # the reader holds the slot
            t0 = time.monotonic()
            while c.get(url + "/api/health").status_code != 200:
                assert time.monotonic() - t0 < 5, "the slow reader was never dropped"
                time.sleep(0.1)
        raw, _ = _read_all(sock, 5)
        sock.close()
        assert len(raw) < 1_000_000  # cut off, not the whole 1.5 MB file


# --- Host allow-list -----------------------------------------------------------------------------


def test_host_allow_list_parsing():
    assert parse_host("LocalHost:8000") == ("localhost", 8000)
    assert parse_host("[::1]:80") == ("::1", 80) and parse_host("::1") == ("::1", None)
    assert parse_host("music.example.org.") == ("music.example.org", None)
    for bad in ("", "a b", "[::1", "host:0", "host:99999", "host:x", "a/b"):
        with pytest.raises(ValueError):
            parse_host(bad)
    hosts = HostAllowList(["localhost", "music.example.org:8443", "*.lan"])
    allowed = [
        "localhost",
        "localhost:8000",
        "127.0.0.1:8000",
        "[::1]:8000",
        "192.168.1.5",
        "music.example.org:8443",
        "pi.lan",
        "a.b.lan:9",
        None,
    ]
    refused = [
        "evil.example",
        "evil.example:8000",
        "music.example.org",
        "music.example.org:80",
        "lan",
        "localhost.evil",
        "a b",
        "",
    ]
    assert all(hosts.allows(h) for h in allowed)
    assert not any(hosts.allows(h) for h in refused)
    assert HostAllowList(["*"]).allows("anything.example")
    with pytest.raises(ValueError):
        HostAllowList(["ev*l.example"])


@pytest.mark.parametrize("mode", MODES)
def test_wrong_host_is_refused_as_json(server_index, mode):
    """A DNS-rebinding page (its own name pointed at 127.0.0.1) cannot read the library."""
    with serving(server_index, mode) as url:
        with httpx.Client(timeout=10) as c:
            for host in ("evil.example", "evil.example:8000", "localhost.evil.example"):
                r = c.get(url + "/api/tracks", headers={"Host": host})
                assert r.status_code == 400 and r.json()["reason"] == "host-not-allowed", (host, r.text)
                assert "tracks" not in r.json()
            for host in ("localhost", f"localhost:{_addr(url)[1]}", "127.0.0.1", "[::1]:8000"):
                assert c.get(url + "/api/tracks", headers={"Host": host}).status_code == 200, host
    if mode != "in-process":
        return  # --allow-host through `songmine serve`: test_serve_allow_host_option
    s = _settings(server_index, allowed_hosts=("localhost", "music.example.org"))
    with run_uvicorn(create_app(s)) as url:
        with httpx.Client(timeout=10) as c:
            assert c.get(url + "/api/tracks", headers={"Host": "music.example.org"}).status_code == 200
            assert c.get(url + "/api/tracks", headers={"Host": "evil.example"}).status_code == 400


def test_serve_allow_host_option(server_index):
    from songmine.cli._app import main
    from songmine.cli.serve import _allowed_hosts

    assert _allowed_hosts("127.0.0.1", []) == ("localhost",)
    assert _allowed_hosts("0.0.0.0", ["music.example.org"]) == ("localhost", "music.example.org")
    assert _allowed_hosts("myhost.lan", []) == ("localhost", "myhost.lan")
    assert main(["serve", "--index", str(server_index), "--allow-host", "bad host!"]) == 2
    with songmine_serve(server_index, "--workers", "2", "--allow-host", "music.example.org") as (url, _):
        with httpx.Client(timeout=10) as c:
            assert c.get(url + "/api/health", headers={"Host": "music.example.org"}).status_code == 200
            assert c.get(url + "/api/health", headers={"Host": "other.example.org"}).status_code == 400


# --- every error body is {detail: str, reason: str} ------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def live(server_index, request):
    with serving(server_index, request.param) as url:
        with httpx.Client(base_url=url, timeout=30) as c:
            yield c


@pytest.mark.parametrize(
    "method, path, kw, status, reason",
    [
        (
            "POST",
            "/api/identify?top=0",
            {"content": b"x", "headers": {"content-type": "audio/wav"}},
            422,
            "invalid-parameter",
        ),
        ("GET", "/api/tracks?limit=abc", {}, 422, "invalid-parameter"),
        ("GET", "/api/tracks/-1", {}, 422, "invalid-parameter"),
        ("PUT", "/api/health", {}, 405, "method-not-allowed"),
        ("GET", "/api/nothing-here", {}, 404, "not-found"),
        ("GET", "/api/tracks/999999", {}, 404, "not-found"),
        ("POST", "/api/identify", {"content": b"", "headers": {"content-type": "audio/wav"}}, 422, "empty"),
        ("POST", "/api/identify", {"files": {"file": ("e.wav", b"")}}, 422, "empty"),
        (
            "POST",
            "/api/identify",
            {"content": b"{}", "headers": {"content-type": "application/json"}},
            415,
            "unsupported-type",
        ),
        (
            "POST",
            "/api/identify",
            {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}},
            422,
            "malformed-multipart",
        ),
        ("POST", "/api/tracks", {"files": {"file": ("a.wav", b"x")}}, 403, "editing-disabled"),
        ("DELETE", "/api/tracks/1", {}, 403, "editing-disabled"),
    ],
)
def test_every_error_body_is_detail_and_reason(live, method, path, kw, status, reason):
    try:
        r = live.request(method, path, **kw)
    except httpx.RemoteProtocolError:
        pytest.skip("the client refused to send this request")  # pragma: no cover
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"] and body["reason"] == reason, body


def test_validation_errors_keep_the_details_for_programs(live):
    body = live.get("/api/tracks", params={"limit": 0, "offset": -1}).json()
    assert body["reason"] == "invalid-parameter"
    assert "query parameter 'limit'" in body["detail"] and "query parameter 'offset'" in body["detail"]
    assert {tuple(e["loc"]) for e in body["errors"]} == {("query", "limit"), ("query", "offset")}


# --- a damaged index is the server's fault: JSON 500, never a 4xx ---------------------------------


def _segments(index):
    return sorted((index / "segments").glob("*.sgm"))


def test_damaged_postings_are_a_500_not_the_uploads_fault(server_index, tagged_cuts, tmp_path):
    """Ones over the segments' records (docs/index.md's layout): the postings name tracks the catalogue lacks."""
    import shutil

    import numpy as np
    from test_server import clip

    from songmine.fingerprint.index.schema import SEGMENT_HEADER, SEGMENT_HEADER_SIZE

    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    body = clip(tagged_cuts[1], offset=5.0, duration=8.0)
    with run_uvicorn(create_app(_settings(index))) as url, httpx.Client(timeout=60) as c:
        assert c.post(url + "/api/identify", files={"file": ("q.wav", body)}).status_code == 200
        for seg in _segments(index):  # in place (same size): the server's memory maps see it
            with open(seg, "r+b") as fh:
                _, n, t, _, _, _, record, _, n_classes, _, _ = SEGMENT_HEADER.unpack(fh.read(SEGMENT_HEADER_SIZE))
                fh.seek(SEGMENT_HEADER_SIZE + -(-5 * t // 8) * 8 + 24 * n_classes)  # the records
                fh.write(np.full(record * n, 0xFF, dtype=np.uint8).tobytes())
        r = c.post(url + "/api/identify", files={"file": ("q.wav", body)})
    assert r.status_code == 500, r.text
    assert r.json()["reason"] == "index-damaged" and "q.wav" not in r.json()["detail"]


def test_index_format_error_is_a_500(server_index, tagged_cuts, tmp_path):
    """A segment whose size no longer matches its header: opening the writer fails on the server's side."""
    import shutil

    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    s = _settings(index, token="t0ken-0123456789")
    with run_uvicorn(create_app(s)) as url, httpx.Client(timeout=60) as c:
        with open(_segments(index)[0], "ab") as fh:
            fh.write(bytes(12))
        r = c.post(
            url + "/api/tracks",
            files={"file": ("new.flac", tagged_cuts[5].read_bytes())},
            headers={"Authorization": "Bearer t0ken-0123456789"},
        )
    assert r.status_code == 500, r.text
    assert r.json()["reason"] == "index-damaged" and "segment" in r.json()["detail"]


def test_a_segment_from_a_newer_songmine_is_a_500_index_too_new(server_index, tagged_cuts, tmp_path):
    """Not damage: the JSON 500 says the index is too new (upgrade songmine), not that it is broken."""
    import shutil

    from songmine.fingerprint.index.schema import SEGMENT_MAGIC

    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    s = _settings(index, token="t0ken-0123456789")
    with run_uvicorn(create_app(s)) as url, httpx.Client(timeout=60) as c:
        with open(_segments(index)[0], "r+b") as fh:  # what a later format's writer would have put there
            fh.write(SEGMENT_MAGIC[:6] + b"99")
        r = c.post(
            url + "/api/tracks",
            files={"file": ("new.flac", tagged_cuts[5].read_bytes())},
            headers={"Authorization": "Bearer t0ken-0123456789"},
        )
    assert r.status_code == 500, r.text
    assert r.json()["reason"] == "index-too-new" and "newer" in r.json()["detail"], r.text


@pytest.mark.parametrize("kind", ["hashes", "catalogue"])
def test_damage_under_a_running_server_is_a_500_at_the_next_refresh(server_index, tagged_cuts, tmp_path, kind):
    """Damage written in place after the server checked and opened the index (its memory maps and
    its snapshot of the catalogue would keep answering, from damaged hashes or not at all from the
    damaged page): the next refresh re-checks the files that changed, and queries get the JSON 500;
    a repair by another process brings the answers back."""
    import shutil
    import sqlite3

    from test_server import clip

    from songmine.cli._app import main
    from songmine.fingerprint.index.schema import CATALOG_NAME
    from songmine.fingerprint.index.segments import open_segment

    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    body = clip(tagged_cuts[1], offset=5.0, duration=8.0)
    s = ServerSettings(index_path=index, refresh_interval_s=0.2)

    def ask(c):
        t0 = time.monotonic()
        while True:
            r = c.post(url + "/api/identify", files={"file": ("q.wav", body)})
            if r.status_code != 200 or time.monotonic() - t0 > 10:
                return r
            time.sleep(0.1)

    with run_uvicorn(create_app(s)) as url, httpx.Client(timeout=60) as c:
        first = c.post(url + "/api/identify", files={"file": ("q.wav", body)})
        assert first.status_code == 200 and first.json()["matches"]
        if kind == "hashes":
            seg = max(_segments(index), key=lambda p: p.stat().st_size)
            opened = open_segment(seg)
            at, n = opened.records_offset, len(opened)  # 4-byte posting records (docs/index.md)
            del opened
            with open(seg, "r+b") as fh:  # in place: 4 KB of zeros in the middle of the postings
                fh.seek(at + 4 * (n // 3))
                fh.write(bytes(4096))
            part = seg.name
        else:
            with sqlite3.connect(index / CATALOG_NAME) as conn:
                root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tracks'").fetchone()[0]
                page = conn.execute("PRAGMA page_size").fetchone()[0]
            with open(index / CATALOG_NAME, "r+b") as fh:
                fh.seek((root - 1) * page)
                fh.write(b"\xa5" * 64)
            part = CATALOG_NAME
        r = ask(c)
        assert r.status_code == 500, r.text
        assert (
            r.json()["reason"] == "index-damaged" and part in r.json()["detail"] and "q.wav" not in r.json()["detail"]
        )
        health = c.get(url + "/api/health")
        assert health.status_code == 500 and health.json()["reason"] == "index-damaged"
        if kind == "hashes":  # repaired by another process: answers again at the next refresh
            assert main(["verify", "--index", str(index), "--repair", "--jobs", "1"]) == 0
            t0 = time.monotonic()
            while not (
                (r := c.post(url + "/api/identify", files={"file": ("q.wav", body)})).status_code == 200
                and r.json()["matches"]
            ):  # (a refresh may land between the repair's two commits)
                assert time.monotonic() - t0 < 10, r.text
                time.sleep(0.1)
            assert r.json()["matches"][0]["path"] == first.json()["matches"][0]["path"]
