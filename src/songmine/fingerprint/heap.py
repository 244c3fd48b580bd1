"""Allocator tuning for processes that exist to search (glibc only)."""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_heap"]


_heap_kept = False


def keep_heap() -> None:
    """Tune this process's allocator for searching (glibc only; once; a no-op elsewhere).

    A query on a big index allocates tens of MB of short-lived arrays (hits,
    vote keys); by default glibc maps each array above 128 KB-32 MB freshly
    and trims freed memory back to the OS, so every query pays page faults
    and the kernel's zeroing again — at 1,000 hours half of a query's CPU
    time (``docs/identify.md``). Raising the mmap and trim thresholds keeps
    that memory in the process for the next query (up to 256 MB).

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
