"""Threshold and b×r experiments for the onset-peak seed method (onset peaks → MinHash → LSH).

Indexes the first ``--tracks`` tracks of a library with the seed method (1–11 s
window), holds the rest out, and asks three kinds of query:

* ``aligned`` — the same 1–11 s window, degraded (clean, white noise 15 dB,
  mp3 32 kbps, −20 dB gain): the setting the method was designed for;
* ``shift0.5`` — the window starting 0.5 s later (1.5–11.5 s), clean: a clip
  that is not cut at exactly the same place;
* ``middle`` — a 10-s clip from a random place in the song, clean: what a
  user would actually record.

Held-out tracks give non-member queries (same three kinds). Peak frames are
computed once per query, then every LSH shape (b × r, all with 100
permutations) and every Jaccard threshold is evaluated on them.

Per (b × r, threshold, kind): precision = right top-1 / answered, recall =
right top-1 / member queries, no-match rate = unanswered / member queries,
false-positive rate = answered non-member queries / non-member queries, and
the mean number of LSH candidates per query (the original's single 433-bucket
table is also simulated, to show what the per-band tables fixed). The library
defaults to the demo music (``songmine demo-corpus``).

    PYTHONPATH=src python benchmarks/thresholds.py [--library DIR] --plot thresholds.png
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import library_or_demo


def original_buggy_candidates(sigs: np.ndarray, q: np.ndarray, n_bands: int, n_rows: int, n_buckets: int = 433) -> int:
    """Candidates under the original's defects: every band of every track in ONE table of 433 buckets."""
    bands = sigs.reshape(sigs.shape[0], n_bands, n_rows).astype(np.uint64)
    qb = q.reshape(n_bands, n_rows).astype(np.uint64)
    # the original hashed a band's tuple with Python's hash() % 433; any fixed hash shows the effect
    w = np.array([1000003**i % (2**61 - 1) for i in range(n_rows)], dtype=np.uint64)
    tb = (bands * w).sum(axis=2) % np.uint64(n_buckets)  # (n_tracks, n_bands)
    qk = (qb * w).sum(axis=1) % np.uint64(n_buckets)
    return int(np.count_nonzero(np.isin(tb, qk).any(axis=1)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", help="folder of audio (default: the demo music)")
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--thresholds", default="0.1,0.2,0.3,0.4,0.6")
    ap.add_argument("--shapes", default="20x5,25x4,10x10,50x2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args(argv)

    from songmine.audio import load
    from songmine.evaluation.degrade import degrade
    from songmine.library import iter_audio_files
    from songmine.minhash.onset import SeedConfig, SeedIndex, onset_peak_frames

    rng = np.random.default_rng(args.seed)
    files = sorted(iter_audio_files([library_or_demo(args.library)]))
    order = rng.permutation(len(files))
    members = [files[i] for i in order[: args.tracks]]
    others = [files[i] for i in order[args.tracks :]]
    base = SeedConfig()
    sr = base.sr
    t0 = time.perf_counter()
    member_peaks, queries = [], []  # queries: (kind, condition, true_track or -1, peaks)
    for role, group in (("member", members), ("non-member", others)):
        for k, f in enumerate(group):  # loop over files
            y = load(f, sr=sr)
            win = y[int(base.offset_s * sr) : int((base.offset_s + base.duration_s) * sr)]
            truth = k if role == "member" else -1
            if role == "member":
                member_peaks.append(onset_peak_frames(win, base))
            for cond in ("clean", "white15", "mp3_32k", "gain-20"):
                q = win if cond == "clean" else degrade(win, sr, cond, random_state=args.seed + k)
                queries.append(("aligned", cond, truth, onset_peak_frames(q, base)))
            sh = y[int((base.offset_s + 0.5) * sr) : int((base.offset_s + 0.5 + base.duration_s) * sr)]
            queries.append(("shift0.5", "clean", truth, onset_peak_frames(sh, base)))
            if y.size > (base.duration_s + 30) * sr:
                start = rng.uniform(20.0, y.size / sr - base.duration_s - 5)
                mid = y[int(start * sr) : int((start + base.duration_s) * sr)]
                queries.append(("middle", "clean", truth, onset_peak_frames(mid, base)))
    t_feat = time.perf_counter() - t0
    n_mem = {kind: sum(1 for q in queries if q[0] == kind and q[2] >= 0) for kind in ("aligned", "shift0.5", "middle")}
    n_non = {kind: sum(1 for q in queries if q[0] == kind and q[2] < 0) for kind in ("aligned", "shift0.5", "middle")}
    print(
        f"{len(members)} indexed tracks, {len(others)} held out; {len(queries)} queries "
        f"(member: {n_mem}, non-member: {n_non}); features in {t_feat:.0f} s"
    )
    print(
        f"peaks per indexed 10-s window: median {np.median([p.size for p in member_peaks]):.0f} "
        f"of {base.n_frames} frames"
    )

    thresholds = [float(t) for t in args.thresholds.split(",")]
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    rows = []
    for b, r in shapes:  # loop over LSH shapes
        cfg = SeedConfig(n_bands=b, n_rows=r, threshold=min(thresholds))
        idx = SeedIndex(cfg)
        for k, p in enumerate(member_peaks):
            idx.add_peaks(k, str(members[k]), p)
        results = [(kind, cond, truth, idx.query_peaks(p, top=1, threshold=1e-9)) for kind, cond, truth, p in queries]
        n_cand = {kind: np.mean([len(res.candidates) for kk, _, _, res in results if kk == kind]) for kind in n_mem}
        buggy = np.mean(
            [
                original_buggy_candidates(idx.signatures, idx.hasher.signature(p), b, r)
                for kind, _, _, p in queries
                if kind == "aligned"
            ]
        )
        for t in thresholds:
            for kind in ("aligned", "shift0.5", "middle"):
                answered = right = fp = 0
                for kk, _cond, truth, res in results:
                    if kk != kind:
                        continue
                    top = res.candidates[0] if res.candidates else None
                    ans = top is not None and top["jaccard"] >= t
                    if truth >= 0:
                        answered += ans
                        right += ans and top["track_id"] == truth
                    else:
                        fp += ans
                prec = right / answered if answered else float("nan")
                rows.append(
                    dict(
                        shape=f"{b}x{r}",
                        threshold=t,
                        kind=kind,
                        precision=prec,
                        recall=right / n_mem[kind],
                        no_match=1 - answered / n_mem[kind],
                        fp=fp / max(n_non[kind], 1),
                        cands=n_cand[kind],
                        buggy=buggy,
                    )
                )

    print(
        "\n| b×r | threshold | query | precision | recall | no-match | FP rate (non-members) | LSH candidates / query |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for rw in rows:
        print(
            f"| {rw['shape']} | {rw['threshold']:.1f} | {rw['kind']} | {rw['precision']:.3f} | {rw['recall']:.3f} | "
            f"{rw['no_match']:.3f} | {rw['fp']:.3f} | {rw['cands']:.1f} |"
        )
    print(
        "\ncandidates per aligned query: per-band tables vs the original's single 433-bucket table, "
        f"out of {len(members)} indexed tracks"
    )
    print("| b×r | per-band tables | original single table |")
    print("|---|---|---|")
    for b, r in shapes:
        rw = next(x for x in rows if x["shape"] == f"{b}x{r}" and x["kind"] == "aligned")
        print(f"| {b}x{r} | {rw['cands']:.1f} | {rw['buggy']:.1f} |")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
        for ax, kind in zip(axes, ("aligned", "shift0.5", "middle")):
            for shape in dict.fromkeys(rw["shape"] for rw in rows):
                sel = [rw for rw in rows if rw["shape"] == shape and rw["kind"] == kind]
                ts = [rw["threshold"] for rw in sel]
                ax.plot(ts, [rw["recall"] for rw in sel], "-o", label=f"{shape} recall")
                ax.plot(ts, [rw["precision"] for rw in sel], "--x", label=f"{shape} precision")
            ax.set_title(f"seed method, {kind} queries")
            ax.set_xlabel("Jaccard threshold")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("precision / recall")
        axes[-1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
