"""Where songmine keeps things: resolved once, here, for every module.

* the default index: ``$SONGMINE_INDEX``, else ``<user data dir>/index``
  (``~/.local/share/songmine/index`` on Linux);
* caches (demo music, parquet copies of catalogues): ``$SONGMINE_CACHE``,
  else the per-user cache dir (``~/.cache/songmine``);
* the crash log of the CLI: ``<cache>/crash.log``.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "songmine"


def data_dir() -> Path:
    """Per-user data dir (platformdirs), e.g. ``~/.local/share/songmine``."""
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False)


def cache_dir() -> Path:
    """Per-user cache dir: ``$SONGMINE_CACHE`` or e.g. ``~/.cache/songmine``."""
    env = os.environ.get("SONGMINE_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path(APP_NAME, appauthor=False)


def default_index_path() -> Path:
    """The index used when no ``--index`` is given."""
    env = os.environ.get("SONGMINE_INDEX")
    if env:
        return Path(env).expanduser()
    return data_dir() / "index"


def resolve_index_path(path: str | os.PathLike[str] | None) -> Path:
    """``path`` if given, else :func:`default_index_path` — the single resolution rule."""
    return Path(path).expanduser() if path is not None else default_index_path()


def demo_corpus_dir() -> Path:
    """Cached location of the demo music fetched by ``songmine demo-corpus``."""
    return cache_dir() / "demo-corpus"
