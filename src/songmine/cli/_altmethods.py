"""``index --method seed|sketch`` and ``identify --method seed|sketch`` (called from
``cli/library.py`` and ``cli/identify.py``).

These methods keep their index in a sub-folder of the index directory
(:attr:`songmine.methods.Method.folder`: ``.npy`` arrays + ``meta.json`` with
the config and the tracks). ``index --method …`` rebuilds that sub-folder from
the given folders.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import SongmineError
from ..library import iter_audio_files
from ..methods import Method, get_method, resolve
from ..paths import resolve_index_path
from ._app import EXIT_USAGE, emit_json, fail, print_skipped, printable, progress_bar


def folder_method(name: str) -> Method:
    """The registered method ``name`` if it keeps a folder index; a usage error otherwise."""
    try:
        m = get_method(name)
    except SongmineError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if not m.indexable:
        raise fail(f"--method {name!r} cannot index or identify (evaluation only)", EXIT_USAGE)
    m.require()  # its extra (MissingExtraError: one line, exit 2)
    return m


def _folder(index: Path | None, m: Method) -> Path:
    return resolve_index_path(index) / m.folder


def index_alt(name: str, dirs: list[Path], index: Path | None, *, json_out: bool) -> None:
    """Build the ``name`` index over ``dirs`` into ``<index>/<folder>/``."""
    m = folder_method(name)
    files = list(iter_audio_files(dirs))
    if not files:
        raise fail(f"no audio files found under {', '.join(map(str, dirs))}", EXIT_USAGE)
    ix = resolve(m.folder_index)()
    t0 = time.perf_counter()
    with progress_bar(f"indexing ({name})", enabled=not json_out) as progress:
        added = ix.add_files(files, progress=progress)
    if added == 0:
        raise fail(f"none of the {len(files)} audio file(s) could be read", EXIT_USAGE)
    folder = ix.save(_folder(index, m))
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    summary = {
        "index": str(folder),
        "method": name,
        "added": added,
        "failed": [{"path": p, "error": e} for p, e in ix.skipped],
        "seconds": round(time.perf_counter() - t0, 3),
        "n_tracks": len(ix),
        "size_bytes": size,
    }
    if json_out:
        emit_json(summary)
    else:
        print_skipped(ix.skipped)
        typer.echo(printable(f"{name} index {folder}: {len(ix)} tracks, {size / 1e6:.2f} MB, {summary['seconds']:.1f} s"))


def alt_index(name: str, index: Path | None):
    """Load the ``name`` folder index under the index directory (IndexFormatError if there is none)."""
    m = folder_method(name)
    return resolve(m.folder_index).load(_folder(index, m))
