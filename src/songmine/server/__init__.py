"""songmine's web service: a FastAPI app over one index, plus one static page.

``create_app(settings)`` builds the app (see :mod:`songmine.server.app`);
``songmine serve`` runs it with uvicorn. Needs the ``server`` extra
(fastapi, uvicorn, python-multipart).
"""

from __future__ import annotations

from ..extras import require
from .settings import ServerSettings

require("server", __name__)  # a missing package of the extra: one line naming it, not a traceback

__all__ = ["ServerSettings", "create_app"]


def create_app(settings: ServerSettings):
    """Build the FastAPI app for ``settings`` (imported lazily: FastAPI is an extra)."""
    from .app import create_app as _create

    return _create(settings)
