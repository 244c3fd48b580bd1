"""Index.lookup over many segments against the same index compacted, and against the previous lookup.

The lookups identify makes for real clips (``docs/identify.md``, "Search
stages and scale"): per clip, the coarse landmarks (index density, dt
jitter) at every speed of ``SearchConfig.speeds`` within the coarse hit budget
— what a non-member clip does — and the dense query landmarks at speed 1
within ``max_hits``. Each ``--index`` (e.g. the 11-segment and the compacted
1,000-hour indexes of ``large_index.py``) answers the same hash sets with

* **reference**: the lookup of session 3 (kept below, verbatim but for
  names): per segment, two binary searches per key (``Segment.bounds``, plain
  ``np.searchsorted`` under 2,048 keys) and a scatter of the hits per segment;
* **now**: ``Index.lookup``.

Every lookup's three arrays are checked equal between the two, and between
every index and the first one (the same hits grouped by query position; the
order inside a group is the catalogue order of the segments, so it is the
same too when the first index is the others compacted). Times are CPU
medians per lookup, the two versions interleaved lookup by lookup::

    PYTHONPATH=src nice -n 10 python benchmarks/segment_lookup.py \\
        --index /tmp/scale/run/L1/large.idx --index /tmp/scale/run/L11/large.idx
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _common import git_commit, markdown_table

#: Thresholds of the reference (session 3's segments.py).
_REF_FENCES_MIN = 1 << 22
_REF_FENCED_MIN_KEYS = 2048


def _reference_bounds(seg, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Session 3's ``Segment.bounds``: per side, fences then a binary search inside each window."""
    h = seg.postings.hashes
    n = len(h)
    if seg.fences is None or n < _REF_FENCES_MIN or keys.shape[0] < _REF_FENCED_MIN_KEYS:
        return np.searchsorted(h, keys, side="left"), np.searchsorted(h, keys, side="right")
    k = seg.step
    out = []
    for side in ("left", "right"):
        i = np.searchsorted(seg.fences, keys, side=side)
        first = np.maximum(i - 1, 0).astype(np.int64) * k
        count = np.minimum(first + k + 1, n) - first
        while True:
            live = count > 0
            if not live.any():
                break
            step = count >> 1
            v = h[np.minimum(first + step, n - 1)]
            go = ((v < keys) if side == "left" else (v <= keys)) & live
            first = np.where(go, first + step + 1, first)
            count = np.where(go, count - step - 1, step)
        out.append(first)
    return out[0], out[1]


def _reference_lookup(index, hashes, max_per_hash=None, max_hits=None):
    """Session 3's ``Index.lookup`` (no removed tracks in these indexes)."""
    from songmine.fingerprint.postings import rarest_within

    q = np.asarray(hashes, dtype=np.uint32).ravel()
    segs = index._snap.segments
    uq, inv = np.unique(q, return_inverse=True)
    n_seg, n_u = len(segs), uq.shape[0]
    los = np.empty((n_seg, n_u), dtype=np.int64)
    cnts = np.empty((n_seg, n_u), dtype=np.int64)
    for s, seg in enumerate(segs):
        lo, hi = _reference_bounds(seg.data, uq)
        los[s] = lo
        cnts[s] = hi - lo
    per_u = cnts.sum(axis=0)
    if max_per_hash is not None:
        common = per_u > max_per_hash
        cnts[:, common] = 0
        per_u = np.where(common, 0, per_u)
    mult = np.bincount(inv, minlength=n_u) if max_hits is not None else None
    if max_hits is not None and int(per_u @ mult) > max_hits:
        skip = ~rarest_within(per_u, mult, max_hits)
        cnts[:, skip] = 0
        per_u = np.where(skip, 0, per_u)
    per_q = per_u[inv]
    total = int(per_q.sum())
    if total == 0:
        z = np.zeros(0, dtype=np.uint32)
        return np.zeros(0, dtype=np.int64), z, z
    query_pos = np.repeat(np.arange(q.shape[0], dtype=np.int64), per_q)
    q_start = np.cumsum(per_q) - per_q
    seg_off = np.cumsum(cnts, axis=0) - cnts
    out_tracks = np.empty(total, dtype=np.uint32)
    out_times = np.empty(total, dtype=np.uint32)
    for s, seg in enumerate(segs):
        c = cnts[s][inv]
        n_s = int(c.sum())
        if n_s == 0:
            continue
        within = np.arange(n_s, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
        dst = np.repeat(q_start + seg_off[s][inv], c) + within
        src = np.repeat(los[s][inv], c) + within
        out_tracks[dst] = seg.postings.tracks[src]
        out_times[dst] = seg.postings.times[src]
    return query_pos, out_tracks, out_times


def _same_hits(a, b) -> bool:
    """Equal hits, grouped by query position; inside a group the order follows the segments' (catalogue) order,
    which differs between an index and its compacted copy only when a merge put newer postings first."""
    if not all(np.all(np.diff(x[0]) >= 0) for x in (a, b)):
        return False
    ka, kb = np.lexsort(a[::-1]), np.lexsort(b[::-1])  # by query position, then track, then time
    return all(np.array_equal(u[ka], v[kb]) for u, v in zip(a, b))


def queries(files: list[Path], config, n_clips: int, seconds: float, seed: int):
    """(kind, hashes, max_per_hash, max_hits) of every lookup identify makes for a non-member clip."""
    from songmine import audio
    from songmine.fingerprint.search import SearchConfig, expand_query
    from songmine.fingerprint.landmarks import fingerprint, speed_fingerprinter

    sc = SearchConfig()
    rng = np.random.default_rng(seed)
    out = []
    for f in rng.choice(len(files), size=min(n_clips, len(files)), replace=False):  # loop over clips
        info = audio.info(files[f])
        start = float(rng.uniform(0, max(info.duration_s - seconds, 0)))
        y = audio.load(files[f], sr=config.sr, offset=start, duration=seconds)
        prints = speed_fingerprinter(y, config)
        for s in sc.speeds:  # loop over speed factors
            out.append(("coarse", expand_query(*prints(s), sc.dt_jitter)[0], sc.max_per_hash, sc.coarse_max_hits))
        out.append(("dense", expand_query(*fingerprint(y, config, query=True), sc.dt_jitter)[0], sc.max_per_hash,
                    sc.max_hits))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", action="append", required=True, type=Path,
                    help="an index (repeatable); the first is the one the others must equal (e.g. the compacted)")
    ap.add_argument("--library", type=Path, default=Path("/work/dev/corpus/library"))
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3, help="passes over all lookups (medians over all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from songmine.fingerprint.heap import keep_heap
    from songmine.fingerprint.index import Index
    from songmine.library import iter_audio_files

    keep_heap()  # as identify's processes do
    files = list(iter_audio_files([args.library]))
    indexes = [Index(p) for p in args.index]
    qs = queries(files, indexes[0].config, args.clips, args.seconds, args.seed)
    first: list = []
    rows = []
    base: dict[str, float] = {}
    for k, ix in enumerate(indexes):  # loop over indexes
        for kind, h, mph, mh in qs[:3]:  # warm-up: imports, page cache
            ix.lookup(h, mph, mh)
        times: dict[tuple[str, str], list[float]] = {}
        hits: dict[str, list[int]] = {}
        for rep in range(args.repeats):
            for j, (kind, h, mph, mh) in enumerate(qs):
                got = {}
                for name, fn in (("reference", _reference_lookup), ("now", None)):
                    t0 = time.process_time()
                    got[name] = fn(ix, h, mph, mh) if fn else ix.lookup(h, mph, mh)
                    times.setdefault((kind, name), []).append(time.process_time() - t0)
                if rep == 0:
                    for a, b in zip(got["reference"], got["now"]):
                        assert np.array_equal(a, b), f"{ix.path}: lookup {j} differs from the reference"
                    if k == 0:
                        first.append(got["now"])
                    else:
                        assert _same_hits(first[j], got["now"]), f"{ix.path}: lookup {j} differs from {indexes[0].path}"
                    hits.setdefault(kind, []).append(int(got["now"][0].shape[0]))
        for kind in dict.fromkeys(q[0] for q in qs):
            ref = 1e3 * float(np.median(times[(kind, "reference")]))
            now = 1e3 * float(np.median(times[(kind, "now")]))
            if k == 0:
                base[kind] = now
            rows.append([f"{ix.path} ({ix.n_segments} seg, {ix.n_postings / 1e6:.1f} M)", kind, len(hits[kind]),
                         f"{np.median(hits[kind]):,.0f}", f"{ref:.2f}", f"{now:.2f}", f"{now / ref:.2f}",
                         f"{now / base[kind]:.2f}"])
    markdown_table(f"Index.lookup, CPU ms per lookup (median), {args.clips} clips of {args.seconds:g} s x "
                   f"(11 coarse + 1 dense); songmine {git_commit()}, load {os.getloadavg()[0]:.1f}; results equal "
                   f"to the reference and to the first index",
                   ["index", "lookup", "n", "median hits", "reference ms", "now ms", "now / reference",
                    "now / first index's now"], rows)
    for ix in indexes:
        ix.close()


if __name__ == "__main__":
    main()
