"""Small functions shared by the benchmark scripts (run as ``python benchmarks/X.py``,
so this folder is on ``sys.path``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def git_commit() -> str:
    """The checkout's short commit id, so every printed table says what it measured."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip() or "?"
    except OSError:
        return "?"


def library_or_demo(path) -> Path:
    """``path``, else the demo music of ``songmine demo-corpus`` (in the user cache); a missing folder exits 2."""
    from songmine.paths import demo_corpus_dir

    library = Path(path) if path else demo_corpus_dir() / "library"
    if not library.is_dir():
        hint = "" if path else " (fetch the demo music with `songmine demo-corpus`, or pass --library DIR)"
        print(f"{library}: no such folder{hint}", file=sys.stderr)
        raise SystemExit(2)
    return library


def markdown_table(title: str, header: list[str], rows: list[list]) -> None:
    """Print a titled markdown table (flushed: long runs show each table as it is done)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    sys.stdout.flush()


def fresh_clip_specs(library, seed: int, qid_bases, per_cell: int, *, tracks: str = "all"):
    """Extra non-member clips planned as ``songmine eval`` plans its queries, for calibrating a test.

    Same split and cells as the eval with ``seed``; ``per_cell`` clips per condition × duration
    per set, query ids from each of ``qid_bases`` on (never the eval's own 0–1,759), round-robin
    over the cells with the held-out tracks rotated; ``tracks`` = ``even``/``odd`` keeps one half
    of those tracks (fit on one, check on the other). Returns ``(eval_config, specs, indexed,
    durations)``: what ``cut_queries`` needs, and the eval's indexed tracks with every duration.
    """
    from songmine.evaluation.config import EvalConfig
    from songmine.evaluation.queries import QuerySpec, split_library
    from songmine.evaluation.degrade import source_seconds

    cfg = EvalConfig(seed=seed)
    indexed, held, durs = split_library(library, cfg)
    longest = max(source_seconds(c, d) for c, d in cfg.cells) + 1.0
    others = [str(p) for p in held if durs[str(p)] >= longest]
    if tracks != "all":
        others = others[0 if tracks == "even" else 1::2]
    cells = cfg.cells
    specs = []
    for base in qid_bases or [100000]:
        for k in range(per_cell * len(cells)):  # round-robin over cells, tracks rotated
            cond, dur = cells[k % len(cells)]
            specs.append(QuerySpec(base + k, others[(k // len(cells) + k) % len(others)], False, cond, dur))
    return cfg, specs, indexed, durs
