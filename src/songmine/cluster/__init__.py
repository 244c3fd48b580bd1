"""Catalogue clustering: k-means (local and Spark engines), reduction, choosing k, analysis, report."""

from __future__ import annotations

from .engines import Engine, LloydResult, LocalEngine, get_engine

__all__ = ["Engine", "LloydResult", "LocalEngine", "get_engine"]
