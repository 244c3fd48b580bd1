"""``songmine serve`` on an index: how long until it answers, and its memory before and after queries.

Each round starts ``songmine serve --index P`` on 127.0.0.1 (a free port)
as a fresh process, polls ``GET /api/health`` every 10 ms and records the
wall time from the spawn to the first 200 and the server's CPU seconds by
then, its workers' included (imports included: the first ``--index`` given,
e.g. a small index, is the reference for what the imports and the web stack
cost). Then it reads the memory of the server's processes (the supervisor and
its workers, ``/proc/PID/smaps_rollup``): PSS summed (a page several of them
map counts once: the memory-mapped segments, shared with every process
mapping them and dropped by the kernel under pressure), anonymous (private)
memory summed, and how many processes; it
POSTs ``--clips`` 10-s WAV clips of the library to ``/api/identify`` (each
must answer 200), and reads the memory again. The segment files are read
once first (a warm page cache: a server restarting, not a cold disk)::

    PYTHONPATH=src nice -n 10 python benchmarks/server_open.py --index small.idx --index large.idx \\
        --library LIBRARY --rounds 3
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import cpu_seconds, git_commit, markdown_table, process_memory, process_tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(pid: int) -> dict[str, float]:
    """The server's memory, MB: the supervisor and its workers together (PSS: a page shared by
    several counts once), their private (anonymous) memory, and how many processes."""
    pids = process_tree(pid)
    mem = [process_memory(p) for p in pids]
    return {
        "PSS": sum(m[0] for m in mem),
        "RSS": sum(m[1] for m in mem),
        "anon": sum(m[2] for m in mem),
        "processes": float(len([m for m in mem if m[1] > 0])),
    }


def _warm(path: Path) -> None:
    for f in [*sorted((path / "segments").iterdir()), path / "catalog.sqlite"]:
        with open(f, "rb") as fh:
            while fh.read(1 << 26):
                pass


def _clips(library: Path, n: int, seed: int) -> list[bytes]:
    """``n`` 10-s clips of the library's files as 16-bit WAV."""
    import soundfile as sf

    from songmine import audio
    from songmine.library import iter_audio_files

    files = sorted(iter_audio_files([library]))
    rng = np.random.default_rng(seed)
    out = []
    for f in rng.choice(len(files), size=min(n, len(files)), replace=False):  # loop over clips
        start = float(rng.uniform(0, max(audio.info(files[f]).duration_s - 10.0, 0)))
        y = audio.load(files[f], sr=22050, offset=start, duration=10.0)
        buf = io.BytesIO()
        sf.write(buf, y, 22050, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def one_round(index: Path, clips: list[bytes]) -> dict:
    """Start a server on ``index``, time it to its first answer, query it, stop it."""
    import httpx

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable,
        "-c",
        "from songmine.cli import main; main()",
        "serve",
        "--index",
        str(index),
        "--port",
        str(port),
    ]
    log = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    try:
        with httpx.Client(timeout=5) as c:
            while True:
                try:
                    if c.get(url + "/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.perf_counter() - t0 > 600:
                    log.seek(0)
                    raise SystemExit(f"server on {index} did not start: " + log.read().decode(errors="replace")[-2000:])
                time.sleep(0.01)
        out = {
            "ready_s": time.perf_counter() - t0,
            "ready_cpu_s": cpu_seconds(process_tree(proc.pid)),
            "ready": _status(proc.pid),
        }
        ms = []
        with httpx.Client(timeout=120) as c:
            for body in clips:  # loop over clips
                t1 = time.perf_counter()
                r = c.post(url + "/api/identify", files={"file": ("clip.wav", body, "audio/wav")})
                ms.append(1e3 * (time.perf_counter() - t1))
                if r.status_code != 200:
                    raise SystemExit(f"{index}: /api/identify answered {r.status_code}: {r.text[:300]}")
        out["queried"] = _status(proc.pid)
        out["query_ms"] = float(np.median(ms)) if ms else float("nan")
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", type=Path, action="append", required=True, help="an index (repeatable)")
    ap.add_argument("--library", type=Path, required=True, help="audio files to cut 10-s query clips from")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3, help="fresh servers per index (medians)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from songmine.fingerprint.index import Index

    clips = _clips(args.library, args.clips, args.seed)
    rows = []
    for path in args.index:  # loop over indexes
        with Index(path) as ix:
            desc = (
                f"{path.name} ({ix.duration_s / 3600:,.1f} h, {ix.n_tracks:,} tracks, {ix.n_segments} seg, "
                f"{ix.size_bytes / 1e9:.2f} GB)"
            )
        _warm(path)
        rs = [one_round(path, clips) for _ in range(args.rounds)]

        def med(f):
            return float(np.median([f(r) for r in rs]))

        rows.append(
            [
                desc,
                f"{med(lambda r: r['ready_s']):.2f}",
                f"{med(lambda r: r['ready_cpu_s']):.2f}",
                f"{med(lambda r: r['ready']['processes']):.0f}",
                f"{med(lambda r: r['ready']['PSS']):.0f}",
                f"{med(lambda r: r['ready']['anon']):.0f}",
                f"{med(lambda r: r['query_ms']):.0f}",
                f"{med(lambda r: r['queried']['processes']):.0f}",
                f"{med(lambda r: r['queried']['PSS']):.0f}",
                f"{med(lambda r: r['queried']['anon']):.0f}",
            ]
        )
    markdown_table(
        f"songmine serve: spawn to first /api/health answer, then {args.clips} POST /api/identify of 10-s "
        f"WAV clips; medians of {args.rounds} fresh servers; songmine {git_commit()}, load "
        f"{os.getloadavg()[0]:.1f}",
        [
            "index",
            "ready s (wall)",
            "ready CPU s",
            "processes",
            "PSS MB",
            "anon MB",
            "query ms (wall)",
            "processes after",
            "PSS after MB",
            "anon after MB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
