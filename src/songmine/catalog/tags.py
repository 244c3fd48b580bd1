"""Tags of a user's own music (title, artist, album, genre, year) for a ``tracks.csv``-like table.

Read with mutagen's easy interface (ID3, Vorbis comments, MP4, FLAC, ...),
falling back to the container tags PyAV reports. Missing tags are absent keys,
never errors: an untagged file still gets its features.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..audio import info

__all__ = ["read_tags", "TAG_KEYS"]

#: The tags songmine reads, in tracks.csv terms.
TAG_KEYS = ("title", "artist", "album", "genre", "year")

_ALIASES = {
    "title": ("title",),
    "artist": ("artist", "albumartist", "album_artist", "performer"),
    "album": ("album",),
    "genre": ("genre",),
    "year": ("date", "year", "originaldate", "originalyear"),
}
_YEAR = re.compile(r"(1[0-9]{3}|20[0-9]{2})")


def _first(values: Any) -> str | None:
    if values is None:
        return None
    if isinstance(values, (list, tuple)):
        values = values[0] if values else None
    if values is None:
        return None
    text = str(values).strip().strip("\x00")
    return text or None


def read_tags(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"title", "artist", "album", "genre", "year"}`` for the keys the file has.

    ``year`` is an ``int`` (the first 4-digit year found in the date tag).
    ID3 numeric genres like ``(17)`` or ``17`` are kept as text.

    Examples
    --------
    >>> read_tags("/nonexistent.mp3")
    {}
    """
    raw: dict[str, Any] = {}
    try:
        import mutagen

        f = mutagen.File(os.fspath(path), easy=True)
        if f is not None and f.tags is not None:
            lower = {str(k).lower(): v for k, v in f.tags.items()}
            for key, names in _ALIASES.items():
                for n in names:
                    v = _first(lower.get(n))
                    if v:
                        raw[key] = v
                        break
    except Exception:  # unreadable tags are not an error: fall back to the container
        pass
    if len(raw) < len(TAG_KEYS):
        try:
            t = {k.lower(): v for k, v in (info(path).tags or {}).items()}
            for key, names in _ALIASES.items():
                if key not in raw:
                    for n in names:
                        v = _first(t.get(n))
                        if v:
                            raw[key] = v
                            break
        except Exception:
            pass
    out: dict[str, Any] = {k: raw[k] for k in ("title", "artist", "album", "genre") if k in raw}
    if "year" in raw:
        m = _YEAR.search(str(raw["year"]))
        if m:
            out["year"] = int(m.group(1))
    return out
