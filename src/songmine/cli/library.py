"""Verbs over the fingerprint index: ``index``, ``tracks``, ``remove``, ``compact``, ``verify``.

Thin: each verb is one call into :mod:`songmine.fingerprint.index`. A missing index is an
:class:`~songmine.errors.IndexFormatError` → one line and exit 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from ._app import (
    EXIT_USAGE,
    IndexOption,
    JobsOption,
    JsonOption,
    app,
    check_engine,
    emit_json,
    fail,
    out_console,
    print_skipped,
    printable,
    progress_bar,
)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


@app.command("index")
def index_cmd(
    dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...", help="Folders or files to index (folders walked recursively, symlinks followed)."
        ),
    ],
    index: IndexOption = None,
    jobs: JobsOption = None,
    prune: Annotated[bool, typer.Option("--prune", help="Also drop tracks whose files are gone.")] = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Commit a segment every N new tracks (a crash loses at most N).")
    ] = 50,
    json_out: JsonOption = False,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            metavar="NAME",
            help="landmark (default), seed or sketch (kept in <index>/seed, <index>/sketch).",
        ),
    ] = "landmark",
    engine: Annotated[
        str,
        typer.Option(
            "--engine", help="local (process pool) or spark (the files decoded and fingerprinted by Spark tasks)."
        ),
    ] = "local",
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master URL with --engine spark (default local[*]).")
    ] = None,
) -> None:
    """Fingerprint audio files into the index (created on first use), in parallel.

    Files already indexed (same content, by sha256) are skipped, so a rerun
    after an interruption resumes; new files are added to what is there. Unreadable
    files are listed and skipped. Ctrl-C keeps everything fingerprinted so far.
    The same for every method. With --engine spark the files are decoded and
    fingerprinted on Spark's executors (they must see the files at the same
    paths) and this process writes the index (landmark method).
    """
    check_engine(engine, master, jobs=jobs)
    if method != "landmark" and engine != "local":
        raise fail(f"--engine spark indexes with the landmark method only, not {method!r}")
    from ..errors import IndexFormatError
    from ..fingerprint.index import Index, IndexingInterrupted, index_files
    from ._methods import indexable_method, method_index_path, new_config, refuse_legacy

    m = indexable_method(method)
    path = method_index_path(index, m)
    made_parent = path.parent if m.folder and not path.parent.exists() else None  # <index> of <index>/seed
    refuse_legacy(path, m)
    interrupted = False
    with Index(path, create=True, config=new_config(m)) as ix:
        if ix.method != m.name:
            raise IndexFormatError(f"{path} is an index of the {ix.method} method, not {m.name}")
        with progress_bar("indexing", enabled=not json_out) as progress:
            try:
                if engine == "spark":
                    from ..spark.index import index_files_spark

                    report = index_files_spark(
                        ix, dirs, master=master, prune=prune, progress=progress, batch_tracks=batch
                    )
                else:
                    report = index_files(ix, dirs, jobs=jobs, prune=prune, progress=progress, batch_tracks=batch)
            except IndexingInterrupted as exc:
                report, interrupted = exc.report, True
            except BaseException:  # e.g. a path that does not exist: a first run leaves no empty index
                ix.discard_if_empty()
                raise
        summary = {
            "index": str(path),
            "method": ix.method,
            "added": report.added,
            "unchanged": report.unchanged,
            "failed": [{"path": p, "error": e} for p, e in report.failed],
            "removed": report.removed,
            "seconds": round(report.seconds, 3),
            "audio_seconds": round(report.audio_seconds, 3),
            "realtime_factor": round(report.realtime_factor, 1) if report.seconds > 0 else None,
            "n_postings_added": report.n_postings,
            "interrupted": interrupted,
            "n_tracks": ix.n_tracks,
            "n_postings": ix.n_postings,
            "n_segments": ix.n_segments,
            "size_bytes": ix.size_bytes,
        }
        # a first run that could add nothing leaves no (empty) index behind
        discarded = report.added + report.unchanged == 0 and ix.discard_if_empty()
    not_created = f"; no index was created at {path}" if discarded else ""
    if discarded and made_parent is not None:
        with contextlib.suppress(OSError):  # not empty: something else is there now
            made_parent.rmdir()
    if json_out:
        emit_json(summary)
    else:
        print_skipped(report.failed)
        speed = (
            f" in {report.seconds:.1f} s ({report.audio_seconds / 3600:.2f} h of audio, "
            f"{report.realtime_factor:.0f}× real time)"
            if report.added
            else f" in {report.seconds:.1f} s"
        )
        typer.echo(
            f"added {report.added}, unchanged {report.unchanged}, failed {len(report.failed)}, "
            f"pruned {report.removed}{speed}"
        )
        if not discarded and summary["n_segments"]:
            typer.echo(
                printable(
                    f"index {path}: {summary['n_tracks']} tracks, {summary['n_postings']:,} postings in "
                    f"{summary['n_segments']} segment(s), {_human_bytes(summary['size_bytes'])}"
                )
            )
        elif not discarded:
            typer.echo(
                printable(
                    f"{summary['method']} index {path}: {summary['n_tracks']} tracks, "
                    f"{_human_bytes(summary['size_bytes'])}"
                )
            )
    if interrupted:
        typer.echo("songmine: interrupted (work done so far is saved; rerun to resume)", err=True)
        raise typer.Exit(130)
    n_seen = report.added + report.unchanged + len(report.failed)
    if n_seen == 0:
        raise fail(f"no audio files found under {', '.join(map(str, dirs))}{not_created}", EXIT_USAGE)
    if report.added + report.unchanged == 0:
        raise fail(f"none of the {len(report.failed)} audio file(s) could be read{not_created}", EXIT_USAGE)


@app.command("tracks")
def tracks_cmd(index: IndexOption = None, json_out: JsonOption = False) -> None:
    """List the tracks of the index: id, title, artist, duration, path."""
    from ..fingerprint.index import Index
    from ..paths import resolve_index_path

    with Index(resolve_index_path(index)) as ix:
        rows = ix.tracks()
    if json_out:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} tracks")
    for col in ("id", "title", "artist", "album", "duration", "hashes"):
        table.add_column(col, justify="right" if col in ("id", "duration", "hashes") else "left")
    table.add_column("path", overflow="fold")
    for r in rows:
        table.add_row(
            str(r.track_id),
            r.title or "",
            r.artist or "",
            r.album or "",
            f"{r.duration_s:.1f} s",
            f"{r.n_hashes:,}",
            r.path,
        )
    out_console().print(table)
    hours = sum(r.duration_s for r in rows) / 3600
    typer.echo(f"{len(rows)} tracks, {hours:.2f} h")


@app.command("remove")
def remove_cmd(
    track_ids: Annotated[list[int], typer.Argument(help="Track ids (see `songmine tracks`).")],
    index: IndexOption = None,
    json_out: JsonOption = False,
) -> None:
    """Remove tracks from the index (their postings go at the next `compact`)."""
    from ..fingerprint.index import Index
    from ..paths import resolve_index_path

    with Index(resolve_index_path(index)) as ix:
        n = ix.remove(track_ids)
        left = ix.n_tracks
    if json_out:
        emit_json({"removed": n, "n_tracks": left})
    else:
        typer.echo(f"removed {n} track(s); {left} left")


@app.command("compact")
def compact_cmd(index: IndexOption = None, json_out: JsonOption = False) -> None:
    """Merge all segments into one and drop the postings of removed tracks."""
    from ..fingerprint.index import Index
    from ..paths import resolve_index_path

    with Index(resolve_index_path(index)) as ix:
        rep = ix.compact()
    if json_out:
        emit_json(rep)
    else:
        typer.echo(
            f"{rep.segments_before} → {rep.segments_after} segment(s), {rep.postings_before:,} → "
            f"{rep.postings_after:,} postings, {rep.tracks_purged} removed track(s) purged, "
            f"{_human_bytes(rep.bytes_before)} → {_human_bytes(rep.bytes_after)} in {rep.seconds:.2f} s"
        )


@app.command("verify")
def verify_cmd(
    index: IndexOption = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Drop the damaged parts and index the files of the affected tracks again."),
    ] = False,
    jobs: JobsOption = None,
    json_out: JsonOption = False,
) -> None:
    """Check every part of the index against its checksum; say what is damaged and how to recover.

    Exit 0 when the index is intact (or was repaired), 2 when damage remains.
    With --repair, damaged segments are dropped, the tracks they held (and any
    with a damaged profile) are forgotten and their files indexed again.
    """
    from ..fingerprint.index import Index, index_files
    from ..fingerprint.index.integrity import verify_index
    from ..paths import resolve_index_path

    path = resolve_index_path(index)
    rep = verify_index(path, repair=repair)
    reindexed = None
    if rep.repaired and rep.affected:
        files = [a["path"] for a in rep.affected if Path(a["path"]).exists()]
        gone = [(a["path"], f"{a['path']}: the file is gone") for a in rep.affected if not Path(a["path"]).exists()]
        with Index(path) as ix, progress_bar("indexing again", enabled=not json_out) as progress:
            r = index_files(ix, files, jobs=jobs, progress=progress) if files else None
            rep.n_tracks = ix.n_tracks
        failed = gone + (r.failed if r is not None else [])
        reindexed = {"added": r.added if r is not None else 0, "failed": [{"path": p, "error": e} for p, e in failed]}
        rep.recovery = (
            f"{len(failed)} file(s) could not be indexed again; add them back with "
            f"`songmine index <their folders> --index {path}` when they can be read"
            if failed
            else None
        )
    summary = {**dataclasses.asdict(rep), "reindexed": reindexed}
    if json_out:
        emit_json(summary)
    else:
        _print_verify(rep, reindexed)
    if not rep.ok and not rep.repaired:
        raise typer.Exit(EXIT_USAGE)


def _print_verify(rep, reindexed) -> None:
    from rich.text import Text

    con = out_console()
    con.print(
        f"index {rep.index}: {rep.n_segments} segment(s), {rep.n_tracks} track(s), "
        f"{_human_bytes(rep.bytes_checked)} checked in {rep.seconds:.2f} s"
    )
    for p in rep.problems:
        con.print(Text("damaged ", style="red").append(printable(f"{p['part']}: {p['problem']}")), highlight=False)
    if rep.unchecked:
        con.print(
            f"unchecked (written before checksums existed): {', '.join(rep.unchecked)}; "
            "`songmine compact` rewrites segments with checksums"
        )
    if rep.repaired:
        con.print(f"repaired: damaged parts dropped, {len(rep.affected)} track(s) to index again")
    if reindexed is not None:
        con.print(f"indexed again: {reindexed['added']} added, {len(reindexed['failed'])} failed")
        print_skipped((f["path"], f["error"]) for f in reindexed["failed"])
    if rep.ok:
        con.print("intact")
    if rep.recovery:
        con.print(f"to recover: {rep.recovery}")
