"""Load test of ``songmine serve`` on loopback: throughput, latency and where each request's CPU goes.

    PYTHONPATH=src python benchmarks/server_load.py [--library MUSIC] [--tracks 10] [--clients 16]
        [--seconds 60] [--clip-s 10] [--format wav] [--compare=--workers=1] [--rounds 2]
    PYTHONPATH=src python benchmarks/server_load.py [--library MUSIC] --soak 600 [--writer-every 10]
        [--writer-tracks 8] [--plot rss.png]
    ... --baseline OLD/src [--baseline-args=--workers=2]   (an older revision in the same run)

1. Indexes ``--tracks`` files of ``--library`` (a folder of audio; by default
   the demo music of ``songmine demo-corpus``) into a temp dir and cuts
   ``--n-clips`` query clips of ``--clip-s`` seconds at random offsets, encoded
   as ``--format`` (WAV as a program sends it, or WebM/Opus as browsers do).
2. Reference, same run: ``load()`` + ``identify()`` of the same clips in this
   process — the CPU a request costs without HTTP.
3. For each server configuration — ``songmine serve`` with its defaults, and
   each ``--compare`` (extra ``songmine serve`` arguments, e.g.
   ``--compare=--workers=1``), and the server of ``--baseline`` (another
   source tree) with each ``--baseline-args``, in turn, ``--rounds`` times (interleaved, so that
   a change in the machine's load hits every configuration alike):
   start it (its own session, as a service runs) with ``--server-timing``;
   one client alone sends ``--single-requests`` clips; then ``--clients``
   clients send clips back to back for ``--seconds``. Every answer is
   checked (200 and the right track first). The clients are plain sockets
   with prepared requests: the load generator's own CPU stays small (it is
   printed), as the machine's cores are the server's.
4. Prints, per configuration and phase: requests/s, p50/p95/p99 latency, the
   server's cores used and CPU per request, split into the stages the server
   measures (``Server-Timing``: receive, decode, resample, fingerprint,
   search, respond) and the rest (HTTP parsing, framework, thread hand-offs:
   the server processes' CPU less the stages); then a JSON line.

Soak (``--soak SECONDS``): the default server alone, ``--clients`` clients
for the whole time while a writer adds one track every ``--writer-every``
seconds (the library's other files, or the first ``--writer-tracks`` of
them; when all are in, it removes them and starts over: the index then
cycles instead of growing). The memory of every worker process is sampled
every ``--sample-every`` seconds — RSS, and apart its anonymous part (the
heaps: what a leak grows) and its file-backed part (the memory-mapped index,
which grows with the index, and libraries): a table (and ``--plot`` PNG)
over time per worker, with each worker's growth over the second half.

Timings on a shared machine are noisy: compare configurations within a run,
and CPU per request rather than requests/s; the machine's load average is
printed with every table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from _common import cpu_seconds, git_commit, library_or_demo, markdown_table, process_tree

STAGES = ("receive", "decode", "resample", "fingerprint", "search", "respond")
BOUNDARY = "songmine-load-7d1e"


# --- clips ---------------------------------------------------------------------------------------


def _encode(y: np.ndarray, sr: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "wav":
        import soundfile as sf

        sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
        return buf.getvalue()
    import av
    import soxr

    y48 = soxr.resample(y, sr, 48000).astype(np.float32)
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


def _request(path: str, body: bytes, filename: str, ctype: str, host: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 multipart POST, prepared once: sending it costs the client nothing."""
    part = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n"
        ).encode()
        + body
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(part)}\r\n\r\n"
    )
    return head.encode() + part


# --- a minimal keep-alive HTTP client ---------------------------------------------------------


class Conn:
    """One keep-alive connection; reconnects when the server closed it (``Connection: close``)."""

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""
        self.reconnects = 0

    def exchange(self, request: bytes, timeout: float = 120.0) -> tuple[int, dict[str, str], bytes]:
        reused = self.sock is not None
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
            self.buf = b""
            self.reconnects += 1
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(request)
            return self._response()
        except OSError as exc:
            self.close()
            if reused and not isinstance(exc, TimeoutError):  # the server closed an idle connection: once more
                return self.exchange(request, timeout)
            raise

    def _recv(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._recv()
        body, self.buf = self.buf[:n], self.buf[n:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def _timing(header: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


# --- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> tuple[float, float, float]:
    """RSS of ``pid`` in MB: total, anonymous (the heaps) and file-backed (the mapped index, libraries)."""
    out = {"VmRSS:": float("nan"), "RssAnon:": float("nan"), "RssFile:": float("nan")}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in out:
                    out[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out["VmRSS:"], out["RssAnon:"], out["RssFile:"]


def _workers(pid: int) -> list[int]:
    """The server's worker processes: the supervisor's children running songmine (or the server itself)."""
    kids = [p for p in process_tree(pid) if p != pid]
    out = []
    for p in kids:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if b"resource_tracker" not in cmd:
            out.append(p)
    return sorted(out) or [pid]


class Server:
    """``songmine serve`` in a child process (its own session), up once /api/health answers."""

    def __init__(self, index: Path, args: list[str], token: str, src: str | None = None):
        self.port = _free_port()
        self.log = tempfile.TemporaryFile()
        env = {**os.environ, "SONGMINE_TOKEN": token}
        if src is None:  # this checkout, which reports its stages
            exe = shutil.which("songmine", path=str(Path(sys.executable).parent)) or shutil.which("songmine")
            cmd = [exe, "serve", "--index", str(index), "--port", str(self.port), "--server-timing", *args]
        else:  # another source tree (an older revision): no stages
            env["PYTHONPATH"] = str(Path(src).resolve())
            cmd = [
                sys.executable,
                "-c",
                "import sys; from songmine.cli import main; sys.exit(main())",
                "serve",
                "--index",
                str(index),
                "--port",
                str(self.port),
                *args,
            ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log, start_new_session=True)
        health = f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode()
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"songmine serve {' '.join(args)} exited: {self.log.read()[-2000:]!r}")
            try:
                c = Conn(self.port)
                if c.exchange(health, timeout=5)[0] == 200:
                    c.close()
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 180:
                raise SystemExit("songmine serve did not answer within 180 s")
            time.sleep(0.2)
        time.sleep(1.0)  # every worker up (the first answer came from one of them)

    def cpu_s(self) -> float:
        return cpu_seconds(process_tree(self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


# --- phases --------------------------------------------------------------------------------------


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run_clients(
    server: Server,
    requests: list[tuple[int, bytes]],
    n_clients: int,
    *,
    seconds: float | None = None,
    total: int | None = None,
    stop: threading.Event | None = None,
) -> dict:
    """``n_clients`` clients send requests back to back (for ``seconds``, or ``total`` requests in all)."""
    lat: list[float] = []
    stages: dict[str, float] = defaultdict(float)
    timed = [0]
    errors: list[str] = []
    lock = threading.Lock()
    halt = stop or threading.Event()
    counter = iter(range(10**9))

    def client(i: int) -> None:
        conn = Conn(server.port)
        k = i
        while not halt.is_set():
            if total is not None:
                with lock:
                    if next(counter) >= total:
                        break
            tid, req = requests[k % len(requests)]
            k += n_clients
            t1 = time.perf_counter()
            try:
                status, headers, body = conn.exchange(req)
            except OSError as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.05)
                continue
            ms = 1000 * (time.perf_counter() - t1)
            ok = status == 200
            if ok:
                m = json.loads(body)["matches"]
                ok = bool(m) and m[0]["track_id"] == tid
            with lock:
                lat.append(ms)
                if not ok:
                    errors.append(f"{status} {body[:120]!r}")
                st = _timing(headers.get("server-timing"))
                if st:
                    timed[0] += 1
                    for name, v in st.items():
                        stages[name] += v
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n_clients)]
    cpu0, my0, t0 = server.cpu_s(), time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    if seconds is not None:
        halt.wait(seconds)
        halt.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu, mine = server.cpu_s() - cpu0, time.process_time() - my0
    n = len(lat)
    per = {k: v / max(timed[0], 1) for k, v in stages.items()}
    server_ms = 1000 * cpu / max(n, 1)
    return {
        "clients": n_clients,
        "requests": n,
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": round(wall, 1),
        "rps": n / wall,
        "p50_ms": _pct(lat, 50),
        "p95_ms": _pct(lat, 95),
        "p99_ms": _pct(lat, 99),
        "server_cores": cpu / wall,
        "server_cpu_ms": server_ms,
        "stages_ms": {k: per.get(k, 0.0) for k in STAGES},
        "rest_ms": server_ms - sum(per.get(k, 0.0) for k in STAGES),
        "client_cores": mine / wall,
        "load": os.getloadavg()[0],
    }


def _row(label: str, r: dict) -> list:
    st = r["stages_ms"]
    return [
        label,
        r["clients"],
        f"{r['rps']:.1f}",
        f"{r['p50_ms']:.0f}",
        f"{r['p95_ms']:.0f}",
        f"{r['p99_ms']:.0f}",
        f"{r['server_cores']:.2f}",
        f"{r['server_cpu_ms']:.1f}",
        *(f"{st[k]:.2f}" for k in STAGES),
        f"{r['rest_ms']:.2f}",
        r["errors"],
        f"{r['client_cores']:.2f}",
        f"{r['load']:.1f}",
    ]


HEADER = [
    "server",
    "clients",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "server cores",
    "CPU ms/req",
    *(f"{k} ms" for k in STAGES),
    "rest ms",
    "errors",
    "client cores",
    "load avg",
]


def _median_result(rs: list[dict]) -> dict:
    """Medians over rounds, field by field."""
    out = dict(rs[0])
    for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "server_cores", "server_cpu_ms", "rest_ms", "client_cores", "load"):
        out[k] = statistics.median(r[k] for r in rs)
    out["stages_ms"] = {s: statistics.median(r["stages_ms"][s] for r in rs) for s in STAGES}
    out["requests"] = sum(r["requests"] for r in rs)
    out["errors"] = sum(r["errors"] for r in rs)
    return out


# --- soak ----------------------------------------------------------------------------------------


def soak(args, index: Path, requests, extra: list[Path], token: str) -> dict:
    server = Server(index, [], token)
    try:
        stop = threading.Event()
        samples: list[tuple[float, dict[int, tuple[float, float, float]]]] = []
        writes: list[tuple[float, str, int]] = []
        result: dict = {}
        auth = f"Authorization: Bearer {token}\r\n"
        host = "localhost"

        def writer() -> None:
            conn = Conn(server.port)
            added: list[int] = []
            pool = extra[: args.writer_tracks] if args.writer_tracks else extra
            i = 0
            while not stop.wait(args.writer_every):
                if i == len(pool):  # all in: remove them, start over
                    for tid in added:
                        st = conn.exchange(f"DELETE /api/tracks/{tid} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())[
                            0
                        ]
                        writes.append((time.perf_counter() - t0, "delete", st))
                    added, i = [], 0
                    continue
                p = pool[i]
                i += 1
                req = _request("/api/tracks", p.read_bytes(), p.name, "application/octet-stream", host, auth)
                st, _, body = conn.exchange(req, timeout=600)
                writes.append((time.perf_counter() - t0, "add", st))
                if st in (200, 201):
                    added.append(json.loads(body)["track"]["id"])
            conn.close()

        def sampler() -> None:
            while True:
                samples.append((time.perf_counter() - t0, {w: _rss_mb(w) for w in _workers(server.proc.pid)}))
                if stop.wait(args.sample_every):
                    return

        t0 = time.perf_counter()
        threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=sampler, daemon=True)]
        for t in threads:
            t.start()
        result = run_clients(server, requests, args.clients, seconds=args.soak, stop=stop)
        stop.set()
        for t in threads:
            t.join()
        samples.append((time.perf_counter() - t0, {w: _rss_mb(w) for w in _workers(server.proc.pid)}))
    finally:
        server.stop()
    return {"load": result, "samples": samples, "writes": writes}


def _print_soak(res: dict, args) -> None:
    samples = res["samples"]
    pids = sorted({p for _, d in samples for p in d})
    names = {p: f"worker {i} ({p})" for i, p in enumerate(pids)}
    step = max(1, len(samples) // 20)

    def cell(d: dict, p: int) -> str:
        return "—" if p not in d else f"{d[p][0]:.0f} ({d[p][1]:.0f} + {d[p][2]:.0f})"

    rows = [[f"{t:.0f}", *(cell(d, p) for p in pids)] for t, d in samples[::step]]
    if (len(samples) - 1) % step:
        t, d = samples[-1]
        rows.append([f"{t:.0f}", *(cell(d, p) for p in pids)])
    markdown_table("RSS over time per worker, MB (anonymous + file-backed)", ["s", *(names[p] for p in pids)], rows)
    half = samples[len(samples) // 2 :]
    growth = []
    for p in pids:
        for k, kind in enumerate(("RSS", "anonymous", "file-backed")):
            pts = [(t, d[p][k]) for t, d in half if p in d and d[p][k] == d[p][k]]
            if len(pts) > 2:
                ts, vs = np.array(pts).T
                slope = np.polyfit(ts, vs, 1)[0] * 60
                growth.append(
                    [
                        names[p],
                        kind,
                        f"{pts[0][1]:.0f}",
                        f"{pts[-1][1]:.0f}",
                        f"{slope:+.2f}",
                        f"{max(v for _, v in pts):.0f}",
                    ]
                )
    markdown_table(
        "Memory over the second half", ["worker", "kind", "start MB", "end MB", "trend MB/min", "max MB"], growth
    )
    adds = sum(1 for _, k, s in res["writes"] if k == "add" and s in (200, 201))
    dels = sum(1 for _, k, s in res["writes"] if k == "delete" and s == 204)
    bad = [(k, s) for _, k, s in res["writes"] if s not in (200, 201, 204)]
    print(f"\nwriter: {adds} adds, {dels} removals, {len(bad)} failed {bad[:3]}")
    markdown_table("Load during the soak", HEADER, [_row("default (soak)", res["load"])])
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4))
        for p in pids:
            pts = [(t / 60, d[p][0]) for t, d in samples if p in d]
            line = ax.plot(*zip(*pts), label=names[p])[0]
            pts = [(t / 60, d[p][1]) for t, d in samples if p in d]
            ax.plot(*zip(*pts), color=line.get_color(), ls="--", label=f"{names[p]}, anonymous")
        for t, _kind, _size in res["writes"]:
            ax.axvline(t / 60, color="0.85", lw=0.6, zorder=0)
        ax.set_xlabel("minutes (grey: a track added or removed)")
        ax.set_ylabel("RSS, MB")
        ax.set_title(f"songmine serve, {args.clients} clients + a writer ({git_commit()})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", help="a folder of audio files (default: the demo music)")
    ap.add_argument("--tracks", type=int, default=10, help="tracks indexed before the run")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each load phase")
    ap.add_argument("--single-requests", type=int, default=40, help="requests of the one-client phase")
    ap.add_argument("--clip-s", type=float, default=10.0)
    ap.add_argument("--format", choices=("wav", "webm"), default="wav")
    ap.add_argument("--n-clips", type=int, default=24, help="distinct query clips (cycled)")
    ap.add_argument(
        "--compare",
        action="append",
        default=[],
        help="another server configuration: extra `songmine serve` arguments (repeatable)",
    )
    ap.add_argument(
        "--baseline",
        metavar="SRC",
        help="also serve from this source folder (e.g. an older revision exported with `git archive`)",
    )
    ap.add_argument(
        "--baseline-args",
        action="append",
        default=[],
        help="a configuration of the --baseline server: its extra arguments (repeatable; default: none)",
    )
    ap.add_argument("--rounds", type=int, default=1, help="each configuration this many times, interleaved")
    ap.add_argument("--soak", type=float, default=0.0, help="seconds of soak (default server, a writer adding tracks)")
    ap.add_argument("--writer-every", type=float, default=10.0, help="soak: seconds between two adds")
    ap.add_argument(
        "--writer-tracks",
        type=int,
        default=0,
        help="soak: the writer cycles over this many of the other files (default: all of them)",
    )
    ap.add_argument("--sample-every", type=float, default=5.0, help="soak: seconds between two RSS samples")
    ap.add_argument("--plot", help="soak: write the RSS plot to this PNG")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=None, help="processes for building the index")
    args = ap.parse_args(argv)

    from songmine.audio import load
    from songmine.fingerprint.index import Index, index_files
    from songmine.fingerprint.query import identify
    from songmine.library import iter_audio_files

    rng = random.Random(args.seed)
    library = library_or_demo(args.library)
    files = sorted(Path(p) for p in iter_audio_files([library]))
    if len(files) < args.tracks + (2 if args.soak else 0):
        raise SystemExit(f"{library}: {len(files)} audio files, fewer than --tracks {args.tracks} (+2 for a soak)")
    rng.shuffle(files)
    base, extra = files[: args.tracks], files[args.tracks :]
    work = Path(tempfile.mkdtemp(prefix="songmine-load-"))
    token = "load-test-token-0123456789"
    try:
        t0 = time.perf_counter()
        with Index(work / "index", create=True) as ix:
            rep = index_files(ix, base, jobs=args.jobs)
            tracks, sr = ix.tracks(), ix.config.sr
        print(
            f"indexed {rep.added} tracks ({rep.audio_seconds / 60:.1f} min of audio) in "
            f"{time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
        ctype = {"wav": "audio/wav", "webm": "audio/webm"}[args.format]
        clips = []
        for k in range(args.n_clips):
            t = tracks[k % len(tracks)]
            off = rng.uniform(0, max(t.duration_s - args.clip_s - 1, 0))
            clips.append(
                (t.track_id, _encode(load(t.path, sr=22050, offset=off, duration=args.clip_s), 22050, args.format))
            )

        # reference: the same clips decoded and identified in this process (no HTTP)
        with Index(work / "index") as ix:
            ref_ms = []
            for rep_i in range(2):
                for tid, body in clips:
                    c0 = time.process_time()
                    res = identify(ix, load(io.BytesIO(body), sr=sr, max_duration=60.0), top=5)
                    if rep_i:
                        ref_ms.append(1000 * (time.process_time() - c0))
                    assert res.matches and res.matches[0].track_id == tid, res
        ref = statistics.median(ref_ms)

        requests = [
            (tid, _request("/api/identify", body, f"clip.{args.format}", ctype, "localhost")) for tid, body in clips
        ]

        header = {
            "commit": git_commit(),
            "machine": f"{platform.node()}, {os.cpu_count()} CPUs",
            "load_start": os.getloadavg()[0],
            "tracks": len(tracks),
            "clip": f"{args.clip_s:g}-s {args.format}",
            "reference_cpu_ms": ref,
        }
        if args.soak:
            res = soak(args, work / "index", requests, extra, token)
            print(
                f"\nsoak: {args.soak:g} s, {args.clients} clients, a track added every {args.writer_every:g} s; "
                f"commit {header['commit']}; {header['machine']}, load average {os.getloadavg()[0]:.1f}"
            )
            _print_soak(res, args)
            print()
            print(
                json.dumps(
                    {
                        **header,
                        "soak": {**res, "samples": [[t, {str(k): v for k, v in d.items()}] for t, d in res["samples"]]},
                    }
                )
            )
            return 0 if res["load"]["errors"] == 0 else 1

        configs = [("default", [], None)] + [(c, shlex.split(c), None) for c in args.compare]
        if args.baseline:
            configs += [(f"baseline {c}".strip(), shlex.split(c), args.baseline) for c in args.baseline_args or [""]]
        results: dict[str, dict[str, list[dict]]] = {name: {"one": [], "load": []} for name, _, _ in configs}
        for rnd in range(args.rounds):
            for name, extra_args, src in configs:
                server = Server(work / "index", extra_args, token, src)
                try:
                    run_clients(server, requests, 1, total=6)  # warm the connection path
                    one = run_clients(server, requests, 1, total=args.single_requests)
                    many = run_clients(server, requests, args.clients, seconds=args.seconds)
                finally:
                    server.stop()
                results[name]["one"].append(one)
                results[name]["load"].append(many)
                print(
                    f"round {rnd + 1}, {name}: {many['rps']:.1f} req/s, p99 {many['p99_ms']:.0f} ms, "
                    f"{many['server_cpu_ms']:.1f} ms CPU/req, load {many['load']:.1f}",
                    file=sys.stderr,
                )
        rows = []
        for name, _, _ in configs:
            for phase in ("one", "load"):
                rows.append(_row(name, _median_result(results[name][phase])))
        print(
            f"\ncommit {header['commit']}; {header['machine']}; load average {header['load_start']:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end; index of {len(tracks)} tracks; {args.clip_s:g}-s {args.format} clips; "
            f"{args.rounds} round(s) of {args.seconds:g} s per configuration (medians)"
        )
        print(f"reference: load() + identify() in one process, no HTTP: {ref:.1f} ms CPU per clip")
        if args.baseline:
            print(f"baseline: the server of {args.baseline} (reports no stages: their columns are 0)")
        markdown_table(
            "Requests (CPU per request: the server's processes; stages as the server measured them)", HEADER, rows
        )
        print()
        print(json.dumps({**header, "results": results}))
        bad = sum(r["errors"] for v in results.values() for rs in v.values() for r in rs)
        return 0 if bad == 0 else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
