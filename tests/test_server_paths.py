"""``songmine serve --hide-paths`` (``ServerSettings.expose_paths=False``): clients see file names, never
where the music lives on the server; the CLI's own ``--json`` keeps whole paths."""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from conftest import LOCAL, require, songmine_serve

require("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from test_server import TOKEN, clip  # noqa: E402

from songmine.cli._app import main  # noqa: E402
from songmine.server import ServerSettings, create_app  # noqa: E402

pytestmark = pytest.mark.corpus


@pytest.fixture
def hidden(server_index, tmp_path):
    path = tmp_path / "index"
    shutil.copytree(server_index, path)
    s = ServerSettings(index_path=path, token=TOKEN, refresh_interval_s=0, expose_paths=False)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        yield c, path


def _no_server_paths(body: str, *folders: Path) -> None:
    for f in folders:
        assert str(f) not in body and str(f.resolve()) not in body, body


def test_records_and_tracks_carry_file_names_only(hidden, tagged_cuts):
    c, path = hidden
    r = c.post("/api/identify", files={"file": ("q.wav", clip(tagged_cuts[1], offset=5.0, duration=8.0))})
    assert r.status_code == 200
    assert r.json()["matches"][0]["path"] == tagged_cuts[1].name
    _no_server_paths(r.text, tagged_cuts[1].parent, path)
    page = c.get("/api/tracks")
    assert {t["path"] for t in page.json()["tracks"]} == {p.name for p in tagged_cuts[:5]}
    _no_server_paths(page.text, tagged_cuts[1].parent)
    one = c.get(f"/api/tracks/{page.json()['tracks'][0]['id']}").json()
    assert "/" not in one["path"]
    added = c.post(
        "/api/tracks",
        files={"file": ("new.flac", tagged_cuts[5].read_bytes())},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert added.status_code == 201 and "/" not in added.json()["track"]["path"]
    _no_server_paths(added.text, path)


def test_a_server_error_names_no_server_file(hidden, tagged_cuts):
    """A segment whose size no longer matches its header: the 500 says what, not where."""
    c, path = hidden
    with open(next((path / "segments").iterdir()), "ab") as fh:
        fh.write(bytes(12))
    r = c.post(
        "/api/tracks",
        files={"file": ("new.flac", tagged_cuts[5].read_bytes())},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 500 and r.json()["reason"] == "index-damaged", r.text
    _no_server_paths(r.text, path)
    assert "seg-" not in r.text


def test_by_default_and_in_the_cli_paths_are_whole(server_index, tagged_cuts, tmp_path, capsys):
    with TestClient(create_app(ServerSettings(index_path=server_index, refresh_interval_s=0)), base_url=LOCAL) as c:
        r = c.post("/api/identify", files={"file": ("q.wav", clip(tagged_cuts[2], offset=5.0, duration=8.0))})
        assert r.json()["matches"][0]["path"] == str(tagged_cuts[2])
    q = tmp_path / "q.wav"
    q.write_bytes(clip(tagged_cuts[2], offset=5.0, duration=8.0))
    assert main(["identify", str(q), "--index", str(server_index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["matches"][0]["path"] == str(tagged_cuts[2])


def test_songmine_serve_hide_paths(server_index, tagged_cuts):
    with songmine_serve(server_index, "--hide-paths") as (url, _):
        with urllib.request.urlopen(url + "/api/tracks") as r:
            tracks = json.load(r)["tracks"]
    assert {t["path"] for t in tracks} == {p.name for p in tagged_cuts[:5]}
