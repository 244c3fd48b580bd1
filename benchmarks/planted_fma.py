"""Planted FMA catalogue, end to end through the real CLI: does the report recover what was planted?

1. ``songmine.cluster.synthetic.write_fma_csvs`` writes full-size FMA files in
   the exact published layouts (tracks.csv 106,574 × 52, features.csv × 518,
   echonest.csv 13,129 × 249, genres.csv) with k planted clusters in the audio
   features and a dominant genre per cluster, plus ``planted.csv`` / ``planted.json``.
2. ``songmine catalog merge DIR -o merged.parquet --json`` and ``--no-echonest -o all.parquet``.
3. ``songmine cluster run TABLE --report R --json -o ASSIGN --planted DIR/planted.csv`` on each.
4. Compared with the truth: ARI/NMI (from the run's JSON) and, per found cluster,
   its majority planted cluster and whether the report's representative genre is
   that cluster's planted genre.

Usage::

    python benchmarks/planted_fma.py [--workdir DIR] [--n 106574] [--n-echonest 13129] [--k 8] [--seed 2026]
                                     [--variants merged,all] [--cluster-args "--k-range 2..12"] [--json]

Files are generated once per (n, n_echonest, k, seed, separation) in the work dir
and reused; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _songmine() -> list[str]:
    exe = Path(sys.executable).with_name("songmine")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from songmine.cli._app import app; app()"]


def _cli(args: list[str], env: dict) -> tuple[dict, float]:
    t = time.perf_counter()
    out = subprocess.run(_songmine() + args, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"songmine {' '.join(args)} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout), dt


def generate(work: Path, n: int, n_echonest: int, k: int, seed: int, separation: float) -> Path:
    from songmine.cluster.synthetic import write_fma_csvs

    nuis = write_fma_csvs.__kwdefaults__  # the generator's defaults are part of what the files hold
    d = work / (
        f"fma-{n}-{n_echonest}-k{k}-s{seed}-sep{separation:g}"
        f"-nuis{nuis.get('n_nuisance', 0)}-noise{nuis.get('noise', 1.5):g}"
    )
    if (d / "planted.json").exists():
        print(f"reusing {d}", file=sys.stderr)
        return d
    t = time.perf_counter()
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_fma_csvs(
        tmp,
        n,
        n_echonest=n_echonest,
        k=k,
        seed=seed,
        separation=separation,
        progress=lambda m: print(f"{time.perf_counter() - t:7.1f} s  {m}", file=sys.stderr),
    )
    os.replace(tmp, d)
    return d


def recovery(assign_path: Path, planted: Path, info: dict, run: dict) -> list[dict]:
    """Per found cluster: size, majority planted cluster (and its share), report's genre vs the planted one."""
    import pandas as pd

    a = pd.read_parquet(assign_path).set_index("track_id")
    truth = pd.read_csv(planted, index_col="track_id")["planted_cluster"]
    both = a.join(truth, how="inner")
    rep = {r["cluster"]: r for r in run["representative_genres"]}
    rows = []
    for c, g in both.groupby("cluster"):
        vc = g["planted_cluster"].value_counts()
        p = int(vc.index[0])
        want = info["dominant_genre"][str(p)]
        got = rep.get(int(c), {}).get("genre")
        rows.append(
            {
                "cluster": int(c),
                "size": len(g),
                "planted": p,
                "planted_share": float(vc.iloc[0] / len(g)),
                "planted_genre": want,
                "report_genre": got,
                "lift": rep.get(int(c), {}).get("lift"),
                "match": got == want,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--n", type=int, default=106_574)
    ap.add_argument("--n-echonest", type=int, default=13_129)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--separation", type=float, default=4.0)
    ap.add_argument("--variants", default="merged,all", help="merged (with echonest) and/or all (--no-echonest)")
    ap.add_argument("--cluster-args", default="", help="extra arguments for `songmine cluster run`")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    work = a.workdir or Path(tempfile.mkdtemp(prefix="songmine-planted-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("SONGMINE_CACHE", str(work / "cache"))
    src = generate(work, a.n, a.n_echonest, a.k, a.seed, a.separation)
    info = json.loads((src / "planted.json").read_text())
    results = {"source": str(src), "planted": info, "variants": {}}
    for v in a.variants.split(","):
        table = work / f"{v}.parquet"
        merge_args = ["catalog", "merge", str(src), "-o", str(table), "--json"] + (
            ["--no-echonest"] if v == "all" else []
        )
        m, t_merge = _cli(merge_args, env)
        assign = work / f"{v}-assign.parquet"
        report = work / f"{v}-report.html"
        r, t_run = _cli(
            [
                "cluster",
                "run",
                str(table),
                "--report",
                str(report),
                "-o",
                str(assign),
                "--json",
                "--planted",
                str(src / "planted.csv"),
                *shlex.split(a.cluster_args),
            ],
            env,
        )
        results["variants"][v] = {
            "merge": {"seconds": round(t_merge, 1), "rows": m["rows"], "columns": m["columns"], "inputs": m["inputs"]},
            "run": {
                "seconds": round(t_run, 1),
                "k": r["k"],
                "choose_k": (r.get("choose_k") or {}).get("reason"),
                "truth": r.get("planted_truth"),
                "report": str(report),
                "inputs": r["inputs"],
                "components": r["reduction"].get("n_components"),
            },
            "clusters": recovery(assign, src / "planted.csv", info, r),
        }
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(
        f"planted: {info['n_tracks']:,} tracks ({info['n_echonest']:,} with echonest), k = {info['k']}, "
        f"separation {info['separation']}, genre strength {info['genre_strength']}, seed {info['seed']}"
    )
    for v, res in results["variants"].items():
        m, r = res["merge"], res["run"]
        print(
            f"\n== {v}: songmine catalog merge{' --no-echonest' if v == 'all' else ''} "
            f"→ {m['rows']:,} rows × {m['columns']:,} columns ({m['seconds']} s)"
        )
        for i in m["inputs"]:
            print(f"   {i['table']:9} rows {i['rows']:>8,}  kept {i['kept']:>8,}  dropped {i['dropped']:>8,}")
        t = r["truth"] or {}
        print(
            f"   cluster run ({r['seconds']} s): {r['inputs']['n_columns']} audio features → {r['components']} "
            f"PCA components, k = {r['k']} ({r['choose_k']})"
        )
        print(
            f"   recovery: ARI {t.get('ari', float('nan')):.3f}  NMI {t.get('nmi', float('nan')):.3f}  "
            f"(planted k {t.get('n_planted')}, found k {t.get('k_found')})"
        )
        print(
            f"   {'cluster':>7} {'size':>7} {'planted':>7} {'share':>6}  {'planted genre':15} {'report genre':15} "
            f"{'lift':>5}  ok"
        )
        for c in res["clusters"]:
            print(
                f"   {c['cluster']:>7} {c['size']:>7,} {c['planted']:>7} {c['planted_share']:>6.1%}  "
                f"{c['planted_genre']:15} {str(c['report_genre']):15} {c['lift'] or 0:>5.1f}  "
                f"{'✓' if c['match'] else '✗'}"
            )
        ok = sum(c["match"] for c in res["clusters"])
        print(f"   representative genre = planted genre for {ok} of {len(res['clusters'])} clusters")


if __name__ == "__main__":
    main()
