"""songmine and peer fingerprinters side by side, on the same queries, in one run.

The queries are those of ``songmine eval`` (same split, plan, offsets and
degradations for the same options and seed), written once to temporary WAV
files (float32, so nothing is re-quantised). Every system indexes the same
tracks and answers the same files; the same :func:`songmine.evaluate.summarise`
turns each one's answers into top-1 per cell, false positives and cost.

Peers are never part of songmine: bring them yourself, outside the repository
(see ``docs/eval.md``), and point this script at them:

- ``audfprint`` (Dan Ellis, pure Python): ``--audfprint DIR`` is a checkout of
  ``dpwe/audfprint``, run by ``--peer-python`` (a venv with numpy, scipy,
  docopt, joblib, psutil; ffmpeg on PATH). Default settings (density 20,
  11,025 Hz), one process; all queries of a batch go through one ``match``
  call, so its time per query excludes process start-up (reported once).

- ``chromaprint``: Chromaprint's ``fpcalc -raw`` (``--fpcalc``; Debian
  ``libchromaprint-tools``), full-length fingerprints of the tracks, each clip
  matched against every offset of every track by bit errors, answered only
  with a margin over the runner-up track (``--chromaprint-margin``).

Adding a peer: subclass :class:`Peer` (``build(paths, workdir) -> BuildStats``
and ``match(wavs) -> {wav: (track_path | None, offset_s, score)}``) and list it
in :data:`PEERS`.

Usage::

    PYTHONPATH=src python benchmarks/peers.py LIBRARY [--tracks 40] [--durations 1,2,3,5,10]
        [--queries-per-cell 40] [--nonmember-queries 200] [--seed 0]
        [--peers songmine,audfprint] [--audfprint DIR] [--peer-python PY]
        [--report saved.json]... [--markdown out.md] [--json out.json]

``--report`` adds columns from saved runs with the same settings (a
``songmine eval --save-json`` file, or this script's ``--json``), so a slow
peer need not be re-run for every songmine change; ``--peers ''`` runs none.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf

from songmine.evaluation.config import EvalConfig
from songmine.evaluation.degrade import CONDITIONS
from songmine.evaluation.harness import run_queries, same_file
from songmine.evaluation.identifiers import BuildStats, dir_bytes
from songmine.evaluation.queries import Outcome, Query, QuerySpec, cut_queries, plan_queries, split_library
from songmine.evaluation.report import summarise
from songmine.evaluation.resources import PeakMemory
from songmine.methods import make_identifier

Answer = tuple[str | None, float | None, float | None]  # (track path | None, offset s, score)


class Peer:
    """A fingerprinter run as a program: index files, then match query files.

    Subclasses define ``build`` and ``match_batch``; ``match`` runs the
    batches over ``jobs`` concurrent processes (threads that each wait for
    one child process), so the peer's own CPU time is still counted.
    """

    name = "peer"
    batch = 100
    jobs = 1

    def build(self, paths: list[Path], workdir: Path) -> BuildStats:  # pragma: no cover - interface
        raise NotImplementedError

    def match_batch(self, wavs: list[Path]) -> dict[str, Answer]:  # pragma: no cover - interface
        raise NotImplementedError

    def match(self, wavs: list[Path], on_batch=None, of: int | None = None) -> dict[str, Answer]:
        """Answers for ``wavs``, in batches; ``on_batch(chunk, answers)`` is called after each batch
        (in order), so a long run can keep what it has (:class:`Journal`). ``of``: the total shown in
        the progress lines (when some queries were answered by an earlier run)."""
        from concurrent.futures import ThreadPoolExecutor

        chunks = [wavs[i : i + self.batch] for i in range(0, len(wavs), self.batch)]
        out: dict[str, Answer] = {}
        total = len(wavs) if of is None else of
        done = total - len(wavs)
        error = None
        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            futures = [pool.submit(self.match_batch, chunk) for chunk in chunks]
            try:
                for chunk, future in zip(chunks, futures):
                    try:
                        answers = future.result()
                    except Exception as exc:  # the batches that do finish still count (on_batch keeps them)
                        error = error or exc
                        continue
                    out.update(answers)
                    if on_batch is not None:
                        on_batch(chunk, answers)
                    done += len(chunk)
                    print(f"  {self.name}: {done}/{total} queries", file=sys.stderr, flush=True)
            except KeyboardInterrupt:
                for future in futures:
                    future.cancel()
                raise
        if error is not None:
            raise error
        return out

    def state(self) -> dict:
        """What :meth:`restore` needs to match queries against the index :meth:`build` made (JSON)."""
        return {}

    def restore(self, state: dict) -> None:
        """Take up an index built by an earlier run (``--resume``) from its :meth:`state`."""

    def settings(self) -> dict:
        """Settings that change this peer's answers: a saved run is resumed only with the same ones."""
        return {}

    def startup_seconds(self) -> float | None:
        """Wall time of starting the peer's program once (not in its per-query time), or None."""
        return None

    #: the largest maximum RSS (MB) of one peer process so far, when GNU time is there to tell it;
    #: a process forked from this (large) script would inherit its RSS in ``ru_maxrss``, hence the wrapper
    max_process_mb = 0.0
    _gnu_time = "/usr/bin/time"

    def run(self, cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
        if not Path(self._gnu_time).exists():
            return subprocess.run(cmd, capture_output=True, text=True, env=env)
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as fh:
            res = subprocess.run(
                [self._gnu_time, "-q", "-f", "%M", "-o", fh.name, *cmd], capture_output=True, text=True, env=env
            )
            kb = fh.read().strip().splitlines()
        if kb and kb[-1].isdigit():
            self.max_process_mb = max(self.max_process_mb, int(kb[-1]) / 1e3)
        return res


class PeerMemory(PeakMemory):
    """Peak RSS summed over this script's child processes only (the peer), not this script itself."""

    @staticmethod
    def _tree_rss_bytes(root: int) -> int:
        total = PeakMemory._tree_rss_bytes(root)
        try:
            with open(f"/proc/{root}/statm", "rb") as fh:
                total -= int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            pass
        return max(0, total)

    def __enter__(self) -> PeerMemory:
        super().__enter__()
        if self._thread is not None:
            self.how = (
                f"sum of RSS over the peer's processes, sampled every {self.interval * 1e3:.0f} ms, "
                "or the largest one's own maximum (GNU time) if more"
            )
        return self


class Audfprint(Peer):
    """``dpwe/audfprint`` with its default settings."""

    name = "audfprint"
    _line = re.compile(r"^Matched (\S+) .*? as (.+) at\s+(-?[\d.]+) s with\s+(\d+) of\s+(\d+) common hashes")

    def __init__(self, source: Path, python: str, batch: int = 100, jobs: int = 1):
        self.script = Path(source) / "audfprint.py"
        if not source or not self.script.exists():
            raise SystemExit(
                f"audfprint: {self.script} not found (--audfprint DIR or AUDFPRINT_DIR: "
                "a checkout of dpwe/audfprint, outside this repository)"
            )
        if not python or not Path(python).exists():
            raise SystemExit(
                f"audfprint: interpreter {python} not found (--peer-python or PEER_PYTHON: "
                "a venv with numpy, scipy, docopt, joblib, psutil)"
            )
        self.python = python
        self.batch, self.jobs = batch, jobs
        self.db: Path | None = None

    def _run(self, args: list[str]) -> str:
        res = self.run([self.python, str(self.script), *args])
        if res.returncode != 0:
            raise RuntimeError(f"audfprint {args[0]} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        return res.stdout

    def build(self, paths, workdir):
        self.db = workdir / "audfprint.pklz"
        lst = workdir / "audfprint-tracks.txt"
        lst.write_text("".join(f"{p}\n" for p in paths))
        t0 = time.perf_counter()
        self._run(["new", "--dbase", str(self.db), "--list", "--continue-on-error", str(lst)])
        return BuildStats(n_tracks=len(paths), seconds=time.perf_counter() - t0, index_bytes=self.db.stat().st_size)

    def state(self):
        return {"db": str(self.db)}

    def restore(self, state):
        self.db = Path(state["db"])

    def match_batch(self, wavs):
        out: dict[str, Answer] = {}
        text = self._run(["match", "--dbase", str(self.db), *map(str, wavs)])
        for line in text.splitlines():
            m = self._line.match(line)
            if m:
                out.setdefault(m.group(1), (m.group(2), float(m.group(3)), float(m.group(4))))
        return out

    def startup_seconds(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.python, str(self.script), "--version"], capture_output=True)
        return time.perf_counter() - t0


class Audfprint2(Audfprint):
    """``audfprint2`` from PyPI (a maintained fork of audfprint: HDF5 store), default settings.

    Run as its console script ``audfprint`` from its own venv (``--audfprint2-bin``);
    ``-v`` makes it print the offset and the hash counts of each match.
    """

    name = "audfprint2"
    _line = re.compile(
        r"^(?:DEBUG:audfprint2:)?Matched (\S+) .*? as (.+) at\s+(-?[\d.]+) s with\s+(\d+) of\s+(\d+) common hashes"
    )

    def __init__(self, exe: str, batch: int = 100, jobs: int = 1):
        if not exe or not Path(exe).exists():
            raise SystemExit(
                f"audfprint2: {exe} not found (--audfprint2-bin or AUDFPRINT2_BIN: the `audfprint` "
                "script of a venv where `pip install audfprint2` ran)"
            )
        self.exe = exe
        self.batch, self.jobs = batch, jobs
        self.db = None

    def _run(self, args: list[str]) -> str:
        cmd, rest, opts, files = args[0], args[1:], [], []
        while rest:  # its argparse wants the options before the command and the files after it
            n = 2 if rest[0] == "--dbase" else 1
            (opts if rest[0].startswith("--") else files).extend(rest[:n])
            rest = rest[n:]
        res = self.run([self.exe, "-v", *opts, cmd, *files])
        if res.returncode != 0:
            raise RuntimeError(f"audfprint2 {cmd} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        return res.stdout + "\n" + res.stderr  # its log lines go to stderr

    def build(self, paths, workdir):
        self.db = workdir / "audfprint2.hdf"  # it saves under .hdf whatever the name
        lst = workdir / "audfprint2-tracks.txt"
        lst.write_text("".join(f"{p}\n" for p in paths))
        t0 = time.perf_counter()
        self._run(["new", "--dbase", str(self.db), "--list", "--continue-on-error", str(lst)])
        return BuildStats(n_tracks=len(paths), seconds=time.perf_counter() - t0, index_bytes=dir_bytes(self.db))

    def startup_seconds(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.exe, "--version"], capture_output=True)
        return time.perf_counter() - t0


class Olaf(Peer):
    """``JorenSix/Olaf``'s C core (``olaf_c``/``olaf_core``), default configuration, LMDB store.

    Olaf's C core reads raw mono float32 at 16 kHz; its own CLI transcodes with
    ffmpeg first, here :func:`songmine.audio.load` does (tracks) and soxr
    (query WAVs), inside the timed build and query loops. Its database lives
    in ``$HOME/.olaf/db``, so ``HOME`` is set to a temp dir. One process per
    query (results of several files in one call cannot be told apart); a
    query's answer is its first result line (most aligned matches; Olaf
    reports a match from 6 aligned hashes on).
    """

    name = "olaf"

    def __init__(self, exe: str, batch: int = 20, jobs: int = 1):
        if not exe or not Path(exe).exists():
            raise SystemExit(
                f"olaf: {exe} not found (--olaf-bin or OLAF_BIN: the `olaf_c` binary of Olaf's C core, "
                "built outside this repository)"
            )
        self.exe = exe
        self.batch, self.jobs = batch, jobs
        self.home: Path | None = None
        self.sr = 16000

    def _run(self, args: list[str]) -> str:
        env = dict(os.environ, HOME=str(self.home))
        res = self.run([self.exe, *args], env=env)
        if res.returncode != 0:
            raise RuntimeError(f"olaf {args[0]} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        return res.stdout

    def build(self, paths, workdir):
        from songmine.audio import load

        self.home = workdir / "olaf-home"
        db = self.home / ".olaf" / "db"
        db.mkdir(parents=True)
        raw = workdir / "track.raw"
        t0 = time.perf_counter()
        failed = 0
        for path in paths:
            try:
                load(path, sr=self.sr).astype("<f4").tofile(raw)
                self._run(["store", str(raw), str(path)])
            except Exception as e:  # one bad track never aborts the build
                failed += 1
                print(f"  olaf: {path}: {e}", file=sys.stderr)
        raw.unlink(missing_ok=True)
        return BuildStats(
            n_tracks=len(paths) - failed, n_failed=failed, seconds=time.perf_counter() - t0, index_bytes=dir_bytes(db)
        )

    def state(self):
        return {"home": str(self.home)}

    def restore(self, state):
        self.home = Path(state["home"])

    @staticmethod
    def parse(text: str) -> Answer:
        """The first result line ``count, q_start, q_stop, path, id, ref_start, ref_stop`` → (path, offset, count)."""
        for line in text.splitlines():
            f = line.split(", ")
            if len(f) < 7 or not f[0].strip().isdigit() or int(f[0]) == 0:
                continue
            path = ", ".join(f[3:-3])  # a path may hold ", "
            return path, float(f[-2]) - float(f[1]), float(f[0])
        return None, None, None

    def match_batch(self, wavs):
        import soxr

        out: dict[str, Answer] = {}
        with tempfile.TemporaryDirectory(prefix="olaf-q-") as tmp:
            raw = Path(tmp) / "q.raw"
            for wav in wavs:
                y, sr = sf.read(wav, dtype="float32")
                soxr.resample(y, sr, self.sr).astype("<f4").tofile(raw)
                out[str(wav)] = self.parse(self._run(["query", str(raw), str(wav)]))
        return out

    def startup_seconds(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.exe, "name_to_id", "x"], capture_output=True, env=dict(os.environ, HOME=str(self.home)))
        return time.perf_counter() - t0


_QFP_DRIVER = r"""
import json, sys
from qfp import QueryFingerprint, ReferenceFingerprint
from qfp.db import QfpDB
cmd, dbpaths, files = sys.argv[1], sys.argv[2].split("|"), sys.argv[3:]
dbs = [QfpDB(p) for p in dbpaths]
for f in files:
    try:
        if cmd == "store":
            fp = ReferenceFingerprint(f); fp.create(); dbs[0].store(fp, f)
            print(json.dumps({"file": f}), flush=True)
        else:
            fp = QueryFingerprint(f); fp.create()
            matches = []
            for db in dbs:  # shards of one library: candidates are per record, so this equals one db
                db.query(fp); matches += fp.matches
            best = max(matches, key=lambda m: m.vScore, default=None)
            print(json.dumps({"file": f, "record": best and best.record, "offset": best and float(best.offset),
                              "score": best and float(best.vScore)}), flush=True)
    except Exception as e:
        print(json.dumps({"file": f, "error": repr(e)}), flush=True)
"""


class Qfp(Peer):
    """``qfp`` from PyPI (quad-based fingerprints of Sonnleitner & Widmer, SQLite R-tree), default settings.

    Driven through its Python API by a small driver run in its own venv
    (``--qfp-python``); a query's answer is its match with the highest
    verification score (qfp keeps those ≥ 0.5). Offsets are in its 4-ms STFT
    hops (8 kHz / 32). qfp fingerprints only the first 15 s of a query. With
    ``jobs`` > 1 the library is stored in that many shards in parallel and
    each query searches all of them (its candidates are per record, so the
    answers are those of one database).
    """

    name = "qfp"
    hop_s = 32 / 8000

    def __init__(self, python: str, batch: int = 50, jobs: int = 1):
        if not python or not Path(python).exists():
            raise SystemExit(
                f"qfp: interpreter {python} not found (--qfp-python or QFP_PYTHON: a venv where `pip install qfp` ran)"
            )
        self.python = python
        self.batch, self.jobs = batch, jobs
        self.dbs: list[Path] = []

    def _run(self, cmd: str, files: list, dbs: list[Path]) -> list[dict]:
        res = self.run([self.python, "-c", _QFP_DRIVER, cmd, "|".join(map(str, dbs)), *map(str, files)])
        if res.returncode != 0:
            raise RuntimeError(f"qfp {cmd} failed ({res.returncode}): {res.stderr.strip()[-500:]}")
        return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]

    def build(self, paths, workdir):
        """``jobs`` processes each store every jobs-th track into a shard of their own (SQLite has one writer)."""
        from concurrent.futures import ThreadPoolExecutor

        n = max(1, min(self.jobs, len(paths)))
        self.dbs = [workdir / f"qfp-{i}.db" for i in range(n)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=n) as pool:
            parts = list(pool.map(lambda i: self._run("store", paths[i::n], [self.dbs[i]]), range(n)))
        done = [d for part in parts for d in part]
        for d in done:
            if "error" in d:
                print(f"  qfp: {d['file']}: {d['error']}", file=sys.stderr)
        failed = sum("error" in d for d in done) + len(paths) - len(done)
        return BuildStats(
            n_tracks=len(paths) - failed,
            n_failed=failed,
            seconds=time.perf_counter() - t0,
            index_bytes=sum(dir_bytes(db) for db in self.dbs),
        )

    def state(self):
        return {"dbs": [str(d) for d in self.dbs]}

    def restore(self, state):
        self.dbs = [Path(d) for d in state["dbs"]]

    def match_batch(self, wavs):
        out: dict[str, Answer] = {}
        for d in self._run("query", wavs, self.dbs):
            if d.get("record"):
                out[d["file"]] = (d["record"], d["offset"] * self.hop_s, d["score"])
        return out

    def startup_seconds(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.python, "-c", "import qfp.db, qfp.fingerprint"], capture_output=True)
        return time.perf_counter() - t0


#: Chromaprint's sub-fingerprint step: frames of 4,096 samples at 11,025 Hz with 2/3 overlap
CHROMAPRINT_HOP_S = 4096 / 3 / 11025
#: the margin (in null standard deviations, see :func:`chromaprint_margin`) below which no answer is given;
#: calibrated on the 1,000 non-member clips of a seed-1 run (another split and other clips than the
#: seed-0 evaluation): the smallest step of 0.5 that answers at most 0.5 % of them (5 of 1,000; 1.7 answers
#: none), the false-positive budget of songmine's own margin test; docs/eval.md has the table
CHROMAPRINT_MARGIN = 1.5


def parse_fpcalc_raw(text: str) -> np.ndarray:
    """The ``FINGERPRINT=`` line of ``fpcalc -raw`` (unsigned, comma-separated) → uint32 array (empty if none)."""
    for line in text.splitlines():
        if line.startswith("FINGERPRINT="):
            body = line.partition("=")[2].strip()
            return np.array(body.split(","), dtype=np.uint32) if body else np.zeros(0, np.uint32)
    return np.zeros(0, np.uint32)


def chromaprint_search(query: np.ndarray, ref: np.ndarray, bounds: np.ndarray, *, block: int = 1 << 22):
    """Exhaustive bit-error search of a query fingerprint over every offset of every track.

    Parameters
    ----------
    query : np.ndarray [shape=(m,), dtype=uint32]
        The clip's sub-fingerprints.
    ref : np.ndarray [shape=(n,), dtype=uint32]
        Every track's sub-fingerprints, concatenated.
    bounds : np.ndarray [shape=(n_tracks + 1,), dtype=int64]
        Track ``t`` is ``ref[bounds[t]:bounds[t + 1]]`` (no empty track).
    block : int
        Offsets are scored ``block // m`` at a time (bounds the memory; each block is vectorised).

    Returns
    -------
    errors : np.ndarray [shape=(n_tracks,), dtype=int64]
        Per track, the fewest differing bits over its offsets (``32 * m + 1`` for a
        track shorter than the query).
    offsets : np.ndarray [shape=(n_tracks,), dtype=int64]
        The offset, in sub-fingerprints, where each track's fewest occur.
    spread : float
        Standard deviation of the bit errors over every valid offset of every
        track: the chance level's spread for this query (0 when fewer than 2).
    """
    m, n_tracks = len(query), len(bounds) - 1
    worst = 32 * m + 1
    errors = np.full(n_tracks, worst, dtype=np.int64)
    offsets = np.zeros(n_tracks, dtype=np.int64)
    n_starts = len(ref) - m + 1
    if m == 0 or n_starts <= 0:
        return errors, offsets, 0.0
    windows = np.lib.stride_tricks.sliding_window_view(ref, m)
    cost = np.empty(n_starts, dtype=np.int64)
    step = max(1, block // m)
    for lo in range(0, n_starts, step):  # blocks of offsets, each block vectorised
        hi = min(n_starts, lo + step)
        cost[lo:hi] = np.bitwise_count(windows[lo:hi] ^ query).sum(axis=1, dtype=np.int64)
    # a start is valid when the whole query lies inside one track
    lengths = np.diff(bounds)
    track_of = np.repeat(np.arange(n_tracks), lengths)[:n_starts]
    valid = np.arange(n_starts) + m <= bounds[track_of + 1]
    if not valid.any():
        return errors, offsets, 0.0
    cost[~valid] = worst
    firsts = bounds[:-1]
    has = firsts < n_starts
    errors[has] = np.minimum.reduceat(cost, firsts[has])
    at_min = np.flatnonzero(cost == errors[track_of])
    tracks, first = np.unique(track_of[at_min], return_index=True)
    offsets[tracks] = at_min[first] - bounds[tracks]
    errors[errors > 32 * m] = worst
    spread = float(cost[valid].std()) if valid.sum() > 1 else 0.0
    return errors, offsets, spread


def chromaprint_margin(errors: np.ndarray, spread: float) -> tuple[int, float]:
    """(best track, margin): the runner-up track's bit errors minus the best's, over the chance spread.

    ``spread`` is the standard deviation of the query's bit errors over all
    offsets (:func:`chromaprint_search`): measured per query rather than
    assumed (adjacent sub-fingerprints share most of their audio, so their
    bits are far from independent). A clip of an indexed track has one track
    far below the rest; a clip of another track has a best and a runner-up
    that are both chance minima, close together. 0 with one track.
    """
    order = np.argsort(errors, kind="stable")
    if len(errors) < 2 or spread <= 0:
        return int(order[0]), 0.0
    return int(order[0]), float(errors[order[1]] - errors[order[0]]) / spread


class Chromaprint(Peer):
    """Chromaprint's ``fpcalc -raw`` (Debian ``libchromaprint-tools``), matched exhaustively.

    Every indexed track is fingerprinted at full length (``-length 0``), one
    ``fpcalc`` process per track; the fingerprints are concatenated into one
    uint32 array (saved as the "index"). Each query clip gets its own ``fpcalc``
    process; its sub-fingerprints are compared with every offset of every track
    by the number of differing bits (:func:`chromaprint_search`), and the best
    track is the answer only when its margin over the runner-up track is at
    least ``margin`` (:func:`chromaprint_margin`; ``margin=0`` answers always,
    which is how the rule is calibrated). fpcalc gives ``(seconds * 8.07) - 21``
    or so sub-fingerprints (8 per second, less a 2.6-s warm-up): 3 for a 3-s clip, 59 for 10 s,
    none under 2.8 s (fpcalc: "Empty fingerprint"; such a clip gets no answer).
    """

    name = "chromaprint"

    def __init__(self, exe: str = "fpcalc", batch: int = 20, jobs: int = 1, margin: float = CHROMAPRINT_MARGIN):
        import shutil

        found = shutil.which(exe)
        if found is None:
            raise SystemExit(
                f"chromaprint: {exe} not found (--fpcalc or FPCALC: Chromaprint's `fpcalc`, e.g. "
                "Debian's `apt-get install libchromaprint-tools`; a dev-only peer, outside this repository)"
            )
        self.exe = found
        self.batch, self.jobs, self.margin = batch, jobs, float(margin)
        self.ref = np.zeros(0, np.uint32)
        self.bounds = np.zeros(1, np.int64)
        self.paths: list[str] = []
        self.index: Path | None = None

    def fingerprint(self, path: Path | str) -> np.ndarray:
        """``fpcalc -raw -length 0 path`` → uint32 sub-fingerprints (RuntimeError when it printed none).

        fpcalc 1.5.1 exits with 3 ("Error decoding audio frame (End of file)") on every
        file here, WAV included, while printing the whole fingerprint: the fingerprint is
        what counts (a clip under 2.8 s gets "Empty fingerprint", exit 2).
        """
        res = self.run([self.exe, "-raw", "-length", "0", str(path)])
        fp = parse_fpcalc_raw(res.stdout)
        if not len(fp) and res.returncode != 0:
            raise RuntimeError(f"fpcalc failed ({res.returncode}): {res.stderr.strip()[-300:]}")
        return fp

    def build(self, paths, workdir):
        t0 = time.perf_counter()
        fps, kept, failed = [], [], 0
        for path in paths:
            try:
                fp = self.fingerprint(path)
                if not len(fp):
                    raise RuntimeError("no fingerprint (too short?)")
            except Exception as e:  # one bad track never aborts the build
                failed += 1
                print(f"  chromaprint: {path}: {e}", file=sys.stderr)
                continue
            fps.append(fp)
            kept.append(str(path))
        self.paths = kept
        self.ref = np.concatenate(fps) if fps else np.zeros(0, np.uint32)
        self.bounds = np.r_[0, np.cumsum([len(f) for f in fps])].astype(np.int64)
        self.index = idx = workdir / "chromaprint.npz"
        np.savez(idx, fingerprints=self.ref, bounds=self.bounds)
        return BuildStats(
            n_tracks=len(kept), n_failed=failed, seconds=time.perf_counter() - t0, index_bytes=idx.stat().st_size
        )

    def state(self):
        return {"index": str(self.index), "paths": self.paths}

    def restore(self, state):
        self.index, self.paths = Path(state["index"]), list(state["paths"])
        with np.load(self.index) as z:
            self.ref, self.bounds = z["fingerprints"], z["bounds"]

    def settings(self):
        return {"margin": self.margin}

    def answer(self, fp: np.ndarray) -> Answer:
        """The best track, its offset (s) and margin, or ``(None, None, None)`` under ``self.margin``."""
        if not len(fp) or not self.paths:
            return None, None, None
        errors, offsets, spread = chromaprint_search(fp, self.ref, self.bounds)
        best, margin = chromaprint_margin(errors, spread)
        if errors[best] > 32 * len(fp) or margin < self.margin:
            return None, None, None
        return self.paths[best], float(offsets[best] * CHROMAPRINT_HOP_S), margin

    def match_batch(self, wavs):
        out: dict[str, Answer] = {}
        for wav in wavs:
            try:
                out[str(wav)] = self.answer(self.fingerprint(wav))
            except RuntimeError as e:
                print(f"  chromaprint: {wav}: {e}", file=sys.stderr)
        return out

    def startup_seconds(self) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.exe, "-version"], capture_output=True)
        return time.perf_counter() - t0


def margin_table(report, thresholds: list[float]) -> str:
    """FP and top-1 per duration of a run made with ``margin=0``, had the answers needed ``score ≥ t``.

    For calibrating :class:`Chromaprint`'s margin on a run that is not the one reported.
    """
    outs = [o for o in report.outcomes if o.error is None]
    durs = sorted({o.duration_s for o in outs})
    head = "| margin ≥ | " + " | ".join(f"FP {d:g} s | top-1 {d:g} s" for d in durs) + " | FP all (n) |"
    lines = [head, "|---:|" + "---:|---:|" * len(durs) + "---:|"]
    for t in thresholds:
        row = []
        for d in durs:
            non = [o for o in outs if not o.member and o.duration_s == d]
            mem = [o for o in outs if o.member and o.duration_s == d]
            fp = sum(o.answered and o.score >= t for o in non)
            ok = sum(o.correct and o.score >= t for o in mem)
            row += [f"{100 * fp / max(1, len(non)):.1f}", f"{100 * ok / len(mem):.1f}" if mem else "–"]
        non = [o for o in outs if not o.member]
        fp = sum(o.answered and o.score >= t for o in non)
        lines.append(f"| {t:g} | " + " | ".join(row) + f" | {100 * fp / max(1, len(non)):.2f} ({len(non)}) |")
    return "\n".join(lines) + "\n"


def write_queries(
    specs: list[QuerySpec], cfg: EvalConfig, folder: Path
) -> list[tuple[QuerySpec, float | None, Path | None, str | None]]:
    """Cut every query once and write it as float32 WAV; returns (spec, offset, wav, error).

    A query whose WAV is already in ``folder`` (a ``--workdir`` of an earlier
    run with the same settings) is reused; its offset is read back from the
    name (to 0.01 s).
    """
    rows = []
    have = {int(p.name[1:6]): p for p in folder.glob("q[0-9][0-9][0-9][0-9][0-9]_*.wav")}
    todo = []
    for spec in specs:
        wav = have.get(spec.qid)
        if wav is not None and wav.name.startswith(f"q{spec.qid:05d}_{spec.condition}_{spec.duration_s:g}s_"):
            rows.append((spec, float(wav.stem.rpartition("@")[2]), wav, None))
        else:
            todo.append(spec)
    for q in cut_queries(todo, cfg):
        if isinstance(q, tuple):
            rows.append((q[0], None, None, q[1]))
            continue
        wav = folder / f"{q.name}.wav"
        sf.write(wav, q.clip, q.sr, subtype="FLOAT")
        rows.append((q.spec, q.offset_s, wav, None))
    rows.sort(key=lambda r: r[0].qid)
    return rows


def run_songmine(method: str, indexed, rows, cfg: EvalConfig, jobs: int):
    ident = make_identifier(method)
    try:
        with PeakMemory() as mem:
            build = ident.build(indexed, jobs=jobs, progress=None)
        build.peak_rss_mb, build.peak_rss_how, build.cpu_seconds = mem.peak_mb, mem.how, mem.cpu_seconds

        def queries():
            for spec, offset, wav, err in rows:
                if err is not None:
                    yield (spec, err)
                else:
                    y, sr = sf.read(wav, dtype="float32")
                    yield Query(spec, offset, y, sr)

        outcomes = run_queries(ident, queries(), cfg)
    finally:
        ident.close()
    return build, outcomes


class Journal:
    """A peer's run kept in ``--workdir`` as it goes, so a stopped run loses only its batch in flight.

    ``DIR/build.json`` holds the build's statistics, what the peer needs to
    use its index again (:meth:`Peer.state`) and the settings of the run;
    ``DIR/answers.jsonl`` one line per finished batch: its answers, and the
    CPU and wall seconds and queries of the session so far (appended and
    flushed at once). ``--resume`` takes both up and matches only the queries
    not answered yet; ``--partial`` scores the queries answered so far. The
    CPU and wall time per query are the sums over the sessions ÷ the queries.
    """

    def __init__(self, folder: Path, settings: dict):
        self.folder, self.settings = folder, json.loads(json.dumps(settings))  # as it reads back
        self.build_file, self.answers_file = folder / "build.json", folder / "answers.jsonl"

    def exists(self) -> bool:
        return self.build_file.exists()

    def load_build(self) -> tuple[BuildStats, dict]:
        d = json.loads(self.build_file.read_text())
        if d.get("settings") != self.settings:
            theirs = d.get("settings") or {}
            diff = sorted(k for k in set(theirs) | set(self.settings) if theirs.get(k) != self.settings.get(k))
            raise SystemExit(
                f"{self.folder}: a saved run with other settings ({', '.join(diff)}); "
                "remove the folder to start that peer over"
            )
        return BuildStats(**d["build"]), d["state"]

    def save_build(self, build: BuildStats, state: dict) -> None:
        from songmine.atomic import atomic_path

        with atomic_path(self.build_file) as tmp:
            tmp.write_text(json.dumps({"settings": self.settings, "build": asdict(build), "state": state}, indent=1))

    def load_answers(self) -> tuple[dict[str, Answer], float, float, int]:
        """``(answers by WAV path, CPU s, wall s × jobs, queries)`` over every session recorded."""
        answers: dict[str, Answer] = {}
        sessions: dict[str, tuple[float, float, int]] = {}
        if not self.answers_file.exists():
            return answers, 0.0, 0.0, 0
        for line in self.answers_file.read_text().splitlines():
            try:
                d = json.loads(line)
            except ValueError:  # a line cut short by a stop in the middle of writing it
                continue
            for wav, a in d["answers"].items():
                answers[wav] = tuple(a) if a else (None, None, None)
            sessions[d["session"]] = (d["cpu_s"], d["wall_jobs_s"], d["n"])
        cpu, wall, n = (sum(v[i] for v in sessions.values()) for i in range(3))
        return answers, cpu, wall, int(n)

    def record(
        self, session: str, chunk: list[Path], answers: dict[str, Answer], cpu_s: float, wall_jobs_s: float, n: int
    ) -> None:
        line = json.dumps(
            {
                "session": session,
                "answers": {str(w): answers.get(str(w)) for w in chunk},
                "cpu_s": cpu_s,
                "wall_jobs_s": wall_jobs_s,
                "n": n,
            }
        )
        with open(self.answers_file, "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def run_peer(
    peer: Peer,
    indexed,
    rows,
    cfg: EvalConfig,
    workdir: Path,
    durations: dict[str, float],
    journal: Journal | None = None,
    *,
    more: bool = True,
):
    """Build (or, with a saved ``journal``, take up the saved build), match the queries not answered yet
    (none unless ``more``), and score every row; the journal records each batch as it finishes."""
    done: dict[str, Answer] = {}
    cpu_before = wall_before = 0.0
    n_before = 0
    if journal is not None and journal.exists():
        build, state = journal.load_build()
        peer.restore(state)
        done, cpu_before, wall_before, n_before = journal.load_answers()
    else:
        peer.max_process_mb = 0.0
        with PeerMemory() as mem:
            build = peer.build(indexed, workdir)
        build.peak_rss_mb = max(mem.peak_mb, peer.max_process_mb)
        build.peak_rss_how, build.cpu_seconds = mem.how, mem.cpu_seconds
        build.audio_seconds = sum(durations[str(p)] for p in indexed)
        if journal is not None:
            journal.save_build(build, peer.state())
    wavs = [wav for _, _, wav, err in rows if err is None]
    todo = [w for w in wavs if str(w) not in done] if more else []
    session = f"{time.time():.3f}-{os.getpid()}"
    t0, c0 = time.perf_counter(), PeakMemory._cpu()
    n_now = [0]

    def keep(chunk, answers):
        n_now[0] += len(chunk)
        journal.record(
            session, chunk, answers, PeakMemory._cpu() - c0, (time.perf_counter() - t0) * max(1, peer.jobs), n_now[0]
        )

    answers = peer.match(todo, on_batch=keep if journal is not None else None, of=len(wavs)) if todo else {}
    answers.update({w: a for w, a in done.items() if a[0] is not None})
    n = n_before + len(todo)
    # wall time per query as one process would see it: the batches ran `jobs` at a time
    per_query = (wall_before + (time.perf_counter() - t0) * max(1, peer.jobs)) / max(1, n)
    cpu_per_query = (cpu_before + PeakMemory._cpu() - c0) / max(1, n)
    outcomes = []
    for spec, offset, wav, err in rows:
        o = Outcome(spec.qid, spec.track, spec.member, spec.condition, spec.duration_s, offset, error=err)
        if err is None:
            o.latency_s, o.cpu_s = per_query, cpu_per_query
            track, off, score = answers.get(str(wav), (None, None, None))
            if track is not None:
                o.answered, o.top_path, o.top_offset_s, o.score = True, track, off, score
                o.correct = spec.member and same_file(track, spec.track)
                if o.correct:
                    o.offset_error_s = off - offset
                    o.offset_ok = abs(o.offset_error_s) <= cfg.offset_tolerance_s
        outcomes.append(o)
    return build, outcomes


def _subset(specs: list[QuerySpec], per_cell: int | None, nonmember: int | None) -> list[QuerySpec]:
    """The first ``per_cell`` member queries of every cell and the first ``nonmember`` others, by qid."""
    seen: dict[tuple[str, float], int] = {}
    out, n_other = [], 0
    for s in specs:
        if s.member:
            k = (s.condition, s.duration_s)
            if per_cell is None or seen.get(k, 0) < per_cell:
                seen[k] = seen.get(k, 0) + 1
                out.append(s)
        elif nonmember is None or n_other < nonmember:
            n_other += 1
            out.append(s)
    return out


def _rescore(rep, keep: set[int], cfg: EvalConfig, label: str):
    """Re-summarise a saved report on the queries in ``keep`` (its build numbers are kept)."""
    b = rep.build
    build = BuildStats(
        n_tracks=b["n_tracks"],
        n_failed=b["n_failed"],
        audio_seconds=b["audio_hours"] * 3600,
        seconds=b["seconds"],
        index_bytes=int(b["index_mb"] * 1e6),
        peak_rss_mb=b["peak_rss_mb"],
        peak_rss_how=b["peak_rss_how"],
        cpu_seconds=b.get("cpu_seconds"),
    )
    out = summarise(
        [o for o in rep.outcomes if o.qid in keep],
        cfg,
        build=build,
        method=rep.method,
        library=rep.library,
        n_indexed=rep.n_indexed,
        n_held_out=rep.n_held_out,
    )
    out.seconds = rep.seconds
    return out


#: the settings that make the same clips: saved runs and reports must agree on them
_SAME_CLIPS = (
    "tracks",
    "durations",
    "conditions",
    "queries_per_cell",
    "nonmember_queries",
    "seed",
    "sr",
    "silence_dbfs",
)


def _load_reports(path: Path, cfg: EvalConfig, library: Path) -> dict:
    """``{label: EvalReport}`` from ``songmine eval --save-json`` or this script's ``--json``."""
    d = json.loads(path.read_text())
    if "method" in d:
        return {f"songmine {d['method']}": _load_report(d, path, cfg, library)}
    return {label: _load_report(r, path, cfg, library) for label, r in d.items()}


def _load_report(d: dict, path: Path, cfg: EvalConfig, library: Path):
    """One EvalReport from its JSON, refused unless made with the same settings."""
    from songmine.evaluation.report import Cell, EvalReport

    theirs, ours = d["config"], asdict(cfg)
    diff = [k for k in _SAME_CLIPS if list(np.atleast_1d(theirs[k])) != list(np.atleast_1d(ours[k]))]
    if diff or Path(d["library"]).resolve() != library.resolve():
        raise SystemExit(f"{path}: made with other settings ({', '.join(diff) or 'library'}): not the same queries")
    d["cells"] = [Cell(**c) for c in d["cells"]]
    d["outcomes"] = [Outcome(**o) for o in d.get("outcomes", [])]
    return EvalReport(**d)


def side_by_side(reports: dict, cfg: EvalConfig) -> str:
    names = list(reports)
    durs = cfg.durations
    head = "| condition | dur | " + " | ".join(names) + " | best peer (another corpus) |"
    lines = [head, "|---|---:|" + "---:|" * (len(names) + 1)]
    for cond in cfg.conditions:
        for d in durs:
            vals = []
            for n in names:
                c = next(c for c in reports[n].cells if c.condition == cond and c.duration_s == d)
                vals.append("–" if c.top1 is None else f"{c.top1:.1f}")
            c0 = next(c for c in reports[names[0]].cells if c.condition == cond and c.duration_s == d)
            peer = "–" if c0.peer_top1 is None else f"{c0.peer_top1:.1f} {c0.peer}"
            lines.append(f"| {cond} | {d:g} s | " + " | ".join(vals) + f" | {peer} |")

    def row(label, f):
        return f"| {label} | | " + " | ".join(f(reports[n]) for n in names) + " | |"

    def fmt(v, spec="{:.1f}"):
        return "–" if v is None else spec.format(v)

    for d in durs:
        lines.append(row(f"**pooled {d:g} s**", lambda r, d=d: fmt(r.pooled[f"{d:g}"]["top1"])))
    lines += [
        row(
            "false positives % (n)", lambda r: f"{fmt(r.false_positives['rate'], '{:.2f}')} ({r.false_positives['n']})"
        ),
        row("members answered wrong %", lambda r: fmt(r.false_positives["members_answered_wrong_rate"], "{:.2f}")),
        row("offset within ±0.5 s % of right", lambda r: fmt(r.offset_error_s.get("within_tolerance"))),
        row("query time median ms (wall)", lambda r: fmt(r.latency_ms.get("median"))),
        row("query CPU median ms", lambda r: fmt(r.latency_ms.get("cpu_median"))),
        row("build × real time (wall)", lambda r: fmt(r.build["x_realtime"])),
        row("build × real time per CPU s", lambda r: fmt(r.build["x_realtime_per_cpu"])),
        row("index MB per hour", lambda r: fmt(r.build["mb_per_hour"], "{:.2f}")),
        row("peak memory building MB", lambda r: fmt(r.build["peak_rss_mb"], "{:.0f}")),
    ]
    ref = names[0]
    lines.append("")
    for n in names[1:]:
        ra, rb = reports[ref], reports[n]
        a, b = ra.build.get("x_realtime_per_cpu"), rb.build.get("x_realtime_per_cpu")
        what = "per CPU second"
        if not (a and b):
            a, b, what = ra.build["x_realtime"], rb.build["x_realtime"], "wall"
        if a and b:
            lines.append(f"build speed {ref} / {n} ({what}): {a / b:.2f} ×")
        la, lb, what = ra.latency_ms.get("cpu_median"), rb.latency_ms.get("cpu_median"), "CPU"
        if not (la and lb):
            la, lb, what = ra.latency_ms.get("median"), rb.latency_ms.get("median"), "wall"
        if la and lb:
            lines.append(f"median query time {n} / {ref} ({what}): {lb / la:.2f} ×")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("library", type=Path)
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--durations", default="1,2,3,5,10")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--queries-per-cell", type=int, default=40)
    ap.add_argument("--nonmember-queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sr", type=int, default=22050)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--peers",
        default="songmine,audfprint",
        help="comma-separated: songmine[:method], audfprint, audfprint2, olaf, qfp, chromaprint",
    )
    ap.add_argument(
        "--audfprint",
        type=Path,
        default=os.environ.get("AUDFPRINT_DIR", ""),
        help="a checkout of audfprint (or AUDFPRINT_DIR)",
    )
    ap.add_argument(
        "--peer-python",
        default=os.environ.get("PEER_PYTHON", ""),
        help="the interpreter of audfprint's venv (or PEER_PYTHON)",
    )
    ap.add_argument(
        "--audfprint2-bin",
        default=os.environ.get("AUDFPRINT2_BIN", ""),
        help="the audfprint script of a venv with audfprint2 (or AUDFPRINT2_BIN)",
    )
    ap.add_argument(
        "--olaf-bin", default=os.environ.get("OLAF_BIN", ""), help="the olaf_c binary of Olaf's C core (or OLAF_BIN)"
    )
    ap.add_argument(
        "--qfp-python",
        default=os.environ.get("QFP_PYTHON", ""),
        help="the interpreter of a venv with qfp (or QFP_PYTHON)",
    )
    ap.add_argument(
        "--fpcalc",
        default=os.environ.get("FPCALC", "fpcalc"),
        help="Chromaprint's fpcalc (Debian: apt-get install libchromaprint-tools)",
    )
    ap.add_argument(
        "--chromaprint-margin",
        type=float,
        default=CHROMAPRINT_MARGIN,
        help="answer only when the best track's bit errors beat the runner-up track's by this many "
        "null standard deviations (0: always answer, for calibrating; see --margin-table)",
    )
    ap.add_argument(
        "--margin-table",
        default=None,
        metavar="T1,T2,...",
        help="also print, for every chromaprint column, false positives and top-1 per duration "
        "had its answers needed a margin >= each T (meaningful for a run made with margin 0)",
    )
    ap.add_argument(
        "--peer-jobs",
        type=int,
        default=1,
        help="match query batches in this many concurrent peer processes (indexing stays one process)",
    )
    ap.add_argument(
        "--report",
        type=Path,
        action="append",
        default=[],
        help="add saved reports as columns instead of re-running them: a `songmine eval "
        "--save-json` file or this script's --json; refused unless made with the same "
        "settings (same split, plan and clips)",
    )
    ap.add_argument(
        "--max-per-cell",
        type=int,
        default=None,
        help="run peers on only the first N member queries of each cell (and --max-nonmember); "
        "--report columns are re-scored on the same subset",
    )
    ap.add_argument("--max-nonmember", type=int, default=None)
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the query WAVs here (and reuse those already there) instead of a temp dir",
    )
    ap.add_argument(
        "--resume",
        action="store_true",
        help="take up the peers' runs saved in --workdir (their build and the batches answered so far) "
        "and match only the queries not answered yet",
    )
    ap.add_argument(
        "--partial",
        action="store_true",
        help="score only the queries that every peer's saved run in --workdir has answered so far, "
        "running no more (--report columns are re-scored on the same queries)",
    )
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    cfg = EvalConfig(
        tracks=args.tracks,
        durations=tuple(float(x) for x in args.durations.split(",")),
        conditions=tuple(args.conditions.split(",")),
        queries_per_cell=args.queries_per_cell,
        nonmember_queries=args.nonmember_queries,
        seed=args.seed,
        sr=args.sr,
    )
    t_all = time.perf_counter()
    indexed, held, durations = split_library(args.library, cfg)
    specs = plan_queries(indexed, held, durations, cfg)
    if args.max_per_cell is not None or args.max_nonmember is not None:
        specs = _subset(specs, args.max_per_cell, args.max_nonmember)
    to_run = [n for n in args.peers.split(",") if n]
    factories = {
        "audfprint": lambda: Audfprint(args.audfprint, args.peer_python, jobs=args.peer_jobs),
        "audfprint2": lambda: Audfprint2(args.audfprint2_bin, jobs=args.peer_jobs),
        "olaf": lambda: Olaf(args.olaf_bin, jobs=args.peer_jobs),
        "qfp": lambda: Qfp(args.qfp_python, jobs=args.peer_jobs),
        "chromaprint": lambda: Chromaprint(args.fpcalc, jobs=args.peer_jobs, margin=args.chromaprint_margin),
    }
    unknown = [n for n in to_run if not n.startswith("songmine") and n not in factories]
    if unknown:
        raise SystemExit(f"unknown peer(s) {', '.join(unknown)}: choose from songmine[:method], {', '.join(factories)}")
    if (args.resume or args.partial) and args.workdir is None:
        raise SystemExit("--resume and --partial take up runs saved in --workdir: give --workdir")
    peers = {n: factories[n]() for n in to_run if n in factories}  # a peer that is not installed stops us here
    journals: dict[str, Journal] = {}
    if args.workdir is not None:
        same = {k: v for k, v in asdict(cfg).items() if k in _SAME_CLIPS}
        same.update(library=str(args.library.resolve()), indexed=[str(p) for p in indexed])
        for name, peer in peers.items():
            j = journals[name] = Journal(args.workdir / "peers" / name, dict(same, peer=name, **peer.settings()))
            if j.exists() and not (args.resume or args.partial):
                raise SystemExit(
                    f"{j.folder} holds a saved run of {name}: --resume to go on with it, --partial to "
                    "score it, or remove the folder to start over"
                )
            if (args.resume or args.partial) and not j.exists():
                if args.partial:
                    raise SystemExit(f"--partial: {j.folder} holds no saved run of {name}")
                if j.folder.exists():  # a build that was stopped before it finished: nothing to keep
                    shutil.rmtree(j.folder)
    reports = {}
    notes = []
    with tempfile.TemporaryDirectory(prefix="songmine-peers-") as tmp:
        tmp = Path(tmp)
        qdir = args.workdir / "q" if args.workdir else tmp / "q"
        qdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        rows = write_queries(specs, cfg, qdir) if to_run else []
        print(
            f"{len(rows)} queries written in {time.perf_counter() - t0:.0f} s "
            f"({len(indexed)} tracks indexed, {len(held)} held out)",
            file=sys.stderr,
        )
        if args.partial and journals:
            answered = set.intersection(*(set(j.load_answers()[0]) for j in journals.values()))
            n_all = len(rows)
            rows = [r for r in rows if r[2] is not None and str(r[2]) in answered]
            specs = [r[0] for r in rows]
            notes.append(f"partial: the {len(rows)} of {n_all} queries that every saved peer run has answered so far")
        keep = {s.qid for s in specs}
        for js in args.report:
            for label, rep_ in _load_reports(js, cfg, args.library).items():
                if len(keep) < rep_.n_queries:
                    rep_ = _rescore(rep_, keep, cfg, label)
                reports[label] = rep_
                notes.append(
                    f"{label}: loaded from {js} (same settings and seed, so the same clips; run "
                    "separately, so compare CPU times rather than wall times)"
                )
        for name in to_run:
            t0 = time.perf_counter()
            if name.startswith("songmine"):
                method = name.partition(":")[2] or "landmark"
                build, outcomes = run_songmine(method, indexed, rows, cfg, args.jobs)
                label = f"songmine {method}"
            elif name in factories:
                peer = peers[name]
                journal = journals.get(name)
                work = journal.folder if journal is not None else tmp / name
                work.mkdir(parents=True, exist_ok=True)
                try:
                    build, outcomes = run_peer(
                        peer, indexed, rows, cfg, work, durations, journal, more=not args.partial
                    )
                except (RuntimeError, OSError, KeyboardInterrupt) as exc:
                    if journal is None or not journal.exists():
                        raise
                    n_done = len(journal.load_answers()[0])
                    print(
                        f"{name} stopped ({type(exc).__name__}: {str(exc)[-300:]}); {n_done} of {len(rows)} "
                        f"queries answered are kept in {journal.folder}: --resume goes on, --partial scores them",
                        file=sys.stderr,
                    )
                    return 1
                notes.append(
                    f"{name}: process start-up {peer.startup_seconds():.2f} s; queries in batches of "
                    f"{peer.batch} per process, {peer.jobs} process(es) at a time"
                )
                label = name
            else:
                raise SystemExit(f"unknown peer {name!r}")
            reports[label] = summarise(
                outcomes,
                cfg,
                build=build,
                method=label,
                library=str(args.library),
                n_indexed=len(indexed),
                n_held_out=len(held),
            )
            reports[label].seconds = time.perf_counter() - t0
            print(f"{label}: done in {reports[label].seconds:.0f} s", file=sys.stderr)
    # songmine first: the ratios under the table are against the first column
    reports = dict(sorted(reports.items(), key=lambda kv: not kv[0].startswith("songmine")))
    text = (
        f"# songmine vs peers — {len(indexed)} tracks indexed, {len(held)} held out, "
        f"{len(specs)} queries, seed {cfg.seed} ({time.perf_counter() - t_all:.0f} s)\n\n"
        "Top-1 % per condition × duration (same queries for every system).\n\n"
        + side_by_side(reports, cfg)
        + "".join(f"\n{n}" for n in notes)
        + "\n"
    )
    if args.margin_table:
        ts = [float(x) for x in args.margin_table.split(",")]
        for label, rep_ in reports.items():
            if label.startswith("chromaprint"):
                text += f"\n{label}: answers had they needed margin >= T (%)\n\n" + margin_table(rep_, ts)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        from songmine.cli._app import jsonable

        args.json.write_text(json.dumps(jsonable({k: asdict(v) for k, v in reports.items()}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
