"""Calibrate the runner-up (margin) tests of ``identify`` on fresh non-member clips.

Cuts extra non-member clips exactly as ``songmine eval`` cuts its queries
(same split, same degradations, ``--per-cell`` clips per condition × duration,
query ids from ``--qid-base`` on, so they never coincide with the eval's own
ids 0–1,759), searches each once with the default ``SearchConfig`` through the
index that ``songmine eval --index P`` built, and records what the two margin
tests saw (the dense candidates of their last call) for every clip that
reached them:

* pooled ratio ``r``: most-voted track / runner-up track over every speed
  searched (``margin_alpha``, ``margin_tests``);
* per-speed ratio ``r_s``: the same track / the runner-up *of its own speed*
  (``speed_margin_alpha``, ``speed_margin_tests``);

both with the runner-up floored at ``margin_floor``. Prints the tail counts,
a Hill estimate of each tail index, and how many clips each test (and the
whole search) would answer — i.e. false positives.

    songmine eval LIBRARY --index INDEX                  # builds the index once
    PYTHONPATH=src python benchmarks/margin_null.py LIBRARY --index INDEX \\
        --qid-base 100000 --qid-base 200000          # fit set (1,560 clips)
    PYTHONPATH=src python benchmarks/margin_null.py ... --qid-base 300000    # check set (780 clips)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _common import fresh_clip_specs, git_commit, markdown_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("library", type=Path)
    ap.add_argument("--index", type=Path, required=True, help="index built by `songmine eval --index P` (same split)")
    ap.add_argument("--qid-base", type=int, action="append", help="first query id of a set (repeatable)")
    ap.add_argument("--per-cell", type=int, default=20, help="clips per condition x duration per set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "-o", "--option", action="append", default=[], help="SearchConfig KEY=VALUE (e.g. speed_margin_alpha=0)"
    )
    args = ap.parse_args(argv)

    import soxr

    from songmine.evaluation.queries import cut_queries
    from songmine.fingerprint import search as S
    from songmine.fingerprint.index import Index

    sc = S.SearchConfig(**{k: float(v) for k, v in (o.split("=", 1) for o in args.option)})
    cfg, specs, _, _ = fresh_clip_specs(args.library, args.seed, args.qid_base, args.per_cell)
    idx = Index(args.index)

    seen: list[list] = []
    orig = S._with_margin

    def spy(best, config):  # the dense candidates the margin tests judge (the last call is the final one)
        seen.append(list(best))
        return orig(best, config)

    rows = []  # (pooled r, per-speed r_s, answered, reached the margin tests)
    t0 = time.perf_counter()
    S._with_margin = spy
    try:
        for q in cut_queries(specs, cfg):
            if isinstance(q, tuple):
                print("skipped:", q[1], file=sys.stderr)
                continue
            seen.clear()
            y = soxr.resample(q.clip, q.sr, idx.config.sr, quality="HQ").astype(np.float32)
            res = S.search(idx, y, top=5, config=sc)
            answered = bool(res) and res[0].confidence >= sc.min_confidence
            cands = seen[-1] if seen else []
            if not cands or max(c.n_tracks_hit for c in cands) < sc.margin_min_tracks:
                rows.append((0.0, 0.0, answered, bool(cands)))
                continue
            top = max(cands, key=lambda c: c.votes)
            v2 = max((c.votes for c in cands if c.track_id != top.track_id), default=0)
            v2s = max((c.votes for c in cands if c.speed == top.speed and c.track_id != top.track_id), default=0)
            rs = top.votes / max(v2s, sc.margin_floor) if top.n_tracks_hit >= sc.margin_min_tracks else 0.0
            rows.append((top.votes / max(v2, sc.margin_floor), rs, answered, True))
    finally:
        S._with_margin = orig
    a = np.array([r[:2] for r in rows])
    n = len(rows)
    print(
        f"songmine {git_commit()} {' '.join(args.option)} · {n} non-member clips ({len(args.qid_base or [100000])} set(s), qid bases "
        f"{args.qid_base or [100000]}), {sum(r[3] for r in rows)} reached the margin tests, {time.perf_counter() - t0:.0f} s"
    )

    def accept_at(alpha, m):
        return (m / np.log(2)) ** (1 / alpha)

    tails = []
    for name, col, alpha, m in (
        ("pooled r", 0, sc.margin_alpha, sc.margin_tests),
        ("per-speed r_s", 1, sc.speed_margin_alpha, sc.speed_margin_tests),
    ):
        x = a[:, col]
        row = [name] + [int((x >= t).sum()) for t in (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)] + [f"{x.max():.2f}"]
        for r0 in (1.25, 2.0):
            tail = x[x >= r0]
            row.append(f"{len(tail) / np.sum(np.log(tail / r0)):.1f}" if tail.size > 1 else "–")
        row.append(f"{accept_at(alpha, m):.2f}" if alpha > 0 else "off")
        row.append(int((x >= accept_at(alpha, m)).sum()) if alpha > 0 else 0)
        tails.append(row)
    markdown_table(
        "Runner-up ratios of non-member clips (counts at or above)",
        [
            "ratio",
            "≥1.5",
            "≥2",
            "≥2.5",
            "≥3",
            "≥3.5",
            "≥4",
            "≥4.5",
            "max",
            "Hill α (r≥1.25)",
            "Hill α (r≥2)",
            "accepts at",
            "accepted",
        ],
        tails,
    )
    fp = sum(r[2] for r in rows)
    print(f"\nanswered by the whole search (false positives): {fp} / {n} = {100 * fp / max(n, 1):.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
