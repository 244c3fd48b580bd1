"""The real-world conditions: tempo and pitch changes move only what they say, the talk-over
and the room hit their stated SNR, the room's reverberation is what it says, the radio chain
compresses, every one is deterministic per seed, and a missing extra is one clear error."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import need

from songmine.errors import ParameterError
from songmine.evaluation.degrade import (
    BROADCAST_MP3_BITRATE,
    PHONE_MIC_BAND_HZ,
    REAL_WORLD_CONDITIONS,
    ROOM_BABBLE_SNR_DB,
    ROOM_DISTANCE_M,
    ROOM_RT60_S,
    ROOM_SR,
    EvalExtraMissing,
    _butter_band,
    _mix_at,
    _phone_parts,
    _room,
    broadcast,
    check_available,
    degrade,
    pitch_shift,
    room_rirs,
    snr_db,
    source_seconds,
    speed_factor,
    time_stretch,
)

SR = 22050


def _extra_installed() -> bool:
    try:
        import pedalboard  # noqa: F401
        import pyroomacoustics  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def _eval_extra():
    need(_extra_installed(), "the eval extra (pedalboard, pyroomacoustics) is not installed: pip install -e '.[eval]'")


@pytest.fixture
def clip(synth_music):
    return synth_music(sr=SR, seconds=3.0, seed=7)


def _peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.fft.rfftfreq(y.size, 1 / sr)[np.argmax(spec)])


def _burst_period_s(y: np.ndarray, sr: int) -> float:
    """Period of a train of tone bursts, from the autocorrelation of its 5-ms envelope."""
    hop = int(0.005 * sr)
    env = np.sqrt(np.square(y[: y.size // hop * hop].reshape(-1, hop)).mean(axis=1))
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[env.size - 1 :]
    lag = 20 + int(np.argmax(ac[20:80]))  # periods between 0.1 and 0.4 s
    return lag * hop / sr


def _bursts(sr: int, seconds: float, period: float = 0.25, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    gate = (np.mod(t, period) < period / 2).astype(np.float64)
    return (0.5 * gate * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("name,factor", [("tempo+4", 1.04), ("tempo-4", 0.96), ("tempo+8", 1.08), ("tempo-8", 0.92)])
def test_tempo_changes_time_and_keeps_the_pitch(name, factor):
    y = _bursts(SR, 4.0)
    out = degrade(y, SR, name, random_state=0)
    assert speed_factor(name) == factor and source_seconds(name, 10.0) == pytest.approx(10.0 * factor)
    assert out.size == round(y.size / factor) and out.dtype == np.float32
    assert abs(_peak_hz(out, SR) - 1000.0) < 3.0  # the pitch stays
    # the bursts come factor times more often (5-ms envelope: within one step of the expected lag)
    assert abs(_burst_period_s(out, SR) - 0.25 / factor) <= 0.006
    assert abs(_burst_period_s(y, SR) - 0.25) <= 0.006


@pytest.mark.parametrize("name,semitones", [("pitch+1", 1), ("pitch-1", -1)])
def test_pitch_shift_moves_frequency_and_keeps_the_tempo(name, semitones):
    y = _bursts(SR, 4.0)
    out = degrade(y, SR, name, random_state=0)
    assert out.size == y.size and speed_factor(name) == 1.0
    assert abs(_peak_hz(out, SR) - 1000.0 * 2 ** (semitones / 12)) < 4.0
    assert abs(_burst_period_s(out, SR) - 0.25) <= 0.006


def test_time_stretch_and_pitch_shift_refuse_nonsense(clip):
    with pytest.raises(ParameterError):
        time_stretch(clip, SR, 3.0)
    with pytest.raises(ParameterError):
        pitch_shift(clip, SR, float("nan"))


def test_talk_over_is_one_voice_at_exactly_zero_db(clip):
    out = degrade(clip, SR, "speech0", random_state=4)
    voice = out.astype(np.float64) - clip
    assert out.shape == clip.shape
    assert abs(snr_db(clip, voice) - 0.0) < 0.01
    # what was added is not the music: uncorrelated with it, and silent in no 0.5-s stretch of the clip
    assert abs(np.corrcoef(voice, clip)[0, 1]) < 0.2
    blocks = np.sqrt(np.square(voice[: voice.size // (SR // 2) * (SR // 2)].reshape(-1, SR // 2)).mean(axis=1))
    assert blocks.min() > 0.05 * blocks.max()
    other = degrade(clip, SR, "speech0", random_state=5).astype(np.float64) - clip
    assert not np.allclose(voice, other)


def test_room_music_is_five_db_above_the_babble_at_the_phone(clip):
    rng = np.random.default_rng(9)
    out = degrade(clip, SR, "room_babble5", random_state=np.random.default_rng(9))
    music, babble = _phone_parts(clip, SR, 6, rng)
    mixed = _mix_at(music, babble, ROOM_BABBLE_SNR_DB)
    assert abs(snr_db(music, mixed - music) - 5.0) < 1e-6
    # the output is that mix through the phone microphone's band, at the clip's rate
    import soxr

    again = soxr.resample(_butter_band(mixed, ROOM_SR, PHONE_MIC_BAND_HZ), ROOM_SR, SR, quality="HQ")[: clip.size]
    assert out.shape == clip.shape and out.dtype == np.float32
    assert np.allclose(out, again, atol=1e-5)
    # a 16-kHz phone: nothing left above 8 kHz
    p = np.abs(np.fft.rfft(out)) ** 2
    f = np.fft.rfftfreq(out.size, 1 / SR)
    assert p[f > 8200].sum() / p.sum() < 1e-4


def test_room_has_the_stated_reverberation_and_distance():
    rng = np.random.default_rng(3)
    for _ in range(4):  # four rooms
        dims, rt60, speaker, phone, talkers = _room(rng, 6)
        assert ROOM_RT60_S[0] <= rt60 <= ROOM_RT60_S[1]
        assert ROOM_DISTANCE_M[0] - 1e-9 <= np.linalg.norm(speaker - phone) <= ROOM_DISTANCE_M[1] + 1e-9
        for p in (speaker, phone, *talkers):
            assert np.all(p > 0) and np.all(p < dims)
        rirs, measured = room_rirs(dims, rt60, [speaker], phone)
        # the measured RT60 (T20 of the simulated response) is the drawn one, within 15 %
        assert abs(measured - rt60) <= 0.15 * rt60


def test_broadcast_compresses_and_limits(tone):
    loud = tone(1000.0, SR, 2.0)
    y = np.concatenate([loud, loud * 0.1])  # a 20-dB step
    out = broadcast(y, SR)
    assert out.shape == y.shape and out.dtype == np.float32
    n = loud.size
    a = np.sqrt(np.mean(out[n // 2 : n] ** 2))
    b = np.sqrt(np.mean(out[n + n // 2 :] ** 2))
    assert 20 * np.log10(a / b) < 8.0  # 8:1 above the threshold: the 20-dB step shrinks
    assert np.max(np.abs(out)) < 10 ** (-0.5 / 20) * 1.2  # limited near -1 dBFS (MP3 adds a little)
    assert BROADCAST_MP3_BITRATE == 64_000


@pytest.mark.parametrize("name", REAL_WORLD_CONDITIONS)
def test_real_world_conditions_keep_the_clip_length_after_the_cut(clip, name):
    n_src = int(round(source_seconds(name, 2.0) * SR))
    src = np.tile(clip, 2)[:n_src]
    out = degrade(src, SR, name, random_state=1)
    assert abs(out.size - 2 * SR) <= 2 and np.all(np.isfinite(out))


def test_a_missing_extra_is_one_clear_error(monkeypatch, clip):
    monkeypatch.setitem(sys.modules, "pedalboard", None)  # import pedalboard now fails
    with pytest.raises(EvalExtraMissing, match=r"songmine\[eval\]"):
        degrade(clip, SR, "tempo+4")
    with pytest.raises(EvalExtraMissing, match="broadcast"):
        check_available(["clean", "broadcast"])
    check_available(["clean", "speech0"])  # needs only the shipped speech bank
    monkeypatch.setitem(sys.modules, "pyroomacoustics", None)
    with pytest.raises(EvalExtraMissing, match="room_babble5"):
        check_available(["room_babble5"])
