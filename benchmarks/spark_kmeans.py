"""Benchmark: k-means — local engine vs Spark engine (local[2]) vs Spark MLlib.

Part 1 — a catalogue-sized table, 106,574 × 30 (the FMA track count, 30 =
the PCA width), k = 8 and 20, all three from the *same* initial centres
(greedy k-means++ of songmine, seeded): wall time of the Lloyd phase,
iterations, inertia relative to the local engine, peak memory of the Python
driver and of the JVM (in local mode the JVM also hosts the executors).
MLlib (``pyspark.mllib.clustering.KMeans.train`` with ``initialModel``) is
run for exactly as many iterations as the local engine needed
(``epsilon=0``): MLlib's own stopping rule (every centre moved < epsilon) is a
different one.

Part 2 — scaling in rows (synthetic, d = 30, k = 8, 10 iterations, tol = 0):
local vs Spark per run, to see where Spark starts to pay off on this machine.

Each engine runs in a fresh child process (so peak RSS is its own).

    PYTHONPATH=src python benchmarks/spark_kmeans.py
    PYTHONPATH=src python benchmarks/spark_kmeans.py --rows 100000 300000 1000000 --skip-part1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_FMA = 106_574
D = 30


def make_table(n: int, d: int = D, seed: int = 0) -> np.ndarray:
    """A mixture of 24 anisotropic Gaussian clusters of unequal sizes plus 5 % uniform noise (float64)."""
    g = np.random.default_rng(seed)
    n_comp = 24
    weights = g.dirichlet(np.full(n_comp, 2.0))
    sizes = g.multinomial(int(n * 0.95), weights)
    means = g.normal(scale=3.0, size=(n_comp, d))
    parts = []
    for m, s in zip(means, sizes):
        scale = g.uniform(0.3, 1.5, size=d)
        parts.append(m + g.normal(size=(s, d)) * scale)
    noise = g.uniform(-8, 8, size=(n - int(sizes.sum()), d))
    X = np.concatenate(parts + [noise])
    return X[g.permutation(n)]


def initial_centers(X: np.ndarray, k: int) -> np.ndarray:
    from songmine.cluster.kmeans import kmeans_plusplus

    return kmeans_plusplus(X, k, random_state=42)[0]


def jvm_peak_mb(session) -> float | None:
    try:
        pid = session.sparkContext._gateway.proc.pid
        # spark-submit is a shell wrapper around the JVM: take the largest VmHWM among it and its children
        pids = [pid] + [int(p) for p in open(f"/proc/{pid}/task/{pid}/children").read().split()]
        best = 0
        for p in pids:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]))
        return best / 1024
    except (OSError, AttributeError, ValueError):
        return None


def run_engine(engine: str, n: int, ks: list[int], max_iter: int, tol_rel: float | None, partitions: int) -> list[dict]:
    X = make_table(n)
    tol = 0.0 if tol_rel is None else tol_rel * float(np.var(X, axis=0).mean())
    out = []
    session = None
    start_s = 0.0
    if engine != "local":
        from songmine.spark import get_session

        t0 = time.perf_counter()
        session = get_session("local[2]", conf={"spark.driver.memory": "3g"})
        start_s = time.perf_counter() - t0
    for k in ks:
        C0 = initial_centers(X, k) if n == N_FMA else X[:k].copy()
        t0 = time.perf_counter()
        if engine == "local":
            from songmine.cluster.engines import LocalEngine

            r = LocalEngine().lloyd(X, C0, max_iter=max_iter, tol=tol)
            row = {"n_iter": r.n_iter, "inertia": r.inertia}
        elif engine == "spark":
            from songmine.spark.kmeans import SparkEngine, blocks_from_array

            blocks = blocks_from_array(session.sparkContext, X, partitions)
            blocks.rdd.count()
            load_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            r = SparkEngine(n_partitions=partitions).lloyd(blocks, C0, max_iter=max_iter, tol=tol)
            row = {"n_iter": r.n_iter, "inertia": r.inertia, "load_s": load_s}
            t0 = t1
            blocks.unpersist()
        else:  # mllib, run for the iteration count given in max_iter
            from pyspark.mllib.clustering import KMeans, KMeansModel

            rdd = session.sparkContext.parallelize(list(X), partitions).cache()
            rdd.count()
            load_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            model = KMeans.train(rdd, k, maxIterations=max_iter, initialModel=KMeansModel(list(C0)), epsilon=0.0)
            fit_s = time.perf_counter() - t1
            row = {"n_iter": max_iter, "inertia": model.computeCost(rdd), "load_s": load_s}
            rdd.unpersist()
            out.append({"engine": engine, "n": n, "k": k, "s": fit_s, **row})
            continue
        out.append({"engine": engine, "n": n, "k": k, "s": time.perf_counter() - t0, **row})
    peak_py = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jvm = jvm_peak_mb(session) if session is not None else None
    for r in out:
        r.update(start_s=start_s, py_peak_mb=peak_py, jvm_peak_mb=jvm)
    return out


def child(*args) -> list[dict]:
    cmd = [sys.executable, __file__, "--child", json.dumps(args)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if res.returncode != 0:
        sys.stderr.write(res.stderr[-3000:])
        raise SystemExit(f"child {args} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--ks", type=int, nargs="+", default=[8, 20])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000, 1_000_000, 3_000_000])
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--skip-part1", action="store_true")
    ap.add_argument("--skip-part2", action="store_true")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_engine(*json.loads(args.child))))
        return

    print(
        f"# k-means engines — {os.cpu_count()} cpus (shared), numpy {np.__version__}; "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    if not args.skip_part1:
        local = child("local", N_FMA, args.ks, 300, 1e-4, args.partitions)
        spark = child("spark", N_FMA, args.ks, 300, 1e-4, args.partitions)
        iters = {r["k"]: r["n_iter"] for r in local}
        mllib = []
        for k in args.ks:  # MLlib: exactly the local engine's iteration count
            mllib += child("mllib", N_FMA, [k], iters[k], None, args.partitions)
        print(f"\n## {N_FMA:,} × {D}, same k-means++ initial centres, tol = 1e-4 × mean variance\n")
        print(
            "| engine | k | Lloyd wall (s) | × local | iterations | s / iteration | inertia / local | "
            "load (s) | session start (s) | driver peak RSS (MB) | JVM peak RSS (MB) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        ref = {r["k"]: r for r in local}
        for r in local + spark + mllib:
            lr = ref[r["k"]]
            jvm = f"{r['jvm_peak_mb']:.0f}" if r.get("jvm_peak_mb") else "—"
            name = {"local": "local (numpy, Hamerly)", "spark": "Spark engine local[2]", "mllib": "MLlib local[2]"}[
                r["engine"]
            ]
            print(
                f"| {name} | {r['k']} | {r['s']:.2f} | {r['s'] / lr['s']:.1f} | {r['n_iter']} | "
                f"{r['s'] / max(r['n_iter'], 1):.3f} | {r['inertia'] / lr['inertia']:.6f} | "
                f"{r.get('load_s', 0):.1f} | {r['start_s']:.1f} | {r['py_peak_mb']:.0f} | {jvm} |"
            )
    if not args.skip_part2:
        print(f"\n## scaling in rows: d = {D}, k = 8, 10 iterations (tol = 0), {args.partitions} partitions\n")
        print(
            "| rows | local (s) | Spark local[2] (s) | Spark / local | Spark load (s) | driver peak RSS local / Spark (MB) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for n in args.rows:
            lo = child("local", n, [8], 10, None, args.partitions)[0]
            sp = child("spark", n, [8], 10, None, args.partitions)[0]
            print(
                f"| {n:,} | {lo['s']:.2f} | {sp['s']:.2f} | {sp['s'] / lo['s']:.1f} | {sp['load_s']:.1f} | "
                f"{lo['py_peak_mb']:.0f} / {sp['py_peak_mb']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
