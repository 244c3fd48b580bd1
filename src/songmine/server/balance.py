"""Keeping the workers of ``songmine serve`` evenly loaded, as HTTP clients hold their connections open.

The workers share one listening socket; whichever event loop gets to a new
connection first accepts it, and a loop accepts every connection waiting at
that moment. Clients that connect together (a load test, a reverse proxy's
pool) mostly land on one worker and stay there (keep-alive): measured, 14 or
15 of 16 clients on one of two workers — that worker runs at one core while
the other idles.

So each worker publishes its load in a table in shared memory (one slot per
worker, written only by its owner; -1: not serving): its open client
connections that started a request in the last two seconds (what a keep-alive
client brings; idle connections do not count, closed ones leave the count as
they close, and the count does not flicker with each request's start and end
as requests in progress would). A worker with
two or more above the least loaded other worker, when a response starts,
answers it with ``Connection: close``: the client opens a new connection for
its next request, and an idle worker, waiting in its event loop, is the first
to accept it. Loads converge to within one connection.
"""

from __future__ import annotations

import time
from collections.abc import MutableSequence
from typing import Any

__all__ = ["Peers", "NOT_SERVING", "RECENT_S"]

#: A slot's value while its worker is not serving (starting, dead, or replaced).
NOT_SERVING = -1

#: An open client connection counts as its worker's load for this long after its last request started.
RECENT_S = 2.0


class Peers:
    """This worker's slot in the shared table of requests in progress (see the module docstring)."""

    def __init__(self, table: MutableSequence[int], slot: int):
        if not 0 <= slot < len(table):
            raise ValueError(f"slot {slot} outside a table of {len(table)} workers")
        self.table, self.slot = table, slot
        self._recent: dict[Any, float] = {}  # open client (host, port) → when its last request started

    def request_started(self, client: Any) -> None:
        """A request started on the connection of ``client``: count it, publish the load."""
        self._recent[client] = time.monotonic()
        self.serving(self.load())

    def connection_closed(self, client: Any) -> None:
        """The connection of ``client`` closed (or is being closed): it is no longer this worker's load."""
        if self._recent.pop(client, None) is not None and self.table[self.slot] != NOT_SERVING:
            self.serving(self.load())

    def load(self) -> int:
        """Open client connections that started a request within the last :data:`RECENT_S` seconds."""
        horizon = time.monotonic() - RECENT_S
        if len(self._recent) > 1:
            self._recent = {c: t for c, t in self._recent.items() if t >= horizon}
        return len(self._recent)

    def serving(self, load: int = 0) -> None:
        """Publish this worker's load (from start-up to shutdown)."""
        self.table[self.slot] = load

    def stopped(self) -> None:
        self.table[self.slot] = NOT_SERVING

    def should_shed(self, load: int) -> bool:
        """Whether one of this worker's ``load`` client connections should move: some other serving
        worker has at most ``load - 2`` (moving one brings the two closer)."""
        least = min((v for i, v in enumerate(self.table) if i != self.slot and v >= 0), default=None)
        return least is not None and load >= least + 2
