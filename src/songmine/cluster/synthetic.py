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

from dataclasses import dataclass

import numpy as np

from .data import ECHO_AUDIO, FAMILIES, STATS

__all__ = ["make_fma_like", "SyntheticCatalog", "FMA_GENRES", "feature_names"]

FMA_GENRES = ("Rock", "Electronic", "Hip-Hop", "Folk", "Classical", "Experimental", "Pop", "Jazz",
              "International", "Instrumental", "Blues", "Country", "Soul-RnB", "Spoken",
              "Old-Time / Historic", "Easy Listening")
_DIMS = {"chroma_cens": 12, "chroma_cqt": 12, "chroma_stft": 12, "mfcc": 20, "rmse": 1,
         "spectral_bandwidth": 1, "spectral_centroid": 1, "spectral_contrast": 7,
         "spectral_rolloff": 1, "tonnetz": 6, "zcr": 1}


def feature_names(prefix: str = "features.") -> list[str]:
    """The 518 FMA feature columns, in file order, flattened with dots."""
    return [f"{prefix}{fam}.{st}.{i:02d}" for fam in FAMILIES for st in STATS for i in range(1, _DIMS[fam] + 1)]


@dataclass
class SyntheticCatalog:
    """``full``: tracks + features (all rows); ``echonest``: tracks + features + echonest (subset)."""

    full: "pd.DataFrame"
    echonest: "pd.DataFrame"
    truth: "pd.Series"
    dominant_genre: dict[int, str]
    cluster_tempo: dict[int, float]


def make_fma_like(n: int = 106_574, *, n_echonest: int = 13_129, k: int = 6, latent_dim: int = 8,
                  separation: float = 4.0, genre_strength: float = 0.7, missing_genre: float = 0.53,
                  n_nuisance: int = 60, noise: float = 3.0, seed: int = 0,
                  float32: bool = True) -> SyntheticCatalog:
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
    for col, lo, hi in (("spectral_centroid.mean.01", 600.0, 4200.0), ("rmse.mean.01", 0.01, 0.3),
                        ("zcr.mean.01", 0.02, 0.2)):
        j = names.index("features." + col)
        r = (feats[:, j] - feats[:, j].min()) / np.ptp(feats[:, j])
        feats[:, j] = lo + (hi - lo) * r
    ids = np.sort(rng.choice(np.arange(2, 160_000), size=n, replace=False))
    index = pd.Index(ids, name="track_id")

    dominant = {c: FMA_GENRES[c % len(FMA_GENRES)] for c in range(k)}
    genre = np.where(rng.random(n) < genre_strength, np.array([dominant[c] for c in range(k)])[z],
                     np.array(FMA_GENRES)[rng.integers(0, len(FMA_GENRES), n)]).astype(object)
    genre[rng.random(n) < missing_genre] = None
    years = rng.integers(2008, 2018, n)
    tracks = pd.DataFrame({
        "tracks.track.genre_top": pd.Categorical(genre),
        "tracks.track.duration": np.round(np.exp(rng.normal(5.3, 0.5, n))).astype(np.int64),
        "tracks.track.listens": np.round(np.exp(rng.normal(6.5 + 0.2 * (z % 2), 1.5, n))).astype(np.int64),
        "tracks.track.date_created": pd.to_datetime(
            [f"{y}-{m:02d}-15" for y, m in zip(years, rng.integers(1, 13, n))]),
        "tracks.track.language_code": np.where(rng.random(n) < 0.15, "en", None),
        "tracks.artist.id": rng.integers(1, 20_000, n),
    }, index=index)
    fdf = pd.DataFrame(feats.astype(np.float32 if float32 else np.float64), index=index, columns=names)
    full = pd.concat([tracks, fdf], axis=1)

    m = min(n, n_echonest)
    sub = np.sort(rng.choice(n, size=m, replace=False))
    tempo_c = {c: float(t) for c, t in zip(range(k), rng.permutation(np.linspace(75, 150, k)))}
    zs = z[sub]
    level = {a: rng.permutation(np.linspace(0.15, 0.85, k)) for a in ECHO_AUDIO if a != "tempo"}
    echo = {}
    for a in ECHO_AUDIO:
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
