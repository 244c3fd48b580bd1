"""A MinHash sketch index over short windows of landmark hashes — ``--method sketch``.

Per track: landmark hashes (:func:`songmine.fingerprint.landmarks.fingerprint`, index
density, at two STFT phases united as in :mod:`songmine.minhash.dedupe`); the track
is cut into overlapping windows (``window_s`` long every ``hop_s``) and each
window's *set of distinct hashes* (time-free) gets a MinHash signature. LSH
with one table per band over all windows. The index is fixed-size per hour
of audio: ``n_perm`` 32-bit values per window plus the band keys — no
postings.

A query clip is cut into windows of the same length every ``query_hop_s``;
each query window's signature finds candidate index windows through LSH; each
candidate pair's Jaccard is estimated from the signatures (fraction of equal
positions). Pairs vote for ``(track, offset)`` with offset = index window start
− query window start (rounded to ``hop_s``), weighted by their agreements;
the best ``(track, offset)`` is the answer when it beats chance.

``confidence`` (the contract's null model): the query's candidate pairs
outside the best bin are taken as chance pairs, spread uniformly over the
``3 × n_windows`` (track, offset) bins (Poisson with rate ``λ``); a bin
collecting ``k`` pairs (query windows agreeing on one track *and* offset) by
chance is expected ``n_bins · P(Poisson(λ) ≥ k)`` times, and
``confidence = exp(−that)`` = P(no chance bin does as well). A single pair
never reaches 0.5, so one coincidental window never answers. (A first
version used a per-position binomial with the chance agreement between
random windows, p₀ ≈ 0.0004: it said 1.0 for everything and let 11.7 % of
non-member clips through.)

Why windows, not whole tracks: a 3-s clip's set is a tiny part of a track's,
so its Jaccard with the track is ~0.01 (containment, not similarity); with a
2-s window the clip can contain whole windows, and Jaccard is high enough
for LSH.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..atomic import atomic_path
from ..audio import load
from ..errors import DecodeError, IndexFormatError, ParameterError, SongmineError
from ..fingerprint.landmarks import FingerprintConfig, fingerprint
from ..methods import stored_config
from ..records import Match, QueryResult
from .hashing import EMPTY, MinHasher
from .lsh import LSHConfig, LSHIndex, check_threshold

__all__ = ["SketchConfig", "SketchIndex", "window_signatures", "sketch_payload"]

#: Query-side fields of :class:`SketchConfig`: not stored with an index, the query chooses them.
_QUERY_FIELDS = ("query_hop_s", "min_pair_jaccard", "min_confidence")

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_EMPTY32 = np.uint32(0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class SketchConfig:
    """Window and LSH parameters of the sketch index (landmark parameters: FingerprintConfig defaults)."""

    window_s: float = 2.0
    hop_s: float = 1.0
    query_hop_s: float = 0.25
    n_perm: int = 64
    n_bands: int = 32
    n_rows: int = 2
    shifts: tuple[int, ...] = (0, 64)
    min_pair_jaccard: float = 0.1
    min_confidence: float = 0.5
    random_state: int = 0

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.hop_s > 0 and self.query_hop_s > 0):
            raise ParameterError(
                f"window_s={self.window_s}, hop_s={self.hop_s}, query_hop_s={self.query_hop_s} must be > 0"
            )
        for name, v in (("window_s", self.window_s), ("hop_s", self.hop_s)):
            if abs(v / self.query_hop_s - round(v / self.query_hop_s)) > 1e-9:
                raise ParameterError(f"{name}={v} must be a multiple of query_hop_s={self.query_hop_s}")
        if self.window_s < self.hop_s:
            raise ParameterError(f"window_s={self.window_s} must be >= hop_s={self.hop_s} (windows cover the track)")
        LSHConfig(self.n_bands, self.n_rows).check(self.n_perm)
        if not self.shifts or any(s < 0 or s >= 4096 for s in self.shifts):
            raise ParameterError(f"shifts={self.shifts} must be sample offsets in [0, 4096)")
        check_threshold(self.min_pair_jaccard, "min_pair_jaccard")
        if not (0.0 <= self.min_confidence <= 1.0):
            raise ParameterError(f"min_confidence={self.min_confidence} must be in [0, 1]")

    def to_dict(self) -> dict:
        """What an index stores: the index-side fields (the query-side ones are the query's to choose)."""
        d = asdict(self)
        for k in _QUERY_FIELDS:
            d.pop(k)
        d["shifts"] = list(self.shifts)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SketchConfig:
        return cls(**{**d, "shifts": tuple(d["shifts"])})


def _fp_config():
    """The landmark parameters of a stored sketch index: the landmark method's defaults."""
    from ..fingerprint.landmarks import FingerprintConfig

    return FingerprintConfig()


def _signatures(y: np.ndarray, config: SketchConfig, fp_config, hasher: MinHasher) -> np.ndarray:
    """Window signatures of a track, as stored: uint32 (n_windows, n_perm), EMPTY as 0xFFFFFFFF."""
    h, t = _landmarks(np.asarray(y, np.float32), config.shifts, fp_config)
    n_frames = int(np.ceil(y.shape[0] / fp_config.hop_length)) + 1
    sigs = window_signatures(
        h,
        t,
        hasher=hasher,
        block_frames=config.hop_s / fp_config.hop_s,
        blocks_per_window=int(round(config.window_s / config.hop_s)),
        n_frames=n_frames,
    )
    return np.where(sigs == EMPTY, _EMPTY32, sigs).astype(np.uint32)


def sketch_payload(path, config: SketchConfig) -> tuple[float, bytes]:
    """A track's entry in a sketch index: ``(duration_s, its window signatures as bytes)``
    (:attr:`songmine.methods.Method.payload`; little-endian uint32, ``n_perm`` per window).

    Raises
    ------
    DecodeError
        The file cannot be decoded.
    """
    fp = _fp_config()
    y = load(path, sr=fp.sr)
    sigs = _signatures(y, config, fp, MinHasher(config.n_perm, random_state=config.random_state))
    return y.shape[0] / fp.sr, sigs.astype("<u4").tobytes()


def _landmarks(y: np.ndarray, shifts: Sequence[int], fp_config) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and anchor frames at each phase shift, united, sorted by time."""
    parts = [fingerprint(y[int(s) :], fp_config) for s in shifts]  # a couple of phases
    h = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    order = np.argsort(t, kind="stable")
    return h[order], t[order]


def window_signatures(
    hashes: np.ndarray,
    times: np.ndarray,
    *,
    hasher: MinHasher,
    block_frames: float,
    blocks_per_window: int,
    n_frames: int,
) -> np.ndarray:
    """Signatures of windows of ``blocks_per_window`` blocks, one starting at every block.

    Block signatures come from one ``segment_signatures`` call over the
    time-sorted hashes; a window's signature is the element-wise minimum of its
    blocks' (a sliding minimum) — no loop over windows.

    Returns
    -------
    np.ndarray [shape=(n_windows, n_perm), dtype=uint64], ``n_windows >= 1``.
    """
    n_blocks = max(1, int(np.ceil(n_frames / block_frames)))
    block_of = np.minimum((times.astype(np.float64) / block_frames).astype(np.int64), n_blocks - 1)
    starts = np.searchsorted(block_of, np.arange(n_blocks), side="left")
    blocks = hasher.segment_signatures(hashes, starts, len(hashes))  # (n_blocks, n_perm)
    n_win = max(1, n_blocks - blocks_per_window + 1)
    if n_blocks < blocks_per_window:
        return blocks.min(axis=0, keepdims=True)

    return sliding_window_view(blocks, blocks_per_window, axis=0).min(axis=2)[:n_win]


@dataclass
class _Track:
    track_id: int
    path: str
    duration_s: float
    title: str | None = None
    artist: str | None = None
    album: str | None = None


class SketchIndex:
    """Window signatures + per-band LSH tables; :meth:`save` / :meth:`load` as ``.npy`` files."""

    def __init__(self, config: SketchConfig | None = None, fp_config=None) -> None:
        self.config = config or SketchConfig()
        self.fp_config = fp_config or FingerprintConfig()
        self.hasher = MinHasher(self.config.n_perm, random_state=self.config.random_state)
        self._tracks: list[_Track] = []
        self._sigs: list[np.ndarray] = []  # uint32 per track (n_windows, n_perm)
        self._lsh: LSHIndex | None = None
        self._win_track: np.ndarray | None = None
        self._win_start: np.ndarray | None = None
        self._all: np.ndarray | None = None
        self.p0_: float | None = None
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self._tracks)

    @property
    def duration_s(self) -> float:
        """Seconds of audio indexed."""
        return float(sum(t.duration_s for t in self._tracks))

    @property
    def frames_per_s(self) -> float:
        return 1.0 / self.fp_config.hop_s

    @classmethod
    def from_store(cls, index, *, config: SketchConfig | None = None) -> SketchIndex:
        """The sketch index held by the store ``index`` (an open :class:`~songmine.fingerprint.index.Index`).

        ``config`` (if given) must match the stored one but for its query-side
        fields (``query_hop_s``, ``min_pair_jaccard``, ``min_confidence``), which it sets.

        Raises
        ------
        IndexFormatError
            The store holds another method's index, another config, or a payload it cannot read.
        IndexCorruptError
            A payload fails its checksum.
        """
        stored = stored_config(index, "sketch", config, SketchConfig.to_dict)
        obj = cls(stored)
        n_perm = stored.n_perm
        for tid, (version, data) in sorted(index.payloads().items()):  # loop over tracks
            if version != 1 or len(data) % (4 * n_perm):
                raise IndexFormatError(
                    f"{index.path}: the sketch payload of track {tid} is not one this songmine reads"
                )
            t = index.track(tid)
            obj._tracks.append(_Track(tid, t.path, float(t.duration_s), t.title, t.artist, t.album))
            obj._sigs.append(np.frombuffer(data, dtype="<u4").reshape(-1, n_perm).astype(np.uint32))
        return obj

    # -- building ----------------------------------------------------------
    def add_audio(self, track_id: int, path: str, y: np.ndarray, **tags) -> None:
        self._tracks.append(
            _Track(
                int(track_id),
                str(path),
                float(y.shape[0] / self.fp_config.sr),
                **{k: tags.get(k) for k in ("title", "artist", "album")},
            )
        )
        self._sigs.append(_signatures(y, self.config, self.fp_config, self.hasher))
        self._lsh = None

    def add_files(self, paths: Iterable, *, progress: Callable[[int, int], None] | None = None) -> int:
        paths = list(paths)
        added = 0
        for i, p in enumerate(paths):  # loop over files
            try:
                y = load(p, sr=self.fp_config.sr)
                self.add_audio(len(self._tracks), os.fspath(p), y)
                added += 1
            except SongmineError as exc:
                self.skipped.append((os.fspath(p), str(exc)))
                log.warning("sketch: skipped %s: %s", p, exc)
            if progress:
                progress(i + 1, len(paths))
        return added

    def prepare(self) -> None:
        """Build the LSH tables now (otherwise the first query does)."""
        if self._lsh is not None:
            return
        c = self.config
        if not self._sigs:
            raise IndexFormatError("the sketch index is empty: add tracks first")
        allsig = np.concatenate(self._sigs)
        self._all = allsig
        self._win_track = np.concatenate([np.full(s.shape[0], k, np.int32) for k, s in enumerate(self._sigs)])
        self._win_start = np.concatenate([np.arange(s.shape[0], dtype=np.int32) for s in self._sigs])
        self._lsh = LSHIndex(c.n_bands, c.n_rows).fit(_widen(allsig))
        if self.p0_ is None:
            self.p0_ = _chance_agreement(allsig, self._win_track)

    # -- querying ----------------------------------------------------------
    def query_audio(
        self, y: np.ndarray, *, query: str = "<clip>", top: int = 1, threshold: float | None = None
    ) -> QueryResult:
        """Answer one mono clip at ``fp_config.sr`` with the contract's record.

        ``threshold``: the confidence a match needs (default ``config.min_confidence``).
        """
        self.prepare()
        c = self.config
        min_conf = c.min_confidence if threshold is None else float(threshold)
        if not (0.0 <= min_conf <= 1.0):
            raise ParameterError(f"threshold={threshold} must be a confidence in [0, 1]")
        y = np.asarray(y, np.float32)
        h, t = _landmarks(y, c.shifts, self.fp_config)
        n_frames = int(np.ceil(y.shape[0] / self.fp_config.hop_length)) + 1
        qsig = window_signatures(
            h,
            t,
            hasher=self.hasher,
            block_frames=c.query_hop_s * self.frames_per_s,
            blocks_per_window=int(round(c.window_s / c.query_hop_s)),
            n_frames=n_frames,
        )
        qsig = np.where(qsig == EMPTY, _EMPTY32, qsig).astype(np.uint32)
        qi, wi = [], []
        for i in range(qsig.shape[0]):  # loop over the clip's few windows (≈ 4 per second)
            ids = self._lsh.query(_widen(qsig[i]))
            qi.append(np.full(ids.shape[0], i, np.int64))
            wi.append(ids)
        qi = np.concatenate(qi) if qi else np.zeros(0, np.int64)
        wi = np.concatenate(wi) if wi else np.zeros(0, np.int64)
        if wi.size == 0:
            return QueryResult(query=query)
        agree = np.count_nonzero((self._all[wi] == qsig[qi]) & (qsig[qi] != _EMPTY32), axis=1)
        keep = agree >= c.min_pair_jaccard * c.n_perm
        qi, wi, agree = qi[keep], wi[keep], agree[keep]
        if wi.size == 0:
            return QueryResult(query=query)
        steps = int(round(c.hop_s / c.query_hop_s))
        # offset in query hops: index window start (in hops) − query window start; each pair
        # also votes for the two neighbouring offsets (a clip is rarely cut on the window grid)
        off0 = self._win_start[wi].astype(np.int64) * steps - qi
        off = np.concatenate([off0 - 1, off0, off0 + 1])
        tr = np.tile(self._win_track[wi].astype(np.int64), 3)
        ag = np.tile(agree, 3)
        key = tr * (1 << 32) + (off + (1 << 31))
        uk, inv = np.unique(key, return_inverse=True)
        score = np.bincount(inv, weights=ag)
        npairs = np.bincount(inv)
        order = np.lexsort((-score, -npairs))
        from scipy.stats import poisson

        n_total = int(wi.shape[0])
        n_bins = float(self._all.shape[0] * 3)  # (track, offset) bins a chance pair can land in
        matches = []
        seen = set()
        for b in order:  # loop over the best few bins
            if len(matches) >= max(1, top):
                break
            track = int(uk[b] >> 32)
            if track in seen:
                continue
            seen.add(track)
            k = int(npairs[b])
            # null: the query's other candidate pairs are chance pairs, spread uniformly over the
            # bins; expected number of bins reaching k pairs by chance → P(none does)
            lam = (max(n_total - k, 0) + 1) / n_bins
            conf = float(np.exp(-n_bins * poisson.sf(k - 1, lam)))
            if conf < min_conf:
                break
            off_s = float((int(uk[b] & 0xFFFFFFFF) - (1 << 31)) * c.query_hop_s)
            t = self._tracks[track]
            matches.append(
                Match(
                    track_id=t.track_id,
                    path=t.path,
                    title=t.title,
                    artist=t.artist,
                    album=t.album,
                    offset_s=max(0.0, off_s),
                    score=float(score[b]) / c.n_perm,
                    confidence=conf,
                )
            )
        return QueryResult(query=query, matches=matches)

    def query_file(
        self, source, *, top: int = 1, threshold: float | None = None, max_duration_s: float | None = None
    ) -> QueryResult:
        """Answer a clip file; a decode failure (or a clip longer than ``max_duration_s``) goes into ``error``."""
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<clip>")
        try:
            y = load(source, sr=self.fp_config.sr, max_duration=max_duration_s)
        except (DecodeError, ParameterError) as exc:
            return QueryResult(query=name, error=str(exc).splitlines()[0])
        return self.query_audio(y, query=name, top=top, threshold=threshold)

    # -- persistence ---------------------------------------------------------
    def nbytes(self) -> int:
        self.prepare()
        return int(self._all.nbytes + self._lsh.keys_.nbytes + self._lsh.ids_.nbytes + self._win_track.nbytes)

    def save(self, folder) -> Path:
        self.prepare()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "signatures": self._all,
            "window_track": self._win_track,
            "lsh_keys": self._lsh.keys_,
            "lsh_ids": self._lsh.ids_.astype(np.int32),
        }
        for name, arr in arrays.items():
            with atomic_path(folder / f"{name}.npy") as tmp:
                np.save(tmp, arr)
        meta = {
            "format": "songmine-sketch",
            "version": _FORMAT_VERSION,
            "config": asdict(self.config),
            "fingerprint": self.fp_config.to_dict(),
            "p0": self.p0_,
            "tracks": [asdict(t) for t in self._tracks],
            "n_windows": [int(s.shape[0]) for s in self._sigs],
        }
        with atomic_path(folder / "meta.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder) -> SketchIndex:
        folder = Path(folder)
        if not (folder / "meta.json").exists():
            raise IndexFormatError(f"{folder}: no sketch index here (missing meta.json); build it with --method sketch")
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != "songmine-sketch" or meta.get("version") != _FORMAT_VERSION:
            raise IndexFormatError(f"{folder}: not a sketch index of version {_FORMAT_VERSION}")
        cfg = dict(meta["config"])
        cfg["shifts"] = tuple(cfg["shifts"])
        obj = cls(SketchConfig(**cfg), FingerprintConfig.from_dict(meta["fingerprint"]))
        allsig = np.load(folder / "signatures.npy", mmap_mode="r")
        if allsig.ndim != 2 or allsig.shape[1] != obj.config.n_perm:
            raise IndexFormatError(
                f"signature length mismatch: index has {allsig.shape[-1]}, config n_perm={obj.config.n_perm}"
            )
        obj._tracks = [_Track(**t) for t in meta["tracks"]]
        bounds = np.cumsum([0] + meta["n_windows"])
        obj._sigs = [allsig[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        obj._all = allsig
        obj._win_track = np.load(folder / "window_track.npy")
        obj._win_start = np.concatenate([np.arange(n, dtype=np.int32) for n in meta["n_windows"]])
        lsh = LSHIndex.from_arrays(
            np.load(folder / "lsh_keys.npy", mmap_mode="r"),
            np.load(folder / "lsh_ids.npy", mmap_mode="r"),
            obj.config.n_rows,
        )
        obj._lsh = lsh
        obj.p0_ = float(meta["p0"])
        return obj


def _widen(sig: np.ndarray) -> np.ndarray:
    """uint32 storage → uint64 signature values (EMPTY restored)."""
    s = np.asarray(sig).astype(np.uint64)
    return np.where(s == np.uint64(0xFFFFFFFF), EMPTY, s)


def _chance_agreement(sigs: np.ndarray, win_track: np.ndarray) -> float:
    """Mean fraction of equal positions between random windows of different tracks."""
    n = sigs.shape[0]
    g = np.random.default_rng(0)
    i = g.integers(0, n, size=min(20000, n * 4))
    j = g.integers(0, n, size=i.shape[0])
    keep = win_track[i] != win_track[j]
    if not keep.any():
        return 0.01
    eq = (sigs[i[keep]] == sigs[j[keep]]) & (sigs[i[keep]] != _EMPTY32)
    return float(min(max(eq.mean(), 1e-4), 0.5))
