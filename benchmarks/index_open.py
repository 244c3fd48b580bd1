"""What a process pays to open an index and serve from it: open time, and memory after opening and after queries.

Each round runs in a fresh process (as a server worker starts): import
songmine, open the index (``Index(path)``: the catalogue snapshot, every
segment mapped, its header, block table and lookup tables checked), then
identify ``--clips`` real clips. It reports the open's wall and CPU time and
the process's memory (``/proc/self/status``) after the import, after the open
and after the clips (and, last, what listing a page of tracks costs): ``RssAnon`` (private memory: the track table, the
decoded hashes of small segments, numpy's buffers) and ``RssFile`` (pages of
the memory-mapped segments the process touched: shared with every other
process mapping them, and dropped by the kernel under pressure). The segment
files are read once first, so the page cache is warm and the times are
those of a server restarting, not of a cold disk::

    PYTHONPATH=src nice -n 10 python benchmarks/index_open.py --index large.idx --library LIBRARY --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import git_commit, markdown_table


def _status() -> dict[str, float]:
    """VmRSS, RssAnon, RssFile of this process, MB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) / 1024
    return out


def child(index: Path, library: Path | None, clips: int, seed: int) -> dict:
    """One round, in this (fresh) process."""
    out = {"start": _status()}
    import songmine
    from songmine.fingerprint.index import Index

    out["imported"] = _status()
    w0, c0 = time.perf_counter(), time.process_time()
    ix = Index(index)
    out["open_wall_ms"] = 1e3 * (time.perf_counter() - w0)
    out["open_cpu_ms"] = 1e3 * (time.process_time() - c0)
    out["opened"] = _status()
    out["segments"], out["tracks"], out["hours"] = ix.n_segments, ix.n_tracks, ix.duration_s / 3600
    out["table_mb"] = ix._tracks.nbytes / 1e6
    if library is not None and clips:
        from songmine import audio
        from songmine.library import iter_audio_files

        files = sorted(iter_audio_files([library]))
        rng = np.random.default_rng(seed)
        cpu = []
        for f in rng.choice(len(files), size=min(clips, len(files)), replace=False):  # loop over clips
            start = float(rng.uniform(0, max(audio.info(files[f]).duration_s - 10.0, 0)))
            y = audio.load(files[f], sr=ix.config.sr, offset=start, duration=10.0)
            c = time.process_time()
            songmine.identify(ix, y)
            cpu.append(time.process_time() - c)
        out["queried"] = _status()
        out["query_cpu_ms"] = 1e3 * float(np.median(cpu))
    out["listing"] = _listing(ix)
    ix.close()
    return out


def _listing(ix) -> dict[str, tuple[float, float]]:
    """A page of 50 tracks as the server lists them (the ids, then the page's records) against
    every live track's record (the reference): CPU ms (mean of 3) and traced peak MB, each."""
    import tracemalloc

    ways = {
        "page": lambda: [ix.track(int(i)) for i in ix.track_ids()[:50]],
        "every record": lambda: ix.tracks()[:50],
    }
    out = {}
    for name, make in ways.items():  # loop over the two ways
        make()
        tracemalloc.start()
        make()
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        c = time.process_time()
        for _ in range(3):  # loop over repeats
            make()
        out[name] = (1e3 * (time.process_time() - c) / 3, peak)
    return out


def warm(path: Path) -> None:
    """Read the index's files once (a warm page cache)."""
    for f in [*sorted((path / "segments").iterdir()), path / "catalog.sqlite"]:
        with open(f, "rb") as fh:
            while fh.read(1 << 26):
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, action="append", required=True, help="an index (repeatable)")
    ap.add_argument("--library", type=Path, default=None, help="audio files to cut 10-s query clips from")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per index (medians)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.index[0], args.library, args.clips, args.seed)))
        return

    rows, lists = [], []
    for path in args.index:  # loop over indexes
        warm(path)
        runs = []
        for _ in range(args.rounds):  # loop over fresh processes
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "--index",
                str(path),
                "--clips",
                str(args.clips),
                "--seed",
                str(args.seed),
            ] + (["--library", str(args.library)] if args.library else [])
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
            runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        med = lambda f: float(np.median([f(r) for r in runs]))  # noqa: E731
        size = sum(f.stat().st_size for f in (path / "segments").iterdir()) + (path / "catalog.sqlite").stat().st_size
        r0 = runs[0]
        row = [
            f"{path} ({r0['hours']:,.1f} h, {r0['tracks']:,} tracks, {r0['segments']} seg, {size / 1e9:.2f} GB)",
            f"{med(lambda r: r['open_wall_ms']):.0f}",
            f"{med(lambda r: r['open_cpu_ms']):.0f}",
            f"{med(lambda r: r['opened']['RssAnon'] - r['imported']['RssAnon']):.0f}",
            f"{med(lambda r: r['opened']['RssFile'] - r['imported']['RssFile']):.0f}",
            f"{med(lambda r: r['opened']['VmRSS']):.0f}",
            f"{med(lambda r: r['table_mb']):.1f}",
        ]
        if "queried" in r0:
            row += [
                f"{med(lambda r: r['queried']['RssAnon'] - r['imported']['RssAnon']):.0f}",
                f"{med(lambda r: r['queried']['RssFile'] - r['imported']['RssFile']):.0f}",
                f"{med(lambda r: r['queried']['VmRSS']):.0f}",
                f"{med(lambda r: r['query_cpu_ms']):.1f}",
            ]
        else:
            row += ["–"] * 4
        rows.append(row)
        lists.append(
            [
                row[0],
                *(
                    f"{med(lambda r, w=w, i=i: r['listing'][w][i]):.1f}"
                    for w in ("page", "every record")
                    for i in (0, 1)
                ),
                f"{med(lambda r: r['listing']['page'][0] / r['listing']['every record'][0]):.4f}",
            ]
        )
    markdown_table(
        f"opening an index in a fresh process (medians of {args.rounds}; warm page cache; MB; "
        f"{args.clips} clips of 10 s after opening); songmine {git_commit()}, load {os.getloadavg()[0]:.1f}",
        [
            "index",
            "open wall ms",
            "open CPU ms",
            "+anon after open",
            "+file after open",
            "RSS after open",
            "track table",
            "+anon after clips",
            "+file after clips",
            "RSS after clips",
            "CPU ms per clip (median)",
        ],
        rows,
    )
    markdown_table(
        "a page of 50 tracks as the server lists them (the live ids, then the page's records) against "
        "every live track's record (reference); CPU ms (mean of 3), traced peak MB; medians over the processes",
        ["index", "page CPU ms", "page peak MB", "every record CPU ms", "every record peak MB", "CPU ratio"],
        lists,
    )


if __name__ == "__main__":
    main()
