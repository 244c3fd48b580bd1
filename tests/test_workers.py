"""Pool workers die with the process that started them, even after ``kill -9`` (songmine.workers)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")

PARENT = """
import sys, time, multiprocessing
from songmine.workers import pool

if __name__ == "__main__":
    ex = pool(2, mp_context=multiprocessing.get_context(sys.argv[1]))
    futs = [ex.submit(time.sleep, 600) for _ in range(2)]
    while len(ex._processes) < 2:
        time.sleep(0.01)
    print(*ex._processes, flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids, timeout: float = 5.0) -> list[int]:
    """The pids still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize(
    "method", [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]
)
def test_workers_die_with_a_killed_parent(tmp_path, method):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, str(script), method], env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(p) for p in workers)
        os.kill(proc.pid, signal.SIGKILL)  # the parent alone: nothing tells the workers
        proc.wait(timeout=10)
        assert wait_gone(workers) == [], f"workers still running 5 s after kill -9 of their parent ({method})"
    finally:
        for p in [proc.pid, *locals().get("workers", [])]:
            if alive(p):
                os.kill(p, signal.SIGKILL)
