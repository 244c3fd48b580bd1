"""Bytes on disk per hour of audio of an index, part by part: segments (landmark postings), profiles, the rest.

Reads each index's files and catalogue (read-only; nothing is opened for
writing): the segment files, the profile blobs (``SUM(LENGTH(data))``,
inside the catalogue) and the catalogue's files (SQLite and its WAL) less
the profiles, per hour of the live tracks' audio::

    python benchmarks/index_size.py before.idx after.idx
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from _common import git_commit, markdown_table


def index_sizes(path: Path) -> dict[str, float]:
    """Hours of audio, postings, and the bytes of the segments, the profiles and the rest of the catalogue."""
    seg = sum(f.stat().st_size for f in (path / "segments").iterdir() if f.suffix == ".sgm")
    cat = sum(f.stat().st_size for f in path.glob("catalog.sqlite*"))
    with sqlite3.connect(f"file:{path / 'catalog.sqlite'}?mode=ro", uri=True) as c:
        prof = c.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM profiles").fetchone()[0]
        hours = c.execute("SELECT COALESCE(SUM(duration_s), 0) FROM tracks WHERE status = 'ok'").fetchone()[0] / 3600
        postings = c.execute("SELECT COALESCE(SUM(n_postings), 0) FROM segments").fetchone()[0]
    return {
        "hours": hours,
        "postings": postings,
        "segments": seg,
        "profiles": prof,
        "rest": cat - prof,
        "total": seg + cat,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path, nargs="+")
    args = ap.parse_args()
    rows = []
    for p in args.index:  # loop over indexes
        s = index_sizes(p)
        h = s["hours"] or float("nan")
        rows.append(
            [
                p.name,
                f"{s['hours']:,.2f}",
                f"{s['postings']:,}",
                f"{s['segments'] / max(s['postings'], 1):.2f}",
                *(f"{s[k] / 1e6 / h:.3f}" for k in ("segments", "profiles", "rest", "total")),
            ]
        )
    markdown_table(
        f"size on disk per hour of audio (songmine {git_commit()})",
        [
            "index",
            "hours",
            "postings",
            "segment bytes / posting",
            "segments MB/h",
            "profiles MB/h",
            "rest of catalogue MB/h",
            "total MB/h",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
