"""Posting lists as three parallel arrays sorted by hash: the core of every index.

A posting says "hash ``h`` occurs in track ``track`` at frame ``t``". Kept as
``hashes:uint32`` (sorted), ``tracks:uint32``, ``times:uint32`` — the exact
layout of an on-disk segment, so a memory-mapped segment and an in-memory
table are the same object and share one vectorised lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Postings"]


@dataclass(frozen=True, slots=True)
class Postings:
    """Parallel arrays sorted by ``hashes`` (ties in any order).

    Build with :meth:`from_unsorted`; the constructor trusts its input.

    Examples
    --------
    >>> p = Postings.from_unsorted(np.array([5, 1, 5], np.uint32),
    ...                            np.array([0, 0, 1], np.uint32),
    ...                            np.array([10, 20, 30], np.uint32))
    >>> qi, tr, t = p.lookup(np.array([5, 7], np.uint32))
    >>> qi.tolist(), tr.tolist(), t.tolist()
    ([0, 0], [0, 1], [10, 30])
    """

    hashes: np.ndarray
    tracks: np.ndarray
    times: np.ndarray

    @classmethod
    def from_unsorted(cls, hashes: np.ndarray, tracks: np.ndarray, times: np.ndarray) -> "Postings":
        """Sort by hash (stable, so equal hashes keep their insertion order)."""
        h = np.asarray(hashes, dtype=np.uint32)
        tr = np.asarray(tracks, dtype=np.uint32)
        t = np.asarray(times, dtype=np.uint32)
        if not (h.shape == tr.shape == t.shape and h.ndim == 1):
            raise ValueError(f"postings arrays must be 1-D of one length, got {h.shape}, {tr.shape}, {t.shape}")
        order = np.argsort(h, kind="stable")
        return cls(h[order], tr[order], t[order])

    @classmethod
    def empty(cls) -> "Postings":
        z = np.zeros(0, dtype=np.uint32)
        return cls(z, z, z)

    @classmethod
    def concat(cls, parts: Sequence["Postings"]) -> "Postings":
        """Merge several sorted tables into one sorted table."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls.from_unsorted(
            np.concatenate([p.hashes for p in parts]),
            np.concatenate([p.tracks for p in parts]),
            np.concatenate([p.times for p in parts]),
        )

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    def lookup(self, query: np.ndarray, *, max_per_hash: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All postings whose hash is in ``query``.

        Parameters
        ----------
        query : np.ndarray [shape=(m,), dtype=uint32]
            Query hashes, in any order, repeats allowed.
        max_per_hash : int or None
            Skip query hashes with more postings than this (too common to
            discriminate; bounds the work of a lookup).

        Returns
        -------
        query_pos : np.ndarray [shape=(k,), dtype=int64]
            Index into ``query`` of each hit.
        tracks, times : np.ndarray [shape=(k,), dtype=uint32]
            The matching postings.
        """
        q = np.asarray(query, dtype=np.uint32)
        lo = np.searchsorted(self.hashes, q, side="left")
        hi = np.searchsorted(self.hashes, q, side="right")
        counts = hi - lo
        if max_per_hash is not None:
            counts = np.where(counts > max_per_hash, 0, counts)
        total = int(counts.sum())
        if total == 0:
            z = np.zeros(0, dtype=np.uint32)
            return np.zeros(0, dtype=np.int64), z, z
        query_pos = np.repeat(np.arange(q.shape[0], dtype=np.int64), counts)
        # position of each hit inside its run: global running index minus the run's start
        starts = np.cumsum(counts) - counts
        within = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
        idx = np.repeat(lo, counts) + within
        return query_pos, self.tracks[idx], self.times[idx]

    def without_tracks(self, track_ids: np.ndarray) -> "Postings":
        """A copy with every posting of ``track_ids`` removed (order kept)."""
        keep = ~np.isin(self.tracks, np.asarray(track_ids, dtype=np.uint32))
        return Postings(self.hashes[keep], self.tracks[keep], self.times[keep])
