"""The typer app, its exit codes, and the helpers every verb shares.

Exit codes (the contract, docs/interfaces.md): 0 ran (for ``identify``: at
least one clip matched, none failed); 1 ``identify`` only: no clip matched,
none failed; 2 usage or input error (for ``identify``: a clip failed); 70
internal error (traceback in the crash log, one line shown).
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from .. import __version__
from ..errors import one_line

EXIT_OK = 0
EXIT_NO_MATCH = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70

app = typer.Typer(
    name="songmine",
    help="Mine a music collection: identify clips, find duplicates, cluster a catalogue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"songmine {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details on stderr.")] = False,
) -> None:
    """Mine a music collection: identify clips, find duplicates, cluster a catalogue."""
    import logging

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (dataclasses and pydantic models included)."""
    typer.echo(json.dumps(jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False, default=str))


def jsonable(obj: Any) -> Any:
    import dataclasses
    import math

    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return jsonable(obj.item())
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays
        return jsonable(obj.tolist())
    return obj


#: Bidirectional-text controls: they reorder what a terminal shows (a name can pose as another).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: object, *, lines: bool = False) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``).

    Tags, file names and messages that quote them are user data: printed raw,
    an ``ESC ]0;…`` in an artist tag retitles the terminal, other sequences
    move the cursor or rewrite the screen. C0, DEL, C1 and the bidirectional
    controls are escaped; with ``lines=True`` newlines and tabs are kept (text
    laid out in several lines).
    """
    s = str(text)
    if s.isprintable():  # the common case: nothing to do
        return s
    out = []
    for ch in s:
        o = ord(ch)
        if lines and ch in "\n\t":
            out.append(ch)
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif ch in _BIDI or ch in "\u2028\u2029":
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _console(**kw: Any):
    """A rich console whose plain strings (table cells, titles, printed lines) go through :func:`printable`."""
    from rich.console import Console

    class _Console(Console):
        def render_str(self, text: str, **kwargs: Any):
            return super().render_str(printable(text, lines=True), **kwargs)

    return _Console(markup=False, **kw)


def err_console():
    """A rich console on stderr (progress, tables that are not the result).

    Markup is off (here and in :func:`out_console`): what we print is mostly
    user data — paths, tags, genres — and ``Song [Live].mp3`` must print as it
    is, not lose its brackets or raise. Styled text is built with ``rich.text.Text``
    (pass user data through :func:`printable` then: only plain strings are escaped here).
    """
    return _console(stderr=True)


def print_skipped(failed) -> None:
    """One stderr line per ``(path, error)`` that a batch skipped ("skipped" in yellow)."""
    from rich.text import Text

    con = err_console()
    for p, e in failed:
        line = Text("skipped ", style="yellow")
        line.append(printable(e if p in e else f"{p}: {e}"))
        con.print(line, highlight=False, soft_wrap=True)


def out_console():
    """A rich console on stdout (human-readable results); markup off, as in :func:`err_console`."""
    return _console()


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``callback(done, total)`` that drives a rich progress bar on stderr.

    Disabled (a no-op callback) when ``enabled`` is false or stderr is not a
    terminal, so JSON runs and logs stay clean.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def check_engine(engine: str, master: str | None, *, jobs: int | None = None) -> None:
    """``--engine`` is local or spark; ``--master`` goes with spark, ``--jobs`` with local (else exit 2)."""
    if engine not in ("local", "spark"):
        raise fail(f"--engine {engine!r} must be 'local' or 'spark'")
    if master is not None and engine != "spark":
        raise fail("--master is only meaningful with --engine spark")
    if jobs is not None and engine == "spark":
        raise fail("--jobs is for --engine local (Spark runs a task per executor core)")


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``message`` as one line on stderr and return the Exit to raise."""
    typer.echo(f"songmine: error: {printable(message)}", err=True)
    return typer.Exit(code)


def _click_exceptions():
    """The click exception module typer uses (typer >= 0.26 vendors its own click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # older typer: plain click
        from click import exceptions
    return exceptions


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app and map errors to exit codes."""
    from ..errors import SongmineError

    click_errors = _click_exceptions()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="songmine", standalone_mode=False)
        code = rv if isinstance(rv, int) else EXIT_OK
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("songmine: interrupted", err=True)
        code = 130
    except click_errors.ClickException as exc:
        exc.show()
        code = exc.exit_code if exc.exit_code else EXIT_USAGE
    except SongmineError as exc:
        typer.echo(f"songmine: error: {printable(one_line(exc))}", err=True)
        code = EXIT_USAGE
    except BrokenPipeError:
        code = EXIT_OK
    except Exception as exc:  # a bug: keep the traceback, show one line
        log_path = write_crash_log()
        typer.echo(
            f"songmine: internal error: {type(exc).__name__}: {printable(one_line(exc))} (traceback in {log_path})",
            err=True,
        )
        code = EXIT_INTERNAL
    return code


def write_crash_log() -> str:
    import datetime

    from ..paths import cache_dir

    try:
        d = cache_dir()
        d.mkdir(parents=True, exist_ok=True)
        path = d / "crash.log"
        with open(path, "a") as fh:
            fh.write(f"--- {datetime.datetime.now().isoformat()} songmine {__version__} argv={sys.argv!r}\n")
            fh.write(traceback.format_exc())
        return str(path)
    except OSError:
        traceback.print_exc()
        return "<stderr>"
