"""The content an indexing run may skip: the live tracks' SHA-256s, sorted as 32-byte digests.

Workers hash each file before decoding it and skip content the index already
has, so every worker holds the set. A ``frozenset`` of hex strings costs ~170 B
a track in the parent and, once the garbage collector has walked it, again in
each forked worker; sorted digests cost 40 B a track, are found by binary
search and are never written to after the fork.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

import numpy as np

__all__ = ["ContentSet"]


class ContentSet(Container[str]):
    """A set of content hashes (lowercase hex SHA-256; other strings are kept as they are).

    Parameters
    ----------
    digests : iterable of ndarray [shape=(k, 32), dtype=uint8]
        The digests, in pieces, in any order (copied into one array, sorted there).
    others : iterable of str
        Hashes that are not lowercase hex SHA-256s (none in a catalogue songmine wrote).
    count : int or None
        How many digests the pieces hold together, when ``digests`` is a generator: each piece is
        then copied as it comes, and the pieces are never all held at once.

    Examples
    --------
    >>> import hashlib
    >>> a, b = (hashlib.sha256(x).hexdigest() for x in (b"a", b"b"))
    >>> s = ContentSet.of([a, "not a digest"])
    >>> a in s, b in s, "not a digest" in s, a.upper() in s, len(s)
    (True, False, True, False, 2)
    """

    __slots__ = ("_keys", "_digests", "_others")

    def __init__(self, digests: Iterable[np.ndarray] = (), others: Iterable[str] = (), *, count: int | None = None):
        if count is None:
            digests = [np.asarray(d, dtype=np.uint8).reshape(-1, 32) for d in digests]
            count = sum(d.shape[0] for d in digests)
        d = np.empty((count, 32), dtype=np.uint8)
        at = 0
        for piece in digests:  # loop over pieces
            piece = np.asarray(piece, dtype=np.uint8).reshape(-1, 32)
            d[at : at + piece.shape[0]] = piece
            at += piece.shape[0]
        if at != count:
            raise ValueError(f"count={count} but the pieces hold {at} digests")
        d.view("V32").sort(axis=0)  # byte by byte, in place: no second copy
        self._digests = d
        self._keys = np.ascontiguousarray(d[:, :8]).view(">u8").ravel().astype(np.uint64)  # first 8 bytes
        self._others = frozenset(others)

    @classmethod
    def of(cls, hashes: Iterable[str]) -> ContentSet:
        """The set of ``hashes`` (strings)."""
        blobs: list[bytes] = []
        others: list[str] = []
        for h in hashes:  # loop over hashes
            b = _digest(h)
            if b is None:
                others.append(h)
            else:
                blobs.append(b)
        return cls([np.frombuffer(b"".join(blobs), dtype=np.uint8)], others)

    def __contains__(self, h: object) -> bool:
        if not isinstance(h, str):
            return False
        b = _digest(h)
        if b is None:
            return h in self._others
        key = int.from_bytes(b[:8], "big")
        lo = int(np.searchsorted(self._keys, key, side="left"))
        hi = int(np.searchsorted(self._keys, key, side="right"))
        return any(self._digests[i].tobytes() == b for i in range(lo, hi))

    def __len__(self) -> int:
        return int(self._keys.shape[0]) + len(self._others)

    @property
    def nbytes(self) -> int:
        """Bytes of the digests and their sort keys (hashes that are not digests not counted)."""
        return int(self._keys.nbytes + self._digests.nbytes)


def _digest(h: str) -> bytes | None:
    """The 32 bytes ``h`` spells when it is 64 characters of lowercase hex, else None."""
    if len(h) != 64:
        return None
    try:
        b = bytes.fromhex(h)
    except ValueError:
        return None
    return b if b.hex() == h else None  # (fromhex also takes capitals)
