"""The typer app, its exit codes, and the functions every verb shares.

Exit codes (the contract, docs/interfaces.md): 0 ran (for ``identify``: at
least one clip matched, none failed); 1 ``identify`` only: no clip matched,
none failed; 2 usage or input error (for ``identify``: a clip failed); 70
internal error (traceback in the crash log, one line shown).
"""

from __future__ import annotations

import functools
import json
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import one_line
from ..extras import as_missing_extra, require

EXIT_OK = 0
EXIT_NO_MATCH = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70

#: The order ``songmine --help`` lists the verbs in: a user's path through them (build and ask an
#: index, look after it, serve it; the library on disk; the catalogue; the rest), not import order.
VERB_ORDER = (
    "index",
    "identify",
    "tracks",
    "remove",
    "compact",
    "verify",
    "serve",
    "dedupe",
    "scan",
    "demo-corpus",
    "eval",
    "features",
    "catalog",
    "cluster",
    "pairs",
)


class _Verbs(TyperGroup):
    """The root group: verbs listed in :data:`VERB_ORDER` (any other after them, in registration order)."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(VERB_ORDER)}
        return sorted(names, key=lambda n: rank.get(n, len(rank)))


app = typer.Typer(
    name="songmine",
    cls=_Verbs,
    help="Mine a music collection: identify clips, find duplicates, cluster a catalogue.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
#: ``-j/--jobs`` of every verb that runs worker processes: the same default everywhere (None =
#: :func:`songmine.workers.default_jobs`, every core this process may run on).
JobsOption = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        metavar="N",
        show_default=False,
        help="Worker processes (default: every core this process may run on).",
    ),
]
#: ``--index`` of every verb that reads or writes an index.
IndexOption = Annotated[
    Path | None,
    typer.Option("--index", metavar="DIR", help="Index directory (default: $SONGMINE_INDEX or the per-user data dir)."),
]


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


#: Width of the results when stdout is not a terminal: wide enough that no table wraps or cuts a cell.
PIPE_WIDTH = 100_000


def out_console():
    """A rich console on stdout (human-readable results); markup off, as in :func:`err_console`.

    Piped or redirected (not a terminal), it is :data:`PIPE_WIDTH` wide, so tables keep
    one line per row and whole paths (``| grep``, ``| less -S``, a file); ``--json`` is
    the format for programs.
    """
    if not sys.stdout.isatty():
        return _console(width=PIPE_WIDTH)
    return _console()


#: Seconds between two progress lines when stderr is not a terminal (a log, a pipe, a CI job).
PROGRESS_EVERY_S = 5.0


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``callback(done, total)`` that shows progress on stderr.

    A rich progress bar on a terminal; elsewhere (a log file, a pipe) a plain line
    every :data:`PROGRESS_EVERY_S` seconds and one at the end
    (``indexing: 120/800 (15 %), 42 s``). Nothing when ``enabled`` is false
    (``--json`` runs).
    """
    if not enabled:
        yield lambda done, total: None
        return
    if not sys.stderr.isatty():
        with _progress_lines(description) as update:
            yield update
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


@contextmanager
def _progress_lines(description: str) -> Iterator[Callable[[int, int], None]]:
    t0 = time.monotonic()
    last = {"at": t0, "shown": None, "state": None}

    def line(done: int, total: int, now: float) -> None:
        pct = f" ({100 * done / total:.0f} %)" if total else ""
        print(f"{description}: {done}/{total}{pct}, {now - t0:.0f} s", file=sys.stderr, flush=True)
        last["shown"] = (done, total)

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        last["state"] = (done, total)
        if now - last["at"] >= PROGRESS_EVERY_S:
            last["at"] = now
            line(done, total, now)

    yield update
    if last["state"] is not None and last["shown"] != last["state"]:
        line(*last["state"], time.monotonic())  # where it ended


def needs_extra(extra: str, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a verb as needing the optional ``extra``: checked before the verb runs.

    Without it the verb says so in one line naming the extra (``pip install
    'songmine[cluster]'``) and exits 2; ``--help`` works regardless.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def verb(*args: Any, **kwargs: Any) -> Any:
            require(extra, what)
            return fn(*args, **kwargs)

        verb.songmine_extra = extra  # type: ignore[attr-defined]  (read by tests and docs)
        return verb

    return decorate


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


def command() -> Any:
    """The click command of :data:`app`, its help free of Python names.

    Every parameter shows a metavar (``DIR...``, ``N``, ``PATH``), never the
    argument's Python name in braces or its annotation (``{dirs}...``,
    ``<list[Path]>``, ``<int range>``), whatever typer's version renders.
    """
    root = typer.main.get_command(app)
    _tidy_help(root)
    return root


def _metavar(param: Any) -> str:
    """A metavar from an option's type: N (integers), X (reals), PATH, TEXT."""
    desc = getattr(param, "type_descriptor", None)  # typer >= 0.26
    if desc is not None:
        if desc.is_path:
            return "PATH"
        kind = get_args(desc.annotation)[0] if desc.is_list else desc.annotation
        name = getattr(kind, "__name__", str(kind))
    else:
        name = getattr(getattr(param, "type", None), "name", "")
    name = name.lower()
    return "N" if name in ("int", "integer") else "X" if name == "float" else "PATH" if "path" in name else "TEXT"


def _tidy_help(cmd: Any) -> None:
    for p in getattr(cmd, "params", ()):
        if p.param_type_name == "argument":
            if p.metavar is None:
                p.metavar = p.name.upper() + ("..." if p.nargs != 1 else "")
            # typer >= 0.26 appends the annotation to an argument's help and braces it in the usage line
            if hasattr(p, "display_type_rich"):
                p.display_type_rich = lambda ctx: None
            if hasattr(p, "_usage_display_name"):
                p._usage_display_name = functools.partial(_usage_name, p)
        elif p.param_type_name == "option" and not getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = _metavar(p)
    for sub in getattr(cmd, "commands", {}).values():
        _tidy_help(sub)


def _usage_name(param: Any) -> str:
    return param.metavar if param.required else f"[{param.metavar}]"


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app and map errors to exit codes."""
    from ..errors import SongmineError

    click_errors = _click_exceptions()
    command = globals()["command"]()
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
    except ImportError as exc:  # an extra's package that no require() guarded, or a broken install of one
        missing = as_missing_extra(exc, _verb_name(command, argv))
        if missing is None:
            code = _internal_error(exc)
        else:
            typer.echo(f"songmine: error: {printable(one_line(missing))}", err=True)
            code = EXIT_USAGE
    except Exception as exc:  # a bug: keep the traceback, show one line
        code = _internal_error(exc)
    return code


def _verb_name(command: Any, argv: list[str] | None) -> str:
    """``songmine cluster run`` out of the command line (the verb's words, not its options and arguments)."""
    words = ["songmine"]
    for a in argv if argv is not None else sys.argv[1:]:
        sub = getattr(command, "commands", {}).get(a)
        if sub is None:
            break
        words.append(a)
        command = sub
    return " ".join(words)


def _internal_error(exc: BaseException) -> int:
    """A bug: the traceback goes to the crash log, one line to stderr; exit 70."""
    log_path = write_crash_log()
    typer.echo(
        f"songmine: internal error: {type(exc).__name__}: {printable(one_line(exc))} (traceback in {log_path})",
        err=True,
    )
    return EXIT_INTERNAL


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
