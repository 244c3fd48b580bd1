"""Effective audio bandwidth: how high a file's spectrum reaches before an encoder's low-pass cut it.

Lossy encoders drop everything above a cut-off (LAME at 128 kbps: about 16 kHz;
Vorbis at ~120 kbps: about 19 kHz), and a copy made from a lossy file keeps the
lower of the two cut-offs — so among copies of one recording the one with the
highest effective bandwidth is the least processed. Measured from the decoded
audio, not from the bitrate: a 128-kbps MP3 made from a 116-kbps Vorbis has the
higher bitrate and the lower bandwidth.

How: up to ``seconds`` of mono audio at the file's own rate, from the middle of
the file; Welch's averaged power spectrum (4,096-sample Hann windows); the
median level of each 250-Hz band (a median, so the sparse noise some MP3
encoders leave above their cut-off does not count); the bandwidth is the upper
edge of the highest band whose median lies within ``floor_db`` of the median
level between 200 Hz and 4 kHz (the body of the music, so gain does not matter).
"""

from __future__ import annotations

import numpy as np

from . import audio
from .errors import DecodeError

__all__ = ["effective_bandwidth", "bandwidth_of_samples", "BAND_HZ", "FLOOR_DB"]

#: Width of the bands whose median level is compared with the floor.
BAND_HZ = 250.0
#: How far below the music's body (200 Hz – 4 kHz) a band may lie and still count as content.
FLOOR_DB = 50.0


def bandwidth_of_samples(y: np.ndarray, sr: int, *, floor_db: float = FLOOR_DB) -> float:
    """Effective bandwidth in Hz of mono samples ``y`` at ``sr`` (0.0 for silence or too little audio)."""
    from scipy.signal import welch

    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.size < 4096 or not np.any(y):
        return 0.0
    f, p = welch(y, fs=sr, nperseg=4096)
    db = 10 * np.log10(p + 1e-30)
    body = db[(f >= 200) & (f <= 4000)]
    if body.size == 0:
        return 0.0
    ref = float(np.median(body))
    edges = np.arange(0.0, sr / 2 + BAND_HZ, BAND_HZ)
    band = np.minimum(np.digitize(f, edges) - 1, len(edges) - 2)
    medians = np.full(len(edges) - 1, -np.inf)
    for b in np.unique(band):  # ~90 bands at 44.1 kHz
        medians[b] = np.median(db[band == b])
    above = np.flatnonzero(medians >= ref - floor_db)
    return float(min(edges[above[-1] + 1], sr / 2)) if above.size else 0.0


def effective_bandwidth(path, *, seconds: float = 60.0, floor_db: float = FLOOR_DB) -> float:
    """Effective bandwidth in Hz of an audio file (see the module doc).

    Raises
    ------
    DecodeError
        The file cannot be decoded.
    """
    meta = audio.info(path)
    total = float(meta.duration_s or 0.0)
    offset = max(0.0, (total - seconds) / 2) if total > seconds else 0.0
    y = audio.load(path, sr=None, mono=True, offset=offset, duration=seconds)
    if y.size == 0:
        raise DecodeError(f"{path}: no audio to measure", path=str(path), reason="empty")
    return bandwidth_of_samples(y, int(meta.sr))
