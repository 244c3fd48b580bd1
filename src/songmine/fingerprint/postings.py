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

__all__ = ["Postings", "rarest_within"]


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
    def from_unsorted(cls, hashes: np.ndarray, tracks: np.ndarray, times: np.ndarray) -> Postings:
        """Sort by hash (stable, so equal hashes keep their insertion order)."""
        h = np.asarray(hashes, dtype=np.uint32)
        tr = np.asarray(tracks, dtype=np.uint32)
        t = np.asarray(times, dtype=np.uint32)
        if not (h.shape == tr.shape == t.shape and h.ndim == 1):
            raise ValueError(f"postings arrays must be 1-D of one length, got {h.shape}, {tr.shape}, {t.shape}")
        order = np.argsort(h, kind="stable")
        return cls(h[order], tr[order], t[order])

    @classmethod
    def empty(cls) -> Postings:
        z = np.zeros(0, dtype=np.uint32)
        return cls(z, z, z)

    @classmethod
    def concat(cls, parts: Sequence[Postings]) -> Postings:
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

    def lookup(
        self, query: np.ndarray, *, max_per_hash: int | None = None, max_hits: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All postings whose hash is in ``query``.

        Parameters
        ----------
        query : np.ndarray [shape=(m,), dtype=uint32]
            Query hashes, in any order, repeats allowed.
        max_per_hash : int or None
            Skip query hashes with more postings than this (too common to
            discriminate; bounds the work of a lookup).
        max_hits : int or None
            Hit budget: the query's distinct hashes are taken rarest first
            (fewest postings) while their hits fit in ``max_hits``; the
            commoner rest is skipped (:func:`rarest_within`).

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
        if max_hits is not None and int(counts.sum()) > max_hits:
            uq, first, inv = np.unique(q, return_index=True, return_inverse=True)
            keep = rarest_within(counts[first], np.bincount(inv, minlength=uq.shape[0]), max_hits)
            counts = np.where(keep[inv], counts, 0)
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

    def without_tracks(self, track_ids: np.ndarray) -> Postings:
        """A copy with every posting of ``track_ids`` removed (order kept)."""
        keep = ~np.isin(self.tracks, np.asarray(track_ids, dtype=np.uint32))
        return Postings(self.hashes[keep], self.tracks[keep], self.times[keep])


def rarest_within(counts: np.ndarray, multiplicity: np.ndarray, max_hits: int) -> np.ndarray:
    """Which distinct query hashes to look up under a hit budget: the rarest first.

    A hash with many postings gives the right track one vote and every other
    track holding it a chance vote; a rare one gives the same one vote with
    few chance votes. So under a budget the rarest hashes go first, and the
    commonest are skipped. On real music at 1,000 hours the rarest half of a
    query's hashes brings about 5 % of its hits (``docs/identify.md``).

    Parameters
    ----------
    counts : np.ndarray [shape=(u,), dtype=int]
        Postings of each distinct query hash.
    multiplicity : np.ndarray [shape=(u,), dtype=int]
        How often each distinct hash occurs in the query (each occurrence gets all its postings).
    max_hits : int
        Budget of hits (sum of ``counts * multiplicity`` over the kept hashes).

    Returns
    -------
    keep : np.ndarray [shape=(u,), dtype=bool]
        True for the hashes kept: the longest prefix of the hashes ordered
        by ``counts`` (ties by position) whose hits fit in the budget.

    Examples
    --------
    >>> rarest_within(np.array([50, 1, 10, 2]), np.array([1, 1, 2, 1]), 25).tolist()
    [False, True, True, True]
    """
    counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(counts, kind="stable")
    cost = np.cumsum(counts[order] * np.asarray(multiplicity, dtype=np.int64)[order])
    keep = np.zeros(counts.shape[0], dtype=bool)
    keep[order[: int(np.searchsorted(cost, max_hits, side="right"))]] = True
    return keep
