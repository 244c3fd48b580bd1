"""Server settings: one frozen dataclass, its defaults written once, validated on creation.

``songmine serve`` builds a :class:`ServerSettings` from its options; with
``--workers N`` uvicorn imports the app in each worker process, so the
settings travel as environment variables (:meth:`ServerSettings.to_env` /
:func:`settings_from_env`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import ParameterError
from ..paths import resolve_index_path
from .guards import HostAllowList

__all__ = ["ServerSettings", "settings_from_env", "TOKEN_ENV", "SETTINGS_ENV"]

#: Environment variable holding the bearer token for the track-editing endpoints.
TOKEN_ENV = "SONGMINE_TOKEN"
#: Environment variable carrying serialised settings to uvicorn worker processes.
SETTINGS_ENV = "SONGMINE_SERVER_SETTINGS"

MB = 1 << 20


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything the HTTP service needs to know; defaults are the safe ones.

    Parameters
    ----------
    index_path : Path
        The index to serve (opened once, at start-up).
    max_upload_bytes : int
        Largest query body accepted (``POST /api/identify``); larger → 413,
        enforced while the body streams in.
    max_query_s : float
        Longest query clip; longer → 422.
    min_query_s : float
        Shortest query clip; shorter → 422 (too little audio to identify).
    max_track_upload_bytes : int
        Largest body for ``POST /api/tracks`` (adding a library track).
    max_track_s : float
        Longest library track accepted by ``POST /api/tracks``.
    top : int
        Matches returned per query (the client may ask for fewer, never more).
    upload_timeout_s : float
        A request body must arrive within this many seconds (slow clients → 408).
    queue_timeout_s : float
        A query waits at most this long for a free worker slot (→ 503, Retry-After).
    max_concurrent_queries : int
        Identifications running at once per process (others wait, see above).
    token : str or None
        Bearer token for ``POST/DELETE /api/tracks``; ``None`` refuses all edits.
    cors_origins : tuple of str
        Origins allowed by CORS; empty (the default) means no CORS headers at all.
    upload_dir : Path or None
        Where tracks added over HTTP are stored (server-chosen names);
        default ``<index_path>/uploads``.
    refresh_interval_s : float
        How often a reader checks for segments committed by another process
        (other workers, a CLI ``songmine index`` run); 0 disables.
    allowed_hosts : tuple of str
        Host names requests may carry in ``Host`` (DNS-rebinding guard);
        ``name:port`` limits a name to one port, ``*.domain`` allows
        subdomains, ``*`` any name. Address literals are always accepted.
        Others → 400 ``host-not-allowed``.
    max_connections : int
        Open connections per process. Over it a new connection replaces the
        one that has waited longest for a request head; when every
        connection has a request in progress it gets 503.
    max_requests : int
        Requests in progress per process (uploads still streaming included);
        beyond → 503 ``busy``.
    header_timeout_s : float
        A request head must be complete this many seconds after the
        connection opened or the previous response ended (slow or idle
        clients → 408 / closed).
    keep_alive_s : float
        An idle connection is closed this long after its last response.
    send_timeout_s : float
        A client that reads none of its response for this long is dropped.
    max_header_bytes : int
        Largest request head (request line + headers); larger → 431.
    server_timing : bool
        Answer ``POST /api/identify`` with a ``Server-Timing`` header: the
        CPU milliseconds of each stage (receive, decode, resample,
        fingerprint, search, respond), as ``benchmarks/server_load.py`` reads them.
    expose_paths : bool
        Whether JSON records (matches, tracks) carry each track's absolute path on
        the server. False: the file name only, and error details name no server
        file (the server's log keeps them). The CLI's own ``--json`` always shows paths.
    """

    index_path: Path
    max_upload_bytes: int = 20 * MB
    max_query_s: float = 60.0
    min_query_s: float = 1.0
    max_track_upload_bytes: int = 500 * MB
    max_track_s: float = 3 * 3600.0
    top: int = 5
    upload_timeout_s: float = 60.0
    queue_timeout_s: float = 30.0
    max_concurrent_queries: int = 4
    token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    upload_dir: Path | None = None
    refresh_interval_s: float = 5.0
    allowed_hosts: tuple[str, ...] = ("localhost",)
    max_connections: int = 512
    max_requests: int = 128
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    send_timeout_s: float = 30.0
    max_header_bytes: int = 16 * 1024
    server_timing: bool = False
    expose_paths: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "index_path", Path(self.index_path))
        if self.upload_dir is not None:
            object.__setattr__(self, "upload_dir", Path(self.upload_dir))
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        object.__setattr__(self, "allowed_hosts", tuple(self.allowed_hosts))
        if self.token is not None and not self.token.strip():
            object.__setattr__(self, "token", None)
        for name in (
            "max_upload_bytes",
            "max_track_upload_bytes",
            "top",
            "max_concurrent_queries",
            "max_connections",
            "max_requests",
            "max_header_bytes",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ParameterError(f"{name}={v!r} must be an integer >= 1")
        for name in (
            "max_query_s",
            "max_track_s",
            "upload_timeout_s",
            "queue_timeout_s",
            "header_timeout_s",
            "keep_alive_s",
            "send_timeout_s",
        ):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0 or v == float("inf"):
                raise ParameterError(f"{name}={v!r} must be a finite number > 0")
        if not 0 <= self.min_query_s < self.max_query_s:
            raise ParameterError(
                f"min_query_s={self.min_query_s!r} must be >= 0 and < max_query_s={self.max_query_s!r}"
            )
        if not self.refresh_interval_s >= 0:
            raise ParameterError(f"refresh_interval_s={self.refresh_interval_s!r} must be >= 0")
        if self.max_track_upload_bytes < self.max_upload_bytes:
            raise ParameterError(
                f"max_track_upload_bytes={self.max_track_upload_bytes} must be >= "
                f"max_upload_bytes={self.max_upload_bytes}"
            )
        if self.top > 100:
            raise ParameterError(f"top={self.top} must be <= 100")
        if self.max_header_bytes < 1024:
            raise ParameterError(f"max_header_bytes={self.max_header_bytes} must be >= 1024")
        if not isinstance(self.expose_paths, bool):
            raise ParameterError(f"expose_paths={self.expose_paths!r} must be True or False")

        try:
            HostAllowList(self.allowed_hosts)
        except ValueError as exc:
            raise ParameterError(f"allowed_hosts: {exc}") from None

    @property
    def track_dir(self) -> Path:
        """Where ``POST /api/tracks`` stores audio (resolved default)."""
        return self.upload_dir if self.upload_dir is not None else self.index_path / "uploads"

    def to_env(self) -> dict[str, str]:
        """Serialise for worker processes (the token stays in ``SONGMINE_TOKEN``)."""
        d = asdict(self)
        d.pop("token")
        d = {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
        d["cors_origins"] = list(self.cors_origins)
        d["allowed_hosts"] = list(self.allowed_hosts)
        out = {SETTINGS_ENV: json.dumps(d)}
        if self.token is not None:
            out[TOKEN_ENV] = self.token
        return out


def settings_from_env(environ: dict[str, str] | None = None) -> ServerSettings:
    """Rebuild settings in a worker from :meth:`ServerSettings.to_env` output.

    Without ``SONGMINE_SERVER_SETTINGS``, serves the default index
    (:func:`songmine.paths.resolve_index_path`) with default limits.
    """
    env = os.environ if environ is None else environ
    raw = env.get(SETTINGS_ENV)
    known = {f.name for f in fields(ServerSettings)}
    d = json.loads(raw) if raw else {}
    unknown = set(d) - known
    if unknown:
        raise ParameterError(f"{SETTINGS_ENV} has unknown keys: {sorted(unknown)}")
    d.setdefault("index_path", str(resolve_index_path(None)))
    d["token"] = env.get(TOKEN_ENV) or None
    return ServerSettings(**d)
