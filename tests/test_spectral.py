"""Spectrogram and 2-D peak picking on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.errors import ParameterError
from songmine.fingerprint.spectral import _fast_db, _max_filter, find_peaks, log_spectrogram


def test_fast_db_is_close_and_monotonic():
    x = np.logspace(-14, 6, 20001).astype(np.float32)
    db = _fast_db(x)
    assert np.abs(db - 10 * np.log10(x.astype(np.float64))).max() < 0.27
    assert np.all(np.diff(db) >= 0)


def test_spectrogram_shape_and_sine_bin(tone):
    sr, n_fft, hop = 11025, 512, 128
    y = tone(1000.0, sr, 1.0)
    S = log_spectrogram(y, n_fft=n_fft, hop_length=hop)
    assert S.shape == (1 + (y.size - n_fft) // hop, n_fft // 2 + 1)
    assert S.dtype == np.float32
    assert np.all(S.argmax(axis=1) == round(1000.0 * n_fft / sr))


def test_short_signal_gives_no_frames():
    assert log_spectrogram(np.zeros(100, np.float32), n_fft=512, hop_length=128).shape == (0, 257)


def test_spectrogram_rejects_stereo():
    with pytest.raises(ParameterError, match="mono"):
        log_spectrogram(np.zeros((2, 1000), np.float32))


def test_peaks_of_a_sine_sit_on_its_bin(tone):
    sr = 11025
    # a tone switched on and off, so it has peaks in time as well
    y = tone(2000.0, sr, 2.0) * (np.arange(2 * sr) % sr < sr // 3)
    S = log_spectrogram(y.astype(np.float32))
    t, f = find_peaks(S, block_frames=20, peaks_per_block=3)
    assert t.size > 0
    assert set(np.unique(f)) <= {round(2000 * 512 / sr) + d for d in (-1, 0, 1)}


def test_density_cap_and_sort_order(rng):
    S = rng.normal(size=(400, 128)).astype(np.float32) * 10
    t, f = find_peaks(S, f_radius=2, t_radius=2, block_frames=40, peaks_per_block=5, min_prominence_db=0)
    counts = np.bincount(t // 40)
    assert counts.max() <= 5
    key = t * 1000 + f
    assert np.all(np.diff(key) > 0)


def test_silence_has_no_peaks():
    S = log_spectrogram(np.zeros(11025 * 2, np.float32))
    t, f = find_peaks(S)
    assert t.size == 0 and f.size == 0


@pytest.mark.parametrize("rt,rf", [(0, 0), (1, 3), (4, 6), (7, 2), (12, 2), (30, 40)])
@pytest.mark.parametrize("shape", [(57, 33), (1, 9), (9, 1), (3, 70), (25, 5)])
def test_max_filter_equals_scipy(rng, rt, rf, shape):
    """Windows clipped at the ends (no padding), spans over the flattened rows: still scipy's "nearest"."""
    from scipy.ndimage import maximum_filter

    S = rng.normal(size=shape).astype(np.float32)
    S[:, ::3] = np.round(S[:, ::3])  # ties (plateaus) too
    ref = maximum_filter(S, size=(2 * rt + 1, 2 * rf + 1), mode="nearest")
    np.testing.assert_array_equal(_max_filter(S, rt, rf), ref)
    for lo, hi in [(0, 1), (shape[0] // 3, shape[0]), (shape[0] // 2, shape[0] // 2 + 1)]:
        np.testing.assert_array_equal(_max_filter(S, rt, rf, rows=(lo, hi)), ref[lo:hi])


def _find_peaks_reference(
    S,
    *,
    f_radius,
    t_radius,
    background_frames,
    min_prominence_db,
    peaks_per_block,
    block_frames,
    min_bin,
    max_bin,
    level_weight,
):
    """The plain definition of find_peaks (scipy filters on the whole time-major array)."""
    from scipy.ndimage import maximum_filter, uniform_filter1d

    hi = min(max_bin, S.shape[1] - 1)
    local_max = maximum_filter(S, size=(2 * t_radius + 1, 2 * f_radius + 1), mode="nearest")
    prominence = S - uniform_filter1d(S, size=background_frames, axis=0, mode="reflect")
    cand = (S == local_max) & (prominence >= min_prominence_db) & (S > 20 * np.log10(1e-7) + 1e-3)
    cand[:, :min_bin] = False
    cand[:, hi + 1 :] = False
    t, f = np.nonzero(cand)
    score = prominence[t, f] + level_weight * (S[t, f] - S.max())
    block = t // block_frames
    order = np.lexsort((-score, block))
    first = np.searchsorted(block[order], block[order], side="left")
    keep = np.sort(order[np.arange(order.size) - first < peaks_per_block])
    return t[keep], f[keep]


@pytest.mark.parametrize("min_bin,max_bin,f_radius,t_radius", [(8, 482, 12, 2), (0, 600, 5, 3), (20, 40, 30, 0)])
def test_find_peaks_equals_its_plain_definition(real_cuts, min_bin, max_bin, f_radius, t_radius):
    """The fast filters (transposed, cropped to the band, running max by doubling) pick the same peaks."""
    from songmine.audio import load

    y = load(real_cuts[0], sr=11025, duration=12.0)
    S = log_spectrogram(y, n_fft=1024, hop_length=256)
    kw = dict(
        f_radius=f_radius,
        t_radius=t_radius,
        background_frames=43,
        min_prominence_db=3.0,
        peaks_per_block=5,
        block_frames=21,
        min_bin=min_bin,
        max_bin=max_bin,
        level_weight=1.0,
    )
    t, f = find_peaks(S, **kw)
    rt, rf = _find_peaks_reference(S, **kw)
    assert t.size > 5
    np.testing.assert_array_equal(t, rt)
    np.testing.assert_array_equal(f, rf)


def test_band_spectrogram_is_the_transposed_band_of_log_spectrogram(real_cuts):
    """The bins-major band (FFT along axis 0, no transposed copy) has the very same float32 values."""
    from songmine.audio import load
    from songmine.fingerprint.spectral import band_spectrogram

    y = load(real_cuts[1], sr=11025, duration=8.0)
    S = log_spectrogram(y, n_fft=1024, hop_length=256)
    for b0, b1 in [(0, 513), (0, 495), (7, 500)]:
        ST, s_max = band_spectrogram(y, n_fft=1024, hop_length=256, b0=b0, b1=b1)
        assert ST.flags.c_contiguous
        np.testing.assert_array_equal(ST, S[:, b0:b1].T)
        assert s_max == S.max()


def test_persistence_ranks_a_lasting_peak_above_a_brief_louder_one():
    """A partial that lasts 20 frames against a louder one-frame blip, one peak per block: by
    prominence the blip wins; counting how far each peak's bin falls nearby, the lasting one does."""
    S = np.full((100, 64), -60.0, np.float32)
    S[20:40, 20] = -20.0  # a held note
    S[60, 44] = 0.0  # a click, louder
    kw = dict(f_radius=3, t_radius=2, block_frames=100, peaks_per_block=1)
    t, f = find_peaks(S, **kw)
    assert f.tolist() == [44] and t.tolist() == [60]
    t, f = find_peaks(S, persist_frames=3, persist_weight=2.0, **kw)
    assert f.tolist() == [20] and 20 <= t[0] < 40
