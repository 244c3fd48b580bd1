"""Catalogue verbs: ``catalog merge`` (FMA tables → one table) and ``features`` (audio → FMA features)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import JsonOption, app, emit_json, err_console, fail, out_console, progress_bar

catalog_app = typer.Typer(
    help="FMA catalogue tables: load, validate, merge.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("merge")
def merge_cmd(
    source: Annotated[Path, typer.Argument(help="A directory with tracks/features/echonest.csv, or fma_metadata.zip.")],
    no_echonest: Annotated[
        bool, typer.Option("--no-echonest", help="Join tracks + features only (all ~106K tracks).")
    ] = False,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write the merged table: parquet, or CSV if the name ends in .csv."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the parquet cache.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Inner-join tracks + features (+ echonest) on track_id and print rows kept/dropped per input.

    Columns are flattened to '<table>.<level>.<level>' (e.g. tracks.track.genre_top,
    features.mfcc.mean.01, echonest.audio_features.tempo). The join is by id, never
    by position.
    """
    from ..catalog.merge import merge_source, write_table

    df, report = merge_source(source, echonest=not no_echonest, cache=not no_cache)
    written = write_table(df, output) if output is not None else None
    summary = {
        "source": str(source),
        "inputs": [
            {"table": c.table, "rows": c.rows, "kept": c.kept, "dropped": c.dropped, "columns": c.columns}
            for c in report.inputs
        ],
        "rows": report.rows,
        "columns": report.columns,
        "output": written,
    }
    if json_out:
        emit_json(summary)
        return
    from rich.table import Table

    t = Table(title=f"inner join on track_id: {report.rows:,} rows × {report.columns:,} columns")
    for col in ("input", "rows", "kept", "dropped", "columns"):
        t.add_column(col, justify="left" if col == "input" else "right")
    for c in report.inputs:
        t.add_row(c.table, f"{c.rows:,}", f"{c.kept:,}", f"{c.dropped:,}", f"{c.columns:,}")
    out_console().print(t)
    if written:
        typer.echo(f"wrote {written}")
