"""songmine KMeans vs scikit-learn KMeans(algorithm="lloyd") on FMA-sized data, same initial centres.

Data: a synthetic FMA-like catalogue (106,574 tracks × 518 features with planted
clusters, `songmine.cluster.synthetic`), standardised and projected on its first
30 principal components → 106,574 × 30 float64 (plus a float32 copy). For each k,
the same k-means++ centres (drawn once) start every run; runs are interleaved
(sklearn, ours-hamerly, ours-lloyd, repeated) because the machine is shared, and
the table reports the median over repeats. On a shared machine wall times swing
several-fold within minutes, so the ratio columns are **paired**: each repeat's
time divided by the scikit-learn time of the *same* repeat (adjacent in time),
then the median over repeats; the method order rotates every repeat. ``CPU s``
is the process CPU time (ours runs BLAS on one thread; scikit-learn uses its
OpenMP threads, so its CPU time can exceed its wall time).

Two regimes:
* ``fixed``: tol=0 and max_iter=N — every method runs exactly N iterations →
  clean time per iteration;
* ``converge``: default tol=1e-4, max_iter=300 — total fit time to convergence.

Run:  PYTHONPATH=src python benchmarks/kmeans.py [--repeats 3] [--ks 8,20] [--regimes fixed,converge]
                                                [--data-cache Z.npy] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import numpy as np
from _common import git_commit


def data(n: int, d: int, seed: int):
    from songmine.cluster.reduce import ReduceConfig, reduce
    from songmine.cluster.synthetic import make_fma_like

    cat = make_fma_like(n, n_echonest=10, k=12, seed=seed, separation=2.5)
    from songmine.cluster.data import clean_features

    X, _, _ = clean_features(cat.full)
    Z, _ = reduce(X, config=ReduceConfig(n_components=d))
    return np.ascontiguousarray(Z)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=106_574)
    ap.add_argument("--d", type=int, default=30)
    ap.add_argument("--ks", default="8,20")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fixed-iter", type=int, default=30)
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--regimes", default="fixed,converge")
    ap.add_argument("--data-cache", default=None, help="reuse/write the PCA-30 data here (.npy)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from sklearn.cluster import KMeans as SK

    from songmine.cluster import KMeans, kmeans_plusplus
    from songmine.cluster.engines import LocalEngine

    t0 = time.perf_counter()
    if args.data_cache and os.path.exists(args.data_cache):
        Z64 = np.load(args.data_cache)
    else:
        Z64 = data(args.n, args.d, 0)
        if args.data_cache:
            np.save(args.data_cache, Z64)
    print(f"data: {Z64.shape[0]:,} × {Z64.shape[1]} (synthetic FMA-like, PCA-30) in {time.perf_counter() - t0:.1f} s")
    rows = []
    for dtype in args.dtypes.split(","):
        Z = Z64.astype(dtype)
        for k in map(int, args.ks.split(",")):
            init, _ = kmeans_plusplus(Z, k, random_state=1)
            for regime in args.regimes.split(","):
                tol, max_iter = (0.0, args.fixed_iter) if regime == "fixed" else (1e-4, 300)
                res: dict[str, list] = {"scikit-learn lloyd": [], "songmine hamerly": [], "songmine lloyd": []}
                names = list(res)
                for rep in range(args.repeats):
                    for name in names[rep % 3 :] + names[: rep % 3]:  # rotate the order every repeat
                        if name.startswith("scikit"):
                            est = SK(k, init=init, n_init=1, max_iter=max_iter, tol=tol, algorithm="lloyd")
                        else:
                            est = KMeans(
                                k, init=init, max_iter=max_iter, tol=tol, engine=LocalEngine(algorithm=name.split()[1])
                            )
                        t, c = time.perf_counter(), time.process_time()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            est.fit(Z)
                        res[name].append(
                            (
                                time.perf_counter() - t,
                                int(est.n_iter_),
                                float(est.inertia_),
                                est.labels_,
                                time.process_time() - c,
                            )
                        )
                ref = res["scikit-learn lloyd"]
                for name, runs in res.items():
                    secs = statistics.median(r[0] for r in runs)
                    it = runs[0][1]
                    per_iter = [(r[0] / max(r[1], 1)) / (q[0] / max(q[1], 1)) for r, q in zip(runs, ref)]
                    rows.append(
                        {
                            "dtype": dtype,
                            "k": k,
                            "regime": regime,
                            "method": name,
                            "n_iter": it,
                            "fit_s": secs,
                            "ms_per_iter": 1000 * secs / max(it, 1),
                            "cpu_s": statistics.median(r[4] for r in runs),
                            "per_iter_ratio_vs_sklearn": statistics.median(per_iter),
                            "per_iter_ratios": [round(x, 3) for x in per_iter],
                            "fit_ratio_vs_sklearn": statistics.median(r[0] / q[0] for r, q in zip(runs, ref)),
                            "inertia": runs[0][2],
                            "inertia_diff_pct": 100 * (runs[0][2] / ref[0][2] - 1),
                            "labels_equal_pct": 100 * float(np.mean(runs[0][3] == ref[0][3])),
                            "all_times_s": [round(r[0], 4) for r in runs],
                        }
                    )
    print()
    print(
        "| dtype | k | regime | method | iters | fit s | CPU s | ms/iter | ×sklearn per iter (paired) "
        "| per-repeat ratios | ×sklearn fit | Δ inertia % | same labels % |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['dtype']} | {r['k']} | {r['regime']} | {r['method']} | {r['n_iter']} | {r['fit_s']:.3f} | "
            f"{r['cpu_s']:.2f} | {r['ms_per_iter']:.2f} | {r['per_iter_ratio_vs_sklearn']:.2f} | "
            f"{' '.join(f'{x:.2f}' for x in r['per_iter_ratios'])} | {r['fit_ratio_vs_sklearn']:.2f} | "
            f"{r['inertia_diff_pct']:+.5f} | {r['labels_equal_pct']:.2f} |"
        )
    commit = git_commit()
    meta = {
        "commit": commit,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "repeats": args.repeats,
        "n": args.n,
        "d": args.d,
    }
    print(f"\n{meta}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
