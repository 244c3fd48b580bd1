"""What an indexing run holds beyond the open index, against the size of the catalogue it adds to.

``songmine index`` re-run over a large library must not hold a table of every
indexed track to decide what to skip. For each catalogue size N (``--catalogue``),
a scratch index gets N catalogue-only tracks (rows with a real-looking content
hash and a path that does not exist, no postings: the cost under study is per
track, not per posting); then a fresh process opens a copy of it and runs
``index_files`` over ``--audio`` twice: the first run adds the files, the second
finds them all unchanged. Printed per run: the peak of Python's traced memory
during the run above what the opened index already held (the reference is the
first run's figure beside the empty catalogue, N = 0, measured in the same
invocation),
and the largest RSS any worker process reached.

Everything is written under ``--work`` (removed and rebuilt per size when
``--rebuild``)::

    PYTHONPATH=src nice -n 10 python benchmarks/index_run_memory.py --audio LIBRARY --files 8 \\
        --catalogue 0,16000,160000 --work /tmp/run-memory
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from _common import git_commit, markdown_table

_CHUNK = 20_000


def build_catalogue(path: Path, n: int) -> None:
    """A fresh index at ``path`` with ``n`` catalogue-only tracks (no postings)."""
    import numpy as np

    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.store import NewTrack

    empty = np.zeros(0, dtype=np.uint32)
    with Index(path, create=True) as ix:
        for lo in range(0, n, _CHUNK):  # loop over commits
            ix._add_tracks(
                [
                    NewTrack(
                        f"/synthetic/{i // 1000:03d}/{i:07d}.flac",
                        hashlib.sha256(f"synthetic {i}".encode()).hexdigest(),
                        30_000_000,
                        0,
                        180.0,
                        f"Track {i}",
                        None,
                        None,
                        empty,
                        empty,
                    )
                    for i in range(lo, min(n, lo + _CHUNK))
                ]
            )


def child(index: Path, audio: list[str], jobs: int) -> dict:
    """Open ``index``, run ``index_files`` over ``audio`` twice, each under tracemalloc."""
    import tracemalloc

    from songmine.fingerprint.index import Index, index_files

    out: dict = {}
    with Index(index) as ix:
        out["tracks"] = ix.n_tracks
        for name in ("adds", "unchanged"):  # loop over the two runs
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            rep = index_files(ix, audio, jobs=jobs)
            out[name] = {
                "peak_mb": (tracemalloc.get_traced_memory()[1] - base) / 1e6,
                "added": rep.added,
                "unchanged": rep.unchanged,
                "failed": len(rep.failed),
            }
            tracemalloc.stop()
    out["worker_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, required=True, help="a folder of audio files (the run's input)")
    ap.add_argument("--files", type=int, default=8, help="take the first N audio files of --audio (sorted)")
    ap.add_argument("--catalogue", default="0,16000,160000", help="catalogue sizes, comma-separated")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for the indexes")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rebuild", action="store_true", help="rebuild the catalogues even when present")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        index, files = args.child
        print(json.dumps(child(Path(index), json.loads(files), args.jobs)))
        return

    from songmine.library import iter_audio_files

    files = sorted(str(p) for p in iter_audio_files([args.audio]))[: args.files]
    if not files:
        print(f"{args.audio}: no audio files", file=sys.stderr)
        raise SystemExit(2)
    sizes = [int(x) for x in args.catalogue.split(",")]
    if 0 not in sizes:
        sizes.insert(0, 0)  # the reference
    args.work.mkdir(parents=True, exist_ok=True)
    results = {}
    for n in sizes:  # loop over catalogue sizes
        base = args.work / f"catalogue-{n}"
        if args.rebuild and base.exists():
            shutil.rmtree(base)
        if not base.exists():
            build_catalogue(base, n)
        run = args.work / "run.idx"
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(base, run)
        cmd = [sys.executable, __file__, "--audio", str(args.audio), "--work", str(args.work)]
        cmd += ["--jobs", str(args.jobs), "--child", str(run), json.dumps(files)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            raise SystemExit(res.returncode)
        results[n] = json.loads(res.stdout.strip().splitlines()[-1])
        shutil.rmtree(run)

    ref = results[0]
    rows = []
    for r in results.values():
        rows.append(
            [
                f"{r['tracks']:,}",
                f"{r['adds']['added']} added, {r['adds']['failed']} failed",
                f"{r['adds']['peak_mb']:.1f}",
                f"{r['adds']['peak_mb'] / ref['adds']['peak_mb']:.2f}",
                f"{r['unchanged']['unchanged']} unchanged",
                f"{r['unchanged']['peak_mb']:.1f}",
                f"{r['unchanged']['peak_mb'] / ref['adds']['peak_mb']:.2f}",
                f"{r['worker_max_rss_mb']:.0f}" if args.jobs > 1 else "– (one job: in this process)",
            ]
        )
    markdown_table(
        f"an indexing run over {len(files)} files beside a catalogue of N tracks (traced peak above the "
        f"open index, MB; ratio to the first run's with N = 0); songmine {git_commit()}, {args.jobs} jobs, load {os.getloadavg()[0]:.1f}",
        [
            "tracks already indexed",
            "first run",
            "peak MB",
            "ratio",
            "second run",
            "peak MB",
            "ratio",
            "worker max RSS MB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
