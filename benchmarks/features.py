"""FMA features: throughput against a reference in the same process, and per-column agreement.

Two sub-commands::

    # speed: ours vs a reference on the same files, timed alternately in this process (CPU s, 1 BLAS thread)
    python benchmarks/features.py speed LIBRARY [--files N] [--reference PATH.py] [--json]

    # agreement: per-column Pearson r across tracks between two features.csv files (FMA layout)
    python benchmarks/features.py agree OURS.csv REFERENCE.csv [--json]

``--reference PATH.py`` loads a module that defines ``compute(path) -> (vector[518], columns)``
(e.g. a wrapper around mdeff/fma's ``features.py`` kept OUTSIDE this repository: its
code is not ours to commit). Without it the reference is a straightforward per-family
computation with today's librosa (:func:`plain_librosa`, 0.5.0 arguments where today's
API allows them).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def plain_librosa(path):
    """The 518 features, one librosa call per family (two STFTs, tuning estimated twice, today's CQT)."""
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
    fns = {"mean": lambda v: np.mean(v, 1), "std": lambda v: np.std(v, 1),
           "skew": lambda v: np.nan_to_num(stats.skew(v, 1), nan=0.0),
           "kurtosis": lambda v: np.nan_to_num(stats.kurtosis(v, 1), nan=-3.0),
           "median": lambda v: np.median(v, 1), "min": lambda v: np.min(v, 1), "max": lambda v: np.max(v, 1)}
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
        rows.append({"file": Path(p).name, "sr": info.samplerate, "audio_s": dur, "ours_s": t_ours, "ref_s": t_ref,
                     "max_rel_diff": float(np.nanmax(np.abs(ours - theirs) / (np.abs(theirs) + 1e-6)))})
    if args.save_dir:
        from songmine.catalog.features import _to_frame, write_features_csv

        args.save_dir.mkdir(parents=True, exist_ok=True)
        write_features_csv(_to_frame(ours_rows, {}, {}), args.save_dir / "ours_features.csv")
        write_features_csv(_to_frame(ref_rows, {}, {}), args.save_dir / "reference_features.csv")
    tot = {k: sum(r[k] for r in rows) for k in ("audio_s", "ours_s", "ref_s")}
    result = {"reference": name, "files": rows, "audio_s": tot["audio_s"],
              "ours_x_realtime_per_core": tot["audio_s"] / tot["ours_s"],
              "ref_x_realtime_per_core": tot["audio_s"] / tot["ref_s"], "speedup": tot["ref_s"] / tot["ours_s"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"reference: {name}; CPU seconds in one process, one BLAS thread, alternating per file")
    print(f"{'file':45} {'sr':>6} {'audio s':>8} {'ours s':>7} {'ref s':>7} {'speed-up':>8}")
    for r in rows:
        print(f"{r['file'][:45]:45} {r['sr']:6d} {r['audio_s']:8.1f} {r['ours_s']:7.2f} {r['ref_s']:7.2f} "
              f"{r['ref_s'] / r['ours_s']:7.2f}×")
    print(f"{'total':45} {'':6} {tot['audio_s']:8.1f} {tot['ours_s']:7.2f} {tot['ref_s']:7.2f} "
          f"{result['speedup']:7.2f}×")
    print(f"throughput per core: ours {result['ours_x_realtime_per_core']:.0f}× real time, "
          f"reference {result['ref_x_realtime_per_core']:.0f}× real time")


def agree(args) -> None:
    from songmine.catalog import FEATURE_COLUMNS, load

    ours = load(args.ours, "features", cache=False, nonfinite="drop")
    ref = load(args.reference, "features", cache=False, nonfinite="drop")
    ours.index = ours.index.astype(str)
    ref.index = ref.index.astype(str)
    common = ours.index.intersection(ref.index).sort_values()
    a = ours.loc[common, list(FEATURE_COLUMNS)].to_numpy(np.float64)
    b = ref.loc[common, list(FEATURE_COLUMNS)].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        az, bz = a - a.mean(0), b - b.mean(0)
        r = (az * bz).sum(0) / np.sqrt((az**2).sum(0) * (bz**2).sum(0))
        ratio = np.median(np.abs(a) / np.maximum(np.abs(b), 1e-12), axis=0)
    # a column constant across tracks on both sides (e.g. chroma max = 1 after max-normalisation)
    # has no correlation: count it as agreeing when the constants agree
    const = (a.std(0) <= 1e-6 * (np.abs(a).mean(0) + 1e-12)) & (b.std(0) <= 1e-6 * (np.abs(b).mean(0) + 1e-12))
    same = np.isclose(a.mean(0), b.mean(0), rtol=1e-4, atol=1e-6)
    n_const = int((const & same).sum())
    r = np.where(const & same, 1.0, r)
    fams = {}
    for (f, s, n), rv, q in zip(FEATURE_COLUMNS, r, ratio):
        d = fams.setdefault(f, {"n": 0, "ok": 0, "min_r": 1.0, "worst": None, "median_ratio": []})
        d["n"] += 1
        good = bool(np.isfinite(rv) and rv >= 0.99)
        d["ok"] += good
        if not np.isfinite(rv) or rv < d["min_r"]:
            d["min_r"], d["worst"] = (float(rv) if np.isfinite(rv) else float("nan")), f"{s}/{n}"
        d["median_ratio"].append(float(q))
    n_ok = int(np.sum(np.isfinite(r) & (r >= 0.99)))
    result = {"tracks": len(common), "columns": len(FEATURE_COLUMNS), "r_ge_0.99": n_ok,
              "constant_and_equal": n_const,
              "fraction": n_ok / len(FEATURE_COLUMNS),
              "families": {f: {"columns": d["n"], "r_ge_0.99": d["ok"], "min_r": d["min_r"], "worst": d["worst"],
                               "median_abs_ratio_ours_over_ref": float(np.median(d["median_ratio"]))}
                           for f, d in fams.items()},
              "below": [{"column": "/".join(c), "r": (float(v) if np.isfinite(v) else None)}
                        for c, v in zip(FEATURE_COLUMNS, r) if not (np.isfinite(v) and v >= 0.99)]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{len(common)} tracks in both files; per-column Pearson r across tracks "
          f"({n_const} columns constant and equal on both sides count as r = 1)")
    print(f"{'family':20} {'cols':>5} {'r≥0.99':>7} {'min r':>8} {'worst column':>16} {'|ours|/|ref|':>12}")
    for f, d in result["families"].items():
        print(f"{f:20} {d['columns']:5d} {d['r_ge_0.99']:7d} {d['min_r']:8.4f} {d['worst'] or '-':>16} "
              f"{d['median_abs_ratio_ours_over_ref']:12.3f}")
    print(f"{'all':20} {len(FEATURE_COLUMNS):5d} {n_ok:7d}  → {100 * n_ok / len(FEATURE_COLUMNS):.1f} % of columns")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("library", type=Path)
    sp.add_argument("--files", type=int, default=None)
    sp.add_argument("--reference", default=None)
    sp.add_argument("--save-dir", type=Path, default=None, help="Write both feature tables here (for `agree`).")
    sp.add_argument("--json", action="store_true")
    ag = sub.add_parser("agree")
    ag.add_argument("ours", type=Path)
    ag.add_argument("reference", type=Path)
    ag.add_argument("--json", action="store_true")
    args = ap.parse_args()
    {"speed": speed, "agree": agree}[args.cmd](args)


if __name__ == "__main__":
    main()
