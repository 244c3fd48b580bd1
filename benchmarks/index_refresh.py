"""What a reader pays to refresh after another process commits: the new rows alone against the whole table.

A server worker refreshes its snapshot after every commit of the writer (an
indexing run commits a batch at a time). Each round, a child process commits
``--tracks`` synthetic tracks (random hashes, as the real commit path writes
them); then this process refreshes from the snapshot it held before the
commit twice, in alternating order: as ``Index.refresh`` does (the rows above
the snapshot's highest track id, appended to its table) and as it must when a
track row was changed (the whole tracks table, read a chunk at a time). CPU
time, then in a second pass the peak of Python's traced memory (tracing slows
the code down, so it is not timed). Both refreshes must give the same tracks.

**The index is written to**: ``--commits`` × ``--tracks`` tracks are added
(under ``/benchmark/``; their postings are random). Use a scratch index, e.g.
``large_index.py``'s::

    PYTHONPATH=src nice -n 10 python benchmarks/index_refresh.py --index SCRATCH.idx --commits 6 --tracks 100
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
import tracemalloc

import numpy as np
from _common import git_commit, markdown_table

_WRITER = r"""
import sys
import numpy as np
from songmine.fingerprint.index import Index
from songmine.fingerprint.index.store import NewTrack

path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)
with Index(path) as ix:
    ix._add_tracks([
        NewTrack(f"/benchmark/{seed}-{i}.ogg", f"{seed:016x}{i:048x}", 0, 0, 180.0, None, None, None,
                 rng.integers(0, 2**32, 2000, dtype=np.uint64).astype(np.uint32),
                 np.sort(rng.integers(0, 15_000, 2000)).astype(np.uint32))
        for i in range(n)
    ])
"""


def _refresh(index, before, *, whole: bool, traced: bool) -> tuple[float, float, object]:
    """Refresh ``index`` from the snapshot ``before``: (CPU s, traced peak bytes, the tracks)."""
    index._snap = dataclasses.replace(before, tracks_rewrites=None) if whole else before
    if traced:
        tracemalloc.start()
    t0 = time.process_time()
    assert index.refresh()
    cpu = time.process_time() - t0
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    if traced:
        tracemalloc.stop()
    return cpu, peak, index._snap.tracks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True, help="a scratch index: tracks are added to it")
    ap.add_argument("--commits", type=int, default=6)
    ap.add_argument("--tracks", type=int, default=100, help="tracks per commit")
    args = ap.parse_args()

    from songmine.fingerprint.index import Index

    cpu: dict[bool, list[float]] = {False: [], True: []}
    peak: dict[bool, list[float]] = {False: [], True: []}
    with Index(args.index) as index:
        for k in range(args.commits):
            before = index._snap
            seed = os.getpid() * 1000 + k
            subprocess.run([sys.executable, "-c", _WRITER, args.index, str(args.tracks), str(seed)], check=True)
            for traced in (False, True):
                got = {}
                for whole in (k % 2 == 0, k % 2 == 1):  # alternate which goes first
                    c, p, got[whole] = _refresh(index, before, whole=whole, traced=traced)
                    (peak if traced else cpu)[whole].append(p if traced else c)
                assert dict(got[True].items()) == dict(got[False].items()), "the two refreshes differ"
        n = index.n_tracks
    ref_cpu, new_cpu = np.median(cpu[True]) * 1e3, np.median(cpu[False]) * 1e3
    ref_mem, new_mem = np.median(peak[True]) / 1e6, np.median(peak[False]) / 1e6
    markdown_table(
        f"refresh after a {args.tracks}-track commit, {n:,} tracks, medians of {args.commits}, "
        f"main {git_commit()}, load {os.getloadavg()[0]:.1f}",
        ["refresh", "CPU ms", "traced peak MB"],
        [
            ["the whole tracks table (reference)", f"{ref_cpu:.1f}", f"{ref_mem:.1f}"],
            ["the rows committed since", f"{new_cpu:.1f}", f"{new_mem:.1f}"],
            ["ratio", f"{new_cpu / ref_cpu:.3f}", f"{new_mem / ref_mem:.3f}"],
        ],
    )


if __name__ == "__main__":
    main()
