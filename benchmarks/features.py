"""FMA features: throughput against a reference in the same process, and per-column agreement.

Three sub-commands::

    # THE benchmark: ours vs FMA's features.py on librosa 0.5.0, both on --jobs processes, same files,
    # same run: throughput (× real time, wall and CPU) and the per-column agreement table
    python benchmarks/features.py run LIBRARY --reference-python REF/bin/python \
        --fma-features REF/features.py [--files N] [--every K] [--jobs 2] [--out DIR] [--json]
    # REF: the environment benchmarks/fma_reference/setup.sh REF builds, with FMA's features.py copied in

    # speed: ours vs a reference on the same files, timed alternately in this process (CPU s, 1 BLAS thread)
    python benchmarks/features.py speed LIBRARY [--files N] [--reference PATH.py] [--json]

    # agreement: per-column Pearson r across tracks between two features.csv files (FMA layout)
    python benchmarks/features.py agree OURS.csv REFERENCE.csv [--json]

``--reference PATH.py`` loads a module that defines ``compute(path) -> (vector[518], columns)``
(e.g. a wrapper around mdeff/fma's ``features.py`` kept OUTSIDE this repository: its
code is not ours to commit). Without it the reference is a straightforward per-family
computation with the installed librosa (:func:`plain_librosa`, 0.5.0 arguments where its
API allows them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def plain_librosa(path):
    """The 518 features, one librosa call per family (two STFTs, tuning estimated twice, librosa's own CQT)."""
    import librosa
    from scipy import stats

    from songmine.catalog import FEATURE_COLUMNS

    y, sr = librosa.load(path, sr=None, mono=True)
    fam = {"zcr": librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)}
    C = np.abs(librosa.cqt(y, sr=sr, hop_length=512, bins_per_octave=12, n_bins=84, tuning=None))
    fam["chroma_cqt"] = librosa.feature.chroma_cqt(C=C, n_chroma=12, n_octaves=7, bins_per_octave=12)
    fam["chroma_cens"] = librosa.feature.chroma_cens(C=C, n_chroma=12, n_octaves=7, bins_per_octave=12)
    fam["tonnetz"] = librosa.feature.tonnetz(chroma=fam["chroma_cens"])
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, pad_mode="reflect"))
    fam["chroma_stft"] = librosa.feature.chroma_stft(S=S**2, n_chroma=12)
    fam["rmse"] = np.sqrt(np.mean(S**2, axis=0, keepdims=True))
    fam["spectral_centroid"] = librosa.feature.spectral_centroid(S=S)
    fam["spectral_bandwidth"] = librosa.feature.spectral_bandwidth(S=S)
    fam["spectral_contrast"] = librosa.feature.spectral_contrast(S=S, n_bands=6)
    fam["spectral_rolloff"] = librosa.feature.spectral_rolloff(S=S)
    mel = librosa.feature.melspectrogram(sr=sr, S=S**2)
    fam["mfcc"] = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20)
    out = np.empty(len(FEATURE_COLUMNS), np.float32)
    fns = {
        "mean": lambda v: np.mean(v, 1),
        "std": lambda v: np.std(v, 1),
        "skew": lambda v: np.nan_to_num(stats.skew(v, 1), nan=0.0),
        "kurtosis": lambda v: np.nan_to_num(stats.kurtosis(v, 1), nan=-3.0),
        "median": lambda v: np.median(v, 1),
        "min": lambda v: np.min(v, 1),
        "max": lambda v: np.max(v, 1),
    }
    cache = {}
    for i, (f, s, n) in enumerate(FEATURE_COLUMNS):
        if (f, s) not in cache:
            cache[f, s] = fns[s](fam[f])
        out[i] = cache[f, s][int(n) - 1]
    return out, list(FEATURE_COLUMNS)


def _load_reference(path: str | None):
    if path is None:
        return "plain librosa per family", plain_librosa
    spec = importlib.util.spec_from_file_location("fma_reference_external", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path).resolve().parent))
    spec.loader.exec_module(mod)
    return f"external reference ({Path(path).name})", mod.compute


def speed(args) -> None:
    import soundfile as sf
    from threadpoolctl import threadpool_limits

    from songmine.catalog.features import extract
    from songmine.library import iter_audio_files

    threadpool_limits(1)  # per-core numbers: one BLAS thread for both sides
    files = list(iter_audio_files([args.library]))[: args.files]
    name, ref = _load_reference(args.reference)
    extract(files[0]), ref(str(files[0]))  # warm-up (imports, filter banks)
    rows, ours_rows, ref_rows = [], {}, {}
    for p in files:
        info = sf.info(str(p))
        dur = info.frames / info.samplerate
        t = time.process_time()
        ours = extract(p)
        t_ours = time.process_time() - t
        t = time.process_time()
        theirs, _ = ref(str(p))
        t_ref = time.process_time() - t
        ours_rows[Path(p).name], ref_rows[Path(p).name] = ours, np.asarray(theirs, np.float32)
        rows.append(
            {
                "file": Path(p).name,
                "sr": info.samplerate,
                "audio_s": dur,
                "ours_s": t_ours,
                "ref_s": t_ref,
                "max_rel_diff": float(np.nanmax(np.abs(ours - theirs) / (np.abs(theirs) + 1e-6))),
            }
        )
    if args.save_dir:
        from songmine.catalog.batch import results_frame, write_features_csv

        args.save_dir.mkdir(parents=True, exist_ok=True)
        write_features_csv(results_frame(ours_rows, {}, {}), args.save_dir / "ours_features.csv")
        write_features_csv(results_frame(ref_rows, {}, {}), args.save_dir / "reference_features.csv")
    tot = {k: sum(r[k] for r in rows) for k in ("audio_s", "ours_s", "ref_s")}
    result = {
        "reference": name,
        "files": rows,
        "audio_s": tot["audio_s"],
        "ours_x_realtime_per_core": tot["audio_s"] / tot["ours_s"],
        "ref_x_realtime_per_core": tot["audio_s"] / tot["ref_s"],
        "speedup": tot["ref_s"] / tot["ours_s"],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"reference: {name}; CPU seconds in one process, one BLAS thread, alternating per file")
    print(f"{'file':45} {'sr':>6} {'audio s':>8} {'ours s':>7} {'ref s':>7} {'speed-up':>8}")
    for r in rows:
        print(
            f"{r['file'][:45]:45} {r['sr']:6d} {r['audio_s']:8.1f} {r['ours_s']:7.2f} {r['ref_s']:7.2f} "
            f"{r['ref_s'] / r['ours_s']:7.2f}×"
        )
    print(
        f"{'total':45} {'':6} {tot['audio_s']:8.1f} {tot['ours_s']:7.2f} {tot['ref_s']:7.2f} {result['speedup']:7.2f}×"
    )
    print(
        f"throughput per core: ours {result['ours_x_realtime_per_core']:.0f}× real time, "
        f"reference {result['ref_x_realtime_per_core']:.0f}× real time"
    )


def _balanced(files, durations, k):
    """Split files into k groups of about equal audio duration (longest first)."""
    groups = [[] for _ in range(k)]
    load = [0.0] * k
    for f, d in sorted(zip(files, durations), key=lambda t: -t[1]):
        i = load.index(min(load))
        groups[i].append(f)
        load[i] += d
    return [g for g in groups if g]


def _reference_run(files, durations, args, out_dir):
    """FMA's code on librosa 0.5.0: ``jobs`` reference processes at once (benchmarks/fma_reference/run.py)."""
    import subprocess

    runner = Path(__file__).resolve().parent / "fma_reference" / "run.py"
    procs, outs = [], []
    t0 = time.perf_counter()
    for i, group in enumerate(_balanced(files, durations, args.jobs)):
        out = out_dir / f"reference_part{i}.csv"
        log = open(out_dir / f"reference_part{i}.log", "w")
        cmd = [
            str(args.reference_python),
            str(runner),
            "--fma-features",
            str(args.fma_features),
            str(out),
            *map(str, group),
        ]
        procs.append(
            (
                subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    env={
                        **os.environ,
                        "OMP_NUM_THREADS": "1",
                        "OPENBLAS_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1",
                        "NUMBA_NUM_THREADS": "1",
                    },
                ),
                log,
            )
        )
        outs.append(out)
    cpu = {}
    for proc, log in procs:
        stdout, _ = proc.communicate()
        log.close()
        if proc.returncode != 0:
            raise SystemExit(f"reference failed (exit {proc.returncode}): see {log.name}")
        for line in stdout.splitlines():
            name, _, sec = line.partition("\t")
            cpu[name] = float(sec)
    wall = time.perf_counter() - t0
    import pandas as pd

    from songmine.catalog import load

    ref = pd.concat([load(o, "features", cache=False, nonfinite="keep") for o in outs]).sort_index()
    return ref, wall, cpu


def run(args) -> None:
    import soundfile as sf

    from songmine.catalog.features import extract_folder, write_features_csv
    from songmine.library import iter_audio_files

    files = list(iter_audio_files([args.library]))[:: args.every][: args.files]
    names = [Path(f).name for f in files]
    if len(set(names)) != len(names):
        raise SystemExit("file names must be unique (the reference keys tracks by file name)")
    durations = []
    for f in files:
        info = sf.info(str(f))
        durations.append(info.frames / info.samplerate)
    audio_s = sum(durations)
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    # ours: the product path (extract_folder, worker processes)
    t0 = time.perf_counter()
    ours, failures = extract_folder(dict(zip(names, map(str, files))), jobs=args.jobs, decoder=args.decoder)
    wall_ours = time.perf_counter() - t0
    cpu_ours = sum(ours.attrs["cpu_s"].values())
    if failures:
        print(f"ours failed on {len(failures)} files: {[f.error for f in failures][:3]}", file=sys.stderr)
    write_features_csv(ours, out_dir / "ours_features.csv")
    ref, wall_ref, cpu_ref = _reference_run(files, durations, args, out_dir)
    ref.index = ref.index.astype(str)
    write_features_csv(ref, out_dir / "reference_features.csv")
    speed_res = {
        "files": len(files),
        "audio_s": audio_s,
        "jobs": args.jobs,
        "decoder": args.decoder,
        "ours": {
            "wall_s": wall_ours,
            "cpu_s": cpu_ours,
            "x_realtime": audio_s / wall_ours,
            "x_realtime_per_core_cpu": audio_s / cpu_ours,
        },
        "reference": {
            "wall_s": wall_ref,
            "cpu_s": sum(cpu_ref.values()),
            "x_realtime": audio_s / wall_ref,
            "x_realtime_per_core_cpu": audio_s / sum(cpu_ref.values()),
        },
        "speedup_wall": wall_ref / wall_ours,
        "speedup_cpu": sum(cpu_ref.values()) / cpu_ours,
    }
    agree_res = _agreement(ours, ref)
    if args.json:
        print(json.dumps({"speed": speed_res, "agreement": agree_res}, indent=2))
        return
    print(
        f"{len(files)} files, {audio_s / 60:.1f} min of audio, {args.jobs} processes per side, same run "
        f"(reference: mdeff/fma features.py on librosa 0.5.0; ours decodes with {args.decoder})"
    )
    print(f"{'':10} {'wall s':>8} {'× real time':>12} {'CPU s':>8} {'× real time per core':>21}")
    for side in ("ours", "reference"):
        d = speed_res[side]
        print(
            f"{side:10} {d['wall_s']:8.1f} {d['x_realtime']:12.1f} {d['cpu_s']:8.1f} {d['x_realtime_per_core_cpu']:21.1f}"
        )
    print(f"speed-up: {speed_res['speedup_wall']:.2f}× wall clock, {speed_res['speedup_cpu']:.2f}× CPU")
    print()
    _print_agreement(agree_res)


# why a column can fall below r = 0.99 against librosa 0.5.0 (see docs/catalog.md): a column's
# statistic and family decide which frames it depends on
_REASONS = {
    "min": "one frame decides it: a near-zero value (a spectral valley, a fade into silence) that "
    "a 1-LSB decoder difference moves (another FFmpeg build than the reference's: compare "
    "with --decoder ffmpeg)",
    "max": "one frame decides it (see min)",
    "kurtosis": "4th moment dominated by a few extreme frames (see min)",
    "skew": "3rd moment dominated by a few extreme frames (see min)",
}


def _agreement(ours, ref) -> dict:
    """Per-column Pearson r across the tracks of both tables (FMA layout, index = track id)."""
    from songmine.catalog import FEATURE_COLUMNS

    ours = ours.copy()
    ref = ref.copy()
    ours.index = ours.index.astype(str)
    ref.index = ref.index.astype(str)
    cols = list(FEATURE_COLUMNS)
    common = ours.dropna(how="any").index.intersection(ref.dropna(how="any").index).sort_values()
    a = ours.loc[common, cols].to_numpy(np.float64)
    b = ref.loc[common, cols].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        az, bz = a - a.mean(0), b - b.mean(0)
        r = (az * bz).sum(0) / np.sqrt((az**2).sum(0) * (bz**2).sum(0))
        rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-9)
    # a column constant across tracks on both sides (e.g. chroma max = 1 after max-normalisation)
    # has no correlation: it agrees when the constants agree
    const = (a.std(0) <= 1e-6 * (np.abs(a).mean(0) + 1e-12)) & (b.std(0) <= 1e-6 * (np.abs(b).mean(0) + 1e-12))
    same = np.isclose(a.mean(0), b.mean(0), rtol=1e-4, atol=1e-6)
    r = np.where(const & same, 1.0, r)
    ok = np.isfinite(r) & (r >= 0.99)
    fams = {}
    for (f, s, n), rv, good in zip(cols, r, ok):
        d = fams.setdefault(f, {"columns": 0, "r_ge_0.99": 0, "min_r": 1.0, "worst": None})
        d["columns"] += 1
        d["r_ge_0.99"] += int(good)
        if not np.isfinite(rv) or rv < d["min_r"]:
            d["min_r"], d["worst"] = (float(rv) if np.isfinite(rv) else float("nan")), f"{s}/{n}"
    below = []
    for j in np.flatnonzero(~ok):
        f, s, n = cols[j]
        k = int(np.nanargmax(rel[:, j]))
        below.append(
            {
                "column": f"{f}/{s}/{n}",
                "r": float(r[j]) if np.isfinite(r[j]) else None,
                "tracks_off_by_1pct": int(np.sum(rel[:, j] > 0.01)),
                "worst_track": str(common[k]),
                "ours": float(a[k, j]),
                "reference": float(b[k, j]),
                "why": _REASONS.get(s, ""),
            }
        )
    return {
        "tracks": len(common),
        "columns": len(cols),
        "r_ge_0.99": int(ok.sum()),
        "constant_and_equal": int((const & same).sum()),
        "fraction": float(ok.mean()),
        "median_abs_rel_diff": float(np.nanmedian(rel)),
        "values_within_1e-3": float(np.mean(np.isclose(a, b, rtol=1e-3, atol=1e-4))),
        "families": fams,
        "below": below,
    }


def _print_agreement(res: dict) -> None:
    print(
        f"agreement: {res['tracks']} tracks, per-column Pearson r across tracks "
        f"({res['constant_and_equal']} columns constant and equal on both sides count as r = 1)"
    )
    print(f"{'family':20} {'cols':>5} {'r≥0.99':>7} {'min r':>8} {'worst column':>14}")
    for f, d in res["families"].items():
        print(f"{f:20} {d['columns']:5d} {d['r_ge_0.99']:7d} {d['min_r']:8.4f} {d['worst'] or '-':>14}")
    n_ok = res["r_ge_0.99"]
    print(
        f"{'all':20} {res['columns']:5d} {n_ok:7d}  → {100 * n_ok / res['columns']:.1f} % of columns; "
        f"{100 * res['values_within_1e-3']:.2f} % of all values within 1e-3 (rel) / 1e-4 (abs); "
        f"median |rel diff| {res['median_abs_rel_diff']:.1e}"
    )
    if res["below"]:
        print("columns below r = 0.99:")
        for d in res["below"]:
            rv = "nan" if d["r"] is None else f"{d['r']:.4f}"
            print(
                f"  {d['column']:28} r {rv:>7}  {d['tracks_off_by_1pct']:3d} tracks off by >1 %; worst "
                f"{d['worst_track'][:40]} ours {d['ours']:.4g} ref {d['reference']:.4g} — {d['why']}"
            )


def agree(args) -> None:
    from songmine.catalog import load

    ours = load(args.ours, "features", cache=False, nonfinite="drop")
    ref = load(args.reference, "features", cache=False, nonfinite="drop")
    res = _agreement(ours, ref)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        _print_agreement(res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("library", type=Path)
    sp.add_argument("--files", type=int, default=None)
    sp.add_argument("--reference", default=None)
    sp.add_argument("--save-dir", type=Path, default=None, help="Write both feature tables here (for `agree`).")
    sp.add_argument("--json", action="store_true")
    rp = sub.add_parser("run")
    rp.add_argument("library", type=Path)
    rp.add_argument("--reference-python", type=Path, required=True, help="python of the librosa 0.5.0 venv")
    rp.add_argument("--fma-features", type=Path, required=True, help="mdeff/fma's features.py (kept outside)")
    rp.add_argument("--files", type=int, default=None, help="at most N files (after --every)")
    rp.add_argument("--every", type=int, default=1, help="every K-th file of the sorted library")
    rp.add_argument("--jobs", type=int, default=2)
    rp.add_argument(
        "--decoder",
        choices=("pyav", "ffmpeg"),
        default="pyav",
        help="ours: decode compressed files in-process (pyav) or with the ffmpeg program like the reference",
    )
    rp.add_argument("--out", type=Path, default=Path("bench-out/features"))
    rp.add_argument("--json", action="store_true")
    ag = sub.add_parser("agree")
    ag.add_argument("ours", type=Path)
    ag.add_argument("reference", type=Path)
    ag.add_argument("--json", action="store_true")
    args = ap.parse_args()
    {"speed": speed, "agree": agree, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
