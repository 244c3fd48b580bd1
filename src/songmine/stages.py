"""CPU time by stage of one piece of work (a request): measured where it is spent, for whoever asks.

Library code marks its stages with ``with stage("resample"):``; that costs a
context-variable read when nobody measures. A caller that wants the split
runs the work under ``with measuring(clock):`` and reads ``clock.seconds``
(thread CPU seconds per stage name). Stages nest and are exclusive: a
``fingerprint`` stage inside ``search`` pauses ``search``, so the seconds add
up to the CPU the work took on its thread. The server reports them in a
``Server-Timing`` header (``songmine serve --server-timing``), which
``benchmarks/server_load.py`` reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["StageClock", "measuring", "stage"]


class StageClock:
    """Thread CPU seconds charged to named stages; one clock is used by one thread at a time."""

    __slots__ = ("seconds", "_open", "_since")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._open: list[str] = []  # the stages entered, innermost last
        self._since = 0.0

    def _charge(self, now: float) -> None:
        if self._open:
            name = self._open[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + (now - self._since)
        self._since = now

    def enter(self, name: str) -> None:
        self._charge(time.thread_time())
        self._open.append(name)

    def exit(self) -> None:
        self._charge(time.thread_time())
        self._open.pop()

    def add(self, name: str, seconds: float) -> None:
        """Charge CPU measured elsewhere (e.g. on another thread) to ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def server_timing(self) -> str:
        """The stages as a ``Server-Timing`` header value (milliseconds of CPU, stages in order of first use)."""
        return ", ".join(f"{name};dur={1000 * s:.3f}" for name, s in self.seconds.items())


_clock: ContextVar[StageClock | None] = ContextVar("songmine_stage_clock", default=None)


class _Stage:
    __slots__ = ("name", "clock")

    def __init__(self, name: str):
        self.name = name
        self.clock: StageClock | None = None

    def __enter__(self) -> None:
        self.clock = _clock.get()
        if self.clock is not None:
            self.clock.enter(self.name)

    def __exit__(self, *exc: object) -> None:
        if self.clock is not None:
            self.clock.exit()


def stage(name: str) -> _Stage:
    """``with stage("decode"):`` charges the block's thread CPU to ``name`` when someone is measuring."""
    return _Stage(name)


@contextmanager
def measuring(clock: StageClock) -> Iterator[StageClock]:
    """Charge the stages run inside the block (on this thread, and in contexts copied from it) to ``clock``."""
    token = _clock.set(clock)
    try:
        yield clock
    finally:
        _clock.reset(token)
