"""``songmine identify``: which indexed track is each clip? (thin over :func:`songmine.identify`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import one_line
from ._app import EXIT_INTERNAL, EXIT_NO_MATCH, EXIT_OK, EXIT_USAGE, JsonOption, app, emit_json, fail, out_console, printable

def open_index(path: Optional[Path]):
    """Open the index at ``path`` (or the default location).

    Raises IndexFormatError (missing, damaged, of another version): ``identify`` reports it.
    """
    from ..paths import resolve_index_path

    try:
        from ..fingerprint.index import Index
    except ImportError as exc:  # the index store is not installed in this build
        raise fail(f"the index store is not available ({exc})", EXIT_USAGE) from None
    return Index(resolve_index_path(path))


def _unusable(clips: list[Path], exc: Exception, json_out: bool) -> typer.Exit:
    """No index to ask: with --json every clip still gets its record (the error), then one line, exit 2."""
    from ..records import QueryResult

    if json_out:
        emit_json([QueryResult(query=str(c), error=one_line(exc)) for c in clips])
    return fail(one_line(exc), EXIT_USAGE)


@app.command("identify")
def identify_cmd(
    clips: Annotated[list[Path], typer.Argument(help="Audio clips to identify (any format FFmpeg decodes).")],
    index: Annotated[
        Optional[Path], typer.Option("--index", help="Index directory (default: $SONGMINE_INDEX or the per-user one).")
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Matches to show per clip.")] = 3,
    method: Annotated[str, typer.Option("--method", help="Identification method: landmark, seed (the original course method) or sketch.")] = "landmark",
    json_out: JsonOption = False,
) -> None:
    """Identify short (possibly noisy, sped-up) clips against an indexed library.

    Prints per clip the best matches (title, artist, offset in the track,
    confidence) or "no match". A clip that fails (unreadable, not audio, too
    long) gets its error in its record and the others go on. Exit 0 if at
    least one clip matched and none failed, 1 if none matched and none
    failed, 2 if a clip failed (every record is still printed) or for a
    missing or damaged index (with --json every clip's record then carries
    that error) or a usage error, 70 for an internal error.
    """
    if method != "landmark":  # seed / sketch indexes live in sub-folders of the index
        from ..errors import IndexFormatError
        from ._altmethods import alt_index

        try:
            ix = alt_index(method, index)
        except IndexFormatError as exc:
            raise _unusable(clips, exc, json_out) from None
        batch = _Batch(lambda c: ix.query_file(c, top=top))
        results = batch.run(clips)
        emit_json(results) if json_out else _print(results)
        batch.report()
        raise typer.Exit(batch.exit_code(results))
    from ..errors import IndexFormatError
    from ..fingerprint.heap import keep_heap
    from ..fingerprint.landmarks import FingerprintConfig
    from ..fingerprint.query import identify

    keep_heap()
    try:
        ix = open_index(index)
    except IndexFormatError as exc:  # missing, damaged, of a newer format
        raise _unusable(clips, exc, json_out) from None
    try:
        if not isinstance(ix.config, FingerprintConfig):
            raise fail(f"index {ix.path} was built for another method ({ix.method}), not landmark", EXIT_USAGE)
        batch = _Batch(lambda c: identify(ix, c, top=top))
        results = batch.run(clips)
    finally:
        ix.close()
    if json_out:
        emit_json(results)
    else:
        _print(results)
    batch.report()
    raise typer.Exit(batch.exit_code(results))


class _Batch:
    """Run one query per clip; whatever goes wrong with one clip lands in its record, the rest go on."""

    def __init__(self, query):
        self.query = query
        self.damaged: str | None = None  # the first index-damage error met
        self.crash_log: str | None = None  # set when a clip met a bug

    def run(self, clips: list[Path]) -> list:
        return [self._one(str(c)) for c in clips]  # loop over clips

    def _one(self, clip: str):
        from ..errors import IndexFormatError, SongmineError
        from ..records import QueryResult
        from ._app import write_crash_log

        try:
            return self.query(clip)
        except IndexFormatError as exc:  # the index, not the clip: said once more at the end
            self.damaged = self.damaged or one_line(exc)
            return QueryResult(query=clip, error=one_line(exc))
        except SongmineError as exc:
            return QueryResult(query=clip, error=one_line(exc))
        except Exception as exc:  # a bug: keep the traceback, report the clip, go on
            self.crash_log = write_crash_log()
            return QueryResult(query=clip, error=f"internal error: {type(exc).__name__}: {one_line(exc)}")

    def report(self) -> None:
        if self.damaged:
            typer.echo(f"songmine: error: {printable(self.damaged)}", err=True)
        if self.crash_log:
            typer.echo(f"songmine: internal error on some clips (traceback in {self.crash_log})", err=True)

    def exit_code(self, results: list) -> int:
        """70 a bug, 2 a clip failed (or the index is damaged), 0 something matched, 1 nothing did."""
        if self.crash_log:
            return EXIT_INTERNAL
        if any(r.error for r in results):
            return EXIT_USAGE
        return EXIT_OK if any(r.matches for r in results) else EXIT_NO_MATCH


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
