"""``songmine serve``: run the web service and page over one index (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import JsonOption, app, emit_json, fail, needs_extra, printable


@app.command("serve")
@needs_extra("server", "songmine serve")
def serve(
    index: Annotated[
        Path | None, typer.Option("--index", metavar="DIR", help="Index to serve (default: $SONGMINE_INDEX or the per-user one).")
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind. 127.0.0.1 = this machine only; 0.0.0.0 = the whole network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0 = any free port).")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (each opens the index).")] = 1,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate: serve https (phones need it for the microphone).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest query upload, MB (larger → 413).")] = 20.0,
    max_query_s: Annotated[float, typer.Option(min=0.1, help="Longest query clip, seconds (longer → 422).")] = 60.0,
    top: Annotated[int, typer.Option("--top", "-n", min=1, max=100, help="Matches returned per query.")] = 5,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="Allow this origin cross-site (repeatable; off by default).")
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Also answer requests naming this Host (repeatable; NAME, NAME:PORT, "
                                          "*.DOMAIN or *). Default: localhost, the --host name and any address."),
    ] = None,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections per process; over it the longest-waiting idle one is dropped.")
    ] = 512,
    max_requests: Annotated[
        int, typer.Option(min=1, help="Requests in progress per process; more → 503 busy.")
    ] = 128,
    header_timeout_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client has to send a whole request head (else 408 / closed).")
    ] = 10.0,
    keep_alive_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds an idle connection is kept after a response.")
    ] = 5.0,
    send_timeout_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client may read nothing of its response before it is dropped.")
    ] = 30.0,
    hide_paths: Annotated[
        bool, typer.Option("--hide-paths", help="Show clients each track's file name, not its path on this machine "
                                                "(matches, tracks, error details).")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Serve the index over HTTP: the page at /, the API at /api, OpenAPI docs at /docs.

    Editing the library over HTTP (POST/DELETE /api/tracks) is enabled only
    when SONGMINE_TOKEN is set; clients send it as a bearer token.
    """
    import os

    from ..paths import resolve_index_path
    from ..server.settings import TOKEN_ENV, ServerSettings

    if (tls_cert is None) != (tls_key is None):
        raise fail("--tls-cert and --tls-key go together")
    for p in (tls_cert, tls_key):
        if p is not None and not p.is_file():
            raise fail(f"{p}: no such file")
    settings = ServerSettings(
        index_path=resolve_index_path(index),
        max_upload_bytes=int(max_upload_mb * (1 << 20)),
        max_query_s=max_query_s,
        max_track_upload_bytes=max(int(max_upload_mb * (1 << 20)), 500 << 20),
        top=top,
        token=os.environ.get(TOKEN_ENV) or None,
        cors_origins=tuple(cors_origin or ()),
        allowed_hosts=_allowed_hosts(host, allow_host or ()),
        max_connections=max_connections,
        max_requests=max_requests,
        header_timeout_s=header_timeout_s,
        keep_alive_s=keep_alive_s,
        send_timeout_s=send_timeout_s,
        expose_paths=not hide_paths,
    )
    _check_index(settings.index_path)
    scheme = "https" if tls_cert else "http"
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    url = f"{scheme}://{shown}:{port}/"
    if json_out:
        emit_json({"url": url, "index": str(settings.index_path), "workers": workers,
                   "editing": settings.token is not None, "tls": tls_cert is not None})
    else:
        typer.echo(printable(f"songmine: serving {settings.index_path} on {url} (API docs: {url}docs)"), err=True)
        if host not in ("127.0.0.1", "localhost", "::1") and tls_cert is None:
            typer.echo("songmine: note: browsers allow the microphone only over https or on localhost "
                       "(see --tls-cert in docs/server.md)", err=True)
        if host not in ("127.0.0.1", "localhost", "::1") and not hide_paths:
            typer.echo("songmine: note: clients see each track's path on this machine; --hide-paths shows "
                       "file names only", err=True)
    _run(settings, host=host, port=port, workers=workers, tls_cert=tls_cert, tls_key=tls_key)


def _allowed_hosts(host: str, extra: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """localhost, the bind name (when it is a name, not an address or a wildcard) and ``--allow-host``."""
    from ..server.guards import is_address, parse_host

    names = ["localhost"]
    try:
        name, _ = parse_host(host)
    except ValueError:
        name = ""
    if name and name not in names and not is_address(name):
        names.append(name)
    return tuple(names) + tuple(extra)


def _check_index(path: Path) -> None:
    """Open the index once up front, so a wrong path fails here with a clear line (exit 2)."""
    from ..fingerprint.index import Index

    idx = Index(path)
    close = getattr(idx, "close", None)
    if callable(close):
        close()


def _run(settings, *, host: str, port: int, workers: int, tls_cert, tls_key) -> None:
    import os

    import uvicorn

    from ..server.protocol import uvicorn_options

    common = dict(
        host=host,
        port=port,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        timeout_graceful_shutdown=10,
        log_level="info",
        **uvicorn_options(settings),
    )
    if workers == 1:
        from ..server.app import create_app

        uvicorn.run(create_app(settings), **common)
    else:  # each worker process rebuilds the settings from the environment
        os.environ.update(settings.to_env())
        uvicorn.run("songmine.server.app:create_app_from_env", factory=True, workers=workers, **common)
