"""Load benchmark for the FMA catalogue tables at full size (synthetic, exact format).

Generates (never commits) full-size files in the exact published layout with
``songmine.cluster.synthetic.write_fma_csvs`` — features.csv 106,574 × 518
(``%.10e``), echonest.csv 13,129 × 249 (``%.10f``), tracks.csv 106,574 × 52
(distinct values per record, list literals, quoted newlines) — or takes them
from ``--source DIR``, then loads each one in a fresh process (so peak RSS is
the load's own) three ways, ``--repeats`` times each (medians reported):

* ``reference``: FMA's loader semantics with plain pandas (``read_csv(header=[…])``);
* ``songmine cold``: :func:`songmine.catalog.load` with an empty cache (parse + validate + write parquet);
* ``songmine warm``: the same call again (parquet cache).

The cache speed-up is median(cold) / median(warm), measured in the same run.

Usage::

    python benchmarks/catalog_load.py [--workdir DIR | --source DIR] [--tables features,echonest,tracks]
                                      [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_TRACKS = 106_574
N_ECHONEST = 13_129


def make_source(work: Path) -> Path:
    """Full-size FMA files in the exact layouts (``songmine.cluster.synthetic.write_fma_csvs``), made once."""
    from songmine.cluster.synthetic import write_fma_csvs

    d = work / "fma-planted"
    if not (d / "planted.json").exists():
        t = time.perf_counter()
        write_fma_csvs(
            d,
            N_TRACKS,
            n_echonest=N_ECHONEST,
            progress=lambda m: print(f"{time.perf_counter() - t:6.0f} s  {m}", file=sys.stderr),
        )
    return d


def _child(mode: str, path: str, table: str, cache: str) -> None:
    """Run one load in this (fresh) process; print seconds, peak RSS and shape as JSON."""
    os.environ["SONGMINE_CACHE"] = cache
    import ast

    import pandas as pd
    import pyarrow.csv  # noqa: F401  (imports are not what is measured)
    import pyarrow.parquet  # noqa: F401

    from songmine.catalog import load

    t = time.perf_counter()
    cpu0 = time.process_time()
    if mode == "reference":
        if table == "tracks":
            df = pd.read_csv(path, index_col=0, header=[0, 1])
            for c in [
                ("track", "tags"),
                ("album", "tags"),
                ("artist", "tags"),
                ("track", "genres"),
                ("track", "genres_all"),
            ]:
                df[c] = df[c].map(ast.literal_eval)
            for c in [
                ("track", "date_created"),
                ("track", "date_recorded"),
                ("album", "date_created"),
                ("album", "date_released"),
                ("artist", "date_created"),
                ("artist", "active_year_begin"),
                ("artist", "active_year_end"),
            ]:
                df[c] = pd.to_datetime(df[c])
            for c in [
                ("track", "genre_top"),
                ("track", "license"),
                ("album", "type"),
                ("album", "information"),
                ("artist", "bio"),
                ("set", "subset"),
            ]:
                df[c] = df[c].astype("category")
        else:
            df = pd.read_csv(path, index_col=0, header=[0, 1, 2])
    else:
        df = load(path, table)
    dt = time.perf_counter() - t
    cpu = time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mem = float(df.memory_usage(deep=False).sum()) / 2**20
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "peak_rss_mb": rss, "frame_mb": mem, "shape": list(df.shape)}))


def _run(mode: str, path: Path, table: str, cache: Path) -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), table, str(cache)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="Where to write the synthetic files (kept).")
    ap.add_argument("--source", type=Path, default=None, help="A directory with the FMA CSVs to load instead.")
    ap.add_argument("--tables", default="features,echonest,tracks")
    ap.add_argument("--repeats", type=int, default=3, help="Fresh-process loads per way (median reported).")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "PATH", "TABLE", "CACHE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    work = a.workdir or Path(tempfile.mkdtemp(prefix="songmine-catalog-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = a.source or make_source(work)
    results = []
    for table in a.tables.split(","):
        path = src / f"{table}.csv"
        runs: dict[str, list[dict]] = {"reference": [], "cold": [], "warm": []}
        cache = work
        for _ in range(a.repeats):
            runs["reference"].append(_run("reference", path, table, work))
            cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))  # empty: a cold load
            runs["cold"].append(_run("songmine", path, table, cache))
        for _ in range(a.repeats):
            runs["warm"].append(_run("songmine", path, table, cache))
        med = {k: _median(v) for k, v in runs.items()}
        cpu = {k: sorted(r["cpu_seconds"] for r in v)[len(v) // 2] for k, v in runs.items()}
        results.append(
            {
                "table": table,
                "file_mb": path.stat().st_size / 2**20,
                "repeats": a.repeats,
                **med,
                "cpu_median": cpu,
                "seconds_all": {k: [round(r["seconds"], 3) for r in v] for k, v in runs.items()},
            }
        )
    if a.json:
        print(json.dumps(results, indent=2))
        return
    print(f"medians of {a.repeats} fresh-process loads each")
    print(
        f"{'table':9} {'shape':>13} {'file MB':>8} | {'way':15} {'seconds':>8} {'CPU s':>6} {'peak RSS MB':>11} "
        f"{'frame MB':>9} | {'vs reference':>12} | all seconds"
    )
    for r in results:
        ref_s = r["reference"]["seconds"]
        for way, key in (("reference", "reference"), ("songmine cold", "cold"), ("songmine warm", "warm")):
            m = r[key]
            shape = "×".join(f"{x:,}" for x in m["shape"])
            print(
                f"{r['table']:9} {shape:>13} {r['file_mb']:8.0f} | {way:15} {m['seconds']:8.2f} "
                f"{r['cpu_median'][key]:6.2f} {m['peak_rss_mb']:11.0f} {m['frame_mb']:9.0f} | {ref_s / m['seconds']:11.1f}× | "
                + " ".join(f"{x:.2f}" for x in r["seconds_all"][key])
            )
        print(
            f"{'':9} cache speed-up (median cold / median warm): {r['cold']['seconds'] / r['warm']['seconds']:.1f}× "
            f"wall, {r['cpu_median']['cold'] / r['cpu_median']['warm']:.1f}× CPU"
        )


def _median(runs: list[dict]) -> dict:
    """The run with the median time (its RSS and shape go with it)."""
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


if __name__ == "__main__":
    main()
