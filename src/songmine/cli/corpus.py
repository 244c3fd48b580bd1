"""Verbs about music on disk: ``demo-corpus`` (fetch the demo music) and ``scan``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import JsonOption, app, emit_json, err_console, out_console, progress_bar


@app.command("demo-corpus")
def demo_corpus(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Where to lay out the music (default: the per-user cache dir)."),
    ] = None,
    json_out: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the library path.")] = False,
) -> None:
    """Fetch freely licensed real music (Debian game soundtracks) for demos and tests.

    Downloads once with apt-get, unpacks, and prints the library table:
    file, package, licence, duration. Re-running on a complete folder is instant.
    """
    from ..evaluation.democorpus import fetch
    from ..paths import demo_corpus_dir

    root = (directory or demo_corpus_dir()).expanduser().resolve()
    console = err_console()
    rows = fetch(root, progress=None if (quiet or json_out) else lambda m: console.print(m))
    if json_out:
        emit_json({"root": str(root), "library": str(root / "library"), "tracks": rows})
        return
    if quiet:
        typer.echo(str(root / "library"))
        return
    from rich.table import Table

    table = Table(title=f"demo library: {root / 'library'}")
    for col in ("file", "package", "licence", "duration"):
        table.add_column(col, justify="right" if col == "duration" else "left")
    for r in rows:
        table.add_row(r.file, r.package, r.licence, f"{r.duration_s:.1f} s")
    out_console().print(table)
    total = sum(r.duration_s for r in rows)
    typer.echo(f"{len(rows)} tracks, {total / 3600:.2f} h")


@app.command("scan")
def scan_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Audio files or folders (walked recursively).")],
    decode: Annotated[
        bool, typer.Option("--decode/--no-decode", help="Decode every file fully to prove it is readable.")
    ] = True,
    json_out: JsonOption = False,
) -> None:
    """Describe the audio files of a library: duration, rate, channels, codec, tags, errors.

    One unreadable file never stops the scan: it is listed with its error.
    """
    from ..library import scan

    with progress_bar("decoding" if decode else "reading", enabled=not json_out) as progress:
        rows = scan(paths, decode=decode, progress=progress)
    if json_out:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} audio files")
    for col in ("file", "duration", "rate", "ch", "codec", "title", "error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            Path(r.path).name,
            "" if r.duration_s is None else f"{r.duration_s:.1f} s",
            "" if r.sr is None else str(r.sr),
            "" if r.channels is None else str(r.channels),
            r.codec or "",
            r.tags.get("title", ""),
            r.error or "",
        )
    out_console().print(table)
    ok = [r for r in rows if r.error is None]
    hours = sum(r.duration_s or 0 for r in ok) / 3600
    typer.echo(f"{len(ok)} readable ({hours:.2f} h), {len(rows) - len(ok)} unreadable")
