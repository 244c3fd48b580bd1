"""Deterministic query degradations: what a clip goes through between the record and the phone.

Every function is pure (numpy in, numpy out, the input is never modified) and
every random one takes ``random_state`` (an int seed, a
:class:`numpy.random.Generator` or ``None``), so a query set is reproducible
from one seed. Audio is mono float32 at any rate ``sr``.

The named conditions used by ``songmine eval`` (the base conditions carry the names
of the peers' published measurements, ``evaluation/data/peers.json``) are listed in :data:`CONDITIONS` and applied by
:func:`degrade`:

=================  ==========================================================
name               what happens
=================  ==========================================================
``clean``          nothing
``white15/5/0``    white Gaussian noise at 15 / 5 / 0 dB SNR
``pink5``          pink (1/f power) noise at 5 dB SNR
``mp3_32k``        MP3 encode at 32 kbit/s and decode (PyAV/LAME, in memory)
``telephone``      300–3400 Hz band-pass, resampled to 8 kHz and back
``gain-20``        −20 dB gain
``speed±2/±5``     played 2 % / 5 % faster or slower: pitch and tempo together
                   (a turntable), by resampling
``reverb_noise10`` small-room reverb (exponentially decaying noise impulse
                   response, RT60 drawn in 0.30–0.40 s), then white noise at
                   10 dB SNR
``tempo±4/±8``     4 % / 8 % faster or slower with the pitch kept (Rubber
                   Band time-stretch through ``pedalboard``)
``pitch±1``        one semitone up or down with the tempo kept (Rubber Band)
``room_babble5``   a phone in a room: loudspeaker band, an image-source room
                   (``pyroomacoustics``, RT60 0.3–0.8 s, 1.5–4 m away), six
                   talkers' babble at 5 dB SNR, a phone microphone's band at
                   16 kHz
``speech0``        one talker over the music at 0 dB SNR (talk-over)
``broadcast``      a radio chain: high-pass, 8:1 compressor, limiter, MP3 at
                   64 kbit/s
=================  ==========================================================

The last nine need the ``eval`` extra (``pip install 'songmine[eval]'``:
``pedalboard``, ``pyroomacoustics``); their talkers come from the speech bank
shipped with the package (:mod:`songmine.speech`). ``docs/eval.md`` gives
every parameter.

SNR is measured on the clip's own power: ``10·log10(mean(y²) / mean(n²))``
with the noise actually drawn (not its expected power), so the stated SNR is
exact. A clip of digital silence has no defined SNR; noise functions return it
unchanged (the harness never draws near-silent clips).

A speed or tempo change by ``factor`` turns ``n`` samples into ``round(n / factor)``:
to get a degraded clip of ``d`` seconds, cut ``d · speed_factor(name)``
seconds from the source (:func:`source_seconds`).

Examples
--------
>>> import numpy as np
>>> y = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
>>> z = degrade(y, 8000, "white5", random_state=1)
>>> round(snr_db(y, z - y), 3)
5.0
>>> len(degrade(y, 8000, "speed+5", random_state=1))
7619
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Callable

import numpy as np

from ..audio import load
from ..errors import MissingExtraError, ParameterError
from ..extras import as_missing_extra, require
from .speech import BANK_SR, load_bank

__all__ = [
    "CONDITIONS",
    "BASE_CONDITIONS",
    "REAL_WORLD_CONDITIONS",
    "RandomState",
    "degrade",
    "encode_mono",
    "speed_factor",
    "source_seconds",
    "snr_db",
    "add_noise",
    "pink_noise",
    "mp3_reencode",
    "telephone",
    "apply_gain",
    "change_speed",
    "room_impulse_response",
    "reverb",
    "time_stretch",
    "pitch_shift",
    "broadcast",
    "talk_over",
    "phone_in_room",
    "EvalExtraMissing",
    "check_available",
]

RandomState = int | np.random.Generator | None

#: The 13 conditions of the peers' published measurements (``data/peers.json``), by their names.
BASE_CONDITIONS: tuple[str, ...] = (
    "clean",
    "white15",
    "white5",
    "white0",
    "pink5",
    "mp3_32k",
    "telephone",
    "gain-20",
    "speed+2",
    "speed-2",
    "speed+5",
    "speed-5",
    "reverb_noise10",
)
#: What users' clips go through beyond those: tempo and pitch changes, a phone in a noisy room,
#: talk-over, a radio chain (they need the ``eval`` extra).
REAL_WORLD_CONDITIONS: tuple[str, ...] = (
    "tempo+4",
    "tempo-4",
    "tempo+8",
    "tempo-8",
    "pitch+1",
    "pitch-1",
    "room_babble5",
    "speech0",
    "broadcast",
)
#: Condition names, in the order tables show them.
CONDITIONS: tuple[str, ...] = BASE_CONDITIONS + REAL_WORLD_CONDITIONS

#: Band of the telephone condition, Hz, and the rate it passes through.
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_SR = 8000
#: Bit rate of the ``mp3_32k`` condition, bit/s.
MP3_BITRATE = 32_000
#: RT60 range of the ``reverb_noise10`` room, seconds.
REVERB_RT60_S = (0.30, 0.40)

_SPEED = {"speed+2": 1.02, "speed-2": 0.98, "speed+5": 1.05, "speed-5": 0.95}
_TEMPO = {"tempo+4": 1.04, "tempo-4": 0.96, "tempo+8": 1.08, "tempo-8": 0.92}
_PITCH = {"pitch+1": 1.0, "pitch-1": -1.0}

#: The ``broadcast`` chain: level the chain sees (dBFS RMS), first-order high-pass (Hz), compressor
#: (threshold dB, ratio, attack ms, release ms), make-up gain (dB), limiter (threshold dB, release ms),
#: MP3 bit rate (bit/s).
BROADCAST_LEVEL_DBFS = -20.0
BROADCAST_HIGHPASS_HZ = 100.0
BROADCAST_COMPRESSOR = (-30.0, 8.0, 5.0, 100.0)
BROADCAST_MAKEUP_DB = 12.0
BROADCAST_LIMITER = (-1.0, 50.0)
BROADCAST_MP3_BITRATE = 64_000

#: The ``room_babble5`` room: the rate it is simulated and recorded at (a phone's wide band), the
#: loudspeaker's band (order-4 Butterworth band-pass, Hz), the phone microphone's band (order-4
#: Butterworth band-pass, Hz), RT60 range (s), loudspeaker-to-phone distance range (m), room size
#: ranges (m), talkers in the babble and the SNR (dB) of the music against them at the phone.
ROOM_SR = 16000
LOUDSPEAKER_BAND_HZ = (150.0, 7000.0)
PHONE_MIC_BAND_HZ = (100.0, 7500.0)
ROOM_RT60_S = (0.3, 0.8)
ROOM_DISTANCE_M = (1.5, 4.0)
ROOM_SIZE_M = ((6.0, 10.0), (5.0, 8.0), (2.5, 3.5))
BABBLE_TALKERS = 6
ROOM_BABBLE_SNR_DB = 5.0
#: The ``speech0`` talk-over: SNR of the music against one dry talker, dB.
TALK_OVER_SNR_DB = 0.0


def _rng(random_state: RandomState) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise ParameterError(f"random_state={random_state!r} must be an int, a numpy Generator or None")


def _check(y: np.ndarray, sr: int | None = None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"audio must be mono (1-D), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise ParameterError(f"audio must be floating point, got dtype {y.dtype}")
    if sr is not None and (not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ParameterError(f"sr={sr!r} must be a positive integer")
    return y


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64))) if y.size else 0.0


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    """Signal-to-noise ratio in dB: ``10·log10(mean(signal²) / mean(noise²))``.

    ``inf`` when the noise is zero, ``-inf`` when the signal is.
    """
    ps, pn = _power(np.asarray(signal)), _power(np.asarray(noise))
    if pn == 0.0:
        return float("inf")
    if ps == 0.0:
        return float("-inf")
    return float(10.0 * np.log10(ps / pn))


def pink_noise(n: int, *, random_state: RandomState = None) -> np.ndarray:
    """``n`` samples of pink noise (power ∝ 1/f), float64, unit power.

    White Gaussian noise shaped by ``1/√f`` in the frequency domain (the DC bin
    is zeroed).
    """
    if n <= 0:
        return np.zeros(0)
    rng = _rng(random_state)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    shape = np.zeros_like(f)
    shape[1:] = 1.0 / np.sqrt(f[1:])
    x = np.fft.irfft(spec * shape, n)
    p = _power(x)
    return x / np.sqrt(p) if p > 0 else x


def add_noise(y: np.ndarray, snr: float, *, color: str = "white", random_state: RandomState = None) -> np.ndarray:
    """Add white or pink noise at exactly ``snr`` dB below the clip's own power.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), floating]
    snr : float
        Target SNR in dB, measured on ``y`` and the noise actually drawn.
    color : {"white", "pink"}
    random_state : int, Generator or None

    Returns
    -------
    np.ndarray [shape=(n,), dtype of ``y``]
        ``y`` unchanged (a copy) when it is digital silence.
    """
    y = _check(y)
    if not np.isfinite(snr):
        raise ParameterError(f"snr={snr!r} must be a finite number of dB")
    rng = _rng(random_state)
    if color == "white":
        noise = rng.standard_normal(y.size)
    elif color == "pink":
        noise = pink_noise(y.size, random_state=rng)
    else:
        raise ParameterError(f"color={color!r} must be 'white' or 'pink'")
    ps, pn = _power(y), _power(noise)
    if ps == 0.0 or pn == 0.0:
        return y.copy()
    scale = np.sqrt(ps / (pn * 10.0 ** (snr / 10.0)))
    return (y.astype(np.float64) + scale * noise).astype(y.dtype)


def apply_gain(y: np.ndarray, db: float) -> np.ndarray:
    """Multiply by ``10^(db/20)`` (no clipping: float audio)."""
    y = _check(y)
    return (y * np.float64(10.0 ** (db / 20.0))).astype(y.dtype)


def change_speed(y: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play ``y`` ``factor`` times faster: pitch and tempo together, like a turntable.

    The samples are reinterpreted as recorded at ``sr·factor`` and resampled
    (soxr, high quality) to ``sr``; the length becomes ``≈ n / factor``.
    """
    import soxr

    y = _check(y, sr)
    if not (np.isfinite(factor) and 0.5 <= factor <= 2.0):
        raise ParameterError(f"speed factor={factor!r} must be in [0.5, 2]")
    if factor == 1.0 or y.size == 0:
        return y.copy()
    return soxr.resample(y.astype(np.float32), sr * float(factor), sr, quality="HQ").astype(y.dtype)


def telephone(y: np.ndarray, sr: int) -> np.ndarray:
    """A telephone line: 300–3400 Hz band-pass, through 8 kHz, back to ``sr``.

    Order-4 Butterworth band-pass (zero phase), then soxr down to
    :data:`TELEPHONE_SR` and up again, so nothing is left above 4 kHz.
    """
    import soxr
    from scipy.signal import butter, sosfiltfilt

    y = _check(y, sr)
    lo, hi = TELEPHONE_BAND_HZ
    if y.size == 0:
        return y.copy()
    x = y.astype(np.float64)
    if sr > 2 * hi:
        sos = butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos")
    else:
        sos = butter(4, lo, btype="highpass", fs=sr, output="sos")
    if x.size > 3 * (2 * sos.shape[0] + 1):
        x = sosfiltfilt(sos, x)
    if sr != TELEPHONE_SR:
        narrow = soxr.resample(x.astype(np.float32), sr, TELEPHONE_SR, quality="HQ")
        x = soxr.resample(narrow, TELEPHONE_SR, sr, quality="HQ")
        x = _fit_length(x, y.size)
    return x.astype(y.dtype)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.size >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.size, dtype=x.dtype)])


def encode_mono(y: np.ndarray, sr: int, target, *, container: str, codec: str, bitrate: int | None = None) -> None:
    """Encode mono float audio with an FFmpeg encoder (through PyAV) into ``target`` (path or binary file).

    Samples are clipped to [-1, 1] and converted to the encoder's sample
    format; frames are fed at the codec's frame size.
    """
    import av

    with av.open(
        target if not isinstance(target, os.PathLike) else os.fspath(target), mode="w", format=container
    ) as out:
        stream = out.add_stream(codec, rate=int(sr), layout="mono")
        if bitrate:
            stream.bit_rate = int(bitrate)
        fmt = stream.codec_context.format.name  # s16p / fltp / s32p …
        frame_len = stream.codec_context.frame_size or 1152
        pcm = np.clip(y.astype(np.float32), -1.0, 1.0)
        if fmt.startswith("s16"):
            pcm = np.round(pcm * 32767.0).astype(np.int16)
        elif fmt.startswith("s32"):
            pcm = np.round(pcm.astype(np.float64) * 2147483647.0).astype(np.int32)
        for start in range(0, pcm.size, frame_len):  # loop over codec frames, not samples
            chunk = np.ascontiguousarray(pcm[start : start + frame_len])
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format=fmt, layout="mono")
            frame.sample_rate = int(sr)
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def mp3_reencode(y: np.ndarray, sr: int, *, bitrate: int = MP3_BITRATE) -> np.ndarray:
    """Encode to MP3 at ``bitrate`` bit/s (LAME through PyAV, in memory) and decode back.

    The result has the input's length and rate (encoder delay is trimmed by
    the decoder; any remaining difference is padded or cut at the end).
    """
    y = _check(y, sr)
    if y.size == 0:
        return y.copy()
    buf = io.BytesIO()
    encode_mono(y, sr, buf, container="mp3", codec="libmp3lame", bitrate=bitrate)
    decoded = load(buf.getvalue(), sr=int(sr))
    return _fit_length(decoded, y.size).astype(y.dtype)


def room_impulse_response(
    sr: int, *, rt60_s: float, random_state: RandomState = None, direct: float = 1.0
) -> np.ndarray:
    """A synthetic small-room impulse response, float64, ``rt60_s`` seconds long.

    A unit direct path at t = 0 followed by Gaussian noise under an
    exponential envelope that falls by 60 dB in ``rt60_s``
    (``exp(-6.908·t / rt60)``, 6.908 = ln 10³), scaled so the reverberant
    tail carries the same energy as the direct path times ``1/direct``.
    """
    if not (np.isfinite(rt60_s) and 0.01 <= rt60_s <= 5.0):
        raise ParameterError(f"rt60_s={rt60_s!r} must be in [0.01, 5] seconds")
    rng = _rng(random_state)
    n = max(2, int(round(rt60_s * sr)))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-np.log(1000.0) * t / rt60_s)
    tail[0] = 0.0
    tail *= 1.0 / np.sqrt(max(np.sum(tail**2), 1e-30) * direct)
    tail[0] = 1.0
    return tail


def reverb(y: np.ndarray, sr: int, *, rt60_s: float, random_state: RandomState = None) -> np.ndarray:
    """Convolve with :func:`room_impulse_response`, keep the length, restore the clip's power."""
    from scipy.signal import fftconvolve

    y = _check(y, sr)
    if y.size == 0:
        return y.copy()
    ir = room_impulse_response(sr, rt60_s=rt60_s, random_state=random_state)
    wet = fftconvolve(y.astype(np.float64), ir)[: y.size]
    p_in, p_out = _power(y), _power(wet)
    if p_out > 0:
        wet *= np.sqrt(p_in / p_out)
    return wet.astype(y.dtype)


class EvalExtraMissing(MissingExtraError, ParameterError):
    """A condition needs a package of the ``eval`` extra that is not installed."""


def _need(module: str, what: str):
    require("eval", what, modules=(module,), error=EvalExtraMissing)
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # installed but broken
        raise as_missing_extra(exc, what, module=module, error=EvalExtraMissing) from None


def _needs(condition: str) -> tuple[str, ...]:
    if condition in _TEMPO or condition in _PITCH or condition == "broadcast":
        return ("pedalboard",)
    if condition == "room_babble5":
        return ("pyroomacoustics",)
    return ()


def check_available(conditions) -> None:
    """Raise :class:`EvalExtraMissing` (one line) unless every condition's packages import."""
    for c in conditions:
        _check_condition(c)
        for m in _needs(c):
            _need(m, f"condition {c!r}")


def time_stretch(y: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play ``y`` ``factor`` times faster with its pitch kept (a DJ's tempo change).

    Rubber Band through ``pedalboard.time_stretch`` (high quality, crisp
    transients, phase continuity kept, formants not preserved); the length
    becomes ``round(n / factor)``.
    """
    y = _check(y, sr)
    if not (np.isfinite(factor) and 0.5 <= factor <= 2.0):
        raise ParameterError(f"tempo factor={factor!r} must be in [0.5, 2]")
    return _rubberband(y, sr, factor, 0.0)


def pitch_shift(y: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """Shift ``y`` by ``semitones`` with its tempo (and length) kept: Rubber Band, as :func:`time_stretch`."""
    y = _check(y, sr)
    if not (np.isfinite(semitones) and abs(semitones) <= 12):
        raise ParameterError(f"semitones={semitones!r} must be in [-12, 12]")
    return _rubberband(y, sr, 1.0, float(semitones))


def _rubberband(y: np.ndarray, sr: int, factor: float, semitones: float) -> np.ndarray:
    pb = _need("pedalboard", "a tempo or pitch change")
    if y.size == 0 or (factor == 1.0 and semitones == 0.0):
        return y.copy()
    out = pb.time_stretch(
        y.astype(np.float32)[None, :],
        float(sr),
        stretch_factor=float(factor),
        pitch_shift_in_semitones=float(semitones),
        high_quality=True,
        preserve_formants=False,
    )[0]
    return _fit_length(out, int(round(y.size / factor))).astype(y.dtype)


def broadcast(y: np.ndarray, sr: int) -> np.ndarray:
    """A radio chain: levelled to :data:`BROADCAST_LEVEL_DBFS`, high-pass, 8:1 compressor, make-up gain,
    limiter (``pedalboard``), then MP3 at :data:`BROADCAST_MP3_BITRATE` (LAME through PyAV) and back.

    Length and rate are kept; the result is at the chain's output level (what a radio plays).
    """
    pb = _need("pedalboard", "the broadcast chain")
    y = _check(y, sr)
    p = _power(y)
    if y.size == 0 or p == 0.0:
        return y.copy()
    x = (y.astype(np.float64) * (10 ** (BROADCAST_LEVEL_DBFS / 20) / np.sqrt(p))).astype(np.float32)
    thr, ratio, attack, release = BROADCAST_COMPRESSOR
    chain = pb.Pedalboard(
        [
            pb.HighpassFilter(cutoff_frequency_hz=BROADCAST_HIGHPASS_HZ),
            pb.Compressor(threshold_db=thr, ratio=ratio, attack_ms=attack, release_ms=release),
            pb.Gain(gain_db=BROADCAST_MAKEUP_DB),
            pb.Limiter(threshold_db=BROADCAST_LIMITER[0], release_ms=BROADCAST_LIMITER[1]),
        ]
    )
    x = chain(x[None, :], float(sr))[0]
    return mp3_reencode(x, sr, bitrate=BROADCAST_MP3_BITRATE).astype(y.dtype)


def _talkers(sr: int, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` different talkers of the speech bank, ``n`` samples each at ``sr``, each from a random point
    of its speech (wrapping round), float64 ``[k, n]``."""
    import soxr

    bank = load_bank()
    who = rng.choice(bank.shape[0], size=k, replace=False)
    m = int(np.ceil(n * BANK_SR / sr)) + 64
    out = np.empty((k, n))
    for i, w in enumerate(who):  # a handful of talkers
        start = int(rng.integers(0, bank.shape[1]))
        seg = np.take(bank[w], np.arange(start, start + m), mode="wrap")
        z = seg if sr == BANK_SR else soxr.resample(seg, BANK_SR, sr, quality="HQ")
        out[i] = _fit_length(z.astype(np.float64), n)
    return out


def _mix_at(signal: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``signal + g·noise`` with ``g`` such that ``snr_db(signal, g·noise) == snr`` (float64)."""
    ps, pn = _power(signal), _power(noise)
    if ps == 0.0 or pn == 0.0:
        return signal.astype(np.float64)
    return signal + np.sqrt(ps / (pn * 10.0 ** (snr / 10.0))) * noise


def talk_over(y: np.ndarray, sr: int, *, snr: float = TALK_OVER_SNR_DB, random_state: RandomState = None) -> np.ndarray:
    """One talker of the speech bank over the music, dry, at exactly ``snr`` dB (music power over the
    talker's, both over the whole clip, pauses included)."""
    y = _check(y, sr)
    if y.size == 0 or _power(y) == 0.0:
        return y.copy()
    voice = _talkers(int(sr), y.size, 1, _rng(random_state))[0]
    return _mix_at(y.astype(np.float64), voice, snr).astype(y.dtype)


def _butter_band(x: np.ndarray, sr: int, band: tuple[float, float], order: int = 4) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    lo, hi = band
    if hi < 0.5 * sr * 0.99:
        sos = butter(order, [lo, hi], btype="bandpass", fs=sr, output="sos")
    else:
        sos = butter(order, lo, btype="highpass", fs=sr, output="sos")
    return sosfilt(sos, x)


def _room(rng: np.random.Generator, n_talkers: int):
    """A shoebox room and the positions in it: ``(dims, rt60, loudspeaker, phone, talkers)``."""
    dims = np.array([rng.uniform(*r) for r in ROOM_SIZE_M])
    rt60 = float(rng.uniform(*ROOM_RT60_S))
    margin = 0.5
    lo, hi = np.array([margin, margin, 0.0]), dims - margin
    for _ in range(1000):  # rejection sampling: a few draws
        speaker = rng.uniform(lo + [0, 0, 0.8], [hi[0], hi[1], 1.8])
        d = rng.uniform(*ROOM_DISTANCE_M)
        az, el = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3)
        phone = speaker + d * np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])
        if np.all(phone >= lo + [0, 0, 0.7]) and np.all(phone <= [hi[0], hi[1], 1.6]):
            break
    else:  # pragma: no cover - the room sizes make this unreachable
        raise RuntimeError("no loudspeaker/phone placement found")
    talkers = []
    while len(talkers) < n_talkers:  # a few draws each
        p = rng.uniform(lo + [0, 0, 1.1], [hi[0], hi[1], 1.8])
        if np.linalg.norm(p[:2] - phone[:2]) >= 0.8 and np.linalg.norm(p[:2] - speaker[:2]) >= 0.5:
            talkers.append(p)
    return dims, rt60, speaker, phone, talkers


def room_rirs(dims, rt60: float, sources, mic, sr: int = ROOM_SR) -> tuple[list[np.ndarray], float]:
    """Image-source impulse responses from ``sources`` to ``mic`` in a shoebox with reverberation ``rt60``.

    The walls' absorption comes from Sabine's formula (``pyroomacoustics.inverse_sabine``),
    corrected once by the RT60 measured on the first response (T20, Schroeder integration):
    the image-source response of a Sabine room decays 1.1–1.6x slower than Sabine says. The
    reflection order reaches ``c · RT60`` (the response's length). Returns the responses
    and the measured RT60 of the first.
    """
    pra = _need("pyroomacoustics", "the room condition")
    dims = np.asarray(dims, dtype=float)

    def simulate(target: float, srcs) -> list[np.ndarray]:
        e_abs, _ = pra.inverse_sabine(target, dims)
        order = int(np.ceil(343.0 * rt60 / float(np.mean(dims)))) + 2
        room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(float(e_abs)), max_order=order, air_absorption=False)
        for s in srcs:
            room.add_source(np.asarray(s, float))
        room.add_microphone(np.asarray(mic, float))
        room.compute_rir()
        return [np.asarray(room.rir[0][i], dtype=np.float64) for i in range(len(srcs))]

    first = simulate(rt60, sources[:1])[0]
    measured = _rt60(first, sr)
    target = float(np.clip(rt60 * rt60 / measured, 0.05, 5.0)) if measured > 0 else rt60
    rirs = simulate(target, sources)
    return rirs, _rt60(rirs[0], sr)


def _rt60(h: np.ndarray, sr: int) -> float:
    """RT60 of an impulse response from its Schroeder decay between −5 and −25 dB (T20 × 3)."""
    e = np.cumsum(np.square(h[::-1], dtype=np.float64))[::-1]
    if e[0] <= 0:
        return 0.0
    db = 10 * np.log10(np.maximum(e / e[0], 1e-30))
    i5, i25 = int(np.argmax(db <= -5.0)), int(np.argmax(db <= -25.0))
    if i25 <= i5:
        return 0.0
    return 3.0 * (i25 - i5) / sr


def phone_in_room(
    y: np.ndarray,
    sr: int,
    *,
    snr: float = ROOM_BABBLE_SNR_DB,
    talkers: int = BABBLE_TALKERS,
    random_state: RandomState = None,
) -> np.ndarray:
    """Music from a loudspeaker, recorded by a phone across a room while people talk.

    1. The loudspeaker's band (:data:`LOUDSPEAKER_BAND_HZ`), then the rate of the room (:data:`ROOM_SR`).
    2. A shoebox room (:data:`ROOM_SIZE_M`) with RT60 drawn in :data:`ROOM_RT60_S`, the phone
       :data:`ROOM_DISTANCE_M` from the loudspeaker; image-source responses (:func:`room_rirs`) from
       the loudspeaker and ``talkers`` talkers elsewhere in the room. The music's response is
       shifted so its direct sound arrives at t = 0 (the clip stays aligned with its source).
    3. The talkers (different voices of the speech bank), each at the same dry level, through their
       responses, summed, and scaled so that the music at the phone is exactly ``snr`` dB above the
       babble at the phone (powers over the whole clip).
    4. The phone microphone's band (:data:`PHONE_MIC_BAND_HZ`) at :data:`ROOM_SR`, back to ``sr``.

    The length is kept; the level is the music's at the phone (no gain control).
    """
    import soxr

    y = _check(y, sr)
    if y.size == 0 or _power(y) == 0.0:
        return y.copy()
    music, babble = _phone_parts(y, int(sr), talkers, _rng(random_state))
    mix = _butter_band(_mix_at(music, babble, snr), ROOM_SR, PHONE_MIC_BAND_HZ)
    out = soxr.resample(mix, ROOM_SR, sr, quality="HQ") if sr != ROOM_SR else mix
    return _fit_length(out, y.size).astype(y.dtype)


def _phone_parts(y: np.ndarray, sr: int, talkers: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1–2 of :func:`phone_in_room`: the music and the (unscaled) babble at the phone, float64 at ROOM_SR."""
    import soxr
    from scipy.signal import fftconvolve

    dims, rt60, speaker, phone, places = _room(rng, talkers)
    rirs, _ = room_rirs(dims, rt60, [speaker, *places], phone)
    x = _butter_band(y.astype(np.float64), sr, LOUDSPEAKER_BAND_HZ)
    x = soxr.resample(x, sr, ROOM_SR, quality="HQ") if sr != ROOM_SR else x
    n = x.size
    h = rirs[0][int(np.argmax(np.abs(rirs[0]))) :]  # direct sound at t = 0
    music = fftconvolve(x, h)[:n]
    voices = _talkers(ROOM_SR, n, talkers, rng)
    babble = sum(fftconvolve(v, r)[:n] for v, r in zip(voices, rirs[1:]))
    return music, babble


def _noise(snr: float, color: str) -> Callable:
    return lambda y, sr, rng: add_noise(y, snr, color=color, random_state=rng)


def _speed(factor: float) -> Callable:
    return lambda y, sr, rng: change_speed(y, sr, factor)


def _reverb_noise(y: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    rt60 = float(rng.uniform(*REVERB_RT60_S))
    return add_noise(reverb(y, sr, rt60_s=rt60, random_state=rng), 10.0, random_state=rng)


_APPLY: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "clean": lambda y, sr, rng: y.copy(),
    "white15": _noise(15.0, "white"),
    "white5": _noise(5.0, "white"),
    "white0": _noise(0.0, "white"),
    "pink5": _noise(5.0, "pink"),
    "mp3_32k": lambda y, sr, rng: mp3_reencode(y, sr),
    "telephone": lambda y, sr, rng: telephone(y, sr),
    "gain-20": lambda y, sr, rng: apply_gain(y, -20.0),
    **{name: _speed(f) for name, f in _SPEED.items()},
    "reverb_noise10": _reverb_noise,
    **{name: (lambda f: lambda y, sr, rng: time_stretch(y, sr, f))(f) for name, f in _TEMPO.items()},
    **{name: (lambda k: lambda y, sr, rng: pitch_shift(y, sr, k))(k) for name, k in _PITCH.items()},
    "room_babble5": lambda y, sr, rng: phone_in_room(y, sr, random_state=rng),
    "speech0": lambda y, sr, rng: talk_over(y, sr, random_state=rng),
    "broadcast": lambda y, sr, rng: broadcast(y, sr),
}
assert tuple(_APPLY) == CONDITIONS


def _check_condition(condition: str) -> None:
    if condition not in _APPLY:
        raise ParameterError(f"condition={condition!r} is unknown; known: {', '.join(CONDITIONS)}")


def speed_factor(condition: str) -> float:
    """How much faster the condition plays the audio (1.0 for all but ``speed±N`` and ``tempo±N``)."""
    _check_condition(condition)
    return _SPEED.get(condition, _TEMPO.get(condition, 1.0))


def source_seconds(condition: str, duration_s: float) -> float:
    """Seconds of source audio that give a ``duration_s`` clip after ``condition``."""
    return duration_s * speed_factor(condition)


def degrade(y: np.ndarray, sr: int, condition: str, *, random_state: RandomState = None) -> np.ndarray:
    """Apply the named condition (see :data:`CONDITIONS`) to a mono clip.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), floating]
    sr : int
        Sample rate of ``y`` (and of the result).
    condition : str
        One of :data:`CONDITIONS`.
    random_state : int, Generator or None
        Seeds the noise and the room; the same seed gives the same output.

    Returns
    -------
    np.ndarray [shape=(m,), dtype of ``y``]
        ``m = n`` except for speed and tempo changes (``m ≈ n / speed_factor``).

    Raises
    ------
    ParameterError
        Unknown condition, non-mono or non-float audio, bad ``sr``.
    EvalExtraMissing
        The condition needs a package of the ``eval`` extra that is not installed.
    """
    _check_condition(condition)
    y = _check(y, sr)
    return _APPLY[condition](y, int(sr), _rng(random_state))
