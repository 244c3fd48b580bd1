"""Near-duplicate detection benchmark: pair precision/recall and a scaling curve.

Builds a library in ``--out`` from a folder of music (``--library``, default: the
demo music of ``songmine demo-corpus``): every track cut to ``--seconds`` (from
20 s in) and written as FLAC (the "originals"), plus, for ``--sources`` of
them, generated duplicates — PyAV re-encodes (mp3 at 32/64/128/320 kbps,
ogg/vorbis (libsndfile), flac at 22,050 or 48,000 Hz), copies trimmed by up to 10 s or
padded with up to 10 s of silence, and gain changes (−12…+6 dB); the other
tracks have no copy (unrelated). Then runs ``songmine.minhash.dedupe.dedupe`` and
scores the predicted pairs (all pairs inside a predicted group) against the
truth.

Scaling: the matching stage (signatures → LSH → confirmation) is timed on
n = 125 … 2000 prints — the real ones plus synthetic unrelated prints drawn
from the real hash distribution — next to a brute-force all-pairs signature
comparison measured in the same run; the log-log slope shows the growth and
the fit is extrapolated to 10,000 tracks (fingerprinting is per file, linear,
and measured separately).

    PYTHONPATH=src python benchmarks/dedupe.py --out DIR [--library LIBRARY] --sources 20

Files already in ``--out`` are reused, so a second run only measures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _common import git_commit, library_or_demo


def encode(y: np.ndarray, sr: int, path: Path, codec: str, bitrate: int | None = None) -> None:
    """Write mono float32 ``y`` to ``path`` (via a temp name, so an interrupted run leaves no partial file)."""
    tmp = path.with_name(".tmp-" + path.name)
    _encode(y, sr, tmp, codec, bitrate)
    os.replace(tmp, path)


def _encode(y: np.ndarray, sr: int, path: Path, codec: str, bitrate: int | None = None) -> None:
    from songmine.evaluation.degrade import encode_mono

    if codec == "libvorbis":  # PyAV's FFmpeg has no libvorbis here: libsndfile writes Ogg Vorbis
        import soundfile as sf

        with sf.SoundFile(str(path), "w", int(sr), 1, format="OGG", subtype="VORBIS") as fh:
            for start in range(0, y.size, int(sr)):  # one-shot long writes crash libsndfile 1.2.2
                fh.write(y[start : start + int(sr)])
        return
    fmt = {".mp3": "mp3", ".ogg": "ogg", ".flac": "flac"}[path.suffix]
    encode_mono(y, sr, path, container=fmt, codec=codec, bitrate=bitrate)


VARIANTS = ["mp3_32", "mp3_64", "mp3_128", "mp3_320", "ogg", "flac_22k", "flac_48k", "trim", "pad", "gain"]


def make_variant(y: np.ndarray, sr: int, kind: str, dest_stem: Path, rng: np.random.Generator) -> Path:
    import soxr

    if kind.startswith("mp3_"):
        p = dest_stem.with_suffix(".mp3")
        encode(y, sr, p, "libmp3lame", int(kind[4:]) * 1000)
    elif kind == "ogg":
        p = dest_stem.with_suffix(".ogg")
        encode(y, sr, p, "libvorbis", 96000)
    elif kind in ("flac_22k", "flac_48k"):
        new_sr = 22050 if kind == "flac_22k" else 48000
        p = dest_stem.with_suffix(".flac")
        encode(soxr.resample(y, sr, new_sr).astype(np.float32), new_sr, p, "flac")
    elif kind == "trim":
        s = rng.uniform(1.0, 10.0)
        e = rng.uniform(0.0, 10.0)
        p = dest_stem.with_suffix(".mp3")
        encode(y[int(s * sr) : y.size - int(e * sr)], sr, p, "libmp3lame", 192000)
    elif kind == "pad":
        s = rng.uniform(1.0, 10.0)
        p = dest_stem.with_suffix(".ogg")
        encode(np.concatenate([np.zeros(int(s * sr), np.float32), y]), sr, p, "libvorbis", 128000)
    elif kind == "gain":
        g = rng.choice([-12.0, -6.0, 6.0])
        p = dest_stem.with_suffix(".mp3")
        encode(np.clip(y * 10 ** (g / 20), -1, 1).astype(np.float32), sr, p, "libmp3lame", 160000)
    else:
        raise ValueError(kind)
    return p


def build_library(src: Path, out: Path, *, seconds: float, n_sources: int, n_variants: int, seed: int):
    from songmine.audio import load
    from songmine.library import iter_audio_files

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(iter_audio_files([src]))
    truth_groups: list[list[str]] = []
    sources = set(rng.choice(len(files), size=min(n_sources, len(files)), replace=False).tolist())
    sr = 44100
    for k, f in enumerate(files):  # loop over files
        y = load(f, sr=sr, offset=20.0, duration=seconds)
        orig = out / f"{k:03d}_orig.flac"
        if not orig.exists():
            encode(y, sr, orig, "flac")
        group = [str(orig)]
        if k in sources:
            for kind in rng.choice(VARIANTS, size=n_variants, replace=False):
                stem = out / f"{k:03d}_{kind}"
                existing = [p for p in out.glob(stem.name + ".*")]
                p = existing[0] if existing else make_variant(y, sr, str(kind), stem, rng)
                group.append(str(p))
        truth_groups.append(group)
    return truth_groups


def pairs_of_groups(groups) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(g, 2)}


def synthetic_prints(real, n: int, rng: np.random.Generator):
    """Unrelated prints drawn from the real hash distribution (sizes like the real ones)."""
    from songmine.minhash.dedupe import prints_from_arrays

    pool = np.unique(np.concatenate([p.hashes for p in real]))  # distinct hashes, drawn uniformly
    sizes = np.array([p.hashes.size for p in real])
    out = []
    for i in range(n):  # loop over synthetic files
        m = int(rng.choice(sizes))
        h = rng.choice(pool, size=m, replace=False)
        t = rng.integers(0, 13000, size=m).astype(np.uint32)
        out.append(prints_from_arrays(f"synthetic/{i}", h, t, duration_s=150.0))
    return out


def brute_force_time(sigs: np.ndarray, threshold: float) -> float:
    t0 = time.perf_counter()
    n = sigs.shape[0]
    found = 0
    for i in range(n - 1):  # all pairs, one row against the rest
        est = np.mean(sigs[i + 1 :] == sigs[i], axis=1)
        found += int(np.count_nonzero(est >= threshold))
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", help="folder of audio (default: the demo music)")
    ap.add_argument("--out", required=True, help="folder for the generated library (reused between runs)")
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scaling", default="125,250,500,1000,2000")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args(argv)

    from songmine.minhash import MinHasher
    from songmine.minhash.dedupe import DedupeConfig, find_duplicates

    out = Path(args.out)
    t0 = time.perf_counter()
    truth = build_library(
        library_or_demo(args.library),
        out,
        seconds=args.seconds,
        n_sources=args.sources,
        n_variants=args.variants,
        seed=args.seed,
    )
    # truth from the file names: every file whose name starts with the same recording number is
    # that recording (covers copies left in --out by earlier runs with other random choices)
    by_rec: dict[str, list[str]] = {}
    for f in sorted(out.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            by_rec.setdefault(f.name.split("_", 1)[0], []).append(str(f))
    truth = list(by_rec.values())
    n_files = sum(len(g) for g in truth)
    print(
        f"library: {n_files} files ({len(truth)} recordings, {sum(len(g) > 1 for g in truth)} with copies), "
        f"{args.seconds:g} s each, built in {time.perf_counter() - t0:.0f} s"
    )

    cfg = DedupeConfig()
    from concurrent.futures import ProcessPoolExecutor

    from songmine.library import iter_audio_files
    from songmine.minhash.dedupe import _fingerprint_job

    files = list(iter_audio_files([out]))
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as ex:  # the same work dedupe(jobs=N) does
        results = list(ex.map(_fingerprint_job, [(f, cfg, None) for f in files]))
    t_fp = time.perf_counter() - t0
    prints = [p for p, _ in results if p is not None]
    import pickle  # a local scratch cache of this run's prints, never part of the package

    (out / ".prints.pkl").write_bytes(pickle.dumps(prints))
    skipped = [{"path": e[0], "error": e[1]} for _, e in results if e is not None]
    report = find_duplicates(prints, cfg, skipped=skipped)
    report.timings_s = {"fingerprint": round(t_fp, 2), **report.timings_s}
    wall = time.perf_counter() - t0
    want = pairs_of_groups(truth)
    got = pairs_of_groups([[m.path for m in g.members] for g in report.groups])
    tp = len(want & got)
    precision = tp / len(got) if got else 1.0
    recall = tp / len(want) if want else 1.0
    print(f"\nbands b x r = {report.bands[0]} x {report.bands[1]}, threshold {cfg.threshold}, n_perm {cfg.n_perm}")
    print(
        "| files | true pairs | predicted pairs | TP | pair precision | pair recall | LSH candidates | all pairs | skipped |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {report.n_files} | {len(want)} | {len(got)} | {tp} | {precision:.4f} | {recall:.4f} | "
        f"{report.n_candidates} | {report.n_files * (report.n_files - 1) // 2} | {len(report.skipped)} |"
    )
    print(f"timings (s): {report.timings_s}, wall {wall:.1f}")
    missed = sorted(want - got)
    extra = sorted(got - want)
    for a, b in missed[:10]:
        print("  missed:", Path(a).name, Path(b).name)
    for a, b in extra[:10]:
        print("  false :", Path(a).name, Path(b).name)
    per_kind = {}
    for a, b in want:
        kind = Path(b).stem.split("_", 1)[1] if "orig" in Path(a).stem else "variant-variant"
        hit = (a, b) in got
        per_kind.setdefault(kind, [0, 0])
        per_kind[kind][0] += hit
        per_kind[kind][1] += 1
    print("recall per duplicate kind (pairs original–copy; copy–copy pooled):")
    print("| kind | found / true |")
    print("|---|---|")
    for k in sorted(per_kind):
        print(f"| {k} | {per_kind[k][0]} / {per_kind[k][1]} |")
    example = next((p for p in report.pairs if "trim" in p.b or "pad" in p.b), None)
    if example:
        print(f"alignment example: {Path(example.b).name} starts {example.offset_s:.2f} s into {Path(example.a).name}")

    # ---- scaling of the matching stage
    fp_per_file = report.timings_s["fingerprint"] / max(report.n_files, 1)
    rng = np.random.default_rng(args.seed)
    ns = [int(x) for x in args.scaling.split(",")]
    synth = synthetic_prints(prints, max(ns), rng)
    rows = []
    mh = MinHasher(cfg.n_perm, random_state=cfg.random_state)
    print(
        "\nscaling of the matching stage (signatures + LSH + confirmation) vs brute-force all-pairs signature comparison"
    )
    print(
        "| n | signatures s | LSH s | confirm s | total s | candidates | brute-force all pairs s | brute / LSH+confirm |"
    )
    print("|---|---|---|---|---|---|---|---|")
    pool = prints + synth
    t0 = time.perf_counter()
    all_sigs = np.stack([mh.signature(np.unique(p.hashes)) for p in pool[: max(ns)]])  # per file: linear
    sig_per_file = (time.perf_counter() - t0) / max(ns)
    for n in ns:
        allp = pool[:n]
        t0 = time.perf_counter()
        rep = find_duplicates(allp, cfg, hop_s=0.0116, signatures=all_sigs[:n])
        ts = rep.timings_s
        ts["signatures"] = sig_per_file * n  # measured once above, per file
        tot = ts["signatures"] + ts["lsh"] + ts["confirm"]
        bt = brute_force_time(all_sigs[:n], cfg.threshold)
        match_t = ts["lsh"] + ts["confirm"]
        rows.append((n, ts["signatures"], ts["lsh"], ts["confirm"], tot, rep.n_candidates, bt))
        print(
            f"| {n} | {ts['signatures']:.2f} | {ts['lsh']:.3f} | {ts['confirm']:.3f} | {tot:.2f} | {rep.n_candidates} | {bt:.2f} | {bt / max(match_t, 1e-9):.1f} |"
        )
    arr = np.array(rows, dtype=float)
    slope_match = np.polyfit(np.log(arr[:, 0]), np.log(arr[:, 2] + arr[:, 3]), 1)[0]
    slope_total = np.polyfit(np.log(arr[:, 0]), np.log(arr[:, 4]), 1)[0]
    slope_brute = np.polyfit(np.log(arr[:, 0]), np.log(arr[:, 6]), 1)[0]
    # extrapolate: fit total = c * n^slope on the two largest n
    c_tot = arr[-1, 4] / arr[-1, 0] ** slope_total
    c_br = arr[-1, 6] / arr[-1, 0] ** 2
    print(
        f"\nlog-log slopes: LSH+confirm {slope_match:.2f}, whole matching stage {slope_total:.2f}, brute force {slope_brute:.2f}"
    )
    est_match = c_tot * 10_000**slope_total
    est_fp = fp_per_file * 10_000
    print(
        f"10,000 tracks of {args.seconds:g} s: matching stage ≈ {est_match:.0f} s (fit n^{slope_total:.2f}); "
        f"brute-force all-pairs ≈ {c_br * 1e8:.0f} s (n^2); fingerprinting ≈ {est_fp:.0f} s at {fp_per_file:.2f} s/file "
        f"with --jobs {args.jobs} (linear; ≈ {est_fp * 240 / args.seconds:.0f} s for 4-min tracks)"
    )
    if args.json_out:
        commit = git_commit()
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "commit": commit,
                    "machine": platform.node(),
                    "precision": precision,
                    "recall": recall,
                    "n_files": report.n_files,
                    "scaling": rows,
                    "slope_total": slope_total,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
