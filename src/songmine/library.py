"""A music library on disk: find its audio files and check what is decodable.

Shared by every verb that takes music folders (``index``, ``identify``, ``features``,
``dedupe``, ``scan``, ``eval``): one walking rule (``~`` expanded, recursive, sorted,
symbolic links followed, each folder walked once, hidden files skipped, audio
recognised by extension) and one per-file error policy (an unreadable file is
reported, never fatal).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .audio import AUDIO_EXTENSIONS, decoded_duration, info
from .errors import ParameterError, SongmineError

__all__ = ["iter_audio_files", "file_sha256", "ScanRow", "scan"]


def iter_audio_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Audio files under ``paths`` (files are taken as given, folders walked recursively).

    ``~`` is expanded. Symbolic links are followed, to files and to folders
    alike; a folder is walked once however many links lead to it, so a link
    back to a parent (a loop) ends there. Files are yielded in sorted order per
    folder, so runs are reproducible, under the path they were reached by
    (``lib/linked/song.mp3`` for a link ``lib/linked``); hidden files and
    folders (``.name``) are skipped. A link to nothing is yielded like a file:
    reading it fails, and that is reported with the file.

    Raises
    ------
    ParameterError
        When a path does not exist.
    """
    seen: set[tuple[int, int]] = set()  # (device, inode) of every folder walked, over all of ``paths``
    for p in (Path(x).expanduser() for x in paths):
        if not p.exists():
            raise ParameterError(f"{p}: no such file or directory")
        if p.is_file():
            yield p
            continue
        for dirpath, dirnames, filenames in os.walk(p, followlinks=True):
            try:
                st = os.stat(dirpath)
            except OSError:  # vanished meanwhile
                dirnames[:] = []
                continue
            if (st.st_dev, st.st_ino) in seen:  # reached again through a link: walked already (or a loop)
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if not fn.startswith(".") and Path(fn).suffix.lower() in AUDIO_EXTENSIONS:
                    yield Path(dirpath) / fn


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes: what tells one file's content from another's (resume, dedupe)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class ScanRow:
    """What :func:`scan` learnt about one file (``error`` set when it is unreadable)."""

    path: str
    duration_s: float | None = None
    sr: int | None = None
    channels: int | None = None
    codec: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None


def scan(
    paths: Iterable[str | os.PathLike[str]],
    *,
    decode: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[ScanRow]:
    """Describe every audio file under ``paths``; with ``decode=True`` decode each fully.

    Decoding proves the file is readable to the end (and measures its true
    duration) in constant memory, keeping no samples; without it only the
    container is read, which is instant.
    """
    files = list(iter_audio_files(paths))
    rows: list[ScanRow] = []
    for i, f in enumerate(files):
        try:
            meta = info(f)
            duration = meta.duration_s
            if decode:
                duration = decoded_duration(f)
            rows.append(ScanRow(str(f), round(duration, 3), meta.sr, meta.channels, meta.codec, meta.tags))
        except SongmineError as exc:
            rows.append(ScanRow(str(f), error=str(exc)))
        if progress is not None:
            progress(i + 1, len(files))
    return rows
