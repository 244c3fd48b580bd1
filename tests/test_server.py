"""The HTTP API over a real index of real music: uploads, limits, auth, library edits, snapshots."""

from __future__ import annotations

import io
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import require

require("fastapi")

from conftest import LOCAL  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from songmine.audio import load  # noqa: E402
from songmine.server import ServerSettings, create_app  # noqa: E402

pytestmark = pytest.mark.corpus

TOKEN = "test-token-0123456789"


def encode(y: np.ndarray, sr: int, fmt: str) -> bytes:
    """Mono float32 ``y`` → bytes of a real audio file (wav/flac via libsndfile, webm/opus and mp3 via FFmpeg)."""
    import soundfile as sf

    buf = io.BytesIO()
    if fmt in ("wav", "flac"):
        sf.write(buf, y, sr, format=fmt.upper(), subtype="PCM_16")
        return buf.getvalue()
    import av

    container_fmt, codec, rate = {"webm": ("webm", "libopus", 48000), "mp3": ("mp3", "libmp3lame", 44100)}[fmt]
    if sr != rate:
        import soxr

        y = soxr.resample(y, sr, rate).astype(np.float32)
    with av.open(buf, "w", format=container_fmt) as c:
        s = c.add_stream(codec, rate=rate)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def clip(path: Path, *, offset: float, duration: float, fmt: str = "wav", sr: int = 22050) -> bytes:
    return encode(load(path, sr=sr, offset=offset, duration=duration), sr, fmt)


@pytest.fixture(scope="module")
def client(server_index):
    with TestClient(create_app(ServerSettings(index_path=server_index, refresh_interval_s=0)), base_url=LOCAL) as c:
        yield c


# --- identify ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "flac", "webm", "mp3"])
def test_identify_multipart_upload_of_real_music(client, tagged_cuts, fmt):
    k = {"wav": 0, "flac": 1, "webm": 2, "mp3": 3}[fmt]
    body = clip(tagged_cuts[k], offset=7.0, duration=10.0, fmt=fmt)
    r = client.post("/api/identify", files={"file": (f"phone.{fmt}", body, f"audio/{fmt}")})
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["query"] == f"phone.{fmt}" and rec["error"] is None
    best = rec["matches"][0]
    assert Path(best["path"]).name == tagged_cuts[k].name
    assert best["title"].endswith(f"(cut {k})") and best["album"] == "songmine test cuts"
    assert abs(best["offset_s"] - 7.0) < 0.3
    assert 0.9 <= best["confidence"] <= 1.0


def test_identify_raw_body_and_top(client, tagged_cuts):
    body = clip(tagged_cuts[4], offset=12.0, duration=10.0, fmt="webm")
    r = client.post("/api/identify?top=1", content=body, headers={"content-type": "audio/webm;codecs=opus"})
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["query"] == "upload" and len(rec["matches"]) == 1
    assert Path(rec["matches"][0]["path"]).name == tagged_cuts[4].name
    assert abs(rec["matches"][0]["offset_s"] - 12.0) < 0.3


def test_music_not_in_the_library_is_no_match(client, tagged_cuts, synth_music):
    # the sixth cut was never indexed: real music, but not ours
    r = client.post(
        "/api/identify", files={"file": ("x.flac", clip(tagged_cuts[5], offset=5, duration=10, fmt="flac"))}
    )
    assert r.status_code == 200 and r.json()["matches"] == [] and r.json()["error"] is None
    r = client.post(
        "/api/identify", content=encode(synth_music(22050, 8.0), 22050, "wav"), headers={"content-type": "audio/wav"}
    )
    assert r.status_code == 200 and r.json()["matches"] == []


# --- limits and bad input ---------------------------------------------------------------------


def test_upload_over_the_limit_is_413(server_index, tagged_cuts):
    s = ServerSettings(index_path=server_index, max_upload_bytes=200_000, refresh_interval_s=0)
    body = clip(tagged_cuts[0], offset=0, duration=10, fmt="wav")  # ~440 kB
    with TestClient(create_app(s), base_url=LOCAL) as c:
        r = c.post("/api/identify", files={"file": ("big.wav", body, "audio/wav")})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = c.post("/api/identify", content=body, headers={"content-type": "audio/wav"})
        assert r.status_code == 413


def test_clip_over_the_duration_limit_is_422(client, tagged_cuts):
    y = np.concatenate([load(p, sr=11025) for p in tagged_cuts[:3]])  # 90 s of real music
    r = client.post("/api/identify", files={"file": ("long.flac", encode(y, 11025, "flac"), "audio/flac")})
    assert r.status_code == 422
    j = r.json()
    assert j["reason"] == "too-long" and "60 s" in j["detail"] and j["detail"].startswith("long.flac")


@pytest.mark.parametrize(
    "name, body, status, reason",
    [
        ("notes.txt", b"these are not the songs you are looking for\n" * 50, 415, "not-audio"),
        ("pixel.png", b"\x89PNG\r\n\x1a\n" + bytes(2000), 415, "no-audio-stream"),
    ],
)
def test_not_audio_is_415(client, name, body, status, reason):
    r = client.post("/api/identify", files={"file": (name, body, "audio/mpeg")})
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason and r.json()["detail"].startswith(name)


def test_truncated_or_corrupt_audio_is_4xx_with_a_message(client, tagged_cuts):
    full = clip(tagged_cuts[0], offset=0, duration=10, fmt="flac")
    r = client.post("/api/identify", files={"file": ("half.flac", full[: len(full) // 2])})
    assert r.status_code == 422 and r.json()["reason"] == "truncated"
    corrupt = full[:200] + bytes(len(full) - 200)
    r = client.post("/api/identify", files={"file": ("zeros.flac", corrupt)})
    assert r.status_code in (415, 422) and r.json()["detail"]


def test_clip_too_short_is_422(client, tagged_cuts):
    r = client.post("/api/identify", files={"file": ("blip.wav", clip(tagged_cuts[0], offset=3, duration=0.4))})
    assert r.status_code == 422 and r.json()["reason"] == "too-short" and "at least 1 s" in r.json()["detail"]


def test_wrong_content_type_and_empty_body(client):
    assert client.post("/api/identify", content=b"{}", headers={"content-type": "application/json"}).status_code == 415
    r = client.post("/api/identify", files={"file": ("empty.wav", b"")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    assert client.post("/api/identify?top=0", content=b"x", headers={"content-type": "audio/wav"}).status_code == 422


# --- library ----------------------------------------------------------------------------------


def test_tracks_are_paginated(client, tagged_cuts):
    a = client.get("/api/tracks", params={"limit": 3}).json()
    b = client.get("/api/tracks", params={"limit": 3, "offset": 3}).json()
    assert a["total"] == b["total"] == 5
    assert len(a["tracks"]) == 3 and len(b["tracks"]) == 2
    ids = [t["id"] for t in a["tracks"] + b["tracks"]]
    assert ids == sorted(set(ids))
    names = {Path(t["path"]).name for t in a["tracks"] + b["tracks"]}
    assert names == {p.name for p in tagged_cuts[:5]}
    one = client.get(f"/api/tracks/{ids[0]}").json()
    assert one == a["tracks"][0] and one["duration_s"] == pytest.approx(30.0, abs=0.1)
    assert client.get("/api/tracks/999999").status_code == 404
    assert client.get("/api/tracks", params={"limit": 0}).status_code == 422


def test_editing_is_refused_without_a_configured_token(client, tagged_cuts):
    body = tagged_cuts[5].read_bytes()
    r = client.post("/api/tracks", files={"file": ("new.flac", body)}, headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403 and "SONGMINE_TOKEN" in r.json()["detail"]
    assert client.delete("/api/tracks/1").status_code == 403
    assert client.get("/api/health").json()["editing"] is False


@pytest.fixture
def writable(server_index, tmp_path):
    """A copy of the index served with a token (edits must not leak into other tests)."""
    path = tmp_path / "index"
    shutil.copytree(server_index, path)
    s = ServerSettings(index_path=path, token=TOKEN, refresh_interval_s=0)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        yield c, s


def test_add_identify_and_remove_a_track(writable, tagged_cuts):
    c, s = writable
    auth = {"Authorization": f"Bearer {TOKEN}"}
    new = tagged_cuts[5]
    probe = clip(new, offset=4.0, duration=10.0, fmt="webm")
    assert c.post("/api/identify", files={"file": ("p.webm", probe)}).json()["matches"] == []

    assert c.post("/api/tracks", files={"file": ("new.flac", new.read_bytes())}).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    r = c.post("/api/tracks", files={"file": ("new.flac", new.read_bytes())}, headers=bad)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")

    r = c.post("/api/tracks", files={"file": ("../../new.flac", new.read_bytes())}, headers=auth)
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["created"] is True and added["track"]["title"].endswith("(cut 5)")
    stored = Path(added["track"]["path"])
    assert stored.parent == s.track_dir.resolve() and stored.suffix == ".flac" and "new" not in stored.name
    assert c.get("/api/health").json()["n_tracks"] == 6
    listed = c.get("/api/tracks", params={"limit": 500}).json()  # the list follows the snapshot
    assert listed["total"] == 6 and listed["tracks"][-1] == added["track"]

    best = c.post("/api/identify", files={"file": ("p.webm", probe)}).json()["matches"][0]
    assert best["track_id"] == added["track"]["id"] and abs(best["offset_s"] - 4.0) < 0.3

    again = c.post("/api/tracks", files={"file": ("same.flac", new.read_bytes())}, headers=auth)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["track"]["id"] == added["track"]["id"]

    r = c.post("/api/tracks", files={"file": ("x.txt", b"not audio" * 100)}, headers=auth)
    assert r.status_code == 415

    tid = added["track"]["id"]
    assert c.delete(f"/api/tracks/{tid}", headers=bad).status_code == 401
    assert c.delete(f"/api/tracks/{tid}", headers=auth).status_code == 204
    assert not stored.exists()
    assert c.get(f"/api/tracks/{tid}").status_code == 404
    assert c.delete(f"/api/tracks/{tid}", headers=auth).status_code == 404
    assert c.post("/api/identify", files={"file": ("p.webm", probe)}).json()["matches"] == []
    assert c.get("/api/health").json()["n_tracks"] == 5
    assert tid not in [t["id"] for t in c.get("/api/tracks", params={"limit": 500}).json()["tracks"]]


def test_queries_during_a_write_see_the_old_or_the_new_library_never_a_mix(writable, tagged_cuts):
    """Readers keep one snapshot; the writer swaps a fresh one in only after its commit."""
    c, _ = writable
    holder = c.app.state.holder
    before = holder.snapshot()
    n_before = before.n_tracks
    queries = [clip(tagged_cuts[i], offset=3.0 + i, duration=8.0, fmt="wav") for i in range(5)]
    results: list = []
    errors: list = []
    stop = threading.Event()

    def reader(i: int) -> None:
        while not stop.is_set():
            r = c.post("/api/identify", files={"file": (f"q{i}.wav", queries[i])})
            if r.status_code != 200:
                errors.append(r.text)
                return
            results.append((i, r.json()))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    r = c.post(
        "/api/tracks",
        files={"file": ("new.flac", tagged_cuts[5].read_bytes())},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    stop.set()
    for t in threads:
        t.join()
    assert r.status_code == 201, r.text
    assert not errors
    assert len(results) >= 3
    for i, rec in results:  # every query during the write found its track at the right place
        assert Path(rec["matches"][0]["path"]).name == tagged_cuts[i].name
        assert abs(rec["matches"][0]["offset_s"] - (3.0 + i)) < 0.3
    # the snapshot taken before the write was never mutated; the new one has the track
    assert before.n_tracks == n_before
    assert holder.snapshot() is not before and holder.snapshot().n_tracks == n_before + 1


# --- service ----------------------------------------------------------------------------------


def test_health_openapi_and_page(client):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["n_tracks"] == 5 and h["max_upload_bytes"] == 20 << 20
    spec = client.get("/openapi.json").json()
    assert {"/api/identify", "/api/tracks", "/api/tracks/{track_id}", "/api/health"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/identify"]["post"]["requestBody"]["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI works offline: its assets come from this server, not a CDN.
    assert "cdn." not in docs.text and "https://" not in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in docs.text
        r = client.get(f"/static-offline-docs/{asset}")
        assert r.status_code == 200 and len(r.content) > 10_000
    page = client.get("/")
    assert page.status_code == 200 and "songmine" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "app.css", "favicon.svg"):
        assert client.get(f"/static/{name}").status_code == 200
    for bad in ("/static/app.py", "/static/..%2fapp.py", "/static/%2e%2e/settings.py", "/etc/passwd"):
        assert client.get(bad).status_code == 404
    assert (
        "access-control-allow-origin"
        not in client.get("/api/health", headers={"Origin": "https://evil.example"}).headers
    )
    for r in (client.get("/api/health"), page, client.get("/api/tracks/999"), client.post("/api/identify")):
        assert r.headers["x-content-type-options"] == "nosniff", r.url


def test_cors_when_configured(server_index):
    s = ServerSettings(index_path=server_index, cors_origins=("https://ok.example",), refresh_interval_s=0)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        ok = c.get("/api/health", headers={"Origin": "https://ok.example"})
        assert ok.headers["access-control-allow-origin"] == "https://ok.example"
        assert (
            "access-control-allow-origin"
            not in c.get("/api/health", headers={"Origin": "https://evil.example"}).headers
        )


def test_missing_index_fails_at_start_and_serve_says_so(tmp_path, capsys):
    import importlib.util

    from conftest import need

    need(
        importlib.util.find_spec("songmine.fingerprint.index") is not None,
        "songmine.fingerprint.index not available yet",
    )
    from songmine.cli import main as _  # noqa: F401
    from songmine.cli._app import main

    with pytest.raises(Exception, match="no index"):
        with TestClient(create_app(ServerSettings(index_path=tmp_path / "nope")), base_url=LOCAL):
            pass
    assert main(["serve", "--index", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no index" in err
    assert main(["serve", "--index", str(tmp_path), "--tls-cert", str(tmp_path / "c.pem")]) == 2


def test_slow_body_is_408_and_oversized_declared_body_is_refused_unread(server_index, live_server):
    """Over a real socket: a client that stalls mid-body gets 408; a huge Content-Length gets 413 at once."""
    import socket
    import time
    from urllib.parse import urlsplit

    s = ServerSettings(index_path=server_index, upload_timeout_s=1.0, refresh_interval_s=0)
    with live_server(create_app(s)) as url:
        host, port = urlsplit(url).hostname, urlsplit(url).port

        def exchange(head: bytes, body: bytes, wait: float) -> bytes:
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.sendall(head + body)
                time.sleep(wait)
                return sock.recv(65536)

        head = b"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\n"
        t0 = time.monotonic()
        answer = exchange(head, b"RIFF" + bytes(996), 2.0)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"within 1 s" in answer and time.monotonic() - t0 < 8

        huge = b"POST /api/identify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/wav\r\nContent-Length: 999999999\r\n\r\n"
        answer = exchange(huge, b"", 0.3)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_tracks_added_by_another_writer_are_picked_up(server_index, tagged_cuts, tmp_path):
    """A `songmine index` run beside the server (another handle, same files) shows up after a refresh."""
    import time

    from songmine.fingerprint.index import Index, index_files

    path = tmp_path / "index"
    shutil.copytree(server_index, path)
    s = ServerSettings(index_path=path, refresh_interval_s=0.2)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        probe = clip(tagged_cuts[5], offset=6.0, duration=8.0, fmt="webm")
        assert c.post("/api/identify", files={"file": ("p.webm", probe)}).json()["matches"] == []
        with Index(path) as other:
            index_files(other, [tagged_cuts[5]], jobs=1)
        deadline = time.monotonic() + 20
        while c.get("/api/health").json()["n_tracks"] != 6:
            assert time.monotonic() < deadline, "the server never saw the other writer's track"
            time.sleep(0.1)
        best = c.post("/api/identify", files={"file": ("p.webm", probe)}).json()["matches"][0]
        assert Path(best["path"]).name == tagged_cuts[5].name


def test_a_commit_by_another_process_is_seen_by_the_next_request(server_index, tagged_cuts, tmp_path):
    """No waiting for a periodic refresh (off here): every request checks the catalogue's commit counter
    first, so a request that starts after another writer's commit sees its track."""
    from songmine.fingerprint.index import Index, index_files

    path = tmp_path / "index"
    shutil.copytree(server_index, path)
    s = ServerSettings(index_path=path, refresh_interval_s=0)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        probe = clip(tagged_cuts[5], offset=6.0, duration=8.0, fmt="wav")
        assert c.post("/api/identify", files={"file": ("p.wav", probe)}).json()["matches"] == []
        before = c.app.state.holder.snapshot()
        with Index(path) as other:
            index_files(other, [tagged_cuts[5]], jobs=1)
        best = c.post("/api/identify", files={"file": ("p.wav", probe)}).json()["matches"][0]
        assert Path(best["path"]).name == tagged_cuts[5].name
        assert c.get("/api/health").json()["n_tracks"] == 6
        assert c.get("/api/tracks?limit=500").json()["total"] == 6
        assert before.n_tracks == 5  # the old snapshot itself was left alone
        now = c.app.state.holder.snapshot()
        c.get("/api/health")
        assert c.app.state.holder.snapshot() is now  # nothing changed since: the same reader


def test_server_timing_reports_the_cpu_of_each_stage(server_index, tagged_cuts):
    body = clip(tagged_cuts[1], offset=4.0, duration=10.0, fmt="wav")
    s = ServerSettings(index_path=server_index, refresh_interval_s=0, server_timing=True)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        r = c.post("/api/identify", files={"file": ("q.wav", body)})
        assert r.status_code == 200 and Path(r.json()["matches"][0]["path"]).name == tagged_cuts[1].name
        stages = {}
        for part in r.headers["server-timing"].split(","):
            name, _, dur = part.strip().partition(";dur=")
            stages[name] = float(dur)
        assert set(stages) == {"receive", "decode", "resample", "fingerprint", "search", "respond"}
        assert all(v >= 0 for v in stages.values()) and stages["fingerprint"] > 0 and stages["decode"] > 0
    with TestClient(create_app(ServerSettings(index_path=server_index, refresh_interval_s=0)), base_url=LOCAL) as c:
        r = c.post("/api/identify", files={"file": ("q.wav", body)})
        assert r.status_code == 200 and "server-timing" not in r.headers  # off by default


def test_busy_server_answers_503_with_retry_after(server_index, tagged_cuts):
    s = ServerSettings(index_path=server_index, max_concurrent_queries=1, queue_timeout_s=0.2, refresh_interval_s=0)
    body = clip(tagged_cuts[0], offset=3, duration=5)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        slots = c.app.state.slots
        with slots:  # another identification holds the only slot
            r = c.post("/api/identify", files={"file": ("q.wav", body)})
            assert r.status_code == 503 and r.headers["retry-after"] == "2" and "busy" in r.json()["detail"]
        assert c.post("/api/identify", files={"file": ("q.wav", body)}).status_code == 200


def test_a_replaced_snapshot_is_let_go(writable, tagged_cuts):
    """After a write, nothing of the server keeps the old reader (it maps segment files a merge may
    have deleted): the per-snapshot track list went with it."""
    import gc
    import weakref

    c, _ = writable
    holder = c.app.state.holder
    assert c.get("/api/tracks").json()["total"] == 5  # lists the tracks of the current reader
    old = weakref.ref(holder.snapshot())
    r = c.post(
        "/api/tracks",
        files={"file": ("new.flac", tagged_cuts[5].read_bytes())},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 201
    gc.collect()
    assert old() is None
    assert c.get("/api/health").json()["n_tracks"] == 6


def test_start_up_recovery_beside_many_tracks_asks_about_each_stored_file_only(tmp_path):
    """Each worker's start checks every stored upload: beside 50,000 tracks, 20 uploads cost what they
    cost beside none (but for opening the fresh reader swapped in after); a stored file no track uses goes."""
    import hashlib
    import tracemalloc

    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.store import NewTrack
    from songmine.server import trackstore
    from songmine.server.state import IndexHolder

    empty = np.zeros(0, np.uint32)
    peaks, opens = {}, {}
    for n in (0, 50_000):
        folder = tmp_path / f"uploads{n}"
        folder.mkdir()
        stored = []
        for i in range(20):  # loop over uploads
            sha = hashlib.sha256(b"upload %d" % i).hexdigest()
            (folder / f"{sha[:24]}.flac").write_bytes(b"x")
            stored.append(
                NewTrack(str(folder.resolve() / f"{sha[:24]}.flac"), sha, 1, 0, 1.0, *[None] * 3, empty, empty)
            )
        orphan = folder / f"{'0' * 24}.flac"  # a stored file no track uses (a delete that died)
        orphan.write_bytes(b"y")
        path = tmp_path / f"ix{n}"
        others = [
            NewTrack(f"/elsewhere/{i}.ogg", hashlib.sha256(b"%d" % i).hexdigest(), 0, 0, 1.0, *[None] * 3, empty, empty)
            for i in range(n)
        ]
        with Index(path, create=True) as ix:
            ix._add_tracks(others + stored)
        holder = IndexHolder(lambda path=path: Index(path))
        try:
            with holder.writing():  # (the writer opened: not what is measured)
                pass
            tracemalloc.start()
            rec = trackstore.recover(holder, folder)
            peaks[n] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        finally:
            holder.close()
        tracemalloc.start()
        Index(path).close()  # what the fresh reader swapped in after the clean-up costs to open
        opens[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert (rec.removed, rec.published, rec.busy) == (1, 0, 0) and not orphan.exists()
        assert sorted(p.name for p in folder.iterdir()) == sorted(Path(t.path).name for t in stored)
    assert peaks[50_000] < peaks[0] + opens[50_000] + 2_000_000, (peaks, opens)  # a list of every track: 17 MB each
