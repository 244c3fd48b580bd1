"""songmine's command line: thin verbs over the library (one module per noun).

Each module below registers its verbs on :data:`app` when imported; a new verb
group is one new module and one import line here.
"""

from __future__ import annotations

import sys

from . import catalog as _catalog  # noqa: F401  (catalog merge, features)
from . import cluster as _cluster  # noqa: F401  (cluster choose-k, cluster run)
from . import corpus as _corpus  # noqa: F401  (demo-corpus, scan)
from . import dedupe as _dedupe  # noqa: F401  (dedupe)
from . import evaluate as _evaluate  # noqa: F401  (eval)
from . import identify as _identify  # noqa: F401  (identify)
from . import library as _library  # noqa: F401  (index, tracks, remove, compact)
from . import pairs as _pairs  # noqa: F401  (pairs)
from . import serve as _serve  # noqa: F401  (serve)
from ._app import EXIT_INTERNAL, EXIT_NO_MATCH, EXIT_OK, EXIT_USAGE, app
from ._app import main as _main

__all__ = ["app", "main", "EXIT_OK", "EXIT_NO_MATCH", "EXIT_USAGE", "EXIT_INTERNAL"]


def main() -> None:
    """Entry point of the ``songmine`` console script."""
    sys.exit(_main(sys.argv[1:]))
