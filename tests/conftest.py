"""Shared fixtures: a seeded RNG, synthetic audio, and a few cuts of real music.

Real music comes from the demo corpus (``songmine demo-corpus``, run by
``make test`` first and cached in the per-user cache dir). When it cannot be
had, tests that need it skip with the reason — or **fail** when ``CI=true``,
so CI never passes by skipping what it should exercise.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

#: Packages only an extra may bring: never in the core install.
HEAVY_PACKAGES = frozenset(
    {
        "librosa",
        "numba",
        "llvmlite",
        "resampy",
        "pandas",
        "pyarrow",
        "scikit-learn",
        "matplotlib",
        "jinja2",
        "pyspark",
        "fastapi",
        "uvicorn",
        "pedalboard",
        "pyroomacoustics",
    }
)


def need(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI=true) unless ``condition`` holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str):
    """Import ``module`` (an optional extra's package) or skip — fail under CI=true."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        need(False, f"{module} is not installed ({exc}); make test installs every extra")


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: every test that draws numbers is reproducible."""
    return np.random.default_rng(seed=440)


def _tone_mix(sr: int, seconds: float, seed: int) -> np.ndarray:
    """A music-like synthetic signal: random notes (harmonic tones) with onsets, plus a little noise."""
    g = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    y = np.zeros(n, dtype=np.float64)
    note_len = int(0.25 * sr)
    for start in range(0, n, note_len):
        f0 = 110.0 * 2 ** (g.integers(0, 36) / 12)
        seg = slice(start, min(start + note_len, n))
        tt = t[seg] - t[start]
        env = np.exp(-4.0 * tt)
        for h in (1, 2, 3):
            y[seg] += env * np.sin(2 * np.pi * f0 * h * tt + g.uniform(0, 2 * np.pi)) / h
    y += 0.01 * g.standard_normal(n)
    return (0.3 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture
def synth_music():
    """``synth_music(sr, seconds, seed=0)`` → float32 mono music-like signal."""
    return lambda sr=11025, seconds=10.0, seed=0: _tone_mix(sr, seconds, seed)


@pytest.fixture
def tone():
    """``tone(freq, sr, seconds)`` → float32 sine at 0.5 amplitude."""

    def make(freq: float = 440.0, sr: int = 22050, seconds: float = 1.0) -> np.ndarray:
        t = np.arange(int(sr * seconds)) / sr
        return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


@pytest.fixture(scope="session")
def demo_corpus() -> Path:
    """Root of the cached demo corpus (``library/`` + ``manifest.csv``)."""
    from songmine.paths import demo_corpus_dir

    root = Path(os.environ.get("SONGMINE_DEMO_CORPUS", demo_corpus_dir()))
    need(
        (root / "manifest.csv").exists() and (root / ".complete").exists(),
        f"demo music not found in {root}: run `songmine demo-corpus` (make test does)",
    )
    return root


@pytest.fixture(scope="session")
def demo_tracks(demo_corpus):
    """Manifest rows of the demo corpus, as :class:`songmine.evaluation.democorpus.DemoTrack`."""
    from songmine.evaluation.democorpus import read_manifest

    return read_manifest(demo_corpus)


@pytest.fixture(scope="session")
def real_cuts(demo_corpus, demo_tracks) -> list[Path]:
    """Six real tracks (at least one per package) cut to 30 s, as cached FLAC files.

    Cut from 30 s in (past intros), at the file's native rate and channels.
    """
    import soundfile as sf

    from songmine.atomic import build_once
    from songmine.audio import info, load
    from songmine.paths import cache_dir

    # The folder is named for the decoder that cut them: when a change in songmine.audio changes a
    # cut's samples (2: an MP3 span's first frame after a seek decoded right), a warm cache is not
    # left behind with cuts a cold machine would not make.
    out = cache_dir() / "test-cuts-2"
    chosen, seen = [], set()
    for t in sorted(demo_tracks, key=lambda t: (t.package in seen, t.file)):
        if t.duration_s >= 75 and t.package not in seen:
            chosen.append(t)
            seen.add(t.package)
    for t in sorted(demo_tracks, key=lambda t: t.file):
        if len(chosen) >= 6:
            break
        if t.duration_s >= 75 and t not in chosen:
            chosen.append(t)

    def cut(src: Path):
        def write(tmp: Path) -> None:
            y = load(src, sr=None, mono=False, offset=30.0, duration=30.0)
            sf.write(tmp, y.T, info(src).sr, subtype="PCM_16")

        return write

    # several test processes start at once on a cold cache: each cut is built once, under a lock
    return [build_once(out / (Path(t.file).stem + ".30s.flac"), cut(t.path(demo_corpus))) for t in chosen[:6]]


# --- web service: a tagged library, its index, a live uvicorn ----------------------------------


@pytest.fixture(scope="session")
def tagged_cuts(real_cuts, tmp_path_factory) -> list[Path]:
    """The real cuts copied and tagged like a music library (title, artist, album)."""
    import shutil

    import mutagen

    out = tmp_path_factory.mktemp("tagged-cuts")
    paths = []
    for i, src in enumerate(real_cuts):
        dest = out / src.name
        shutil.copyfile(src, dest)
        package, _, stem = src.name.removesuffix(".30s.flac").partition("__")
        f = mutagen.File(dest)
        f["title"] = f"{stem.replace('_', ' ').title()} (cut {i})"
        f["artist"] = package
        f["album"] = "songmine test cuts"
        f.save()
        paths.append(dest)
    return paths


@pytest.fixture(scope="session")
def server_index(tagged_cuts, tmp_path_factory) -> Path:
    """An index of the first five tagged cuts (the sixth stays out, to add over HTTP)."""
    import importlib.util

    need(
        importlib.util.find_spec("songmine.fingerprint.index") is not None,
        "songmine.fingerprint.index not available",
    )
    from songmine.fingerprint.index import Index, index_files

    path = tmp_path_factory.mktemp("server") / "index"
    with Index(path, create=True) as ix:
        report = index_files(ix, tagged_cuts[:5], jobs=1)
    assert report.added == 5 and not report.failed, report
    return path


#: Base URL for TestClient: the app answers only Host names on its allow-list (localhost by default).
LOCAL = "http://localhost"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def run_uvicorn(app, *, sndbuf: int | None = None, peers=None):
    """``with run_uvicorn(app) as url:`` runs uvicorn on 127.0.0.1:<free port> in a thread.

    With the connection layer ``songmine serve`` uses (its protocol, deadlines and caps from the app's
    settings). ``sndbuf`` fixes the kernel send buffer of every connection (a slow network in small).
    ``peers``: the worker's slot in a load table (the one the app was created with), as a worker has it.
    """
    import socket
    import threading
    import time

    import uvicorn

    from songmine.server.protocol import uvicorn_options

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sndbuf is not None:  # accepted connections inherit it (and lose the kernel's auto-tuning)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(app.state.settings, peers=peers)
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - t0 > 30:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.fixture
def live_server():
    """``with live_server(app) as url:`` — :func:`run_uvicorn` as a fixture."""
    return run_uvicorn


@contextmanager
def songmine_serve(index: Path, *args: str, env: dict | None = None):
    """``with songmine_serve(index, "--header-timeout-s", "2") as (url, proc):`` — a real ``songmine serve``
    child process on 127.0.0.1:<free port>, up once /api/health answers; stopped (SIGTERM) afterwards.

    Its output goes to a temp file (a pipe nobody reads would block it), shown if it fails to start.
    """
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request

    exe = shutil.which("songmine", path=str(Path(sys.executable).parent)) or shutil.which("songmine")
    port = free_port()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [exe, "serve", "--index", str(index), "--port", str(port), *args],
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=out,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            t0 = time.monotonic()
            while True:
                if proc.poll() is not None:
                    out.seek(0)
                    raise RuntimeError(f"songmine serve exited with {proc.returncode}: {out.read()[-2000:]!r}")
                try:
                    with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() - t0 > 60:
                    raise RuntimeError("songmine serve did not answer within 60 s")
                time.sleep(0.1)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# --- decoding in a child process: a crash or a hang fails a test instead of killing pytest -------

_DECODE_CHILD = r"""
import json, sys
import numpy as np
from songmine import audio
from songmine.errors import DecodeError
for job in json.loads(sys.argv[1]):
    try:
        y = audio.load(job["path"], **job["kwargs"])
    except DecodeError as exc:
        y = np.array(exc.reason)
    np.save(job["out"], y)
"""


@pytest.fixture
def decode_in_child(tmp_path):
    """``decode_in_child([(path, kwargs), ...], timeout=60)`` → one result per job, each decoded by
    :func:`songmine.audio.load` in one child process: the array, or the ``DecodeError`` reason (str).

    The child's death by a signal or a timeout fails the calling test with its stderr.
    """
    import json
    import subprocess
    import sys

    def run(jobs, timeout: float = 60.0) -> list:
        spec = [
            {"path": str(p), "kwargs": kw, "out": str(tmp_path / f"decoded-{i}.npy")} for i, (p, kw) in enumerate(jobs)
        ]
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _DECODE_CHILD, json.dumps(spec)], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"decoding did not finish in {timeout:g} s: {[str(p) for p, _ in jobs]}")
        assert proc.returncode == 0, f"decoding child exited with {proc.returncode}:\n{proc.stderr[-3000:]}"
        out = [np.load(s["out"]) for s in spec]
        return [str(y) if y.dtype.kind == "U" else y for y in out]

    return run


def encode_av_frames(
    path,
    y: np.ndarray,
    sr: int,
    codec: str,
    *,
    fmt: str | None = None,
    layout: str | None = None,
    options: dict | None = None,
    bit_rate: int | None = None,
    sample_fmt: str | None = None,
) -> None:
    """Encode float32 ``y`` of shape ``(channels, n)`` with an FFmpeg encoder through PyAV.

    Frames are built packed (``flt``, one buffer whatever the channel count) and converted to
    the encoder's format by FFmpeg (``sample_fmt``, else its first); ``layout`` defaults to
    mono/stereo, else ``"<n> channels"``.
    """
    import av

    ch = y.shape[0]
    layout = layout or {1: "mono", 2: "stereo"}.get(ch, f"{ch} channels")
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sr, options=options or {})
        ctx = stream.codec_context
        ctx.layout = layout
        if bit_rate:
            ctx.bit_rate = bit_rate
        if sample_fmt:
            ctx.format = sample_fmt
        to_codec = av.AudioResampler(format=ctx.format.name, layout=layout, rate=sr)
        step = ctx.frame_size or 1024
        for i in range(0, y.shape[1], step):  # loop over codec frames
            packed = np.ascontiguousarray(y[:, i : i + step].T, dtype=np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
            frame.sample_rate = sr
            for f in to_codec.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
