"""What segment checksums cost: opening a segment, and the lookups identify makes.

A segment's header, footer, block table and fences are checked when it is
opened; the rest whole at open when the body is at most
``segments.CHECK_AT_OPEN`` bytes, else block by block as lookups first touch
it (``docs/index.md``, "Integrity"). This measures, in one run:

1. **open** — per segment size: a plain memory map (the reference: what
   opening cost before checksums), opening with the lazy checks, and opening
   with the whole body checked (CPU ms, median of ``--repeats``);
2. **lookups** — the lookups ``identify.search`` makes for each clip of
   ``--clips`` (recorded once on ``--index``), replayed on every index size:
   with every block already checked (the reference: no check left to do),
   lazily checked on a freshly opened segment (the first pass: cold), and
   the same again (warm). CPU ms per clip; the hits are checked equal.

The bigger segments are ``--index``'s postings repeated with other track ids
(``--scale``: 20 → ~110 MB for the demo corpus' 458 k postings), written to
``--work``::

    PYTHONPATH=src python benchmarks/integrity_cost.py --index demo.idx \\
        --clips clips/ --work bench/ --scale 1,20,100
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import time
from pathlib import Path

import numpy as np
from _common import git_commit, markdown_table


def cpu_ms(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(1000 * (time.process_time() - t0))
    return statistics.median(out)


def record_lookups(index_path: Path, clips: list[Path]) -> list[list[tuple]]:
    """The lookup calls ``identify.search`` makes per clip: ``[(hashes, max_per_hash, max_hits), ...]``."""
    from songmine.audio import load
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.search import search

    per_clip = []
    with Index(index_path) as ix:
        real = ix.lookup
        for c in clips:
            calls: list[tuple] = []

            def spy(hashes, max_per_hash=None, max_hits=None, calls=calls):
                calls.append((np.array(hashes, copy=True), max_per_hash, max_hits))
                return real(hashes, max_per_hash, max_hits)

            ix.lookup = spy
            search(ix, load(c, sr=ix.config.sr, max_duration=60.0))
            per_clip.append(calls)
    return per_clip


def scaled_index(src: Path, dest: Path, scale: int) -> Path:
    """A copy of ``src`` whose one segment holds its postings ``scale`` times (other track ids)."""
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.segments import segment_checksum, write_segment
    from songmine.fingerprint.postings import Postings

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    with Index(src) as ix:
        ps = [s.data.decode() for s in ix._segments]
    h = np.concatenate([p.hashes for p in ps])
    tr = np.concatenate([p.tracks for p in ps])
    t = np.concatenate([p.times for p in ps])
    top = int(tr.max()) + 1
    big = Postings.from_unsorted(
        np.tile(h, scale), np.concatenate([tr + k * top for k in range(scale)]).astype(np.uint32), np.tile(t, scale)
    )
    for f in (dest / "segments").iterdir():
        f.unlink()
    name = "seg-999999.sgm"
    write_segment(dest / "segments" / name, big)
    with sqlite3.connect(dest / "catalog.sqlite") as c:
        c.execute("DELETE FROM segments")
        c.execute(
            "INSERT INTO segments(segment_id, file, n_postings, n_tracks, created, checksum) VALUES (?,?,?,?,?,?)",
            (999999, name, len(big), top * scale, time.time(), segment_checksum(dest / "segments" / name)),
        )
        c.execute("UPDATE settings SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--clips", type=Path, required=True, help="a folder of query clips")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--scale", default="1,20")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index import segments as seg_mod

    clips = sorted(p for p in args.clips.iterdir() if p.is_file())
    calls = record_lookups(args.index, clips)
    n_calls = sum(len(c) for c in calls)
    args.work.mkdir(parents=True, exist_ok=True)
    open_rows, lookup_rows = [], []
    for scale in [int(x) for x in args.scale.split(",")]:
        ix_path = scaled_index(args.index, args.work / f"x{scale}", scale)
        (seg_file,) = (ix_path / "segments").iterdir()
        size = seg_file.stat().st_size
        plain = cpu_ms(lambda: np.asarray(np.memmap(seg_file, dtype=np.uint8, mode="r")), args.repeats)
        seg_mod.CHECK_AT_OPEN = 0
        lazy = cpu_ms(lambda: seg_mod.open_segment(seg_file), args.repeats)
        seg_mod.CHECK_AT_OPEN = 1 << 62
        whole = cpu_ms(lambda: seg_mod.open_segment(seg_file), args.repeats)
        open_rows.append(
            [
                f"{size / 1e6:,.1f} MB",
                f"{plain:.2f}",
                f"{lazy:.2f}",
                f"{whole:.1f}",
                f"{lazy / plain:.1f}x" if plain else "-",
                f"{size / 1e6 / (whole / 1e3):,.0f} MB/s",
            ]
        )

        def replay(ix) -> tuple[list[float], list]:
            ms, hits = [], []
            for per in calls:  # loop over clips
                t0 = time.process_time()
                got = [ix.lookup(*c) for c in per]
                ms.append(1000 * (time.process_time() - t0))
                hits.append(got)
            return ms, hits

        seg_mod.CHECK_AT_OPEN = 1 << 62
        with Index(ix_path) as ix:  # every block checked at open: no check left for the lookups
            ref_ms, ref_hits = replay(ix)
            ref_ms, _ = replay(ix)  # warm caches, as the lazy warm pass
        seg_mod.CHECK_AT_OPEN = 0
        with Index(ix_path) as ix:
            cold_ms, cold_hits = replay(ix)
            warm_ms, warm_hits = replay(ix)
            checked = float(ix._segments[0].data.sums.checked.mean())
        for a, b, c in zip(ref_hits, cold_hits, warm_hits):
            for x, y, z in zip(a, b, c):
                assert all(np.array_equal(u, v) and np.array_equal(u, w) for u, v, w in zip(x, y, z))
        med = statistics.median
        lookup_rows.append(
            [
                f"{size / 1e6:,.1f} MB",
                len(clips),
                n_calls,
                f"{med(ref_ms):.2f}",
                f"{med(cold_ms):.2f}",
                f"{med(warm_ms):.2f}",
                f"{med(warm_ms) / med(ref_ms):.2f}x",
                f"{100 * checked:.1f} %",
            ]
        )
    commit = git_commit()
    markdown_table(
        f"Opening one segment, CPU ms (median of {args.repeats}; {commit})",
        ["segment", "plain mmap (reference)", "lazy checks", "whole body checked", "lazy / plain", "whole-check speed"],
        open_rows,
    )
    markdown_table(
        f"identify's lookups, CPU ms per clip (median over clips; {commit})",
        [
            "segment",
            "clips",
            "lookups",
            "all checked (reference)",
            "lazy, first pass",
            "lazy, second pass",
            "second / reference",
            "blocks checked after both",
        ],
        lookup_rows,
    )


if __name__ == "__main__":
    main()
