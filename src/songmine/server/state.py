"""The served index: readers get an immutable snapshot, writers are serialised.

A query takes :meth:`IndexHolder.snapshot` once and uses that object for its
whole life. A writer (``POST``/``DELETE /api/tracks``) runs under one lock on
a separate writer handle; after it commits, a *fresh* reader is opened and
swapped in with a single reference assignment (atomic in CPython). Queries
already running keep the old snapshot, new queries see the new one — no query
ever sees a half-applied write.

With several worker processes, or a ``songmine index`` run beside the
server, other writers commit too: :meth:`IndexHolder.refresh` (called
periodically) swaps in a fresh reader when the catalogue changed. It also
checks again the files written in place since they were checked; when one is
damaged, every query gets that error (a JSON 500) instead of answers from the
damaged files, until a refresh finds the index whole again (repaired).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import IndexCorruptError

__all__ = ["IndexHolder"]

log = logging.getLogger(__name__)


class IndexHolder:
    """Owns the reader snapshot and the writer handle of one index.

    Parameters
    ----------
    opener : callable
        ``opener()`` → a new index object (``songmine.fingerprint.index.Index(path)``).
        The object must offer ``refresh() -> bool`` ("did the index change?").

    Notes
    -----
    The writer handle is refreshed in place (under the lock) but never handed
    to a query; readers are always fresh objects that nobody mutates. So a
    query never sees a snapshot change under its feet, whatever the index
    implementation does inside ``refresh``.
    """

    def __init__(self, opener: Callable[[], Any]):
        self._opener = opener
        self._reader = opener()
        self._writer: Any | None = None
        self._write_lock = threading.Lock()
        self.generation = 0  # bumped at every swap (observability, tests)
        self._damage: IndexCorruptError | None = None  # what the last refresh found damaged

    def snapshot(self) -> Any:
        """The current reader; keep using this one object for a whole query.

        Raises
        ------
        IndexCorruptError
            The last refresh found the index damaged.
        """
        damage = self._damage
        if damage is not None:  # a fresh exception each time: a shared one would collect every traceback
            raise IndexCorruptError(str(damage), part=damage.part)
        return self._reader

    @contextmanager
    def writing(self) -> Iterator[Any]:
        """Exclusive writer handle; a fresh reader is swapped in after the block, even if it failed
        half-way (whatever was committed becomes visible, all at once)."""
        with self._write_lock:
            writer = self._writer_handle()
            try:
                yield writer
            finally:
                self._swap()

    def refresh(self) -> bool:
        """Swap in a fresh reader if another process changed the index; True if swapped.

        Raises
        ------
        IndexCorruptError
            The index is damaged (a file written in place since it was checked, or a part a new
            snapshot would read): :meth:`snapshot` raises it too until a refresh succeeds.
        """
        with self._write_lock:
            try:
                if self._writer is None:
                    self._writer = self._opener()  # opened now: compare against the reader below
                    changed = _generation(self._writer) != _generation(self._reader)
                else:
                    changed = bool(self._writer.refresh())
                if changed or self._damage is not None:  # after damage: a reader opened and checked afresh
                    self._swap()
                    changed = True
            except IndexCorruptError as exc:
                self._damage = exc
                raise
            self._damage = None
            return changed

    def _writer_handle(self) -> Any:
        if self._writer is None:
            self._writer = self._opener()
        else:
            self._writer.refresh()
        return self._writer

    def _swap(self) -> None:
        # old readers are not closed: queries may still hold them; they go with their last reference
        self._reader = self._opener()
        self.generation += 1

    def close(self) -> None:
        with self._write_lock:
            for obj in (self._writer, self._reader):
                _close(obj)
            self._writer = None


def _close(index: Any) -> None:
    try:
        index.close()
    except Exception:  # closing is best effort  # pragma: no cover
        log.debug("closing an index failed", exc_info=True)


def _generation(index: Any) -> int:
    """The committed catalogue state an index object reflects."""
    return index.generation
