"""An evaluation's outcomes aggregated into tables, and those tables as Markdown and a plot.

Beside each cell stands the best of three open-source identifiers (audfprint,
Olaf, Chromaprint) measured with the same protocol on a held-out corpus
(:data:`PEER_BEST`, from ``data/peers.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .config import EvalConfig
from .identifiers import BuildStats
from .queries import Outcome

__all__ = [
    "Cell",
    "EvalReport",
    "PEER_BEST",
    "RELIABILITY_EDGES",
    "format_number",
    "summarise",
    "report_markdown",
    "plot_report",
]


def _peer_best() -> dict[tuple[str, float], tuple[float, str]]:
    doc = json.loads(resources.files("songmine.evaluation").joinpath("data", "peers.json").read_text())
    return {(c["condition"], float(c["duration_s"])): (float(c["top1"]), c["peer"]) for c in doc["cells"]}


#: Best peer top-1 % per (condition, duration s), with the peer's name.
PEER_BEST: dict[tuple[str, float], tuple[float, str]] = _peer_best()


#: Edges of the confidence bins of the reliability table.
RELIABILITY_EDGES: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(slots=True)
class Cell:
    condition: str
    duration_s: float
    n: int
    correct: int
    top1: float | None
    offset_ok: float | None
    answered_wrong: int
    no_answer: int
    errors: int
    peer_top1: float | None = None
    peer: str | None = None


@dataclass(slots=True)
class EvalReport:
    """Everything :func:`evaluate` measured (plain data: ``dataclasses.asdict`` gives the JSON)."""

    method: str
    library: str
    config: dict[str, Any]
    n_indexed: int
    n_held_out: int
    cells: list[Cell]
    pooled: dict[str, dict[str, Any]]
    false_positives: dict[str, Any]
    reliability: list[dict[str, Any]]
    latency_ms: dict[str, Any]
    build: dict[str, Any]
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    offset_error_s: dict[str, Any] = field(default_factory=dict)
    n_queries: int = 0
    n_errors: int = 0
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)


def _peer_mean(conditions: Sequence[str], duration: float) -> float | None:
    """Mean of the best peer's top-1 over ``conditions`` at ``duration`` (None unless all were measured)."""
    best = [PEER_BEST.get((c, duration)) for c in conditions]
    return float(np.mean([b[0] for b in best])) if best and all(best) else None


def _pct(k: int, n: int) -> float | None:
    return 100.0 * k / n if n else None


def summarise(
    outcomes: Sequence[Outcome],
    config: EvalConfig,
    *,
    build: BuildStats,
    method: str,
    library: str,
    n_indexed: int,
    n_held_out: int,
) -> EvalReport:
    """Aggregate per-query outcomes into the report's tables."""
    members = [o for o in outcomes if o.member]
    others = [o for o in outcomes if not o.member]
    cells = []
    for cond, dur in config.cells:
        cell = [o for o in members if o.condition == cond and o.duration_s == dur]
        n, k = len(cell), sum(o.correct for o in cell)
        peer = PEER_BEST.get((cond, float(dur)))
        cells.append(
            Cell(
                cond,
                dur,
                n,
                k,
                _pct(k, n),
                _pct(sum(o.offset_ok for o in cell), k),
                sum(o.answered and not o.correct for o in cell),
                sum(not o.answered for o in cell),
                sum(o.error is not None for o in cell),
                peer[0] if peer else None,
                peer[1] if peer else None,
            )
        )
    pooled = {}
    for dur in config.durations:
        cs = [c for c in cells if c.duration_s == dur]
        n, k = sum(c.n for c in cs), sum(c.correct for c in cs)
        fp = [o for o in others if o.duration_s == dur]
        pooled[f"{dur:g}"] = {
            "duration_s": dur,
            "n": n,
            "correct": k,
            "top1": _pct(k, n),
            "peer_best_mean": _peer_mean(config.conditions, float(dur)),
            "fp_n": len(fp),
            "fp_rate": _pct(sum(o.answered for o in fp), len(fp)),
        }
    n_fp = sum(o.answered for o in others)
    fps = {
        "n": len(others),
        "false_positives": n_fp,
        "rate": _pct(n_fp, len(others)),
        "members_answered_wrong": sum(o.answered and not o.correct for o in members),
        "members_answered_wrong_rate": _pct(sum(o.answered and not o.correct for o in members), len(members)),
        "examples": [
            {
                "query": f"q{o.qid}",
                "track": Path(o.track).name,
                "answer": Path(o.top_path or "").name,
                "confidence": o.confidence,
                "score": o.score,
            }
            for o in others
            if o.answered
        ][:10],
    }
    answered = [o for o in outcomes if o.answered and o.confidence is not None]
    reliability = []
    edges = RELIABILITY_EDGES
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        b = [o for o in answered if lo <= o.confidence < hi or (last and o.confidence == hi)]
        reliability.append(
            {
                "bin": f"[{lo:g}, {hi:g}{']' if last else ')'}",
                "n": len(b),
                "mean_confidence": float(np.mean([o.confidence for o in b])) if b else None,
                "accuracy": _pct(sum(o.correct for o in b), len(b)),
            }
        )
    lat = np.array([o.latency_s for o in outcomes if o.latency_s is not None]) * 1e3
    latency: dict[str, Any] = {"n": int(lat.size)}
    if lat.size:
        latency.update(median=float(np.median(lat)), p95=float(np.percentile(lat, 95)), mean=float(lat.mean()))
    cpu = np.array([o.cpu_s for o in outcomes if o.cpu_s is not None]) * 1e3
    if cpu.size:
        latency.update(cpu_median=float(np.median(cpu)), cpu_p95=float(np.percentile(cpu, 95)))
    for dur in config.durations:
        d = np.array([o.latency_s for o in outcomes if o.latency_s is not None and o.duration_s == dur]) * 1e3
        if d.size:
            latency[f"{dur:g}s"] = {"median": float(np.median(d)), "p95": float(np.percentile(d, 95))}
    errs = np.array([o.offset_error_s for o in members if o.offset_error_s is not None])
    offset = {"n": int(errs.size)}
    if errs.size:
        offset.update(
            median_abs=float(np.median(np.abs(errs))),
            p95_abs=float(np.percentile(np.abs(errs), 95)),
            within_tolerance=_pct(int(np.sum(np.abs(errs) <= config.offset_tolerance_s)), errs.size),
            tolerance_s=config.offset_tolerance_s,
        )
    sweep = []
    for t in config.thresholds:

        def value(o: Outcome) -> float | None:
            return o.score if config.threshold_on == "score" else o.confidence

        acc = [o for o in outcomes if o.answered and value(o) is not None and value(o) >= t]
        right = sum(o.correct for o in acc)
        sweep.append(
            {
                "threshold": t,
                "on": config.threshold_on,
                "accepted": len(acc),
                "precision": _pct(right, len(acc)),
                "recall": _pct(right, len(members)),
                "no_match_rate": _pct(len(outcomes) - len(acc), len(outcomes)),
                "fp_rate": _pct(sum(not o.member for o in acc), len(others)),
            }
        )
    b = {
        "n_tracks": build.n_tracks,
        "n_failed": build.n_failed,
        "audio_hours": build.audio_seconds / 3600,
        "seconds": build.seconds,
        "x_realtime": build.x_realtime,
        "index_mb": build.index_bytes / 1e6,
        "mb_per_hour": build.mb_per_hour,
        "peak_rss_mb": build.peak_rss_mb,
        "peak_rss_how": build.peak_rss_how,
        "cpu_seconds": build.cpu_seconds,
        "x_realtime_per_cpu": build.audio_seconds / build.cpu_seconds if build.cpu_seconds else None,
    }

    return EvalReport(
        method=method,
        library=library,
        config=dataclasses.asdict(config),
        n_indexed=n_indexed,
        n_held_out=n_held_out,
        cells=cells,
        pooled=pooled,
        false_positives=fps,
        reliability=reliability,
        latency_ms=latency,
        build=b,
        thresholds=sweep,
        offset_error_s=offset,
        n_queries=len(outcomes),
        n_errors=sum(o.error is not None for o in outcomes),
        outcomes=list(outcomes),
    )


def format_number(v: float | None, fmt: str = "{:.1f}") -> str:
    """``v`` formatted for a table, or an en dash when there is no value."""
    return "–" if v is None else fmt.format(v)


def report_markdown(rep: EvalReport) -> str:
    """The report as Markdown tables (what ``--markdown`` writes)."""
    durs = [float(d) for d in rep.config["durations"]]
    lines = [
        f"# songmine eval — method `{rep.method}`",
        "",
        f"Library `{rep.library}`: {rep.n_indexed} tracks indexed, {rep.n_held_out} held out; "
        f"{rep.n_queries} queries (seed {rep.config['seed']}), {rep.n_errors} errors; {rep.seconds:.0f} s.",
        "",
        "## Top-1 accuracy % per condition × duration (n; best peer on another corpus, data/peers.json)",
        "",
        "| condition | " + " | ".join(f"{d:g} s" for d in durs) + " |",
        "|---|" + "---|" * len(durs),
    ]
    for cond in rep.config["conditions"]:
        row = []
        for d in durs:
            c = next(c for c in rep.cells if c.condition == cond and c.duration_s == d)
            peer = f"; peer {c.peer_top1:.1f}" if c.peer_top1 is not None else ""
            row.append(f"{format_number(c.top1)} (n={c.n}{peer})")
        lines.append(f"| {cond} | " + " | ".join(row) + " |")
    lines += [
        "",
        "## Pooled top-1 % per duration",
        "",
        "| duration | n | top-1 | best peer (mean) | FP rate (n) |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in rep.pooled.values():
        lines.append(
            f"| {p['duration_s']:g} s | {p['n']} | {format_number(p['top1'])} | {format_number(p['peer_best_mean'])} | "
            f"{format_number(p['fp_rate'])} ({p['fp_n']}) |"
        )
    fp = rep.false_positives
    lines += [
        "",
        f"False positives on non-member queries: {fp['false_positives']}/{fp['n']} = {format_number(fp['rate'], '{:.2f}')} %. "
        f"Member queries answered with a wrong track: {fp['members_answered_wrong']} "
        f"({format_number(fp['members_answered_wrong_rate'], '{:.2f}')} %).",
        "",
        "## Reliability of the confidence (answered queries)",
        "",
        "| confidence bin | n | mean confidence | observed accuracy % |",
        "|---|---:|---:|---:|",
    ]
    for r in rep.reliability:
        lines.append(
            f"| {r['bin']} | {r['n']} | {format_number(r['mean_confidence'], '{:.3f}')} | {format_number(r['accuracy'])} |"
        )
    if rep.thresholds:
        lines += [
            "",
            f"## Threshold sweep (on {rep.thresholds[0]['on']})",
            "",
            "| threshold | accepted | precision % | recall % | no-match % | FP rate % |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for t in rep.thresholds:
            lines.append(
                f"| {t['threshold']:g} | {t['accepted']} | {format_number(t['precision'])} | {format_number(t['recall'])} | "
                f"{format_number(t['no_match_rate'])} | {format_number(t['fp_rate'])} |"
            )
    lat, b, off = rep.latency_ms, rep.build, rep.offset_error_s
    lines += [
        "",
        "## Cost",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| query latency, median / p95 (in process) | {format_number(lat.get('median'))} / {format_number(lat.get('p95'))} ms |",
        *(
            f"| latency {d:g} s clips, median / p95 | {format_number(lat[f'{d:g}s']['median'])} / {format_number(lat[f'{d:g}s']['p95'])} ms |"
            for d in durs
            if f"{d:g}s" in lat
        ),
        f"| build | {b['n_tracks']} tracks ({b['n_failed']} failed), {b['audio_hours']:.2f} h in {b['seconds']:.1f} s |",
        f"| build speed | {format_number(b['x_realtime'])} × real time (wall); {format_number(b.get('x_realtime_per_cpu'))} × per CPU second "
        f"({format_number(b.get('cpu_seconds'))} CPU s, this process + children) |",
        f"| query CPU time, median / p95 | {format_number(lat.get('cpu_median'))} / {format_number(lat.get('cpu_p95'))} ms |",
        f"| index size | {b['index_mb']:.2f} MB = {format_number(b['mb_per_hour'], '{:.2f}')} MB per hour of audio |",
        f"| peak memory while building | {format_number(b['peak_rss_mb'], '{:.0f}')} MB ({b['peak_rss_how']}) |",
        f"| offset error of right answers, median / p95 | {format_number(off.get('median_abs'), '{:.3f}')} / "
        f"{format_number(off.get('p95_abs'), '{:.3f}')} s; {format_number(off.get('within_tolerance'))} % within ±{rep.config['offset_tolerance_s']:g} s |",
    ]
    return "\n".join(lines) + "\n"


def plot_report(rep: EvalReport, path: str | os.PathLike[str]) -> None:
    """Write a PNG: top-1 per condition (one line per duration, peers dashed) and the reliability diagram.

    Raises
    ------
    MissingExtraError
        matplotlib (the ``eval`` extra) is not installed.
    """
    from ..extras import require

    require("eval", "the eval plot", modules=("matplotlib",))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = list(rep.config["conditions"])
    durs = [float(d) for d in rep.config["durations"]]
    n_panels = 3 if rep.thresholds else 2
    fig, axes = plt.subplots(
        1, n_panels, figsize=(6 + 4.5 * (n_panels - 1), 4.5), gridspec_kw={"width_ratios": [2] + [1] * (n_panels - 1)}
    )
    ax = axes[0]
    x = np.arange(len(conds))
    for d in durs:
        ys = [next(c.top1 for c in rep.cells if c.condition == k and c.duration_s == d) for k in conds]
        (line,) = ax.plot(x, [np.nan if v is None else v for v in ys], "o-", label=f"{rep.method} {d:g} s")
        peer = [PEER_BEST.get((k, d), (np.nan,))[0] for k in conds]
        if not np.all(np.isnan(peer)):
            ax.plot(x, peer, "x--", color=line.get_color(), alpha=0.5, label=f"best peer {d:g} s")
    ax.set_xticks(x, conds, rotation=60, ha="right")
    ax.set_ylim(-2, 102)
    ax.set_ylabel("top-1 %")
    ax.set_title("accuracy per condition")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    pts = [(r["mean_confidence"], r["accuracy"] / 100, r["n"]) for r in rep.reliability if r["n"]]
    ax.plot([0, 1], [0, 1], ":", color="grey")
    if pts:
        mc, acc, n = map(np.array, zip(*pts))
        ax.scatter(mc, acc, s=20 + 200 * n / n.max())
        ax.plot(mc, acc, "-")
    ax.set_xlabel("predicted confidence")
    ax.set_ylabel("observed accuracy")
    ax.set_title("reliability")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    if rep.thresholds:
        ax = axes[2]
        t = [s["threshold"] for s in rep.thresholds]
        for key in ("precision", "recall", "no_match_rate"):
            ax.plot(t, [np.nan if s[key] is None else s[key] for s in rep.thresholds], "o-", label=key)
        ax.set_xlabel(f"threshold on {rep.thresholds[0]['on']}")
        ax.set_ylabel("%")
        ax.set_title("threshold sweep")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=110)
    plt.close(fig)
