"""songmine — mine a music collection.

Identify short noisy clips against an indexed library, find near-duplicate
recordings, and cluster a catalogue by its audio features.

Heavy parts are imported lazily, so ``import songmine`` (and the CLI's
``--help``) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "Index": "songmine.fingerprint.index",
    "identify": "songmine.fingerprint.query",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'songmine' has no attribute {name!r}")
