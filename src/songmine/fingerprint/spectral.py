"""Short-time spectra and 2-D spectral peak picking, shared by every audio method.

Conventions: a spectrogram here is **time-major**, ``S[frame, bin]``, float32, in
dB. Frame ``k`` covers samples ``[k * hop_length, k * hop_length + n_fft)`` (no
centre padding), so a frame index times ``hop_length / sr`` is the time of the
frame's first sample — the convention the landmark times rely on.

Everything is vectorised: framing is a strided view, local maxima come from a
separable running maximum (equal to :func:`scipy.ndimage.maximum_filter`), and the per-second density control is a
sort plus a rank, never a loop over frames or peaks.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["log_spectrogram", "find_peaks"]

#: Magnitudes below this are treated as digital silence (full scale is 1.0).
AMIN = 1e-7


def log_spectrogram(y: np.ndarray, *, n_fft: int = 512, hop_length: int = 128) -> np.ndarray:
    """Hann-windowed STFT magnitude in dB, time-major.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono audio.
    n_fft : int
        Frame length in samples (also the FFT size).
    hop_length : int
        Samples between frame starts.

    Returns
    -------
    S : np.ndarray [shape=(n_frames, n_fft // 2 + 1), dtype=float32]
        ``20 log10(max(|X|, AMIN))`` (to within 0.26 dB, see :func:`_fast_db`); ``n_frames = 1 + (n - n_fft) // hop_length``
        (zero frames when ``n < n_fft``).

    Raises
    ------
    ParameterError
        ``y`` not 1-D, or bad ``n_fft``/``hop_length``.

    Examples
    --------
    >>> S = log_spectrogram(np.zeros(11025, np.float32), n_fft=512, hop_length=128)
    >>> S.shape, round(float(S.max()))
    ((83, 257), -140)
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ParameterError(f"audio must be mono (1-D), got shape {y.shape}")
    if n_fft < 16 or hop_length < 1:
        raise ParameterError(f"n_fft={n_fft} must be >= 16 and hop_length={hop_length} >= 1")
    n_bins = n_fft // 2 + 1
    if y.shape[0] < n_fft:
        return np.full((0, n_bins), 20 * np.log10(AMIN), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    from scipy.fft import rfft

    X = rfft(frames * window, axis=1)
    power = X.real * X.real
    power += X.imag * X.imag
    np.maximum(power, np.float32(AMIN * AMIN), out=power)
    return _fast_db(power)


def band_spectrogram(y: np.ndarray, *, n_fft: int, hop_length: int, b0: int, b1: int) -> tuple[np.ndarray, np.float32]:
    """Bins ``b0:b1`` of :func:`log_spectrogram`, bins-major, and the maximum over all bins.

    Returns ``S[:, b0:b1].T`` (C-contiguous) and ``S.max()`` for ``S =
    log_spectrogram(y, ...)`` (``y`` validated, ``n >= n_fft``), the same
    float32 values without the transposed copy: the FFT runs along axis 0
    of the windowed frames' transpose (pocketfft computes each transform the
    same way along either axis) and writes bins-major; ``S.max()`` is the dB
    of the largest bit pattern (:func:`_fast_db` is monotonic in it).
    """
    from scipy.fft import rfft

    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop_length]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    XT = rfft((frames * window).T, axis=0)
    power = XT.real * XT.real
    power += XT.imag * XT.imag
    np.maximum(power, np.float32(AMIN * AMIN), out=power)
    bits = power.view(np.int32)
    return _db_of_bits(bits[b0:b1]), _db_of_bits(bits.max(keepdims=True).reshape(1))[0]


def _fast_db(power: np.ndarray) -> np.ndarray:
    """``10 log10(power)`` to within 0.26 dB, monotonic, from the float32 bit pattern.

    The exponent and mantissa bits of a positive float32 read as an integer are
    a piecewise-linear ``log2`` (exact at powers of two); about 10x cheaper than
    ``np.log10`` and peak picking only needs order and rough prominence.
    """
    return _db_of_bits(np.ascontiguousarray(power, dtype=np.float32).view(np.int32))


def _db_of_bits(bits: np.ndarray) -> np.ndarray:
    """:func:`_fast_db` of the float32 values whose bit patterns are ``bits`` (int32)."""
    S = bits.astype(np.float32)
    S -= np.float32(1065353216)  # bit pattern of 1.0
    S *= np.float32(10 * np.log10(2) / 8388608)  # 2**23 mantissa steps per octave
    return S


def _max_filter(S: np.ndarray, r0: int, r1: int, rows: tuple[int, int] | None = None) -> np.ndarray:
    """Running maximum over a ``(2 r0 + 1) x (2 r1 + 1)`` box, edges repeated.

    Equal to ``scipy.ndimage.maximum_filter(S, size=(2 r0 + 1, 2 r1 + 1),
    mode="nearest")`` (exactly: a maximum has no rounding), separable, one
    axis at a time (:func:`_window_max`). With ``rows=(lo, hi)`` only rows
    ``lo:hi`` of that result are computed (their boxes still read every row).
    """
    lo, hi = (0, S.shape[0]) if rows is None else rows
    return _window_max(_window_max(S, r0, 0, lo, hi), r1, 1)


def _window_max(x: np.ndarray, r: int, axis: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """``out[i] = max(x[max(lo + i - r, 0) : lo + i + r + 1])`` along ``axis`` (0 or 1) for ``i < hi - lo``.

    The window is clipped at the array's ends, which for a maximum is the same
    as repeating the edge values (``mode="nearest"``), so nothing is padded.
    Inside, by doubling spans: ``cur[j] = max(x[j : j + s])`` for ``s = 1, 2,
    4, ...`` up to the largest power of two ``s <= 2r + 1``, then one
    ``np.maximum`` of two overlapping spans per output, ``~log2(2r + 1) + 1``
    passes instead of ``2r``; the ``r`` clipped windows at each end from a
    cumulative maximum of the ``2r`` edge rows/columns.
    """
    n = x.shape[axis]
    hi = n if hi is None else hi

    def cut(a: np.ndarray, i: int, j: int) -> np.ndarray:
        return a[i:j] if axis == 0 else a[:, i:j]

    if r == 0:
        return cut(x, lo, hi).copy()
    a, b = max(lo - r, 0), min(hi + r, n)
    x = cut(x, a, b)  # everything the windows read
    m, first, n_out = b - a, lo - a, hi - lo  # output i's window is centred on x's index first + i
    w = 2 * r + 1
    shape = list(x.shape)
    shape[axis] = n_out
    out = np.empty(shape, dtype=x.dtype)
    i0 = min(max(r - first, 0), n_out)  # outputs before i0: the window is clipped at the start
    i1 = max(min(m - r - first, n_out), i0)  # outputs from i1 on: clipped at the end
    # along rows (axis 1) the spans run over the flattened array, contiguous (2-D column slices
    # are ~3x slower); cells whose span crosses into the next row are only the clipped ones,
    # overwritten below
    flat = axis == 1 and n_out == m and m >= w and x.flags.c_contiguous
    cur, s = (x.reshape(-1) if flat else x), 1
    while 2 * s <= min(w, m):  # a loop over log2(w) spans, not over rows or columns
        k = cur.shape[0 if flat else axis]
        cur = np.maximum(cur[: k - s], cur[s:]) if flat else np.maximum(cut(cur, 0, k - s), cut(cur, s, k))
        s *= 2
    if flat:  # two spans of s cover 2r + 1 cells
        k = x.size
        np.maximum(cur[: k - 2 * r], cur[2 * r - s + 1 : k - s + 1], out=out.reshape(-1)[r : k - r])
    elif i1 > i0:
        np.maximum(
            cut(cur, first + i0 - r, first + i1 - r),
            cut(cur, first + i0 + r - s + 1, first + i1 + r - s + 1),
            out=cut(out, i0, i1),
        )
    if i0 > 0:  # out[i] = max(x[0 : first + i + r + 1]), a prefix maximum
        ends = np.minimum(np.arange(first, first + i0) + r, m - 1)
        prefix = np.maximum.accumulate(cut(x, 0, int(ends[-1]) + 1), axis=axis)
        cut(out, 0, i0)[...] = np.take(prefix, ends, axis=axis)
    if n_out > i1:  # out[i] = max(x[first + i - r : m]), a suffix maximum
        starts = np.arange(first + i1, first + n_out) - r
        j0 = int(starts[0])
        tail = cut(x, j0, m)
        rev = tail[::-1] if axis == 0 else tail[:, ::-1]
        suffix = np.maximum.accumulate(rev, axis=axis)  # suffix[k] = max(tail[len - 1 - k :])
        cut(out, i1, n_out)[...] = np.take(suffix, (m - 1 - j0) - (starts - j0), axis=axis)
    return out


def _persistence(band: np.ndarray, t: np.ndarray, f: np.ndarray, k: int) -> np.ndarray:
    """How far (dB, <= 0) each peak's level falls within ``k`` frames either side, its bin ±1 allowed.

    A partial of an instrument lasts; a formant or a gliding speech harmonic leaves its bin.
    """
    n_f, n_t = band.shape
    fm, fp = np.maximum(f - 1, 0), np.minimum(f + 1, n_f - 1)
    here = band[f, t]
    worst = np.zeros(t.shape, dtype=np.float32)
    for d in range(-k, k + 1):  # a few frame shifts
        if d == 0:
            continue
        td = np.clip(t + d, 0, n_t - 1)
        near = np.maximum(np.maximum(band[fm, td], band[f, td]), band[fp, td])
        worst = np.minimum(worst, np.minimum(near - here, 0))
    return worst


def find_peaks(
    S: np.ndarray,
    *,
    f_radius: int = 8,
    t_radius: int = 6,
    background_frames: int = 64,
    min_prominence_db: float = 6.0,
    peaks_per_block: int = 8,
    block_frames: int = 43,
    min_bin: int = 1,
    max_bin: int | None = None,
    level_weight: float = 0.0,
    persist_frames: int = 0,
    persist_weight: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """2-D local maxima of a dB spectrogram, thinned to a fixed density.

    A cell is a peak when it is the maximum of its ``(2 t_radius + 1) x
    (2 f_radius + 1)`` neighbourhood and stands ``min_prominence_db`` above the
    running mean of its own bin over ``background_frames`` frames (a per-bin
    whitening, so a stationary noise floor or an equaliser does not move
    peaks). In each block of ``block_frames`` frames only the
    ``peaks_per_block`` most prominent peaks are kept. With ``persist_weight``
    the rank also counts ``persist_weight`` times a peak's persistence: how far
    (dB, <= 0) its bin, ±1 bin, falls within ±``persist_frames`` frames (a
    query picked for music under a voice: a partial lasts, a speech harmonic glides).

    Parameters
    ----------
    S : np.ndarray [shape=(n_frames, n_bins), dtype=float32]
        Time-major dB spectrogram (:func:`log_spectrogram`).

    Returns
    -------
    times, bins : np.ndarray [shape=(n_peaks,), dtype=int64]
        Peak coordinates sorted by time, then bin.

    Examples
    --------
    >>> S = np.full((100, 64), -100.0, np.float32)
    >>> S[50, 20] = 0.0
    >>> find_peaks(S, f_radius=3, t_radius=3, block_frames=100)
    (array([50]), array([20]))
    """
    if S.ndim != 2:
        raise ParameterError(f"S must be 2-D (frames, bins), got shape {S.shape}")
    n_frames, n_bins = S.shape
    hi = n_bins - 1 if max_bin is None else min(max_bin, n_bins - 1)
    if n_frames == 0 or hi <= min_bin:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy()
    # The filters run on the transpose, bins x frames, so the time filters read contiguous
    # rows, and only on the bins a peak may use plus the max filter's reach.
    b0, b1 = max(min_bin - f_radius, 0), min(hi + f_radius + 1, n_bins)
    return band_peaks(
        np.ascontiguousarray(S[:, b0:b1].T),
        b0=b0,
        n_bins=n_bins,
        s_max=S.max() if level_weight else None,
        f_radius=f_radius,
        t_radius=t_radius,
        background_frames=background_frames,
        min_prominence_db=min_prominence_db,
        peaks_per_block=peaks_per_block,
        block_frames=block_frames,
        min_bin=min_bin,
        max_bin=hi,
        level_weight=level_weight,
        persist_frames=persist_frames,
        persist_weight=persist_weight,
    )


def band_peaks(
    ST: np.ndarray,
    *,
    b0: int,
    n_bins: int,
    s_max,
    f_radius: int,
    t_radius: int,
    background_frames: int,
    min_prominence_db: float,
    peaks_per_block: int,
    block_frames: int,
    min_bin: int,
    max_bin: int,
    level_weight: float,
    persist_frames: int = 0,
    persist_weight: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`find_peaks` of a bins-major band ``ST = S[:, b0:b0 + len(ST)].T`` (no input validation).

    The band must hold bins ``max(min_bin - f_radius, 0)`` to ``min(max_bin +
    f_radius, n_bins - 1)``; ``s_max`` is ``S.max()`` (used when
    ``level_weight``); ``max_bin <= n_bins - 1``.
    """
    from scipy.ndimage import uniform_filter1d

    hi, n_frames = max_bin, ST.shape[1]
    if n_frames == 0 or hi <= min_bin:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy()
    # only the max filter's reach: its windows are clipped where this crop ends, which is where
    # the spectrogram ends or beyond their reach (the same values as on the whole spectrogram)
    a = max(min_bin - f_radius, 0)
    ST = ST[a - b0 : min(hi + f_radius + 1, n_bins) - b0]
    r0, r1 = min_bin - a, hi + 1 - a
    band = ST[r0:r1]
    # candidates: cells that are the maximum of their neighbourhood (~1 % of them); the
    # other tests only on those (same float32 values as on the whole array)
    cand = np.flatnonzero(band == _max_filter(ST, f_radius, t_radius, rows=(r0, r1)))
    level = band.reshape(-1)[cand]
    background = uniform_filter1d(band, size=max(int(background_frames), 1), axis=1, mode="reflect")
    prominence = level - background.reshape(-1)[cand]
    floor = 20 * np.log10(AMIN) + 1e-3
    ok = (prominence >= min_prominence_db) & (level > floor)
    f, t = np.divmod(cand[ok], n_frames)
    order = np.argsort(t * (r1 - r0) + f)  # sorted by time, then bin (unique keys)
    t, f = t[order], f[order] + min_bin
    if t.size == 0:
        return t.astype(np.int64), f.astype(np.int64)
    score = prominence[ok][order]
    # rank: prominence, plus level_weight x the level relative to the spectrogram's maximum
    if level_weight:
        score = score + level_weight * (level[ok][order] - s_max)
    if persist_frames and persist_weight:
        score = score + persist_weight * _persistence(band, t, f - min_bin, persist_frames)
    # density control: rank peaks by prominence inside each time block
    block = t // block_frames
    order = np.lexsort((-score, block))
    b_sorted = block[order]
    first = np.searchsorted(b_sorted, b_sorted, side="left")
    rank = np.arange(order.size) - first
    keep = order[rank < peaks_per_block]
    keep.sort()  # ascending index = (time, bin) order
    return t[keep].astype(np.int64), f[keep].astype(np.int64)
