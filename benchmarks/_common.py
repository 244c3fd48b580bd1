"""Small functions shared by the benchmark scripts (run as ``python benchmarks/X.py``,
so this folder is on ``sys.path``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def git_commit() -> str:
    """The checkout's short commit id, so every printed table says what it measured."""
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
            ).stdout.strip()
            or "?"
        )
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
    from songmine.evaluation.degrade import source_seconds
    from songmine.evaluation.queries import QuerySpec, split_library

    cfg = EvalConfig(seed=seed)
    indexed, held, durs = split_library(library, cfg)
    longest = max(source_seconds(c, d) for c, d in cfg.cells) + 1.0
    others = [str(p) for p in held if durs[str(p)] >= longest]
    if tracks != "all":
        others = others[0 if tracks == "even" else 1 :: 2]
    cells = cfg.cells
    specs = []
    for base in qid_bases or [100000]:
        for k in range(per_cell * len(cells)):  # round-robin over cells, tracks rotated
            cond, dur = cells[k % len(cells)]
            specs.append(QuerySpec(base + k, others[(k // len(cells) + k) % len(others)], False, cond, dur))
    return cfg, specs, indexed, durs


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (those gone count 0)."""
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError):  # gone, or caught while exiting (an empty stat)
            pass
    return total


def process_memory(pid: int) -> tuple[float, float, float]:
    """``(pss, rss, anonymous)`` of a process, MB (0 when it is gone). PSS shares each shared page
    among the processes mapping it, so a sum over processes counts it once."""
    pss = rss = anon = 0.0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("Anonymous:"):
                    anon = int(line.split()[1]) / 1024
    except OSError:
        pass
    return pss, rss, anon


class TreeMemory:
    """Samples the memory of this process and all its descendants (Linux /proc)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.samples: list[tuple[float, float, float, float]] = []  # (t, pss MB, rss MB, anonymous MB)
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        c0 = time.thread_time()
        while not self._stop.is_set():
            pss = rss = anon = 0.0
            for pid in process_tree(os.getpid()):
                a, b, c = process_memory(pid)
                pss += a
                rss += b
                anon += c
            self.samples.append((time.perf_counter() - t0, pss, rss, anon))
            self.cpu_seconds = time.thread_time() - c0  # the sampler's own CPU, not the build's
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self) -> tuple[float, float, float]:
        """Peak (PSS, RSS, anonymous) MB; mapped segment pages count in PSS/RSS, not in anonymous."""
        if not self.samples:
            return float("nan"), float("nan"), float("nan")
        return tuple(max(s[i] for s in self.samples) for i in (1, 2, 3))

    def quarters(self) -> list[float]:
        """Peak PSS in each quarter of the sampled time."""
        if not self.samples:
            return []
        end = self.samples[-1][0] or 1.0
        return [
            max((s[1] for s in self.samples if q * end / 4 <= s[0] <= (q + 1) * end / 4), default=float("nan"))
            for q in range(4)
        ]
