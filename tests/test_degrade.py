"""Degradations: stated SNRs are exact, speed changes the length by the factor,
the telephone band is empty above 4 kHz, and a seed gives the same clip."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.errors import ParameterError
from songmine.evaluation.degrade import (
    BASE_CONDITIONS,
    CONDITIONS,
    REAL_WORLD_CONDITIONS,
    REVERB_RT60_S,
    add_noise,
    apply_gain,
    change_speed,
    degrade,
    mp3_reencode,
    pink_noise,
    room_impulse_response,
    snr_db,
    source_seconds,
    speed_factor,
    telephone,
)

SR = 11025


@pytest.fixture
def clip(synth_music):
    return synth_music(sr=SR, seconds=3.0, seed=7)


def test_condition_names_are_the_peers_names_then_the_real_world_ones():
    assert BASE_CONDITIONS == (
        "clean", "white15", "white5", "white0", "pink5", "mp3_32k", "telephone",
        "gain-20", "speed+2", "speed-2", "speed+5", "speed-5", "reverb_noise10",
    )  # fmt: skip
    assert REAL_WORLD_CONDITIONS == (
        "tempo+4", "tempo-4", "tempo+8", "tempo-8", "pitch+1", "pitch-1", "room_babble5", "speech0", "broadcast",
    )  # fmt: skip
    assert CONDITIONS == BASE_CONDITIONS + REAL_WORLD_CONDITIONS


@pytest.mark.parametrize("name,snr", [("white15", 15), ("white5", 5), ("white0", 0), ("pink5", 5)])
def test_noise_conditions_hit_their_snr_on_the_clip_power(clip, name, snr):
    noisy = degrade(clip, SR, name, random_state=3)
    assert noisy.dtype == np.float32 and noisy.shape == clip.shape
    assert abs(snr_db(clip, noisy.astype(np.float64) - clip) - snr) < 0.1


def test_snr_is_relative_to_the_clip_not_absolute(clip):
    quiet = clip * 0.01
    noise = add_noise(quiet, 5.0, random_state=0).astype(np.float64) - quiet
    assert abs(snr_db(quiet, noise) - 5.0) < 0.1


def test_pink_noise_has_falling_spectrum():
    x = pink_noise(1 << 16, random_state=1)
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size)
    lo = p[(f > 0.001) & (f < 0.01)].mean()
    hi = p[(f > 0.1) & (f < 0.5)].mean()
    # 1/f power: a decade up in frequency is ~10 dB down; the two bands are >1 decade apart
    assert 10 * np.log10(lo / hi) > 10


def test_reverb_noise_has_ten_db_noise_over_the_reverberant_clip(clip):
    out = degrade(clip, SR, "reverb_noise10", random_state=5)
    assert out.shape == clip.shape
    # the output differs from the dry clip by more than the 10 dB noise alone (the reverb)
    assert snr_db(clip, out.astype(np.float64) - clip) < 9.5


def test_room_impulse_response_decays_sixty_db_over_rt60():
    rt60 = 0.35
    ir = room_impulse_response(SR, rt60_s=rt60, random_state=2)
    assert ir.size == round(rt60 * SR) and ir[0] == 1.0
    n = ir.size // 10
    head, tail = np.mean(ir[1 : 1 + n] ** 2), np.mean(ir[-n:] ** 2)
    # the envelope falls 60 dB over rt60; the first and last tenths are ~0.8·rt60 apart
    assert 40 < 10 * np.log10(head / tail) < 60
    with pytest.raises(ParameterError):
        room_impulse_response(SR, rt60_s=-1.0)
    assert REVERB_RT60_S == (0.30, 0.40)


@pytest.mark.parametrize("name", ["speed+2", "speed-2", "speed+5", "speed-5"])
def test_speed_changes_length_by_the_factor(clip, name):
    f = speed_factor(name)
    out = degrade(clip, SR, name)
    assert abs(out.size - clip.size / f) <= 2
    assert source_seconds(name, 10.0) == pytest.approx(10.0 * f)


def test_speed_change_shifts_pitch_with_tempo(tone):
    y = tone(1000.0, SR, 2.0)
    out = change_speed(y, SR, 1.05)
    spec = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak_hz = np.fft.rfftfreq(out.size, 1 / SR)[np.argmax(spec)]
    assert abs(peak_hz - 1050.0) < 3.0


def test_telephone_has_no_energy_above_4khz_and_keeps_the_voice_band(clip, tone):
    out = telephone(clip, SR)
    p = np.abs(np.fft.rfft(out)) ** 2
    f = np.fft.rfftfreq(out.size, 1 / SR)
    assert out.shape == clip.shape
    assert p[f > 4000].sum() / p.sum() < 1e-6
    # a 1 kHz tone passes, a 100 Hz tone is cut
    assert np.std(telephone(tone(1000.0, SR, 1.0), SR)) > 0.3
    assert np.std(telephone(tone(100.0, SR, 1.0), SR)[2000:-2000]) < 0.05


def test_gain_minus_twenty_db(clip):
    out = degrade(clip, SR, "gain-20")
    assert np.allclose(out, clip * 0.1, atol=1e-7)
    assert np.allclose(apply_gain(clip, 6.0206), clip * 2, rtol=1e-4)


def test_mp3_reencode_keeps_length_and_most_of_the_signal(clip):
    out = mp3_reencode(clip, SR)
    assert out.shape == clip.shape and out.dtype == np.float32
    # a lossy but faithful copy: correlated, not identical
    r = np.corrcoef(out, clip)[0, 1]
    assert 0.5 < r < 0.9999


@pytest.mark.parametrize("name", CONDITIONS)
def test_every_condition_is_deterministic_per_seed_and_pure(clip, name):
    before = clip.copy()
    a = degrade(clip, SR, name, random_state=11)
    b = degrade(clip, SR, name, random_state=np.random.default_rng(11))
    assert np.array_equal(a, b)
    assert np.array_equal(clip, before)
    assert a.dtype == clip.dtype and np.all(np.isfinite(a))


def test_different_seeds_give_different_noise(clip):
    assert not np.array_equal(degrade(clip, SR, "white5", random_state=1), degrade(clip, SR, "white5", random_state=2))


def test_silence_is_left_alone_and_bad_input_is_refused():
    silent = np.zeros(SR, dtype=np.float32)
    assert np.array_equal(degrade(silent, SR, "white0", random_state=0), silent)
    with pytest.raises(ParameterError, match="unknown"):
        degrade(silent, SR, "white3")
    with pytest.raises(ParameterError, match="mono"):
        degrade(np.zeros((2, 10), dtype=np.float32), SR, "clean")
    with pytest.raises(ParameterError, match="floating"):
        degrade(np.zeros(10, dtype=np.int16), SR, "clean")
    with pytest.raises(ParameterError):
        add_noise(silent, float("nan"))
