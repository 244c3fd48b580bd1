"""``--method`` of ``index`` and ``identify``: which registered method, where its index lives, how to ask it.

Every indexable method keeps its index in the store (:class:`songmine.fingerprint.index.Index`):
the landmark method in the index directory, the others in a sub-folder of it
(:attr:`songmine.methods.Method.folder`: ``<index>/seed``, ``<index>/sketch``). Those sub-folders
used to be ``.npy`` arrays and a ``meta.json``: ``identify`` still answers from such a folder,
``index`` says how to rebuild it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import IndexFormatError, SongmineError
from ..methods import DEFAULT_METHOD, Method, get_method, resolve
from ..paths import resolve_index_path
from ._app import EXIT_USAGE, fail

#: What marks a method folder written before the store held it.
LEGACY_META = "meta.json"


def indexable_method(name: str) -> Method:
    """The registered method ``name`` if ``index`` / ``identify`` take it (usage error otherwise).

    Raises
    ------
    MissingExtraError
        The method needs an extra that is not installed.
    """
    try:
        m = get_method(name)
    except SongmineError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if not m.indexable:
        raise fail(f"--method {name!r} cannot index or identify (evaluation only)", EXIT_USAGE)
    m.require()
    return m


def method_index_path(index: Path | None, m: Method) -> Path:
    """The index directory of method ``m`` under ``--index`` (or the default index)."""
    root = resolve_index_path(index)
    return root / m.folder if m.folder else root


def is_legacy(path: Path) -> bool:
    """A method folder in the format before the store: ``.npy`` arrays and a ``meta.json``, no catalogue."""
    from ..fingerprint.index.schema import CATALOG_NAME

    return (path / LEGACY_META).is_file() and not (path / CATALOG_NAME).exists()


def new_config(m: Method):
    """The config a new index of ``m`` is created with (its defaults); None for the default method."""
    return None if m.name == DEFAULT_METHOD else resolve(m.config)()


def refuse_legacy(path: Path, m: Method) -> None:
    """Adding to a folder in the old format would lose it: say how to rebuild instead (exit 2)."""
    if is_legacy(path):
        raise fail(
            f"{path} holds a {m.name} index in the format of older songmine versions (.npy + meta.json), "
            f"which cannot be added to; move it away and index the music again: "
            f"`songmine index <music folders> --index {path.parent} --method {m.name}`",
            EXIT_USAGE,
        )


def open_searcher(index: Path | None, m: Method):
    """What answers ``identify --method m``: the method's searcher over its index.

    Raises
    ------
    IndexFormatError
        No index of that method there, a damaged one, or one of another method.
    """
    from ..fingerprint.index import Index

    path = method_index_path(index, m)
    searcher = resolve(m.folder_index)
    if is_legacy(path):  # written by an older songmine: still answered from
        return searcher.load(path)
    if not path.exists():
        raise IndexFormatError(
            f"{path}: no {m.name} index here (build it with `songmine index <music folders> "
            f"--index {path.parent} --method {m.name}`)"
        )
    with Index(path) as ix:
        if ix.method != m.name:
            raise IndexFormatError(f"{path} is an index of the {ix.method} method, not {m.name}")
        return searcher.from_store(ix)
