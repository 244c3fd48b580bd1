"""Small helpers shared by the benchmark scripts (run as ``python benchmarks/X.py``,
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


def markdown_table(title: str, header: list[str], rows: list[list]) -> None:
    """Print a titled markdown table (flushed: long runs show each table as it is done)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    sys.stdout.flush()
