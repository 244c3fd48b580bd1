"""Near-duplicate detection: which files in a library are the same recording?

Re-encodes (mp3 32–320 kbps, ogg, flac), other sample rates, trimmed or padded
copies (±10 s) and volume changes of one recording are grouped; nothing is
ever deleted — each group names a suggested *keeper* and says why
(:func:`choose_keeper`): the highest effective bandwidth measured from the
audio (a copy made from a lossy file keeps its encoder's low-pass, so the
source of a transcode has the wider spectrum even when the copy has the higher
bitrate), then lossless, higher bitrate, longer, higher rate.

How (see ``docs/minhash.md``):

1. **Sets.** Each file is decoded at 11,025 Hz and fingerprinted with the
   landmark method (:func:`songmine.fingerprint.landmarks.fingerprint`, index density).
   Its set is its distinct 32-bit landmark hashes, which do not depend on
   time, so a trimmed copy keeps most of them. A copy whose STFT frames fall
   half a hop away from the original's loses most landmarks (Jaccard ~0.1),
   so each file is fingerprinted at two phases (``shifts=(0, 64)`` samples)
   and the sets united. :func:`dedupe_index` instead reads the landmarks an
   index already holds (phase 0 only) and decodes only files changed since
   they were indexed: with today's landmark config one phase keeps the
   Jaccard of misaligned trimmed copies, even at 32 kbps, at 0.17 or more,
   twice the default threshold (``docs/minhash.md``). Measured on the dev corpus: Jaccard ~0.3 between a
   track and a trimmed copy, 0.15–0.2 for a 32-kbps mp3, ~0.9 for a gain
   change; 0.000–0.01 between unrelated tracks.
2. **Candidates in sub-quadratic time.** A MinHash signature per file
   (:class:`songmine.minhash.MinHasher`, 512 permutations by default) and
   banded LSH with one table per band (b × r picked for the threshold by
   :func:`songmine.minhash.choose_bands`); candidate pairs are the runs of
   equal band keys, so the work grows with the number of colliding pairs, not
   with n². Candidates below the estimated-Jaccard ``threshold`` are dropped.
3. **Confirmation.** Each surviving pair is confirmed by the landmark
   offset vote: the time differences of their common hashes must pile up at
   one offset (``min_votes`` votes and ``min_vote_fraction`` of the smaller
   set). The winning offset is the alignment: "B starts 3.2 s into A".
4. **Groups** are the connected components of confirmed pairs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import audio
from ..bandwidth import effective_bandwidth
from ..errors import ParameterError, SongmineError
from ..fingerprint.index import Index
from ..fingerprint.landmarks import FingerprintConfig, fingerprint
from ..library import file_sha256, iter_audio_files
from ..workers import pool
from .hashing import MinHasher
from .lsh import LSHConfig, LSHIndex, check_threshold, choose_bands

__all__ = [
    "DedupeConfig",
    "TrackPrint",
    "DuplicatePair",
    "GroupMember",
    "DuplicateGroup",
    "DedupeReport",
    "fingerprint_file",
    "prints_from_arrays",
    "offset_vote",
    "find_duplicates",
    "dedupe",
    "dedupe_index",
    "choose_keeper",
    "duplicate_components",
    "assemble_group",
    "LOSSLESS_CODECS",
    "BANDWIDTH_TOLERANCE_HZ",
]

log = logging.getLogger(__name__)

#: Codecs treated as lossless when choosing a keeper.
LOSSLESS_CODECS = frozenset({"flac", "alac", "wavpack", "ape", "tta", "mlp", "truehd", "shorten"})
#: Effective bandwidths closer than this are equal when choosing a keeper (two 250-Hz bands of the measure).
BANDWIDTH_TOLERANCE_HZ = 500.0


@dataclass(frozen=True, slots=True)
class DedupeConfig:
    """Parameters of :func:`find_duplicates`.

    Attributes
    ----------
    threshold : float
        Estimated Jaccard of two files' landmark-hash sets above which a pair
        is checked by the offset vote, in (0, 1]. Re-encodes and ±10 s trims
        measure 0.14–0.35; unrelated tracks below 0.01.
    n_perm : int
        MinHash signature length.
    n_bands, n_rows : int or None
        LSH shape; both None → :func:`choose_bands` for ``threshold`` (a band
        shape that must tile ``n_perm`` exactly otherwise).
    min_votes : int
        Common hashes that must agree on one time offset.
    min_vote_fraction : float
        … and at least this fraction of the smaller file's hashes.
    tolerance_frames : int
        Offsets within ± this many frames of the best count as agreeing.
    max_duration_s : float
        Longer files are skipped (reported), not decoded.
    shifts : tuple of int
        Each file is fingerprinted from these sample offsets (at 11,025 Hz)
        and the hash sets are united: two copies whose STFT frames fall half a
        hop apart then still share most landmarks (Jaccard of a 4.37-s trim
        0.10 → 0.30 with ``(0, 64)``; measured on the dev corpus).
    random_state : int
        Seed of the MinHash functions.
    bandwidth : bool
        Measure the effective bandwidth of each grouped file
        (:func:`songmine.bandwidth.effective_bandwidth`, up to 60 s decoded at
        its own rate) to choose the keeper; False keeps to the container's
        facts (lossless, bitrate, duration, rate).
    """

    threshold: float = 0.08
    n_perm: int = 512
    n_bands: int | None = None
    n_rows: int | None = None
    min_votes: int = 20
    min_vote_fraction: float = 0.02
    tolerance_frames: int = 1
    max_duration_s: float = 3 * 3600.0
    shifts: tuple[int, ...] = (0, 64)
    random_state: int = 0
    bandwidth: bool = True

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        if self.n_perm < 1:
            raise ParameterError(f"n_perm={self.n_perm} must be >= 1")
        if (self.n_bands is None) != (self.n_rows is None):
            raise ParameterError("give both n_bands and n_rows, or neither")
        if self.n_bands is not None:
            LSHConfig(self.n_bands, self.n_rows).check(self.n_perm)
        if self.min_votes < 1:
            raise ParameterError(f"min_votes={self.min_votes} must be >= 1")
        if not (0.0 <= self.min_vote_fraction <= 1.0):
            raise ParameterError(f"min_vote_fraction={self.min_vote_fraction} must be in [0, 1]")
        if self.tolerance_frames < 0:
            raise ParameterError(f"tolerance_frames={self.tolerance_frames} must be >= 0")
        if not self.shifts or any(int(x) < 0 or int(x) >= 4096 for x in self.shifts):
            raise ParameterError(f"shifts={self.shifts} must be a non-empty tuple of sample offsets in [0, 4096)")
        if not self.max_duration_s > 0:
            raise ParameterError(f"max_duration_s={self.max_duration_s} must be > 0")

    @property
    def bands(self) -> tuple[int, int]:
        """``(n_bands, n_rows)`` actually used."""
        if self.n_bands is not None:
            return self.n_bands, self.n_rows
        return choose_bands(self.n_perm, self.threshold)


@dataclass(slots=True)
class TrackPrint:
    """One file's landmark hashes (sorted by hash) and what decides the keeper."""

    path: str
    hashes: np.ndarray  # uint32, sorted
    times: np.ndarray  # uint32, frame of each hash
    duration_s: float = 0.0
    codec: str = ""
    bitrate_kbps: float = 0.0
    lossless: bool = False
    sr: int = 0
    channels: int = 0
    track_id: int | None = None
    bandwidth_hz: float | None = None  # effective bandwidth, measured for files that end up in a group

    @property
    def quality_key(self) -> tuple:
        """Higher is better once bandwidths are equal: lossless, then bitrate (lossy files only: a WAV is
        not "better" than its FLAC), then duration, then sample rate."""
        return (self.lossless, 0 if self.lossless else round(self.bitrate_kbps), round(self.duration_s, 1), self.sr)


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two files confirmed to be the same recording; ``b`` starts ``offset_s`` into ``a``."""

    a: str
    b: str
    jaccard: float
    votes: int
    offset_s: float


@dataclass(frozen=True, slots=True)
class GroupMember:
    path: str
    codec: str
    bitrate_kbps: float
    lossless: bool
    duration_s: float
    offset_s: float  # where this member starts in the keeper (negative: it starts before)
    keeper: bool
    bandwidth_hz: float | None = None  # effective bandwidth (None: not measured)


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Files that are one recording; ``keeper`` is the suggested one to keep, ``reason`` why."""

    keeper: str
    members: list[GroupMember]
    reason: str = ""


@dataclass(slots=True)
class DedupeReport:
    groups: list[DuplicateGroup]
    pairs: list[DuplicatePair]
    n_files: int
    n_candidates: int
    skipped: list[dict] = field(default_factory=list)
    bands: tuple[int, int] = (0, 0)
    timings_s: dict[str, float] = field(default_factory=dict)
    n_from_index: int = 0  # prints read from an index's stored landmarks (dedupe_index), not decoded


# ------------------------------------------------------------ per file


def prints_from_arrays(path: str, hashes: np.ndarray, times: np.ndarray, **meta) -> TrackPrint:
    """A :class:`TrackPrint` from a fingerprint's ``(hashes, times)`` (sorted here)."""
    h = np.asarray(hashes, dtype=np.uint32)
    t = np.asarray(times, dtype=np.uint32)
    if h.shape != t.shape or h.ndim != 1:
        raise ParameterError(f"hashes {h.shape} and times {t.shape} must be 1-D of one length")
    order = np.argsort(h, kind="stable")
    return TrackPrint(path=str(path), hashes=h[order], times=t[order], **meta)


def fingerprint_file(path, *, config: DedupeConfig = DedupeConfig(), fp_config=None) -> TrackPrint:
    """Decode ``path`` at the landmark rate and fingerprint it, with quality metadata."""
    fpc = fp_config or FingerprintConfig()
    p = os.fspath(path)
    meta = audio.info(p)
    y = audio.load(p, sr=fpc.sr, mono=True, max_duration=config.max_duration_s)
    parts = [fingerprint(y[int(s) :], fpc) for s in config.shifts]  # loop over a few phase shifts
    h = np.concatenate([ph for ph, _ in parts])
    t = np.concatenate([pt for _, pt in parts])
    duration = y.shape[0] / fpc.sr
    size = Path(p).stat().st_size
    codec = (meta.codec or "").lower()
    lossless = codec in LOSSLESS_CODECS or codec.startswith("pcm_")
    return prints_from_arrays(
        p,
        h,
        t,
        duration_s=float(duration),
        codec=codec,
        bitrate_kbps=float(size * 8 / 1000 / duration) if duration > 0 else 0.0,
        lossless=bool(lossless),
        sr=int(meta.sr),
        channels=int(meta.channels),
    )


def _fingerprint_job(args):
    path, config, fp_config = args
    try:
        return fingerprint_file(path, config=config, fp_config=fp_config), None
    except SongmineError as exc:
        return None, (os.fspath(path), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


# ------------------------------------------------------- confirmation


def offset_vote(a: TrackPrint, b: TrackPrint, *, tolerance_frames: int = 1, max_per_hash: int = 64) -> tuple[int, int]:
    """Votes for the best time offset between two prints, and that offset (frames, ``t_a - t_b``).

    Every common hash contributes the differences of its times in ``a`` and
    ``b`` (hashes repeated more than ``max_per_hash`` times in ``a`` are
    skipped); the best offset is the histogram's peak, counting offsets
    within ``± tolerance_frames``.
    """
    ha, hb = a.hashes, b.hashes
    if ha.size == 0 or hb.size == 0:
        return 0, 0
    lo = np.searchsorted(ha, hb, side="left")
    hi = np.searchsorted(ha, hb, side="right")
    counts = hi - lo
    counts[counts > max_per_hash] = 0
    total = int(counts.sum())
    if total == 0:
        return 0, 0
    qb = np.repeat(np.arange(hb.size), counts)
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    ia = np.repeat(lo, counts) + within
    d = a.times[ia].astype(np.int64) - b.times[qb].astype(np.int64)
    dmin = int(d.min())
    hist = np.bincount(d - dmin)
    if tolerance_frames > 0:
        k = 2 * tolerance_frames + 1
        smooth = np.convolve(hist, np.ones(k, dtype=np.int64), mode="same")
    else:
        smooth = hist
    best = int(np.argmax(smooth))
    return int(smooth[best]), best + dmin


# ------------------------------------------------------------ keeper


def _khz(hz: float) -> str:
    return f"{hz / 1000:.2f} kHz"


def choose_keeper(prints: Sequence[TrackPrint], *, tolerance_hz: float = BANDWIDTH_TOLERANCE_HZ) -> tuple[int, str]:
    """Which of a group's prints to keep, and why in words.

    1. **Effective bandwidth** (when every member has one): only the copies within
       ``tolerance_hz`` of the widest stay in the running — a lower cut-off is an
       encoder's low-pass, so those are transcodes or lower-quality encodes,
       whatever their bitrate;
    2. then lossless, higher bitrate (lossy files), longer, higher sample rate
       (:attr:`TrackPrint.quality_key`), then the first listed.
    """
    idx = list(range(len(prints)))
    bws = [p.bandwidth_hz for p in prints]
    measured = all(b is not None and b > 0 for b in bws)
    if measured:
        widest = max(bws)
        idx = [i for i in idx if bws[i] >= widest - tolerance_hz]
    best = max(idx, key=lambda i: (prints[i].quality_key, -i))
    k = prints[best]
    if measured and len(idx) == 1:
        rest = max(b for i, b in enumerate(bws) if i != best)
        return best, (
            f"widest effective bandwidth, {_khz(k.bandwidth_hz)} against {_khz(rest)} or less: "
            f"the others are cut lower by an encoder's low-pass (transcodes or lower-quality encodes)"
        )
    equal = (
        f"bandwidths equal within {tolerance_hz:.0f} Hz ({_khz(min(bws[i] for i in idx))}–"
        f"{_khz(max(bws[i] for i in idx))})"
        if measured
        else "bandwidth not measured"
    )
    others = [prints[i] for i in idx if i != best]
    if not others:
        return best, f"the only copy ({equal})"
    r = max(others, key=lambda p: p.quality_key)
    kk, rk = k.quality_key, r.quality_key
    if kk[0] != rk[0]:
        why = f"lossless ({k.codec})"
    elif kk[1] != rk[1]:
        why = f"highest bitrate ({k.bitrate_kbps:.0f} kbps against {r.bitrate_kbps:.0f})"
    elif kk[2] != rk[2]:
        why = f"longest ({k.duration_s:.1f} s against {r.duration_s:.1f})"
    elif kk[3] != rk[3]:
        why = f"highest sample rate ({k.sr} Hz against {r.sr})"
    else:
        why = "first listed (the copies are alike in format, bitrate, duration and rate)"
    return best, f"{why}; {equal}"


def _measure_bandwidths(prints: Sequence[TrackPrint], members) -> None:
    """Effective bandwidth of the grouped prints that have none yet (a file that cannot be read keeps None)."""
    for k in members:
        p = prints[k]
        if p.bandwidth_hz is None and os.path.isfile(p.path):
            try:
                p.bandwidth_hz = effective_bandwidth(p.path)
            except SongmineError as exc:
                log.warning("dedupe: bandwidth of %s not measured: %s", p.path, str(exc).splitlines()[0])


# ------------------------------------------------------------ search


def find_duplicates(
    prints: Sequence[TrackPrint],
    config: DedupeConfig = DedupeConfig(),
    *,
    hop_s: float | None = None,
    skipped: list[dict] | None = None,
    signatures: np.ndarray | None = None,
) -> DedupeReport:
    """Groups of prints that are the same recording.

    Parameters
    ----------
    prints : sequence of TrackPrint
    config : DedupeConfig
    hop_s : float or None
        Seconds per landmark frame (default: the landmark config's).
    signatures : np.ndarray [shape=(len(prints), n_perm), dtype=uint64] or None
        Precomputed MinHash signatures of the prints' hash sets (same
        ``n_perm`` and ``random_state``), e.g. kept from an earlier run.

    Returns
    -------
    DedupeReport
    """
    if hop_s is None:
        hop_s = FingerprintConfig().hop_s
    timings: dict[str, float] = {}
    n = len(prints)
    b, r = config.bands
    t0 = time.perf_counter()
    if signatures is not None:
        sigs = np.asarray(signatures, dtype=np.uint64)
        if sigs.shape != (n, config.n_perm):
            raise ParameterError(f"signatures shape {sigs.shape} != ({n}, n_perm={config.n_perm})")
    else:
        mh = MinHasher(config.n_perm, random_state=config.random_state)
        sigs = (
            np.stack([mh.signature(np.unique(p.hashes)) for p in prints])  # loop over files
            if n
            else np.zeros((0, config.n_perm), np.uint64)
        )
    timings["signatures"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lsh = LSHIndex(b, r).fit(sigs)
    cand = lsh.candidate_pairs()
    timings["lsh"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if cand.shape[0]:
        est = np.mean((sigs[cand[:, 0]] == sigs[cand[:, 1]]), axis=1)
    else:
        est = np.zeros(0)
    keep = est >= config.threshold
    pairs: list[DuplicatePair] = []
    edges = []
    for (i, j), jac in zip(cand[keep].tolist(), est[keep].tolist()):  # loop over candidate pairs
        pa, pb = prints[i], prints[j]
        votes, off = offset_vote(pa, pb, tolerance_frames=config.tolerance_frames)
        smaller = max(1, min(pa.hashes.size, pb.hashes.size))
        if votes >= config.min_votes and votes >= config.min_vote_fraction * smaller:
            pairs.append(DuplicatePair(pa.path, pb.path, float(jac), int(votes), float(off * hop_s)))
            edges.append((i, j, off))
    timings["confirm"] = time.perf_counter() - t0

    groups: list[DuplicateGroup] = []
    for idx in duplicate_components(n, [(i, j) for i, j, _ in edges]):  # loop over groups
        if config.bandwidth:
            _measure_bandwidths(prints, idx)
        pick, reason = choose_keeper([prints[k] for k in idx])
        keeper = idx[pick]
        offsets = {
            k: offset_vote(prints[keeper], prints[k], tolerance_frames=config.tolerance_frames)[1]
            for k in idx
            if k != keeper
        }
        groups.append(assemble_group(prints, idx, keeper, reason, offsets, hop_s=hop_s))
    groups.sort(key=lambda g: g.keeper)
    return DedupeReport(
        groups=groups,
        pairs=pairs,
        n_files=n,
        n_candidates=int(cand.shape[0]),
        skipped=list(skipped or []),
        bands=(b, r),
        timings_s={k: round(v, 4) for k, v in timings.items()},
    )


def duplicate_components(n: int, edges: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """The groups: connected components (of more than one print) of the confirmed pairs ``edges``
    among ``n`` prints, each the sorted print indices, in component order."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not edges:
        return []
    e = np.array(edges, dtype=np.int64)
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    n_comp, labels = connected_components(g, directed=False)
    sizes = np.bincount(labels, minlength=n_comp)
    return [np.flatnonzero(labels == comp) for comp in np.flatnonzero(sizes > 1)]


def assemble_group(
    prints, idx: Sequence[int], keeper: int, reason: str, offsets: dict[int, int], *, hop_s: float
) -> DuplicateGroup:
    """A group's record: the keeper first, the others by path, each with where it starts in the keeper
    (``offsets[k]``: frames, from :func:`offset_vote` of the keeper and ``k``)."""
    members = []
    for k in sorted(idx, key=lambda k: (k != keeper, prints[k].path)):
        off_s = 0.0 if k == keeper else float(offsets[k] * hop_s)
        p = prints[k]
        members.append(
            GroupMember(
                p.path,
                p.codec,
                round(p.bitrate_kbps, 1),
                p.lossless,
                round(p.duration_s, 3),
                round(off_s, 3),
                k == keeper,
                p.bandwidth_hz,
            )
        )
    return DuplicateGroup(prints[keeper].path, members, reason)


def dedupe(
    paths: Iterable,
    config: DedupeConfig = DedupeConfig(),
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    fp_config=None,
) -> DedupeReport:
    """Fingerprint every audio file under ``paths`` and group the duplicates.

    One unreadable file is reported in ``skipped`` and never aborts the run.
    """
    fpc = fp_config or FingerprintConfig()
    files = list(iter_audio_files(paths))
    prints: list[TrackPrint] = []
    skipped: list[dict] = []
    t0 = time.perf_counter()
    _fingerprint_files(files, config, fpc, prints, skipped, jobs=jobs, progress=progress, total=len(files))
    t_fp = time.perf_counter() - t0
    report = find_duplicates(prints, config, hop_s=fpc.hop_s, skipped=skipped)
    report.timings_s = {"fingerprint": round(t_fp, 4), **report.timings_s}
    return report


def _fingerprint_files(files, config, fpc, prints, skipped, *, jobs, progress, total) -> None:
    """Fingerprint ``files`` (in ``jobs`` processes), appending to ``prints`` / ``skipped``.

    ``progress(done, total)`` counts from what ``prints`` and ``skipped`` already hold.
    """
    work = [(f, config, fpc) for f in files]
    done = len(prints) + len(skipped)
    if jobs > 1 and len(work) > 1:
        with pool(jobs) as ex:
            results = ex.map(_fingerprint_job, work, chunksize=1)
            for k, (pr, err) in enumerate(results):
                _collect(pr, err, prints, skipped)
                if progress:
                    progress(done + k + 1, total)
    else:
        for k, w in enumerate(work):  # loop over files
            _collect(*_fingerprint_job(w), prints, skipped)
            if progress:
                progress(done + k + 1, total)


def _collect(pr, err, prints, skipped) -> None:
    if pr is not None:
        prints.append(pr)
    else:
        log.warning("dedupe: skipped %s: %s", *err)
        skipped.append({"path": err[0], "error": err[1]})


def dedupe_index(
    index,
    config: DedupeConfig = DedupeConfig(),
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> DedupeReport:
    """Group the duplicates among an index's live tracks from the landmarks it stores.

    A track whose file still has the sha256 it was indexed with is not decoded:
    its set is its stored landmark hashes (one STFT phase, the index's config),
    and codec, rate and channels come from the container (:func:`songmine.audio.info`).
    A changed file is fingerprinted again the same way (phase 0, the index's
    config) so every set is comparable; a file gone from disk is reported in
    ``skipped``. ``config.shifts`` is ignored: an index holds phase 0 only.

    Parameters
    ----------
    index : path or :class:`songmine.fingerprint.index.Index`
        A landmark index (``method="landmark"``).
    config : DedupeConfig
    jobs : int
        Processes for the files that must be fingerprinted again.

    Raises
    ------
    ParameterError
        When the index is of another method (its postings are not landmarks).
    """

    own = not isinstance(index, Index)
    ix = Index(index) if own else index
    try:
        if ix.method not in ("landmark", "landmarks"):  # "landmarks": indexes written before the rename
            raise ParameterError(f"dedupe --index needs a landmark index; {ix.path} is a {ix.method!r} index")
        fpc = ix.config
        cfg = replace(config, shifts=(0,))
        t0 = time.perf_counter()
        stored = ix.landmarks()
        records = ix.tracks()
    finally:
        if own:
            ix.close()
    prints: list[TrackPrint] = []
    skipped: list[dict] = []
    redo: list[str] = []
    for r in records:  # loop over files: a hash of each file, no decoding
        try:
            if r.sha256 != file_sha256(r.path):
                redo.append(r.path)
                continue
            meta = audio.info(r.path)
        except OSError as exc:
            skipped.append({"path": r.path, "error": f"{r.path}: {exc.strerror or exc}"})
            continue
        except SongmineError as exc:
            skipped.append({"path": r.path, "error": str(exc).splitlines()[0]})
            continue
        h, t = stored.get(r.track_id, (np.zeros(0, np.uint32), np.zeros(0, np.uint32)))
        codec = (meta.codec or "").lower()
        size = os.stat(r.path).st_size
        prints.append(
            prints_from_arrays(
                r.path,
                h,
                t,
                duration_s=float(r.duration_s),
                codec=codec,
                bitrate_kbps=float(size * 8 / 1000 / r.duration_s) if r.duration_s > 0 else 0.0,
                lossless=bool(codec in LOSSLESS_CODECS or codec.startswith("pcm_")),
                sr=int(meta.sr),
                channels=int(meta.channels),
                track_id=r.track_id,
            )
        )
        if progress:
            progress(len(prints) + len(skipped), len(records))
    n_from_index = len(prints)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    if redo:
        log.info("dedupe: %d file(s) changed since indexing: fingerprinting them again", len(redo))
        _fingerprint_files(redo, cfg, fpc, prints, skipped, jobs=jobs, progress=progress, total=len(records))
    t_fp = time.perf_counter() - t0
    report = find_duplicates(prints, cfg, hop_s=fpc.hop_s, skipped=skipped)
    report.timings_s = {"index_read": round(t_read, 4), "fingerprint": round(t_fp, 4), **report.timings_s}
    report.n_from_index = n_from_index
    return report
