"""How ``cluster run --engine spark`` scales: 1 vs 2 executors, the table ×1, ×4, ×16, the local engine beside it.

Runs the whole clustering pipeline (read parquet, NaN check, standardise, PCA, k-means from the same
given centres for a fixed number of iterations, the analysis from aggregates) on a Spark standalone
cluster started here (:class:`songmine.spark.standalone.LocalCluster`: a master and ``--workers``
workers of one core each on 127.0.0.1; "1 executor" caps the application at one core with
``spark.cores.max``), and the local engine (pandas read + :func:`songmine.cluster.analysis.run`) on the
same table. The tables are a planted FMA-like catalogue (518 features) of ``--rows`` rows repeated
×1, ×4, ×16 (the repeats are copies with new track ids: the same clusters, more rows).

Also measured: the fixed cost of one Spark job on this cluster (a no-op job of one task per
executor core, the median of ``--probe-jobs``), and how many jobs each run started (job ids of
probes before and after). Then the break-even: Spark's time is modelled as
``jobs × overhead + rows × c_spark / executors``, the local engine's as ``rows × c_local`` (least
squares over the scales); Spark wins past ``rows* = jobs × overhead / (c_local − c_spark/executors)``
when ``c_local > c_spark/executors``, never otherwise.

    nice -n 5 python benchmarks/spark_scaling.py --rows 1000 --scales 1 4 16 --max-iter 6

Prints markdown tables (and ``--json PATH`` writes the raw numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _common import git_commit, markdown_table  # noqa: E402


def make_tables(rows: int, scales: list[int], root: Path, seed: int) -> dict[int, Path]:
    import pandas as pd

    from songmine.cluster.synthetic import make_fma_like

    base = make_fma_like(rows, n_echonest=10, k=4, seed=seed).full
    out = {}
    for s in scales:
        parts = []
        for r in range(s):
            p = base.copy()
            p.index = p.index + r * 200_000
            parts.append(p)
        path = root / f"table-x{s}.parquet"
        pd.concat(parts).to_parquet(path)
        out[s] = path
    return out


def last_job_id(sc) -> int:
    """Run a one-task no-op job in its own group and return its id (job ids count up per application)."""
    sc.setJobGroup("songmine-probe", "probe", False)
    try:
        sc.parallelize([0], 1).count()
        return max(sc.statusTracker().getJobIdsForGroup("songmine-probe"))
    finally:
        sc.setJobGroup("", "", False)  # back to no group (run_job sets its own)


def job_overhead(sc, n: int) -> float:
    """Median wall time of a no-op job with one task per executor core."""
    parts = max(1, sc.defaultParallelism)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        sc.parallelize(range(parts), parts).map(lambda x: x).count()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def config_for(path: Path, k: int, max_iter: int, seed: int):
    """The run's config with initial centres from the local reduction (the same for both engines)."""
    from songmine.cluster.analysis import RunConfig
    from songmine.cluster.data import clean_features, read_table
    from songmine.cluster.reduce import reduce

    cfg = RunConfig(k=k, seed=seed, max_iter=max_iter, compare_sklearn=False, compare_echonest=False)
    df = read_table(path)
    X, _, plan = clean_features(df)
    Z, _ = reduce(X, columns=[str(c) for c in plan.columns], config=cfg.reduce)
    picks = np.random.default_rng(seed).choice(len(Z), k, replace=False)
    return dataclasses.replace(cfg, init=Z[np.sort(picks)])


def run_local(path: Path, cfg) -> dict:
    from songmine.cluster.analysis import run
    from songmine.cluster.data import read_table

    t, c = time.perf_counter(), time.process_time()
    res = run(read_table(path), config=cfg)
    return {"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "n_iter": res.model["n_iter"],
            "sizes": res.sizes}


def run_spark_once(session, path: Path, cfg) -> dict:
    from songmine.spark.cluster import run_spark

    sc = session.sparkContext
    before = last_job_id(sc)
    t, c = time.perf_counter(), time.process_time()
    res = run_spark(str(path), config=cfg, session=session)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    jobs = last_job_id(sc) - before - 1
    return {"wall": wall, "driver_cpu": cpu, "jobs": jobs, "n_iter": res.model["n_iter"], "sizes": res.sizes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1000, help="rows of the ×1 table")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--executors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-iter", type=int, default=6, help="Lloyd iterations at most (the same for every run)")
    ap.add_argument("--probe-jobs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from songmine.spark.session import get_session, stop_session
    from songmine.spark.standalone import LocalCluster

    root = args.workdir or Path(tempfile.mkdtemp(prefix="spark-scaling-"))
    root.mkdir(parents=True, exist_ok=True)
    tables = make_tables(args.rows, args.scales, root, args.seed)
    configs = {s: config_for(p, args.k, args.max_iter, args.seed) for s, p in tables.items()}
    out = {"commit": git_commit(), "args": {k: str(v) for k, v in vars(args).items()}, "local": {}, "spark": {},
           "overhead": {}}
    for s, p in tables.items():
        out["local"][s] = run_local(p, configs[s])
        print(f"local ×{s}: {out['local'][s]['wall']:.1f} s", flush=True)
    workers = max(args.executors)
    with LocalCluster(workers=workers, cores=1, memory="1g") as cluster:
        try:
            for e in args.executors:
                session = get_session(cluster.master_url, conf={"spark.cores.max": str(e),
                                                                "spark.executor.memory": "640m"})
                sc = session.sparkContext
                t = time.perf_counter()
                while sc.defaultParallelism < e and time.perf_counter() - t < 60:  # executors registered
                    time.sleep(0.5)
                job_overhead(sc, 3)  # warm-up: the executors' Python workers started
                out["overhead"][e] = job_overhead(sc, args.probe_jobs)
                print(f"{e} executor(s): {out['overhead'][e]:.3f} s per no-op job", flush=True)
                for s, p in tables.items():
                    r = run_spark_once(session, p, configs[s])
                    out["spark"][f"{e}x{s}"] = r
                    assert r["sizes"] == out["local"][s]["sizes"], "Spark and local runs disagree"
                    print(f"spark {e} executor(s) ×{s}: {r['wall']:.1f} s, {r['jobs']} jobs", flush=True)
                stop_session()
        finally:
            stop_session()

    rows_of = {s: args.rows * s for s in args.scales}
    table = []
    for s in args.scales:
        loc = out["local"][s]
        row = [f"×{s}", f"{rows_of[s]:,}", f"{loc['wall']:.1f}"]
        for e in args.executors:
            r = out["spark"][f"{e}x{s}"]
            row += [f"{r['wall']:.1f}", f"{r['jobs']}", f"{r['wall'] / loc['wall']:.1f}"]
        table.append(row)
    header = ["data", "rows", "local (s)"]
    for e in args.executors:
        header += [f"Spark {e} exec (s)", "jobs", "× local"]
    markdown_table(f"cluster run, k={args.k}, {args.max_iter} Lloyd iterations at most, 518 features "
                   f"(commit {out['commit']})", header, table)

    # the model: spark = jobs × overhead + rows × c / e ; local = rows × c_local
    x = np.array([rows_of[s] for s in args.scales], dtype=float)
    c_local = float(np.linalg.lstsq(x[:, None], np.array([out["local"][s]["wall"] for s in args.scales]),
                                    rcond=None)[0][0])
    lines = []
    for e in args.executors:
        runs = [out["spark"][f"{e}x{s}"] for s in args.scales]
        fixed = np.array([r["jobs"] * out["overhead"][e] for r in runs])
        rest = np.array([r["wall"] for r in runs]) - fixed
        c_spark = float(np.linalg.lstsq(x[:, None] / e, rest, rcond=None)[0][0])
        jobs = statistics.median(r["jobs"] for r in runs)
        gain = c_local - c_spark / e
        be = jobs * out["overhead"][e] / gain if gain > 0 else None
        lines.append([e, f"{out['overhead'][e]:.3f}", f"{jobs:.0f}", f"{jobs * out['overhead'][e]:.1f}",
                      f"{1e6 * c_spark / e:.1f}", f"{1e6 * c_local:.1f}",
                      f"{be:,.0f}" if be is not None else "never (Spark's per-row cost is higher)"])
        out.setdefault("model", {})[e] = {"c_spark": c_spark, "c_local": c_local, "break_even_rows": be}
    markdown_table("Spark overhead and break-even", ["executors", "no-op job (s)", "jobs per run",
                   "fixed cost per run (s)", "Spark µs per row", "local µs per row", "break-even rows"], lines)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
