"""``songmine identify``: which indexed track is each clip? (thin over :func:`songmine.identify`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from ..errors import one_line
from ._app import (
    EXIT_INTERNAL,
    EXIT_NO_MATCH,
    EXIT_OK,
    EXIT_USAGE,
    IndexOption,
    JsonOption,
    app,
    check_engine,
    emit_json,
    fail,
    out_console,
    printable,
)


def open_index(path: Path | None):
    """Open the index at ``path`` (or the default location).

    Raises IndexFormatError (missing, damaged, of another version): ``identify`` reports it.
    """
    from ..paths import resolve_index_path

    try:
        from ..fingerprint.index import Index
    except ImportError as exc:  # the index store is not installed in this build
        raise fail(f"the index store is not available ({exc})", EXIT_USAGE) from None
    return Index(resolve_index_path(path))


def _unusable(clips: list[str], exc: Exception, json_out: bool) -> typer.Exit:
    """No index to ask: with --json every clip still gets its record (the error), then one line, exit 2."""
    from ..records import QueryResult

    if json_out:
        emit_json([QueryResult(query=c, error=one_line(exc)) for c in clips])
    return fail(one_line(exc), EXIT_USAGE)


def read_list(path: Path) -> list[Path]:
    """The clips named in a list file: one path a line (blank lines and ``#`` comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"--from-list {path}: cannot read it ({one_line(exc)})", EXIT_USAGE) from None
    return [Path(ln.strip()) for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def expand_clips(clips: list[Path]) -> list[str]:
    """The clips to ask: files as given, folders walked as a library is (:func:`songmine.library.iter_audio_files`).

    A path that does not exist stays in the list (its record says so); a folder
    with no audio file in it becomes one entry that fails with that reason.
    """
    from ..library import iter_audio_files

    out: list[str] = []
    for c in clips:
        c = c.expanduser()
        if c.is_dir():
            found = [str(p) for p in iter_audio_files([c])]
            out += found or [str(c)]
        else:
            out.append(str(c))
    return out


@app.command("identify")
def identify_cmd(
    clips: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="CLIP...",
            help="Audio clips (any format FFmpeg decodes), or folders of them (walked recursively).",
            show_default=False,
        ),
    ] = None,
    index: IndexOption = None,
    top: Annotated[int, typer.Option("--top", "-n", min=1, metavar="N", help="Matches to show per clip.")] = 3,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="NAME",
            help="Identification method: landmark, seed (the original course method) or sketch.",
        ),
    ] = "landmark",
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            metavar="X",
            show_default=False,
            help="What a match needs: the confidence for landmark and sketch (default 0.5), the estimated Jaccard "
            "for seed (default 0.2).",
        ),
    ] = None,
    max_duration: Annotated[
        float,
        typer.Option(
            "--max-duration",
            min=0.0,
            metavar="SECONDS",
            help="Longer clips are refused; 0 = no limit (match whole files). Not for --window recordings.",
        ),
    ] = 60.0,
    from_list: Annotated[
        Path | None,
        typer.Option(
            "--from-list", metavar="FILE", help="A file naming the clips, one path a line (with or instead of CLIP...)."
        ),
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window",
            metavar="SECONDS",
            help="Long recordings: identify windows of this many seconds and print "
            "what played when (start and end of each track heard).",
        ),
    ] = None,
    hop: Annotated[
        float | None,
        typer.Option(
            "--hop", metavar="SECONDS", help="Seconds between window starts with --window (default: half a window)."
        ),
    ] = None,
    one_pass: Annotated[
        bool,
        typer.Option(
            "--one-pass",
            help="One pass of the dense landmarks over the speed grid (no coarse probes, "
            "no profile check); with --engine spark, the lookups are a Spark join and the votes a "
            "Spark aggregation.",
        ),
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="local, or spark (the clips or windows searched by Spark tasks).")
    ] = "local",
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master URL with --engine spark (default local[*]).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Identify short (possibly noisy, sped-up) clips against an indexed library.

    Prints per clip the best matches (title, artist, offset in the track, the
    rate the clip plays at against the track: a speed change, a tempo change or a pitch shift, confidence) or
    "no match";
    with --method seed the best LSH candidates too, those below the threshold
    marked. A clip that fails (unreadable, not audio, too long) gets its error
    in its record and the others go on. With --window, each clip is a long
    recording: its windows are identified and the output says which tracks
    played from when to when. Exit 0 if at least one clip matched (a
    recording: a track was heard) and none failed, 1 if none matched and none
    failed, 2 if a clip failed (every record is still printed) or for a missing
    or damaged index (with --json every clip's record then carries that error)
    or a usage error, 70 for an internal error.
    """
    from ..errors import IndexFormatError, ParameterError
    from ._methods import indexable_method, open_searcher

    check_engine(engine, master)
    given = list(clips or []) + (read_list(from_list) if from_list is not None else [])
    if not given:
        raise fail("give at least one clip, or --from-list FILE", EXIT_USAGE)
    if window is None and hop is not None:
        raise fail("--hop goes with --window", EXIT_USAGE)
    if method != "landmark" and (engine != "local" or window is not None or one_pass):
        raise fail(f"--engine spark, --window and --one-pass work with the landmark method, not {method!r}", EXIT_USAGE)
    clips = given

    m = indexable_method(method)
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ParameterError(f"--threshold {threshold:g} must be in (0, 1]")
    limit = None if max_duration == 0 or math.isinf(max_duration) else float(max_duration)
    queries = expand_clips(clips)
    if m.folder_index is not None:  # seed / sketch: their searcher over their index
        try:
            searcher = open_searcher(index, m)
        except IndexFormatError as exc:
            raise _unusable(queries, exc, json_out) from None
        batch = _Batch(lambda c: searcher.query_file(c, top=top, threshold=threshold, max_duration_s=limit))
        results = batch.run(queries)
        emit_json(results) if json_out else _print(results)
        batch.report()
        raise typer.Exit(batch.exit_code(results))
    from dataclasses import replace

    from ..fingerprint.heap import keep_heap
    from ..fingerprint.landmarks import FingerprintConfig
    from ..fingerprint.search import SearchConfig
    from ..fingerprint.search import one_pass as one_pass_config

    config = one_pass_config() if one_pass else SearchConfig()
    if threshold is not None:
        config = replace(config, min_confidence=float(threshold))
    if window is not None:
        from ..fingerprint.monitor import check_windows

        hop = check_windows(window, hop)  # ParameterError: one line, exit 2
    keep_heap()
    try:
        ix = open_index(index)
    except IndexFormatError as exc:  # missing, damaged, of a newer format
        raise _unusable(queries, exc, json_out) from None
    try:
        if not isinstance(ix.config, FingerprintConfig):
            raise fail(f"index {ix.path} was built for another method ({ix.method}), not landmark", EXIT_USAGE)
        if window is not None:
            return _monitor(ix, queries, window, hop, top, engine, master, json_out, config, one_pass)
        batch = _Batch(_local_query(ix, top, config, limit))
        if engine == "spark" and one_pass:
            from ..spark.vote import vote_clips_spark

            results = batch.take(
                vote_clips_spark(ix.path, queries, top=top, config=config, master=master, max_duration_s=limit)
            )
        elif engine == "spark":
            from ..spark.identify import identify_clips_spark

            results = batch.take(
                identify_clips_spark(ix.path, queries, top=top, config=config, master=master, max_duration_s=limit)
            )
        else:
            results = batch.run(queries)
    finally:
        ix.close()
    if json_out:
        emit_json(results)
    else:
        _print(results)
    batch.report()
    raise typer.Exit(batch.exit_code(results))


def _local_query(ix, top: int, config, limit: float | None):
    from ..fingerprint.query import identify

    return lambda c: identify(ix, c, top=top, max_duration_s=limit, config=config)


def _monitor(
    ix,
    recordings: list[Path],
    window: float,
    hop: float,
    top: int,
    engine: str,
    master: str | None,
    json_out: bool,
    config,
    one_pass: bool,
) -> None:
    """``identify --window``: each recording's timeline (and its windows' records with --json)."""
    batch = _Batch(None)
    if engine == "spark" and one_pass:
        from ..spark.vote import vote_recordings_spark

        results = vote_recordings_spark(
            ix.path, recordings, window_s=window, hop_s=hop, top=top, config=config, master=master
        )
    elif engine == "spark":
        from ..spark.identify import identify_recordings_spark

        got = identify_recordings_spark(ix.path, recordings, window_s=window, hop_s=hop, top=top, master=master)
        results = []
        for res, kinds in got:
            batch.note(kinds, next((w.result.error for w, k in zip(res.windows, kinds) if k != "ok"), None))
            results.append(res)
    else:
        from ..fingerprint.monitor import identify_recording

        results = [
            batch.guard(
                str(r), lambda r=r: identify_recording(ix, str(r), window_s=window, hop_s=hop, top=top, config=config)
            )
            for r in recordings
        ]
    if json_out:
        emit_json(results)
    else:
        _print_timelines(results)
    batch.report()
    if batch.crash_log:
        raise typer.Exit(EXIT_INTERNAL)
    if any(r.error for r in results) or batch.damaged:
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(EXIT_OK if any(r.played for r in results) else EXIT_NO_MATCH)


class _Batch:
    """Run one query per clip; whatever goes wrong with one clip lands in its record, the rest go on."""

    def __init__(self, query):
        self.query = query
        self.damaged: str | None = None  # the first index-damage error met
        self.crash_log: str | None = None  # set when a clip met a bug

    def run(self, clips: list[str]) -> list:
        return [self._one(c) for c in clips]  # loop over clips

    def take(self, outcomes) -> list:
        """Records made elsewhere (Spark's executors, :class:`songmine.spark.identify.ClipOutcome`)."""
        for o in outcomes:
            self.note([o.kind], o.result.error)
        return [o.result for o in outcomes]

    def note(self, kinds, error: str | None) -> None:
        """Remember an index failure or a bug met elsewhere (said once more at the end)."""
        if "index" in kinds:
            self.damaged = self.damaged or error
        if "internal" in kinds and self.crash_log is None:
            self.crash_log = "the Spark executors' logs"

    def guard(self, name: str, fn):
        """``fn()``; an index failure or a bug becomes a recording's error (noted)."""
        from ..errors import IndexFormatError
        from ..fingerprint.monitor import RecordingResult
        from ._app import write_crash_log

        try:
            return fn()
        except IndexFormatError as exc:
            self.damaged = self.damaged or one_line(exc)
            return RecordingResult(recording=name, error=one_line(exc))
        except Exception as exc:  # a bug: keep the traceback, report the recording, go on
            self.crash_log = write_crash_log()
            return RecordingResult(recording=name, error=f"internal error: {type(exc).__name__}: {one_line(exc)}")

    def _one(self, clip: str):
        from ..errors import IndexFormatError, SongmineError
        from ..records import QueryResult
        from ._app import write_crash_log

        if Path(clip).is_dir():  # a folder with no audio in it (folders with audio were expanded)
            return QueryResult(query=clip, error=f"{clip}: no audio files in this folder")
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
        candidates = getattr(r, "candidates", None)
        if candidates:  # the seed method: its LSH candidates, matched or not
            heading, table = _candidates_table(r)
            _print_heading(console, heading)
            console.print(table)
            continue
        if not r.matches:
            typer.echo(printable(f"{r.query}: no match"))
            continue
        table = Table()
        for col in ("#", "title", "artist", "offset", "rate", "confidence", "score", "path"):
            table.add_column(col, justify="right" if col in ("#", "offset", "rate", "confidence", "score") else "left")
        for i, m in enumerate(r.matches, 1):
            title = m.title or Path(m.path).stem
            table.add_row(
                str(i),
                title,
                m.artist or "",
                _mmss(m.offset_s),
                rate_text(m.tempo, m.pitch),
                f"{m.confidence:.3f}",
                f"{m.score:g}",
                m.path,
            )
        _print_heading(console, r.query)
        console.print(table)


def _print_heading(console, text: str) -> None:
    """The line above a clip's table, never wrapped by the console: a table title would wrap at the
    table's width, breaking a long clip path (or the seed method's verdict) over lines in a pipe."""
    console.print(text, soft_wrap=True, highlight=False)


def _candidates_table(r):
    """The seed method's answer as the original printed it: (heading, table of the best candidates with
    their estimated Jaccard)."""
    from rich.table import Table

    confidence = {m.track_id: m.confidence for m in r.matches}
    shown = r.candidates[: max(len(r.matches), 5)]
    verdict = (
        f"match: track {r.chosen}"
        if r.chosen is not None
        else f"no match (no candidate reaches the threshold {r.threshold:g})"
    )
    heading = f"{r.query}: {len(r.candidates)} LSH candidate(s), {r.n_peaks} peaks; {verdict}"
    table = Table()
    for col in ("#", "title", "artist", "jaccard", "bands", "confidence", "", "path"):
        table.add_column(col, justify="right" if col in ("#", "jaccard", "bands", "confidence") else "left")
    for i, c in enumerate(shown, 1):
        conf = confidence.get(c["track_id"])
        below = c["jaccard"] < r.threshold
        table.add_row(
            str(i),
            c.get("title") or Path(c["path"]).stem,
            c.get("artist") or "",
            f"{c['jaccard']:.3f}",
            str(c["bands"]),
            "" if conf is None else f"{conf:.3f}",
            f"below {r.threshold:g}" if below else ("match" if conf is not None else ""),
            c["path"],
        )
    return heading, table


def rate_text(tempo: float, pitch: float) -> str:
    """How the clip plays against the track: ``1.00×`` (as it is), ``speed 1.04×`` (a turntable: both),
    ``tempo 1.06×`` (time-stretched), ``pitch +1.0 st`` (transposed), or both parts."""
    if tempo == pitch:
        return "1.00×" if tempo == 1.0 else f"speed {tempo:.2f}×"
    parts = [] if tempo == 1.0 else [f"tempo {tempo:.2f}×"]
    if pitch != 1.0:
        parts.append(f"pitch {12 * math.log2(pitch):+.1f} st")
    return ", ".join(parts)


def _mmss(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    return f"{sign}{int(s // 60)}:{s % 60:05.2f}"


def _print_timelines(results) -> None:
    from rich.table import Table

    console = out_console()
    for r in results:
        if r.error:
            typer.echo(printable(f"{r.recording}: error: {r.error}"))
            continue
        if not r.played:
            typer.echo(
                printable(f"{r.recording}: nothing identified in {_mmss(r.duration_s)} ({len(r.windows)} windows)")
            )
            continue
        table = Table(title=f"{r.recording} ({_mmss(r.duration_s)}, {len(r.windows)} windows)", title_justify="left")
        for col in ("from", "to", "title", "artist", "from track time", "windows", "confidence", "path"):
            table.add_column(
                col, justify="right" if col in ("from", "to", "from track time", "windows", "confidence") else "left"
            )
        for p in r.played:
            table.add_row(
                _mmss(p.start_s),
                _mmss(p.end_s),
                p.title or Path(p.path).stem,
                p.artist or "",
                _mmss(p.track_start_s),
                str(p.windows),
                f"{p.confidence:.3f}",
                p.path,
            )
        console.print(table)
