"""Process pools whose workers die with the process that started them.

A pool worker blocks on its task queue, whose pipe it holds open itself, so
when the parent is killed (``kill -9``, the OOM killer) it never notices and
waits forever, holding its memory. Every songmine pool is made by
:func:`pool`, whose workers end as soon as the parent is gone: on Linux the
kernel sends them SIGKILL (``prctl(PR_SET_PDEATHSIG)``); everywhere a daemon
thread in each worker watches the parent (re-parenting, or a pidfd) and ends
the worker with it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["pool", "die_with_parent", "default_jobs"]

#: prctl(2) option: the signal a process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: How often a worker looks whether its parent is still there (the portable fallback).
WATCH_PARENT_S = 0.5


def default_jobs() -> int:
    """How many worker processes a run uses when not told: every core this process may run on.

    The work (decoding, fingerprinting, features) is CPU-bound per file and each
    worker's memory is bounded, so one worker per core is the fastest; the cores
    counted are those the process may use (``os.sched_getaffinity``: a container's
    or ``taskset``'s CPU set), not all the machine has, where the platform says.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def pool(
    max_workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    mp_context: Any = None,
) -> ProcessPoolExecutor:
    """A :class:`~concurrent.futures.ProcessPoolExecutor` whose workers die with this process.

    ``initializer`` (a module-level function, so that it pickles) runs in each
    worker after the guard is in place.
    """
    ctx = mp_context if mp_context is not None else multiprocessing.get_context()
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=ctx,
        initializer=_start_worker,
        initargs=(os.getpid(), ctx.get_start_method(), initializer, initargs),
    )


def _start_worker(parent: int, method: str, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    die_with_parent(parent, method)
    if initializer is not None:
        initializer(*initargs)


def die_with_parent(parent: int, method: str = "fork") -> None:
    """End this process as soon as ``parent`` is gone, however it died.

    ``parent`` is the pid of the process that made the pool. With the ``fork``
    and ``spawn`` start methods it is this process's parent: the kernel's
    parent-death signal and a watch on our parent pid do. With ``forkserver``
    the parent is the fork server, which outlives the pool's owner as long as
    any worker runs (each holds the fd whose closing would end it), so the
    owner's pid is watched directly (a pidfd on Linux, else a poll).
    """
    direct = method in ("fork", "spawn")
    if direct and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no usable libc: the thread below still watches
            pass
    if direct and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    pidfd = None
    if not direct and hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(parent)
        except ProcessLookupError:
            os._exit(1)
        except OSError:  # an older kernel: poll below
            pidfd = None

    def gone() -> bool:
        if direct:
            return os.getppid() != parent
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # pid reused by another user's process
            return True
        return False

    def watch() -> None:
        if pidfd is not None:
            select.select([pidfd], [], [])  # readable once the process has exited
        else:
            while not gone():
                time.sleep(WATCH_PARENT_S)
        os._exit(1)

    threading.Thread(target=watch, name="songmine-watch-parent", daemon=True).start()
