"""Load benchmark for the FMA catalogue tables at full size (synthetic, exact format).

Generates (never commits) full-size files in the exact published layout —
features.csv 106,574 × 518 (``%.10e``), echonest.csv 13,129 × 249 (``%.10f``),
tracks.csv 106,574 × 52 (real sample records repeated under new ids) — then
loads each one in a fresh process (so peak RSS is the load's own) three ways:

* ``reference``: FMA's loader semantics with plain pandas (``read_csv(header=[…])``);
* ``songmine cold``: :func:`songmine.catalog.load` with an empty cache (parse + validate + write parquet);
* ``songmine warm``: the same call again (parquet cache).

Usage::

    python benchmarks/catalog_load.py [--workdir DIR] [--tables features,echonest,tracks] [--json]
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
SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "fma" / "official"


def _ids(n: int, seed: int) -> "list[int]":
    import numpy as np

    rng = np.random.default_rng(seed)
    steps = rng.integers(1, 3, size=n)  # non-contiguous, ascending, like FMA's (2, 3, 5, 10, ...)
    return (1 + np.cumsum(steps)).tolist()


def make_features(path: Path, n: int = N_TRACKS, pool: int = 2000) -> None:
    """features.csv in the exact layout: 4 header lines, then ``id,%.10e×518`` rows."""
    import numpy as np

    from songmine.catalog import FEATURE_COLUMNS

    rng = np.random.default_rng(0)
    cols = FEATURE_COLUMNS
    scale = np.array([200.0 if c[0] in ("spectral_centroid", "spectral_bandwidth", "spectral_rolloff") else
                      30.0 if c[0] in ("mfcc", "spectral_contrast") else 1.0 for c in cols])
    rows = [",".join(f"{v:.10e}" for v in rng.standard_normal(len(cols)) * scale) for _ in range(pool)]
    with open(path, "w", newline="\n") as fh:
        fh.write("feature," + ",".join(c[0] for c in cols) + "\n")
        fh.write("statistics," + ",".join(c[1] for c in cols) + "\n")
        fh.write("number," + ",".join(c[2] for c in cols) + "\n")
        fh.write("track_id" + "," * len(cols) + "\n")
        for i, tid in enumerate(_ids(n, 1)):
            fh.write(f"{tid},{rows[i % pool]}\n")


def make_echonest(path: Path, n: int = N_ECHONEST) -> None:
    """echonest.csv: the sample's exact header, rows cycled from the sample under new ids."""
    lines = (SAMPLES / "echonest.csv").read_text().split("\n")
    header, body = lines[:4], [ln for ln in lines[4:] if ln]
    with open(path, "w", newline="\n") as fh:
        fh.write("\n".join(header) + "\n")
        for i, tid in enumerate(_ids(n, 2)):
            fh.write(str(tid) + body[i % len(body)][body[i % len(body)].index(","):] + "\n")


def make_tracks(path: Path, n: int = N_TRACKS) -> None:
    """tracks.csv: the sample's exact header; its 20 real records (quoted newlines included) under new ids."""
    import csv
    import io

    text = (SAMPLES / "tracks.csv").read_text()
    reader = csv.reader(io.StringIO(text))
    recs = list(reader)
    header, body = recs[:3], recs[3:]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    with open(path, "w", newline="\n") as fh:
        for r in header:
            w.writerow(r)
        for i, tid in enumerate(_ids(n, 1)):
            r = list(body[i % len(body)])
            r[0] = str(tid)
            w.writerow(r)
            if i % 5000 == 0:
                fh.write(buf.getvalue())
                buf.seek(0)
                buf.truncate()
        fh.write(buf.getvalue())


def _child(mode: str, path: str, table: str, cache: str) -> None:
    """Run one load in this (fresh) process; print seconds, peak RSS and shape as JSON."""
    os.environ["SONGMINE_CACHE"] = cache
    import ast

    import pandas as pd
    import pyarrow.csv  # noqa: F401  (imports are not what is measured)
    import pyarrow.parquet  # noqa: F401

    from songmine.catalog import load

    t = time.perf_counter()
    if mode == "reference":
        if table == "tracks":
            df = pd.read_csv(path, index_col=0, header=[0, 1])
            for c in [("track", "tags"), ("album", "tags"), ("artist", "tags"), ("track", "genres"),
                      ("track", "genres_all")]:
                df[c] = df[c].map(ast.literal_eval)
            for c in [("track", "date_created"), ("track", "date_recorded"), ("album", "date_created"),
                      ("album", "date_released"), ("artist", "date_created"), ("artist", "active_year_begin"),
                      ("artist", "active_year_end")]:
                df[c] = pd.to_datetime(df[c])
            for c in [("track", "genre_top"), ("track", "license"), ("album", "type"), ("album", "information"),
                      ("artist", "bio"), ("set", "subset")]:
                df[c] = df[c].astype("category")
        else:
            df = pd.read_csv(path, index_col=0, header=[0, 1, 2])
    else:
        df = load(path, table)
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mem = float(df.memory_usage(deep=False).sum()) / 2**20
    print(json.dumps({"seconds": dt, "peak_rss_mb": rss, "frame_mb": mem, "shape": list(df.shape)}))


def _run(mode: str, path: Path, table: str, cache: Path) -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), table, str(cache)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="Where to write the synthetic files (kept).")
    ap.add_argument("--tables", default="features,echonest,tracks")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "PATH", "TABLE", "CACHE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    work = a.workdir or Path(tempfile.mkdtemp(prefix="songmine-catalog-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    makers = {"features": make_features, "echonest": make_echonest, "tracks": make_tracks}
    results = []
    for table in a.tables.split(","):
        path = work / f"{table}.csv"
        if not path.exists():
            t = time.perf_counter()
            makers[table](path)
            print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t:.0f} s",
                  file=sys.stderr)
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
        ref = _run("reference", path, table, cache)
        cold = _run("songmine", path, table, cache)
        warm = _run("songmine", path, table, cache)
        results.append({"table": table, "file_mb": path.stat().st_size / 2**20,
                        "reference": ref, "cold": cold, "warm": warm})
    if a.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'table':9} {'shape':>13} {'file MB':>8} | {'way':15} {'seconds':>8} {'peak RSS MB':>11} "
          f"{'frame MB':>9} | {'vs reference':>12}")
    for r in results:
        ref_s = r["reference"]["seconds"]
        for way, key in (("reference", "reference"), ("songmine cold", "cold"), ("songmine warm", "warm")):
            m = r[key]
            shape = "×".join(f"{x:,}" for x in m["shape"])
            print(f"{r['table']:9} {shape:>13} {r['file_mb']:8.0f} | {way:15} {m['seconds']:8.2f} "
                  f"{m['peak_rss_mb']:11.0f} {m['frame_mb']:9.0f} | {ref_s / m['seconds']:11.1f}×")
        print(f"{'':9} cache speed-up (cold / warm): {r['cold']['seconds'] / r['warm']['seconds']:.1f}×")


if __name__ == "__main__":
    main()
