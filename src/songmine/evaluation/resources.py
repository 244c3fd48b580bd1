"""Peak memory and CPU of this process and its children while a block runs (``/proc`` sampling)."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

__all__ = ["PeakMemory"]


class PeakMemory:
    """Peak resident memory of this process and all its descendants, summed, while in the block.

    On Linux a thread samples ``/proc`` every ``interval`` seconds (so the
    sum is over processes alive at the same moment); the result is at least
    this process's own ``ru_maxrss`` over the block. Elsewhere it falls back to
    ``ru_maxrss(self) + ru_maxrss(children)`` (an upper bound).
    """

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.peak_mb = 0.0
        self.how = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc = Path("/proc/self/stat").exists()
        self.cpu_seconds: float | None = None
        self._cpu0 = 0.0
        self._sampler_cpu = 0.0

    @staticmethod
    def _tree_rss_bytes(root: int) -> int:
        page = os.sysconf("SC_PAGE_SIZE")
        children: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat", "rb") as fh:
                    stat = fh.read()
                ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
        total, todo = 0, [root]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/statm", "rb") as fh:
                    total += int(fh.read().split()[1]) * page
            except (OSError, ValueError, IndexError):
                pass
            todo.extend(children.get(pid, ()))
        return total

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._tree_rss_bytes(me) / 1e6)
            self._sampler_cpu = time.thread_time()  # the sampler's own CPU is not the build's
            self._stop.wait(self.interval)

    @staticmethod
    def _cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def __enter__(self) -> PeakMemory:
        self._cpu0 = self._cpu()
        if self._proc:
            self.how = f"sum of RSS over this process and its children, sampled every {self.interval * 1e3:.0f} ms"
            self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        cpu = self._cpu() - self._cpu0
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        self.cpu_seconds = max(0.0, cpu - self._sampler_cpu)
        if self._thread is not None:
            self.peak_mb = max(self.peak_mb, self._tree_rss_bytes(os.getpid()) / 1e6)
        else:
            ru_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            ru_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            self.peak_mb = (ru_self + ru_kids) / 1e3
            self.how = "ru_maxrss of this process + largest child (upper bound)"
