"""songmine.fingerprint.heap: the allocator tuning of search processes (glibc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

_ARENAS = r"""
import ctypes, sys, threading
from songmine.fingerprint.heap import keep_heap
if sys.argv[1] == "keep":
    keep_heap()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(8)

def work():  # ctypes calls release the interpreter lock: the eight threads allocate at the same time
    start.wait()
    for _ in range(20000):
        libc.free(libc.malloc(64 * 1024))

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return sum(1 for line in out.stderr.splitlines() if line.startswith("Arena "))


def test_search_processes_share_two_arenas():
    """Each glibc arena keeps its own free memory (up to keep_heap's 256 MB): a server's thread pool
    made a dozen of them and its memory kept growing. Threads that allocate together get at most two."""
    assert _arenas("default") > 2  # the same threads, without the tuning: an arena each (up to 8 per core)
    assert _arenas("keep") <= 2
