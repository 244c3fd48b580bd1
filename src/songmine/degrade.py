"""Deterministic query degradations: what a clip goes through between the record and the phone.

Every function is pure (numpy in, numpy out, the input is never modified) and
every random one takes ``random_state`` (an int seed, a
:class:`numpy.random.Generator` or ``None``), so a query set is reproducible
from one seed. Audio is mono float32 at any rate ``sr``.

The named conditions used by ``songmine eval`` (the same names as the peer
measurements in ``PEERS.md``) are listed in :data:`CONDITIONS` and applied by
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
=================  ==========================================================

SNR is measured on the clip's own power: ``10·log10(mean(y²) / mean(n²))``
with the noise actually drawn (not its expected power), so the stated SNR is
exact. A clip of digital silence has no defined SNR; noise functions return it
unchanged (the harness never draws near-silent clips).

A speed change by ``factor`` turns ``n`` samples into ``round(n / factor)``:
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

import io
import os
from collections.abc import Callable

import numpy as np

from .errors import ParameterError

__all__ = [
    "CONDITIONS",
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
]

RandomState = int | np.random.Generator | None

#: Condition names, in the order tables show them (the names of PEERS.md).
CONDITIONS: tuple[str, ...] = (
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

#: Band of the telephone condition, Hz, and the rate it passes through.
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_SR = 8000
#: Bit rate of the ``mp3_32k`` condition, bit/s.
MP3_BITRATE = 32_000
#: RT60 range of the ``reverb_noise10`` room, seconds.
REVERB_RT60_S = (0.30, 0.40)

_SPEED = {"speed+2": 1.02, "speed-2": 0.98, "speed+5": 1.05, "speed-5": 0.95}


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


def add_noise(
    y: np.ndarray, snr: float, *, color: str = "white", random_state: RandomState = None
) -> np.ndarray:
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

    with av.open(target if not isinstance(target, os.PathLike) else os.fspath(target), mode="w",
                 format=container) as out:
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
    from .audio import load

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
}
assert tuple(_APPLY) == CONDITIONS


def _check_condition(condition: str) -> None:
    if condition not in _APPLY:
        raise ParameterError(f"condition={condition!r} is unknown; known: {', '.join(CONDITIONS)}")


def speed_factor(condition: str) -> float:
    """How much faster the condition plays the audio (1.0 for all but ``speed±N``)."""
    _check_condition(condition)
    return _SPEED.get(condition, 1.0)


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
        ``m = n`` except for speed changes (``m ≈ n / speed_factor``).

    Raises
    ------
    ParameterError
        Unknown condition, non-mono or non-float audio, bad ``sr``.
    """
    _check_condition(condition)
    y = _check(y, sr)
    return _APPLY[condition](y, int(sr), _rng(random_state))
