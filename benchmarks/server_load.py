"""Bounded load test of ``songmine serve`` on loopback: /api/identify under concurrency, with a writer.

    PYTHONPATH=src python benchmarks/server_load.py [--clients 16] [--seconds 60] [--tracks 10]

1. Builds an index of ``--tracks`` files of a library (default: the dev corpus,
   else the demo corpus) in a temp dir; ``--writer-tracks`` more are kept
   aside for the writer.
2. Starts ``songmine serve`` in a subprocess on 127.0.0.1 (free port), with a token.
3. Reference, same run: the library call ``identify(index, y)`` in-process on
   the same clips (decoded once), then one HTTP client alone.
4. Load: ``--clients`` concurrent clients POST 10-s WebM/Opus clips (random
   offsets in indexed tracks) for ``--seconds``, while a writer POSTs the
   aside tracks to /api/tracks one after another. Every answer is checked
   (HTTP 200 and the right track first); RSS of the server is sampled.

Prints a table and a JSON line (with commit and machine). Timings on a shared
machine are noisy; the ratios against the reference measured in the same run
are the meaningful numbers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _common import git_commit, library_or_demo


def _webm(y: np.ndarray, sr: int) -> bytes:
    import av
    import soxr

    y48 = soxr.resample(y, sr, 48000).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as c:
        s = c.add_stream("libopus", rate=48000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y48[None, :], format="fltp", layout="mono")
        frame.sample_rate = 48000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", help="folder of audio (default: the demo music)")
    ap.add_argument("--tracks", type=int, default=10, help="tracks indexed before the run")
    ap.add_argument("--writer-tracks", type=int, default=4, help="tracks the writer adds during the run")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clip-s", type=float, default=10.0)
    ap.add_argument("--n-clips", type=int, default=24, help="distinct query clips (cycled)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    import httpx

    from songmine.audio import load
    from songmine.fingerprint.query import identify
    from songmine.fingerprint.index import Index, index_files
    from songmine.library import iter_audio_files

    rng = random.Random(args.seed)
    files = [Path(p) for p in iter_audio_files([library_or_demo(args.library)])]
    rng.shuffle(files)
    base, extra = files[: args.tracks], files[args.tracks : args.tracks + args.writer_tracks]
    work = Path(tempfile.mkdtemp(prefix="songmine-load-"))
    proc = None
    try:
        t0 = time.perf_counter()
        ix = Index(work / "index", create=True)
        rep = index_files(ix, base, jobs=1)
        t_index = time.perf_counter() - t0
        print(f"indexed {rep.added} tracks ({rep.audio_seconds / 60:.1f} min of audio) in {t_index:.1f} s", file=sys.stderr)
        tracks = ix.tracks()
        sr = ix.config.sr

        # query clips: 10 s at random offsets, encoded as the browser would (WebM/Opus)
        clips = []
        for k in range(args.n_clips):
            t = tracks[k % len(tracks)]
            off = rng.uniform(0, max(t.duration_s - args.clip_s - 1, 0))
            y = load(t.path, sr=22050, offset=off, duration=args.clip_s)
            clips.append((t.track_id, _webm(y, 22050), load(io.BytesIO(_webm(y, 22050)), sr=sr)))

        # reference 1: the library call in-process (decoded arrays, no HTTP, no decode)
        lib_ms = []
        for _ in range(2):
            for tid, _, y in clips:
                t1 = time.perf_counter()
                res = identify(ix, y, top=5)
                lib_ms.append(1000 * (time.perf_counter() - t1))
                assert res.matches and res.matches[0].track_id == tid, res
        ix.close()

        port = _free_port()
        token = "load-test-token"
        env = {**os.environ, "SONGMINE_TOKEN": token, "PYTHONPATH": os.pathsep.join(sys.path)}
        songmine = shutil.which("songmine") or str(Path(sys.executable).with_name("songmine"))
        proc = subprocess.Popen(
            [songmine, "serve", "--index", str(work / "index"), "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as c:
            for _ in range(300):
                try:
                    if c.get(url + "/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise SystemExit("server did not start: " + proc.stderr.read().decode()[-2000:])

        def post(client: httpx.Client, k: int) -> tuple[float, bool, int]:
            tid, body, _ = clips[k % len(clips)]
            t1 = time.perf_counter()
            r = client.post(url + "/api/identify", files={"file": ("clip.webm", body, "audio/webm")})
            ms = 1000 * (time.perf_counter() - t1)
            ok = r.status_code == 200 and bool(r.json()["matches"]) and r.json()["matches"][0]["track_id"] == tid
            return ms, ok, r.status_code

        # reference 2: one HTTP client alone (decode + identify + HTTP)
        single_ms = []
        with httpx.Client(timeout=60) as c:
            for k in range(len(clips)):
                ms, ok, st = post(c, k)
                assert ok, st
                single_ms.append(ms)

        # load: N clients + a writer, for a fixed time
        rss = [(0.0, _rss_mb(proc.pid))]
        lat: list[float] = []
        bad: list[tuple[int, int]] = []
        writes: list[tuple[float, int]] = []
        writer_done = [float("nan")]
        stop = threading.Event()
        lock = threading.Lock()

        def client_loop(i: int) -> None:
            k = i
            with httpx.Client(timeout=120) as c:
                while not stop.is_set():
                    try:
                        ms, ok, st = post(c, k)
                    except httpx.HTTPError as exc:
                        with lock:
                            bad.append((-1, k))
                        print(f"client {i}: {exc!r}", file=sys.stderr)
                        continue
                    with lock:
                        lat.append(ms)
                        if not ok:
                            bad.append((st, k))
                    k += args.clients

        def writer_loop() -> None:
            with httpx.Client(timeout=600, headers={"Authorization": f"Bearer {token}"}) as c:
                for p in extra:
                    if stop.is_set():
                        return
                    t1 = time.perf_counter()
                    r = c.post(url + "/api/tracks", files={"file": (p.name, p.read_bytes())})
                    writes.append((time.perf_counter() - t1, r.status_code))
            writer_done[0] = time.perf_counter() - t_start

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        wthread = threading.Thread(target=writer_loop)
        t_start = time.perf_counter()
        for t in threads:
            t.start()
        wthread.start()
        while time.perf_counter() - t_start < args.seconds:
            time.sleep(1.0)
            rss.append((time.perf_counter() - t_start, _rss_mb(proc.pid)))
        stop.set()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start
        wthread.join()
        rss.append((time.perf_counter() - t_start, _rss_mb(proc.pid)))
        with httpx.Client(timeout=10) as c:
            n_final = c.get(url + "/api/health").json()["n_tracks"]

        # RSS: warm-up quarter, then the query-only phase after the writer finished (growth there = a leak)
        vals = [v for _, v in rss]
        q = max(len(vals) // 4, 1)
        rss_early = statistics.median(vals[q : 2 * q] or vals)
        rss_late = statistics.median(vals[-q:])
        after = [(t, v) for t, v in rss if t >= writer_done[0]]
        post_s = after[-1][0] - after[0][0] if len(after) > 1 else 0.0
        post_growth = after[-1][1] - after[0][1] if len(after) > 1 else float("nan")
        res = {
            "commit": git_commit(),
            "machine": f"{platform.node()} {os.cpu_count()} cpu, load {os.getloadavg()[0]:.1f}",
            "tracks": len(tracks), "clients": args.clients, "seconds": round(wall, 1), "clip_s": args.clip_s,
            "requests": len(lat), "errors": len(bad), "throughput_rps": len(lat) / wall,
            "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "max_ms": max(lat) if lat else float("nan"),
            "single_p50_ms": _pct(single_ms, 50), "library_p50_ms": _pct(lib_ms, 50),
            "writes": [[round(s, 2), st] for s, st in writes], "n_tracks_end": n_final,
            "rss_mb_start": vals[0], "rss_mb_early": rss_early, "rss_mb_late": rss_late, "rss_mb_max": max(vals),
            "writer_done_s": writer_done[0], "query_only_s": post_s, "query_only_rss_growth_mb": post_growth,
        }
        print()
        print(f"| measure | value |\n|---|---|")
        print(f"| machine | {res['machine']} |")
        print(f"| index | {len(tracks)} tracks at start, {n_final} at end (writer added {sum(1 for _, s in writes if s in (200, 201))}) |")
        print(f"| load | {args.clients} clients × {wall:.0f} s, {args.clip_s:g}-s WebM/Opus clips |")
        print(f"| requests / errors | {len(lat)} / {len(bad)} |")
        print(f"| throughput | {res['throughput_rps']:.2f} req/s |")
        print(f"| latency p50 / p99 / max | {res['p50_ms']:.0f} / {res['p99_ms']:.0f} / {res['max_ms']:.0f} ms |")
        print(f"| reference: library identify() p50 (in-process, pre-decoded) | {res['library_p50_ms']:.1f} ms |")
        print(f"| reference: one HTTP client alone p50 (decode + identify + HTTP) | {res['single_p50_ms']:.1f} ms |")
        print(f"| p50 under load / one client alone | {res['p50_ms'] / res['single_p50_ms']:.1f}× |")
        print(f"| throughput × one-client latency (≈ busy workers; 2 cores) | {res['throughput_rps'] * res['single_p50_ms'] / 1000:.2f} |")
        print(f"| writer: POST /api/tracks | " + ", ".join(f"{s:.1f} s ({st})" for s, st in writes) + " |")
        print(f"| server RSS start / 2nd quarter / last quarter / max | {vals[0]:.0f} / {rss_early:.0f} / {rss_late:.0f} / {max(vals):.0f} MB |")
        if len(after) > 1:
            print(f"| RSS over the query-only phase after the writer ({post_s:.0f} s) | {after[0][1]:.0f} → {after[-1][1]:.0f} MB ({post_growth:+.0f} MB) |")
        print()
        print(json.dumps(res))
        return 0 if not bad else 1
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
