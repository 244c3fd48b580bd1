"""Build the tables behind the clustering evidence, then run `songmine cluster run` on them yourself.

    PYTHONPATH=src python benchmarks/cluster_demo.py synthetic OUT      # full FMA size, planted structure
    PYTHONPATH=src python benchmarks/cluster_demo.py real OUT --tracks TRACKS --echonest ECHONEST

synthetic: OUT/full.parquet (106,574 tracks: tracks + 518 features, the
`catalog merge --no-echonest` layout), OUT/echonest.parquet (13,129 tracks: +
echonest), OUT/truth.csv (track_id → planted cluster, for `cluster run --planted`).
``--n-nuisance`` and ``--noise`` set the generator's cluster-free factors and noise
(``songmine.cluster.synthetic.make_fma_like``; ``--n-nuisance 0 --noise 1.5`` gives a
catalogue whose PCA spectrum is far shorter than real features').

real: OUT/real.parquet — the rows of an FMA ``tracks.csv`` (``--tracks``, either
layout, read by ``songmine.catalog.load``; any subset of FMA's rows) inner-joined
**by track_id** with the Echonest audio features of ``--echonest``: FMA's
``echonest.csv`` (either layout) or a flat CSV of ``track_id`` and the eight
audio-feature columns (acousticness … valence). Real genres, listens, durations,
dates and 8 real audio features (FMA metadata, CC BY 4.0, Defferrard et al. 2017);
nothing of it is in this repository.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def synthetic(
    out: Path,
    *,
    n: int = 106_574,
    n_echonest: int = 13_129,
    k: int = 8,
    seed: int = 2026,
    n_nuisance: int = 60,
    noise: float = 3.0,
) -> None:
    from songmine.cluster.synthetic import make_fma_like

    t = time.perf_counter()
    cat = make_fma_like(n, n_echonest=n_echonest, k=k, seed=seed, n_nuisance=n_nuisance, noise=noise)
    cat.full.to_parquet(out / "full.parquet")
    cat.echonest.to_parquet(out / "echonest.parquet")
    cat.truth.reset_index().to_csv(out / "truth.csv", index=False)
    print(
        f"synthetic: full {cat.full.shape}, echonest {cat.echonest.shape}, planted k={k}, dominant genres "
        f"{cat.dominant_genre}, tempo by cluster {cat.cluster_tempo} ({time.perf_counter() - t:.1f} s)"
    )


def echonest_audio_features(path: Path):
    """Echonest audio features by track_id, columns ``echonest.audio_features.<name>``."""
    import pandas as pd

    from songmine.catalog import load
    from songmine.catalog.merge import flatten_columns

    head = pd.read_csv(path, nrows=0)
    if "track_id" in head.columns and not any(str(c).startswith(("echonest", "audio_features")) for c in head.columns):
        echo = pd.read_csv(path, index_col="track_id")  # flat: track_id + the audio-feature names
        echo.columns = [f"echonest.audio_features.{c}" for c in echo.columns]
        return echo
    echo = load(path, table="echonest", cache=False)
    echo = echo.set_axis(flatten_columns(echo, "echonest"), axis=1)
    return echo[[c for c in echo.columns if c.startswith("echonest.audio_features.")]]


def real(out: Path, tracks_csv: Path, echonest_csv: Path) -> None:
    import pandas as pd

    from songmine.catalog import load
    from songmine.catalog.merge import flatten_columns

    tracks = load(tracks_csv, table="tracks", cache=False)
    tracks = tracks.set_axis(flatten_columns(tracks, "tracks"), axis=1)
    echo = echonest_audio_features(echonest_csv)
    common = tracks.index.intersection(echo.index)
    df = pd.concat([tracks.loc[common], echo.loc[common]], axis=1)  # aligned by track_id, never by position
    df.index.name = "track_id"
    for c in df.columns:  # lists/objects → strings so parquet keeps them
        if df[c].dtype == object:
            df[c] = df[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    df.to_parquet(out / "real.parquet")
    print(
        f"real: tracks {tracks.shape} ⋈ echonest {echo.shape} on track_id → {df.shape}; "
        f"genre_top known for {int(df['tracks.track.genre_top'].notna().sum())} tracks; "
        f"NaN in audio features: {int(df[echo.columns].isna().sum().sum())}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("synthetic", help="a planted catalogue of FMA's size")
    sp.add_argument("out", type=Path)
    sp.add_argument("--n", type=int, default=106_574)
    sp.add_argument("--n-echonest", type=int, default=13_129)
    sp.add_argument("--k", type=int, default=8, help="planted clusters")
    sp.add_argument("--seed", type=int, default=2026)
    sp.add_argument("--n-nuisance", type=int, default=60, help="cluster-free factors")
    sp.add_argument("--noise", type=float, default=3.0, help="sd of the independent noise")
    rp = sub.add_parser("real", help="real FMA rows joined with their Echonest audio features")
    rp.add_argument("out", type=Path)
    rp.add_argument("--tracks", type=Path, required=True, help="FMA tracks.csv (either layout, any subset of rows)")
    rp.add_argument(
        "--echonest",
        type=Path,
        required=True,
        help="FMA echonest.csv, or a flat CSV: track_id + the eight audio features",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.what == "synthetic":
        synthetic(
            args.out,
            n=args.n,
            n_echonest=args.n_echonest,
            k=args.k,
            seed=args.seed,
            n_nuisance=args.n_nuisance,
            noise=args.noise,
        )
    else:
        for p in (args.tracks, args.echonest):
            if not p.is_file():
                ap.error(f"{p}: no such file")
        real(args.out, args.tracks, args.echonest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
