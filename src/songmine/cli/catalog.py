"""Catalogue verbs: ``catalog merge`` (FMA tables → one table), ``catalog cache`` (the parquet cache)
and ``features`` (audio → FMA features)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..atomic import atomic_path
from ..extras import require
from ._app import (
    JobsOption,
    JsonOption,
    app,
    emit_json,
    fail,
    needs_extra,
    out_console,
    print_skipped,
    printable,
    progress_bar,
)

catalog_app = typer.Typer(
    help="FMA catalogue tables: load, validate, merge.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("merge")
@needs_extra("catalog", "songmine catalog merge")
def merge_cmd(
    source: Annotated[Path, typer.Argument(help="A directory with tracks/features/echonest.csv, or fma_metadata.zip.")],
    no_echonest: Annotated[
        bool, typer.Option("--no-echonest", help="Join tracks + features only (all ~106K tracks).")
    ] = False,
    output: Annotated[
        Path | None,
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
        typer.echo(printable(f"wrote {written}"))


@catalog_app.command("cache")
@needs_extra("catalog", "songmine catalog cache")
def cache_cmd(
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete the entries no load will read again (stale, orphan, old format).")
    ] = False,
    clear: Annotated[
        bool, typer.Option("--clear", help="Delete every entry (the next load re-reads the CSVs).")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """List the parquet cache of loaded FMA tables: where it is, each entry's table, size, source and status.

    Status: current (source unchanged), stale (source changed since), orphan (source
    gone), old-format / newer-format (another cache format), temp (a writer's temp
    file). Loading already evicts the stale entries of the source it writes; --prune
    deletes all that no load will read again, --clear deletes everything (a temp file
    younger than an hour, which a running writer may own, excepted). Never touches
    anything outside the cache directory.
    """
    from ..catalog.cache import cache_root, entries
    from ..catalog.cache import clear as clear_cache
    from ..catalog.cache import prune as prune_cache

    if prune and clear:
        raise fail("--prune and --clear: pick one")
    deleted = clear_cache() if clear else prune_cache() if prune else []
    kept = entries()
    summary = {
        "dir": str(cache_root()),
        "entries": kept,
        "size_bytes": sum(e.size_bytes for e in kept),
        "deleted": [e.path for e in deleted],
        "deleted_bytes": sum(e.size_bytes for e in deleted),
    }
    if json_out:
        emit_json(summary)
        return
    from rich.table import Table

    t = Table(title=f"{summary['dir']}: {len(kept)} file(s), {summary['size_bytes'] / 1e6:.1f} MB")
    for col in ("file", "table", "MB", "status", "source"):
        t.add_column(col, justify="right" if col == "MB" else "left")
    for e in kept:
        t.add_row(Path(e.path).name, e.table or "", f"{e.size_bytes / 1e6:.1f}", e.status, e.source or "")
    out_console().print(t)
    if deleted:
        typer.echo(f"deleted {len(deleted)} file(s), {summary['deleted_bytes'] / 1e6:.1f} MB")


@app.command("features")
@needs_extra("features", "songmine features")
def features_cmd(
    directory: Annotated[
        Path | None, typer.Argument(help="Music folder (walked recursively); track_id = path relative to it.")
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option("--index", metavar="DIR", help="Use the files of a songmine index (track_id = its ids)."),
    ] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="features.csv to write (FMA 3-header layout); tracks.csv goes beside it."),
    ] = Path("features.csv"),
    jobs: JobsOption = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Recompute everything instead of resuming from an existing output.")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="local (process pool) or spark (a Spark job over the file list).")
    ] = "local",
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master URL with --engine spark (default local[*]).")
    ] = None,
    decoder: Annotated[
        str,
        typer.Option(
            "--decoder",
            help="Who decodes compressed files: pyav (in-process FFmpeg) or ffmpeg (the "
            "ffmpeg program on PATH, as FMA's code via audioread: same build, same samples).",
        ),
    ] = "pyav",
    json_out: JsonOption = False,
) -> None:
    """Compute the 518 FMA audio features of every file (librosa-0.5.0-compatible), resumably.

    Writes features.csv in the exact FMA layout and tracks.csv beside it (title,
    artist, album, genre, year from the tags) so `songmine cluster run` can
    interpret clusters. Files already in the output are skipped; unreadable
    files are reported and skipped.
    """
    import time

    from ..catalog.features import extract_folder, write_features_csv
    from ..workers import default_jobs

    if (directory is None) == (index is None):
        raise fail("give a music folder DIR or --index P (one of them)")
    if engine not in ("local", "spark"):
        raise fail(f"--engine {engine!r} must be 'local' or 'spark'")
    if engine == "spark":
        require("spark", "songmine features --engine spark")
    items = _feature_inputs(directory, index)
    if not items:
        raise fail(f"no audio files found in {directory or index}")
    tracks_path = output.with_name(
        output.name.replace("features", "tracks") if "features" in output.name else "tracks.csv"
    )
    previous, prev_tags = (None, {}) if restart else _resume_state(output, tracks_path)
    n_stale = 0
    if previous is not None:  # rows of files no longer in DIR / tracks no longer in the index: not carried over
        live = previous.index.isin(list(items))
        n_stale = int((~live).sum())
        previous = previous[live]

    def checkpoint(df, tags):
        write_features_csv(df, output)
        _write_tracks_csv(df, {**prev_tags, **tags}, tracks_path)

    jobs = jobs or default_jobs()
    t0 = time.perf_counter()
    if decoder not in ("pyav", "ffmpeg"):
        raise fail(f"--decoder {decoder!r} must be 'pyav' or 'ffmpeg'")
    with progress_bar("features", enabled=not json_out) as progress:
        if engine == "spark":  # same output; see songmine.spark.features
            from ..spark.features import extract_folder_spark

            df, failures = extract_folder_spark(
                items,
                master=master or "local[*]",
                progress=progress,
                resume_from=previous,
                with_tags=True,
                decoder=decoder,
            )
        else:
            df, failures = extract_folder(
                items,
                jobs=jobs,
                progress=progress,
                resume_from=previous,
                with_tags=True,
                checkpoint=checkpoint,
                decoder=decoder,
            )
    elapsed = time.perf_counter() - t0
    tags = {**prev_tags, **df.attrs.get("tags", {})}
    if index is not None:  # an index's track ids are integers: sort and write them as such
        import pandas as pd

        attrs = dict(df.attrs)
        df = df.set_axis(pd.Index(df.index.astype("int64"), name="track_id"), axis=0)
        df.attrs = attrs
    write_features_csv(df, output)
    _write_tracks_csv(df, tags, tracks_path)
    n_prev = 0 if previous is None else int(previous.index.astype(str).isin(list(items)).sum())
    durations = df.attrs.get("durations", {})
    audio_s = float(sum(durations.values()))
    summary = {
        "output": str(output),
        "tracks_csv": str(tracks_path),
        "files": len(items),
        "computed": len(durations),
        "resumed": n_prev,
        "stale_dropped": n_stale,
        "failed": [
            {"track_id": int(f.track_id) if index is not None else f.track_id, "path": f.path, "error": f.error}
            for f in failures
        ],
        "rows": int(len(df)),
        "audio_s": round(audio_s, 3),
        "elapsed_s": round(elapsed, 3),
        "x_realtime": round(audio_s / elapsed, 2) if elapsed > 0 and audio_s > 0 else None,
        "jobs": jobs,
        "decoder": decoder,
    }
    if json_out:
        emit_json(summary)
    else:
        print_skipped((f.path, f.error) for f in failures)
        rt = f", {summary['x_realtime']}× real time" if summary["x_realtime"] else ""
        typer.echo(
            f"{len(df)} tracks in {output} (+ {tracks_path.name}): {summary['computed']} computed, "
            f"{n_prev} resumed, {len(failures)} failed"
            + (f", {n_stale} stale rows dropped" if n_stale else "")
            + f"; {audio_s / 60:.1f} min of audio in {elapsed:.1f} s{rt}"
        )
    if len(df) == 0:
        raise fail("no file could be read", code=2)


def _feature_inputs(directory: Path | None, index: Path | None) -> dict[str, str]:
    """track_id → path: relative POSIX paths under DIR, or an index's integer ids."""
    if directory is not None:
        from ..library import iter_audio_files

        root = directory.expanduser()
        if not root.is_dir():
            raise fail(f"{root}: not a directory")
        # ids as walked (a file reached through a symlinked folder: "linked/song.mp3"), never resolved
        return {Path(p).relative_to(root).as_posix(): str(p) for p in iter_audio_files([root])}
    try:
        from ..fingerprint.index import Index  # type: ignore[attr-defined]
    except ImportError:
        raise fail("--index needs the songmine index module, which is not installed in this build") from None
    with Index(index) as ix:
        return {str(r.track_id): r.path for r in ix.tracks()}


def _resume_state(output: Path, tracks_path: Path):
    """Previous features (rows with every value) and tags, if the output already exists."""
    if not output.exists():
        return None, {}
    from ..catalog.loaders import load
    from ..errors import DataError

    try:
        prev = load(output, "features", cache=False, nonfinite="drop")
    except DataError as exc:
        raise fail(f"cannot resume from {output}: {exc} (use --restart to overwrite it)") from None
    prev.index = prev.index.astype(str)
    tags: dict = {}
    if tracks_path.exists():
        try:
            t = load(tracks_path, "tracks", cache=False)
            for tid, row in t.iterrows():
                rec = {
                    "title": row.get(("track", "title")),
                    "artist": row.get(("artist", "name")),
                    "album": row.get(("album", "title")),
                    "genre": row.get(("track", "genre_top")),
                }
                d = row.get(("album", "date_released"))
                if d is not None and not _isna(d):
                    rec["year"] = int(d.year)
                dur = row.get(("track", "duration"))
                if dur is not None and not _isna(dur):
                    rec["_duration"] = int(dur)
                tags[str(tid)] = {k: v for k, v in rec.items() if v is not None and not _isna(v)}
        except DataError:
            pass
    return prev, tags


def _isna(v) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _write_tracks_csv(df, tags: dict, path: Path) -> None:
    """tracks.csv in the FMA layout (two header rows + track_id row) with the tag columns."""

    import pandas as pd

    from ..catalog.schema import USER_TRACKS_COLUMNS

    ids = list(df.index)
    durations = df.attrs.get("durations", {})
    data = {}
    for col in USER_TRACKS_COLUMNS:
        vals = []
        for tid in ids:
            t = tags.get(str(tid), {})
            if col == ("album", "date_released"):
                vals.append(pd.Timestamp(year=t["year"], month=1, day=1) if t.get("year") else pd.NaT)
            elif col == ("album", "title"):
                vals.append(t.get("album"))
            elif col == ("artist", "name"):
                vals.append(t.get("artist"))
            elif col == ("track", "duration"):
                d = durations.get(str(tid), t.get("_duration"))
                vals.append(int(round(d)) if d is not None else None)
            elif col == ("track", "genre_top"):
                vals.append(t.get("genre"))
            elif col == ("track", "title"):
                vals.append(t.get("title"))
        data[col] = vals
    out = pd.DataFrame(data, index=pd.Index(ids, name="track_id"))
    out.columns = pd.MultiIndex.from_tuples(list(data))
    out[("track", "duration")] = out[("track", "duration")].astype("Int64")
    out = out.sort_index(axis=1)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, date_format="%Y-%m-%d %H:%M:%S")
