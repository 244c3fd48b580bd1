"""The served index: readers get an immutable snapshot, writers are serialised.

A query takes :meth:`IndexHolder.snapshot` once and uses that object for its
whole life. A writer (``POST``/``DELETE /api/tracks``) runs under one lock on
a separate writer handle; after it commits, a *fresh* reader is opened and
swapped in with a single reference assignment (atomic in CPython). Queries
already running keep the old snapshot, new queries see the new one — no query
ever sees a half-applied write.

With several worker processes, or a ``songmine index`` run beside the
server, other writers commit too: :meth:`IndexHolder.refresh` (called
periodically) swaps in a fresh reader when the catalogue changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["IndexHolder"]

log = logging.getLogger(__name__)


class IndexHolder:
    """Owns the reader snapshot and the writer handle of one index.

    Parameters
    ----------
    opener : callable
        ``opener()`` → a new index object (``songmine.index.Index(path)``).
    """

    def __init__(self, opener: Callable[[], Any]):
        self._opener = opener
        self._reader = opener()
        self._writer: Any | None = None
        self._write_lock = threading.Lock()
        self.generation = 0  # bumped at every swap (observability, tests)

    def snapshot(self) -> Any:
        """The current reader; keep using this one object for a whole query."""
        return self._reader

    @contextmanager
    def writing(self) -> Iterator[Any]:
        """Exclusive writer handle; a fresh reader is swapped in after the block commits."""
        with self._write_lock:
            if self._writer is None:
                self._writer = self._opener()
            else:
                _refresh(self._writer)
            yield self._writer
            self._swap()

    def refresh(self) -> bool:
        """Swap in a fresh reader if another process changed the index; True if swapped."""
        with self._write_lock:
            fresh = self._opener()
            if _fingerprint(fresh) == _fingerprint(self._reader):
                _close(fresh)
                return False
            self._reader = fresh
            self.generation += 1
            return True

    def _swap(self) -> None:
        self._reader = self._opener()
        self.generation += 1

    def close(self) -> None:
        for obj in (self._writer, self._reader):
            _close(obj)
        self._writer = None


def _refresh(index: Any) -> None:
    fn = getattr(index, "refresh", None)
    if callable(fn):
        fn()


def _close(index: Any) -> None:
    fn = getattr(index, "close", None)
    if callable(fn):
        try:
            fn()
        except Exception:  # closing is best effort  # pragma: no cover
            log.debug("closing an index failed", exc_info=True)


def _fingerprint(index: Any) -> tuple:
    """What identifies an index state: track count and segment list when exposed."""
    segs = getattr(index, "segments", None)
    try:
        segs = tuple(str(s) for s in (segs() if callable(segs) else segs or ()))
    except Exception:  # pragma: no cover
        segs = ()
    return (getattr(index, "n_tracks", None), segs)
