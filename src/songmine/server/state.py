"""The served index: readers get an immutable snapshot, writers are serialised.

A query takes :meth:`IndexHolder.current` once and uses that object for its
whole life. A writer (``POST``/``DELETE /api/tracks``) runs under one lock on
a separate writer handle; after it commits, a *fresh* reader is opened and
swapped in with a single reference assignment (atomic in CPython). Queries
already running keep the old snapshot, new queries see the new one — no query
ever sees a half-applied write.

Other processes commit too: the other workers of ``songmine serve``, a
``songmine index`` run beside it. :meth:`IndexHolder.current` reads the
catalogue's commit counter (one SQLite read, a few µs) before handing out the
reader, and opens a fresh reader first when it moved; so a request that
starts after another worker answered an add sees the added track.
:meth:`IndexHolder.refresh` (called periodically, in every worker) does the
same for a worker that gets no requests, so that it lets go of segment files a
compaction replaced. It also checks again the files written in place since
they were checked; when one is damaged, every query gets that error (a JSON
500) instead of answers from the damaged files, until a refresh finds the
index whole again (repaired).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import IndexCorruptError

__all__ = ["IndexHolder"]

log = logging.getLogger(__name__)

#: After a failed attempt to open a fresh reader, the old one serves this long before the next attempt.
RETRY_S = 1.0


class IndexHolder:
    """Owns the reader snapshot and the writer handle of one index.

    Parameters
    ----------
    opener : callable
        ``opener()`` → a new index object (``songmine.fingerprint.index.Index(path)``).
        The object offers ``generation`` (the commit its snapshot reflects),
        ``committed_generation()`` (the latest commit) and ``refresh()``.

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
        self._swap_lock = threading.Lock()  # one fresh reader opened at a time
        self._retry_at = 0.0
        self._tracks: tuple[Any, int, np.ndarray] | None = None  # (reader, its generation, its live track ids)
        self.generation = 0  # bumped at every swap (observability, tests)
        self._damage: IndexCorruptError | None = None  # what the last refresh found damaged

    def snapshot(self) -> Any:
        """The current reader, as it is (no commit check); keep using this one object for a whole query.

        Raises
        ------
        IndexCorruptError
            The last refresh found the index damaged.
        """
        self._raise_damage()
        return self._reader

    def _raise_damage(self) -> None:
        damage = self._damage
        if damage is not None:  # a fresh exception each time: a shared one would collect every traceback
            raise IndexCorruptError(str(damage), part=damage.part)

    def current(self) -> Any:
        """The reader a new request should use: a fresh one first if any process committed since.

        When the check or the fresh reader fails, the old snapshot keeps
        serving (and the next attempt waits :data:`RETRY_S`); except for damage.

        Raises
        ------
        IndexCorruptError
            A refresh found the index damaged, or a part the fresh reader would read is
            (noted as by :meth:`refresh`, until a refresh finds the index whole again).
        """
        self._raise_damage()
        reader = self._reader
        try:
            committed = reader.committed_generation()
        except Exception:
            if time.monotonic() >= self._retry_at:
                self._retry_at = time.monotonic() + RETRY_S
                log.warning("could not read the index's commit counter; serving the current snapshot", exc_info=True)
            return reader
        if committed <= reader.generation:
            return reader
        with self._swap_lock:
            if self._reader.generation >= committed or time.monotonic() < self._retry_at:
                return self._reader  # another request opened it meanwhile, or it just failed
            try:
                self._swap_locked()
            except IndexCorruptError as exc:
                self._damage = exc
                raise
            except Exception:
                self._retry_at = time.monotonic() + RETRY_S
                log.warning(
                    "index changed on disk but a fresh reader could not be opened; still serving the previous snapshot",
                    exc_info=True,
                )
            return self._reader

    def live_track_ids(self, reader: Any) -> np.ndarray:
        """``reader.track_ids()`` (live tracks by id), computed once per snapshot rather than per request.

        Ids, not records: a page's records are made when it is asked for (a list of every record
        would hold ~0.4 KB a track in each worker, 68 MB at 160,000 tracks).
        """
        cached = self._tracks
        if cached is not None and cached[0] is reader and cached[1] == reader.generation:
            return cached[2]
        ids = reader.track_ids()
        self._tracks = (reader, reader.generation, ids)
        return ids

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
        """Check the index again and swap in a fresh reader if any process committed since; True if swapped.

        Raises
        ------
        IndexCorruptError
            The index is damaged (a file written in place since it was checked, or a part a new
            snapshot would read): :meth:`snapshot` and :meth:`current` raise it too until a refresh
            succeeds.
        """
        with self._write_lock:
            before = self._reader
            try:
                if self._writer is None:
                    self._writer = self._opener()  # opened now: compared against the reader below
                else:
                    self._writer.refresh()  # nothing committed: the files written in place are checked again
                if self._damage is not None or _generation(self._writer) != _generation(self._reader):
                    self._swap()  # (after damage: a reader opened and checked afresh)
            except IndexCorruptError as exc:
                self._damage = exc
                raise
            self._damage = None
            return self._reader is not before

    def _writer_handle(self) -> Any:
        if self._writer is None:
            self._writer = self._opener()
        else:
            self._writer.refresh()
        return self._writer

    def _swap(self) -> None:
        with self._swap_lock:
            self._swap_locked()

    def _swap_locked(self) -> None:
        # old readers are not closed: queries may still hold them; they go with their last reference
        fresh = self._opener()
        if fresh.generation < self._reader.generation:  # pragma: no cover - a later open sees no less
            _close(fresh)
            return
        self._reader = fresh
        self._tracks = None  # (it held the old reader, and with it segment files a merge may have replaced)
        self.generation += 1

    def close(self) -> None:
        with self._write_lock, self._swap_lock:
            for obj in (self._writer, self._reader):
                _close(obj)
            self._writer = None
            self._tracks = None


def _close(index: Any) -> None:
    try:
        index.close()
    except Exception:  # closing is best effort  # pragma: no cover
        log.debug("closing an index failed", exc_info=True)


def _generation(index: Any) -> int:
    """The committed catalogue state an index object reflects."""
    return index.generation
