"""Receive an audio upload into a temp file, enforcing the size limit while it streams.

Two request shapes are accepted:

* ``multipart/form-data`` with one file part (field ``file``; any other file
  field name is accepted too) plus optional short text fields;
* a raw body with an audio content type (``audio/*``, ``video/webm``,
  ``application/ogg``, ``application/octet-stream``...).

The body is never read into memory whole: chunks go to a temp file this module
creates (``tempfile.mkstemp``), and the request is refused with 413 as soon as
the count passes the limit — a ``Content-Length`` that is already too big is
refused before reading anything. The client's file name is only ever used as a
display label (sanitised); it never names a file on disk.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from fastapi import HTTPException, Request

__all__ = ["ReceivedUpload", "receive_upload", "RAW_AUDIO_TYPES", "UPLOAD_BODY"]

#: The two request shapes, for the OpenAPI document of the upload routes.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "video/webm": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

#: Raw-body content types accepted as audio (besides every ``audio/*``).
RAW_AUDIO_TYPES = frozenset({"video/webm", "video/ogg", "video/mp4", "application/ogg", "application/octet-stream"})

_MULTIPART_SLACK = 64 * 1024  # envelope + text fields allowed on top of the file limit
_MAX_FIELDS = 16
_MAX_FIELD_BYTES = 4096
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class ReceivedUpload:
    """An upload safely on disk, in a temp file owned by the server."""

    path: Path
    size: int
    content_type: str
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    lock_fd: int | None = field(default=None, repr=False)  # holds an flock on the file while it is ours
    cpu_s: float = field(default=0.0, repr=False)  # CPU spent receiving it (parsing, writing), event loop thread
    kept: bool = field(default=False, repr=False)  # handed over: discard() must not delete it

    @property
    def label(self) -> str:
        """A display name for the query record ("upload" when the client gave none)."""
        return self.filename or "upload"

    def discard(self) -> None:
        """Delete the file (unless it was kept) and let go of it."""
        if not self.kept:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.release()

    def keep(self) -> None:
        """The file now belongs elsewhere (e.g. the library): :meth:`discard` leaves it."""
        self.kept = True

    def release(self) -> None:
        """Let go of the file without deleting it (its lock, if any, ends here)."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def clean_filename(name: str | bytes | None) -> str | None:
    """A client-supplied file name reduced to a harmless display label (or ``None``)."""
    if name is None:
        return None
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _NAME_BAD.sub("", name).strip()[:200]
    return name or None


def _error(status: int, detail: str, reason: str) -> HTTPException:
    """An HTTP error whose JSON body carries ``reason`` (the app's handler moves it from the header)."""
    return HTTPException(status, detail, headers={"X-Songmine-Reason": reason})


def _too_large(limit: int) -> HTTPException:
    return _error(413, f"upload too large: the limit is {limit / (1 << 20):.0f} MB ({limit} bytes)", "too-large")


def _malformed(detail: str) -> HTTPException:
    return _error(422, detail, "malformed-multipart")


def _unsupported(ctype: str) -> HTTPException:
    shown = ctype or "none"
    return _error(
        415,
        f"unsupported Content-Type {shown!r}: send multipart/form-data with a 'file' field, "
        "or the raw audio with an audio/* (or video/webm) Content-Type",
        "unsupported-type",
    )


async def receive_upload(
    request: Request,
    *,
    max_bytes: int,
    timeout_s: float,
    tmp_dir: str | os.PathLike[str] | None = None,
    prefix: str = "songmine-upload-",
    suffix: str = ".bin",
    locked: bool = False,
) -> ReceivedUpload:
    """Stream the request body into a new temp file (``prefix``, ``suffix``, in ``tmp_dir``).

    With ``locked``, the file carries an exclusive ``flock`` from its creation
    until :meth:`ReceivedUpload.release` / :meth:`~ReceivedUpload.discard`
    (or the death of the process): whoever cleans ``tmp_dir`` can tell a file
    in use from a dead request's leftover.

    Raises
    ------
    HTTPException
        413 too large, 415 not an audio upload, 422 no file / malformed
        multipart, 408 the body did not arrive within ``timeout_s``.
    """
    from python_multipart.multipart import parse_options_header

    ctype_raw = request.headers.get("content-type", "")
    mime, params = parse_options_header(ctype_raw)
    mime_s = mime.decode("latin-1").lower()
    multipart = mime_s == "multipart/form-data"
    if not multipart and not (mime_s.startswith("audio/") or mime_s in RAW_AUDIO_TYPES):
        raise _unsupported(mime_s)

    body_limit = max_bytes + (_MULTIPART_SLACK if multipart else 0)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n_declared = int(declared)
        except ValueError:
            raise _error(400, f"bad Content-Length header {declared!r}", "bad-request") from None
        if n_declared > body_limit:
            raise _too_large(max_bytes)

    cpu0 = time.thread_time()
    fd, tmp = _new_file(prefix, suffix, tmp_dir, locked)
    upload = ReceivedUpload(path=Path(tmp), size=0, content_type=mime_s)
    cpu = time.thread_time() - cpu0  # the CPU of this request only: the awaits below run other requests
    try:
        if locked:
            upload.lock_fd = os.dup(fd)  # the same open file: the lock outlives the writer's close
        with os.fdopen(fd, "wb") as out:
            if multipart:
                boundary = params.get(b"boundary")
                if not boundary:
                    raise _malformed("multipart body without a boundary parameter")
                sink = _MultipartSink(out, boundary, max_bytes)
            else:
                sink = _RawSink(out, max_bytes)
            n_body = 0
            try:
                with anyio.fail_after(timeout_s):
                    async for chunk in request.stream():
                        cpu0 = time.thread_time()
                        n_body += len(chunk)
                        if n_body > body_limit:
                            raise _too_large(max_bytes)
                        sink.write(chunk)
                        cpu += time.thread_time() - cpu0
            except TimeoutError:
                raise _error(408, f"request body not received within {timeout_s:g} s", "timeout") from None
            cpu0 = time.thread_time()
            sink.finish()
        cpu += time.thread_time() - cpu0
        upload.cpu_s = cpu
        upload.size = sink.n_file
        if multipart:
            upload.content_type = sink.part_type or "application/octet-stream"
            upload.filename = clean_filename(sink.filename)
            upload.fields = sink.fields
        if upload.size == 0:
            raise _error(422, "the upload is empty (0 bytes of audio)", "empty")
        return upload
    except BaseException:
        upload.discard()
        raise


def _new_file(prefix: str, suffix: str, folder, locked: bool) -> tuple[int, str]:
    """``tempfile.mkstemp``, and with ``locked`` the file's ``flock`` taken before it is used.

    Between the file's creation and its lock, another process's start-up
    clean-up (:func:`songmine.server.trackstore.recover`, run by each worker
    that starts) may see an unlocked temp file, take it for a dead add's
    leftover and delete it. The lock is then ours but the name is gone: start
    again with a new file.
    """
    while True:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        if not locked:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a clean-up holds it, an instant
        if os.fstat(fd).st_nlink > 0:
            return fd, tmp
        os.close(fd)


class _RawSink:
    def __init__(self, out, max_bytes: int):
        self.out, self.max_bytes, self.n_file = out, max_bytes, 0

    def write(self, chunk: bytes) -> None:
        self.n_file += len(chunk)
        if self.n_file > self.max_bytes:
            raise _too_large(self.max_bytes)
        self.out.write(chunk)

    def finish(self) -> None:
        pass


class _MultipartSink:
    """Feeds python-multipart's streaming parser; the first file part goes to ``out``."""

    def __init__(self, out, boundary: bytes, max_bytes: int):
        from python_multipart.multipart import MultipartParser

        self.out, self.max_bytes = out, max_bytes
        self.n_file = 0
        self.filename: bytes | None = None
        self.part_type: str | None = None
        self.fields: dict[str, str] = {}
        self._headers: dict[bytes, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._kind: str | None = None  # "file", "field", "skip"
        self._fname = ""
        self._fbuf = bytearray()
        self._n_files = 0
        self._ended = False
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def write(self, chunk: bytes) -> None:
        from python_multipart.exceptions import MultipartParseError

        try:
            self.parser.write(chunk)
        except MultipartParseError as exc:
            raise _malformed(f"malformed multipart body: {exc}") from None

    def finish(self) -> None:
        from python_multipart.exceptions import MultipartParseError

        try:
            self.parser.finalize()
        except MultipartParseError as exc:
            raise _malformed(f"malformed multipart body: {exc}") from None
        if not self._ended:
            raise _malformed("malformed multipart body: it ends before its closing boundary")
        if self._n_files == 0:
            raise _malformed("multipart body has no file part: send the audio in a 'file' field")

    # -- parser callbacks ---------------------------------------------------------
    def _part_begin(self) -> None:
        self._headers = {}
        self._kind = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname = self._hvalue = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        disp, opts = parse_options_header(self._headers.get(b"content-disposition"))
        if disp.lower() != b"form-data" or b"name" not in opts:
            raise _malformed("malformed multipart body: a part lacks Content-Disposition: form-data; name=…")
        name = opts[b"name"].decode("utf-8", "replace")
        if b"filename" in opts or name == "file":
            self._n_files += 1
            if self._n_files > 1:
                raise _malformed("send exactly one file per request")
            self._kind = "file"
            self.filename = opts.get(b"filename")
            ptype, _ = parse_options_header(self._headers.get(b"content-type"))
            self.part_type = ptype.decode("latin-1").lower() or None
        else:
            if len(self.fields) >= _MAX_FIELDS:
                raise _malformed(f"too many form fields (at most {_MAX_FIELDS})")
            self._kind = "field"
            self._fname = name
            self._fbuf = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._kind == "file":
            self.n_file += n
            if self.n_file > self.max_bytes:
                raise _too_large(self.max_bytes)
            self.out.write(data[start:end])
        elif self._kind == "field":
            if len(self._fbuf) + n > _MAX_FIELD_BYTES:
                raise _malformed(f"form field {self._fname!r} is longer than {_MAX_FIELD_BYTES} bytes")
            self._fbuf += data[start:end]

    def _part_end(self) -> None:
        if self._kind == "field":
            self.fields[self._fname] = self._fbuf.decode("utf-8", "replace")
        self._kind = None

    def _end(self) -> None:
        self._ended = True
