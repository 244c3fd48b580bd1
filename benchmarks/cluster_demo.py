"""Build the tables behind the clustering evidence, then run `songmine cluster run` on them yourself.

    PYTHONPATH=src python benchmarks/cluster_demo.py synthetic OUT   # full FMA size, planted structure
    PYTHONPATH=src python benchmarks/cluster_demo.py real OUT        # real FMA rows (metadata side)

synthetic: OUT/full.parquet (106,574 tracks: tracks + 518 features, the
`catalog merge --no-echonest` layout), OUT/echonest.parquet (13,129 tracks: +
echonest), OUT/truth.csv (track_id → planted cluster).

real: OUT/real.parquet — the 682 real tracks of ../shared/fma-format/real/
tracks_first682.csv (official loader: `songmine.catalog.load`) inner-joined **by
track_id** with the real Echonest audio features of
derived/echonest_audio_features_flat_first8000.csv → 370 tracks with real
genres, listens, durations, dates and 8 real audio features (FMA metadata,
CC BY 4.0, Defferrard et al. 2017). Not committed: rebuilt from ../shared.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def synthetic(out: Path, n: int = 106_574, n_echonest: int = 13_129) -> None:
    from songmine.cluster.synthetic import make_fma_like

    t = time.perf_counter()
    cat = make_fma_like(n, n_echonest=n_echonest, k=8, seed=2026)
    cat.full.to_parquet(out / "full.parquet")
    cat.echonest.to_parquet(out / "echonest.parquet")
    cat.truth.reset_index().to_csv(out / "truth.csv", index=False)
    print(f"synthetic: full {cat.full.shape}, echonest {cat.echonest.shape}, planted k=8, dominant genres "
          f"{cat.dominant_genre}, tempo by cluster {cat.cluster_tempo} ({time.perf_counter() - t:.1f} s)")


def real(out: Path, shared: Path = Path(__file__).resolve().parents[1] / ".." / ".." / "shared") -> None:
    import pandas as pd

    from songmine.catalog import load
    from songmine.catalog.merge import flatten_columns

    base = Path("/work/shared/fma-format/real")
    if not base.exists():
        base = shared / "fma-format" / "real"
    tracks = load(base / "tracks_first682.csv", table="tracks", cache=False)
    tracks = tracks.set_axis(flatten_columns(tracks, "tracks"), axis=1)
    echo = pd.read_csv(base / "derived" / "echonest_audio_features_flat_first8000.csv", index_col="track_id")
    echo.columns = [f"echonest.audio_features.{c}" for c in echo.columns]
    common = tracks.index.intersection(echo.index)
    df = pd.concat([tracks.loc[common], echo.loc[common]], axis=1)  # aligned by track_id, never by position
    df.index.name = "track_id"
    for c in df.columns:  # lists/objects → strings so parquet keeps them
        if df[c].dtype == object:
            df[c] = df[c].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    df.to_parquet(out / "real.parquet")
    print(f"real: tracks {tracks.shape} ⋈ echonest {echo.shape} on track_id → {df.shape}; "
          f"genre_top known for {int(df['tracks.track.genre_top'].notna().sum())} tracks; "
          f"NaN in audio features: {int(df[echo.columns].isna().sum().sum())}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("synthetic", "real"):
        sys.exit(__doc__)
    o = Path(sys.argv[2])
    o.mkdir(parents=True, exist_ok=True)
    {"synthetic": synthetic, "real": real}[sys.argv[1]](o)
