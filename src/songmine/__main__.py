"""``python -m songmine``: the command line, as the ``songmine`` script runs it."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
