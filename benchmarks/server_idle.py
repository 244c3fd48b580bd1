"""Idle and slow clients against ``songmine serve``: do real clients keep getting answers?

    PYTHONPATH=src python benchmarks/server_idle.py --index IDX [--idle 300] [--slow 300] [--seconds 45]
        [--reopen] [--src OTHER/src] [--serve-arg=--header-timeout-s=10 ...]

1. Starts ``songmine serve --index IDX`` on 127.0.0.1 (free port) in a child
   process — this checkout, or the code under ``--src`` (e.g. an older
   revision exported with ``git archive``), with its defaults unless
   ``--serve-arg`` says otherwise.
2. Reference, same run: one client identifies ``--clip-s`` WAV clips cut
   from the index's own tracks, alone, ``--ref-requests`` times.
3. Attack: ``--idle`` connections that send nothing and ``--slow``
   connections that send a request line, then one header line every
   ``--slow-every`` seconds; with ``--reopen`` each attacker reconnects as
   soon as the server drops it (the pressure stays for the whole run).
   Meanwhile the same client identifies clips for ``--seconds``; every answer
   is checked (200 and the right track first).

Prints a table (client answers by status, latency against the reference,
how long the server took to drop attackers) and a JSON line. Exit 1 when a
client request failed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _common import cpu_seconds, git_commit, process_tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wav(y: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


class Attackers:
    """Idle and slow-header connections, watched from one thread: when and how the server ends each."""

    def __init__(self, addr: tuple[str, int], n_idle: int, n_slow: int, slow_every: float, reopen: bool):
        self.addr, self.slow_every, self.reopen = addr, slow_every, reopen
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.drops: list[tuple[str, float, bytes]] = []  # (kind, seconds open, first bytes received)
        self.open_failures = 0
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        for _ in range(n_idle):
            self._open("idle")
        for _ in range(n_slow):
            self._open("slow")
        self.threads = [
            threading.Thread(target=self._watch, daemon=True),
            threading.Thread(target=self._trickle, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _open(self, kind: str) -> None:
        try:
            s = socket.create_connection(self.addr, timeout=5)
        except OSError:
            self.open_failures += 1
            return
        if kind == "slow":
            try:
                s.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
            except OSError:
                pass
        s.setblocking(False)
        with self.lock:
            self.sel.register(s, selectors.EVENT_READ, {"kind": kind, "t": time.monotonic(), "got": b""})

    def _watch(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                ready = self.sel.select(timeout=0) if self.sel.get_map() else []
            if not ready:
                time.sleep(0.01)
                continue
            for key, _ in ready:
                s, d = key.fileobj, key.data
                try:
                    chunk = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    d["got"] += chunk
                    continue
                with self.lock:
                    self.sel.unregister(s)
                s.close()
                self.drops.append((d["kind"], time.monotonic() - d["t"], d["got"][:120]))
                if self.reopen and not self.stop.is_set():
                    self._open(d["kind"])

    def _trickle(self) -> None:
        while not self.stop.wait(self.slow_every):
            with self.lock:
                slow = [k.fileobj for k in self.sel.get_map().values() if k.data["kind"] == "slow"]
            for s in slow:
                try:
                    s.send(b"X-Slow: 1\r\n")
                except OSError:
                    pass

    def n_open(self) -> int:
        with self.lock:
            return len(self.sel.get_map())

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        with self.lock:
            for key in list(self.sel.get_map().values()):
                key.fileobj.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True, help="an index built by `songmine index` (its tracks give the clips)")
    ap.add_argument("--idle", type=int, default=300)
    ap.add_argument("--slow", type=int, default=300)
    ap.add_argument("--slow-every", type=float, default=1.0, help="seconds between a slow client's header lines")
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--reopen", action="store_true", help="attackers reconnect as soon as they are dropped")
    ap.add_argument("--clip-s", type=float, default=8.0)
    ap.add_argument("--n-clips", type=int, default=8)
    ap.add_argument("--ref-requests", type=int, default=16)
    ap.add_argument("--src", help="run the server from this source folder (PYTHONPATH) instead of this checkout")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra `songmine serve` argument (repeatable)")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    import httpx

    from songmine.audio import load
    from songmine.fingerprint.index import Index

    rng = random.Random(args.seed)
    with Index(args.index) as ix:
        tracks = ix.tracks()
    clips = []
    for k in range(args.n_clips):
        t = tracks[k % len(tracks)]
        off = rng.uniform(0, max(t.duration_s - args.clip_s - 1, 0))
        clips.append((t.track_id, _wav(load(t.path, sr=22050, offset=off, duration=args.clip_s), 22050)))

    port = _free_port()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(args.src).resolve()), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable,
        "-c",
        "from songmine.cli import main; main()",
        "serve",
        "--index",
        args.index,
        "--port",
        str(port),
        *args.serve_arg,
    ]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    attackers = None
    try:
        with httpx.Client(timeout=5) as c:
            for _ in range(600):
                try:
                    if c.get(url + "/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
            else:
                proc.poll()
        if proc.returncode is not None:
            log.seek(0)
            raise SystemExit("server did not start: " + log.read().decode(errors="replace")[-2000:])

        def identify(c: httpx.Client, k: int) -> tuple[float, str]:
            tid, body = clips[k % len(clips)]
            t1 = time.perf_counter()
            try:
                r = c.post(url + "/api/identify", files={"file": ("clip.wav", body, "audio/wav")})
            except httpx.HTTPError as exc:
                return 1000 * (time.perf_counter() - t1), type(exc).__name__
            ms = 1000 * (time.perf_counter() - t1)
            if r.status_code != 200:
                return ms, f"{r.status_code} {r.headers.get('content-type', '').split(';')[0]}"
            m = r.json()["matches"]
            return ms, "200 right" if m and m[0]["track_id"] == tid else "200 wrong"

        with httpx.Client(timeout=60) as c:
            ref = [identify(c, k) for k in range(args.ref_requests)]
        ref_ms = [ms for ms, st in ref if st == "200 right"]

        cpu0 = cpu_seconds(process_tree(proc.pid))
        attackers = Attackers(("127.0.0.1", port), args.idle, args.slow, args.slow_every, args.reopen)
        t_attack = time.monotonic() - attackers.t0
        results: list[tuple[float, float, str]] = []
        open_counts = []
        t_start = time.monotonic()
        with httpx.Client(timeout=60) as c:
            k = 0
            while time.monotonic() - t_start < args.seconds:
                ms, st = identify(c, k)
                results.append((time.monotonic() - t_start, ms, st))
                if st != "200 right":
                    time.sleep(0.2)  # as a client honouring Retry-After would, roughly
                open_counts.append(attackers.n_open())
                k += 1
        still_open = attackers.n_open()
        server_cpu = cpu_seconds(process_tree(proc.pid)) - cpu0
        attackers.close()
        drops = attackers.drops
        statuses = Counter(st for _, _, st in results)
        ok_ms = [ms for _, ms, st in results if st == "200 right"]
        first_bytes = Counter(
            (kind, got.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed, nothing sent)")
            for kind, _, got in drops
        )
        drop_s = {kind: [s for kd, s, _ in drops if kd == kind] for kind in ("idle", "slow")}
        res = {
            "commit": git_commit(),
            "server_src": args.src or "this checkout",
            "machine": f"{platform.node()} {os.cpu_count()} cpu, load {os.getloadavg()[0]:.1f}",
            "serve_args": args.serve_arg,
            "idle": args.idle,
            "slow": args.slow,
            "reopen": args.reopen,
            "seconds": args.seconds,
            "open_attackers_s": round(t_attack, 2),
            "requests": len(results),
            "statuses": dict(statuses),
            "ref_p50_ms": _pct(ref_ms, 50),
            "p50_ms": _pct(ok_ms, 50),
            "p99_ms": _pct(ok_ms, 99),
            "dropped": len(drops),
            "still_open_at_end": still_open,
            "attackers_open_median": statistics.median(open_counts) if open_counts else None,
            "drop_s_median": {k: (statistics.median(v) if v else None) for k, v in drop_s.items()},
            "drop_s_max": {k: (max(v) if v else None) for k, v in drop_s.items()},
            "first_line": {f"{k[0]}: {k[1]}": n for k, n in first_bytes.items()},
            "open_failures": attackers.open_failures,
            "server_cpu_s": round(server_cpu, 2),
            "drop_s_min": {k: (min(v) if v else None) for k, v in drop_s.items()},
        }
        n_ok = statuses.get("200 right", 0)
        print()
        print("| measure | value |\n|---|---|")
        print(
            f"| server | {res['server_src']} (commit of the benchmark {res['commit']}), args {args.serve_arg or 'defaults'} |"
        )
        print(f"| machine | {res['machine']} |")
        print(
            f"| attackers | {args.idle} idle + {args.slow} slow-header (a line every {args.slow_every:g} s)"
            f"{', reconnecting when dropped' if args.reopen else ''}; opened in {t_attack:.1f} s |"
        )
        print(
            f"| client requests under attack ({args.seconds:g} s) | {len(results)}: "
            + ", ".join(f"{n} × {st}" for st, n in statuses.most_common())
            + " |"
        )
        print(f"| client answered right | {n_ok} / {len(results)} ({100 * n_ok / max(len(results), 1):.0f} %) |")
        print(f"| reference: the client alone, p50 | {res['ref_p50_ms']:.0f} ms ({len(ref_ms)}/{len(ref)} right) |")
        if ok_ms:
            print(
                f"| under attack: p50 / p99 of right answers | {res['p50_ms']:.0f} / {res['p99_ms']:.0f} ms "
                f"({res['p50_ms'] / res['ref_p50_ms']:.2f}× alone) |"
            )
        for kind in ("idle", "slow"):
            v = drop_s[kind]
            if v:
                print(
                    f"| {kind} attackers dropped by the server | {len(v)}; open for min {min(v):.1f} / median "
                    f"{statistics.median(v):.1f} / max {max(v):.1f} s; {sum(x < 1.0 for x in v)} within 1 s |"
                )
            else:
                print(f"| {kind} attackers dropped by the server | 0 |")
        print(
            "| what the dropped attackers got | "
            + "; ".join(f"{k[0]}: {k[1]} × {n}" for k, n in first_bytes.most_common())
            + " |"
        )
        print(f"| attackers open at the end | {still_open} |")
        print(f"| server CPU during the attack | {server_cpu:.1f} s in {args.seconds:g} s |")
        print()
        print(json.dumps(res))
        return 0 if n_ok == len(results) else 1
    finally:
        if attackers is not None:
            attackers.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
