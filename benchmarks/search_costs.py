"""Exact costs under the search control, each against its reference in the same run.

Reproduces the figures of docs/benchmarks.md ("The search at 1,000 hours", "Costs
outside the control"; the design in docs/identify.md, "Search stages and scale") on a big index (e.g. the compacted
1,000-hour index of ``large_index.py``), with a real dense query:

* **fence search**: ``Segment.bounds`` (binary search inside each fence
  window) vs plain ``np.searchsorted`` on the largest segment, for the
  unique hashes of one dense 10-s query;
* **distinct_votes**: the track-id table vs the binary search per hit it
  replaced (``scoring._LUT_MAX_TRACK = 0`` takes that branch), same hits;
* **vote's sort**: the ``(track, offset)`` keys of one lookup's hits sorted by
  numpy's stable sort (which merges the sorted run of hits each hash brings)
  vs quicksort (``scoring._KEY_SORT = "quicksort"``), for the dense lookup and
  for one within the coarse hit budget;
* **heap**: one dense lookup + ``vote`` in a process that called
  ``keep_heap()`` vs one that did not (``SONGMINE_KEEP_HEAP=0``);
  each in its own child process, since the setting is process-wide.

Every pair gives the same results (checked here); the times are medians of
``--repeats`` runs, CPU time of this process::

    PYTHONPATH=src python benchmarks/search_costs.py --index INDEX --clip AUDIO_FILE

(INDEX: e.g. the 1,000-hour index ``large_index.py`` builds, compacted; AUDIO_FILE:
a file of one of its real tracks, e.g. a demo-corpus track.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from _common import git_commit, markdown_table


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: page the postings in, imports
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return 1e3 * float(np.median(times))


def _query(index, clip: str, offset: float, seconds: float):
    from songmine import audio
    from songmine.fingerprint.landmarks import fingerprint

    y = audio.load(clip, sr=index.config.sr, offset=offset, duration=seconds)
    return fingerprint(y, index.config, query=True)


def _coarse_query(index, clip: str, offset: float, seconds: float):
    """The clip's landmarks at the index's density, time-jittered: what a coarse probe looks up."""
    from songmine import audio
    from songmine.fingerprint.landmarks import fingerprint
    from songmine.fingerprint.search import SearchConfig, expand_query

    y = audio.load(clip, sr=index.config.sr, offset=offset, duration=seconds)
    return expand_query(*fingerprint(y, index.config), SearchConfig().dt_jitter)


def _lookup_and_vote(index, h, t, max_hits: int):
    from songmine.fingerprint.scoring import vote

    qpos, tr, tt = index.lookup(h, max_hits=max_hits)
    return vote(t, qpos, tr, tt), (qpos, tr, tt)


def _vote_every_bin(query_times, hit_qpos, hit_tracks, hit_times, tolerance: int = 1):
    """The reference for ``vote``: every bin reduced per track (``maximum.reduceat`` over all of them)."""
    from songmine.fingerprint.scoring import _KEY_SORT, _OFFSET_BIAS, _window_scores

    offs = hit_times.astype(np.int64) - query_times[hit_qpos].astype(np.int64)
    key = (hit_tracks.astype(np.int64) << 32) | (offs + _OFFSET_BIAS)
    key.sort(kind=_KEY_SORT)
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    uniq = key[starts]
    counts = np.diff(np.append(starts, key.shape[0]))
    score = _window_scores(uniq, counts, tolerance)
    tr = uniq >> 32
    first = np.flatnonzero(np.concatenate(([True], tr[1:] != tr[:-1])))
    low = np.int64(0xFFFFFFFF)
    best = np.maximum.reduceat((score << 32) | (low - (uniq & low)), first)
    tracks, offsets, votes = tr[first], (low - (best & low)) - _OFFSET_BIAS, best >> 32
    track_hits = np.add.reduceat(counts, first)
    rank = np.argsort(-votes, kind="stable")
    return tracks[rank], offsets[rank], votes[rank], track_hits[rank], np.int64(first.size)


def child(args) -> None:
    """One heap mode in this process: the median CPU ms of a dense lookup + vote."""
    from songmine.fingerprint.heap import keep_heap
    from songmine.fingerprint.index import Index

    if os.environ.get("SONGMINE_KEEP_HEAP") != "0":
        keep_heap()
    with Index(args.index) as index:
        h, t = _query(index, args.clip, args.offset, args.seconds)
        ms = _median_ms(lambda: _lookup_and_vote(index, h, t, args.max_hits), args.repeats)
        (_, _, votes, _, _), (qpos, _, _) = _lookup_and_vote(index, h, t, args.max_hits)
    print(json.dumps({"ms": ms, "hits": int(qpos.size), "top_votes": int(votes.max(initial=0))}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True, help="a big index (e.g. large_index.py's, compacted)")
    ap.add_argument("--clip", required=True, help="an audio file of an indexed track")
    ap.add_argument("--offset", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument(
        "--max-hits", type=int, default=500_000, help="the dense lookup's hit budget (SearchConfig.max_hits)"
    )
    ap.add_argument(
        "--coarse-max-hits",
        type=int,
        default=50_000,
        help="the coarse probes' hit budget (SearchConfig.coarse_max_hits)",
    )
    ap.add_argument(
        "--no-fence",
        action="store_true",
        help="leave out the fence search (its reference decodes the largest segment whole: 12 bytes a posting)",
    )
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    from songmine.fingerprint import scoring
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.scoring import distinct_votes, vote
    from songmine.fingerprint.search import SearchConfig

    rows = []
    with Index(args.index) as index:
        h, t = _query(index, args.clip, args.offset, args.seconds)
        seg = max((s.data for s in index._segments), key=len)  # the largest segment
        if not args.no_fence:
            keys = np.unique(h)
            hashes = seg.decode().hashes
            plain = lambda: (np.searchsorted(hashes, keys, "left"), np.searchsorted(hashes, keys, "right"))  # noqa: E731
            for a, b in zip(seg.bounds(keys), plain()):
                assert np.array_equal(a, b), "fenced bounds differ from np.searchsorted"
            ref, new = _median_ms(plain, args.repeats), _median_ms(lambda: seg.bounds(keys), args.repeats)
            rows.append(
                [
                    f"fence search, {keys.size:,} keys, {len(seg):,} postings",
                    f"{ref:.2f}",
                    f"{new:.2f}",
                    f"{new / ref:.2f}",
                ]
            )

        qpos, tr, tt = index.lookup(h, max_hits=args.max_hits)
        tracks, offsets, votes, _, _ = vote(t, qpos, tr, tt)
        cand = np.argsort(-votes, kind="stable")[:10]  # the 10 most-voted tracks
        dv = lambda: distinct_votes(h, t, qpos, tr, tt, tracks[cand], offsets[cand])  # noqa: E731
        with_table = dv()
        saved = scoring._LUT_MAX_TRACK
        scoring._LUT_MAX_TRACK = 0  # the binary search per hit
        try:
            assert np.array_equal(dv(), with_table), "distinct_votes differs between its two branches"
            ref = _median_ms(dv, args.repeats)
        finally:
            scoring._LUT_MAX_TRACK = saved
        new = _median_ms(dv, args.repeats)
        rows.append(
            [f"distinct_votes, {qpos.size:,} hits, 10 candidates", f"{ref:.2f}", f"{new:.2f}", f"{new / ref:.2f}"]
        )

        ch, ct = _coarse_query(index, args.clip, args.offset, args.seconds)
        cfg = SearchConfig()
        for what, (qh, qt, budget) in {
            "dense": (h, t, args.max_hits),
            "coarse": (ch, ct, args.coarse_max_hits),
        }.items():
            qpos, tr, tt = index.lookup(qh, max_per_hash=cfg.max_per_hash, max_hits=budget)
            once = lambda: vote(qt, qpos, tr, tt)  # noqa: E731
            got = once()
            saved = scoring._KEY_SORT
            scoring._KEY_SORT = "quicksort"
            try:
                assert all(np.array_equal(a, b) for a, b in zip(once(), got)), "vote differs between sorts"
                ref = _median_ms(once, args.repeats)
            finally:
                scoring._KEY_SORT = saved
            new = _median_ms(once, args.repeats)
            rows.append([f"vote, {what} lookup, {qpos.size:,} hits", f"{ref:.2f}", f"{new:.2f}", f"{new / ref:.2f}"])
            every = lambda: _vote_every_bin(qt, qpos, tr, tt)  # noqa: E731
            assert all(np.array_equal(a, b) for a, b in zip(every(), got)), "vote differs from its reference"
            ref = _median_ms(every, args.repeats)
            rows.append(
                [f"vote's best bins, {what} lookup, {qpos.size:,} hits", f"{ref:.2f}", f"{new:.2f}", f"{new / ref:.2f}"]
            )

    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--index",
        args.index,
        "--clip",
        args.clip,
        "--offset",
        str(args.offset),
        "--seconds",
        str(args.seconds),
        "--max-hits",
        str(args.max_hits),
        "--repeats",
        str(args.repeats),
    ]
    heap = {}
    for mode in ("0", "1"):
        out = subprocess.run(
            cmd, env={**os.environ, "SONGMINE_KEEP_HEAP": mode}, capture_output=True, text=True, check=True
        )
        heap[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    assert heap["0"]["hits"] == heap["1"]["hits"] and heap["0"]["top_votes"] == heap["1"]["top_votes"]
    ref, new = heap["0"]["ms"], heap["1"]["ms"]
    rows.append(
        [f"dense lookup + vote, {heap['1']['hits']:,} hits: heap kept", f"{ref:.2f}", f"{new:.2f}", f"{new / ref:.2f}"]
    )

    markdown_table(
        f"search costs, CPU ms (median of {args.repeats}), main {git_commit()}, load {os.getloadavg()[0]:.1f}",
        ["step", "reference", "now", "now / reference"],
        rows,
    )


if __name__ == "__main__":
    main()
