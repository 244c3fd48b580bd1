"""Spectral profiles: a second, independent look at an uncertain answer.

Landmark votes need *pairs* of peaks to survive; under 0–5 dB of noise, on
quiet sustained music, too few do, and the right track stays under the
chance level of the vote count ("no match"). The evidence is still in the
spectrum: which semitone bands grow or fade from one moment to the next, and
the balance of the twelve pitch classes. A *profile* keeps both, per frame
of ``PROFILE_HOP`` samples (0.19 s at 11,025 Hz), in 14 bytes:

* ``bits`` (uint64): for each of the 63 semitone bands from 95 to 3,500 Hz,
  whether its log power rose more than the frame's average band did (the
  sign of a centred time difference) — it follows the music's movement;
* ``chroma`` (12 × 4 bits): the frame's centred, normalised pitch-class
  profile — it holds where the music sustains and does not move.

The index stores one profile per track (about 0.27 MB per hour of audio).
At query time :func:`similarity` compares the clip's profile with the
track's at a candidate's voted offset and speed. Its two statistics are
normalised so that their chance distribution does not depend on the clip's
length (``z = r·√n`` for the band signs, ``atanh(c)·√n`` for the chroma, over
``n`` frames); the thresholds that turn them into an answer were calibrated
on non-member clips (``benchmarks/verify_null.py``, ``docs/identify.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IndexFormatError, ParameterError

__all__ = ["PROFILE_VERSION", "Profile", "profile", "similarity", "hop_length", "n_bands", "supported"]

#: Bumped whenever a profile's meaning changes (stored in the index).
PROFILE_VERSION = 1
#: Frame and hop of the profile at the reference rate :data:`PROFILE_SR`, samples.
PROFILE_N_FFT = 2048
PROFILE_HOP = 2048
#: The rate profiles are defined at (the landmark default); other rates scale the frame.
PROFILE_SR = 11025
#: Semitone bands between these frequencies (Hz): 63 bands, one bit each of a 64-bit word.
FMIN_HZ = 95.0
FMAX_HZ = 3500.0
#: Chroma values are stored as 4-bit integers in [-CHROMA_LEVELS, CHROMA_LEVELS].
CHROMA_LEVELS = 7
_CHROMA_SCALE = CHROMA_LEVELS / 0.9
#: Frames processed at once (bounds memory on long tracks).
_CHUNK = 128
_BYTES_PER_FRAME = 8 + 6


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-frame band-change signs and 4-bit chroma of one signal (see the module docstring)."""

    bits: np.ndarray  # uint64 [n]
    chroma: np.ndarray  # int8 [n, 12], values in [-CHROMA_LEVELS, CHROMA_LEVELS]
    n_bands: int  # semitone bands in use (low bits of each word)

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    def to_bytes(self) -> bytes:
        """``n`` little-endian uint64 band-sign words, then ``n × 6`` bytes of chroma nibbles."""
        c = (self.chroma.astype(np.int16) + 8).astype(np.uint8)  # 1..15
        nib = (c[:, 0::2] << 4) | c[:, 1::2]
        return self.bits.astype("<u8").tobytes() + nib.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, n_bands: int) -> Profile:
        if len(data) % _BYTES_PER_FRAME:
            raise IndexFormatError(f"a stored profile of {len(data)} bytes is not whole frames of {_BYTES_PER_FRAME}")
        n = len(data) // _BYTES_PER_FRAME
        bits = np.frombuffer(data, dtype="<u8", count=n).astype(np.uint64)
        nib = np.frombuffer(data, dtype=np.uint8, offset=8 * n).reshape(n, 6)
        chroma = np.empty((n, 12), dtype=np.int8)
        chroma[:, 0::2] = (nib >> 4).astype(np.int8) - 8
        chroma[:, 1::2] = (nib & 15).astype(np.int8) - 8
        return cls(bits, chroma, n_bands)

    def window(self, start: int, n: int) -> Profile:
        """Frames ``[start, start + n)`` clipped to the profile (may be shorter than ``n``)."""
        a, b = max(start, 0), max(min(start + n, len(self)), 0)
        return Profile(self.bits[a:b], self.chroma[a:b], self.n_bands)


def _frame_geometry(sr: int) -> tuple[int, int]:
    scale = sr / PROFILE_SR
    return int(round(PROFILE_N_FFT * scale)), int(round(PROFILE_HOP * scale))


def hop_length(sr: int) -> int:
    """Profile hop in samples at rate ``sr``."""
    return _frame_geometry(sr)[1]


def supported(sr: int) -> bool:
    """Can audio at ``sr`` have a profile (its band reaches up to FMAX_HZ)?"""
    return FMAX_HZ <= 0.45 * sr


def n_bands(sr: int) -> int:
    """Semitone bands of a profile at rate ``sr`` (the low bits of each word)."""
    return int(_bands(sr)[2].size)


_tables: dict[int, tuple] = {}


def _bands(sr: int):
    """Per rate, once: the band's first and end FFT bins, where each semitone band starts among
    them, the window, and the bands-to-pitch-classes matrix."""
    if sr not in _tables:
        n_fft, _ = _frame_geometry(sr)
        f = np.fft.rfftfreq(n_fft, 1.0 / sr)
        if not supported(sr):
            raise ParameterError(f"sr={sr} Hz is too low for a profile up to {FMAX_HZ:g} Hz")
        keep = np.flatnonzero((f >= FMIN_HZ) & (f <= FMAX_HZ))
        semi = np.round(12 * np.log2(f[keep] / 440.0)).astype(np.int64)
        starts = np.flatnonzero(np.concatenate(([True], semi[1:] != semi[:-1])))
        if starts.size > 64:
            raise ParameterError(f"sr={sr} gives {starts.size} semitone bands, more than the 64 a profile word holds")
        pc = semi[starts] % 12
        to_pc = np.zeros((pc.size, 12), np.float32)
        to_pc[np.arange(pc.size), pc] = 1.0
        _tables[sr] = (keep[0], keep[-1] + 1, starts, np.hanning(n_fft).astype(np.float32), to_pc)
    return _tables[sr]


def profile(y: np.ndarray, sr: int = PROFILE_SR) -> Profile:
    """The profile of mono audio ``y`` at ``sr``; frame ``k`` starts at sample ``k × hop_length(sr)``.

    Examples
    --------
    >>> p = profile(np.zeros(11025 * 2, np.float32))
    >>> len(p), p.chroma.shape
    (10, (10, 12))
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"audio must be mono (1-D), got shape {y.shape}")
    n_fft, hop = _frame_geometry(sr)
    n = 0 if y.shape[0] < n_fft else 1 + (y.shape[0] - n_fft) // hop
    if n == 0:
        return Profile(np.zeros(0, np.uint64), np.zeros((0, 12), np.int8), n_bands(sr))
    lo, hi, starts, win, to_pc = _bands(sr)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop][:n]
    bits = np.empty(n, np.uint64)
    chroma = np.empty((n, 12), np.int8)
    weights = np.uint64(1) << np.arange(starts.size, dtype=np.uint64)
    prev = None
    import scipy.fft

    for a in range(0, n, _CHUNK):  # chunks of frames
        spec = scipy.fft.rfft(frames[a : a + _CHUNK] * win, axis=1)[:, lo:hi]  # float32 in, complex64 out
        power = spec.real**2 + spec.imag**2
        band = np.add.reduceat(power, starts, axis=1)  # [frames, semitone bands]
        # log power over the frame's median band: a level- and noise-floor-independent scale
        e = np.log1p(band / (np.median(band) + 1e-20))
        d = np.diff(e, axis=0, prepend=e[:1] if prev is None else prev[None])
        prev = e[-1]
        d -= d.mean(axis=1, keepdims=True)
        bits[a : a + _CHUNK] = ((d > 0).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)
        c = band @ to_pc  # the 12 pitch classes
        c = np.log1p(c / (np.median(c) + 1e-20))
        c -= c.mean(axis=1, keepdims=True)
        c /= np.linalg.norm(c, axis=1, keepdims=True) + 1e-9
        chroma[a : a + _CHUNK] = np.clip(np.round(c * _CHROMA_SCALE), -CHROMA_LEVELS, CHROMA_LEVELS)
    return Profile(bits, chroma, int(starts.size))


def similarity(query: Profile, ref: Profile, start: int, *, slack: int = 1) -> tuple[float, float, int]:
    """How well ``query`` matches ``ref`` from frame ``start`` on (best of ``start ± slack``).

    Returns
    -------
    z_bands : float
        ``r · √n``: ``r`` is the mean agreement of band-change signs (``+1``
        all agree, ``0`` chance), over the ``n`` overlapping frames.
    z_chroma : float
        ``atanh(c) · √n``: ``c`` is the mean cosine of the chroma profiles.
    n : int
        Frames compared (at the best shift of the band statistic); 0 when
        the overlap is under half the query.
    """
    nq = len(query)
    best = (-np.inf, -np.inf, 0)
    if query.n_bands != ref.n_bands:
        raise ParameterError(f"profiles of {query.n_bands} and {ref.n_bands} bands cannot be compared")
    nb = query.n_bands
    # the reference frames any shift can touch, converted once
    w0, w1 = max(start - slack, 0), min(start + slack + nq, len(ref))
    if w1 - w0 < max(nq // 2, 1):
        return best
    qc = query.chroma.astype(np.float32)
    qn = np.linalg.norm(qc, axis=1)
    rc = ref.chroma[w0:w1].astype(np.float32)
    rn = np.linalg.norm(rc, axis=1)
    rbits = ref.bits[w0:w1]
    for k in range(-slack, slack + 1):  # a few shifts
        s = start + k
        a, b = max(s, 0), min(s + nq, len(ref))
        if b - a < max(nq // 2, 1):
            continue
        n = b - a
        flips = int(np.bitwise_count(query.bits[a - s : b - s] ^ rbits[a - w0 : b - w0]).sum())
        r = 1.0 - 2.0 * flips / (nb * n)
        cos = (qc[a - s : b - s] * rc[a - w0 : b - w0]).sum(1) / (qn[a - s : b - s] * rn[a - w0 : b - w0] + 1e-9)
        c = float(np.clip(cos.mean(), -0.999, 0.999))
        zb, zc = r * np.sqrt(n), float(np.arctanh(c)) * np.sqrt(n)
        best = (max(best[0], zb), max(best[1], zc), n if zb >= best[0] else best[2])
    return best
