"""``songmine identify``: which indexed track is each clip? (thin over :func:`songmine.identify.identify`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._app import EXIT_NO_MATCH, EXIT_OK, EXIT_USAGE, JsonOption, app, emit_json, fail, out_console, printable

METHODS = ("landmark", "seed", "sketch")


def open_index(path: Optional[Path]):
    """Open the index at ``path`` (or the default location); a clear one-line error when missing."""
    from ..errors import IndexFormatError
    from ..paths import resolve_index_path

    try:
        from ..index import Index
    except ImportError as exc:  # the index store is not installed in this build
        raise fail(f"the index store is not available ({exc})", EXIT_USAGE) from None
    p = resolve_index_path(path)
    try:
        return Index(p)
    except IndexFormatError as exc:
        raise fail(str(exc).splitlines()[0], EXIT_USAGE) from None


@app.command("identify")
def identify_cmd(
    clips: Annotated[list[Path], typer.Argument(help="Audio clips to identify (any format FFmpeg decodes).")],
    index: Annotated[
        Optional[Path], typer.Option("--index", help="Index directory (default: $SONGMINE_INDEX or the per-user one).")
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Matches to show per clip.")] = 3,
    method: Annotated[str, typer.Option("--method", help="Identification method: landmark, seed (the brief's) or sketch.")] = "landmark",
    json_out: JsonOption = False,
) -> None:
    """Identify short (possibly noisy, sped-up) clips against an indexed library.

    Prints per clip the best matches (title, artist, offset in the track,
    confidence) or "no match". A clip that cannot be decoded is reported and
    the others go on. Exit 0 if at least one clip matched, 1 if none did,
    2 for a missing index or usage error.
    """
    if method not in METHODS:
        raise fail(f"--method {method!r}: expected one of {', '.join(METHODS)}", EXIT_USAGE)
    if method != "landmark":  # seed / sketch indexes live in <index>/seed, <index>/sketch
        from ._altmethods import identify_alt

        results = identify_alt(method, index, clips, top=top)
        emit_json(results) if json_out else _print(results)
        raise typer.Exit(EXIT_OK if any(r.matches for r in results) else EXIT_NO_MATCH)
    from ..identify import identify, keep_heap
    from ..landmarks import FingerprintConfig

    keep_heap()
    ix = open_index(index)
    try:
        if not isinstance(ix.config, FingerprintConfig):
            raise fail(
                f"index {getattr(ix, 'path', '')} was built for another method "
                f"({getattr(ix, 'method', type(ix.config).__name__)}), not landmark",
                EXIT_USAGE,
            )
        results = [identify(ix, str(c), top=top) for c in clips]  # per-clip errors land in the record
    finally:
        close = getattr(ix, "close", None)
        if close is not None:
            close()
    matched = any(r.matches for r in results)
    if json_out:
        emit_json(results)
    else:
        _print(results)
    raise typer.Exit(EXIT_OK if matched else EXIT_NO_MATCH)


def _print(results) -> None:
    from rich.table import Table

    console = out_console()
    for r in results:
        if r.error:
            typer.echo(printable(f"{r.query}: error: {r.error}"))
            continue
        if not r.matches:
            typer.echo(printable(f"{r.query}: no match"))
            continue
        table = Table(title=r.query, title_justify="left")
        for col in ("#", "title", "artist", "offset", "confidence", "score", "path"):
            table.add_column(col, justify="right" if col in ("#", "offset", "confidence", "score") else "left")
        for i, m in enumerate(r.matches, 1):
            title = m.title or Path(m.path).stem
            table.add_row(str(i), title, m.artist or "", _mmss(m.offset_s),
                          f"{m.confidence:.3f}", f"{m.score:g}", m.path)
        console.print(table)


def _mmss(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    return f"{sign}{int(s // 60)}:{s % 60:05.2f}"
