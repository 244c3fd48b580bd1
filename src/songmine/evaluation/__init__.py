"""How well identification works: degraded clips of real music, asked of a method, summarised.

* :mod:`~songmine.evaluation.degrade` — the conditions (noise, codecs, speed, tempo, pitch, rooms, talk-over…);
* :mod:`~songmine.evaluation.speech` — the shipped bank of synthetic talkers the speech conditions mix in;
* :mod:`~songmine.evaluation.queries` — the library split, a seeded plan, the clips cut and degraded;
* :mod:`~songmine.evaluation.identifiers` — the methods as the harness sees them;
* :mod:`~songmine.evaluation.harness` — :func:`evaluate`: build, ask, time, measure memory;
* :mod:`~songmine.evaluation.report` — the tables, Markdown and a plot, beside the peers' figures;
* :mod:`~songmine.evaluation.democorpus` — the freely licensed demo music.
"""

from __future__ import annotations

from .config import EvalConfig
from .harness import evaluate, run_queries
from .identifiers import BuildStats, Identifier
from .queries import Outcome, Query, QuerySpec, cut_queries, plan_queries, split_library
from .report import EvalReport, plot_report, report_markdown, summarise

__all__ = [
    "EvalConfig",
    "EvalReport",
    "BuildStats",
    "Identifier",
    "Outcome",
    "Query",
    "QuerySpec",
    "cut_queries",
    "evaluate",
    "plan_queries",
    "plot_report",
    "report_markdown",
    "run_queries",
    "split_library",
    "summarise",
]
