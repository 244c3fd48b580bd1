"""Index store benchmark: build speed, where time goes, memory, size, and lookup at 1,000 hours.

Sections (each prints a table; ratios are against references measured in the same run):

1. stages  — one core, in-process, CPU seconds (``time.process_time``, so the
   load of a shared machine distorts it far less than wall time) on
   ``--stage-files`` files spread over the library: sha256, FFmpeg decode
   alone (the reference: the floor of any decoder-based indexer), the rest
   of ``audio.load`` (convert, mix to mono, resample), spectrogram, peak
   picking, pairs + hashes, tags, and the whole worker task
   (``fingerprint_file``); × real time per CPU second and share. With
   ``--reference REV`` the same stages of revision REV's code run in the same
   process, interleaved file by file (a before/now ratio per stage), and its
   worker output must be identical (hashes, times, tags, duration);
   ``--repeat N`` keeps each timed call's best of N rounds (less noise).
2. build   — ``index_files`` with ``--jobs`` workers into a fresh index: wall
   time and × real time; CPU seconds of workers and parent (the memory
   sampler's own CPU excluded) → × real time per CPU second, and that × jobs
   as the idle-machine estimate; ratio to the decode-only reference of (1);
   peak memory of all processes together (sum of PSS, and of RSS), per
   quarter of the run (flat = does not grow with the files done), and index
   size (MB per hour of audio). With ``--reference REV`` (section 2b) the
   library is also built ``--build-rounds`` times with REV's code and with
   this checkout's, alternating: wall, CPU seconds and postings side by side.
3. lookup  — a synthetic ``--hours``-hour index generated directly (no audio):
   postings at the density measured in (2), hash fields drawn from their
   marginals in the real index, written through the real commit path (so the
   automatic merges run); then the lookup time of real 10-s query clips'
   hashes (``fingerprint(query=True)``), before and after ``compact``.

Run::

    PYTHONPATH=src python benchmarks/index_build.py --library LIBRARY --jobs 2 --hours 1000
    PYTHONPATH=src nice -n 10 python benchmarks/index_build.py --jobs 2 --skip-lookup   # sections 1-2 only
    PYTHONPATH=src nice -n 10 python benchmarks/index_build.py --skip-build --reference 480d4f8 --repeat 3  # 1: before/now
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import TreeMemory, git_commit, library_or_demo, markdown_table


# ---------------------------------------------------------------------- sections
def _decode_only(path: Path) -> None:
    """The reference: FFmpeg's decoder alone (every frame decoded, nothing converted or kept)."""
    import av

    with av.open(str(path)) as container:
        for _ in container.decode(audio=0):
            pass


def _chunks(y, c, chunk_frames: int):
    """The audio spans ``landmarks.landmark_peaks`` takes a spectrogram of (chunks with margins)."""
    n_frames = 0 if y.shape[0] < c.n_fft else 1 + (y.shape[0] - c.n_fft) // c.hop_length
    if n_frames <= chunk_frames:
        return [y]
    bg = max(int(round(c.background_s / c.hop_s)), 1)
    core = (chunk_frames // c.block_frames) * c.block_frames
    margin = int(np.ceil((bg + c.t_radius + 1) / c.block_frames)) * c.block_frames
    spans = [(max(s - margin, 0), min(s + core + margin, n_frames)) for s in range(0, n_frames, core)]
    return [y[a * c.hop_length : (b - 1) * c.hop_length + c.n_fft] for a, b in spans]


def reference_package(rev: str, workdir: Path) -> str:
    """``src/songmine`` of git revision ``rev``, importable as ``songmine_ref`` (its imports are relative)."""
    import io
    import subprocess
    import tarfile

    root = Path(__file__).resolve().parent.parent
    tar = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", rev, "src/songmine"], capture_output=True, check=True
    ).stdout
    dest = workdir / f"reference-{rev}"
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(dest, filter="data")
    (dest / "src" / "songmine").rename(dest / "songmine_ref")
    sys.path.insert(0, str(dest))
    return "songmine_ref"


def _implementation(package: str) -> dict:
    import importlib

    mod = {m: importlib.import_module(f"{package}.{m}") for m in ("audio", "spectral", "landmarks", "index.build")}
    build = mod["index.build"]
    build._preload(None)  # the imports a forked worker inherits, not timed
    return {"audio": mod["audio"], "spectral": mod["spectral"], "landmarks": mod["landmarks"], "build": build}


KEYS = ["sha256", "decode (FFmpeg)", "convert, mix, resample", "spectrogram", "peak picking", "pairs + hashes", "tags"]


def _stage_seconds(impl: dict, f: Path, cfg) -> tuple[dict, float, object]:
    """CPU seconds of each stage of one worker task on ``f``, with this implementation; and the task's output."""
    audio, lm, spectral = impl["audio"], impl["landmarks"], impl["spectral"]
    clock = time.process_time
    t0 = clock()
    with open(f, "rb") as fh:
        hashlib.file_digest(fh, "sha256")
    t1 = clock()
    _decode_only(f)
    t2 = clock()
    y = audio.load(f, sr=cfg.sr)
    t3 = clock()
    for seg in _chunks(y, cfg, lm._CHUNK_FRAMES):  # the spectrogram alone, as landmark_peaks cuts it
        spectral.log_spectrogram(seg, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    t4 = clock()
    t, fb = lm.landmark_peaks(y, cfg)
    t5 = clock()
    c = cfg
    t1_, f1, df, dt = lm.pair_peaks(t, fb, dt_min=c.dt_min, dt_max=c.dt_max, df_max=c.df_max, fan_out=c.fan_out)
    lm.pack_hashes(f1, df, dt)
    t6 = clock()
    audio.info(f)
    t7 = clock()
    task = impl["build"].fingerprint_file(f, cfg)  # the whole worker task, as one
    t8 = clock()
    raw = dict(zip(_RAW, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)))
    return raw, t8 - t7, task


#: What _stage_seconds times; the stages are derived from each one's best (a best of differences would be biased low).
_RAW = ["sha256", "decode", "load", "spectrogram", "landmark_peaks", "pairs", "info"]


def _stages_of(raw: dict) -> dict:
    return dict(
        zip(
            KEYS,
            (
                raw["sha256"],
                raw["decode"],
                raw["load"] - raw["decode"],
                raw["spectrogram"],
                raw["landmark_peaks"] - raw["spectrogram"],
                raw["pairs"],
                raw["info"],
            ),
        )
    )


def stages(
    files: list[Path], cfg, *, reference: str | None = None, workdir: Path | None = None, repeat: int = 1
) -> dict:
    """CPU seconds per stage of what a worker does, one core, in-process (``time.process_time``).

    ``decode (FFmpeg)`` is a decode-only pass (the floor of any decoder-based
    indexer); ``convert, mix, resample`` is ``audio.load`` minus it;
    ``spectrogram`` is timed in a separate pass over the same chunks
    ``landmark_peaks`` uses and subtracted from it to give ``peak picking``.

    With ``reference`` (a git revision), the same stages of that revision's
    code (imported as ``songmine_ref``) are timed in the same process,
    interleaved file by file, and its worker output (hashes, times, tags,
    duration) is compared with this checkout's. Each stage's time is the
    minimum over ``repeat`` rounds (less noise on a shared machine).
    """
    impls = {"now": _implementation("songmine")}
    if reference is not None:
        impls = {"before": _implementation(reference_package(reference, workdir)), **impls}
    best = {(k, name, f): float("inf") for k in _RAW + ["task"] for name in impls for f in files}
    same = 0
    audio = 0.0
    for r in range(repeat):
        for i, f in enumerate(files):
            out = {}
            names = list(impls) if (r + i) % 2 == 0 else list(impls)[::-1]  # who goes first alternates
            for name in names:
                impl = impls[name]
                sec, task_s, task = _stage_seconds(impl, f, cfg)
                for k in _RAW:
                    best[k, name, f] = min(best[k, name, f], sec[k])
                best["task", name, f] = min(best["task", name, f], task_s)
                out[name] = task
            if r == 0:
                audio += out["now"].duration_s
                if reference is not None:
                    a, b = out["before"], out["now"]
                    same += (
                        np.array_equal(a.hashes, b.hashes)
                        and np.array_equal(a.times, b.times)
                        and (a.title, a.artist, a.album, a.duration_s) == (b.title, b.artist, b.album, b.duration_s)
                    )
    tot = {}
    for name in impls:
        raw = {k: sum(best[k, name, f] for f in files) for k in _RAW}
        tot[name] = {
            **{k: max(v, 0.0) for k, v in _stages_of(raw).items()},
            "task": sum(best["task", name, f] for f in files),
        }
    now = tot["now"]
    total = sum(now[k] for k in KEYS)

    def row(label: str, k: str | None) -> list:
        v = total if k is None else now[k]
        cells = [
            label,
            f"{v:.2f}",
            f"{audio / v:,.0f}×" if v > 0 else "-",
            f"{100 * v / total:.0f} %" if k != "task" else "-",
        ]
        if reference is not None:
            b = sum(tot["before"][j] for j in KEYS) if k is None else tot["before"][k]
            cells[1:1] = [f"{b:.2f}"]
            cells.append(f"{b / v:.2f}" if v > 0 else "-")
        return cells

    rows = [row(k, k) for k in KEYS]
    rows.append(["**all stages (one core)**", *row("", None)[1:]])
    rows.append(["whole worker task (`fingerprint_file`)", *row("", "task")[1:]])
    header = ["stage", "CPU s", "× real time per CPU second", "share"]
    if reference is not None:
        header = [
            "stage",
            f"before ({reference}) CPU s",
            "now CPU s",
            "now × real time per CPU second",
            "now share",
            "before / now",
        ]
    markdown_table(
        f"1. where the CPU goes — one core, {len(files)} files, {audio / 60:.1f} min of audio "
        f"(CPU seconds, best of {repeat})",
        header,
        rows,
    )
    if reference is not None:
        print(
            f"\nworker output (hashes, times, tags, duration) identical to {reference}'s: {same} / {len(files)} files\n"
        )
    decode = now["decode (FFmpeg)"]
    res = {
        "files": len(files),
        "audio_s": audio,
        "cpu_seconds": now,
        "decode_x": audio / decode,
        "all_x": audio / total,
        "task_x": audio / now["task"],
    }
    if reference is not None:
        res.update(reference=reference, reference_cpu_seconds=tot["before"], identical_files=same)
    return res


def build(
    files: list[Path], jobs: int, workdir: Path, ref: dict, package: str = "songmine", quiet: bool = False
) -> dict:
    import importlib
    import resource

    def first(*names: str):  # the module under this layout or an older one (a reference revision's)
        for name in names:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ImportError:
                continue
        raise ImportError(f"none of {names} in {package}")

    index_mod = first("fingerprint.index", "index")
    Index, index_files = index_mod.Index, index_mod.index_files
    FingerprintConfig = first("fingerprint.landmarks", "landmarks").FingerprintConfig
    if package != "songmine":  # the reference package's own config class is that package's landmark method
        store = first("fingerprint.index.store", "index.store")
        if hasattr(store, "register_method"):
            store.register_method("landmark", FingerprintConfig)
        else:
            methods = importlib.import_module(f"{package}.methods")
            methods.register_method(methods.Method("landmark", "landmark", FingerprintConfig, None))

    path = workdir / ("real.idx" if package == "songmine" else f"{package}.idx")
    shutil.rmtree(path, ignore_errors=True)
    cpu0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    with Index(path, create=True, config=FingerprintConfig()) as ix, TreeMemory() as mem:
        rep = index_files(ix, files, jobs=jobs)
    cpu1 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    # CPU seconds of the parent and of the (finished) workers: independent of how loaded the machine is
    cpu_parent = (cpu1[0].ru_utime + cpu1[0].ru_stime) - (cpu0[0].ru_utime + cpu0[0].ru_stime) - mem.cpu_seconds
    cpu_workers = (cpu1[1].ru_utime + cpu1[1].ru_stime) - (cpu0[1].ru_utime + cpu0[1].ru_stime)
    with Index(path) as ix:
        seg_bytes = sum(p.stat().st_size for p in (path / "segments").iterdir())
        cat_bytes = sum(p.stat().st_size for p in path.glob("catalog.sqlite*"))
        n_post, n_seg, hours = ix.n_postings, ix.n_segments, ix.duration_s / 3600
    pss, rss, anon = mem.peak()
    x = rep.realtime_factor
    per_cpu = rep.audio_seconds / max(cpu_workers + cpu_parent, 1e-9)
    rows = [
        ["files added / failed", f"{rep.added} / {len(rep.failed)}"],
        ["audio", f"{rep.audio_seconds / 3600:.2f} h"],
        ["wall time", f"{rep.seconds:.1f} s (load average {os.getloadavg()[0]:.1f})"],
        [f"build speed, {jobs} workers, wall clock", f"**{x:,.0f}× real time**"],
        ["CPU seconds: workers / parent (without the memory sampler)", f"{cpu_workers:.1f} / {cpu_parent:.2f}"],
        ["build speed per CPU second (load-independent)", f"**{per_cpu:,.0f}× real time**"],
        [
            f"idle-machine estimate: per CPU second × {jobs} cores",
            f"**{per_cpu * jobs:,.0f}× real time** (target 1,000×)",
        ],
        ["reference: FFmpeg decode only, per CPU second (section 1)", f"{ref['decode_x']:,.0f}× real time"],
        ["reference: all stages in one process, per CPU second (section 1)", f"{ref['all_x']:,.0f}× real time"],
        ["build per CPU second / decode-only per CPU second", f"{per_cpu / ref['decode_x']:.2f}"],
        [f"CPU use: (workers + parent) / (wall × {jobs})", f"{(cpu_workers + cpu_parent) / (rep.seconds * jobs):.0%}"],
        ["peak memory, all processes (sum of PSS)", f"**{pss:.0f} MB**"],
        ["peak memory, all processes (sum of RSS, counts shared pages twice)", f"{rss:.0f} MB"],
        ["peak anonymous memory, all processes (heap: no file pages)", f"{anon:.0f} MB"],
        ["peak PSS per quarter of the run", " / ".join(f"{q:.0f}" for q in mem.quarters()) + " MB"],
        [
            "postings",
            f"{n_post:,} ({n_post / max(hours, 1e-9):,.0f} per hour, {n_post / max(rep.audio_seconds, 1e-9):.1f} per s)",
        ],
        ["segments after the run", n_seg],
        ["segment bytes per hour of audio", f"**{seg_bytes / 1e6 / hours:.2f} MB/h**"],
        ["catalogue bytes (SQLite)", f"{cat_bytes / 1e3:.0f} kB"],
    ]
    if not quiet:
        markdown_table(f"2. build — {len(files)} files, jobs={jobs}", ["measure", "value"], rows)
    return {
        "index": str(path),
        "added": rep.added,
        "failed": rep.failed,
        "audio_s": rep.audio_seconds,
        "seconds": rep.seconds,
        "x_realtime": x,
        "x_realtime_per_cpu": per_cpu,
        "cpu_workers_s": cpu_workers,
        "cpu_parent_s": cpu_parent,
        "peak_pss_mb": pss,
        "peak_rss_mb": rss,
        "pss_quarters_mb": mem.quarters(),
        "postings": n_post,
        "postings_per_hour": n_post / hours,
        "mb_per_hour": seg_bytes / 1e6 / hours,
        "segments": n_seg,
    }


def build_against_reference(files: list[Path], jobs: int, workdir: Path, ref: dict, rounds: int) -> dict:
    """``rounds`` × (the reference revision's build, this checkout's build), alternating: same run, same files."""
    runs: dict[str, list[dict]] = {"before": [], "now": []}
    for r in range(rounds):
        order = [("before", "songmine_ref"), ("now", "songmine")]
        for name, package in order if r % 2 == 0 else order[::-1]:
            runs[name].append(build(files, jobs, workdir, ref, package=package, quiet=True))

    def best(name: str, key: str, f=max) -> float:
        return f(b[key] for b in runs[name])

    def cpu(name: str) -> float:
        return min(b["cpu_workers_s"] + b["cpu_parent_s"] for b in runs[name])

    rows = []
    for label, key, fmt in [
        ("wall clock, × real time (best)", "x_realtime", "{:,.0f}×"),
        ("per CPU second, × real time (best)", "x_realtime_per_cpu", "{:,.0f}×"),
    ]:
        b, n = best("before", key), best("now", key)
        rows.append([label, fmt.format(b), fmt.format(n), f"{n / b:.2f}"])
    b, n = cpu("before"), cpu("now")
    rows.append(["CPU seconds, workers + parent (least)", f"{b:.1f}", f"{n:.1f}", f"{b / n:.2f}"])
    wb = [b["cpu_workers_s"] for b in runs["before"]]
    wn = [b["cpu_workers_s"] for b in runs["now"]]
    rows.append(
        [
            "CPU seconds of the workers, each round",
            " / ".join(f"{v:.1f}" for v in wb),
            " / ".join(f"{v:.1f}" for v in wn),
            "-",
        ]
    )
    pb = [b["cpu_parent_s"] for b in runs["before"]]
    pn = [b["cpu_parent_s"] for b in runs["now"]]
    rows.append(
        [
            "CPU seconds of the parent, each round",
            " / ".join(f"{v:.2f}" for v in pb),
            " / ".join(f"{v:.2f}" for v in pn),
            "-",
        ]
    )
    same = runs["before"][0]["postings"] == runs["now"][0]["postings"]
    rows.append(
        [
            "postings",
            f"{runs['before'][0]['postings']:,}",
            f"{runs['now'][0]['postings']:,}",
            "same" if same else "DIFFERENT",
        ]
    )
    markdown_table(
        f"2b. build, {ref.get('reference')} against this checkout — {len(files)} files, "
        f"{runs['now'][0]['audio_s'] / 3600:.2f} h, jobs={jobs}, {rounds} round(s) each, alternating "
        f"(load average {os.getloadavg()[0]:.1f})",
        ["measure", f"before ({ref.get('reference')})", "now", "now / before (CPU: before / now)"],
        rows,
    )
    return {"before": runs["before"], "now": runs["now"]}


def synthetic_lookup(
    real_index: Path,
    files: list[Path],
    hours: float,
    workdir: Path,
    n_queries: int,
    seed: int,
    keep: bool = False,
    compact: bool = True,
) -> dict:
    from songmine.audio import info, load
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.store import NewTrack
    from songmine.fingerprint.landmarks import DF_BITS, DT_BITS, F1_BITS, fingerprint

    rng = np.random.default_rng(seed)
    with Index(real_index) as real:
        cfg = real.config
        seg_h = np.concatenate([s.data.decode().hashes for s in real._segments])
        per_hour = real.n_postings / (real.duration_s / 3600)
    # marginals of the three hash fields in the real index
    fields = []
    for shift, bits in ((0, DT_BITS), (DT_BITS, DF_BITS), (DT_BITS + DF_BITS, F1_BITS)):
        v = (seg_h >> np.uint32(shift)) & np.uint32((1 << bits) - 1)
        p = np.bincount(v, minlength=1 << bits).astype(np.float64) + 0.01  # every value possible
        fields.append((shift, p / p.sum()))
    track_s = 240.0
    n_tracks = int(hours * 3600 / track_s)
    per_track = int(round(per_hour * track_s / 3600))
    n_frames = int(track_s / cfg.hop_s)
    path = workdir / "synthetic.idx"
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    batch = 250
    with Index(path, create=True, config=cfg) as ix, TreeMemory(interval=0.5) as mem:
        for start in range(0, n_tracks, batch):
            k = min(batch, n_tracks - start)
            h = np.zeros(k * per_track, dtype=np.uint32)
            for shift, p in fields:
                h |= rng.choice(p.shape[0], size=h.shape[0], p=p).astype(np.uint32) << np.uint32(shift)
            t = rng.integers(0, n_frames, size=h.shape[0], dtype=np.uint32)
            new = [
                NewTrack(
                    f"/synthetic/{start + i}.ogg",
                    f"{start + i:064x}",
                    0,
                    0,
                    track_s,
                    None,
                    None,
                    None,
                    h[i * per_track : (i + 1) * per_track],
                    np.sort(t[i * per_track : (i + 1) * per_track]),
                )
                for i in range(k)
            ]
            ix._add_tracks(new)
        gen_s = time.perf_counter() - t0
        n_post, n_seg = ix.n_postings, ix.n_segments
        size_gb = ix.size_bytes / 1e9
    gen_pss, _, gen_anon = mem.peak()

    # real 10-s query clips from the library
    queries = []
    for i in range(n_queries):
        f = files[i % len(files)]
        dur = info(f).duration_s
        off = float(rng.uniform(0, max(dur - 11, 0.0)))
        y = load(f, sr=cfg.sr, offset=off, duration=10.0)
        queries.append(fingerprint(y, cfg, query=True)[0])
    n_q = int(np.median([q.shape[0] for q in queries]))

    def time_lookups(ix, mph, directory=True):
        import dataclasses

        from songmine.fingerprint.index.store import _Snapshot

        if not directory:  # the reference: plain np.searchsorted over each segment (no fences)
            snap = ix._snap
            segs = tuple(dataclasses.replace(s, data=dataclasses.replace(s.data, fences=None)) for s in snap.segments)
            ix._snap = _Snapshot(snap.generation, segs, snap.tracks, snap.dead)
        for q in queries[:3]:  # warm the page cache
            ix.lookup(q, max_per_hash=mph)
        ms, hits = [], []
        for q in queries:
            t = time.perf_counter()
            qp, _, _ = ix.lookup(q, max_per_hash=mph)
            ms.append(1000 * (time.perf_counter() - t))
            hits.append(qp.shape[0])
        if not directory:
            ix._snap = snap
        return float(np.median(ms)), float(np.percentile(ms, 95)), int(np.median(hits))

    rows, out = [], {}

    def measure(label: str, ix) -> None:
        for mph in (2000, None):
            ref = time_lookups(ix, mph, directory=False)
            med, p95, hits = time_lookups(ix, mph)
            rows.append([label, mph, f"{med:.1f}", f"{p95:.1f}", f"{ref[0]:.1f}", f"{ref[0] / med:.1f}×", f"{hits:,}"])
            out[f"{label}_{mph}"] = (med, p95, hits, ref[0])

    with Index(path) as ix:
        measure(f"{n_seg} segments (as built)", ix)
        if not compact:
            markdown_table(
                f"3. lookup — synthetic {hours:,.0f} h index, {n_post:,} postings",
                [
                    "index",
                    "max_per_hash",
                    "median ms",
                    "p95 ms",
                    "median ms, binary search (reference)",
                    "speed-up",
                    "median hits",
                ],
                rows,
            )
            return out
        t = time.perf_counter()
        with TreeMemory(interval=0.5) as cmem:
            rep = ix.compact()
        compact_s = time.perf_counter() - t
        measure("1 segment (after compact)", ix)
    markdown_table(
        f"3. lookup — synthetic {hours:,.0f} h index: {n_tracks:,} tracks, {n_post:,} postings "
        f"({size_gb:.2f} GB), {n_queries} real 10-s query clips (median {n_q:,} hashes each)",
        [
            "index",
            "max_per_hash",
            "median ms",
            "p95 ms",
            "median ms, binary search (reference)",
            "speed-up",
            "median hits",
        ],
        rows,
    )
    print(
        f"\ngenerated + committed in {gen_s:.0f} s (auto-merges included; peak PSS {gen_pss:.0f} MB, "
        f"anonymous {gen_anon:.0f} MB); compact of {rep.segments_before} segments in {compact_s:.0f} s "
        f"(peak PSS {cmem.peak()[0]:.0f} MB — mostly segment pages mapped by the lookups before — "
        f"anonymous {cmem.peak()[2]:.0f} MB)"
    )
    if not keep:
        shutil.rmtree(path, ignore_errors=True)
    return {
        "hours": hours,
        "tracks": n_tracks,
        "postings": n_post,
        "segments": n_seg,
        "size_gb": size_gb,
        "generate_s": gen_s,
        "generate_peak_pss_mb": gen_pss,
        "compact_s": compact_s,
        "query_hashes_median": n_q,
        **{k: list(v) for k, v in out.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", default=None, help="folder of audio (default: the demo music)")
    ap.add_argument("--limit", type=int, default=None, help="index only the first N files")
    ap.add_argument(
        "--stage-files",
        type=int,
        default=8,
        help="files timed stage by stage (section 1), spread evenly over the library",
    )
    ap.add_argument(
        "--reference",
        default=None,
        metavar="REV",
        help="also time the stages of git revision REV's code in the same run (section 1) and "
        "check its worker output is identical",
    )
    ap.add_argument("--repeat", type=int, default=1, help="section 1: best of this many rounds per stage")
    ap.add_argument("--skip-build", action="store_true", help="section 1 only")
    ap.add_argument(
        "--build-rounds",
        type=int,
        default=1,
        help="with --reference: also build with REV's code and this checkout's, alternating, this "
        "many times each (section 2b; 0: skip)",
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--hours", type=float, default=1000.0, help="size of the synthetic index (section 3)")
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--skip-lookup", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic index in the work dir")
    ap.add_argument("--no-compact", action="store_true", help="skip the compaction step of section 3")
    ap.add_argument(
        "--real-index", type=Path, default=None, help="skip sections 1-2 and take the hash distribution from this index"
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    from songmine.fingerprint.landmarks import FingerprintConfig
    from songmine.library import iter_audio_files

    args.library = library_or_demo(args.library)
    files = list(iter_audio_files([args.library]))[: args.limit]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="songmine-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"# index store benchmark — commit {git_commit()}, {platform.node()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, python {platform.python_version()}"
    )
    print(f"library {args.library}: {len(files)} files; work dir {work}")
    res = {"commit": git_commit(), "cores": os.cpu_count(), "loadavg": os.getloadavg()}
    if args.real_index is None:
        step = max(len(files) // max(args.stage_files, 1), 1)
        res["stages"] = stages(
            files[::step][: args.stage_files],
            FingerprintConfig(),
            reference=args.reference,
            workdir=work,
            repeat=args.repeat,
        )
        if not args.skip_build:
            res["build"] = build(files, args.jobs, work, res["stages"])
            if args.reference is not None and args.build_rounds:
                res["build_vs_reference"] = build_against_reference(
                    files, args.jobs, work, res["stages"], args.build_rounds
                )
    if not args.skip_lookup and (args.real_index is not None or not args.skip_build):
        real = args.real_index or Path(res["build"]["index"])
        res["lookup"] = synthetic_lookup(
            real, files, args.hours, work, args.queries, args.seed, keep=args.keep, compact=not args.no_compact
        )
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
