"""Catalogue clustering: k-means (local and Spark engines), reduction, choosing k, analysis, report.

* :class:`KMeans` — scikit-learn-style estimator (random / greedy k-means++ / given centres).
* :mod:`.engines` — the engine protocol (:class:`Engine`, :class:`LloydResult`) and :class:`LocalEngine`.
* :mod:`.reduce` — standardise + PCA (variance threshold) or TruncatedSVD.
* :mod:`.choose_k` — elbow, silhouette, Calinski-Harabasz, Davies-Bouldin, gap; a recommended k.
* :mod:`.analysis` — the ``cluster run`` pipeline and its interpretation; :mod:`.report` — the HTML report.
"""

from __future__ import annotations

from .engines import Engine, LloydResult, LocalEngine, get_engine
from .kmeans import KMeans, kmeans_plusplus

__all__ = ["KMeans", "kmeans_plusplus", "Engine", "LloydResult", "LocalEngine", "get_engine"]
