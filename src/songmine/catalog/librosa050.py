"""The FMA feature families computed with librosa 0.5.0's semantics, vectorised.

``features.csv`` of ``fma_metadata.zip`` was computed on **librosa 0.5.0**. Today's
librosa changed defaults (STFT padding, CQT filters and resampling, tuning
histogram, chroma-from-CQT bin mapping, CENS window, RMS scaling, scipy's
statistics of constant rows), so this module re-implements the 0.5.0 semantics
explicitly (``docs/catalog.md`` lists each point) instead of calling librosa with
today's defaults.

Speed comes from sharing work across the eleven families: one STFT (magnitude
reused by chroma_stft, rmse, the four spectral shapes, mfcc and both tuning
estimates), one CQT (reused by chroma_cqt, chroma_cens and tonnetz), all
vectorised over frames. Filter banks are built once per (rate, tuning) and cached
per process.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..extras import require
from .schema import FEATURE_FAMILIES, FEATURE_STATISTICS

require("features", __name__)  # a missing package of the extra: one line naming it, not a traceback

__all__ = ["extract_families", "summarize", "N_FFT", "HOP", "QUIRK_SR"]

N_FFT = 2048
HOP = 512
#: librosa 0.5.0's assumed rate for functions called without ``sr`` (FMA's quirk).
QUIRK_SR = 22050
_C1_HZ = 32.70319566257483
_CQT_BINS = 84
_BPO = 12
_HANN_BANDWIDTH = 1.50018310546875  # librosa 0.5.0 WINDOW_BANDWIDTHS['hann']
_ORDER = list(FEATURE_FAMILIES)  # family order of the 74 stacked dims (alphabetical)


# --------------------------------------------------------------------------- spectra


def _frames(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Strided view [n_frames, frame_length] (librosa 0.5.0 frame count)."""
    n = 1 + (len(y) - frame_length) // hop_length
    return np.lib.stride_tricks.as_strided(
        y, shape=(n, frame_length), strides=(hop_length * y.strides[0], y.strides[0]), writeable=False
    )


def _stft(y: np.ndarray, n_fft: int, hop_length: int, window: np.ndarray | None, *, block: int = 4096) -> np.ndarray:
    """Centred, reflect-padded STFT, **time-major** complex64 [n_frames, 1 + n_fft/2].

    Returns the complex conjugate of the FFT, as librosa 0.5.0's ``stft`` did.
    """
    from scipy import fft as sfft

    yp = np.pad(y, n_fft // 2, mode="reflect")
    fr = _frames(yp, n_fft, hop_length)
    out = np.empty((fr.shape[0], n_fft // 2 + 1), dtype=np.complex64)
    for s in range(0, fr.shape[0], block):  # blocks bound the FFT scratch memory
        seg = fr[s : s + block]
        if window is not None:
            seg = seg * window
        np.conjugate(sfft.rfft(seg, axis=1), out=out[s : s + block])
    return out


def _stft_magnitude(y: np.ndarray) -> np.ndarray:
    """|STFT| float32 [1025, n_frames] (a transposed view of a time-major array), periodic Hann,
    n_fft 2048, hop 512, centred with reflect padding."""
    from scipy import fft as sfft

    win = _hann(N_FFT)
    yp = np.pad(y, N_FFT // 2, mode="reflect")
    fr = _frames(yp, N_FFT, HOP)
    out = np.empty((fr.shape[0], N_FFT // 2 + 1), dtype=np.float32)
    block = 256  # frames per FFT call: keeps the float64 scratch in cache
    for s in range(0, fr.shape[0], block):
        # float64 FFT, as librosa 0.5.0 (float64 window × float32 frames): near-silent bins keep their digits
        np.abs(sfft.rfft(fr[s : s + block] * win, axis=1), out=out[s : s + block])
    return out.T


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (scipy ``get_window('hann', n, fftbins=True)``), float64."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _fft_frequencies(sr: float, n_fft: int = N_FFT) -> np.ndarray:
    return np.linspace(0, float(sr) / 2, 1 + n_fft // 2, endpoint=True)


def _normalize(S: np.ndarray, norm: float, threshold: float) -> np.ndarray:
    """librosa 0.5.0 ``util.normalize`` along axis 0 with ``fill=None``."""
    mag = np.abs(S).astype(np.float64)
    if norm == np.inf:
        length = mag.max(axis=0, keepdims=True)
    elif norm == 1:
        length = mag.sum(axis=0, keepdims=True)
    elif norm == 2:
        length = np.sqrt((mag**2).sum(axis=0, keepdims=True))
    else:  # pragma: no cover - not used
        raise ParameterError(f"norm={norm}")
    length[length < threshold] = 1.0
    return S / length


def _tiny(x: np.ndarray) -> float:
    return float(np.finfo(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32).tiny)


# --------------------------------------------------------------------------- tuning (0.5.0)


def _estimate_tuning(S: np.ndarray, sr: float) -> float:
    """librosa 0.5.0 ``estimate_tuning(S=S, sr=sr)``: piptrack + a 99-bin residual histogram."""
    n_fft = 2 * (S.shape[0] - 1)
    fmin, fmax = 150.0, min(4000.0, float(sr) / 2)
    freqs = _fft_frequencies(sr, n_fft)
    fidx = np.flatnonzero((fmin <= freqs) & (freqs < fmax))
    lo, hi = max(int(fidx[0]) - 1, 0), min(int(fidx[-1]) + 2, S.shape[0])
    # only the bins inside [fmin, fmax) can yield pitches: work time-major on that slab (+1 bin
    # each side, never at S's edges, so librosa's edge padding of localmax never applies)
    St = S.T
    sub = St[:, lo:hi]
    thr = sub * (sub > 0.1 * St.max(axis=1, keepdims=True))
    cur = thr[:, 1:-1]
    lm = (cur > thr[:, :-2]) & (cur >= thr[:, 2:])
    rows = np.arange(lo + 1, hi - 1)
    in_range = (fmin <= freqs[rows]) & (freqs[rows] < fmax)
    if not in_range.all():
        lm &= in_range[None, :]
    c, r = np.nonzero(lm)
    if r.size == 0:
        return 0.0
    # parabolic interpolation only at the local maxima (0.5.0 computed it for every bin, then picked
    # these): the same float32 operations on the same three neighbours
    left, mid, right = sub[c, r], sub[c, r + 1], sub[c, r + 2]
    avg = 0.5 * (right - left)
    shift = 2 * mid - right - left
    shift = avg / (shift + (np.abs(shift) < _tiny(shift)))
    dskew = 0.5 * avg * shift
    pitch = (rows[r] + shift) * float(sr) / n_fft
    mag = mid + dskew
    pos = pitch > 0
    threshold = np.median(mag[pos]) if pos.any() else 0.0
    f = pitch[(mag >= threshold) & pos]
    f = f[f > 0]
    if f.size == 0:
        return 0.0
    residual = np.mod(_BPO * np.log2(f / (440.0 / 16)), 1.0)
    residual[residual >= 0.5] -= 1.0
    bins = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / 0.01)), endpoint=False)
    counts, edges = np.histogram(residual, bins)
    return float(edges[np.argmax(counts)])


# --------------------------------------------------------------------------- CQT (0.5.0)


@functools.lru_cache(maxsize=32)
def _cqt_basis(sr: float, fmin: float, tuning: float) -> tuple[np.ndarray, int]:
    """0.5.0 ``__cqt_filter_fft`` for one octave (12 bins): dense complex128 [12, n_fft//2+1]."""
    correction = 2.0 ** (tuning / _BPO)
    f0 = correction * fmin
    Q = 1.0 / (2.0 ** (1.0 / _BPO) - 1)
    freq = f0 * 2.0 ** (np.arange(_BPO, dtype=float) / _BPO)
    lengths = Q * sr / freq
    freqs = Q * sr / lengths
    max_len = int(2.0 ** np.ceil(np.log2(lengths.max())))
    basis = np.zeros((_BPO, max_len), dtype=np.complex128)
    for k, (ilen, fq) in enumerate(zip(lengths, freqs)):
        n_min, n_max = int(np.floor(ilen)), int(np.ceil(ilen))
        win = np.zeros(n_max)
        win[:n_min] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_min) / n_min)
        sig = np.exp(np.arange(n_max, dtype=float) * 1j * 2 * np.pi * fq / sr) * win
        sig = sig / np.sum(np.abs(sig))
        lpad = (max_len - n_max) // 2
        basis[k, lpad : lpad + n_max] = sig
    n_fft = max_len
    basis *= lengths[:, None] / float(n_fft)
    fb = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
    # sparsify rows: drop the smallest coefficients holding 1 % of each row's magnitude
    mags = np.abs(fb)
    srt = np.sort(mags, axis=1)
    cum = np.cumsum(srt / mags.sum(axis=1, keepdims=True), axis=1)
    j = np.argmin(cum < 0.01, axis=1)
    keep = mags >= srt[np.arange(_BPO), j][:, None]
    return np.where(keep, fb, 0).astype(np.complex64), n_fft


@functools.lru_cache(maxsize=8)
def _decimation_filter(factor: int, res_type: str) -> np.ndarray:
    """The FIR that resampy applies when downsampling by an integer ``factor``.

    With ``t_out = n * factor`` every output falls on an input sample, so
    resampy's interpolated-table loop reduces to a symmetric FIR whose taps are
    ``(1/factor) * interp_win[|j| * precision / factor]`` — computed here once,
    then applied with one FFT convolution instead of a per-sample loop.
    """
    interp_win, precision, _ = _resampy_filter(res_type)
    step = int(precision / factor)
    if step * factor != precision:  # pragma: no cover - factors are powers of two <= 512
        raise ParameterError(f"downsampling factor {factor} does not divide the filter precision {precision}")
    half = (len(interp_win) // step) - 1
    taps = interp_win[np.arange(half + 1) * step] / factor
    return np.concatenate([taps[:0:-1], taps])  # h[-half..half]


def _downsample(y: np.ndarray, factor: int, res_type: str) -> np.ndarray:
    """librosa 0.5.0 ``resample(y, sr, sr/factor, res_type, scale=True)`` (resampy + fix_length + scale)."""
    h = _decimation_filter(factor, res_type)
    half = (len(h) - 1) // 2
    n_res = int(len(y) / factor)  # resampy's output length
    if n_res < 1:
        raise ParameterError(f"audio too short ({len(y)} samples) to downsample by {factor}")
    from scipy.signal import oaconvolve

    # full convolution by overlap-add FFTs: c[m + half] is the centred output at m; keep every
    # factor-th. In float64: resampy sums in the time domain, so its error is relative to the
    # *local* level, while an FFT's is relative to the block's loudest part — in float32 that
    # is audible in fades to silence, where chroma's normalisation magnifies it.
    c = oaconvolve(y.astype(np.float64), h)
    out = c[half : half + n_res * factor : factor]
    # resampy sums products in the time domain: where the filter sees only zeros (digital silence,
    # common once decoded to 16 bits) its output is exactly 0, while FFT round-off leaves ~1e-9 —
    # which chroma's max-normalisation would blow up to 1. Zero those outputs as resampy does.
    nz = y != 0
    if not nz.all():
        cs = np.zeros(len(y) + 1, dtype=np.int32)
        np.cumsum(nz, dtype=np.int32, out=cs[1:])
        centres = np.arange(n_res, dtype=np.int64) * factor
        silent = cs[np.minimum(centres + half + 1, len(y))] == cs[np.maximum(centres - half, 0)]
        out[silent] = 0.0
        # the filter's tails where music meets digital silence: resampy's sums give values down
        # to 1e-30 there, far below the FFT's round-off (~1e-16 of the loudest sample). In a
        # frame that sees only such a tail, chroma's per-frame normalisation turns their *shape*
        # into a full-size chroma/tonnetz vector, so these outputs are summed directly, in float64.
        level = _TAIL_LEVEL * max(float(y.max()), -float(y.min()))
        faint = np.flatnonzero((np.abs(out) < level) & ~silent)
        if faint.size:
            out[faint] = _direct_fir(y, h, faint * factor)
    n = int(np.ceil(len(y) / factor))  # librosa's fix_length
    if len(out) < n:
        out = np.pad(out, (0, n - len(out)))
    return np.ascontiguousarray(out * np.sqrt(factor), dtype=np.float32)


#: Outputs of the FFT convolution below this fraction of the input's peak are recomputed by a
#: direct sum: the FFT's absolute error is ~1e-16 of the peak, so above it the relative error is
#: below ~1e-6, and below it (only filter tails at the edges of digital silence: 16-bit audio has
#: no genuine level under 1.5e-5 of full scale) the direct sum gives resampy's values.
_TAIL_LEVEL = 1e-10


def _direct_fir(y: np.ndarray, h: np.ndarray, centres: np.ndarray, *, chunk: int = 65536) -> np.ndarray:
    """``Σ_j h[half + j] · y[c − j]`` (zero outside ``y``) at every centre ``c``, in float64.

    The time-domain sum resampy computes, for the few outputs where an FFT's round-off would
    swamp the value (``h`` is symmetric, so orientation does not matter).
    """
    half = (len(h) - 1) // 2
    taps = np.arange(-half, half + 1)
    out = np.empty(len(centres))
    for s in range(0, len(centres), chunk):  # chunks bound the [n, taps] gather
        idx = centres[s : s + chunk, None] + taps
        inside = (idx >= 0) & (idx < len(y))
        vals = np.where(inside, y[np.clip(idx, 0, len(y) - 1)], 0.0)  # zero outside y; float64
        out[s : s + chunk] = vals @ h
    return out


@functools.lru_cache(maxsize=2)
def _resampy_filter(res_type: str) -> tuple[np.ndarray, int, float]:
    """resampy's pre-computed filter (half window, precision, roll-off), read from its data file.

    Read directly so that workers do not import resampy's numba kernels (≈1 s each).
    """
    spec = importlib.util.find_spec("resampy")
    if spec is None or not spec.submodule_search_locations:
        raise ParameterError("the 'resampy' package (its filter tables) is required for FMA features")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{res_type}.npz"
    with np.load(path) as data:
        return np.asarray(data["half_window"]), int(data["precision"]), float(data["rolloff"])


def _bw(res_type: str) -> float:
    return _resampy_filter(res_type)[2]


def _num_twos(x: int) -> int:
    n = 0
    while x > 0 and x % 2 == 0:
        n += 1
        x //= 2
    return n


def _cqt(y: np.ndarray, sr: float, tuning: float) -> np.ndarray:
    """|CQT| float64 [84, n_frames] with librosa 0.5.0's recursive algorithm (hop 512, 12 bins/oct, C1)."""
    hop = HOP
    n_octaves = _CQT_BINS // _BPO
    freqs = _C1_HZ * 2.0 ** (np.arange(_CQT_BINS) / _BPO)
    top = freqs[-_BPO:]
    fmin_t, fmax_t = float(top.min()), float(top.max())
    Q = 1.0 / (2.0 ** (1.0 / _BPO) - 1)
    filter_cutoff = fmax_t * (1 + 0.5 * _HANN_BANDWIDTH / Q)
    nyquist = sr / 2.0
    res_type = "kaiser_fast" if filter_cutoff < _bw("kaiser_fast") * nyquist else "kaiser_best"
    if filter_cutoff > nyquist:
        raise ParameterError(
            f"sample rate {sr} Hz is too low for the 7-octave CQT (needs > {2 * filter_cutoff:.0f} Hz)"
        )
    # early downsampling
    c1 = max(0, int(np.ceil(np.log2(_bw("kaiser_fast") * nyquist / filter_cutoff)) - 1) - 1)
    c2 = max(0, _num_twos(hop) - n_octaves + 1)
    count = min(c1, c2)
    if count > 0 and res_type == "kaiser_fast":
        factor = 2**count
        hop //= factor
        y = _downsample(y, factor, res_type)
        sr = sr / factor
    responses = []
    if res_type != "kaiser_fast":
        fb, n_fft = _cqt_basis(sr, fmin_t, tuning)
        responses.append(np.abs(_stft(y, n_fft, hop, None) @ fb.T).T)
        fmin_t /= 2
        n_octaves -= 1
        res_type = "kaiser_fast"
    fb, n_fft = _cqt_basis(sr, fmin_t, tuning)
    my_y, my_sr, my_hop = y, sr, hop
    for i in range(n_octaves):
        if i > 0:
            if len(my_y) < 2:
                raise ParameterError("audio too short for the 7-octave CQT")
            my_y = np.sqrt(2) * _downsample(my_y, 2, res_type)
            my_y = my_y.astype(np.float32)
            my_sr /= 2.0
            my_hop //= 2
        D = _stft(my_y, n_fft, my_hop, None)  # [frames, bins]
        responses.append(np.abs(D @ fb.T).T)
    n_cols = min(r.shape[1] for r in responses)
    C = np.vstack([r[:, :n_cols] for r in responses][::-1])[-_CQT_BINS:]
    correction = 2.0 ** (tuning / _BPO)
    lengths = Q * sr / (correction * _C1_HZ * 2.0 ** (np.arange(_CQT_BINS, dtype=float) / _BPO))
    return C / np.sqrt(lengths[:, None])


# --------------------------------------------------------------------------- filter banks


@functools.lru_cache(maxsize=16)
def _chroma_fb(sr: float, tuning: float) -> np.ndarray:
    """librosa 0.5.0 ``filters.chroma(sr, 2048, A440=440·2^(tuning/12))``, float64 [12, 1025]."""
    n_chroma, n_fft = 12, N_FFT
    A440 = 440.0 * 2.0 ** (tuning / n_chroma)
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    frqbins = n_chroma * np.log2(frequencies / (A440 / 16))
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    D = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    D = np.remainder(D + half + 10 * n_chroma, n_chroma) - half
    wts = np.exp(-0.5 * (2 * D / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    wts = _normalize(wts, 2, np.finfo(np.float64).tiny)
    wts *= np.tile(np.exp(-0.5 * ((frqbins / n_chroma - 5.0) / 2) ** 2), (n_chroma, 1))
    wts = np.roll(wts, -3, axis=0)
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)])


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: float) -> np.ndarray:
    """Slaney mel filter bank (128 bands, 0..sr/2, area-normalised), float64 [128, 1025]."""
    n_mels = 128
    fftfreqs = _fft_frequencies(sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    return weights * enorm[:, None]


@functools.lru_cache(maxsize=8)
def _mel_basis_f32(sr: float) -> np.ndarray:
    return _mel_basis(sr).astype(np.float32)


_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel(f: float) -> float:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as librosa ``htk=False``."""
    return f / _F_SP if f < _MIN_LOG_HZ else _MIN_LOG_MEL + np.log(f / _MIN_LOG_HZ) / _LOGSTEP


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


@functools.lru_cache(maxsize=1)
def _dct20() -> np.ndarray:
    n = 128
    basis = np.empty((20, n))
    basis[0, :] = 1.0 / np.sqrt(n)
    samples = np.arange(1, 2 * n, 2) * np.pi / (2.0 * n)
    basis[1:, :] = np.cos(np.arange(1, 20)[:, None] * samples) * np.sqrt(2.0 / n)
    return basis


def _power_to_db(S: np.ndarray) -> np.ndarray:
    log_spec = 10.0 * np.log10(np.maximum(1e-10, np.abs(S)))
    return np.maximum(log_spec, log_spec.max() - 80.0)


@functools.lru_cache(maxsize=1)
def _cens_window() -> np.ndarray:
    n = 41 + 2
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic (sym=False) Hann
    return win / win.sum()


@functools.lru_cache(maxsize=1)
def _tonnetz_phi() -> np.ndarray:
    dim_map = np.linspace(0, 12, num=12, endpoint=False)
    scale = np.asarray([7.0 / 6, 7.0 / 6, 3.0 / 2, 3.0 / 2, 2.0 / 3, 2.0 / 3])
    V = np.multiply.outer(scale, dim_map)
    V[::2] -= 0.5
    R = np.array([1, 1, 1, 1, 0.5, 0.5])
    return R[:, None] * np.cos(np.pi * V)


# --------------------------------------------------------------------------- families


def _zcr(y: np.ndarray) -> np.ndarray:
    """librosa 0.5.0 zero_crossing_rate (edge-padded frames of 2048, hop 512, |x| <= 1e-10 counts as 0).

    Sign changes are found once on the signal (``x < −1e-10`` is 0.5.0's ``signbit`` after
    zeroing small values), counted per 512-sample block, and a frame (4 blocks) is the sum of
    its blocks less the one pair that straddles its end.
    """
    neg = np.pad(y < -1e-10, N_FFT // 2, mode="edge")
    n_frames = 1 + (len(neg) - N_FFT) // HOP
    n_blocks = n_frames + N_FFT // HOP - 1
    ch = np.zeros(n_blocks * HOP + 1, dtype=bool)  # ch[i]: sign differs between samples i and i + 1
    m = min(len(neg) - 1, len(ch))
    np.not_equal(neg[1 : m + 1], neg[:m], out=ch[:m])
    blocks = np.count_nonzero(ch[: n_blocks * HOP].reshape(n_blocks, HOP), axis=1)
    per_frame = np.convolve(blocks, np.ones(N_FFT // HOP, dtype=np.int64), mode="valid")[:n_frames]
    per_frame = per_frame - ch[np.arange(n_frames) * HOP + N_FFT - 1]  # a frame has 2047 pairs, not 2048
    return (per_frame / N_FFT)[None, :]


def _spectral(S: np.ndarray) -> dict[str, np.ndarray]:
    """centroid, bandwidth, rolloff, contrast from |STFT| [1025, T] at the 22,050-Hz quirk rate.

    ``S`` is best the transposed view of a time-major array (what :func:`_stft_magnitude`
    returns): every reduction here runs along contiguous memory.
    """
    freq = _fft_frequencies(QUIRK_SR)
    St = S.T
    # centroid and bandwidth from three spectral moments (one float64 product instead of a
    # normalised copy of S): Σ S, Σ f S, Σ f² S per frame
    # (float32 products on frequencies scaled to [0, 1]; the moments are then taken in float64)
    m0, m1, m2 = (St @ _moment_basis().T).T.astype(np.float64)
    nyq = QUIRK_SR / 2.0
    length = np.where(m0 < _tiny(S), 1.0, m0)  # librosa's normalize(): tiny columns are left as they are
    c = m1 / length
    var = (m2 - 2 * c * m1 + c**2 * m0) / length  # Σ (S/length)(f − c)², f in Nyquist units
    centroid = (c * nyq)[None, :]
    bandwidth = (np.sqrt(np.maximum(var, 0.0)) * nyq)[None, :]
    total = np.cumsum(St, axis=1, dtype=np.float32)
    below = total < 0.85 * total[:, -1:]
    idx = below.sum(axis=1)  # first bin whose cumulative energy reaches 85 %
    idx = np.minimum(idx, S.shape[0] - 1)
    rolloff = freq[idx][None, :]
    return {
        "spectral_centroid": centroid,
        "spectral_bandwidth": bandwidth,
        "spectral_rolloff": rolloff,
        "spectral_contrast": _contrast(St, freq),
    }


@functools.lru_cache(maxsize=1)
def _moment_basis() -> np.ndarray:
    f = _fft_frequencies(QUIRK_SR) / (QUIRK_SR / 2.0)
    return np.stack([np.ones_like(f), f, f**2]).astype(np.float32)


def _contrast(St: np.ndarray, freq: np.ndarray, fmin: float = 200.0, n_bands: int = 6, quantile: float = 0.02):
    """librosa 0.5.0 spectral_contrast on a time-major magnitude ``St`` [T, bins] → [7, T] (dB)."""
    octa = np.zeros(n_bands + 2)
    octa[1:] = fmin * 2.0 ** np.arange(0, n_bands + 1)
    valley = np.zeros((n_bands + 1, St.shape[0]))
    peak = np.zeros_like(valley)
    for k, (f_low, f_high) in enumerate(zip(octa[:-1], octa[1:])):  # 7 bands, not frames
        band = (freq >= f_low) & (freq <= f_high)
        idx = np.flatnonzero(band)
        if k > 0:
            band[idx[0] - 1] = True
        if k == n_bands:
            band[idx[-1] + 1 :] = True
        cols = np.flatnonzero(band)  # contiguous bins
        if k < n_bands:
            cols = cols[:-1]
        q = int(max(np.rint(quantile * np.sum(band)), 1))
        # sorted like 0.5.0, so the means add the same values in the same order (numpy's SIMD sort
        # of float32 rows is as fast as a partition here)
        srt = np.sort(St[:, cols[0] : cols[-1] + 1], axis=1)
        valley[k] = np.mean(srt[:, :q], axis=1)
        peak[k] = np.mean(srt[:, -q:], axis=1)
    return _power_to_db(peak) - _power_to_db(valley)


def extract_families(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Frame-level values of the 11 FMA families (each ``[dims, n_frames]``), librosa 0.5.0 semantics.

    One STFT magnitude ``S`` feeds chroma_stft (power, tuning estimated at the
    22,050-Hz quirk rate), rmse, the spectral shapes (quirk rate), mfcc (true
    rate) and the CQT's tuning estimate (true rate); one CQT feeds chroma_cqt,
    chroma_cens and tonnetz (from chroma_cens, as FMA did).
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"audio must be mono (1-D), got shape {y.shape}")
    if len(y) < N_FFT:
        raise ParameterError(f"audio too short: {len(y)} samples < {N_FFT} (one analysis frame)")
    if not np.all(np.isfinite(y)):
        raise ParameterError("audio buffer is not finite everywhere")
    out: dict[str, np.ndarray] = {"zcr": _zcr(y)}
    S = _stft_magnitude(y)
    # CQT family (tuning from |STFT| at the true rate)
    C = _cqt(y, float(sr), _estimate_tuning(S, float(sr)))
    chroma = C.reshape(7, 12, -1).sum(axis=0)  # cq_to_chroma for C1-based 12 bins/octave
    out["chroma_cqt"] = _normalize(chroma, np.inf, _tiny(chroma))
    cn = _normalize(chroma, 1, _tiny(chroma))
    quant = 0.25 * ((cn > 0.4).astype(np.float64) + (cn > 0.2) + (cn > 0.1) + (cn > 0.05))
    cens = _smooth_time(quant, _cens_window())
    cens = _normalize(cens, 2, _tiny(cens))
    out["chroma_cens"] = cens
    out["tonnetz"] = _tonnetz_phi() @ _normalize(cens, 1, _tiny(cens))
    del C
    # STFT family (products written time-major: Pt [T, 1025] @ bank.T)
    Pt = S.T * S.T
    tuning_stft = _estimate_tuning(Pt.T, float(QUIRK_SR))
    raw = (Pt @ _chroma_fb(float(QUIRK_SR), tuning_stft).astype(np.float32).T).T.astype(np.float64)
    out["chroma_stft"] = _normalize(raw, np.inf, _tiny(raw))
    out["rmse"] = np.sqrt(np.mean(Pt, axis=1))[None, :]
    out.update(_spectral(S))
    mel = (Pt @ _mel_basis_f32(float(sr)).T).T.astype(np.float64)
    out["mfcc"] = _dct20() @ _power_to_db(mel)
    return out


def _smooth_time(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    """``scipy.signal.convolve2d(x, win[None, :], mode='same')`` (zero fill), vectorised per row."""
    from scipy.ndimage import convolve1d

    # convolve2d 'same' with an even-length kernel centres at index len//2; convolve1d with origin matches it
    n = len(win)
    origin = -1 if n % 2 == 0 else 0
    return convolve1d(x, win, axis=1, mode="constant", cval=0.0, origin=origin)


# --------------------------------------------------------------------------- statistics


def summarize(families: dict[str, np.ndarray]) -> np.ndarray:
    """The 7 statistics of every dimension → float32 [518] in :data:`FEATURE_COLUMNS` order.

    mean, std, skew, kurtosis (Fisher, biased), median, min, max over frames,
    with scipy 0.19's convention for constant rows: skew 0, kurtosis −3.
    """
    X = np.vstack([np.asarray(families[f], dtype=np.float64) for f in _ORDER])  # [74, T]
    mean = X.mean(axis=1)
    d = X - mean[:, None]
    m2 = np.mean(d**2, axis=1)
    m3 = np.mean(d**3, axis=1)
    m4 = np.mean(d**4, axis=1)
    const = m2 <= (np.finfo(np.float32).eps * np.maximum(np.abs(mean), 1e-30)) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(const, 0.0, m3 / m2**1.5)
        kurt = np.where(const, 0.0, m4 / m2**2) - 3.0
    stats = {
        "kurtosis": kurt,
        "max": X.max(axis=1),
        "mean": mean,
        "median": np.median(X, axis=1),
        "min": X.min(axis=1),
        "skew": skew,
        "std": np.sqrt(m2),
    }
    # FEATURE_COLUMNS order: family, then statistic, then dimension
    parts = []
    start = 0
    for fam in _ORDER:
        dim = FEATURE_FAMILIES[fam]
        for st in FEATURE_STATISTICS:
            parts.append(stats[st][start : start + dim])
        start += dim
    return np.concatenate(parts).astype(np.float32)
