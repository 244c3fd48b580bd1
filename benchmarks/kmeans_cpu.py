"""Per-iteration CPU time of our k-means vs scikit-learn's, everything on ONE thread (load-robust).

On the shared 2-core machine wall-clock ratios swing several-fold within minutes
(benchmarks/kmeans.py reports them, paired per repeat). This companion measures
process CPU time with BLAS and OpenMP limited to one thread for *both* sides, so
background load barely matters; it answers "how much work per iteration", not
"how fast on an idle 2-core box" (there scikit-learn also uses its 2 OpenMP threads).

Data: the same 106,574 × 30 PCA scores as benchmarks/kmeans.py (``--data-cache``
shares the file); same k-means++ initial centres for all; tol=0, max_iter=30.

Run:  PYTHONPATH=src python benchmarks/kmeans_cpu.py [--repeats 3] [--data-cache Z.npy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ks", default="8,20")
    ap.add_argument("--fixed-iter", type=int, default=30)
    ap.add_argument("--data-cache", default=None)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from sklearn.cluster import KMeans as SK

    from songmine.cluster import KMeans, kmeans_plusplus
    from songmine.cluster.engines import LocalEngine

    sys.path.insert(0, os.path.dirname(__file__))
    from kmeans import data

    if args.data_cache and os.path.exists(args.data_cache):
        Z = np.load(args.data_cache)
    else:
        Z = data(106_574, 30, 0)
        if args.data_cache:
            np.save(args.data_cache, Z)
    print("| dtype | k | iters | scikit-learn ms/iter | hamerly ms/iter | ×sklearn | lloyd ms/iter | ×sklearn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for dtype in ("float64", "float32"):
        Zd = Z.astype(dtype)
        for k in map(int, args.ks.split(",")):
            init, _ = kmeans_plusplus(Zd, k, random_state=1)
            ts: dict[str, list] = {"sk": [], "hamerly": [], "lloyd": []}
            its = {}
            for _ in range(args.repeats):
                for name in ts:
                    if name == "sk":
                        est = SK(k, init=init, n_init=1, max_iter=args.fixed_iter, tol=0.0, algorithm="lloyd")
                    else:
                        est = KMeans(
                            k, init=init, max_iter=args.fixed_iter, tol=0.0, engine=LocalEngine(algorithm=name)
                        )
                    c = time.process_time()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        est.fit(Zd)
                    ts[name].append(time.process_time() - c)
                    its[name] = est.n_iter_
            ms = {n: 1000 * statistics.median(v) / its[n] for n, v in ts.items()}
            print(
                f"| {dtype} | {k} | {its['sk']} | {ms['sk']:.2f} | {ms['hamerly']:.2f} | "
                f"{ms['hamerly'] / ms['sk']:.2f} | {ms['lloyd']:.2f} | {ms['lloyd'] / ms['sk']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
