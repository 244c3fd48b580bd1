"""Apache Spark jobs (optional extra ``songmine[spark]``): the session, and the work that runs on it.

* :mod:`songmine.spark.session` — the one place songmine starts Spark (bounded start, loopback for
  local masters, :func:`run_job` with a time bound);
* :mod:`songmine.spark.features` — FMA features of many files as a Spark job;
* :mod:`songmine.spark.kmeans` — k-means in the MapReduce paradigm (engine ``"spark"`` of
  :class:`songmine.cluster.KMeans`).

Importing this package does not import pyspark, but needs it installed (the ``spark`` extra).
"""

from __future__ import annotations

from ..extras import require
from .session import SparkSettings, find_java, get_session, is_local_master, run_job, stop_session

require("spark", __name__)  # a missing package of the extra: one line naming it, not a traceback

__all__ = ["SparkSettings", "get_session", "stop_session", "run_job", "find_java", "is_local_master"]
