"""A small in-memory index with the same search interface as the on-disk one (tests, tuning, experiments)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..audio import info, load
from ..errors import SongmineError
from ..library import iter_audio_files
from .landmarks import FingerprintConfig, fingerprint
from .postings import Postings
from .profiles import Profile, profile, supported

__all__ = ["TrackInfo", "MemoryIndex"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """Catalogue entry of an indexed track (what ``index.track(id)`` returns)."""

    track_id: int
    path: str
    title: str | None = None
    artist: str | None = None
    album: str | None = None
    duration_s: float = 0.0


class MemoryIndex:
    """A small in-memory index (tests, tuning, quick experiments).

    Parameters
    ----------
    config : FingerprintConfig

    Examples
    --------
    >>> idx = MemoryIndex(FingerprintConfig())
    >>> idx.n_tracks, idx.n_postings
    (0, 0)
    """

    def __init__(self, config: FingerprintConfig = FingerprintConfig()):
        self.config = config
        self._tracks: list[TrackInfo] = []
        self._parts: list[Postings] = []
        self._postings: Postings | None = Postings.empty()
        self._profiles: dict[int, Profile] = {}
        self.skipped: list[tuple[str, str]] = []  # (path, reason) of files that could not be added

    @classmethod
    def from_files(
        cls,
        paths: Iterable[str | os.PathLike[str]],
        config: FingerprintConfig = FingerprintConfig(),
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> MemoryIndex:
        """Decode and fingerprint ``paths`` (files or folders); unreadable files go to ``skipped``."""
        files = list(iter_audio_files(paths))
        idx = cls(config)
        for i, p in enumerate(files):  # loop over files
            try:
                y = load(p, sr=config.sr)
                tags = info(p).tags
            except SongmineError as exc:
                idx.skipped.append((str(p), str(exc)))
                log.warning("skipped %s: %s", p, exc)
                continue
            idx.add(y, path=str(p), title=tags.get("title"), artist=tags.get("artist"), album=tags.get("album"))
            if progress is not None:
                progress(i + 1, len(files))
        return idx

    def add(
        self, y: np.ndarray, *, path: str, title: str | None = None, artist: str | None = None, album: str | None = None
    ) -> int:
        """Fingerprint ``y`` (mono float32 at ``config.sr``) and add it; returns its track id."""
        tid = len(self._tracks)
        h, t = fingerprint(y, self.config)
        if supported(self.config.sr):
            self._profiles[tid] = profile(y, self.config.sr)
        self._parts.append(Postings.from_unsorted(h, np.full(h.shape, tid, np.uint32), t))
        self._postings = None
        self._tracks.append(TrackInfo(tid, path, title, artist, album, float(len(y) / self.config.sr)))
        return tid

    @property
    def postings(self) -> Postings:
        if self._postings is None:
            self._postings = Postings.concat(self._parts)
            self._parts = [self._postings]
        return self._postings

    def lookup(self, hashes: np.ndarray, max_per_hash: int | None = None, max_hits: int | None = None):
        return self.postings.lookup(hashes, max_per_hash=max_per_hash, max_hits=max_hits)

    def track(self, track_id: int) -> TrackInfo:
        return self._tracks[int(track_id)]

    def profile(self, track_id: int) -> Profile | None:
        """The track's :class:`~songmine.fingerprint.profiles.Profile` (None when its rate cannot have one)."""
        return self._profiles.get(int(track_id))

    @property
    def n_tracks(self) -> int:
        return len(self._tracks)

    @property
    def n_postings(self) -> int:
        return len(self.postings)

    def close(self) -> None:
        """Nothing to release (the on-disk :class:`~songmine.fingerprint.index.Index` has files to close)."""

    @property
    def duration_s(self) -> float:
        return float(sum(t.duration_s for t in self._tracks))
