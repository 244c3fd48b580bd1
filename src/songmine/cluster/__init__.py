"""Catalogue clustering: k-means (local and Spark engines), reduction, choosing k, analysis, report.

* :class:`KMeans` — a scikit-learn estimator (random / greedy k-means++ / given centres), Lloyd's iterations ours.
* :mod:`.engines` — the engine protocol (:class:`Engine`, :class:`LloydResult`) and :class:`LocalEngine`.
* :mod:`.reduce` — standardise + PCA (variance threshold) or TruncatedSVD.
* :mod:`.choose_k` — elbow, silhouette, Calinski-Harabasz, Davies-Bouldin, gap; a recommended k.
* :mod:`.analysis` — the ``cluster run`` pipeline and its interpretation; :mod:`.report` — the HTML report.

The estimator is loaded on first use: Spark workers import :mod:`.engines` alone,
without scikit-learn.
"""

from __future__ import annotations

from importlib import import_module

from .engines import Engine, LloydResult, LocalEngine, get_engine

__all__ = ["KMeans", "kmeans_plusplus", "NotFittedError", "Engine", "LloydResult", "LocalEngine", "get_engine"]

_FROM_KMEANS = ("KMeans", "kmeans_plusplus", "NotFittedError")


def __getattr__(name: str):
    if name in _FROM_KMEANS:
        return getattr(import_module(".kmeans", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
