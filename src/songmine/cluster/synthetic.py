"""Synthetic FMA-shaped catalogues with planted clusters (for tests, benchmarks and the report demo).

:func:`make_fma_like` returns tables with the column names of ``songmine catalog
merge`` (``tracks.track.genre_top``, ``features.mfcc.mean.01``,
``echonest.audio_features.tempo``…) and a known truth: each track belongs to
one of ``k`` planted clusters that shift a low-dimensional latent audio signal;
each cluster has a dominant genre (``genre_strength`` of its tracks), about
half of the genres are missing (as in FMA), and echonest tempo/energy/
danceability/acousticness depend on the cluster. Listens, duration and dates are
noise around cluster-independent distributions (listens: mild dependence), so
the report can show that they are *not* what the clusters found.

Besides the cluster signal, every feature carries ``n_nuisance`` cluster-free
factors with decaying variances (``10·j^-0.7``) and independent noise (sd
``noise``). They make the PCA spectrum long, as in real audio features: on 62
rows the defaults give PC1 ≈ 15 % and 70 % variance at 14 components — the 62
real dev-corpus tracks (``songmine features``) give 14 % and 14. Without them
(``n_nuisance=0, noise=1.5``, the earlier generator) 8 factors explain 94 % of
all 518 columns, PC1 ≈ 30 %, 70 % is reached at 4 components, and the
structure-free within-cluster spread of the latent space competes with the
weaker cluster directions for the few components kept.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..catalog.schema import (
    ECHONEST_AUDIO_FEATURES,
    ECHONEST_COLUMNS,
    FEATURE_COLUMNS,
    FEATURE_FAMILIES,
    FEATURE_STATISTICS,
    TRACKS_COLUMNS,
)
from ..errors import ParameterError
from ..extras import require

require("cluster", __name__)  # a missing package of the extra: one line naming it, not a traceback

if TYPE_CHECKING:  # pandas is imported where a table is built (the extra)
    import pandas as pd

__all__ = [
    "make_fma_like",
    "SyntheticCatalog",
    "FMA_GENRES",
    "feature_names",
    "write_fma_csvs",
    "PlantedFMA",
    "synthetic_genres",
]

FMA_GENRES = (
    "Rock",
    "Electronic",
    "Hip-Hop",
    "Folk",
    "Classical",
    "Experimental",
    "Pop",
    "Jazz",
    "International",
    "Instrumental",
    "Blues",
    "Country",
    "Soul-RnB",
    "Spoken",
    "Old-Time / Historic",
    "Easy Listening",
)


def feature_names(prefix: str = "features.") -> list[str]:
    """The 518 FMA feature columns, in file order, flattened with dots."""
    return [
        f"{prefix}{fam}.{st}.{i:02d}"
        for fam in FEATURE_FAMILIES
        for st in FEATURE_STATISTICS
        for i in range(1, FEATURE_FAMILIES[fam] + 1)
    ]


@dataclass
class SyntheticCatalog:
    """``full``: tracks + features (all rows); ``echonest``: tracks + features + echonest (subset)."""

    full: pd.DataFrame
    echonest: pd.DataFrame
    truth: pd.Series
    dominant_genre: dict[int, str]
    cluster_tempo: dict[int, float]


def make_fma_like(
    n: int = 106_574,
    *,
    n_echonest: int = 13_129,
    k: int = 6,
    latent_dim: int = 8,
    separation: float = 4.0,
    genre_strength: float = 0.7,
    missing_genre: float = 0.53,
    n_nuisance: int = 60,
    noise: float = 3.0,
    seed: int = 0,
    float32: bool = True,
) -> SyntheticCatalog:
    """Build a planted FMA-like catalogue (see the module doc)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    weights = np.linspace(1.6, 0.6, k)
    weights /= weights.sum()
    z = rng.choice(k, size=n, p=weights)
    means = rng.normal(scale=separation / np.sqrt(2), size=(k, latent_dim))
    latent = means[z] + rng.normal(size=(n, latent_dim))
    names = feature_names()
    W = rng.normal(size=(latent_dim, len(names)))
    offset = rng.normal(scale=5, size=len(names))
    scale = np.exp(rng.normal(scale=1.0, size=len(names)))
    feats = latent @ W
    if n_nuisance:
        lam = 10.0 * np.arange(1, n_nuisance + 1) ** -0.7
        nuis = rng.normal(size=(n, n_nuisance)) * np.sqrt(lam)
        feats += nuis @ rng.normal(size=(n_nuisance, len(names)))
    feats += rng.normal(scale=noise, size=(n, len(names)))
    feats *= scale
    feats += offset
    # a few columns get physical ranges, so the report's "brightness"/"loudness" read naturally
    for col, lo, hi in (
        ("spectral_centroid.mean.01", 600.0, 4200.0),
        ("rmse.mean.01", 0.01, 0.3),
        ("zcr.mean.01", 0.02, 0.2),
    ):
        j = names.index("features." + col)
        r = (feats[:, j] - feats[:, j].min()) / np.ptp(feats[:, j])
        feats[:, j] = lo + (hi - lo) * r
    ids = np.sort(rng.choice(np.arange(2, 160_000), size=n, replace=False))
    index = pd.Index(ids, name="track_id")

    dominant = {c: FMA_GENRES[c % len(FMA_GENRES)] for c in range(k)}
    genre = np.where(
        rng.random(n) < genre_strength,
        np.array([dominant[c] for c in range(k)])[z],
        np.array(FMA_GENRES)[rng.integers(0, len(FMA_GENRES), n)],
    ).astype(object)
    genre[rng.random(n) < missing_genre] = None
    years = rng.integers(2008, 2018, n)
    tracks = pd.DataFrame(
        {
            "tracks.track.genre_top": pd.Categorical(genre),
            "tracks.track.duration": np.round(np.exp(rng.normal(5.3, 0.5, n))).astype(np.int64),
            "tracks.track.listens": np.round(np.exp(rng.normal(6.5 + 0.2 * (z % 2), 1.5, n))).astype(np.int64),
            "tracks.track.date_created": pd.to_datetime(
                [f"{y}-{m:02d}-15" for y, m in zip(years, rng.integers(1, 13, n))]
            ),
            "tracks.track.language_code": np.where(rng.random(n) < 0.15, "en", None),
            "tracks.artist.id": rng.integers(1, 20_000, n),
        },
        index=index,
    )
    fdf = pd.DataFrame(feats.astype(np.float32 if float32 else np.float64), index=index, columns=names)
    full = pd.concat([tracks, fdf], axis=1)

    m = min(n, n_echonest)
    sub = np.sort(rng.choice(n, size=m, replace=False))
    tempo_c = {c: float(t) for c, t in zip(range(k), rng.permutation(np.linspace(75, 150, k)))}
    zs = z[sub]
    level = {a: rng.permutation(np.linspace(0.15, 0.85, k)) for a in ECHONEST_AUDIO_FEATURES if a != "tempo"}
    echo = {}
    for a in ECHONEST_AUDIO_FEATURES:
        if a == "tempo":
            echo[f"echonest.audio_features.{a}"] = np.array([tempo_c[c] for c in zs]) + rng.normal(0, 8, m)
        else:
            echo[f"echonest.audio_features.{a}"] = np.clip(level[a][zs] + rng.normal(0, 0.12, m), 0, 1)
    W2 = rng.normal(size=(latent_dim, 224))
    temporal = latent[sub] @ W2 * 0.1 + rng.normal(scale=0.5, size=(m, 224))
    for i in range(224):
        echo[f"echonest.temporal_features.{i:03d}"] = temporal[:, i]
    edf = pd.DataFrame(echo, index=index[sub])
    with_echo = pd.concat([full.iloc[sub], edf], axis=1)
    truth = pd.Series(z, index=index, name="planted_cluster")
    return SyntheticCatalog(full, with_echo, truth, dominant, tempo_c)


# --------------------------------------------------------------------------- the same, as FMA's CSV files

#: Root genres of the synthetic ``genres.csv``: FMA's 16 top-level titles with FMA's ids for them.
FMA_ROOT_IDS = {
    "International": 2,
    "Blues": 3,
    "Jazz": 4,
    "Classical": 5,
    "Old-Time / Historic": 8,
    "Pop": 10,
    "Rock": 12,
    "Easy Listening": 13,
    "Soul-RnB": 14,
    "Electronic": 15,
    "Folk": 17,
    "Spoken": 20,
    "Hip-Hop": 21,
    "Experimental": 38,
    "Country": 9,
    "Instrumental": 1235,
}
_SUBGENRES_PER_ROOT = 3
_LICENSES = (
    "Attribution-NonCommercial-ShareAlike 3.0 International",
    "Attribution-NonCommercial-NoDerivatives (aka Music Sharing) 3.0 International",
    "Attribution 3.0 International",
    "Creative Commons Attribution-NonCommercial-NoDerivatives 4.0",
)
_ALBUM_TYPES = ("Album", "Single Tracks", "Live Performance", "Radio Program", "Contest")
_WORDS = (
    "night",
    "river",
    "glass",
    "echo",
    "paper",
    "signal",
    "garden",
    "static",
    "winter",
    "motor",
    "velvet",
    "orbit",
    "harbor",
    "ember",
    "lantern",
    "drift",
    "copper",
    "hollow",
    "meadow",
    "neon",
)


@dataclass
class PlantedFMA:
    """What :func:`write_fma_csvs` wrote, and the planted truth.

    ``directory`` holds ``tracks.csv``, ``features.csv``, ``echonest.csv``,
    ``genres.csv`` (exact FMA layouts), ``planted.csv`` (``track_id,
    planted_cluster`` for every track) and ``planted.json`` (the rest of the truth). ``dominant_genre[c]`` is the
    ``genre_top`` planted for cluster ``c`` (``genre_strength`` of its tracks
    that have a genre).
    """

    directory: Path
    n_tracks: int
    n_echonest: int
    k: int
    truth: pd.Series
    dominant_genre: dict[int, str]
    cluster_tempo: dict[int, float]
    files: dict[str, Path]


def synthetic_genres() -> pd.DataFrame:
    """A ``genres.csv``-shaped taxonomy: the 16 FMA roots (their FMA ids) and 3 made-up subgenres each."""
    import pandas as pd

    rows = []
    for r, (title, gid) in enumerate(sorted(FMA_ROOT_IDS.items(), key=lambda kv: kv[1])):
        rows.append((gid, 0, title, gid))
        for s in range(_SUBGENRES_PER_ROOT):
            rows.append((2000 + 10 * r + s, gid, f"{title} {('A', 'B', 'C')[s]}", gid))
    df = pd.DataFrame(rows, columns=["genre_id", "parent", "title", "top_level"]).set_index("genre_id").sort_index()
    df.insert(0, "#tracks", 0)
    return df


def write_fma_csvs(
    directory,
    n: int = 106_574,
    *,
    n_echonest: int = 13_129,
    k: int = 8,
    latent_dim: int = 8,
    separation: float = 4.0,
    genre_strength: float = 0.7,
    missing_genre: float = 0.53,
    n_nuisance: int = 60,
    noise: float = 3.0,
    seed: int = 2026,
    progress=None,
) -> PlantedFMA:
    """Write a planted catalogue as FMA's four CSV files, in their exact published layouts.

    The data are :func:`make_fma_like`'s (same arguments → same planted
    clusters, genres, tempos and feature values); this writes them the way
    ``fma_metadata.zip`` has them, so the whole pipeline runs on it:
    ``songmine catalog merge DIR -o merged.parquet`` then ``songmine cluster
    run merged.parquet --planted DIR/planted.csv``.

    * ``tracks.csv``: two header rows + ``track_id`` row, all 52 columns, rows
      sorted by id; ``track.genres``/``genres_all`` are Python list literals
      consistent with ``genre_top`` (one root's genres when it is set, genres
      of two roots or none when it is missing, as in FMA); quoted commas and
      newlines in bios and album information; dates ``YYYY-MM-DD HH:MM:SS``.
    * ``features.csv``: three header rows + ``track_id`` row, 518 columns, ``%.10e``.
    * ``echonest.csv``: three header rows + ``track_id`` row, 249 columns,
      ``%.10f``, ids a subset of tracks', NaN ranks/coordinates/album fields.
    * ``genres.csv``: :func:`synthetic_genres` with ``#tracks`` counted over genres_all.
    * ``planted.csv``: ``track_id,planted_cluster``; ``planted.json``: the
      arguments, ``dominant_genre`` and ``cluster_tempo`` per planted cluster.

    Parameters
    ----------
    directory : path
        Created if needed; existing files of these names are overwritten.
    n, n_echonest, k, latent_dim, separation, genre_strength, missing_genre, n_nuisance, noise, seed
        As :func:`make_fma_like` (``n_echonest`` ≤ ``n``).
    progress : callable(str) or None
        Told what is being written.

    Returns
    -------
    PlantedFMA
    """
    import pandas as pd

    if n < k or n_echonest < 1:
        raise ParameterError(f"n={n} must be >= k={k} and n_echonest={n_echonest} >= 1")
    say = progress or (lambda msg: None)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    say(f"planting {k} clusters in {n:,} tracks")
    cat = make_fma_like(
        n,
        n_echonest=n_echonest,
        k=k,
        latent_dim=latent_dim,
        separation=separation,
        genre_strength=genre_strength,
        missing_genre=missing_genre,
        n_nuisance=n_nuisance,
        noise=noise,
        seed=seed,
    )
    rng = np.random.default_rng([seed, 1])
    ids = cat.full.index.to_numpy()
    files = {t: out / f"{t}.csv" for t in ("tracks", "features", "echonest", "genres", "planted")}

    # ---- features.csv
    say("writing features.csv")
    fcols = feature_names()
    X = cat.full[fcols].to_numpy(dtype=np.float64)
    with open(files["features"], "w", encoding="utf-8", newline="\n") as fh:
        for lvl, name in enumerate(("feature", "statistics", "number")):
            fh.write(name + "," + ",".join(c[lvl] for c in FEATURE_COLUMNS) + "\n")
        fh.write("track_id" + "," * len(FEATURE_COLUMNS) + "\n")
        fmt = "%d," + ",".join(["%.10e"] * len(FEATURE_COLUMNS)) + "\n"
        for start in range(0, n, 2000):
            block = X[start : start + 2000]
            fh.write("".join(fmt % (tid, *row) for tid, row in zip(ids[start : start + 2000].tolist(), block.tolist())))
    del X

    # ---- genres.csv and the genre lists of tracks.csv
    genres = synthetic_genres()
    subs = {root: genres.index[(genres["parent"] == root)].to_numpy() for root in FMA_ROOT_IDS.values()}
    top = cat.full["tracks.track.genre_top"].astype(object).to_numpy()
    g_lists: list[list[int]] = []
    g_all: list[list[int]] = []
    roots_all = np.array(sorted(FMA_ROOT_IDS.values()))
    draws = rng.random((n, 3))
    for i in range(n):  # loop over tracks (metadata rows), not over samples
        g = top[i]
        if isinstance(g, str):
            root = FMA_ROOT_IDS[g]
            lst = (
                [root]
                if draws[i, 0] < 0.4
                else sorted({int(subs[root][int(draws[i, 1] * 3)]), *([root] if draws[i, 2] < 0.3 else [])})
            )
        elif draws[i, 0] < 0.15:
            lst = []
        else:
            a, b = rng.choice(roots_all, size=2, replace=False)
            lst = sorted({int(a), int(subs[int(b)][int(draws[i, 1] * 3)])})
        g_lists.append(lst)
        g_all.append(sorted(set(lst) | {int(genres.at[x, "top_level"]) for x in lst}))
    counts = pd.Series([x for lst in g_all for x in lst]).value_counts()
    genres["#tracks"] = counts.reindex(genres.index, fill_value=0).astype(np.int64)
    genres.to_csv(files["genres"])

    # ---- tracks.csv
    say("writing tracks.csv")
    artist = cat.full["tracks.artist.id"].to_numpy()
    u_art, art_inv = np.unique(artist, return_inverse=True)
    ra = np.random.default_rng([seed, 2])
    a_lat = np.where(ra.random(len(u_art)) < 0.42, ra.uniform(-40, 60, len(u_art)), np.nan)
    a_lon = np.where(np.isnan(a_lat), np.nan, ra.uniform(-120, 140, len(u_art)))
    a_begin = np.where(ra.random(len(u_art)) < 0.21, ra.integers(1970, 2016, len(u_art)), 0)
    a_created = pd.Timestamp("2008-11-26") + pd.to_timedelta(ra.integers(0, 3000 * 86400, len(u_art)), unit="s")
    album = rng.integers(1, 15_000, n)
    album[rng.random(n) < 0.01] = -1
    created = pd.to_datetime(cat.full["tracks.track.date_created"]).to_numpy() + rng.integers(0, 86400, n).astype(
        "timedelta64[s]"
    )
    w = np.array(_WORDS)

    def words(count: int, size: int) -> np.ndarray:
        return np.array([" ".join(x) for x in w[rng.integers(0, len(w), (count, size))].tolist()], dtype=object)

    titles, album_titles = words(n, 2), words(n, 3)
    dur = cat.full["tracks.track.duration"].to_numpy()
    listens = cat.full["tracks.track.listens"].to_numpy()
    lang = cat.full["tracks.track.language_code"].astype(object).to_numpy()
    split = np.array(["training", "validation", "test"])[rng.choice(3, n, p=[0.8, 0.1, 0.1])]
    subset = np.array(["small", "medium", "large"])[rng.choice(3, n, p=[0.075, 0.16, 0.765])]
    r = rng.random((n, 12))

    def ts(v) -> str:
        return "" if pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M:%S")

    def fl(v: float) -> str:
        return "" if np.isnan(v) else repr(float(v))

    cols = [f"{g}.{f}" for g, f in TRACKS_COLUMNS]
    with open(files["tracks"], "w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow([""] + [g for g, _ in TRACKS_COLUMNS])
        wr.writerow([""] + [f for _, f in TRACKS_COLUMNS])
        wr.writerow(["track_id"] + [""] * len(TRACKS_COLUMNS))
        for i in range(n):  # one CSV record per track
            a = art_inv[i]
            tag = [str(w[int(r[i, 5] * len(w))])] if r[i, 5] < 0.2 else []
            rec = {
                "album.comments": int(r[i, 0] < 0.05),
                "album.date_created": ts(created[i] - np.timedelta64(3, "D")),
                "album.date_released": ts(created[i]) if r[i, 1] < 0.66 else "",
                "album.engineer": "",
                "album.favorites": int(r[i, 2] * 5),
                "album.id": int(album[i]),
                "album.information": (
                    f'<p>{album_titles[i]}, recorded live.\nSecond line, with "quotes".</p>'
                    if r[i, 3] < 0.3
                    else ("<p></p>" if r[i, 3] < 0.78 else "")
                ),
                "album.listens": int(listens[i] * (1 + r[i, 4] * 4)),
                "album.producer": "",
                "album.tags": repr(tag),
                "album.title": album_titles[i],
                "album.tracks": 1 + int(r[i, 6] * 12),
                "album.type": _ALBUM_TYPES[int(r[i, 7] * 5)] if r[i, 7] < 0.94 else "",
                "artist.active_year_begin": f"{a_begin[a]}-01-01 00:00:00" if a_begin[a] else "",
                "artist.active_year_end": "",
                "artist.associated_labels": "",
                "artist.bio": f"<p>Artist {artist[i]} plays, mostly,\n{w[a % len(w)]} music.</p>" if a % 3 else "",
                "artist.comments": 0,
                "artist.date_created": ts(a_created[a]),
                "artist.favorites": int(a % 17),
                "artist.id": int(artist[i]),
                "artist.latitude": fl(a_lat[a]),
                "artist.location": f"City {a % 500}" if not np.isnan(a_lat[a]) else "",
                "artist.longitude": fl(a_lon[a]),
                "artist.members": "",
                "artist.name": f"Artist {artist[i]}",
                "artist.related_projects": "",
                "artist.tags": repr([f"artist {artist[i]}"] if a % 2 else []),
                "artist.website": f"http://artist{artist[i]}.example.org" if a % 4 else "",
                "artist.wikipedia_page": "",
                "set.split": split[i],
                "set.subset": subset[i],
                "track.bit_rate": (320000, 256000, 192000, 128000)[int(r[i, 8] * 4)],
                "track.comments": 0,
                "track.composer": "",
                "track.date_created": ts(created[i]),
                "track.date_recorded": ts(created[i] - np.timedelta64(40, "D")) if r[i, 9] < 0.06 else "",
                "track.duration": int(dur[i]),
                "track.favorites": int(r[i, 10] * 4),
                "track.genre_top": top[i] if isinstance(top[i], str) else "",
                "track.genres": repr(g_lists[i]),
                "track.genres_all": repr(g_all[i]),
                "track.information": "",
                "track.interest": int(listens[i] * 2 + 10),
                "track.language_code": lang[i] if isinstance(lang[i], str) else "",
                "track.license": _LICENSES[int(r[i, 11] * 4)],
                "track.listens": int(listens[i]),
                "track.lyricist": "",
                "track.number": 1 + int(r[i, 6] * 10),
                "track.publisher": "",
                "track.tags": repr(tag[:1]),
                "track.title": titles[i],
            }
            wr.writerow([int(ids[i])] + [rec[c] for c in cols])

    # ---- echonest.csv
    say("writing echonest.csv")
    e = cat.echonest
    m = len(e)
    re_ = np.random.default_rng([seed, 3])
    eids = e.index.to_numpy()
    ecols = [f"echonest.{g}.{f}" for _, g, f in ECHONEST_COLUMNS]
    num = {}
    for c in ecols:
        if c in e.columns:
            num[c] = e[c].to_numpy(dtype=np.float64)
    lat = np.where(re_.random(m) < 0.74, re_.uniform(-40, 60, m), np.nan)
    num["echonest.metadata.artist_latitude"] = lat
    num["echonest.metadata.artist_longitude"] = np.where(np.isnan(lat), np.nan, re_.uniform(-120, 140, m))
    for f, miss in (
        ("artist_discovery_rank", 0.785),
        ("artist_familiarity_rank", 0.785),
        ("artist_hotttnesss_rank", 0.785),
        ("song_currency_rank", 0.845),
        ("song_hotttnesss_rank", 0.832),
    ):
        num[f"echonest.ranks.{f}"] = np.where(re_.random(m) < miss, np.nan, re_.integers(1, 500_000, m).astype(float))
    for f in ("artist_discovery", "artist_familiarity", "artist_hotttnesss", "song_currency", "song_hotttnesss"):
        num[f"echonest.social_features.{f}"] = re_.random(m)
    e_art = cat.full.loc[eids, "tracks.artist.id"].to_numpy()
    strings = {
        "echonest.metadata.album_date": [str(y) if re_.random() < 0.21 else "" for y in re_.integers(1990, 2015, m)],
        "echonest.metadata.album_name": [t if re_.random() < 0.22 else "" for t in words(m, 2)],
        "echonest.metadata.artist_location": ["" if np.isnan(v) else f"Town {int(abs(v) * 10)}, Region" for v in lat],
        "echonest.metadata.artist_name": [f"Artist {a}" for a in e_art],
        "echonest.metadata.release": list(words(m, 2)),
    }
    numeric_cols = [c for c in ecols if c not in strings]
    E = np.column_stack([num[c] for c in numeric_cols])
    with open(files["echonest"], "w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        for lvl in range(3):
            wr.writerow([""] + [c[lvl] for c in ECHONEST_COLUMNS])
        wr.writerow(["track_id"] + [""] * len(ECHONEST_COLUMNS))
        pos = {c: j for j, c in enumerate(numeric_cols)}
        for i in range(m):  # one CSV record per echonest track
            row = E[i]
            wr.writerow(
                [int(eids[i])]
                + [
                    strings[c][i] if c in strings else ("" if np.isnan(row[pos[c]]) else f"{row[pos[c]]:.10f}")
                    for c in ecols
                ]
            )

    # ---- truth
    cat.truth.rename("planted_cluster").reset_index().to_csv(files["planted"], index=False)

    files["planted_info"] = out / "planted.json"
    files["planted_info"].write_text(
        json.dumps(
            {
                "n_tracks": n,
                "n_echonest": m,
                "k": k,
                "seed": seed,
                "separation": separation,
                "genre_strength": genre_strength,
                "missing_genre": missing_genre,
                "n_nuisance": n_nuisance,
                "noise": noise,
                "dominant_genre": {str(c): g for c, g in cat.dominant_genre.items()},
                "cluster_tempo": {str(c): t for c, t in cat.cluster_tempo.items()},
            },
            indent=1,
        )
        + "\n"
    )
    say(f"wrote {', '.join(p.name for p in files.values())} to {out}")
    return PlantedFMA(out, n, m, k, cat.truth, cat.dominant_genre, cat.cluster_tempo, files)
