"""`songmine serve --workers 2`: real worker processes under the supervisor, over real sockets.

Which worker holds a connection is read from /proc (the socket's inode in
/proc/net/tcp, and the process whose fd points at it), never from the server.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi")

import httpx  # noqa: E402
from conftest import need, songmine_serve  # noqa: E402
from test_server import clip  # noqa: E402
from test_server_crash import AUTH, TOKEN, _files, assert_consistent  # noqa: E402

pytestmark = pytest.mark.corpus

need(os.path.isdir("/proc/self/task"), "reading connections and processes needs /proc (Linux)")


def children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def workers(proc) -> list[int]:
    """The supervisor's worker processes (multiprocessing's resource tracker left out)."""
    out = []
    for p in children(proc.pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fh:
                if b"resource_tracker" not in fh.read():
                    out.append(p)
        except OSError:
            pass
    return sorted(out)


def owners(pids: list[int], port: int) -> dict[int, int]:
    """Established connections to ``port``: client port → the pid of the worker holding it."""
    inode_of_client = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            local, remote, state, inode = f[1], f[2], f[3], f[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                inode_of_client[f"socket:[{inode}]"] = int(remote.rsplit(":", 1)[1], 16)
    out = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in inode_of_client:
                out[inode_of_client[target]] = pid
    return out


def _port(url: str) -> int:
    return urlsplit(url).port


def wait_for_workers(url: str, proc, n: int, timeout: float = 90.0) -> list[int]:
    """Wait until ``n`` workers run and each has accepted a connection (so each is serving)."""
    t0 = time.monotonic()
    seen: set[int] = set()
    while True:
        pids = workers(proc)
        with httpx.Client(timeout=10) as c:  # a fresh connection each time: an idle worker accepts it first
            assert c.get(url + "/api/health").status_code == 200
            seen |= set(owners(pids, _port(url)).values()) & set(pids)
        if len(pids) == n and seen >= set(pids):
            return pids
        assert time.monotonic() - t0 < timeout, f"workers {pids}, seen serving {seen}"
        time.sleep(0.05)


def _identify(c: httpx.Client, url: str, body: bytes) -> str | None:
    r = c.post(url + "/api/identify", files={"file": ("q.wav", body, "audio/wav")})
    assert r.status_code == 200, r.text
    m = r.json()["matches"]
    return Path(m[0]["path"]).name if m else None


def identify_raw(url: str, pids: list[int], body: bytes) -> tuple[int, str | None]:
    """One identification over a new connection: (the worker that held it, the best match's file name)."""
    pid, status, answer = ask_raw(url, pids, body)
    assert status == 200, answer
    m = answer["matches"]
    return pid, (Path(m[0]["path"]).name if m else None)


def ask_raw(url: str, pids: list[int], body: bytes) -> tuple[int, int, dict]:
    """One identification over a new connection: (the worker that held it, the status, the JSON body)."""
    import json

    u = urlsplit(url)
    part = (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="q.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + body + b"\r\n--b0undary--\r\n"
    )
    head = (
        "POST /api/identify HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=b0undary"
        f"\r\nContent-Length: {len(part)}\r\n\r\n"
    ).encode()
    with socket.create_connection((u.hostname, u.port), timeout=120) as sock:
        sock.sendall(head + part[:-1])  # the last byte once the worker is known: no answer, no close before
        t0 = time.monotonic()
        while (pid := owners(pids, u.port).get(sock.getsockname()[1])) is None:  # accepted, receiving
            assert time.monotonic() - t0 < 60
            time.sleep(0.005)
        sock.sendall(part[-1:])
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head_s, _, rest = data.partition(b"\r\n\r\n")
        n = int([ln.split(b":")[1] for ln in head_s.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
        while len(rest) < n:
            rest += sock.recv(65536)
    return pid, int(head_s.split(b" ", 2)[1]), json.loads(rest[:n])


def test_clients_are_spread_over_the_workers(server_index, tagged_cuts):
    """16 keep-alive clients that connect at once end up 8 and 8 (± 1) on two workers, and every
    answer is right. (Without the balancing, a worker's event loop accepted 14 or 15 of them.)"""
    bodies = [(i, clip(tagged_cuts[i], offset=5.0 + i, duration=6.0)) for i in range(5)]
    with songmine_serve(server_index, "--workers", "2") as (url, proc):
        pids = wait_for_workers(url, proc, 2)
        clients = [httpx.Client(timeout=120) for _ in range(16)]
        barrier = threading.Barrier(16)
        wrong: list = []

        def run(k: int) -> None:
            c = clients[k]
            barrier.wait()
            for j in range(12):
                i, body = bodies[(k + j) % len(bodies)]
                if _identify(c, url, body) != tagged_cuts[i].name:
                    wrong.append((k, j))

        threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = owners(pids, _port(url))
        for c in clients:
            c.close()
    assert not wrong
    per = [sum(1 for p in held.values() if p == w) for w in pids]  # (a connection just moved is not counted)
    assert sum(per) >= 14 and max(per) - min(per) <= 2, per


def test_an_add_through_one_worker_is_seen_by_queries_on_every_worker(server_index, tagged_cuts, tmp_path):
    import shutil

    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    probe = clip(tagged_cuts[5], offset=6.0, duration=8.0)  # the sixth cut: not in the index yet
    with songmine_serve(index, "--workers", "2", env={"SONGMINE_TOKEN": TOKEN}) as (url, proc):
        pids = wait_for_workers(url, proc, 2)  # each worker has served: each holds its snapshot
        before = {identify_raw(url, pids, probe) for _ in range(4)}
        assert {name for _, name in before} == {None}
        with httpx.Client(timeout=120, headers=AUTH) as w:
            r = w.post(url + "/api/tracks", files={"file": ("new.flac", tagged_cuts[5].read_bytes())})
            assert r.status_code == 201, r.text
            stored = Path(r.json()["track"]["path"]).name  # the upload folder's name for it
        answered: dict[int, list] = {p: [] for p in pids}
        t0 = time.monotonic()
        while not all(answered.values()):  # right after the 201, until each worker has answered
            pid, name = identify_raw(url, pids, probe)
            answered[pid].append(name)
            assert time.monotonic() - t0 < 60, answered
        assert all(name == stored for names in answered.values() for name in names), answered


def test_every_worker_answers_index_damaged_after_damage_in_place_and_hides_paths(server_index, tagged_cuts, tmp_path):
    """Damage written in place under ``serve --workers 2 --hide-paths``: each worker's own refresh finds it,
    and every worker answers the JSON 500 ``index-damaged`` from then on (none keeps answering from the
    damaged bytes its memory maps hold); before it, every worker's matches carry file names only."""
    import shutil

    from songmine.errors import IndexCorruptError
    from songmine.fingerprint.index.segments import open_segment

    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    probe = clip(tagged_cuts[1], offset=5.0, duration=8.0)
    with songmine_serve(index, "--workers", "2", "--hide-paths") as (url, proc):
        pids = wait_for_workers(url, proc, 2)
        answered: dict[int, list] = {p: [] for p in pids}
        t0 = time.monotonic()
        while not all(answered.values()):
            pid, status, answer = ask_raw(url, pids, probe)
            assert status == 200, answer
            answered[pid].append(answer["matches"][0]["path"])
            assert time.monotonic() - t0 < 60, answered
        assert {p for paths in answered.values() for p in paths} == {tagged_cuts[1].name}, answered

        seg = max((index / "segments").glob("*.sgm"), key=lambda p: p.stat().st_size)
        at = seg.stat().st_size // 2
        with open(seg, "r+b") as fh:  # in place: 4 KB in the middle of the postings, every bit flipped
            fh.seek(at)
            flipped = bytes(b ^ 0xFF for b in fh.read(4096))
            fh.seek(at)
            fh.write(flipped)
        with pytest.raises(IndexCorruptError):  # (the damage is one a check finds)
            open_segment(seg).sums.check_all()

        damaged: dict[int, list] = {p: [] for p in pids}
        t0 = time.monotonic()
        while not all(len(v) >= 2 for v in damaged.values()):  # each worker, twice, once it has seen it
            pid, status, answer = ask_raw(url, pids, probe)
            if status != 200 or damaged[pid]:
                damaged[pid].append((status, answer.get("reason"), answer.get("detail", "")))
            assert time.monotonic() - t0 < 60, damaged
            time.sleep(0.05)
    for pid, seen in damaged.items():
        for status, reason, detail in seen:
            assert (status, reason) == (500, "index-damaged"), (pid, seen)
            assert str(tmp_path) not in detail, detail  # --hide-paths: no server file named


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(server_index, tagged_cuts, tmp_path):
    """kill -9 a worker in the middle of receiving an add: the service answers throughout, the
    supervisor starts another worker, whose start-up clean-up removes the dead add's file."""
    import shutil

    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"SONGMINE_TOKEN": TOKEN, "TMPDIR": str(tmpdir)}
    folder = index / "uploads"
    body = clip(tagged_cuts[1], offset=4.0, duration=6.0)
    track = tagged_cuts[5].read_bytes()
    with songmine_serve(index, "--workers", "2", env=env) as (url, proc):
        pids = wait_for_workers(url, proc, 2)
        u = urlsplit(url)
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(
            b"POST /api/tracks HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/flac\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(track)}\r\n\r\n".encode()
            + track[: len(track) // 2]
        )
        t0 = time.monotonic()
        while not _files(folder):
            assert time.monotonic() - t0 < 30
            time.sleep(0.01)
        victim = owners(pids, u.port)[sock.getsockname()[1]]
        survivor = [p for p in pids if p != victim][0]
        os.kill(victim, signal.SIGKILL)
        sock.settimeout(10)
        try:
            assert sock.recv(65536) == b""  # the add's connection died with its worker
        except ConnectionResetError:
            pass
        sock.close()
        answers = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:  # meanwhile every request is answered, by the survivor or the new one
            with httpx.Client(timeout=60) as c:
                answers.append(_identify(c, url, body))
            now = workers(proc)
            if len(now) == 2 and victim not in now and not _files(folder):
                break
        now = workers(proc)
        assert survivor in now and victim not in now and len(now) == 2, (pids, now)
        assert answers and all(a == tagged_cuts[1].name for a in answers), answers
        assert _files(folder) == []  # the replacement cleaned up what the dead add left
        with httpx.Client(timeout=120, headers=AUTH) as w:  # and the same add now goes through
            assert w.post(url + "/api/tracks", files={"file": ("new.flac", track)}).status_code == 201
    tracks = assert_consistent(index, tmpdir)
    assert len(tracks) == 6
    for p in pids + now:  # the workers ended with the server
        assert not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split()[2] == "Z"


_SUPERVISE = """
import sys
from songmine.server.protocol import uvicorn_options
from songmine.server.settings import ServerSettings
from songmine.server.supervisor import serve_workers

s = ServerSettings(index_path=sys.argv[1])
options = dict(host="127.0.0.1", port=0, ssl_certfile=sys.argv[2], ssl_keyfile=sys.argv[2], log_level="info")
sys.exit(serve_workers(s, {**options, **uvicorn_options(s)}, 2))
"""


def test_a_worker_that_cannot_start_stops_the_server(server_index, tmp_path):
    """Workers that fail in uvicorn's start-up (a TLS pair they cannot load) end the supervisor with
    the start-up failure status, instead of being replaced every second for ever."""
    import subprocess
    import sys

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    try:
        run = subprocess.run(
            [sys.executable, "-c", _SUPERVISE, str(server_index), str(junk)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the supervisor kept replacing workers that cannot start: {exc.stderr!r:.600}")
    assert run.returncode == 3, run.stderr[-2000:]
    assert "failed to start: stopping the server" in run.stderr and "starting a new one" not in run.stderr


@pytest.mark.parametrize("n_workers", ["1", "2"])
def test_a_tls_pair_that_cannot_serve_is_a_usage_error(server_index, tmp_path, n_workers):
    """A certificate/key that do not load: one line and exit 2 before anything starts, with one process or several."""
    import shutil
    import subprocess
    import sys

    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    exe = shutil.which("songmine", path=str(Path(sys.executable).parent)) or shutil.which("songmine")
    run = subprocess.run(
        [
            exe,
            "serve",
            "--index",
            str(server_index),
            "--port",
            "0",
            "--workers",
            n_workers,
            "--tls-cert",
            str(junk),
            "--tls-key",
            str(junk),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("songmine: error: ") and "TLS" in lines[0], run.stderr
