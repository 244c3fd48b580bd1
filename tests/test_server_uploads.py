"""The upload receiver and the server settings: limits enforced while the body streams."""

from __future__ import annotations

import os

import pytest
from conftest import require  # noqa: E402

require("fastapi")

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from songmine.errors import ParameterError  # noqa: E402
from songmine.server.settings import ServerSettings, settings_from_env  # noqa: E402
from songmine.server.uploads import ReceivedUpload, clean_filename, receive_upload  # noqa: E402

LIMIT = 10_000


def _app(seen: list) -> FastAPI:
    """A one-route app around the real receiver, recording what landed on disk."""
    app = FastAPI()

    async def upload(request: Request):
        up = await receive_upload(request, max_bytes=LIMIT, timeout_s=5.0)
        try:
            yield up
        finally:
            up.discard()

    @app.post("/u")
    def u(up: ReceivedUpload = Depends(upload)):
        data = up.path.read_bytes()
        seen.append(up.path)
        return {
            "size": up.size,
            "n": len(data),
            "name": up.filename,
            "type": up.content_type,
            "fields": up.fields,
            "head": data[:8].hex(),
        }

    return app


@pytest.fixture
def client_and_seen():
    seen: list = []
    with TestClient(_app(seen)) as c:
        yield c, seen


def test_raw_body_lands_in_a_temp_file_that_is_removed(client_and_seen):
    c, seen = client_and_seen
    body = bytes(range(256)) * 20
    r = c.post("/u", content=body, headers={"content-type": "audio/ogg"})
    assert r.status_code == 200, r.text
    assert r.json()["n"] == len(body) == r.json()["size"]
    assert r.json()["head"] == body[:8].hex()
    assert not seen[0].exists()  # discarded after the response


def test_multipart_file_and_fields(client_and_seen):
    c, _ = client_and_seen
    body = b"\x00\x01" * 3000
    r = c.post("/u", files={"file": ("../../etc/passwd.webm", body, "audio/webm")}, data={"title": "Ünïcode"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["n"] == len(body)
    assert j["name"] == "passwd.webm"  # only a display label: path parts gone
    assert j["type"] == "audio/webm"
    assert j["fields"] == {"title": "Ünïcode"}


def test_too_large_declared_and_streamed(client_and_seen):
    c, seen = client_and_seen
    r = c.post("/u", content=b"x" * (LIMIT + 1), headers={"content-type": "audio/mpeg"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # no Content-Length: must be cut off while streaming
        for _ in range(100):
            yield b"y" * 1000

    r = c.post("/u", content=chunks(), headers={"content-type": "audio/mpeg"})
    assert r.status_code == 413
    big = b"z" * (LIMIT + 1)
    r = c.post("/u", files={"file": ("a.mp3", big, "audio/mpeg")})
    assert r.status_code == 413
    assert not seen


@pytest.mark.parametrize("ctype", ["text/plain", "application/json", "", "image/png"])
def test_unsupported_content_type_is_415(client_and_seen, ctype):
    c, _ = client_and_seen
    headers = {"content-type": ctype} if ctype else {}
    r = c.post("/u", content=b"abc", headers=headers)
    assert r.status_code == 415
    assert "multipart/form-data" in r.json()["detail"]


@pytest.mark.parametrize(
    "body, ctype",
    [
        (b'--B\r\nContent-Disposition: form-data; name="x"\r\n\r\nhi\r\n--B--\r\n', "multipart/form-data; boundary=B"),
        (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
            "multipart/form-data; boundary=B",
        ),
        (b"garbage", "multipart/form-data; boundary=B"),
        (b"--B--\r\n", "multipart/form-data"),
        (b"", "audio/wav"),
    ],
    ids=["no-file", "unterminated", "garbage", "no-boundary", "empty"],
)
def test_malformed_uploads_are_422(client_and_seen, body, ctype):
    c, _ = client_and_seen
    r = c.post("/u", content=body, headers={"content-type": ctype})
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_two_files_are_refused(client_and_seen):
    c, _ = client_and_seen
    r = c.post("/u", files=[("file", ("a.ogg", b"1", "audio/ogg")), ("other", ("b.ogg", b"2", "audio/ogg"))])
    assert r.status_code == 422 and "one file" in r.json()["detail"]


def test_clean_filename():
    assert clean_filename(None) is None
    assert clean_filename("C:\\Users\\me\\song.mp3") == "song.mp3"
    assert clean_filename("/\x00\x1f") is None
    assert len(clean_filename("a" * 1000)) == 200


def test_settings_validate_and_round_trip(tmp_path):
    s = ServerSettings(index_path=tmp_path, token="t0k", cors_origins=["https://x.example"], top=3)
    assert s.track_dir == tmp_path / "uploads"
    assert "t0k" not in repr(s)
    env = s.to_env()
    back = settings_from_env(env)
    assert back == s
    assert settings_from_env({**env, "SONGMINE_TOKEN": ""}).token is None
    with pytest.raises(ParameterError, match="max_upload_bytes=0"):
        ServerSettings(index_path=tmp_path, max_upload_bytes=0)
    with pytest.raises(ParameterError, match="max_query_s"):
        ServerSettings(index_path=tmp_path, max_query_s=float("nan"))
    with pytest.raises(ParameterError, match="max_track_upload_bytes"):
        ServerSettings(index_path=tmp_path, max_upload_bytes=100, max_track_upload_bytes=10)
    assert ServerSettings(index_path=tmp_path, token="  ").token is None
    assert os.fspath(settings_from_env({}).index_path)
