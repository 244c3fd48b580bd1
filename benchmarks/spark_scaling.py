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
probes before and after). Then the break-even: per executor count, Spark's time is modelled as
``jobs × overhead + b_spark + rows × c_spark`` and the local engine's as ``a_local + rows × c_local``
(least squares over the scales); Spark wins past
``rows* = (jobs × overhead + b_spark − a_local) / (c_local − c_spark)`` when ``c_local > c_spark``,
at no size otherwise.

    nice -n 5 python benchmarks/spark_scaling.py --rows 1000 --scales 1 4 16 --max-iter 6

Prints markdown tables (and ``--json PATH`` writes the raw numbers).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
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
    return {
        "wall": time.perf_counter() - t,
        "cpu": time.process_time() - c,
        "n_iter": res.model["n_iter"],
        "sizes": res.sizes,
    }


def run_spark_once(session, path: Path, cfg) -> dict:
    from songmine.spark.cluster import run_spark

    sc = session.sparkContext
    before = last_job_id(sc)
    t, c = time.perf_counter(), time.process_time()
    res = run_spark(str(path), config=cfg, session=session)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    jobs = last_job_id(sc) - before - 1
    return {"wall": wall, "driver_cpu": cpu, "jobs": jobs, "n_iter": res.model["n_iter"], "sizes": res.sizes}


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y ≈ a + c·x``: ``(a, c)``."""
    A = np.c_[np.ones_like(x), x]
    a, c = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(a), float(c)


def report(out: dict, rows: int, scales: list[int], executors: list[int], k: int, max_iter: int) -> None:
    """The two tables: times per scale, and the model with its break-even."""
    rows_of = {s: rows * s for s in scales}
    local = {int(s): v for s, v in out["local"].items()}
    overhead = {int(e): v for e, v in out["overhead"].items()}
    table = []
    for s in scales:
        row = [f"×{s}", f"{rows_of[s]:,}", f"{local[s]['wall']:.1f}"]
        for e in executors:
            r = out["spark"][f"{e}x{s}"]
            row += [f"{r['wall']:.1f}", f"{r['jobs']}", f"{r['wall'] / local[s]['wall']:.1f}"]
        table.append(row)
    header = ["data", "rows", "local (s)"]
    for e in executors:
        header += [f"Spark {e} exec (s)", "jobs", "× local"]
    markdown_table(
        f"cluster run, k={k}, {max_iter} Lloyd iterations at most, 518 features (commit {out['commit']})", header, table
    )
    # the model: local = a_l + rows·c_l ; Spark = jobs·overhead + b_s + rows·c_s/e
    x = np.array([rows_of[s] for s in scales], dtype=float)
    a_l, c_l = _fit(x, np.array([local[s]["wall"] for s in scales]))
    lines = []
    for e in executors:
        runs = [out["spark"][f"{e}x{s}"] for s in scales]
        jobs = statistics.median(r["jobs"] for r in runs)
        rest = np.array([r["wall"] - r["jobs"] * overhead[e] for r in runs])
        b_s, c_s = _fit(x, rest)
        gain = c_l - c_s
        fixed = jobs * overhead[e] + b_s - a_l
        be = fixed / gain if gain > 0 else None
        lines.append(
            [
                e,
                f"{overhead[e]:.3f}",
                f"{jobs:.0f}",
                f"{jobs * overhead[e]:.1f}",
                f"{b_s:.1f}",
                f"{1e6 * c_s:.1f}",
                f"{a_l:.1f}",
                f"{1e6 * c_l:.1f}",
                f"{be:,.0f}" if be is not None else "none: Spark's cost per row is the higher",
            ]
        )
        out.setdefault("model", {})[str(e)] = {
            "b_spark": b_s,
            "c_spark": c_s,
            "a_local": a_l,
            "c_local": c_l,
            "break_even_rows": be,
        }
    markdown_table(
        "Spark overhead and break-even (wall = fixed + rows × per-row cost)",
        [
            "executors",
            "no-op job (s)",
            "jobs per run",
            "jobs × no-op (s)",
            "other fixed (s)",
            "Spark µs per row",
            "local fixed (s)",
            "local µs per row",
            "break-even rows",
        ],
        lines,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1000, help="rows of the ×1 table")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--executors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-iter", type=int, default=6, help="Lloyd iterations at most (the same for every run)")
    ap.add_argument("--probe-jobs", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=2, help="runs per cell, the fastest kept (also for local)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--from-json", type=Path, default=None, help="print the tables of an earlier --json run")
    args = ap.parse_args(argv)
    if args.from_json:
        out = json.loads(args.from_json.read_text())
        a = out["args"]
        report(
            out, int(a["rows"]), json.loads(a["scales"]), json.loads(a["executors"]), int(a["k"]), int(a["max_iter"])
        )
        return 0
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # a SIGTERM (timeout, kill) unwinds like Ctrl-C: the cluster's JVMs are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from songmine.spark.session import get_session, stop_session
    from songmine.spark.standalone import LocalCluster

    root = args.workdir or Path(tempfile.mkdtemp(prefix="spark-scaling-"))
    root.mkdir(parents=True, exist_ok=True)
    tables = make_tables(args.rows, args.scales, root, args.seed)
    configs = {s: config_for(p, args.k, args.max_iter, args.seed) for s, p in tables.items()}
    out = {
        "commit": git_commit(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "local": {},
        "spark": {},
        "overhead": {},
    }
    for s, p in tables.items():
        out["local"][s] = min((run_local(p, configs[s]) for _ in range(args.repeats)), key=lambda x: x["wall"])
        print(f"local ×{s}: {out['local'][s]['wall']:.1f} s", flush=True)
    workers = max(args.executors)
    with LocalCluster(workers=workers, cores=1, memory="1g") as cluster:
        try:
            for e in args.executors:
                session = get_session(
                    cluster.master_url, conf={"spark.cores.max": str(e), "spark.executor.memory": "640m"}
                )
                sc = session.sparkContext
                t = time.perf_counter()
                while sc.defaultParallelism < e and time.perf_counter() - t < 60:  # executors registered
                    time.sleep(0.5)
                job_overhead(sc, 3)  # warm-up: the executors' Python workers started
                out["overhead"][e] = job_overhead(sc, args.probe_jobs)
                print(f"{e} executor(s): {out['overhead'][e]:.3f} s per no-op job", flush=True)
                for s, p in tables.items():  # the fastest of --repeats runs (a shared machine's noise only adds)
                    r = min(
                        (run_spark_once(session, p, configs[s]) for _ in range(args.repeats)), key=lambda x: x["wall"]
                    )
                    out["spark"][f"{e}x{s}"] = r
                    assert r["sizes"] == out["local"][s]["sizes"], "Spark and local runs disagree"
                    print(f"spark {e} executor(s) ×{s}: {r['wall']:.1f} s, {r['jobs']} jobs", flush=True)
                    if args.json:  # as it goes: a run cut short keeps what it measured
                        args.json.write_text(json.dumps(out, indent=1, default=str))
                stop_session()
        finally:
            stop_session()

    report(out, args.rows, args.scales, args.executors, args.k, args.max_iter)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
