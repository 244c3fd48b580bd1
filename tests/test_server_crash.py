"""``POST /api/tracks`` survives ``kill -9``: after the next start, the upload folder and the index agree.

A real ``songmine serve`` process is killed (SIGKILL) at controlled points of
an add — while the body streams in, and while the stored file is being
indexed — then started again; the states a kill between the commit and the
publish leaves are laid out with the real index, and the server started on
them. After each start: every file in the upload folder belongs to a live
track, every track stored there has its file, and no temp file is left (in
the folder or in ``TMPDIR``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from conftest import require  # noqa: E402

require("fastapi")

import httpx  # noqa: E402
from conftest import songmine_serve  # noqa: E402

from songmine.fingerprint.index import Index, index_files  # noqa: E402

pytestmark = pytest.mark.corpus

TOKEN = "crash-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def setup(server_index, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(server_index, index)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return index, index / "uploads", tmpdir, {"SONGMINE_TOKEN": TOKEN, "TMPDIR": str(tmpdir)}


@pytest.fixture(scope="module")
def long_track(tagged_cuts, tmp_path_factory) -> Path:
    """Five minutes of real music not in the index (the sixth cut, ten times): indexing it takes a while."""
    import soundfile as sf

    y, sr = sf.read(tagged_cuts[5], dtype="float32")
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.concatenate([y] * 10), sr, subtype="PCM_16")
    return path


def _sha(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def assert_consistent(index: Path, tmpdir: Path) -> list:
    """Every file in uploads/ is a live track's, every track stored there has its file; no temp files."""
    folder = (index / "uploads").resolve()
    with Index(index) as ix:
        tracks = ix.tracks()
    files = {str(p) for p in folder.iterdir()} if folder.is_dir() else set()
    stored = {t.path for t in tracks if Path(t.path).parent == folder}
    assert files == stored, f"files without a track: {files - stored}; tracks without a file: {stored - files}"
    assert all(not Path(p).name.startswith(".") for p in stored)
    assert list(tmpdir.iterdir()) == []
    return tracks


def _kill_when(proc, predicate, timeout: float = 60.0) -> None:
    """SIGSTOP the server the moment ``predicate()`` holds, then SIGKILL it."""
    t0 = time.monotonic()
    while not predicate():
        assert proc.poll() is None, "the server exited by itself"
        assert time.monotonic() - t0 < timeout, "the controlled point was never reached"
        time.sleep(0.001)
    os.kill(proc.pid, signal.SIGSTOP)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_kill_while_the_added_file_is_being_indexed(setup, long_track):
    index, folder, tmpdir, env = setup
    with songmine_serve(index, env=env) as (url, proc):
        answer: list = []

        def add() -> None:
            try:
                with httpx.Client(timeout=120) as c:
                    answer.append(
                        c.post(
                            url + "/api/tracks", files={"file": ("long.flac", long_track.read_bytes())}, headers=AUTH
                        ).status_code
                    )
            except httpx.HTTPError as exc:
                answer.append(exc)

        t = threading.Thread(target=add)
        t.start()
        # the body is complete and stored under a name of its own: indexing starts now
        _kill_when(proc, lambda: any(not n.endswith(".part") for n in _files(folder)))
        t.join()
    assert isinstance(answer[0], httpx.HTTPError), answer
    with Index(index) as ix:
        assert ix.n_tracks == 5  # killed before the commit
    assert _files(folder) or list(tmpdir.iterdir())  # the kill left something behind

    with songmine_serve(index, env=env) as (url, _):  # the next start cleans up
        assert_consistent(index, tmpdir)
        with httpx.Client(timeout=120) as c:  # and the same add now goes through
            r = c.post(url + "/api/tracks", files={"file": ("long.flac", long_track.read_bytes())}, headers=AUTH)
            assert r.status_code == 201, r.text
            path = Path(r.json()["track"]["path"])
    tracks = assert_consistent(index, tmpdir)
    assert len(tracks) == 6 and path.parent == folder.resolve() and path.name.startswith(_sha(long_track)[:24])


def test_kill_while_the_body_streams_in(setup, tagged_cuts):
    index, folder, tmpdir, env = setup
    body = tagged_cuts[5].read_bytes()
    with songmine_serve(index, env=env) as (url, proc):
        u = urlsplit(url)
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(
            b"POST /api/tracks HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/flac\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        _kill_when(proc, lambda: bool(_files(folder) or list(tmpdir.iterdir())))
        sock.close()
    with songmine_serve(index, env=env):
        assert_consistent(index, tmpdir)
    assert _files(folder) == []


def _commit_staged(index: Path, src: Path, name: str) -> Path:
    """What a kill right after the commit leaves: the file indexed under its temporary name."""
    folder = index / "uploads"
    folder.mkdir(exist_ok=True)
    staged = folder / name
    shutil.copyfile(src, staged)
    with Index(index) as ix:
        assert index_files(ix, [staged], jobs=1).added == 1
    return staged.resolve()


def test_a_committed_but_unpublished_add_is_finished_at_start(setup, tagged_cuts):
    index, folder, tmpdir, env = setup
    staged = _commit_staged(index, tagged_cuts[5], ".upload-dead1.flac")
    with songmine_serve(index, env=env):
        tracks = assert_consistent(index, tmpdir)
    final = folder.resolve() / f"{_sha(tagged_cuts[5])[:24]}.flac"
    assert final.is_file() and not staged.exists() and str(final) in {t.path for t in tracks}


def test_a_lost_path_update_is_finished_at_start(setup, tagged_cuts):
    index, folder, tmpdir, env = setup
    staged = _commit_staged(index, tagged_cuts[5], ".upload-dead2.flac")
    final = folder.resolve() / f"{_sha(tagged_cuts[5])[:24]}.flac"
    os.replace(staged, final)  # renamed; the kill came before the index heard of it
    with songmine_serve(index, env=env):
        tracks = assert_consistent(index, tmpdir)
    assert str(final) in {t.path for t in tracks}


def test_leftovers_go_but_a_file_in_use_stays(setup, tagged_cuts):
    index, folder, tmpdir, env = setup
    folder.mkdir()
    sha = _sha(tagged_cuts[5])
    shutil.copyfile(tagged_cuts[5], folder / f"{sha[:24]}.flac")  # stored, never indexed (an older version's dead add)
    shutil.copyfile(tagged_cuts[5], folder / f"{sha[:24]}.flac.part")  # an older version's copy temp
    (folder / ".upload-dead3.part").write_bytes(b"half a body")
    (folder / "notes.txt").write_text("not ours: never touched")
    live = folder / ".upload-live.part"  # another worker is receiving this one right now
    live.write_bytes(b"RIFF")
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with songmine_serve(index, env=env):
            pass
        assert _files(folder) == [".upload-live.part", "notes.txt"]
    finally:
        os.close(fd)


def test_a_second_server_starting_leaves_a_live_upload_alone(setup, tagged_cuts):
    """Two processes on one index (``--workers 2``, or a restart beside a running one): the start-up
    clean-up of the second skips the file the first is still receiving."""
    index, folder, tmpdir, env = setup
    body = tagged_cuts[5].read_bytes()
    with songmine_serve(index, env=env) as (url, _):
        u = urlsplit(url)
        sock = socket.create_connection((u.hostname, u.port))
        sock.sendall(
            b"POST /api/tracks HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/flac\r\n"
            + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        t0 = time.monotonic()
        while not _files(folder):
            assert time.monotonic() - t0 < 30
            time.sleep(0.01)
        receiving = _files(folder)
        with songmine_serve(index, env=env):
            assert _files(folder) == receiving
        sock.sendall(body[len(body) // 2 :])
        sock.settimeout(60)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    tracks = assert_consistent(index, tmpdir)
    assert len(tracks) == 6


def test_a_clean_up_between_an_uploads_creation_and_its_lock_loses_nothing(setup, tagged_cuts, monkeypatch):
    """A worker starting (its clean-up) while another creates an upload's temp file: the clean-up can
    find the new file not yet locked and delete it. The upload then starts over with a new file, and
    the add goes through."""
    import tempfile

    from conftest import LOCAL
    from fastapi.testclient import TestClient

    from songmine.server import ServerSettings, create_app, trackstore
    from songmine.server.state import IndexHolder

    index, folder, tmpdir, env = setup
    real_mkstemp = tempfile.mkstemp
    cleaned = []

    def mkstemp_then_another_workers_clean_up(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        if Path(name).parent == folder.resolve() and not cleaned:  # the first upload file, before its lock
            other = IndexHolder(lambda: Index(index))
            cleaned.append(trackstore.recover(other, folder))
            other.close()
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_another_workers_clean_up)
    s = ServerSettings(index_path=index, token=TOKEN, refresh_interval_s=0)
    with TestClient(create_app(s), base_url=LOCAL) as c:
        r = c.post("/api/tracks", files={"file": ("new.flac", tagged_cuts[5].read_bytes())}, headers=AUTH)
    assert cleaned and cleaned[0].removed == 1  # the clean-up did take the fresh file
    assert r.status_code == 201, r.text
    tracks = assert_consistent(index, tmpdir)
    assert len(tracks) == 6
