"""Packed postings (segment format 5): a posting's track, time and low hash bits in one 4-byte record.

A posting of a version-4 segment took 12 bytes (hash, track, time: three
uint32). Most of those bits say nothing: a segment of 40 tracks needs 6 bits
of track id, a 10-minute track 15 bits of time, and the hashes are sorted, so
consecutive ones share their high bits. Version 5 stores, per posting, one
record of :attr:`Layout.record` bytes (4, or 8 for very big segments)::

    record = (slot position of its track + time) << h  |  hash & (2**h - 1)

* **Slots.** Each track of the segment gets a slot of ``2**b`` frames, ``b``
  its time bits (its last landmark's frame ``< 2**b``); a posting's position
  is its track's slot start plus its time. With one *slot class* (every slot
  as big as the longest track's), position = local track index << b | time:
  two bit operations and one table gather decode it. When that does not fit
  in 32 bits (a segment of ~3,000 hours or more), the slots take their own
  tracks' sizes, grouped by size (classes, biggest first), and a few
  comparisons find the class; a 10,000-hour segment still fits 4 bytes. Past
  32 bits of positions (~13,000 hours in one segment) records take 8 bytes.
* **Hash bits.** The record's remaining ``h`` bits hold the hash's low bits;
  the high bits are those of the window the posting is in (a window: at most
  :data:`~songmine.fingerprint.index.schema.WINDOW_CAP` (31) postings whose
  hashes share their high bits), whose key (its first hash) and start the
  window directory keeps — 8 bytes per window, ~0.3-0.5 byte per posting.

One aligned uint32 gather per hit and a few vectorised bit operations are no
more work than the two gathers of version 4 (``docs/index.md``, "Segment file
format"). Decoding gives back exactly the postings that were encoded, in the
same order, so lookups answer bit for bit as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Layout", "plan_layout", "layout_problem", "track_time_bits", "cut_windows", "window_of"]

#: Positions up to this many bits fit a 4-byte record (leaving 32 - bits for the hash).
_SMALL = 32


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bits needed by each non-negative integer (0 for 0)."""
    x = np.asarray(x, dtype=np.uint64)
    out = np.zeros(x.shape, dtype=np.uint8)
    for shift in (32, 16, 8, 4, 2, 1):  # binary search on the highest set bit, vectorised
        big = (x >> np.uint64(shift)) > 0
        out[big] += shift
        x = np.where(big, x >> np.uint64(shift), x)
    out[x > 0] += 1
    return out


def track_time_bits(tracks: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct tracks (ascending) and each one's time bits: its largest time is ``< 2**bits``."""
    ids, inv = np.unique(np.asarray(tracks, dtype=np.uint32), return_inverse=True)
    last = np.zeros(ids.shape[0], dtype=np.uint32)
    np.maximum.at(last, inv, np.asarray(times, dtype=np.uint32))
    return ids, _bit_length(last)


@dataclass(frozen=True, eq=False)
class Layout:
    """How a segment's records are laid out: its tracks in slot order, their slot classes, the record width.

    ``classes`` rows are ``(slot bits, first track, first position)``, slot
    bits descending; a class's tracks are ``ids[first track:]`` up to the
    next class's, each slot ``2**bits`` positions from the class's first.
    """

    ids: np.ndarray  # uint32 [T], global track ids in slot order
    time_bits: np.ndarray  # uint8 [T], each track's own
    classes: np.ndarray  # uint64 [C, 3]
    record: int  # bytes per record: 4 or 8
    hash_bits: int  # low hash bits kept in a record

    def __post_init__(self) -> None:
        dt = np.uint32 if self.record == 4 else np.uint64
        cls = [tuple(int(v) for v in row) for row in self.classes]
        hb = self.hash_bits
        contiguous = (
            len(cls) == 1 and self.ids.shape[0] > 0 and int(self.ids[-1]) - int(self.ids[0]) == self.ids.shape[0] - 1
        )
        # the decoder's constants, in the record's dtype (a numpy scalar shift keeps the array's dtype)
        object.__setattr__(self, "_dt", dt)
        object.__setattr__(self, "_hb", dt(hb))
        object.__setattr__(self, "_low", dt((1 << hb) - 1))
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "_first_id", dt(int(self.ids[0])) if contiguous else None)
        if len(cls) == 1:
            object.__setattr__(self, "_b", dt(cls[0][0]))
            object.__setattr__(self, "_mask", dt((1 << cls[0][0]) - 1))
        else:
            object.__setattr__(self, "_bits", np.array([c[0] for c in cls], dtype=dt))
            object.__setattr__(self, "_first", np.array([c[1] for c in cls], dtype=dt))
            object.__setattr__(self, "_pos", np.array([c[2] for c in cls], dtype=dt))

    @property
    def dtype(self) -> type:
        """The records' dtype (uint32 or uint64)."""
        return self._dt

    @property
    def n_positions(self) -> int:
        """Slot positions in use (the end of the last class)."""
        if not self._cls:
            return 0
        bits, first, pos = self._cls[-1]
        return pos + ((self.ids.shape[0] - first) << bits)

    def _slots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Sorted track ids, each one's slot start and time bits, and where each id is among them (None when
        the ids are too sparse for a table): built once, for encoding."""
        if not hasattr(self, "_sorted"):
            t = self.ids.shape[0]
            order = np.argsort(self.ids, kind="stable")
            local = np.arange(t, dtype=np.uint64)
            start = np.zeros(t, dtype=np.uint64)
            for (bits, first, pos), end in zip(self._cls, [c[1] for c in self._cls[1:]] + [t]):  # loop over classes
                start[first:end] = np.uint64(pos) + ((local[first:end] - np.uint64(first)) << np.uint64(bits))
            ids = np.asarray(self.ids)[order]
            # a direct table by track id when the ids are not too sparse (a gather instead of a binary search)
            where = None
            if t and int(ids[-1]) < max(1 << 20, 8 * t):
                where = np.full(int(ids[-1]) + 1, t, dtype=np.int64)
                where[ids] = np.arange(t)
            object.__setattr__(
                self, "_sorted", (ids, start[order], np.asarray(self.time_bits)[order].astype(np.uint64), where)
            )
        return self._sorted

    def encode(self, hashes: np.ndarray, tracks: np.ndarray, times: np.ndarray) -> np.ndarray:
        """The records of postings (any order; every track must be in the layout, every time in its slot)."""
        tracks = np.asarray(tracks, dtype=np.uint32)
        times = np.asarray(times, dtype=np.uint64)
        ids, start, bits, where = self._slots()
        if tracks.shape[0] == 0:
            return np.zeros(0, dtype=self._dt)
        if ids.shape[0] == 0:
            raise ValueError("a posting names a track the layout does not hold")
        if where is not None:
            k = where[np.minimum(tracks, where.shape[0] - 1)]
            bad = k == ids.shape[0]
            k = np.minimum(k, ids.shape[0] - 1)
        else:
            k = np.minimum(np.searchsorted(ids, tracks), ids.shape[0] - 1)
            bad = ids[k] != tracks
        if np.any(bad | (ids[k] != tracks)):
            raise ValueError("a posting names a track the layout does not hold")
        if np.any(times >> bits[k]):
            raise ValueError("a posting's time is past its track's time bits")
        low = np.asarray(hashes, dtype=np.uint64) & np.uint64((1 << self.hash_bits) - 1)
        return (((start[k] + times) << np.uint64(self.hash_bits)) | low).astype(self._dt)

    def decode(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global track ids and times (uint32) of records: the lookup's hot path."""
        x = records >> self._hb
        if len(self._cls) == 1:
            local = x >> self._b
            times = x & self._mask
        else:
            c = np.zeros(x.shape, dtype=np.intp)
            for p in self._pos[1:]:  # a few classes: one comparison each
                c += x >= p
            rel = x - self._pos[c]
            local = self._first[c] + (rel >> self._bits[c])
            times = rel & ((self._dt(1) << self._bits[c]) - self._dt(1))
        if self._first_id is not None:
            tracks = local + self._first_id
        else:
            tracks = self.ids[local]
        return tracks.astype(np.uint32, copy=False), times.astype(np.uint32, copy=False)

    def low_hashes(self, records: np.ndarray) -> np.ndarray:
        """The low hash bits of records."""
        return records & self._low


def plan_layout(ids: np.ndarray, time_bits: np.ndarray) -> Layout:
    """The layout of a segment holding these tracks (global ids, ascending) with these time bits.

    One slot class when positions fit 32 bits, else one class per slot size
    when they fit, else one class in 8-byte records. The hash keeps the rest
    of the record (at most 31 bits of a 4-byte one, 32 of an 8-byte one).
    """
    ids = np.asarray(ids, dtype=np.uint32)
    time_bits = np.asarray(time_bits, dtype=np.uint8)
    t = ids.shape[0]
    if t == 0:
        return Layout(ids, time_bits, np.zeros((0, 3), dtype=np.uint64), 4, 31)
    top = int(time_bits.max())
    single = (t << top) - 1
    if single.bit_length() <= _SMALL and top < 32:
        classes, record, end = [(top, 0, 0)], 4, single
    else:
        order = np.lexsort((ids, -time_bits.astype(np.int64)))  # biggest slots first, then by id
        ids, time_bits = ids[order], time_bits[order]
        sizes, count = np.unique(-time_bits.astype(np.int64), return_counts=True)
        bits, count = (-sizes).tolist(), count.tolist()
        total = sum(c << b for b, c in zip(bits, count))
        while len(bits) > 1:  # fewer classes decode faster: merge the cheapest neighbours while positions fit
            cost = [count[k] * ((1 << bits[k - 1]) - (1 << bits[k])) for k in range(1, len(bits))]
            k = int(np.argmin(cost)) + 1
            if (total + cost[k - 1] - 1).bit_length() > _SMALL:
                break
            total += cost[k - 1]
            count[k - 1] += count.pop(k)
            bits.pop(k)
        classes, pos, f = [], 0, 0
        for b, c in zip(bits, count):
            classes.append((b, f, pos))
            pos, f = pos + (c << b), f + c
        end, record = pos - 1, 4
        if end.bit_length() > _SMALL or top >= 32:  # 8-byte records, one class, tracks by id again
            back = np.argsort(ids, kind="stable")
            ids, time_bits = ids[back], time_bits[back]
            classes, record, end = [(top, 0, 0)], 8, single
    hash_bits = min(8 * record - end.bit_length(), 31 if record == 4 else 32)
    return Layout(ids, time_bits, np.asarray(classes, dtype=np.uint64).reshape(-1, 3), record, hash_bits)


def layout_problem(
    ids: np.ndarray, time_bits: np.ndarray, classes: np.ndarray, record: int, hash_bits: int
) -> str | None:
    """What makes a stored layout impossible (None when it is sound): decoding it could not index its tables.

    Classes must start at track 0 and at position 0, follow each other
    without gaps, hold slots no smaller than their tracks' times and fit the
    record with the hash bits.
    """
    t, c = ids.shape[0], classes.shape[0]
    if t == 0:
        return None if c == 0 else "slot classes without tracks"
    bits, first, pos = (classes[:, k].astype(np.int64) for k in range(3))
    if c == 0 or first[0] != 0 or pos[0] != 0 or np.any(np.diff(first) <= 0) or first[-1] >= t:
        return "its slot classes do not cover its tracks"
    if np.any(bits > (31 if record == 4 else 32)) or np.any(np.diff(bits) >= 0):
        return "its slot classes' sizes are out of order"
    size = np.diff(np.append(first, t)) << bits
    if np.any(pos[1:] != np.cumsum(size)[:-1]):
        return "its slot classes' positions do not follow each other"
    if np.any(np.asarray(time_bits, dtype=np.int64) > np.repeat(bits, np.diff(np.append(first, t)))):
        return "a track's times do not fit its slot"
    end = int(pos[-1]) + int(size[-1]) - 1
    if end.bit_length() + hash_bits > 8 * record:
        return "its positions and hash bits do not fit its records"
    return None


def cut_windows(hashes: np.ndarray, hash_bits: int, cap: int) -> np.ndarray:
    """Where each window of sorted ``hashes`` starts (int64, ascending, 0 first).

    A window is a maximal run of hashes with equal bits above ``hash_bits``,
    cut every ``cap`` postings; with ``hash_bits = 0`` it is a run of one hash,
    uncut (no search happens inside it).
    """
    h = np.asarray(hashes, dtype=np.int64)
    n = h.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    high = h >> hash_bits
    groups = np.concatenate([[0], np.flatnonzero(high[1:] != high[:-1]) + 1])
    if hash_bits == 0:
        return groups
    length = np.diff(np.append(groups, n))
    count = -(-length // cap)
    first = np.cumsum(count) - count
    return np.repeat(groups, count) + (np.arange(int(count.sum())) - np.repeat(first, count)) * cap


def window_of(starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The window holding each posting position (``starts``: the windows' first positions, then ``n``)."""
    # in the starts' own dtype: numpy would otherwise convert the whole directory at every call
    return np.searchsorted(starts, np.asarray(positions).astype(starts.dtype), side="right") - 1
