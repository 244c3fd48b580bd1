"""Landmark hashes: bit layout, config validation, fingerprint invariants."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.errors import IndexFormatError, ParameterError
from songmine.fingerprint.landmarks import (
    DF_BITS,
    DF_OFFSET,
    DT_BITS,
    F1_BITS,
    RESERVED_BITS,
    FingerprintConfig,
    fingerprint,
    landmark_peaks,
    pack_hashes,
    pair_peaks,
    speed_fingerprinter,
    unpack_hashes,
)


def test_bit_layout_fills_32_bits():
    assert F1_BITS + DF_BITS + DT_BITS + RESERVED_BITS == 32
    assert RESERVED_BITS >= 0


def test_hash_round_trip_exhaustive_corners(rng):
    f1 = np.concatenate([[0, (1 << F1_BITS) - 1], rng.integers(0, 1 << F1_BITS, 5000)])
    df = np.concatenate([[-DF_OFFSET, DF_OFFSET - 1], rng.integers(-DF_OFFSET, DF_OFFSET, 5000)])
    dt = np.concatenate([[0, (1 << DT_BITS) - 1], rng.integers(0, 1 << DT_BITS, 5000)])
    h = pack_hashes(f1, df, dt)
    assert h.dtype == np.uint32
    assert np.all(h >> (32 - RESERVED_BITS) == 0) if RESERVED_BITS else True
    g1, gdf, gdt = unpack_hashes(h)
    np.testing.assert_array_equal(g1, f1)
    np.testing.assert_array_equal(gdf, df)
    np.testing.assert_array_equal(gdt, dt)
    # a Python-int reference of the layout
    ref = [(a << (DF_BITS + DT_BITS)) | ((b + DF_OFFSET) << DT_BITS) | c for a, b, c in zip(f1[:50], df[:50], dt[:50])]
    assert h[:50].tolist() == [int(x) for x in ref]


def test_pack_rejects_out_of_range():
    with pytest.raises(ParameterError, match="df out of range"):
        pack_hashes(np.array([1]), np.array([DF_OFFSET]), np.array([1]))


def test_config_round_trip_and_validation():
    c = FingerprintConfig()
    assert FingerprintConfig.from_dict(c.to_dict()) == c
    assert c.hop_s == pytest.approx(c.hop_length / c.sr)
    with pytest.raises(ParameterError, match="dt_max=300"):
        FingerprintConfig(dt_max=300)
    with pytest.raises(ParameterError, match="query_fan_out"):
        FingerprintConfig(fan_out=8, query_fan_out=4)
    with pytest.raises(ParameterError, match="n_fft=4096"):
        FingerprintConfig(n_fft=4096, hop_length=512)
    with pytest.raises(ParameterError, match="unknown"):
        FingerprintConfig.from_dict({**c.to_dict(), "bogus": 1})
    with pytest.raises(IndexFormatError, match="version"):
        FingerprintConfig.from_dict({**c.to_dict(), "version": 0})


def test_fingerprint_of_silence_is_empty_but_valid():
    for n in (0, 100, 11025 * 3):
        h, t = fingerprint(np.zeros(n, np.float32))
        assert h.dtype == np.uint32 and t.dtype == np.uint32
        assert h.shape == t.shape == (0,)


def test_pairs_respect_zone_and_fan_out(rng):
    times = np.sort(rng.integers(0, 2000, 600))
    bins = rng.integers(1, 250, 600)
    t1, f1, df, dt = pair_peaks(times, bins, dt_min=2, dt_max=40, df_max=30, fan_out=3)
    assert np.all((dt >= 2) & (dt <= 40) & (np.abs(df) <= 30))
    # at most fan_out pairs per anchor (anchors are unique (t, f) here except rare ties)
    _, per_anchor = np.unique(np.stack([t1, f1]), axis=1, return_counts=True)
    assert per_anchor.max() <= 3 * 2  # two peaks may share (t, f) after rng ties
    # brute-force reference for the first anchors
    for i in range(20):
        ok = [j for j in range(i + 1, 600) if 2 <= times[j] - times[i] <= 40 and abs(bins[j] - bins[i]) <= 30][:3]
        got = np.nonzero((t1 == times[i]) & (f1 == bins[i]))[0]
        exp = {(bins[j] - bins[i], times[j] - times[i]) for j in ok}
        if np.sum((times == times[i]) & (bins == bins[i])) == 1:
            assert {(int(df[g]), int(dt[g])) for g in got} == exp


def test_fingerprint_is_deterministic_and_shift_consistent(synth_music):
    c = FingerprintConfig()
    y = synth_music(c.sr, 12.0)
    h, t = fingerprint(y, c)
    assert h.size > 50 and np.all(np.diff(t.astype(np.int64)) >= 0)
    h2, t2 = fingerprint(y, c)
    np.testing.assert_array_equal(h, h2)
    # cutting the signal at a frame boundary keeps most landmarks at shifted times
    shift = 100
    hs, ts = fingerprint(y[shift * c.hop_length :], c)
    a = set(zip(h.tolist(), (t.astype(np.int64) - shift).tolist()))
    b = set(zip(hs.tolist(), ts.astype(np.int64).tolist()))
    assert len(a & b) / len(b) > 0.6


def test_query_density_is_a_superset_in_spirit(synth_music):
    c = FingerprintConfig()
    y = synth_music(c.sr, 10.0, seed=3)
    h, t = fingerprint(y, c)
    hq, tq = fingerprint(y, c, query=True)
    assert hq.size > h.size
    a = set(zip(h.tolist(), t.tolist()))
    assert len(a & set(zip(hq.tolist(), tq.tolist()))) / len(a) > 0.8


def test_long_signal_chunking_matches_one_pass(synth_music):
    from songmine.fingerprint import landmarks

    c = FingerprintConfig()
    y = synth_music(c.sr, 40.0, seed=1)
    t, f = landmark_peaks(y, c)
    old = landmarks._CHUNK_FRAMES
    try:
        landmarks._CHUNK_FRAMES = 700
        t2, f2 = landmark_peaks(y, c)
    finally:
        landmarks._CHUNK_FRAMES = old
    a, b = set(zip(t.tolist(), f.tolist())), set(zip(t2.tolist(), f2.tolist()))
    assert len(a ^ b) <= 0.01 * len(a)


def test_speed_fingerprinter_at_1_is_fingerprint_also_for_long_signals(synth_music):
    c = FingerprintConfig()
    y = synth_music(c.sr, 40.0, seed=2)  # > 1024 frames: the chunked path
    for query in (False, True):
        h, t = fingerprint(y, c, query=query)
        h1, t1 = speed_fingerprinter(y, c, query=query)(1.0)
        np.testing.assert_array_equal(h, h1)
        np.testing.assert_array_equal(t, t1)


def test_speed_fingerprinter_moves_time_and_frequency_apart(synth_music):
    """``at(s, pitch=p)``: a tempo change moves only the anchors' times (and the dt field), a pitch
    shift only the frequencies; ``at(s)`` is ``at(s, pitch=s)`` (a turntable)."""
    from songmine.fingerprint.landmarks import unpack_hashes

    c = FingerprintConfig()
    y = synth_music(c.sr, 10.0, seed=4)
    at = speed_fingerprinter(y, c)
    h0, t0 = at(1.0)
    h1, t1 = at(1.04, pitch=1.0)  # 4 % faster, pitch kept
    f0, _, _ = unpack_hashes(h0)
    f1, _, _ = unpack_hashes(h1)
    assert set(f1.tolist()) <= set(f0.tolist())  # the anchors' bins do not move
    assert t1.max() == pytest.approx(t0.max() * 1.04, abs=1)
    h2, t2 = at(1.0, pitch=2 ** (1 / 12))  # a semitone up, tempo kept
    f2, _, _ = unpack_hashes(h2)
    assert set(t2.tolist()) <= set(t0.tolist())
    assert abs(np.median(f2) - np.median(f0) / 2 ** (1 / 12)) <= 1  # the track's bins are below the clip's
    np.testing.assert_array_equal(at(1.03)[0], at(1.03, pitch=1.03)[0])


@pytest.mark.parametrize("query", [False, True])
def test_landmark_peaks_are_find_peaks_of_log_spectrogram(real_cuts, query):
    """The fingerprint's fused path (bins-major band spectrogram) gives find_peaks(log_spectrogram(y)) exactly."""
    from songmine.audio import load
    from songmine.fingerprint.spectral import find_peaks, log_spectrogram

    c = FingerprintConfig()
    y = load(real_cuts[2], sr=c.sr, duration=20.0)  # < 1,024 frames: one chunk
    lo, hi = c.bin_range
    S = log_spectrogram(y, n_fft=c.n_fft, hop_length=c.hop_length)
    t, f = find_peaks(
        S,
        f_radius=c.f_radius,
        t_radius=c.t_radius,
        background_frames=int(round(c.background_s / c.hop_s)),
        min_prominence_db=c.min_prominence_db,
        peaks_per_block=c.peaks_per_block(query),
        block_frames=c.block_frames,
        min_bin=lo,
        max_bin=hi,
        level_weight=c.level_weight,
    )
    t2, f2 = landmark_peaks(y, c, query=query)
    assert t.size > 100
    np.testing.assert_array_equal(t2, t)
    np.testing.assert_array_equal(f2, f)
