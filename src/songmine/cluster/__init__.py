"""Catalogue clustering: k-means (local and Spark engines), reduction, choosing k, analysis, report."""

from __future__ import annotations

from .engines import Engine, LloydResult, LocalEngine, get_engine
from .kmeans import KMeans, kmeans_plusplus

__all__ = ["KMeans", "kmeans_plusplus", "Engine", "LloydResult", "LocalEngine", "get_engine"]
