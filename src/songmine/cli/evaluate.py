"""``songmine eval``: the evaluation harness on any library (thin over :mod:`songmine.evaluation`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..extras import require
from ._app import EXIT_USAGE, JobsOption, JsonOption, app, emit_json, err_console, fail, out_console, progress_bar


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise fail(f"--{what} {text!r}: expected comma-separated numbers, e.g. 3,5,10", EXIT_USAGE) from None


@app.command("eval")
def eval_cmd(
    library: Annotated[Path, typer.Argument(help="Folder of audio files (walked recursively).")],
    index: Annotated[
        Path | None,
        typer.Option("--index", metavar="DIR", help="Build into (or reuse) this index; default: a temporary one."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="Identification method: landmark, sketch, seed.")
    ] = "landmark",
    tracks: Annotated[
        int, typer.Option("--tracks", help="Tracks to index; the rest are held out (a smaller library: 3/4 of it).")
    ] = 40,
    durations: Annotated[
        str, typer.Option("--durations", help="Clip lengths in seconds, comma-separated.")
    ] = "1,2,3,5,10",
    conditions: Annotated[
        str | None,
        typer.Option(
            "--conditions", help="Comma-separated degradations (default: all 22; the last 9 need the eval extra)."
        ),
    ] = None,
    queries_per_cell: Annotated[
        int, typer.Option("--queries-per-cell", help="Member queries per condition × duration.")
    ] = 40,
    nonmember_queries: Annotated[
        int, typer.Option("--nonmember-queries", help="Queries from held-out tracks (false positives).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the split, offsets and noise.")] = 0,
    jobs: JobsOption = None,
    sr: Annotated[int, typer.Option("--sr", help="Rate at which clips are cut and degraded, Hz.")] = 22050,
    thresholds: Annotated[
        str | None, typer.Option("--thresholds", help="Sweep: e.g. 0.2,0.4,0.6 (precision/recall/no-match).")
    ] = None,
    threshold_on: Annotated[
        str, typer.Option("--threshold-on", help="What the thresholds apply to: score or confidence.")
    ] = "score",
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-D", metavar="KEY=VALUE", help="Method-specific setting (repeatable), e.g. -D threshold=0.3."
        ),
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the report as Markdown.")] = None,
    save_json: Annotated[
        Path | None, typer.Option("--save-json", help="Also write the JSON report to this file.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write a PNG plot.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Measure a method: top-1 per condition × duration, false positives, calibration, speed, size.

    Deterministic queries (seeded offsets, near-silent cuts re-drawn) from
    TRACKS indexed tracks, degraded 22 ways, plus non-member queries from the
    held-out tracks. The best of three open-source identifiers, measured the same way on
    other music, is shown beside each cell.
    """
    from ..errors import SongmineError
    from ..evaluation.config import EvalConfig
    from ..evaluation.harness import evaluate
    from ..evaluation.report import report_markdown
    from ..methods import make_identifier
    from ..workers import default_jobs

    if not library.exists():
        raise fail(f"{library}: no such file or directory")
    if plot is not None:  # before the work, not after it
        require("eval", "songmine eval --plot", modules=("matplotlib",))
    jobs = jobs or default_jobs()
    opts: dict[str, str] = {}
    for kv in option or []:
        k, eq, v = kv.partition("=")
        if not eq or not k:
            raise fail(f"--option {kv!r}: expected KEY=VALUE")
        opts[k.strip()] = v.strip()
    if thresholds:
        opts.setdefault("thresholds", thresholds)
    try:
        config = EvalConfig(
            tracks=tracks,
            durations=_floats(durations, "durations"),
            conditions=tuple(c.strip() for c in conditions.split(",") if c.strip())
            if conditions
            else EvalConfig().conditions,
            queries_per_cell=queries_per_cell,
            nonmember_queries=nonmember_queries,
            seed=seed,
            sr=sr,
            thresholds=_floats(thresholds, "thresholds") if thresholds else (),
            threshold_on=threshold_on,
        )
        ident = make_identifier(method, index_path=index, options=opts)
    except SongmineError as exc:
        raise fail(str(exc)) from None
    try:
        with progress_bar("indexing", enabled=not json_out) as bp, progress_bar("querying", enabled=not json_out) as qp:
            report = evaluate(
                library, ident, config, jobs=jobs, build_progress=bp, query_progress=qp, clamp_tracks=True
            )
    except SongmineError as exc:
        raise fail(str(exc)) from None
    finally:
        ident.close()
    if markdown is not None:
        markdown.write_text(report_markdown(report))
    if save_json is not None:
        import json

        from ._app import jsonable

        save_json.write_text(json.dumps(jsonable(report), indent=1, allow_nan=False, default=str))
    if plot is not None:
        from ..evaluation.report import plot_report

        plot_report(report, plot)
    if json_out:
        emit_json(report)
        return
    _print(report)
    written = [str(p) for p in (markdown, save_json, plot) if p is not None]
    if written:
        err_console().print(f"wrote {', '.join(written)}")


def _print(rep) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..evaluation.report import format_number

    con = out_console()
    durs = [float(d) for d in rep.config["durations"]]
    t = Table(
        title=f"songmine eval — {rep.method}: top-1 % (n) vs best peer; "
        f"{rep.n_indexed} indexed, {rep.n_held_out} held out, seed {rep.config['seed']}"
    )
    t.add_column("condition")
    for d in durs:
        t.add_column(f"{d:g} s", justify="right")
    for cond in rep.config["conditions"]:
        row = []
        for d in durs:
            c = next(c for c in rep.cells if c.condition == cond and c.duration_s == d)
            if c.peer_top1 is None:
                row.append(f"{format_number(c.top1)} ({c.n})")
            else:
                ok = c.top1 is not None and c.top1 >= c.peer_top1
                row.append(
                    Text(format_number(c.top1), style="green" if ok else "red").append(f" ({c.n}) {c.peer_top1:.1f}")
                )
        t.add_row(cond, *row)
    t.add_section()
    t.add_row(
        "pooled",
        *(
            Text(format_number(p["top1"]), style="bold").append(f" ({p['n']}) {format_number(p['peer_best_mean'])}")
            for p in rep.pooled.values()
        ),
    )
    t.add_row("FP rate %", *(f"{format_number(p['fp_rate'])} ({p['fp_n']})" for p in rep.pooled.values()))
    con.print(t)

    fp = rep.false_positives
    con.print(
        f"false positives: {fp['false_positives']}/{fp['n']} non-member queries = {format_number(fp['rate'], '{:.2f}')} %  "
        f"(target ≤ 1 %); members answered with a wrong track: {fp['members_answered_wrong']} "
        f"({format_number(fp['members_answered_wrong_rate'], '{:.2f}')} %)"
    )
    r = Table(title="reliability of the confidence (answered queries)")
    for col in ("bin", "n", "mean confidence", "observed accuracy %"):
        r.add_column(col, justify="right")
    for row in rep.reliability:
        r.add_row(
            row["bin"], str(row["n"]), format_number(row["mean_confidence"], "{:.3f}"), format_number(row["accuracy"])
        )
    con.print(r)
    if rep.thresholds:
        s = Table(title=f"threshold sweep on {rep.thresholds[0]['on']}")
        for col in ("threshold", "accepted", "precision %", "recall %", "no-match %", "FP rate %"):
            s.add_column(col, justify="right")
        for row in rep.thresholds:
            s.add_row(
                f"{row['threshold']:g}",
                str(row["accepted"]),
                format_number(row["precision"]),
                format_number(row["recall"]),
                format_number(row["no_match_rate"]),
                format_number(row["fp_rate"]),
            )
        con.print(s)
    lat, b, off = rep.latency_ms, rep.build, rep.offset_error_s
    per_dur = "; ".join(
        f"{d:g} s {lat[f'{d:g}s']['median']:.1f}/{lat[f'{d:g}s']['p95']:.1f}" for d in durs if f"{d:g}s" in lat
    )
    con.print(
        f"latency per query (in process): median {format_number(lat.get('median'))} ms, p95 {format_number(lat.get('p95'))} ms ({per_dur}); "
        f"CPU median {format_number(lat.get('cpu_median'))} ms, p95 {format_number(lat.get('cpu_p95'))} ms\n"
        f"build: {b['n_tracks']} tracks ({b['n_failed']} failed), {b['audio_hours']:.2f} h of audio in "
        f"{b['seconds']:.1f} s = {format_number(b['x_realtime'])} × real time (wall); "
        f"{format_number(b.get('x_realtime_per_cpu'))} × per CPU second ({format_number(b.get('cpu_seconds'))} CPU s incl. children)\n"
        f"index: {b['index_mb']:.2f} MB = {format_number(b['mb_per_hour'], '{:.2f}')} MB per hour of audio; "
        f"peak memory while building {format_number(b['peak_rss_mb'], '{:.0f}')} MB ({b['peak_rss_how']})\n"
        f"offsets of right answers: median |error| {format_number(off.get('median_abs'), '{:.3f}')} s, "
        f"{format_number(off.get('within_tolerance'))} % within ±{rep.config['offset_tolerance_s']:g} s\n"
        f"{rep.n_queries} queries, {rep.n_errors} errors, {rep.seconds:.0f} s in total"
    )
