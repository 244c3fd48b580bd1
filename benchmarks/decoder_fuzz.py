"""Decoder fuzz: no input may crash, hang or escape untyped from songmine's decoder.

Every container/codec songmine reads (``AUDIO_EXTENSIONS``) is written with the encoders
at hand — libsndfile through soundfile, FFmpeg's through PyAV; nothing is downloaded —
over a grid of channel counts (with odd layouts: unordered, sparse speaker masks) and
sample rates, each input whole or damaged: cut at a random byte, garbage appended, bytes
overwritten, header fields forged (integers among the first 512 bytes set to 0, 1, all
ones…). Special inputs join them: empty files, text and random bytes named as audio,
3 hours of silence in a file of a few hundred KB, headers declaring huge or tiny
durations or a 1-Hz rate, AAC streams that change rate or channels mid-way.

Each input goes through the calls songmine makes — ``audio.info``, ``audio.load`` at the
native rate keeping channels, at 11,025 Hz (index), with ``max_duration=60`` (identify,
server), a span (``offset``/``duration``), ``library.scan(decode=True)`` — in a worker
process with a time bound. A failure is a crash (signal), a hang (timeout), an exception
other than ``DecodeError``, or audio that is not finite float32 of the expected shape and
length (whole inputs: the written duration within the codec's priming/padding; a span:
its exact length, and at the native rate found in the whole decode within 1.2 ms;
``max_duration``: never more). A worker's address space is bounded (``--memory-mb``): a
``MemoryError`` from ``info``, ``scan`` or a ``max_duration`` call fails, from the unbounded
calls it is counted. Inputs the encoders themselves refuse
(a rate or channel count a codec lacks) or crash on are counted as ``n/a``. Failing
inputs are kept under ``--keep`` to reproduce them.

Prints one table: format × outcome counts, the slowest call and the largest peak RSS of
one call (VmHWM, reset before each call).

Run::

    python benchmarks/decoder_fuzz.py                          # the whole grid: 19,500 inputs + 56 special
    python benchmarks/decoder_fuzz.py --sample 300 --seed 2    # a seeded random sample of the grid
    python benchmarks/decoder_fuzz.py --formats wav-s16,flac --channels 1-16 --rates 8000,384000
    python benchmarks/decoder_fuzz.py --ci --seed 0            # what tests/test_audio_fuzz.py runs
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from queue import Queue
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where the decoding runs (the workers)
    import numpy as np

RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000, 352800, 384000)
CHANNELS = tuple(range(1, 17))
DAMAGES = ("none", "cut", "garbage", "overwrite", "cut+garbage", "fields")
HEADER_BYTES = 512  # "fields" forges integers in this many first bytes: where containers keep counts and sizes
CALLS = ("info", "load-native", "load-11k", "load-limit", "load-span", "scan")
LIMIT_S = 60.0  # max_duration of the "load-limit" call: the server's and identify's default
MAX_LAG_S = 0.0012  # how far a span may sit off the whole decode: WebM and ASF timestamps are in ms

# ------------------------------------------------------------------------------- formats
# Each format: suffix, writer (how the worker encodes it), channel counts and rates the
# encoder takes (None: any), and the slack of its decoded length (priming, padding, frames).


@dataclass(frozen=True)
class Fmt:
    suffix: str
    writer: str  # "sf:<FORMAT>:<SUBTYPE>" (soundfile) or "av:<codec>:<container>[:<sample_fmt>]" (PyAV)
    channels: tuple[int, ...] = CHANNELS
    rates: tuple[int, ...] | None = None  # None: any rate of the grid
    max_rate: int = 10**9
    slack_frames: int = 0  # decoded length may differ by this many native samples (+ 1 ms)
    layouts: str = "none"  # "none": the writer's own; "any": random masks; "aac"/"alac"/"opus": codec tables


MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

FORMATS: dict[str, Fmt] = {
    "wav-s16": Fmt(".wav", "sf:WAV:PCM_16"),
    "wav-s24": Fmt(".wav", "sf:WAV:PCM_24"),
    "wav-f32": Fmt(".wav", "sf:WAV:FLOAT"),
    "wav-f64": Fmt(".wav", "sf:WAV:DOUBLE"),
    "wav-u8": Fmt(".wav", "sf:WAV:PCM_U8"),
    "wav-ulaw": Fmt(".wav", "sf:WAV:ULAW"),
    # ADPCM: libsndfile pads the last block, whose length only the 'fact' chunk tells (FFmpeg ignores it)
    "wav-imaadpcm": Fmt(".wav", "sf:WAV:IMA_ADPCM", channels=(1, 2), slack_frames=4096),
    "wav-msadpcm": Fmt(".wav", "sf:WAV:MS_ADPCM", channels=(1, 2), slack_frames=4096),
    "wav-layout": Fmt(".wav", "av:pcm_s16le:wav", layouts="any"),
    "aiff": Fmt(".aiff", "sf:AIFF:PCM_16"),
    "aif-s24": Fmt(".aif", "sf:AIFF:PCM_24"),
    "flac": Fmt(".flac", "sf:FLAC:PCM_16", channels=tuple(range(1, 9))),
    "flac-s24": Fmt(".flac", "av:flac:flac:s32", channels=tuple(range(1, 9))),
    "ogg-vorbis": Fmt(".ogg", "sf:OGG:VORBIS", max_rate=192000, slack_frames=4096),
    "oga-vorbis": Fmt(".oga", "sf:OGG:VORBIS", max_rate=192000, slack_frames=4096),
    "opus": Fmt(".opus", "av:libopus:ogg", rates=OPUS_RATES, slack_frames=2880, layouts="opus"),
    "opus-sf": Fmt(".opus", "sf:OGG:OPUS", rates=OPUS_RATES, channels=tuple(range(1, 9)), slack_frames=2880),
    "webm-opus": Fmt(".webm", "av:libopus:webm", rates=OPUS_RATES, slack_frames=2880, layouts="opus"),
    "webm-vorbis": Fmt(".webm", "av:vorbis:webm", channels=(2,), max_rate=192000, slack_frames=4096),
    "mp3": Fmt(".mp3", "av:libmp3lame:mp3", channels=(1, 2), rates=MP3_RATES, slack_frames=3500),
    "mp3-sf": Fmt(".mp3", "sf:MP3:MPEG_LAYER_III", channels=(1, 2), rates=MP3_RATES, slack_frames=3500),
    "m4a-aac": Fmt(
        ".m4a", "av:aac:ipod", channels=tuple(range(1, 9)), rates=AAC_RATES, slack_frames=3072, layouts="aac"
    ),
    "m4a-alac": Fmt(".m4a", "av:alac:ipod:s16p", channels=tuple(range(1, 9)), layouts="alac"),
    "mp4-aac": Fmt(
        ".mp4", "av:aac:mp4", channels=tuple(range(1, 9)), rates=AAC_RATES, slack_frames=3072, layouts="aac"
    ),
    "aac-adts": Fmt(
        ".aac", "av:aac:adts", channels=tuple(range(1, 9)), rates=AAC_RATES, slack_frames=3072, layouts="aac"
    ),
    "wma": Fmt(
        ".wma",
        "av:wmav2:asf",
        channels=(1, 2),
        rates=(8000, 11025, 16000, 22050, 32000, 44100, 48000),
        slack_frames=4096,
    ),
}
SUFFIXES = sorted({f.suffix for f in FORMATS.values()})

AAC_LAYOUTS = {
    1: ["mono"],
    2: ["stereo"],
    3: ["3.0", "2.1"],
    4: ["4.0", "quad"],
    5: ["5.0(side)", "5.0"],
    6: ["5.1(side)", "5.1"],
    7: ["6.1(back)", "6.1"],
    8: ["7.1", "7.1(wide)"],
}
ALAC_LAYOUTS = {
    1: ["mono"],
    2: ["stereo"],
    3: ["3.0"],
    4: ["4.0"],
    5: ["5.0"],
    6: ["5.1"],
    7: ["6.1(back)"],
    8: ["7.1(wide)"],
}
SPECIALS = ("empty", "text", "random", "silence-3h", "huge-declared", "under-declared", "rate-1hz", "adts-joined")


@dataclass
class Case:
    """One input: a format at (channels, rate) with a damage, or a special input."""

    fmt: str
    channels: int = 1
    rate: int = 44100
    damage: str = "none"
    seed: int = 0
    variant: str = ""  # special inputs: which one
    calls: tuple[str, ...] = CALLS  # what is asked of the input

    @property
    def label(self) -> str:
        if self.fmt in SPECIALS:
            return f"{self.fmt}:{self.variant}"
        return f"{self.fmt}:{self.channels}ch:{self.rate}Hz:{self.damage}:{self.seed}"


@dataclass
class Outcome:
    case: str
    fmt: str
    call: str
    outcome: str  # audio | DecodeError:<reason> | crash | hang | untyped | bad-audio | memory | n/a
    detail: str = ""
    wall_s: float = 0.0
    rss_mb: float = 0.0

    @property
    def failed(self) -> bool:
        return self.outcome in ("crash", "hang", "untyped", "bad-audio") or (
            self.outcome == "memory" and self.call in ("load-limit", "info", "scan")
        )


def grid(
    formats=None, channels=CHANNELS, rates=RATES, damages=DAMAGES, seed: int = 0, specials: bool = True
) -> list[Case]:
    """Every (format, channels, rate, damage) the encoders can be asked for, and the special inputs."""
    cases = []
    for name in FORMATS if formats is None else formats:
        f = FORMATS[name]
        for ch in channels:
            if ch not in f.channels:
                continue
            for sr in rates:
                if (f.rates is not None and sr not in f.rates) or sr > f.max_rate:
                    continue
                for d in damages:
                    cases.append(Case(name, ch, sr, d, seed=_mix(seed, name, ch, sr, d)))
    if specials:
        cases += special_cases(seed)
    return cases


def special_cases(seed: int = 0) -> list[Case]:
    out = [Case("empty", variant=s) for s in SUFFIXES]
    out += [Case("text", variant=s) for s in SUFFIXES]
    out += [Case("random", variant=s, seed=_mix(seed, "random", s)) for s in SUFFIXES]
    out += [Case("silence-3h", variant=v) for v in ("flac", "adts", "opus")]
    out += [Case("huge-declared", variant=v) for v in ("wav", "wav-ffffffff", "aiff", "flac", "mp3", "m4a", "ogg")]
    out += [Case("under-declared", variant=v) for v in ("flac", "mp3")]
    out += [Case("rate-1hz", variant=v) for v in ("wav", "flac")]
    out += [Case("adts-joined", variant=v, seed=_mix(seed, "joined", v)) for v in ("rate", "channels", "both")]
    return out


#: Calls that never decode more than LIMIT_S seconds: all that is asked of hours-long inputs in CI.
BOUNDED_CALLS = ("info", "load-limit", "load-span")


def ci_sample(seed: int = 0, per_format: int = 1) -> list[Case]:
    """The sample the test suite runs: ``per_format`` random cells of each format (channels, rate,
    damage drawn with ``seed``) with every call, and the special inputs — those holding hours of
    audio asked only :data:`BOUNDED_CALLS` (and ``scan``, which keeps no samples)."""
    rng = random.Random(seed)
    cases = []
    for name, f in FORMATS.items():
        rates = [r for r in RATES if (f.rates is None or r in f.rates) and r <= f.max_rate]
        for _ in range(per_format):
            ch, sr, d = rng.choice(f.channels), rng.choice(rates), rng.choice(DAMAGES)
            cases.append(Case(name, ch, sr, d, seed=_mix(seed, name, ch, sr, d)))
    for c in special_cases(seed):
        if c.fmt == "silence-3h" and c.variant == "opus":
            continue  # half a million Ogg pages written in Python: the benchmark's
        if c.fmt in ("silence-3h", "under-declared"):
            c.calls = BOUNDED_CALLS + ("scan",)
        elif c.fmt == "rate-1hz":  # 5.6 hours declared: 220 M samples at 11,025 Hz unbounded
            c.calls = BOUNDED_CALLS + ("load-native", "scan")
        cases.append(c)
    return cases


def _mix(*parts) -> int:
    import zlib

    return zlib.crc32(repr(parts).encode())


# ------------------------------------------------------------------------- worker side
def _signal(ch: int, n: int, sr: int, rng) -> np.ndarray:
    """``(ch, n)`` float32: a quiet noise bed and one chirp per channel (no channel silent; a span
    is located in the whole decode without the ambiguity of a periodic tone)."""
    import numpy as np

    t = np.arange(n) / sr
    f0 = rng.uniform(100, min(2000, sr / 6), size=(ch, 1))
    sweep = rng.uniform(-0.4, 0.4, size=(ch, 1)) * f0  # Hz per second
    y = 0.02 * rng.standard_normal((ch, n)) + 0.25 * np.sin(2 * np.pi * (f0 * t + 0.5 * sweep * t * t))
    return np.clip(y, -1, 1).astype(np.float32)


def _random_layout(ch: int, rng) -> str:
    """A layout of ``ch`` channels: FFmpeg's default, an unordered one, or a random sparse speaker mask."""
    import av

    choices = [f"{ch} channels"]
    if ch <= 18:
        bits = sorted(rng.choice(18, size=ch, replace=False))
        choices.append(hex(sum(1 << int(b) for b in bits)))
    try:
        default = av.AudioLayout(ch).name
        choices.append(default)
    except (ValueError, TypeError):
        pass
    return choices[int(rng.integers(len(choices)))]


def _layouts(fmt: Fmt, ch: int, rng) -> list:
    if fmt.layouts == "any":
        return [_random_layout(ch, rng)]
    if fmt.layouts == "aac":
        return AAC_LAYOUTS.get(ch, [])
    if fmt.layouts == "alac":
        return ALAC_LAYOUTS.get(ch, [])
    if fmt.layouts == "opus":  # mapping family 0 (mono/stereo), 1 (Vorbis order, up to 8) or 255 (any)
        if ch <= 2:
            return [None]
        return [None, f"{ch} channels"] if ch <= 8 and rng.random() < 0.5 else [f"{ch} channels"]
    return [None]


def write_sf(path, y, sr, spec: str) -> None:
    import soundfile as sf

    _, fmt, sub = spec.split(":")
    sf.write(path, y.T, sr, format=fmt, subtype=sub)


def write_av(
    path, y, sr, codec: str, container: str, *, layout=None, sample_fmt=None, options=None, bit_rate=None
) -> None:
    """Encode ``(ch, n)`` float32 with an FFmpeg encoder through PyAV (frames built packed: one buffer)."""
    import av
    import numpy as np

    ch = y.shape[0]
    layout = layout or {1: "mono", 2: "stereo"}.get(ch, f"{ch} channels")
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, options=options or {})
        ctx = stream.codec_context
        ctx.layout = layout
        if bit_rate:
            ctx.bit_rate = bit_rate
        if sample_fmt:
            ctx.format = sample_fmt
        to_codec = av.AudioResampler(format=ctx.format.name, layout=layout, rate=sr)
        step = ctx.frame_size or 1024
        for i in range(0, y.shape[1], step):
            packed = np.ascontiguousarray(y[:, i : i + step].T).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
            frame.sample_rate = sr
            for f in to_codec.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _write(fmt: Fmt, path: Path, y, sr: int, rng) -> None:
    """Write ``y`` as ``fmt`` (a layout the codec refuses: the next candidate)."""
    if fmt.writer.startswith("sf:"):
        write_sf(path, y, sr, fmt.writer)
        return
    _, codec, container, *rest = fmt.writer.split(":")
    # FFmpeg's AAC encoder substitutes noise (PNS), which its decoder draws afresh after a seek:
    # off, so that a span can be found sample-exact in the whole decode
    options = {"strict": "-2"} if codec == "vorbis" else {"aac_pns": "0"} if codec == "aac" else {}
    errors = []
    for layout in _layouts(fmt, y.shape[0], rng):
        opts = dict(options)
        if codec == "libopus" and y.shape[0] > 2:
            opts["mapping_family"] = "1" if layout is None else "255"
        try:
            write_av(
                path,
                y,
                sr,
                codec,
                container,
                layout=layout,
                sample_fmt=rest[0] if rest else None,
                options=opts,
                bit_rate=96000 if codec == "wmav2" else None,
            )
            return
        except Exception as exc:  # noqa: BLE001 - the encoder refuses this layout: try the next
            errors.append(f"{layout}: {exc}")
    raise RuntimeError("; ".join(errors) or "no layout for this channel count")


def _damage(path: Path, kind: str, rng) -> None:
    data = bytearray(path.read_bytes())
    for step in kind.split("+"):
        if step == "cut" and len(data) > 1:
            data = data[: int(rng.integers(1, len(data)))]
        elif step == "garbage":
            n = int(rng.integers(1, 65536))
            junk = rng.integers(0, 256, n, dtype="u1").tobytes()
            if rng.random() < 0.3:  # a copy of the file's own start: headers where none belong
                junk = bytes(data[:n])
            data += junk
        elif step == "overwrite":
            for _ in range(int(rng.integers(1, 17))):
                i = int(rng.integers(0, len(data)))
                data[i] = int(rng.integers(0, 256))
        elif step == "fields":
            _forge_fields(data, rng)
    path.write_bytes(bytes(data))


def _forge_fields(data: bytearray, rng) -> None:
    """Overwrite 1-4 integers of the header with values a header field should never hold.

    Random bytes rarely make a field zero or all ones; a forged 16- or 32-bit field does:
    0 bits a sample, 0 or 65,535 channels, a rate of 1 or 2^32 - 1, a chunk size past the
    file's end, a block size of 0 — in either byte order, at any offset of the first
    :data:`HEADER_BYTES` (aligned or not: not every container aligns its fields)."""
    if not data:
        return
    for _ in range(int(rng.integers(1, 5))):
        width = int(rng.choice([1, 2, 4, 8]))
        top = 2 ** (8 * width) - 1
        value = int(rng.choice([0, 1, 2, 3, top, top - 1, top >> 1, (top >> 1) + 1, int(rng.integers(0, 65536))]))
        at = int(rng.integers(0, max(1, min(len(data), HEADER_BYTES) - width + 1)))
        data[at : at + width] = (value & top).to_bytes(width, str(rng.choice(["little", "big"])))[: len(data) - at]


def make_input(case: Case, folder: Path) -> dict:
    """Write the case's file; returns ``{"path", "seconds", "channels", "slack_s", "whole"}``."""
    import numpy as np

    rng = np.random.default_rng(case.seed)
    if case.fmt in SPECIALS:
        return _make_special(case, folder, rng)
    fmt = FORMATS[case.fmt]
    seconds = min(float(rng.uniform(0.3, 2.5)), 400_000 / case.rate)  # at most 1 s at 384 kHz
    n = int(seconds * case.rate)
    path = folder / f"{case.label.replace(':', '_')}{fmt.suffix}"
    y = _signal(case.channels, n, case.rate, rng)
    _write(fmt, path, y, case.rate, rng)
    _damage(path, case.damage, rng)
    return {
        "path": str(path),
        "seconds": n / case.rate,
        "channels": case.channels,
        "slack_s": 0.001 + (fmt.slack_frames + 2) / case.rate,
        "whole": case.damage == "none",
    }


def _make_special(case: Case, folder: Path, rng) -> dict:
    import numpy as np
    import soundfile as sf

    v = case.variant
    path = folder / f"{case.fmt}-{v.lstrip('.')}"
    truth = {"seconds": None, "channels": None, "slack_s": 0.1, "whole": False}
    if case.fmt in ("empty", "text", "random"):
        path = path.with_suffix(v)
        data = {
            "empty": b"",
            "text": b"This is not audio, just a text file with an audio name.\n" * 40,
            "random": rng.integers(0, 256, int(rng.integers(1, 200_000)), dtype="u1").tobytes(),
        }[case.fmt]
        path.write_bytes(data)
    elif case.fmt == "silence-3h":  # 3 hours of digital silence in a few hundred KB
        sr, total = 8000, 3 * 3600 * 8000
        if v == "flac":
            path = path.with_suffix(".flac")
            with sf.SoundFile(path, "w", sr, 1, "PCM_16", format="FLAC") as f:
                z = np.zeros(60 * sr, np.int16)
                for _ in range(total // z.size):  # one minute at a time
                    f.write(z)
        elif v == "adts":  # one silent AAC frame repeated: ADTS frames stand alone
            path = path.with_suffix(".aac")
            write_av(path, np.zeros((1, 10 * sr), np.float32), sr, "aac", "adts")
            frames = _adts_frames(path.read_bytes())
            path.write_bytes(b"".join(frames[:3]) + frames[len(frames) // 2] * (total // 1024 - 3))
        else:  # Opus: one silent packet repeated on Ogg pages written here
            path = path.with_suffix(".opus")
            write_av(path, np.zeros((1, 48000 * 2), np.float32), 48000, "libopus", "ogg")
            heads, packets = _ogg_packets(path.read_bytes())
            path.write_bytes(_ogg_stream(heads, [packets[len(packets) // 2]] * (3 * 3600 * 50), 960))
        truth.update(seconds=3 * 3600.0, channels=1, slack_s=0.2, whole=True)
    elif case.fmt == "huge-declared":  # a short file whose header declares (nearly) forever
        y = _signal(1, 22050, 22050, rng)
        if v.startswith("wav"):
            path = path.with_suffix(".wav")
            sf.write(path, y.T, 22050, subtype="PCM_16")
            data = bytearray(path.read_bytes())
            i = data.index(b"data")
            struct.pack_into("<I", data, i + 4, 0xFFFFFFFF if v == "wav-ffffffff" else 0x7FFFFFF0)
            path.write_bytes(bytes(data))
        elif v == "aiff":
            path = path.with_suffix(".aiff")
            sf.write(path, y.T, 22050, subtype="PCM_16")
            data = bytearray(path.read_bytes())
            struct.pack_into(">I", data, data.index(b"COMM") + 10, 0x7FFFFFF0)
            path.write_bytes(bytes(data))
        elif v == "flac":
            path = path.with_suffix(".flac")
            sf.write(path, y.T, 22050, subtype="PCM_16")
            data = bytearray(path.read_bytes())
            (word,) = struct.unpack_from(">Q", data, 8 + 10)  # STREAMINFO: rate(20) ch(3) bps(5) total(36)
            struct.pack_into(">Q", data, 8 + 10, word | (1 << 36) - 1)
            path.write_bytes(bytes(data))
        elif v == "mp3":
            path = path.with_suffix(".mp3")
            write_av(path, y, 22050, "libmp3lame", "mp3")
            data = bytearray(path.read_bytes())
            i = max(data.find(b"Xing"), data.find(b"Info"))
            struct.pack_into(">I", data, i + 8, 0x7FFFFFFF)  # flags (frames present) then the frame count
            path.write_bytes(bytes(data))
        elif v == "m4a":
            path = path.with_suffix(".m4a")
            write_av(path, y, 22050, "aac", "ipod")
            data = bytearray(path.read_bytes())
            for box in (b"mvhd", b"mdhd"):
                i = data.find(box)
                if i >= 0 and data[i + 4] == 0:
                    struct.pack_into(">I", data, i + 20, 0xFFFFFFF0)
            path.write_bytes(bytes(data))
        else:  # Ogg whose last page's granule position says 2^40 samples
            path = path.with_suffix(".ogg")
            write_av(path, _signal(1, 48000, 48000, rng), 48000, "libopus", "ogg")
            heads, packets = _ogg_packets(path.read_bytes())
            path.write_bytes(_ogg_stream(heads, packets, 960, last_granule=1 << 40))
        truth.update(seconds=None, channels=1)
    elif case.fmt == "under-declared":  # a header declaring 1 s in front of a long file
        if v == "flac":  # 3 hours of silence
            path = path.with_suffix(".flac")
            with sf.SoundFile(path, "w", 8000, 1, "PCM_16", format="FLAC") as f:
                z = np.zeros(60 * 8000, np.int16)
                for _ in range(180):
                    f.write(z)
            data = bytearray(path.read_bytes())
            (word,) = struct.unpack_from(">Q", data, 8 + 10)
            struct.pack_into(">Q", data, 8 + 10, (word & ~((1 << 36) - 1)) | 8000)
            truth.update(seconds=3 * 3600.0)
        else:  # 3 minutes of quiet noise whose LAME header counts 8 frames
            path = path.with_suffix(".mp3")
            write_av(path, _signal(1, 180 * 8000, 8000, rng) * 0.01, 8000, "libmp3lame", "mp3")
            data = bytearray(path.read_bytes())
            i = max(data.find(b"Xing"), data.find(b"Info"))
            struct.pack_into(">I", data, i + 8, 8)
            truth.update(seconds=180.0)
        path.write_bytes(bytes(data))
        truth.update(channels=1, slack_s=0.2, whole=False)
    elif case.fmt == "rate-1hz":  # 20,000 samples at 1 Hz: 5.6 hours declared in 40 KB
        path = path.with_suffix(".wav" if v == "wav" else ".flac")
        sf.write(path, _signal(1, 20000, 8000, rng).T, 1, subtype="PCM_16")
        truth.update(seconds=20000.0, channels=1, slack_s=2.0, whole=True)
    elif case.fmt == "adts-joined":  # AAC streams that change rate and/or channel count mid-way
        path = path.with_suffix(".aac")
        parts, total = [], 0.0
        for k in range(3):
            sr = int(rng.choice(AAC_RATES)) if v in ("rate", "both") else 44100
            ch = int(rng.integers(1, 9)) if v in ("channels", "both") else 2
            secs = float(rng.uniform(0.3, 1.5))
            part = folder / f"part{k}.aac"
            write_av(part, _signal(ch, int(secs * sr), sr, rng), sr, "aac", "adts", layout=AAC_LAYOUTS[ch][0])
            parts.append(part.read_bytes())
            part.unlink()
            total += secs
        path.write_bytes(b"".join(parts))
        truth.update(seconds=total, channels=None, slack_s=0.3 * 3, whole=False)
    truth["path"] = str(path)
    return truth


def _adts_frames(data: bytes) -> list[bytes]:
    frames, i = [], 0
    while i + 7 <= len(data) and data[i] == 0xFF and data[i + 1] & 0xF0 == 0xF0:
        n = ((data[i + 3] & 3) << 11) | (data[i + 4] << 3) | (data[i + 5] >> 5)
        frames.append(data[i : i + n])
        i += n
    return frames


def _ogg_pages(data: bytes):
    i = 0
    while i + 27 <= len(data) and data[i : i + 4] == b"OggS":
        n_seg = data[i + 26]
        lace = data[i + 27 : i + 27 + n_seg]
        body = i + 27 + n_seg
        yield data[i + 5], lace, data[body : body + sum(lace)]
        i = body + sum(lace)


def _ogg_packets(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The two header packets and the audio packets of a one-stream Ogg file."""
    packets, cur = [], b""
    for _, lace, body in _ogg_pages(data):
        o = 0
        for n in lace:
            cur += body[o : o + n]
            o += n
            if n < 255:
                packets.append(cur)
                cur = b""
    return packets[:2], packets[2:]


_CRC = None


def _ogg_crc(data: bytes) -> int:
    global _CRC
    if _CRC is None:
        _CRC = []
        for i in range(256):
            r = i << 24
            for _ in range(8):
                r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
            _CRC.append(r & 0xFFFFFFFF)
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[(crc >> 24) ^ b]
    return crc


def _ogg_stream(
    heads: list[bytes], packets: list[bytes], samples_per_packet: int, *, last_granule: int | None = None
) -> bytes:
    """An Ogg file of one logical stream: the header packets, then ``packets`` 200 to a page."""
    out, seq = [], 0

    def page(pkts, granule, flags):
        nonlocal seq
        lace = b""
        for p in pkts:
            lace += b"\xff" * (len(p) // 255) + bytes([len(p) % 255])
        head = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 0x5EED, seq, 0, len(lace)) + lace
        body = head + b"".join(pkts)
        crc = _ogg_crc(body)
        out.append(body[:22] + struct.pack("<I", crc) + body[26:])
        seq += 1

    page([heads[0]], 0, 0x02)
    page([heads[1]], 0, 0)
    done = 0
    for i in range(0, len(packets), 200):
        chunk = packets[i : i + 200]
        done += len(chunk)
        last = i + 200 >= len(packets)
        granule = done * samples_per_packet
        if last and last_granule is not None:
            granule = last_granule
        page(chunk, granule, 0x04 if last else 0)
    return b"".join(out)


def _vm_hwm_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_hwm() -> None:
    """Give freed heap back to the system, then reset the peak RSS to the current RSS: the next
    call's peak is its own, not a bigger call's before it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    except OSError:
        pass


def do_call(call: str, path: str, span: tuple[float, float], align: bool = False):
    """Run one of :data:`CALLS`; returns a JSON-able description of what came back.

    With ``align``, the span is also read at the native rate and located in the whole decode:
    ``lag`` is how many native samples it starts after where it should (at the native rate a
    span is the whole decode's samples; resampled, its time grid is a fraction of a sample off).
    """
    import numpy as np

    from songmine import audio, library

    if call == "info":
        m = audio.info(path)
        return {"kind": "info", "duration": m.duration_s, "sr": m.sr, "channels": m.channels}
    if call == "scan":
        rows = library.scan([path], decode=True)
        r = rows[0]
        return {"kind": "scan", "rows": len(rows), "error": r.error, "duration": r.duration_s}
    kw = {
        "load-native": {"sr": None, "mono": False},
        "load-11k": {"sr": 11025},
        "load-limit": {"sr": 11025, "max_duration": LIMIT_S},
        "load-span": {"sr": 22050, "offset": span[0], "duration": span[1]},
    }[call]
    y = audio.load(path, **kw)
    sr = kw["sr"] or audio.info(path).sr
    out = {
        "kind": "audio",
        "dtype": str(y.dtype),
        "shape": list(y.shape),
        "sr": sr,
        "finite": bool(np.isfinite(y).all()),
        "type": type(y).__name__,
    }
    if call == "load-span" and align and y.size >= 2000:
        native = audio.info(path).sr
        part = audio.load(path, sr=None, offset=span[0], duration=span[1])
        out["lag"], out["lag_sr"] = _lag(part, audio.load(path, sr=None), int(round(span[0] * native))), native
    return out


def _lag(part, full, at: int, reach: int = 2000) -> int:
    """Where ``part`` (its middle: edges are resampled differently) best matches ``full`` near ``at``."""
    import numpy as np
    from scipy.signal import correlate

    core = part[300:-300].astype(np.float64)
    lo = max(at + 300 - reach, 0)
    ref = full[lo : at + 300 + core.size + reach].astype(np.float64)  # (a perfect match scores 1)
    if ref.size < core.size:
        return 0
    c = correlate(ref, core, mode="valid", method="fft")
    e = np.cumsum(np.concatenate([[0.0], ref * ref]))
    energy = e[core.size :] - e[: -core.size]  # of each window of ref the core is laid on
    return int(lo + int(np.argmax(c / np.sqrt(np.maximum(energy, 1e-12)))) - (at + 300))


def worker_main(memory_mb: int) -> None:
    """Serve requests (one JSON line each) on stdin; answer one JSON line each on stdout."""
    import resource

    if memory_mb:
        lim = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints go to stderr, never into the answers
    import numpy as np  # noqa: F401 - imported once, before any timing

    from songmine import audio, library  # noqa: F401
    from songmine.errors import DecodeError

    for line in sys.stdin.buffer:
        req = json.loads(line)
        if req["op"] == "abort":  # the harness's own check: a crash is reported as one
            os.abort()
        if req["op"] == "sleep":  # ... and a hang as one
            time.sleep(req["seconds"])
        if req["op"] == "make":
            try:
                case = Case(**{**req["case"], "calls": tuple(req["case"]["calls"])})
                res = {"ok": make_input(case, Path(req["folder"]))}
            except Exception as exc:  # noqa: BLE001 - an encoder refused: the case is n/a
                res = {"n/a": f"{type(exc).__name__}: {exc}"[:300]}
        elif req["op"] == "call":
            _reset_hwm()
            t0 = time.perf_counter()
            try:
                res = {"ok": do_call(req["call"], req["path"], tuple(req["span"]), req.get("align", False))}
            except DecodeError as exc:
                res = {"error": exc.reason, "message": str(exc)[:300]}
            except MemoryError as exc:
                res = {"memory": f"MemoryError: {exc}"[:300]}
            except BaseException as exc:  # noqa: BLE001 - exactly what the fuzz looks for
                res = {"untyped": f"{type(exc).__name__}: {exc}"[:300]}
            res["wall_s"] = time.perf_counter() - t0
            res["rss_mb"] = _vm_hwm_mb()
        else:
            res = {"done": req["op"]}
        out.write(json.dumps(res).encode() + b"\n")


# ------------------------------------------------------------------------- parent side
class Worker:
    """A worker process; a crash or a hang ends it, and the next request starts a new one."""

    def __init__(self, memory_mb: int, log_dir: Path):
        self.memory_mb, self.log_dir = memory_mb, log_dir
        self.proc = None
        self.buf = b""

    def _start(self) -> None:
        self.log = tempfile.NamedTemporaryFile(dir=self.log_dir, prefix="worker-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", "--memory-mb", str(self.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        self.buf = b""

    def ask(self, req: dict, timeout: float) -> tuple[str, dict | str]:
        """``("ok", answer)``, ``("crash", stderr tail)`` or ``("hang", "")``."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        try:
            self.proc.stdin.write(json.dumps(req).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._crashed()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                return "hang", ""
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return self._crashed()
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return "ok", json.loads(line)

    def _crashed(self) -> tuple[str, str]:
        rc = self.proc.wait()
        self.log.flush()
        tail = Path(self.log.name).read_text(errors="replace")[-400:].strip().replace("\n", " | ")
        self.proc = None
        return "crash", f"exit {rc}: {tail}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # our own child, by its handle
            self.proc.wait()
            self.proc = None


def _span(seed: int) -> tuple[float, float]:
    r = random.Random(seed)
    return round(r.uniform(0, 2.0), 3), round(r.uniform(0.05, 1.5), 3)


def judge(call: str, answer: dict, truth: dict, span: tuple[float, float]) -> tuple[str, str]:
    """``(outcome, detail)`` of one call's answer."""
    if "untyped" in answer:
        return "untyped", answer["untyped"]
    if "memory" in answer:
        return "memory", answer["memory"]
    if "error" in answer:
        return f"DecodeError:{answer['error']}", answer["message"]
    a = answer["ok"]
    if a["kind"] == "info":
        d = a["duration"]
        if a["sr"] <= 0 or a["channels"] < 1 or not (d != d or d >= 0):
            return "bad-audio", f"info {a}"
        return "audio", ""
    if a["kind"] == "scan":
        if a["rows"] != 1 or (a["error"] is None and not (a["duration"] is not None and a["duration"] >= 0)):
            return "bad-audio", f"scan {a}"
        return ("DecodeError:scan" if a["error"] else "audio"), a["error"] or ""
    shape, sr = a["shape"], a["sr"]
    mono = call != "load-native"
    if a["type"] != "ndarray" or a["dtype"] != "float32" or not a["finite"]:
        return "bad-audio", f"{a['type']} {a['dtype']} finite={a['finite']}"
    if len(shape) != (1 if mono else 2) or shape[-1] == 0:
        return "bad-audio", f"shape {shape}"
    got = shape[-1] / sr
    slack = truth["slack_s"]
    if not mono and truth["whole"] and truth["channels"] and shape[0] != truth["channels"]:
        return "bad-audio", f"{shape[0]} channels, {truth['channels']} written"
    if call == "load-limit" and got > LIMIT_S + 0.5 + 1 / sr:
        return "bad-audio", f"{got:.2f} s decoded past max_duration={LIMIT_S:g}"
    if call == "load-span":
        if "lag" in a and abs(a["lag"]) > MAX_LAG_S * a["lag_sr"]:
            return "bad-audio", f"span {a['lag']} samples late (at {a['lag_sr']} Hz)"
        want = round(span[1] * sr)
        if shape[-1] > want or (
            truth["whole"] and truth["seconds"] and span[0] + span[1] <= truth["seconds"] - slack and shape[-1] != want
        ):
            return "bad-audio", f"span of {shape[-1]} samples, {want} asked"
        return "audio", ""
    if truth["seconds"] is not None and (truth["whole"] or call != "load-limit"):
        if truth["whole"] and abs(got - truth["seconds"]) > slack:
            return "bad-audio", f"{got:.4f} s decoded, {truth['seconds']:.4f} s written"
    return "audio", ""


def run_case(case: Case, worker: Worker, folder: Path, timeout: float, keep: Path | None) -> list[Outcome]:
    status, ans = worker.ask({"op": "make", "case": asdict(case), "folder": str(folder)}, timeout=max(timeout, 300))
    if status != "ok" or "n/a" in ans:
        detail = ans if status != "ok" else ans["n/a"]
        return [Outcome(case.label, case.fmt, "make", "n/a", f"encoder {status}: {detail}"[:300])]
    truth = ans["ok"]
    span = _span(case.seed)
    results = []
    for call in case.calls:
        align = truth["whole"] and truth["seconds"] is not None and truth["seconds"] < 30
        status, answer = worker.ask(
            {"op": "call", "call": call, "path": truth["path"], "span": span, "align": align}, timeout
        )
        if status == "ok":
            outcome, detail = judge(call, answer, truth, span)
            results.append(Outcome(case.label, case.fmt, call, outcome, detail, answer["wall_s"], answer["rss_mb"]))
        else:
            results.append(Outcome(case.label, case.fmt, call, status, str(answer), timeout if status == "hang" else 0))
    if keep is not None and any(r.failed for r in results):
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(truth["path"], keep / Path(truth["path"]).name)
    try:
        os.unlink(truth["path"])
    except OSError:
        pass
    return results


def run(
    cases: list[Case],
    *,
    jobs: int = 2,
    timeout: float = 60.0,
    memory_mb: int = 4096,
    keep: Path | None = None,
    progress=None,
) -> list[Outcome]:
    """Make and decode every case on ``jobs`` workers; the outcomes of every call."""
    folder = Path(tempfile.mkdtemp(prefix="songmine-fuzz-"))
    workers: Queue = Queue()
    pool = [Worker(memory_mb, folder) for _ in range(max(1, jobs))]
    for w in pool:
        workers.put(w)
    done = [0]

    def one(case: Case) -> list[Outcome]:
        w = workers.get()
        try:
            sub = folder / f"w{id(w)}"
            sub.mkdir(exist_ok=True)
            return run_case(case, w, sub, timeout, keep)
        finally:
            workers.put(w)
            done[0] += 1
            if progress:
                progress(done[0], len(cases))

    try:
        with ThreadPoolExecutor(max_workers=len(pool)) as ex:
            results = [r for rs in ex.map(one, cases) for r in rs]
    finally:
        for w in pool:
            w.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return results


def summary(results: list[Outcome]) -> tuple[list[str], list[list]]:
    """Header and rows of the table: per format, inputs and outcome counts, slowest call, peak RSS."""
    by = defaultdict(list)
    for r in results:
        by[r.fmt].append(r)
    header = [
        "format",
        "inputs",
        "n/a",
        "calls",
        "audio",
        "DecodeError",
        "crash",
        "hang",
        "untyped",
        "bad audio",
        "memory",
        "max call s",
        "max RSS MB",
    ]
    rows = []
    for fmt in sorted(by, key=lambda f: (f in SPECIALS, f)):
        rs = by[fmt]
        c = Counter("DecodeError" if r.outcome.startswith("DecodeError") else r.outcome for r in rs)
        ran = [r for r in rs if r.outcome != "n/a"]
        rows.append(
            [
                fmt,
                len({r.case for r in rs}),
                c["n/a"],
                len(ran),
                c["audio"],
                c["DecodeError"],
                c["crash"],
                c["hang"],
                c["untyped"],
                c["bad-audio"],
                c["memory"],
                f"{max((r.wall_s for r in ran), default=0):.2f}",
                f"{max((r.rss_mb for r in ran), default=0):.0f}",
            ]
        )
    tot = Counter("DecodeError" if r.outcome.startswith("DecodeError") else r.outcome for r in results)
    ran = [r for r in results if r.outcome != "n/a"]
    rows.append(
        [
            "**all**",
            len({r.case for r in results}),
            tot["n/a"],
            len(ran),
            tot["audio"],
            tot["DecodeError"],
            tot["crash"],
            tot["hang"],
            tot["untyped"],
            tot["bad-audio"],
            tot["memory"],
            f"{max((r.wall_s for r in ran), default=0):.2f}",
            f"{max((r.rss_mb for r in ran), default=0):.0f}",
        ]
    )
    return header, rows


def _int_list(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += range(int(a), int(b) + 1) if b else [int(a)]
    return tuple(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated; default: all; '' for none")
    ap.add_argument("--channels", default="1-16", help="e.g. 1-16 or 1,2,8,9")
    ap.add_argument("--rates", default=",".join(map(str, RATES)))
    ap.add_argument("--damages", default=",".join(DAMAGES))
    ap.add_argument("--no-specials", action="store_true", help="leave out the special inputs")
    ap.add_argument("--sample", type=int, default=0, help="a seeded random sample of this many grid inputs")
    ap.add_argument("--ci", action="store_true", help="the test suite's sample (one cell per format, the specials)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds one call may take (a hang beyond)")
    ap.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of a worker")
    ap.add_argument("--keep", type=Path, default=None, help="copy failing inputs here")
    ap.add_argument("--failures", type=int, default=40, help="failures listed after the table")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.memory_mb)
        return 0
    from _common import git_commit, markdown_table

    cases = grid(
        [f for f in args.formats.split(",") if f],
        _int_list(args.channels),
        _int_list(args.rates),
        tuple(args.damages.split(",")),
        seed=args.seed,
        specials=False,
    )
    if args.sample and args.sample < len(cases):  # of the grid; the special inputs all join it
        cases = random.Random(args.seed).sample(cases, args.sample)
    cases += [] if args.no_specials else special_cases(args.seed)
    if args.ci:
        cases = ci_sample(args.seed)
    t0 = time.monotonic()

    def progress(i, n):
        if i % 50 == 0 or i == n:
            print(f"  {i}/{n} inputs, {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)

    results = run(
        cases, jobs=args.jobs, timeout=args.timeout, memory_mb=args.memory_mb, keep=args.keep, progress=progress
    )
    header, rows = summary(results)
    markdown_table(
        f"Decoder fuzz: {len(cases)} inputs × {len(CALLS)} calls, seed {args.seed}, "
        f"commit {git_commit()}, {time.monotonic() - t0:.0f} s on {args.jobs} workers",
        header,
        rows,
    )
    failed = [r for r in results if r.failed]
    if failed:
        markdown_table(
            f"Failures ({len(failed)}; first {args.failures})",
            ["input", "call", "outcome", "detail"],
            [[r.case, r.call, r.outcome, r.detail[:160].replace("|", "/")] for r in failed[: args.failures]],
        )
    reasons = Counter(r.outcome.split(":", 1)[1] for r in results if r.outcome.startswith("DecodeError:"))
    print("\nDecodeError reasons: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    if results and all(r.outcome == "n/a" for r in results):  # e.g. workers without numpy: nothing was tested
        print(f"\nno input could be written: {results[0].detail}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
