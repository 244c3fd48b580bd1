"""Hardening probes: bad input, damage, floods and kills against real songmine processes.

    python benchmarks/hardening.py MUSIC WORK [--quick] [--tracks N] [--idle 300] [--slow 300] [--seconds 45]

``MUSIC`` is a folder of real music (e.g. the demo music of ``songmine
demo-corpus``); ``WORK`` an empty or scratch folder (wiped first). A few tracks
of ``MUSIC`` are copied under ``WORK`` and indexed with ``songmine index``;
every probe then runs the ``songmine`` command line of this checkout in a
process of its own (``python -c "from songmine.cli import main; main()"``)
and ``songmine serve`` on 127.0.0.1 on a free port, and checks what came back:

1. multichannel audio (8 and 16 channels; WAV, FLAC, Opus, Vorbis) through
   ``POST /api/identify``, ``identify``, ``scan``, ``index --jobs 1``;
2. idle and slow-header connections while a client identifies
   (``benchmarks/server_idle.py``);
3. ``kill -9`` of ``songmine index --jobs 2`` mid-run;
4. a damaged index (segment bytes flipped, zeroed, random; the catalogue's
   tracks page) through ``identify``, ``verify``, ``verify --repair`` and the server
   (started on it; running when the damage is written);
5. one damaged clip in an ``identify`` batch;
6. terminal escapes in tags through ``tracks`` and ``identify``;
7. ``identify`` on a folder, a missing, empty, text and truncated file;
8. the server's error bodies and its Host check;
9. a folder with no readable audio indexed; a server killed in the middle of ``POST /api/tracks``;
10. the decoder fuzz's CI sample (``benchmarks/decoder_fuzz.py --ci``).

Prints one markdown table ``| probe | before (as reported) | now | holds | test |``
("before" is the behaviour these probes were written against; "test" the test
of the suite that covers the probe) and exits 1 when a probe does not hold.
``--quick`` skips the slow parts (fewer tracks, a 15-s flood, no fuzz).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import git_commit

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
CLI = [sys.executable, "-c", "from songmine.cli import main; main()"]
SR = 22050
TOKEN = "hardening-probe-token-0123456789"


# ----------------------------------------------------------------------------- processes


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float

    def err_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.strip()]


class Probes:
    """The work folder, the environment of every child process, and the shared inputs."""

    def __init__(self, work: Path):
        self.work = work
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(SRC), self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.env["SONGMINE_CACHE"] = str(work / "cache")  # the crash log stays in the work folder
        self.env["COLUMNS"] = "400"  # tables are not cut to 80 columns: every cell is printed whole
        self.env.pop("SONGMINE_INDEX", None)
        self.env.pop("SONGMINE_TOKEN", None)
        self.lib = work / "lib"
        self.index = work / "index"
        self.clips: list[tuple[str, Path]] = []  # (track path, clip)

    def sm(self, *args: object, timeout: float = 600, env: dict | None = None) -> Run:
        """Run ``songmine ARGS`` to its end."""
        t0 = time.monotonic()
        p = subprocess.run([*CLI, *map(str, args)], capture_output=True, env=env or self.env, timeout=timeout)
        return Run(
            p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), time.monotonic() - t0
        )

    def sm_bytes(self, *args: object) -> tuple[int, bytes, bytes]:
        p = subprocess.run([*CLI, *map(str, args)], capture_output=True, env=self.env, timeout=600)
        return p.returncode, p.stdout, p.stderr

    @contextmanager
    def serve(self, index: Path, *args: str, env: dict | None = None):
        """``songmine serve`` on a free port; yields ``(url, proc)`` once /api/health answers."""
        import httpx

        port = free_port()
        log = tempfile.TemporaryFile(dir=self.work)
        proc = subprocess.Popen(
            [*CLI, "serve", "--index", str(index), "--port", str(port), *args],
            env=env or self.env,
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            t0 = time.monotonic()
            while True:
                try:
                    if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() - t0 > 60:
                    log.seek(0)
                    lines = log.read().decode(errors="replace").strip().splitlines()
                    raise ServeFailed(lines[-1] if lines else "(no output)", proc.poll())
                time.sleep(0.1)
            yield url, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


class ServeFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def raw_exchange(addr: tuple[str, int], data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a new connection; everything the server answers until it closes."""
    with socket.create_connection(addr) as s:
        s.sendall(data)
        return read_all(s, timeout)


def read_all(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def parse_http(raw: bytes) -> tuple[int | None, str, dict | None]:
    """(status, content type, JSON body or None) of a raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, "", None
    ctype = ""
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-type":
            ctype = v.strip().decode()
    try:
        return status, ctype, json.loads(body)
    except ValueError:
        return status, ctype, None


def is_error_json(body: object) -> bool:
    return isinstance(body, dict) and isinstance(body.get("detail"), str) and bool(body.get("reason"))


def wav_bytes(y: np.ndarray, sr: int = SR) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


#: The work folder, shown as WORK in the table (shorter, and the same from one machine to the next).
SHOWN = {"work": ""}


def short(text: str, n: int = 110) -> str:
    if SHOWN["work"]:
        text = text.replace(SHOWN["work"], "WORK")
    text = " ".join(text.split()).replace("|", "/")
    return text if len(text) <= n else text[: n - 1] + "…"


# ----------------------------------------------------------------------------- set-up


def setup(p: Probes, music: Path, n_tracks: int, seed: int) -> None:
    """Copy ``n_tracks`` of ``music`` (seeded choice, 20 s to 6 min long) and index them; cut one clip per track."""
    from songmine.audio import info, load
    from songmine.library import AUDIO_EXTENSIONS

    files = sorted(f for f in music.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
    random.Random(seed).shuffle(files)
    p.lib.mkdir(parents=True)
    chosen = []
    for f in files:
        try:
            d = info(f).duration_s
        except Exception:  # noqa: BLE001 - an unreadable file of the folder is simply not chosen
            continue
        if 20 <= d <= 360:
            shutil.copy2(f, p.lib / f.name)
            chosen.append((p.lib / f.name, d))
        if len(chosen) == n_tracks:
            break
    if len(chosen) < 4:
        raise SystemExit(f"{music}: fewer than 4 readable tracks of 20 s to 6 min")
    r = p.sm("index", p.lib, "--index", p.index, "--jobs", "2")
    if r.code != 0:
        raise SystemExit(f"songmine index failed ({r.code}): {r.err}")
    (p.work / "clips").mkdir()
    for k, (f, d) in enumerate(chosen):
        clip = p.work / "clips" / f"clip{k}.wav"
        clip.write_bytes(wav_bytes(load(f, sr=SR, offset=min(10.0, d / 3), duration=8.0)))
        p.clips.append((str(f), clip))


def best_path(run: Run) -> list[str | None]:
    """The best match's path of each record of an ``identify --json`` output."""
    recs = json.loads(run.out)
    return [r["matches"][0]["path"] if r["matches"] else None for r in recs]


# ----------------------------------------------------------------------------- the probes


@dataclass
class Row:
    probe: str
    before: str
    now: str = ""
    holds: bool = False
    test: str = ""
    notes: list[str] = field(default_factory=list)


def probe_multichannel(p: Probes) -> Row:
    import httpx
    import soundfile as sf

    row = Row(
        "1. 8/16-channel WAV, FLAC, Opus, Vorbis: POST /api/identify (no token), identify, scan, index",
        "segfault, exit 139",
        test="tests/test_audio_channels.py::test_eight_channel_audio_through_index_identify_scan_and_serve",
    )
    d = p.work / "multichannel"
    d.mkdir()
    rng = np.random.default_rng(8)
    files, na = [], []
    sf.write(d / "t8.wav", (0.1 * rng.standard_normal((2205, 8))).astype("f4"), SR, subtype="PCM_16")
    files.append(d / "t8.wav")
    for ch in (8, 16):
        src = d / f"src{ch}.wav"
        sf.write(src, (0.1 * rng.standard_normal((3 * SR, ch))).astype("f4"), SR, subtype="PCM_16")
        if ch == 16:
            shutil.copy(src, d / "t16.wav")
            files.append(d / "t16.wav")
        for suffix, codec in (
            (".flac", ["-c:a", "flac"]),
            (".opus", ["-ar", "48000", "-c:a", "libopus", "-mapping_family", "255"]),
            (".ogg", ["-c:a", "libvorbis"]),
        ):
            out = d / f"t{ch}{suffix}"
            enc = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *codec, str(out)], capture_output=True)
            if enc.returncode == 0 and out.stat().st_size:
                files.append(out)
            else:
                out.unlink(missing_ok=True)
                na.append(f"{out.name} (encoder: {short(enc.stderr.decode(errors='replace'), 40)})")
        src.unlink()
    codes: dict[str, list[int]] = {"identify": [], "scan": [], "index": []}
    http, health_ok, records_ok = [], 0, 0
    with p.serve(p.index) as (url, proc):
        with httpx.Client(timeout=60) as c:
            for f in files:
                r = c.post(url + "/api/identify", files={"file": (f.name, f.read_bytes())})
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
                ok = r.status_code == 200 and isinstance(body, dict) and "matches" in body or is_error_json(body)
                http.append(f"{r.status_code}" + ("" if ok else " (not JSON)"))
                health_ok += c.get(url + "/api/health").status_code == 200 and proc.poll() is None
    for f in files:
        r = p.sm("identify", f, "--index", p.index, "--json")
        codes["identify"].append(r.code)
        try:
            records_ok += len(json.loads(r.out)) == 1
        except ValueError:
            pass
        r = p.sm("scan", f, "--json")
        codes["scan"].append(r.code)
        try:
            records_ok += len(json.loads(r.out)) >= 1
        except ValueError:
            pass
        scratch = p.work / "multichannel-index"
        shutil.rmtree(scratch, ignore_errors=True)
        r = p.sm("index", f, "--index", scratch, "--jobs", "1", "--json")
        codes["index"].append(r.code)
        try:
            json.loads(r.out)
            records_ok += 1
        except ValueError:
            pass
    all_codes = [c for v in codes.values() for c in v]
    from collections import Counter

    hc = Counter(http)
    row.now = (
        f"{len(files)} files ({', '.join(f.name for f in files)}): HTTP "
        + ", ".join(f"{k} × {v}" for k, v in hc.most_common())
        + f", /api/health 200 after {health_ok}/{len(files)}; exit codes "
        + "; ".join(f"{k} {dict(Counter(v))}" for k, v in codes.items())
        + f"; JSON printed {records_ok}/{3 * len(files)}"
        + (f"; n/a: {', '.join(na)}" if na else "")
    )
    row.holds = (
        health_ok == len(files)
        and all(h.isdigit() for h in http)
        and 139 not in all_codes
        and all(c in (0, 1, 2) for c in all_codes)
        and records_ok == 3 * len(files)
    )
    return row


def probe_idle(p: Probes, idle: int, slow: int, seconds: float) -> Row:
    row = Row(
        f"2. {idle} idle + {slow} slow-header connections for {seconds:g} s while a client identifies",
        "every other request a plain-text 503 the whole time",
        test="tests/test_server_limits.py::test_idle_and_slow_header_connections_do_not_starve_clients",
    )
    cmd = [
        sys.executable,
        str(HERE / "server_idle.py"),
        "--index",
        str(p.index),
        "--idle",
        str(idle),
        "--slow",
        str(slow),
        "--seconds",
        str(seconds),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=p.env, timeout=seconds + 600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        row.now = f"server_idle.py exit {r.returncode}: {short(r.stderr[-300:])}"
        return row
    res = json.loads(lines[-1])
    ok = res["statuses"].get("200 right", 0)
    n = res["requests"]
    others = {k: v for k, v in res["statuses"].items() if k != "200 right"}
    row.now = (
        f"{ok}/{n} right answers{f' (others: {others})' if others else ''}, p50 {res['p50_ms']:.0f} ms / "
        f"p99 {res['p99_ms']:.0f} ms (alone p50 {res['ref_p50_ms']:.0f} ms); "
        f"{res['dropped']}/{idle + slow} attackers closed by the server (median after "
        f"{_secs(res['drop_s_median']['idle'])} idle, {_secs(res['drop_s_median']['slow'])} slow), "
        f"{res['still_open_at_end']} open at the end"
    )
    row.holds = n > 0 and ok == n and res["dropped"] == idle + slow and res["still_open_at_end"] == 0
    return row


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} s"


def probe_kill_index(p: Probes) -> Row:
    row = Row(
        "3. kill -9 of `songmine index --jobs 2` mid-run",
        "workers kept running (106 MB each)",
        test="tests/test_index_cli.py::test_kill_9_of_the_indexer_ends_its_workers, "
        "tests/test_index_cli.py::test_kill_9_mid_run_leaves_a_usable_index_and_rerun_resumes",
    )
    ix = p.work / "kill-index"
    lib = p.lib
    proc = subprocess.Popen(
        [*CLI, "index", str(lib), "--index", str(ix), "--jobs", "2", "--batch", "1"],
        env=p.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.monotonic()
    kids: list[int] = []
    while time.monotonic() - t0 < 300 and proc.poll() is None:
        kids = descendants(proc.pid)
        if len(kids) >= 2 and committed_tracks(ix) >= 1:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        row.now = f"the run ended (exit {proc.returncode}) before it could be killed"
        return row
    kids = descendants(proc.pid)
    mem = sum(rss_mb(k) for k in kids)
    t_kill = time.monotonic() - t0
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2.0)
    left = [k for k in kids if alive(k)]
    for k in left:  # leave no stray process behind, whatever the verdict
        try:
            os.kill(k, signal.SIGKILL)
        except ProcessLookupError:
            pass
    committed = len(json.loads(p.sm("tracks", "--index", ix, "--json").out))
    v = p.sm("verify", "--index", ix)
    again = p.sm("index", lib, "--index", ix, "--jobs", "2", "--json")
    rep = json.loads(again.out) if again.code == 0 else {}
    n = len(list(p.lib.iterdir()))
    row.now = (
        f"killed at {t_kill:.1f} s ({len(kids)} processes below it, {mem:.0f} MB), {committed}/{n} tracks "
        f"committed; 2 s later {len(left)} alive; verify exit {v.code} ({short(v.out, 40)}); re-run exit "
        f"{again.code}: added {rep.get('added')}, unchanged {rep.get('unchanged')}"
    )
    row.holds = (
        len(kids) >= 2
        and not left
        and v.code == 0
        and again.code == 0
        and rep.get("unchanged") == committed
        and (rep.get("added") or 0) + committed == n
    )
    return row


def committed_tracks(ix: Path) -> int:
    """Tracks the catalogue of ``ix`` holds now (read-only; 0 while it does not exist yet)."""
    from songmine.fingerprint.index.schema import CATALOG_NAME

    if not (ix / CATALOG_NAME).exists():
        return 0
    try:
        c = sqlite3.connect(f"file:{ix / CATALOG_NAME}?mode=ro", uri=True, timeout=0.2)
        try:
            return c.execute("SELECT count(*) FROM tracks").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def _damage(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def _flip(path: Path, offset: int, k: int = 8) -> None:
    with open(path, "rb") as fh:
        fh.seek(offset)
        old = fh.read(k)
    _damage(path, offset, bytes(b ^ 0xFF for b in old))


def damage_index(ix: Path, kind: str, rng: np.random.Generator) -> str:
    """Damage a copy of an index; returns the damaged part's name."""
    from songmine.fingerprint.index.schema import CATALOG_NAME, SEGMENT_HEADER_SIZE
    from songmine.fingerprint.index.segments import open_segment

    if kind == "catalogue":
        with sqlite3.connect(ix / CATALOG_NAME) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tracks'").fetchone()[0]
            page = c.execute("PRAGMA page_size").fetchone()[0]
        _damage(ix / CATALOG_NAME, (root - 1) * page, b"\xa5" * 64)
        return CATALOG_NAME
    seg = max((ix / "segments").glob("*.sgm"), key=lambda s: s.stat().st_size)
    s = open_segment(seg)  # version 5 (docs/index.md): header, the tracks' layout, the posting records, ...
    n, records, size = len(s), s.records_offset, s.records.itemsize
    tracks = SEGMENT_HEADER_SIZE
    del s
    if kind == "8 flipped bytes in a segment":
        _flip(seg, records + size * (n // 2))
    elif kind == "4 KB of zeros in the hashes":
        _damage(seg, records + size * (n // 3), bytes(4096))
    elif kind == "zeros over the tracks area":
        _damage(seg, tracks, bytes(records - tracks))
    elif kind == "random bytes over the tracks area":
        _damage(seg, tracks, rng.integers(0, 256, records - tracks, dtype=np.uint8).tobytes())
    return f"segments/{seg.name}"


def _post_clip(url: str, clip: Path) -> tuple[str, bool, list]:
    """POST a clip to /api/identify: (what came back, is it a JSON index-damaged 5xx, the matches)."""
    import httpx

    r = httpx.post(url + "/api/identify", files={"file": ("clip.wav", clip.read_bytes())}, timeout=60)
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
    if r.status_code == 200 and isinstance(body, dict):
        m = body.get("matches") or []
        return f"200, {len(m)} match(es), best score {m[0]['score']:g}" if m else "200, no match", False, m
    reason = body.get("reason") if isinstance(body, dict) else "(not JSON)"
    return f"{r.status_code} {reason}", r.status_code >= 500 and is_error_json(body) and reason == "index-damaged", []


def probe_damage(p: Probes) -> list[Row]:
    rng = np.random.default_rng(4)
    track, clip = p.clips[0]
    rows = []
    kinds = [
        "8 flipped bytes in a segment",
        "4 KB of zeros in the hashes",
        "zeros over the tracks area",
        "random bytes over the tracks area",
        "catalogue",
    ]
    befores = [
        "same answers, exit 0",
        "lowered scores, exit 0",
        'exit 2 "track_id=0 is not in the index"',
        "exit 70",
        "HTTP 500",
    ]
    live = []
    for k, (kind, before) in enumerate(zip(kinds, befores)):
        label = "a damaged SQLite tracks page" if kind == "catalogue" else kind
        row = Row(
            f"4{'abcde'[k]}. damaged index: {label}",
            before,
            test="tests/test_index_damage.py::"
            + (
                "test_a_damaged_catalogue_page_is_a_clear_error"
                if kind == "catalogue"
                else "test_a_damaged_segment_is_refused_with_the_recovery"
            ),
        )
        ix = p.work / f"damaged-{k}"
        shutil.copytree(p.index, ix)
        # damage under a running server (in place: its memory maps and open catalogue see it)
        with p.serve(ix) as (url, _):
            first, _, _ = _post_clip(url, clip)
            part = damage_index(ix, kind, rng)
            t_damage = time.monotonic()
            while True:  # the server checks its files again at its next refresh (every 5 s)
                then, live_ok, _ = _post_clip(url, clip)
                waited = time.monotonic() - t_damage
                if live_ok or waited > 15:
                    break
                time.sleep(0.5)
        live.append((label, first, f"{then} after {waited:.1f} s", live_ok))
        r = p.sm("identify", clip, "--index", ix)
        err = r.err_lines()
        names = part.split("/")[-1] in r.err
        says_how = "songmine verify" in r.err or "rebuild" in r.err
        id_ok = r.code == 2 and len(err) == 1 and names and says_how
        v = p.sm("verify", "--index", ix, "--json")
        try:
            vrep = json.loads(v.out)
            vpart = vrep["problems"][0]["part"] if vrep["problems"] else None
        except (ValueError, KeyError):
            vrep, vpart = {}, None
        v_ok = v.code == 2 and vpart == part
        try:  # a server started on the damaged index
            with p.serve(ix) as (url, _):
                srv, srv_ok, _ = _post_clip(url, clip)
                srv = "serve started; POST /api/identify → " + srv
        except ServeFailed as exc:
            line = exc.args[0]
            srv = f"serve refuses to start (exit {exc.args[1]}): {short(line, 90)}"
            srv_ok = exc.args[1] == 2 and part.split("/")[-1] in line
        if vrep.get("repairable"):
            fix = p.sm("verify", "--index", ix, "--repair", "--jobs", "1")
            how = f"`verify --repair` exit {fix.code}"
        else:  # what the message says: build the index again
            shutil.rmtree(ix)
            fix = p.sm("index", p.lib, "--index", ix, "--jobs", "2")
            how = f"re-index exit {fix.code}"
        after = p.sm("identify", clip, "--index", ix, "--json")
        fixed = after.code == 0 and best_path(after)[0] == track
        row.now = (
            f"identify exit {r.code}: {short(err[0] if err else '(nothing on stderr)', 400)}; "
            f"verify exit {v.code} names {vpart}; {srv}; {how}, then identify exit {after.code}"
            f"{' (right track)' if fixed else ''}"
        )
        row.holds = id_ok and v_ok and srv_ok and fix.code == 0 and fixed
        rows.append(row)
    run = Row(
        "4f. the same damage written under a running `songmine serve` (in place, after it checked the index)",
        "(not in the report)",
        test="tests/test_server_limits.py::test_damage_under_a_running_server_is_a_500_at_the_next_refresh, "
        "::test_damaged_postings_are_a_500_not_the_uploads_fault",
    )
    run.now = "; ".join(f"{label}: {first} → {then}" for label, first, then, _ in live)
    run.holds = all(ok for *_, ok in live)
    rows.append(run)
    return rows


def probe_batch(p: Probes) -> Row:
    row = Row(
        "5. one damaged clip in an `identify` batch of 4",
        "the batch ended with no JSON",
        test="tests/test_identify.py::test_cli_identify_bad_inputs_exit_2_not_no_match",
    )
    bad = p.work / "clips" / "damaged.flac"
    import soundfile as sf

    y, _ = sf.read(p.clips[1][1], dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="FLAC")
    data = buf.getvalue()
    bad.write_bytes(data[: len(data) // 2] + bytes(range(256)) * 8)  # cut in the middle, garbage after
    batch = [p.clips[0][1], bad, p.clips[1][1], p.clips[2][1]]
    r = p.sm("identify", *batch, "--index", p.index, "--json")
    try:
        recs = json.loads(r.out)
    except ValueError:
        row.now = f"exit {r.code}, no JSON: {short(r.out + r.err)}"
        return row
    errs = [bool(x["error"]) for x in recs]
    right = [
        x["matches"][0]["path"] == t if x["matches"] else False
        for x, t in zip(recs, [p.clips[0][0], None, p.clips[1][0], p.clips[2][0]])
    ]
    row.now = f"exit {r.code}; {len(recs)}/{len(batch)} records, in order: " + ", ".join(
        "error: " + short(x["error"], 60) if x["error"] else ("right track" if ok else "wrong/none")
        for x, ok in zip(recs, right)
    )
    row.holds = (
        r.code == 2
        and [x["query"] for x in recs] == list(map(str, batch))
        and errs == [False, True, False, False]
        and right[0]
        and right[2]
        and right[3]
    )
    return row


def probe_escapes(p: Probes) -> Row:
    import mutagen.flac
    import soundfile as sf

    row = Row(
        "6. ESC sequences in tags (artist = ESC ]0;pwned BEL) through `tracks` and `identify`",
        "printed raw",
        test="tests/test_cli_escapes.py::test_every_table_escapes_tags_and_file_names",
    )
    d = p.work / "escapes"
    d.mkdir()
    song = d / "song.flac"
    from songmine.audio import load

    y = load(p.clips[0][0], sr=SR, duration=40.0)
    sf.write(song, y, SR, subtype="PCM_16")
    tags = mutagen.flac.FLAC(song)
    tags["artist"] = "\x1b]0;pwned\x07"
    tags["title"] = "\x1b[2J\x1b[31mred\x1b[0m"
    tags.save()
    ix = d / "index"
    built = p.sm("index", song, "--index", ix, "--jobs", "1")
    clip = d / "clip.wav"
    clip.write_bytes(wav_bytes(y[10 * SR : 18 * SR]))
    results = []
    for args in (["tracks"], ["identify", clip]):
        code, out, err = p.sm_bytes(*args, "--index", ix)
        results.append((args[0], code, b"\x1b" in out or b"\x1b" in err, b"\\x1b]0;pwned\\x07" in out))
    row.now = f"index exit {built.code}; " + "; ".join(
        f"{verb} exit {code}, raw ESC {'present' if raw else 'absent'}, shown as \\x1b]0;pwned\\x07: "
        f"{'yes' if shown else 'no'}"
        for verb, code, raw, shown in results
    )
    row.holds = built.code == 0 and all(code == 0 and not raw and shown for _, code, raw, shown in results)
    return row


def probe_bad_inputs(p: Probes) -> Row:
    row = Row(
        "7. `identify` on a folder without audio, a missing, an empty, a text `.mp3`, a truncated file",
        "exit 1",
        test="tests/test_identify.py::test_cli_identify_bad_inputs_exit_2_not_no_match, "
        "tests/test_audio.py::test_truncated_wav_is_refused",
    )
    d = p.work / "bad-inputs"
    d.mkdir()
    (d / "no-audio").mkdir()
    (d / "no-audio" / "notes.txt").write_text("no music here\n")
    (d / "empty.wav").write_bytes(b"")
    (d / "text.mp3").write_text("this is not audio\n" * 50)
    data = p.clips[0][1].read_bytes()
    (d / "truncated.wav").write_bytes(data[: 44 + 100])  # a header and 50 samples of an 8-s clip
    src = p.lib / sorted(os.listdir(p.lib))[0]
    trunc_src = d / ("truncated" + src.suffix)
    trunc_src.write_bytes(src.read_bytes()[:2000])
    cases = ["no-audio", "missing.wav", "empty.wav", "text.mp3", "truncated.wav", trunc_src.name]
    got, ok = [], 0
    for name in cases:
        r = p.sm("identify", d / name, "--index", p.index)
        lines = [ln for ln in (r.out + r.err).splitlines() if ln.strip()]
        clear = [ln for ln in lines if "error" in ln and name in ln]
        ok += r.code == 2 and bool(clear)
        got.append(
            f'{name}: exit {r.code} "{short(clear[0].split(name, 1)[-1].lstrip(": "), 90) if clear else short(" ".join(lines), 90)}"'
        )
    row.now = "; ".join(got)
    row.holds = ok == len(cases)
    return row


def _start_upload(addr: tuple[str, int]) -> socket.socket:
    """A request in progress: its head and the start of a body whose rest never comes."""
    s = socket.create_connection(addr)
    s.sendall(
        b"POST /api/identify HTTP/1.1\r\nHost: localhost\r\nContent-Type: audio/wav\r\n"
        b"Content-Length: 100000\r\n\r\nRIFF" + bytes(1000)
    )
    return s


def probe_error_bodies(p: Probes) -> list[Row]:
    import httpx

    bodies = Row(
        "8a. error bodies: validation 422, 405, malformed request line 400, connection-cap 503, empty upload 422",
        "list detail / plain text / reason null",
        test="tests/test_server_limits.py::test_every_error_body_is_detail_and_reason, "
        "::test_protocol_errors_and_deadlines_are_json, "
        "::test_connection_cap_drops_the_longest_waiting_and_refuses_when_all_are_busy",
    )
    hosts = Row(
        "8b. Host: evil.example; localhost, 127.0.0.1; --allow-host music.example",
        "Host not checked",
        test="tests/test_server_limits.py::test_wrong_host_is_refused_as_json, ::test_serve_allow_host_option",
    )
    seen, host_seen = [], []
    bodies_ok = hosts_ok = True

    def note(what: str, status: int | None, ctype: str, body: object, want: int) -> None:
        nonlocal bodies_ok
        good = status == want and ctype.startswith("application/json") and is_error_json(body)
        bodies_ok &= good
        reason = body.get("reason") if isinstance(body, dict) else None
        seen.append(
            f"{what} → {status} {'JSON' if ctype.startswith('application/json') else ctype or 'no type'}"
            f" reason={reason}"
        )

    with p.serve(p.index) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        with httpx.Client(base_url=url, timeout=30) as c:
            r = c.get("/api/tracks", params={"limit": 0})
            note("GET /api/tracks?limit=0", r.status_code, r.headers.get("content-type", ""), r.json(), 422)
            r = c.put("/api/health")
            note("PUT /api/health", r.status_code, r.headers.get("content-type", ""), r.json(), 405)
            r = c.post("/api/identify", files={"file": ("empty.wav", b"")})
            note("empty upload", r.status_code, r.headers.get("content-type", ""), r.json(), 422)
            for host, want in (
                ("evil.example", 400),
                ("localhost", 200),
                (f"localhost:{port}", 200),
                (f"127.0.0.1:{port}", 200),
                ("music.example", 400),
            ):
                r = c.get("/api/health", headers={"Host": host})
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
                good = r.status_code == want and (
                    want == 200 or (is_error_json(body) and body["reason"] == "host-not-allowed")
                )
                hosts_ok &= good
                host_seen.append(f"{host} → {r.status_code}" + (f" {body['reason']}" if want != 200 and body else ""))
        status, ctype, body = parse_http(raw_exchange(("127.0.0.1", port), b"GARBAGE / NOT-HTTP\r\n\r\n"))
        note("malformed request line", status, ctype, body, 400)
    with p.serve(p.index, "--allow-host", "music.example", "--max-connections", "2", "--header-timeout-s", "30") as (
        url,
        _,
    ):
        port = int(url.rsplit(":", 1)[1])
        with httpx.Client(base_url=url, timeout=30) as c:
            for host, want in (("music.example", 200), ("evil.example", 400)):
                r = c.get("/api/health", headers={"Host": host})
                hosts_ok &= r.status_code == want
                host_seen.append(f"with --allow-host music.example: {host} → {r.status_code}")
        busy = [_start_upload(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.5)
        try:
            status, ctype, body = parse_http(raw_exchange(("127.0.0.1", port), b"", timeout=5))
            note("a 3rd connection over --max-connections 2, both busy", status, ctype, body, 503)
        finally:
            for s in busy:
                s.close()
    bodies.now = "; ".join(seen)
    bodies.holds = bodies_ok
    hosts.now = "; ".join(host_seen)
    hosts.holds = hosts_ok
    return [bodies, hosts]


def probe_all_bad_folder(p: Probes) -> Row:
    row = Row(
        "9a. a folder of unreadable files indexed",
        "an empty index left behind",
        test="tests/test_index_cli.py::test_a_first_run_that_adds_nothing_leaves_no_index",
    )
    d = p.work / "all-bad"
    d.mkdir()
    (d / "empty.wav").write_bytes(b"")
    (d / "text.mp3").write_text("not audio\n" * 40)
    (d / "cut.flac").write_bytes((p.lib / sorted(os.listdir(p.lib))[0]).read_bytes()[:300])
    ix = p.work / "all-bad-index"
    r = p.sm("index", d, "--index", ix, "--jobs", "1")
    err = r.err_lines()
    row.now = f"exit {r.code}; index folder {'left behind' if ix.exists() else 'not created'}; last line: {short(err[-1] if err else '', 90)}"
    row.holds = r.code == 2 and not ix.exists()
    return row


def probe_kill_add(p: Probes) -> Row:
    import httpx
    import soundfile as sf

    row = Row(
        "9b. `songmine serve` killed (-9) in the middle of POST /api/tracks, then started again",
        "an orphan upload and a temp file left",
        test="tests/test_server_crash.py::test_kill_while_the_added_file_is_being_indexed",
    )
    ix = p.work / "crash-index"
    shutil.copytree(p.index, ix)
    tmp = p.work / "crash-tmp"
    tmp.mkdir()
    env = dict(p.env, SONGMINE_TOKEN=TOKEN, TMPDIR=str(tmp))
    from songmine.audio import load

    y = np.concatenate([load(t, sr=SR, duration=60.0) for t, _ in p.clips[:3]] * 2)  # minutes, not in the index
    y = y[: 5 * 60 * SR] * np.float32(0.9)
    long = p.work / "long.wav"
    sf.write(long, y, SR, subtype="PCM_16")
    folder = ix / "uploads"

    def files() -> list[str]:
        return sorted(f.name for f in folder.iterdir()) if folder.is_dir() else []

    answer: list = []
    with p.serve(ix, env=env) as (url, proc):

        def add() -> None:
            try:
                with httpx.Client(timeout=120) as c:
                    answer.append(
                        c.post(
                            url + "/api/tracks",
                            files={"file": ("long.wav", long.read_bytes())},
                            headers={"Authorization": f"Bearer {TOKEN}"},
                        ).status_code
                    )
            except httpx.HTTPError as exc:
                answer.append(type(exc).__name__)

        t = threading.Thread(target=add)
        t.start()
        t0 = time.monotonic()
        while not any(not n.endswith(".part") for n in files()) and time.monotonic() - t0 < 60 and proc.poll() is None:
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGSTOP)  # the moment the body is stored and being indexed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t.join()
    left = files() + [f"TMPDIR/{n}" for n in sorted(os.listdir(tmp))]
    with p.serve(ix, env=env) as (url, _):
        after = files()
        tmp_after = sorted(os.listdir(tmp))
        tracks = {Path(t["path"]).name for t in json.loads(p.sm("tracks", "--index", ix, "--json").out)}
    orphans = [n for n in after if n not in tracks]
    temps = [n for n in after if n.startswith(".")] + tmp_after
    row.now = (
        f"the add got {answer[0] if answer else '?'}; left by the kill: {', '.join(left) or 'nothing'}; "
        f"after the restart: {len(after)} file(s) in uploads/, {len(orphans)} without a track, "
        f"{len(temps)} temp file(s)"
    )
    row.holds = bool(left) and not orphans and not temps
    return row


def probe_fuzz(p: Probes, seed: int) -> tuple[Row, str]:
    row = Row(
        "10. decoder fuzz, CI sample (`decoder_fuzz.py --ci`)",
        "(crashes on 8+ channels)",
        test="tests/test_audio_fuzz.py::test_decoder_fuzz_sample",
    )
    r = subprocess.run(
        [sys.executable, str(HERE / "decoder_fuzz.py"), "--ci", "--seed", str(seed)],
        capture_output=True,
        text=True,
        env=p.env,
        timeout=3600,
    )
    lines = r.stdout.splitlines()
    title = next((ln for ln in lines if ln.startswith("### Decoder fuzz")), "")
    header = next((ln for ln in lines if ln.startswith("| format")), "")
    total = next((ln for ln in lines if ln.startswith("| **all**")), "")
    reasons = next((ln for ln in lines if ln.startswith("DecodeError reasons")), "")
    cols = [c.strip() for c in header.strip("|").split("|")]
    vals = [c.strip() for c in total.strip("|").split("|")]
    got = dict(zip(cols, vals))
    row.now = (
        f"exit {r.returncode}: {got.get('inputs', '?')} inputs, {got.get('calls', '?')} calls: crash "
        f"{got.get('crash', '?')}, hang {got.get('hang', '?')}, untyped {got.get('untyped', '?')}, bad audio "
        f"{got.get('bad audio', '?')}, DecodeError {got.get('DecodeError', '?')}"
    )
    row.holds = r.returncode == 0 and got.get("crash") == "0" and got.get("hang") == "0"
    return row, "\n".join([title.lstrip("# "), header, total, reasons])


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("music", type=Path, help="a folder of real music (e.g. the demo music)")
    ap.add_argument("work", type=Path, help="a scratch folder (emptied first)")
    ap.add_argument("--quick", action="store_true", help="4 tracks, a 15-s flood of 50 + 50, no fuzz")
    ap.add_argument("--tracks", type=int, default=None, help="tracks copied and indexed (default 8; --quick 4)")
    ap.add_argument("--idle", type=int, default=None, help="idle connections of probe 2 (default 300)")
    ap.add_argument("--slow", type=int, default=None, help="slow-header connections of probe 2 (default 300)")
    ap.add_argument("--seconds", type=float, default=None, help="length of the flood (default 45)")
    ap.add_argument("--fuzz-seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated probe numbers to run (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    quick = args.quick
    n_tracks = args.tracks or (4 if quick else 8)
    idle = args.idle if args.idle is not None else (50 if quick else 300)
    slow = args.slow if args.slow is not None else (50 if quick else 300)
    seconds = args.seconds or (15.0 if quick else 45.0)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    want = lambda k: not only or str(k) in only  # noqa: E731

    work = args.work.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    p = Probes(work)
    SHOWN["work"] = str(work)
    t0 = time.monotonic()
    setup(p, args.music.resolve(), n_tracks, args.seed)
    from songmine import __version__

    print(
        f"songmine {__version__}, commit {git_commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{len(p.clips)} tracks of {args.music.name} indexed; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows: list[Row] = []
    fuzz_summary = ""
    steps = [
        (1, lambda: [probe_multichannel(p)]),
        (2, lambda: [probe_idle(p, idle, slow, seconds)]),
        (3, lambda: [probe_kill_index(p)]),
        (4, lambda: probe_damage(p)),
        (5, lambda: [probe_batch(p)]),
        (6, lambda: [probe_escapes(p)]),
        (7, lambda: [probe_bad_inputs(p)]),
        (8, lambda: probe_error_bodies(p)),
        (9, lambda: [probe_all_bad_folder(p), probe_kill_add(p)]),
    ]
    for k, step in steps:
        if not want(k):
            continue
        t1 = time.monotonic()
        try:
            got = step()
        except Exception as exc:  # noqa: BLE001 - a probe that breaks is a row that does not hold
            got = [Row(f"{k}. (probe failed to run)", "", now=f"{type(exc).__name__}: {short(str(exc), 200)}")]
        rows += got
        print(
            f"  probe {k}: {time.monotonic() - t1:.0f} s, "
            + ", ".join("holds" if r.holds else "DOES NOT HOLD" for r in got),
            file=sys.stderr,
            flush=True,
        )
    if want(10) and not quick:
        try:
            row, fuzz_summary = probe_fuzz(p, args.fuzz_seed)
        except Exception as exc:  # noqa: BLE001
            row = Row("10. decoder fuzz", "", now=f"{type(exc).__name__}: {short(str(exc), 200)}")
        rows.append(row)
    print()
    print("| probe | before (as reported) | now | holds | test |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.probe} | {r.before} | {r.now} | {'yes' if r.holds else '**no**'} | {r.test} |")
    if fuzz_summary:
        print("\nDecoder fuzz summary:\n")
        print(fuzz_summary)
    print(f"\n{sum(r.holds for r in rows)}/{len(rows)} hold; {time.monotonic() - t0:.0f} s")
    return 0 if all(r.holds for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
