"""``index --method seed|sketch`` and ``identify --method seed|sketch`` (hooks called from
``cli/library.py`` and ``cli/identify.py``).

The seed and sketch indexes live in the index directory's ``seed/`` and
``sketch/`` sub-folders (``.npy`` arrays + ``meta.json`` with the config and
the tracks). ``index --method …`` rebuilds that sub-folder from the given
folders (no incremental resume: these indexes are small and fast to rebuild).
"""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import EXIT_USAGE, emit_json, fail, print_skipped, printable, progress_bar

ALT_METHODS = ("seed", "sketch")


def _folder(index: Path | None, method: str) -> Path:
    from ..paths import resolve_index_path
    from ..minhash.onset import SEED_DIRNAME
    from ..minhash.sketch import SKETCH_DIRNAME

    return resolve_index_path(index) / (SEED_DIRNAME if method == "seed" else SKETCH_DIRNAME)


def index_alt(method: str, dirs: list[Path], index: Path | None, *, json_out: bool) -> None:
    """Build the ``method`` index over ``dirs`` into ``<index>/<method>/``."""
    import time

    from ..library import iter_audio_files

    if method not in ALT_METHODS:
        raise fail(f"--method {method!r}: expected landmark, seed or sketch", EXIT_USAGE)
    files = list(iter_audio_files(dirs))
    if not files:
        raise fail(f"no audio files found under {', '.join(map(str, dirs))}", EXIT_USAGE)
    if method == "seed":
        from ..minhash.onset import SeedIndex

        ix = SeedIndex()
    else:
        from ..minhash.sketch import SketchIndex

        ix = SketchIndex()
    t0 = time.perf_counter()
    with progress_bar(f"indexing ({method})", enabled=not json_out) as progress:
        added = ix.add_files(files, progress=progress)
    if added == 0:
        raise fail(f"none of the {len(files)} audio file(s) could be read", EXIT_USAGE)
    folder = ix.save(_folder(index, method))
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    summary = {
        "index": str(folder),
        "method": method,
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
        typer.echo(printable(f"{method} index {folder}: {len(ix)} tracks, {size / 1e6:.2f} MB, {summary['seconds']:.1f} s"))


def alt_index(method: str, index: Path | None):
    """Load the ``method`` index (``seed`` or ``sketch``) under the index directory (IndexFormatError if none)."""
    folder = _folder(index, method)
    if method == "seed":
        from ..minhash.onset import SeedIndex

        return SeedIndex.load(folder)
    from ..minhash.sketch import SketchIndex
    return SketchIndex.load(folder)
