"""Allocator tuning for processes that exist to search (glibc only)."""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_heap", "release_heap"]


_heap_kept = False


def keep_heap() -> None:
    """Tune this process's allocator for searching (glibc only; once; a no-op elsewhere).

    A query on a big index allocates tens of MB of short-lived arrays (hits,
    vote keys); by default glibc maps each array above 128 KB-32 MB freshly
    and trims freed memory back to the OS, so every query pays page faults
    and the kernel's zeroing again — at 1,000 hours half of a query's CPU
    time (``docs/identify.md``). Raising the mmap and trim thresholds keeps
    that memory in the process for the next query (up to 256 MB).

    glibc gives threads that allocate at the same time arenas of their own
    (up to 8 per core), and each arena keeps its own free memory: a server
    whose thread pool ran queries on a dozen threads kept a dozen query
    peaks — measured, two workers grew from 85 to 370–410 MB over a 10-minute
    soak and were still growing. So the arenas are capped at two (the
    threads share them; a query's few large allocations hardly contend):
    the same soak stays at about 180 MB.

    It changes the whole process, so the library never calls it on its own:
    the processes that exist to search do — ``songmine identify``, ``songmine
    eval``, ``songmine serve`` and the benchmarks. An application embedding
    :func:`search` may call it too. ``SONGMINE_KEEP_HEAP=0`` turns it off.
    """
    global _heap_kept
    if _heap_kept:
        return
    _heap_kept = True
    if not sys.platform.startswith("linux") or os.environ.get("SONGMINE_KEEP_HEAP", "1") == "0":
        return
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: glibc's maximum, 32 MB
    mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MB of free heap
    mallopt(-8, 2)  # M_ARENA_MAX: threads share two arenas, each keeping free memory as above


def release_heap() -> None:
    """Give the memory freed since back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

    With :func:`keep_heap`, a one-off big job in a search process — a server
    adding a track decodes and fingerprints all of it — would leave its peak
    in the heap for good, in the allocator arena of whichever thread ran it:
    a server's memory then grew with every track added over HTTP. Calling this
    after such a job keeps the process at its query-time size.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
