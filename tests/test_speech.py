"""The speech bank behind the babble and talk-over conditions: shipped with the package, one
talker per channel, continuous speech at a known level; remade by espeak-ng where it is installed."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import need

from songmine.errors import ParameterError
from songmine.evaluation.speech import BANK_SR, N_TALKERS, TALKER_SECONDS, TALKERS, load_bank, make_bank


def _activity(y: np.ndarray, sr: int) -> float:
    """Share of 20-ms frames within 30 dB of the loudest (speech, not pauses)."""
    hop = int(0.02 * sr)
    e = np.square(y[: y.size // hop * hop].reshape(-1, hop), dtype=np.float64).mean(axis=1)
    return float(np.mean(e > e.max() * 1e-3))


def _check_bank(bank: np.ndarray) -> None:
    assert bank.shape == (N_TALKERS, int(TALKER_SECONDS * BANK_SR)) and bank.dtype == np.float32
    rms = np.sqrt(np.mean(np.square(bank, dtype=np.float64), axis=1))
    assert np.all(np.abs(20 * np.log10(rms) + 20.0) < 1.0)  # each talker at -20 dBFS RMS
    for talker in bank:
        assert _activity(talker, BANK_SR) > 0.6  # continuous speech, short pauses only
    # eight different voices: no two talkers alike
    c = np.corrcoef(bank[:, : 5 * BANK_SR])
    assert np.all(np.abs(c[~np.eye(N_TALKERS, dtype=bool)]) < 0.3)


def test_the_shipped_bank_holds_eight_talkers():
    assert len(TALKERS) == N_TALKERS == 8
    _check_bank(load_bank())


def test_make_bank_remakes_it_with_espeak(tmp_path):
    need(shutil.which("espeak-ng") is not None, "espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    out = tmp_path / "bank.ogg"
    made = make_bank(out)
    _check_bank(made)
    import soundfile as sf

    y, sr = sf.read(out, dtype="float32")
    assert sr == BANK_SR and y.shape == (made.shape[1], N_TALKERS)
    with pytest.raises(ParameterError, match=".ogg"):
        make_bank(tmp_path / "bank.wav")
