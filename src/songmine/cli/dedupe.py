"""``songmine dedupe``: groups of files that are the same recording (never deletes anything)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import (
    EXIT_OK,
    JobsOption,
    JsonOption,
    app,
    check_engine,
    emit_json,
    fail,
    out_console,
    print_skipped,
    progress_bar,
)


@app.command("dedupe")
def dedupe_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(help="Folders or files to scan (recursively).")] = None,
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            metavar="DIR",
            help="Check the tracks of this landmark index from the landmarks it stores (only files changed"
            " since indexing are decoded); with folders too, every file is decoded.",
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option("--threshold", help="Estimated Jaccard of landmark-hash sets that triggers a check, in (0, 1]."),
    ] = 0.08,
    jobs: JobsOption = None,
    no_bandwidth: Annotated[
        bool,
        typer.Option(
            "--no-bandwidth",
            help="Choose keepers from the container alone (lossless, bitrate, duration, rate) "
            "instead of first measuring each grouped file's effective bandwidth (up to 60 s decoded).",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local, or spark (fingerprints, LSH and the offset votes as Spark jobs; folders, not --index alone).",
        ),
    ] = "local",
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master URL with --engine spark (default local[*]).")
    ] = None,
    json_out: JsonOption = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print one CSV row per group member on stdout.")] = False,
) -> None:
    """Find near-duplicate files (re-encodes, other rates, trims, gain) and suggest a keeper per group.

    Exits 0 whatever it finds (also with --json / --csv); 2 on a usage error.
    """
    from ..minhash.dedupe import DedupeConfig, dedupe, dedupe_index

    check_engine(engine, master, jobs=jobs)
    if engine == "spark" and index is not None and not paths:
        raise fail("--engine spark decodes the files: give the folders (with --index P too, its files are added)")
    if json_out and csv_out:
        raise fail("--json and --csv are exclusive")
    from ..workers import default_jobs

    jobs = jobs or default_jobs()
    config = DedupeConfig(threshold=threshold, bandwidth=not no_bandwidth)  # ParameterError → exit 2
    sources: list = list(paths or [])
    if index is not None and not sources:
        from ..paths import resolve_index_path

        with progress_bar("reading the index", enabled=not (json_out or csv_out)) as cb:
            report = dedupe_index(resolve_index_path(index), config, jobs=jobs, progress=cb)
    else:
        if index is not None:
            sources += _index_paths(index)
        if not sources:
            raise fail("give at least one folder or file, or --index P")
        if engine == "spark":
            from ..spark.dedupe import dedupe_spark

            report = dedupe_spark(sources, config, master=master)
        else:
            with progress_bar("fingerprinting", enabled=not (json_out or csv_out)) as cb:
                report = dedupe(sources, config, jobs=jobs, progress=cb)
    if json_out:
        emit_json(report)
    elif csv_out:
        _print_csv(report)
    else:
        _print_human(report)
    raise typer.Exit(EXIT_OK)


def _index_paths(index: Path) -> list[Path]:
    """Files of the tracks stored in an index (those still on disk)."""
    from ..paths import resolve_index_path

    root = resolve_index_path(index)
    try:
        from ..fingerprint.index import Index  # provided by the index module
    except ImportError as exc:  # pragma: no cover - until the index store lands
        raise fail(f"--index is not available in this build: {exc}") from None
    with Index(root) as ix:
        rows = ix.tracks()
    return [Path(r.path) for r in rows if Path(r.path).exists()]


def _print_csv(report) -> None:
    import csv
    import sys

    w = csv.writer(sys.stdout)
    w.writerow(
        [
            "group",
            "path",
            "keeper",
            "codec",
            "bitrate_kbps",
            "lossless",
            "duration_s",
            "offset_s",
            "bandwidth_hz",
            "keeper_reason",
        ]
    )
    for g, group in enumerate(report.groups, start=1):
        for m in group.members:
            w.writerow(
                [
                    g,
                    m.path,
                    int(m.keeper),
                    m.codec,
                    m.bitrate_kbps,
                    int(m.lossless),
                    m.duration_s,
                    m.offset_s,
                    "" if m.bandwidth_hz is None else round(m.bandwidth_hz),
                    group.reason if m.keeper else "",
                ]
            )


def _print_human(report) -> None:
    from rich.table import Table

    con = out_console()
    con.print(
        f"{report.n_files} files, {len(report.groups)} duplicate groups "
        f"({sum(len(g.members) for g in report.groups)} files), {report.n_candidates} LSH candidate pairs"
    )
    for g, group in enumerate(report.groups, start=1):
        t = Table(title=f"group {g}", caption=f"keeper: {group.reason}", show_lines=False)
        for col in ("keep", "file", "codec", "kbps", "bandwidth", "duration", "starts at"):
            t.add_column(col)
        for m in group.members:
            t.add_row(
                "*" if m.keeper else "",
                m.path,
                m.codec + (" (lossless)" if m.lossless else ""),
                f"{m.bitrate_kbps:.0f}",
                "–" if m.bandwidth_hz is None else f"{m.bandwidth_hz / 1000:.2f} kHz",
                f"{m.duration_s:.1f} s",
                "" if m.keeper else f"{m.offset_s:+.2f} s in keeper",
            )
        con.print(t)
    print_skipped((s["path"], s["error"]) for s in report.skipped)
