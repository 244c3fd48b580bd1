"""Calibrate the profile verification of ``identify`` (stage 4) on fresh non-member clips.

Cuts non-member clips exactly as ``songmine eval`` cuts its queries (same
split, same degradations, ``--per-cell`` clips per condition × duration, query
ids from each ``--qid-base`` on, so they never coincide with the eval's own
ids 0–1,759), from one half of the held-out tracks (``--tracks even|odd``:
fit on one half, check on the other) or all of them, and searches each with
verification measuring only (thresholds at infinity) unless ``-o`` sets them.
For every clip that the votes leave unanswered it records the largest
``z_bands`` and ``z_chroma`` among the verified candidates, then prints:

* the upper tail of both per-clip maxima (quantiles, by duration: their chance
  distribution should not depend on the clip length);
* a Gumbel fit of each maximum (scale ``β = sd·√6/π``, location
  ``μ = mean − 0.5772 β``) and the threshold ``at`` where a chance maximum
  exceeds it with probability ``--rate``: ``μ − β ln(−ln(1 − rate))``;
* how many clips the given ``-o`` thresholds would answer (false positives).

With ``--members N`` it also cuts N member clips per cell of the noisy
conditions and reports how many the votes miss and the profiles would take.

    PYTHONPATH=src python benchmarks/verify_null.py LIBRARY --index INDEX \\
        --tracks even --qid-base 100000 --qid-base 200000          # fit
    PYTHONPATH=src python benchmarks/verify_null.py ... --tracks odd --qid-base 300000 \\
        -o verify_bands_at=... -o verify_chroma_at=...             # check
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from _common import fresh_clip_specs, git_commit, markdown_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("library", type=Path)
    ap.add_argument(
        "--index", type=Path, required=True, help="index of the eval split's indexed tracks (built if missing)"
    )
    ap.add_argument("--qid-base", type=int, action="append", help="first query id of a set (repeatable)")
    ap.add_argument("--per-cell", type=int, default=20, help="clips per condition x duration per set")
    ap.add_argument("--tracks", choices=("all", "even", "odd"), default="all", help="which held-out tracks")
    ap.add_argument("--members", type=int, default=0, help="member clips per noisy cell (rescue rate)")
    ap.add_argument("--rate", type=float, default=0.001, help="chance rate of each threshold (per clip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="processes to build the index with")
    ap.add_argument(
        "--timing",
        action="store_true",
        help="also time each non-member search without the stage and with it (CPU, same run)",
    )
    ap.add_argument("--save", type=Path, help="write every clip's row as JSON lines here")
    ap.add_argument("-o", "--option", action="append", default=[], help="SearchConfig KEY=VALUE")
    args = ap.parse_args(argv)

    import soxr

    from songmine.evaluation.degrade import source_seconds
    from songmine.evaluation.queries import QuerySpec, cut_queries
    from songmine.fingerprint import heap
    from songmine.fingerprint import search as S
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.build import index_files

    opts = {"verify_bands_at": math.inf, "verify_chroma_at": math.inf}
    opts.update({k: float(v) for k, v in (o.split("=", 1) for o in args.option)})
    sc = S.SearchConfig(**opts)
    cfg, specs, indexed, durs = fresh_clip_specs(
        args.library, args.seed, args.qid_base, args.per_cell, tracks=args.tracks
    )
    if not args.index.exists():
        with Index(args.index, create=True) as ix:
            index_files(ix, indexed, jobs=args.jobs)
    idx = Index(args.index)
    heap.keep_heap()
    cells = cfg.cells
    longest = max(source_seconds(c, d) for c, d in cells) + 1.0
    others = {s.track for s in specs}
    noisy = [(c, d) for c, d in cells if c in ("white5", "white0", "pink5", "reverb_noise10")]
    members = [str(p) for p in indexed if durs[str(p)] >= longest]
    for k in range(args.members * len(noisy)):
        cond, dur = noisy[k % len(noisy)]
        specs.append(QuerySpec(900000 + k, members[(k // len(noisy) + k) % len(members)], True, cond, dur))

    rows = []  # (member, duration, answered by votes, answered, right, max z_bands, max z_chroma)
    times: list[tuple[float, float]] = []  # CPU s of a non-member search without / with the stage
    no_stage = dataclasses.replace(sc, verify_candidates=0)
    t0 = time.perf_counter()
    for q in cut_queries(specs, cfg):
        if isinstance(q, tuple):
            print("skipped:", q[1], file=sys.stderr)
            continue
        y = soxr.resample(q.clip, q.sr, idx.config.sr, quality="HQ").astype(np.float32)
        res = S.search(idx, y, top=5, config=sc)
        if args.timing and not q.spec.member:
            pair = []
            for c in (no_stage, sc):  # the two configs alternate, so load drifts hit both alike
                t = time.process_time()
                S.search(idx, y, top=5, config=c)
                pair.append(time.process_time() - t)
            times.append((pair[0], pair[1]))
        by_votes = bool(res) and np.isnan(res[0].z_bands) and res[0].confidence >= sc.min_confidence
        answered = bool(res) and res[0].confidence >= sc.min_confidence
        right = answered and Path(idx.track(res[0].track_id).path).name == Path(q.spec.track).name
        zb = max((c.z_bands for c in res if not np.isnan(c.z_bands)), default=np.nan)
        zc = max((c.z_chroma for c in res if not np.isnan(c.z_chroma)), default=np.nan)
        rows.append((q.spec.member, q.spec.duration_s, by_votes, answered, right, zb, zc))
        if args.save:
            with open(args.save, "a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "qid": q.spec.qid,
                            "track": Path(q.spec.track).name,
                            "member": q.spec.member,
                            "condition": q.spec.condition,
                            "duration_s": q.spec.duration_s,
                            "by_votes": bool(by_votes),
                            "answered": bool(answered),
                            "right": bool(right),
                            "z_bands": None if np.isnan(zb) else float(zb),
                            "z_chroma": None if np.isnan(zc) else float(zc),
                            "candidates": [
                                [
                                    int(c.track_id),
                                    int(c.votes),
                                    float(c.confidence),
                                    None if np.isnan(c.z_bands) else float(c.z_bands),
                                    None if np.isnan(c.z_chroma) else float(c.z_chroma),
                                ]
                                for c in res
                            ],
                        }
                    )
                    + "\n"
                )
    non = [r for r in rows if not r[0]]
    n = len(non)
    print(
        f"songmine {git_commit()} {' '.join(args.option)} · {n} non-member clips from {len(others)} held-out tracks "
        f"({args.tracks}), qid bases {args.qid_base or [100000]}, {time.perf_counter() - t0:.0f} s"
    )

    table = []
    for name, col in (("z_bands", 5), ("z_chroma", 6)):
        for dur in sorted({r[1] for r in non}) + [None]:
            x = np.array([r[col] for r in non if (dur is None or r[1] == dur) and not np.isnan(r[col])])
            if x.size < 2:
                continue
            beta = float(np.std(x) * math.sqrt(6) / math.pi)
            mu = float(np.mean(x) - 0.5772 * beta)
            at = mu - beta * math.log(-math.log(1 - args.rate))
            q = np.quantile(x, [0.5, 0.99, 0.999]) if x.size >= 1000 else np.quantile(x, [0.5, 0.99, 0.99])
            table.append(
                [
                    name,
                    "all" if dur is None else f"{dur:g} s",
                    x.size,
                    f"{q[0]:.2f}",
                    f"{q[1]:.2f}",
                    f"{q[2]:.2f}" if x.size >= 1000 else "–",
                    f"{x.max():.2f}",
                    f"{beta:.3f}",
                    f"{at:.2f}",
                ]
            )
    markdown_table(
        "Largest profile statistic per unanswered non-member clip",
        ["statistic", "clips", "n", "median", "q99", "q99.9", "max", "Gumbel β", f"at (rate {args.rate:g})"],
        table,
    )
    fp = sum(r[3] for r in non)
    fp_votes = sum(r[2] for r in non)
    print(
        f"\nnon-members answered: {fp} / {n} = {100 * fp / max(n, 1):.2f} % ({fp_votes} by the votes, "
        f"{fp - fp_votes} by the profiles)"
    )
    if times:
        a = np.array(times) * 1000
        markdown_table(
            "CPU ms per non-member search, same run",
            ["", "without stage 4", "with stage 4", "ratio"],
            [
                [
                    f"median of {len(a)}",
                    f"{np.median(a[:, 0]):.2f}",
                    f"{np.median(a[:, 1]):.2f}",
                    f"{np.median(a[:, 1]) / np.median(a[:, 0]):.2f}",
                ],
                [
                    "p95",
                    f"{np.quantile(a[:, 0], 0.95):.2f}",
                    f"{np.quantile(a[:, 1], 0.95):.2f}",
                    f"{np.quantile(a[:, 1], 0.95) / np.quantile(a[:, 0], 0.95):.2f}",
                ],
            ],
        )
    mem = [r for r in rows if r[0]]
    if mem:
        missed = [r for r in mem if not r[2]]
        print(
            f"member clips: {len(mem)}; the votes answer {len(mem) - len(missed)}; of the {len(missed)} left, "
            f"the profiles answer {sum(r[3] for r in missed)} ({sum(r[4] for r in missed)} right)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
