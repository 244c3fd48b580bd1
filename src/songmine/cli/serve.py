"""``songmine serve``: run the web service and page over one index (uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import EXIT_INTERNAL, JsonOption, app, emit_json, fail, needs_extra, printable


@app.command("serve")
@needs_extra("server", "songmine serve")
def serve(
    index: Annotated[
        Path | None,
        typer.Option("--index", metavar="DIR", help="Index to serve (default: $SONGMINE_INDEX or the per-user one)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind. 127.0.0.1 = this machine only; 0.0.0.0 = the whole network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0 = any free port).")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="Worker processes sharing the index (default: one per CPU available)."),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="PEM certificate: serve https (phones need it for the microphone)."),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest query upload, MB (larger → 413).")] = 20.0,
    max_query_s: Annotated[float, typer.Option(min=0.1, help="Longest query clip, seconds (longer → 422).")] = 60.0,
    top: Annotated[int, typer.Option("--top", "-n", min=1, max=100, help="Matches returned per query.")] = 5,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow this origin cross-site (repeatable; off by default)."),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Also answer requests naming this Host (repeatable; NAME, NAME:PORT, "
            "*.DOMAIN or *). Default: localhost, the --host name and any address.",
        ),
    ] = None,
    max_connections: Annotated[
        int, typer.Option(min=1, help="Open connections per process; over it the longest-waiting idle one is dropped.")
    ] = 512,
    max_requests: Annotated[int, typer.Option(min=1, help="Requests in progress per process; more → 503 busy.")] = 128,
    max_concurrent_queries: Annotated[
        int, typer.Option(min=1, help="Identifications running at once per process; others queue (up to 30 s).")
    ] = 4,
    header_timeout_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client has to send a whole request head (else 408 / closed).")
    ] = 10.0,
    keep_alive_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds an idle connection is kept after a response.")
    ] = 5.0,
    send_timeout_s: Annotated[
        float, typer.Option(min=0.1, help="Seconds a client may read nothing of its response before it is dropped.")
    ] = 30.0,
    server_timing: Annotated[
        bool,
        typer.Option("--server-timing", help="Send each identification's CPU per stage in a Server-Timing header."),
    ] = False,
    hide_paths: Annotated[
        bool,
        typer.Option(
            "--hide-paths",
            help="Show clients each track's file name, not its path on this machine (matches, tracks, error details).",
        ),
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
    if tls_cert is not None:
        _check_tls(tls_cert, tls_key)
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
        max_concurrent_queries=max_concurrent_queries,
        header_timeout_s=header_timeout_s,
        keep_alive_s=keep_alive_s,
        send_timeout_s=send_timeout_s,
        server_timing=server_timing,
        expose_paths=not hide_paths,
    )
    _check_index(settings.index_path)
    if workers is None:
        workers = available_cpus()
    scheme = "https" if tls_cert else "http"
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    url = f"{scheme}://{shown}:{port}/"
    if json_out:
        emit_json(
            {
                "url": url,
                "index": str(settings.index_path),
                "workers": workers,
                "editing": settings.token is not None,
                "tls": tls_cert is not None,
            }
        )
    else:
        typer.echo(printable(f"songmine: serving {settings.index_path} on {url} (API docs: {url}docs)"), err=True)
        if host not in ("127.0.0.1", "localhost", "::1") and tls_cert is None:
            typer.echo(
                "songmine: note: browsers allow the microphone only over https or on localhost "
                "(see --tls-cert in docs/server.md)",
                err=True,
            )
        if host not in ("127.0.0.1", "localhost", "::1") and not hide_paths:
            typer.echo(
                "songmine: note: clients see each track's path on this machine; --hide-paths shows file names only",
                err=True,
            )
    _run(settings, host=host, port=port, workers=workers, tls_cert=tls_cert, tls_key=tls_key)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask; the machine's count where that is unknown)."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


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


def _check_tls(cert: Path, key: Path) -> None:
    """Load the certificate and key once up front: a pair that cannot serve fails here (exit 2), not
    in each worker process. An encrypted key is refused rather than prompted for."""
    import ssl

    from ..errors import one_line

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(cert), str(key), password=lambda: b"")
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise fail(
            f"{cert}, {key}: not a usable TLS certificate and unencrypted private key ({one_line(exc)})"
        ) from None


def _run(settings, *, host: str, port: int, workers: int, tls_cert, tls_key) -> None:
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
        return
    from ..server.supervisor import serve_workers

    if serve_workers(settings, common, workers):
        raise fail("a worker process failed to start (its error is in the log above)", EXIT_INTERNAL)
