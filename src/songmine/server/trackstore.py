"""Tracks added over HTTP: received and indexed under temporary names, then published; dead adds undone.

``POST /api/tracks`` takes one file through three names in the upload folder:

1. ``.upload-<random>.part`` — the body streams in;
2. ``.upload-<random><ext>`` — complete and fsynced; indexed under this name
   (hidden, so a ``songmine index`` walk of the folder skips it);
3. ``<sha256[:24]><ext>`` — published: renamed, then the index records the
   new path (``index_files`` meets known content whose old path is gone).

The request holds an ``flock`` on the file from (1) to the end, so
:func:`recover`, run at start-up, tells a live add from a dead one. For each
file no live process holds, it deletes (1) and an uncommitted (2), publishes
a committed (2), records the path of a (3) whose path update was lost, and
deletes a (3) that no live track uses (an add that died before its commit
under the previous scheme, or a delete that died before removing the file).
After a ``kill -9`` anywhere in an add, the next start leaves the folder and
the index in agreement: every stored file is a live track's, no temp file
is left.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fingerprint.index import index_files
from ..fingerprint.index.segments import fsync_dir

__all__ = [
    "STAGE_PREFIX",
    "PART_SUFFIX",
    "Recovery",
    "extension_for",
    "publish",
    "recover",
    "stage",
    "stored_name",
]

log = logging.getLogger(__name__)

#: Prefix of the temporary names (1) and (2); the suffix of (1).
STAGE_PREFIX = ".upload-"
PART_SUFFIX = ".part"
_STORED = re.compile(r"^[0-9a-f]{24}\.[a-z0-9]{1,8}$")
_LEGACY_PART = re.compile(r"^[0-9a-f]{24}\.[a-z0-9]{1,8}\.part$")  # the copy temp of earlier versions


@dataclass(slots=True)
class Recovery:
    """What :func:`recover` did: files deleted, adds finished, files some live process still holds."""

    removed: int = 0
    published: int = 0
    busy: int = 0


_EXT_BY_CODEC = {
    "mp3": ".mp3", "mp3float": ".mp3", "flac": ".flac", "vorbis": ".ogg", "libvorbis": ".ogg",
    "opus": ".opus", "libopus": ".opus", "aac": ".m4a", "alac": ".m4a", "wmav2": ".wma",
}  # fmt: skip


def extension_for(codec: str) -> str:
    """The file extension a stored upload gets from its codec (what players expect of the name)."""
    return _EXT_BY_CODEC.get(codec) or (".wav" if codec.startswith("pcm_") else ".webm")


def stored_name(folder: Path, sha256: str, ext: str) -> Path:
    """Where the audio with this content is published: ``<folder>/<sha256[:24]><ext>``."""
    return folder / f"{sha256[:24]}{ext}"


def stage(path: Path, ext: str, fd: int | None = None) -> Path:
    """(1) → (2): make the received file durable and give it its extension; returns the new path."""
    if fd is not None:
        os.fsync(fd)
    staged = path.with_name(path.name.removesuffix(PART_SUFFIX) + ext)
    os.replace(path, staged)
    return staged


def publish(writer: Any, staged: Path, sha256: str) -> Path:
    """(2) → (3): rename the indexed file to its content name, then record that path in the index."""
    final = stored_name(staged.parent, sha256, staged.suffix)
    os.replace(staged, final)
    fsync_dir(staged.parent)
    report = index_files(writer, [final], jobs=1)  # same content, old path gone: the track's path moves
    if report.failed:  # pragma: no cover - the file was just indexed
        raise OSError(f"{final}: {report.failed[0][1]}")
    return final


def _kind(name: str) -> str | None:
    if name.startswith(STAGE_PREFIX):
        return "partial" if name.endswith(PART_SUFFIX) else "staged"
    if _LEGACY_PART.match(name):
        return "partial"
    if _STORED.match(name):
        return "stored"
    return None


def _try_lock(path: Path) -> int | None:
    """An fd holding ``path``'s flock, or None when a live process holds it (or the file is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def recover(holder: Any, folder: Path) -> Recovery:
    """Undo or finish the adds that died in ``folder`` (see the module docstring); needs the index's writer."""
    out = Recovery()
    folder = Path(folder).resolve()
    if not folder.is_dir():
        return out
    candidates = sorted(p for p in folder.iterdir() if _kind(p.name) is not None)
    if not candidates:
        return out
    with holder.writing() as writer:
        for p in candidates:
            fd = _try_lock(p)
            if fd is None:
                out.busy += p.exists()
                continue
            try:
                writer.refresh()  # after the lock: an add that just ended has committed
                # the catalogue is asked about this file alone (a list of every track, per file and per
                # worker starting, cost a second each at 160,000 tracks)
                live = writer._files_at([str(p)]).get(str(p))  # (track_id, size, mtime_ns, sha256)
                kind = _kind(p.name)
                if kind == "staged" and live is not None:  # committed, not published
                    publish(writer, p, live[3])
                    out.published += 1
                elif kind == "stored" and live is not None:
                    continue
                elif kind == "stored" and any(
                    Path(q).parent == folder and Path(q).name.startswith(STAGE_PREFIX) and not os.path.exists(q)
                    for q in writer._live_paths_with_content(p.stem)
                ):  # renamed, path update lost
                    index_files(writer, [p], jobs=1)
                    out.published += 1
                else:
                    p.unlink(missing_ok=True)
                    out.removed += 1
            finally:
                os.close(fd)
    if out.removed or out.published:
        log.info(
            "upload folder %s: removed %d leftover file(s) of interrupted adds, finished %d add(s)",
            folder,
            out.removed,
            out.published,
        )
    return out
