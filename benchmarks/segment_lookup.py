"""Index.lookup on the packed segment format (version 5) against the format and code before it (version 4).

The lookups identify makes for real clips (``docs/identify.md``, "Search
stages and scale"): per clip, the coarse landmarks (index density, dt
jitter) at every speed of ``SearchConfig.speeds`` within the coarse hit budget
— what a non-member clip does — and the dense query landmarks at speed 1
within ``max_hits``. Each ``--index`` (e.g. the 11-segment and the compacted
1,000-hour indexes of ``large_index.py``) answers the same hash sets three ways:

* **before**: revision ``--reference``'s code (imported as ``songmine_ref``)
  on a version-4 copy of the index — the same postings, 12 bytes each, in
  the same segments (made under ``--work`` by rewriting every segment, and
  reused when there);
* **now, version 4**: this code on that copy (what an index from before the
  packed format costs until it is compacted);
* **now**: this code on the index itself.

Every lookup's three arrays are checked equal across the three, and between
every index and the first one (the same hits grouped by query position; the
order inside a group is the catalogue order of the segments, so it is the
same too when the first index is the others compacted). Times are CPU
medians per lookup, the three interleaved lookup by lookup::

    PYTHONPATH=src nice -n 10 python benchmarks/segment_lookup.py --library LIBRARY \\
        --index L1/large.idx --index L11/large.idx --work V4COPIES --reference 8451e4e
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np
from _common import git_commit, markdown_table


def version4_copy(src: Path, dest: Path) -> Path:
    """``src`` with every registered segment rewritten as version 4 (same postings, same files, same order)."""
    from songmine.fingerprint.index.segments import open_segment, segment_checksum, write_segment

    if (dest / "catalog.sqlite").exists():
        return dest
    tmp = dest.with_name(dest.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "segments").mkdir(parents=True)
    with sqlite3.connect(src / "catalog.sqlite") as c:  # a consistent copy of the catalogue (WAL included)
        c.execute(f"VACUUM INTO '{tmp / 'catalog.sqlite'}'")
    with sqlite3.connect(tmp / "catalog.sqlite") as c:
        for (f,) in c.execute("SELECT file FROM segments").fetchall():  # loop over segments
            p = open_segment(src / "segments" / f).decode()
            write_segment(tmp / "segments" / f, p, version=4)
            del p
            c.execute("UPDATE segments SET checksum = ? WHERE file = ?", (segment_checksum(tmp / "segments" / f), f))
    tmp.rename(dest)
    return dest


def reference_index(rev: str, work: Path):
    """The ``Index`` class of revision ``rev`` (its ``src/songmine`` imported as ``songmine_ref``)."""
    import importlib
    import io
    import subprocess
    import tarfile

    root = Path(__file__).resolve().parent.parent
    dest = work / f"reference-{rev}"
    if not (dest / "songmine_ref").exists():
        tar = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", rev, "src/songmine"], capture_output=True, check=True
        ).stdout
        shutil.rmtree(dest, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(dest, filter="data")
        (dest / "src" / "songmine").rename(dest / "songmine_ref")
    sys.path.insert(0, str(dest))
    return importlib.import_module("songmine_ref.fingerprint.index").Index


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
    from songmine.fingerprint.landmarks import fingerprint, speed_fingerprinter
    from songmine.fingerprint.search import SearchConfig, expand_query

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
        out.append(
            ("dense", expand_query(*fingerprint(y, config, query=True), sc.dt_jitter)[0], sc.max_per_hash, sc.max_hits)
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--index",
        action="append",
        required=True,
        type=Path,
        help="an index (repeatable); the first is the one the others must equal (e.g. the compacted)",
    )
    ap.add_argument("--library", type=Path, required=True, help="audio files the clips are cut from")
    ap.add_argument("--work", type=Path, required=True, help="where the version-4 copies go (reused when there)")
    ap.add_argument("--reference", required=True, help="git revision of the code before the packed format")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3, help="passes over all lookups (medians over all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from songmine.fingerprint.heap import keep_heap
    from songmine.fingerprint.index import Index
    from songmine.library import iter_audio_files

    keep_heap()  # as identify's processes do
    args.work.mkdir(parents=True, exist_ok=True)
    RefIndex = reference_index(args.reference, args.work)
    files = list(iter_audio_files([args.library]))
    now = [Index(p) for p in args.index]
    copies = []
    for k, p in enumerate(args.index):
        t0 = time.perf_counter()
        copies.append(version4_copy(p, args.work / f"v4-{k}-{p.parent.name}-{p.name}"))
        print(f"{p}: version-4 copy {copies[-1]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    qs = queries(files, now[0].config, args.clips, args.seconds, args.seed)
    first: list = []
    rows = []
    for k, (ix, v4) in enumerate(zip(now, copies)):  # loop over indexes
        before, now4 = RefIndex(v4), Index(v4)
        cells = {"before": before.lookup, "now, v4": now4.lookup, "now": ix.lookup}
        for _, h, mph, mh in qs[:3]:  # warm-up: imports, page cache
            for fn in cells.values():
                fn(h, mph, mh)
        times: dict[tuple[str, str], list[float]] = {}
        hits: dict[str, list[int]] = {}
        for rep in range(args.repeats):
            for j, (kind, h, mph, mh) in enumerate(qs):
                got = {}
                for name, fn in cells.items():
                    t0 = time.process_time()
                    got[name] = fn(h, mph, mh)
                    times.setdefault((kind, name), []).append(time.process_time() - t0)
                if rep == 0:
                    for name in ("now, v4", "now"):
                        for a, b in zip(got["before"], got[name]):
                            assert np.array_equal(a, b), f"{ix.path}: lookup {j} of '{name}' differs from 'before'"
                    if k == 0:
                        first.append(got["now"])
                    else:
                        assert _same_hits(first[j], got["now"]), f"{ix.path}: lookup {j} differs from {now[0].path}"
                    hits.setdefault(kind, []).append(int(got["now"][0].shape[0]))
        size4 = sum(f.stat().st_size for f in (v4 / "segments").iterdir())
        size5 = sum(f.stat().st_size for f in (ix.path / "segments").iterdir())
        for kind in dict.fromkeys(q[0] for q in qs):
            med = {name: 1e3 * float(np.median(times[(kind, name)])) for name in cells}
            rows.append(
                [
                    f"{ix.path} ({ix.n_segments} seg, {ix.n_postings / 1e6:.1f} M; {size4 / 1e9:.2f} → "
                    f"{size5 / 1e9:.2f} GB)",
                    kind,
                    len(hits[kind]),
                    f"{np.median(hits[kind]):,.0f}",
                    f"{med['before']:.2f}",
                    f"{med['now, v4']:.2f}",
                    f"{med['now']:.2f}",
                    f"{med['now'] / med['before']:.2f}",
                    f"{med['now'] / med['now, v4']:.2f}",
                ]
            )
        before.close()
        now4.close()
    markdown_table(
        f"Index.lookup, CPU ms per lookup (median of {args.repeats} passes), {args.clips} clips of "
        f"{args.seconds:g} s x (11 coarse + 1 dense); before = {args.reference} on a version-4 copy; "
        f"songmine {git_commit()}, load {os.getloadavg()[0]:.1f}; results equal across the three and "
        f"to the first index",
        [
            "index (segments, postings; v4 → v5 bytes)",
            "lookup",
            "n",
            "median hits",
            "before ms",
            "now on v4 ms",
            "now ms",
            "now / before",
            "now / now on v4",
        ],
        rows,
    )
    for ix in now:
        ix.close()


if __name__ == "__main__":
    main()
