"""Near-duplicate detection on Spark (``songmine dedupe DIR --engine spark``): the same groups as local.

The steps of :func:`songmine.minhash.dedupe.find_duplicates`, each where it
scales, with the very functions the local run calls:

1. **prints** — the file list is dealt into tasks; each file is decoded and
   fingerprinted on an executor (``dedupe.fingerprint_file``, both STFT
   phases) and its MinHash signature computed there; prints and signatures
   stay cached on the executors. Only each file's metadata (path, codec,
   bitrate, duration…) and the unreadable files reach the driver.
2. **LSH** — every signature's band keys (``lsh.band_keys``) become
   ``((band, key), file)`` records; grouped by key, each bucket of two or more
   files gives its pairs; ``distinct`` makes the candidate set — the pairs
   sharing at least one band, as ``LSHIndex.candidate_pairs`` finds them
   (empty signatures left out, as there).
3. **confirmation** — candidates joined with both signatures (estimated
   Jaccard ≥ threshold) and then with both prints for the offset vote
   (``dedupe.offset_vote``, the same votes rule); the confirmed pairs, few,
   are collected.
4. **groups** — on the driver, the connected components of the confirmed
   pairs (``dedupe.duplicate_components``); the members' effective bandwidths
   are measured on the executors, the keeper chosen with
   ``dedupe.choose_keeper``, each member's offset in its keeper voted on the
   executors, and the group written by ``dedupe.assemble_group``.

So the report's groups, keepers, reasons, offsets, pairs and candidate count
equal the local ``dedupe`` of the same files (tested); file indices follow the
same order (the walk of the folders), so ties break alike.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..bandwidth import effective_bandwidth
from ..errors import SongmineError
from ..fingerprint.landmarks import FingerprintConfig
from ..library import iter_audio_files
from ..minhash.dedupe import (
    DedupeConfig,
    DedupeReport,
    DuplicatePair,
    TrackPrint,
    assemble_group,
    choose_keeper,
    duplicate_components,
    fingerprint_file,
    offset_vote,
)
from ..minhash.hashing import EMPTY, MinHasher
from ..minhash.lsh import LSHConfig, band_keys
from .session import get_session, run_job

__all__ = ["dedupe_spark"]


def _print_task(items: Iterable[tuple[int, str]], config: DedupeConfig, fpc) -> Iterator[tuple[int, Any]]:
    """Fingerprint each file: ``(i, TrackPrint)`` or ``(i, {"path", "error"})`` (as the local job reports it)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    for i, path in items:
        try:
            yield i, fingerprint_file(path, config=config, fp_config=fpc)
        except SongmineError as exc:
            yield i, {"path": os.fspath(path), "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def _signature(p: TrackPrint, n_perm: int, seed: int) -> np.ndarray:
    return MinHasher(n_perm, random_state=seed).signature(np.unique(p.hashes))


def _band_records(item: tuple[int, np.ndarray], n_bands: int, n_rows: int) -> Iterator[tuple[tuple[int, int], int]]:
    i, sig = item
    if np.all(sig == EMPTY):  # an empty set collides with every other empty set: left out, as LSHIndex.fit does
        return
    for band, key in enumerate(band_keys(sig, LSHConfig(n_bands, n_rows))[0].tolist()):
        yield (band, key), i


def _bucket_pairs(members: Iterable[int]) -> Iterator[tuple[int, int]]:
    ids = sorted(set(members))
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            yield ids[a], ids[b]


def _meta(p: TrackPrint) -> TrackPrint:
    """A print's metadata without its hashes (what the driver keeps)."""
    z = np.zeros(0, np.uint32)
    return TrackPrint(
        p.path, z, z, p.duration_s, p.codec, p.bitrate_kbps, p.lossless, p.sr, p.channels, p.track_id, p.bandwidth_hz
    )


def _bandwidth(path: str) -> float | None:
    if not os.path.isfile(path):
        return None
    try:
        return effective_bandwidth(path)
    except SongmineError:
        return None


def dedupe_spark(
    paths: Iterable,
    config: DedupeConfig = DedupeConfig(),
    *,
    master: str | None = None,
    session=None,
    fp_config=None,
    n_partitions: int | None = None,
    job_timeout_s: float | None = None,
) -> DedupeReport:
    """:func:`songmine.minhash.dedupe.dedupe` with every step on Spark (see the module doc).

    Executors need the files at the same paths as the driver.
    """
    fpc = fp_config or FingerprintConfig()
    hop_s = fpc.hop_s
    files = [os.fspath(f) for f in iter_audio_files(paths)]
    session = session or get_session(master)
    sc = session.sparkContext
    b, r = config.bands
    timings: dict[str, float] = {}

    def job(action, what):
        return run_job(session, action, timeout_s=job_timeout_s, what=what)

    t0 = time.perf_counter()
    parts = max(1, min(len(files), n_partitions or 4 * sc.defaultParallelism))
    items = list(enumerate(files))
    prints = (
        (
            sc.parallelize([items[k::parts] for k in range(parts)], parts)
            .flatMap(lambda s: s)
            .mapPartitions(lambda it: _print_task(it, config, fpc))
            .filter(lambda kv: isinstance(kv[1], TrackPrint))
            .cache()
        )
        if files
        else None
    )
    try:
        if prints is None:
            got, skipped_rows = [], []
        else:
            # the prints are computed once (cached); the unreadable files are found by the same pass
            got = job(lambda: prints.map(lambda kv: (kv[0], _meta(kv[1]))).collect(), "fingerprinting for dedupe")
            ok = {i for i, _ in got}
            bad = [(i, f) for i, f in items if i not in ok]
            skipped_rows = (
                job(
                    lambda: (
                        sc.parallelize(bad, max(1, min(len(bad), parts)))
                        .mapPartitions(lambda it: _print_task(it, config, fpc))
                        .collect()
                    ),
                    "reading the unreadable files' reasons",
                )
                if bad
                else []
            )
        meta = dict(got)
        skipped = [v for _, v in sorted(skipped_rows, key=lambda kv: kv[0])]
        timings["fingerprint"] = time.perf_counter() - t0
        n = len(meta)
        order = sorted(meta)  # print index k of the local run: the i of the k-th readable file
        k_of = {i: k for k, i in enumerate(order)}
        t0 = time.perf_counter()
        pairs_out: list[DuplicatePair] = []
        edges: list[tuple[int, int]] = []
        n_candidates = 0
        if n:
            n_perm, seed = config.n_perm, config.random_state
            sigs = prints.map(lambda kv: (kv[0], _signature(kv[1], n_perm, seed))).cache()
            cand = (
                sigs.flatMap(lambda kv: _band_records(kv, b, r))
                .groupByKey()
                .flatMap(lambda kv: _bucket_pairs(kv[1]))
                .distinct()
                .cache()
            )
            n_candidates = job(cand.count, "LSH candidate pairs")
            timings["lsh"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            thr, tol, min_votes, min_frac = (
                config.threshold,
                config.tolerance_frames,
                config.min_votes,
                config.min_vote_fraction,
            )
            est = (
                cand.join(sigs)
                .map(lambda kv: (kv[1][0], (kv[0], kv[1][1])))
                .join(sigs)
                .map(lambda kv: ((kv[1][0][0], kv[0]), float(np.mean(kv[1][0][1] == kv[1][1]))))
                .filter(lambda kv: kv[1] >= thr)
            )
            confirmed = (
                est.map(lambda kv: (kv[0][0], (kv[0][1], kv[1])))
                .join(prints)
                .map(lambda kv: (kv[1][0][0], (kv[0], kv[1][0][1], kv[1][1])))
                .join(prints)
                .map(lambda kv: _confirm(kv, tol, min_votes, min_frac))
                .filter(lambda x: x is not None)
            )
            found = sorted(job(confirmed.collect, "confirming candidate pairs"))
            for i, j, jac, votes, off in found:  # in the local order: candidate pairs sorted by index
                pairs_out.append(DuplicatePair(meta[i].path, meta[j].path, jac, votes, float(off * hop_s)))
                edges.append((k_of[i], k_of[j]))
            cand.unpersist()
            sigs.unpersist()
        timings["confirm"] = time.perf_counter() - t0
        plist = [meta[i] for i in order]
        groups = []
        comps = duplicate_components(n, edges)
        if comps and config.bandwidth:
            members = sorted({int(k) for idx in comps for k in idx})
            measured = dict(
                job(
                    lambda: (
                        sc.parallelize([(k, plist[k].path) for k in members], max(1, min(len(members), parts)))
                        .map(lambda kv: (kv[0], _bandwidth(kv[1])))
                        .collect()
                    ),
                    "measuring bandwidths",
                )
            )
            for k in members:
                if plist[k].bandwidth_hz is None:
                    plist[k].bandwidth_hz = measured[k]
        chosen = []
        for idx in comps:
            pick, reason = choose_keeper([plist[k] for k in idx])
            chosen.append((idx, int(idx[pick]), reason))
        want = [(order[keeper], order[int(k)]) for idx, keeper, _ in chosen for k in idx if k != keeper]
        offsets: dict[tuple[int, int], int] = {}
        if want:
            offsets = dict(
                job(
                    lambda: (
                        sc.parallelize(want, max(1, min(len(want), parts)))
                        .join(prints)
                        .map(lambda kv: (kv[1][0], (kv[0], kv[1][1])))
                        .join(prints)
                        .map(
                            lambda kv: (
                                (kv[1][0][0], kv[0]),
                                offset_vote(kv[1][0][1], kv[1][1], tolerance_frames=tol)[1],
                            )
                        )
                        .collect()
                    ),
                    "aligning group members",
                )
            )
        for idx, keeper, reason in chosen:
            offs = {int(k): offsets[(order[keeper], order[int(k)])] for k in idx if k != keeper}
            groups.append(assemble_group(plist, idx, keeper, reason, offs, hop_s=hop_s))
        groups.sort(key=lambda g: g.keeper)
    finally:
        if prints is not None:
            prints.unpersist()
    return DedupeReport(
        groups=groups,
        pairs=pairs_out,
        n_files=n,
        n_candidates=int(n_candidates),
        skipped=skipped,
        bands=(b, r),
        timings_s={k: round(v, 4) for k, v in timings.items()},
    )


def _confirm(kv, tol: int, min_votes: int, min_frac: float):
    """``(j, ((i, jac, print_i), print_j))`` → ``(i, j, jac, votes, offset)`` when the offset vote confirms it."""
    j, ((i, jac, pa), pb) = kv
    votes, off = offset_vote(pa, pb, tolerance_frames=tol)
    smaller = max(1, min(pa.hashes.size, pb.hashes.size))
    if votes >= min_votes and votes >= min_frac * smaller:
        return i, j, jac, int(votes), int(off)
    return None
