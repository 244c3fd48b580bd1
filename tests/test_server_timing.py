"""`songmine serve --server-timing`: a real server on 127.0.0.1, real music clips.

The header's stages are checked against what the operating system says: the
CPU the server's processes used (``/proc/<pid>/stat``) and the time the client
waited, never against the server's own bookkeeping.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

import httpx  # noqa: E402
from conftest import need, songmine_serve  # noqa: E402
from test_server import clip  # noqa: E402
from test_server_workers import children, wait_for_workers  # noqa: E402

pytestmark = pytest.mark.corpus

need(os.path.isdir("/proc/self/task"), "reading processes' CPU needs /proc (Linux)")

STAGES = {"receive", "decode", "resample", "fingerprint", "search", "respond"}
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def timing(header: str) -> dict[str, float]:
    """``decode;dur=1.234, search;dur=5.6`` → {stage: seconds}; each stage named once."""
    out: dict[str, float] = {}
    for part in header.split(","):
        name, sep, dur = part.strip().partition(";dur=")
        assert sep and name not in out, header
        out[name] = float(dur) / 1000
    return out


def _post(c: httpx.Client, url: str, body: bytes) -> httpx.Response:
    return c.post(url + "/api/identify", files={"file": ("q.wav", body, "audio/wav")})


@pytest.mark.parametrize("n_workers", ["1", "2"])
def test_each_stage_is_cpu_the_server_spent_on_that_request(server_index, tagged_cuts, n_workers):
    """10-s WAV clips of real music, 20 one after the other over one connection: every answer names the
    right track and carries all six stages; each request's stages add up to no more than the time
    the client waited for it, and all requests' stages to no more than the CPU the server's
    processes used meanwhile (and most of it: the stages are where a request's CPU goes)."""
    bodies = [(i, clip(tagged_cuts[i], offset=3.0 + 2 * i, duration=10.0)) for i in range(5)]
    with songmine_serve(server_index, "--workers", n_workers, "--server-timing") as (url, proc):
        pids = wait_for_workers(url, proc, 2) if n_workers == "2" else [proc.pid]
        with httpx.Client(timeout=120) as c:
            assert _post(c, url, bodies[0][1]).status_code == 200  # this connection's worker is warm
            before = {p: cpu_s(p) for p in pids}
            total = 0.0
            for k in range(20):
                i, body = bodies[k % len(bodies)]
                t0 = time.monotonic()
                r = _post(c, url, body)
                waited = time.monotonic() - t0
                assert r.status_code == 200, r.text
                assert Path(r.json()["matches"][0]["path"]).name == tagged_cuts[i].name
                stages = timing(r.headers["server-timing"])
                assert set(stages) == STAGES, stages
                assert all(v >= 0 for v in stages.values()), stages
                assert stages["decode"] > 0 and stages["fingerprint"] > 0 and stages["search"] > 0
                assert stages["receive"] > 0  # a 441-KB body was parsed and written
                assert sum(stages.values()) <= waited, (stages, waited)
                total += sum(stages.values())
            used = sum(cpu_s(p) - before[p] for p in pids)
    assert total <= used + 2 * TICK_S * len(pids), (total, used)
    assert total >= 0.5 * used, (total, used)


def test_no_header_unless_asked_and_none_on_errors(server_index, tagged_cuts):
    body = clip(tagged_cuts[2], offset=5.0, duration=10.0)
    with songmine_serve(server_index, "--workers", "1") as (url, _):
        with httpx.Client(timeout=120) as c:
            r = _post(c, url, body)
            assert r.status_code == 200 and "server-timing" not in r.headers
    with songmine_serve(server_index, "--workers", "1", "--server-timing") as (url, _):
        with httpx.Client(timeout=120) as c:
            r = c.post(url + "/api/identify", files={"file": ("notes.wav", b"not audio at all " * 100, "audio/wav")})
            assert r.status_code == 415 and r.json()["reason"] == "not-audio" and r.json()["detail"]
            assert "server-timing" not in r.headers  # an error says what went wrong, not what it cost
            r = _post(c, url, body)  # the same connection serves the next clip as usual
            assert r.status_code == 200 and set(timing(r.headers["server-timing"])) == STAGES


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_the_workers_die_with_the_supervisor(server_index, tagged_cuts):
    """kill -9 of the process `songmine serve` started (nothing can tell its workers): every child
    ends within seconds and the port stops answering, instead of orphans serving on."""
    body = clip(tagged_cuts[0], offset=5.0, duration=6.0)
    with songmine_serve(server_index, "--workers", "2") as (url, proc):
        wait_for_workers(url, proc, 2)
        with httpx.Client(timeout=120) as c:
            assert _post(c, url, body).status_code == 200
        pids = children(proc.pid)  # the workers and multiprocessing's resource tracker
        assert len(pids) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        t0 = time.monotonic()
        while not all(_gone(p) for p in pids):
            assert time.monotonic() - t0 < 15, [p for p in pids if not _gone(p)]
            time.sleep(0.05)
        port = int(url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
