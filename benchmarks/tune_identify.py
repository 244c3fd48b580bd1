"""Quick tuning loop for the landmark identifier (not the eval harness: see ``songmine eval``).

Indexes ``--tracks`` tracks of a library (default: the demo music of ``songmine
demo-corpus``) into a :class:`songmine.fingerprint.memory.MemoryIndex`,
cuts ``--n`` clips per condition x duration at random offsets of member
tracks (plus as many non-member clips from the other tracks), degrades them,
and prints top-1 accuracy, the false-positive rate, latency and index size.

    PYTHONPATH=src python benchmarks/tune_identify.py [--library DIR] --tracks 30 --n 40

Degradations (kept deliberately small and independent of songmine.evaluation.degrade):
white noise at 5 / 0 dB SNR and pink noise at 5 dB (SNR on the clip's own
power), speed ±2 / ±5 % (resampling: pitch and tempo together), mp3 at
32 kbps (PyAV, 22.05 kHz mono), telephone band (300-3400 Hz via 8 kHz).
Decoded tracks are cached in ``$TMPDIR/songmine-tune`` between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import library_or_demo

from songmine.audio import load
from songmine.fingerprint.landmarks import FingerprintConfig
from songmine.fingerprint.memory import MemoryIndex
from songmine.fingerprint.query import identify
from songmine.fingerprint.search import SearchConfig, search

SR = 11025
CONDITIONS = ("clean", "white5", "white0", "pink5", "mp3_32k", "telephone", "speed+2", "speed-2", "speed+5", "speed-5")


def cached_tracks(library: Path, cache: Path) -> list[tuple[str, np.ndarray]]:
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for p in sorted(library.iterdir()):
        c = cache / (p.name + ".npy")
        if not c.exists():
            np.save(c, load(p, sr=SR).astype(np.float16))
        out.append((str(p), np.load(c, mmap_mode="r")))
    return out


def add_noise(y: np.ndarray, snr_db: float, rng: np.random.Generator, pink: bool = False) -> np.ndarray:
    n = rng.standard_normal(y.size)
    if pink:
        spec = np.fft.rfft(n)
        f = np.arange(spec.size)
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        n = np.fft.irfft(spec, n=y.size)
    p_sig = float(np.mean(y.astype(np.float64) ** 2))
    n *= np.sqrt(p_sig / (10 ** (snr_db / 10)) / np.mean(n**2))
    return (y + n).astype(np.float32)


def mp3_roundtrip(y: np.ndarray, kbps: int = 32) -> np.ndarray:
    import av
    import soxr

    y22 = soxr.resample(y, SR, 22050).astype(np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        st = out.add_stream("mp3", rate=22050, layout="mono")
        st.bit_rate = kbps * 1000
        frame_size = 1152
        for i in range(0, y22.size, frame_size):
            chunk = y22[i : i + frame_size]
            fr = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            fr.sample_rate = 22050
            fr.pts = i
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)
    return load(buf.getvalue(), sr=SR)


def telephone(y: np.ndarray) -> np.ndarray:
    import soxr
    from scipy.signal import butter, sosfilt

    y8 = soxr.resample(y, SR, 8000)
    sos = butter(4, [300, 3400], btype="band", fs=8000, output="sos")
    return soxr.resample(sosfilt(sos, y8), 8000, SR).astype(np.float32)


def make_clip(y: np.ndarray, start: int, dur: float, cond: str, rng) -> np.ndarray:
    import soxr

    speed = {"speed+2": 1.02, "speed-2": 0.98, "speed+5": 1.05, "speed-5": 0.95}.get(cond, 1.0)
    n = int(round(dur * SR * speed))
    seg = np.asarray(y[start : start + n], dtype=np.float32)
    if speed != 1.0:
        # played `speed` times faster: pitch and tempo together
        seg = soxr.resample(seg, speed, 1.0).astype(np.float32)
    if cond == "white5":
        return add_noise(seg, 5, rng)
    if cond == "white0":
        return add_noise(seg, 0, rng)
    if cond == "pink5":
        return add_noise(seg, 5, rng, pink=True)
    if cond == "mp3_32k":
        return mp3_roundtrip(seg)
    if cond == "telephone":
        return telephone(seg)
    return seg


def raw_top(idx, clip, sc) -> dict:
    """The top candidate's raw statistics (for recalibrating the null model offline)."""
    c = search(idx, clip, top=1, config=sc)
    if not c:
        return dict(track=-1, offset_s=0.0, votes=0, track_hits=0, expected=0.0, n_tests=1.0, raw_conf=0.0)
    c = c[0]
    return dict(
        track=c.track_id,
        offset_s=c.offset * idx.config.hop_s,
        votes=c.votes,
        track_hits=c.track_hits,
        expected=c.expected,
        n_tests=c.n_tests,
        raw_conf=c.confidence,
    )


def draw_start(y, dur, rng) -> int:
    n = int(dur * SR * 1.06)
    for _ in range(20):
        s = int(rng.integers(0, max(len(y) - n, 1)))
        if np.sqrt(np.mean(np.asarray(y[s : s + n], np.float32) ** 2)) > 0.01:
            return s
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, help="folder of audio (default: the demo music)")
    ap.add_argument("--tracks", type=int, default=30)
    ap.add_argument("--n", type=int, default=40, help="clips per condition x duration")
    ap.add_argument("--durations", default="3,5,10")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp", default="{}", help="JSON overrides of FingerprintConfig")
    ap.add_argument("--search", default="{}", help="JSON overrides of SearchConfig")
    ap.add_argument("--dump", type=Path, help="write per-query rows as JSON here")
    args = ap.parse_args()

    fc = FingerprintConfig(**json.loads(args.fp))
    sc_over = json.loads(args.search)
    if "speeds" in sc_over:
        sc_over["speeds"] = tuple(sc_over["speeds"])
    sc = SearchConfig(**sc_over)
    tracks = cached_tracks(library_or_demo(args.library), Path(tempfile.gettempdir()) / "songmine-tune")
    # members: every other track; non-members: the rest
    members = tracks[0::2][: args.tracks]
    others = tracks[1::2]
    t0 = time.perf_counter()
    idx = MemoryIndex(fc)
    for path, y in members:
        idx.add(np.asarray(y, np.float32), path=path)
    build_s = time.perf_counter() - t0
    hours = idx.duration_s / 3600
    print(f"fingerprint config: {json.dumps(dataclasses.asdict(fc))}")
    print(f"search config: {sc}")
    print(
        f"indexed {idx.n_tracks} tracks, {hours:.2f} h, {idx.n_postings} postings "
        f"({idx.n_postings / idx.duration_s:.1f} /s, {idx.n_postings * 12 / 1e6 / hours:.2f} MB/h at 12 B), "
        f"fingerprinting {idx.duration_s / build_s:.0f} x real time"
    )

    rng = np.random.default_rng(args.seed)
    durations = [float(d) for d in args.durations.split(",")]
    conds = args.conditions.split(",")
    rows = []
    acc = {}
    lat = {}
    for dur in durations:
        for cond in conds:
            ok = 0
            times = []
            for _ in range(args.n):
                ti = int(rng.integers(len(members)))
                y = members[ti][1]
                s = draw_start(y, dur, rng)
                clip = make_clip(y, s, dur, cond, rng)
                t1 = time.perf_counter()
                r = identify(idx, clip, top=3, config=sc)
                times.append(time.perf_counter() - t1)
                m = r.matches[0] if r.matches else None
                raw = raw_top(idx, clip, sc) if args.dump else {}
                good = m is not None and m.track_id == ti  # offsets may legitimately differ: looping game music
                ok += good
                rows.append(
                    dict(
                        kind="member",
                        cond=cond,
                        dur=dur,
                        correct=bool(good),
                        conf=m.confidence if m else 0.0,
                        score=m.score if m else 0.0,
                        right_track=bool(m is not None and m.track_id == ti),
                        **raw,
                        raw_right=bool(raw and raw["track"] == ti and abs(raw["offset_s"] - s / SR) < 0.1),
                    )
                )
            acc[(cond, dur)] = 100 * ok / args.n
            lat[(cond, dur)] = float(np.median(times)) * 1000
        # non-members
        fps = 0
        for _ in range(args.n):
            y = others[int(rng.integers(len(others)))][1]
            s = draw_start(y, dur, rng)
            cond = conds[int(rng.integers(len(conds)))]
            clip = make_clip(y, s, dur, cond, rng)
            r = identify(idx, clip, top=3, config=sc)
            m = r.matches[0] if r.matches else None
            raw = raw_top(idx, clip, sc) if args.dump else {}
            fps += m is not None
            rows.append(
                dict(
                    kind="nonmember",
                    cond=cond,
                    dur=dur,
                    correct=m is None,
                    conf=m.confidence if m else 0.0,
                    score=m.score if m else 0.0,
                    right_track=False,
                    raw_right=False,
                    **raw,
                )
            )
        acc[("FP", dur)] = 100 * fps / args.n

    w = max(len(c) for c in conds) + 2
    head = "condition".ljust(w) + "".join(f"{d:g} s".rjust(9) for d in durations)
    print(head)
    for cond in conds:
        print(cond.ljust(w) + "".join(f"{acc[(cond, d)]:9.1f}" for d in durations))
    print("pooled".ljust(w) + "".join(f"{np.mean([acc[(c, d)] for c in conds]):9.1f}" for d in durations))
    print("FP %".ljust(w) + "".join(f"{acc[('FP', d)]:9.1f}" for d in durations))
    print("ms clean".ljust(w) + "".join(f"{lat.get(('clean', d), float('nan')):9.1f}" for d in durations))
    print("ms median".ljust(w) + "".join(f"{np.median([lat[(c, d)] for c in conds]):9.1f}" for d in durations))
    if args.dump:
        args.dump.write_text(json.dumps(rows))


if __name__ == "__main__":
    sys.exit(main())
