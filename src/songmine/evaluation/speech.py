"""Synthetic talkers for the speech conditions of :mod:`songmine.degrade` (babble, talk-over).

The package ships a small *speech bank*: :data:`N_TALKERS` talkers, each
:data:`TALKER_SECONDS` seconds of continuous speech at :data:`BANK_SR` Hz,
one channel per talker of an Ogg Vorbis file. It was made offline by
:func:`make_bank` with the ``espeak-ng`` speech synthesizer (eight voices,
four languages, texts written for this purpose), so nothing is downloaded
or synthesised when a clip is degraded, and a pip install has the same
talkers as a checkout. The synthesizer's output is not covered by its
licence; the texts are this package's.

``make_bank(path)`` regenerates it where ``espeak-ng`` is installed (Debian:
``apt-get install espeak-ng``); a different espeak-ng version gives slightly
different audio, hence the shipped file.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from importlib import resources

import numpy as np

from ..errors import ParameterError, SongmineError

__all__ = ["BANK_SR", "N_TALKERS", "TALKER_SECONDS", "TALKERS", "load_bank", "make_bank", "synthesize"]

#: Rate of the bank (a phone's wide band).
BANK_SR = 16000
#: Seconds of speech per talker (a talker's text is read again when it is shorter).
TALKER_SECONDS = 20.0
#: Longest pause kept inside a talker's speech, seconds (longer ones are shortened to it).
MAX_PAUSE_S = 0.25

_EN = [
    "The morning train was late again, so we walked along the river and talked about the weekend. "
    "My sister wants to paint the kitchen yellow, but nobody else agrees with her. "
    "In the end we bought coffee at the little stand near the bridge and waited for the next one.",
    "Could you send me the numbers before the meeting on Thursday? I think the second quarter looks "
    "better than we expected, although the shipping costs went up again. Let me know if anything is "
    "missing, and I will add it to the report tonight.",
    "Yesterday the weather changed three times in one afternoon. First it was sunny, then a cold wind "
    "came down from the hills, and by five o'clock it was raining so hard that the street turned into "
    "a small river. The children thought it was wonderful.",
    "If you turn left after the bakery, you will see a blue door with a brass handle. Ring twice and "
    "wait, because the bell is slow and the dog always gets there first. Tell them you came about the "
    "bicycle, and they will know what you mean.",
]
_DE = (
    "Gestern Abend haben wir lange im Garten gesessen und über die Reise gesprochen. Mein Bruder "
    "möchte unbedingt ans Meer fahren, aber meine Mutter will lieber in die Berge. Am Ende haben wir "
    "beschlossen, zuerst die Karten anzusehen und dann zu entscheiden."
)
_FR = (
    "Ce matin, le marché était plein de monde. Il y avait des fraises, des fromages et du pain encore "
    "chaud. Nous avons pris un café sur la petite place, puis nous sommes rentrés à pied en parlant "
    "des vacances et du temps qu'il fera demain."
)
_ES = (
    "El sábado fuimos al centro para comprar un regalo para mi abuela. Al final elegimos un libro de "
    "recetas y unas flores amarillas. Después comimos en un restaurante pequeño cerca de la plaza, "
    "donde el camarero nos contó la historia del barrio."
)
_IT = (
    "Domenica scorsa siamo andati al lago con gli amici. L'acqua era ancora fredda, ma il sole era "
    "caldo e abbiamo mangiato sotto gli alberi. Al ritorno c'era molto traffico, così ci siamo fermati "
    "a prendere un gelato in un paese vicino."
)
#: ``(espeak-ng voice, words per minute, base pitch 0-99, text)`` of each talker, in channel order.
TALKERS: tuple[tuple[str, int, int, str], ...] = (
    ("en-us+m3", 165, 45, _EN[0]),
    ("en-gb+f3", 160, 60, _EN[1]),
    ("en-us+f2", 175, 55, _EN[2]),
    ("en-gb+m1", 150, 35, _EN[3]),
    ("de+m4", 160, 40, _DE),
    ("fr+f4", 170, 65, _FR),
    ("es+m2", 175, 50, _ES),
    ("it+f1", 165, 58, _IT),
)
N_TALKERS = len(TALKERS)

_BANK_FILE = "speech-bank.ogg"
#: Vorbis compression of the shipped bank (0 best quality .. 1 smallest): ~21 dB SNR to the synthesised speech, 0.7 MB
_VORBIS_LEVEL = 0.8
_bank: np.ndarray | None = None


class SpeechUnavailable(SongmineError):
    """The speech bank (or, to make one, ``espeak-ng``) is not there."""


def load_bank() -> np.ndarray:
    """The shipped speech bank: float32 ``[N_TALKERS, TALKER_SECONDS * BANK_SR]`` at :data:`BANK_SR` (cached).

    Raises
    ------
    SpeechUnavailable
        The package was installed without its data file.
    """
    global _bank
    if _bank is None:
        import soundfile as sf

        try:
            with resources.as_file(resources.files("songmine.evaluation") / "data" / _BANK_FILE) as p:
                y, sr = sf.read(os.fspath(p), dtype="float32", always_2d=True)
        except (FileNotFoundError, OSError, RuntimeError) as exc:
            raise SpeechUnavailable(f"the speech bank {_BANK_FILE} is missing from this installation: {exc}") from None
        n = int(round(TALKER_SECONDS * BANK_SR))
        if sr != BANK_SR or y.shape[1] != N_TALKERS or y.shape[0] < n:
            raise SpeechUnavailable(
                f"{_BANK_FILE}: {y.shape[1]} channels of {y.shape[0] / sr:.1f} s at {sr} Hz, "
                f"expected {N_TALKERS} of {TALKER_SECONDS:g} s at {BANK_SR} Hz"
            )
        _bank = np.ascontiguousarray(y[:n].T)
    return _bank


def synthesize(voice: str, wpm: int, pitch: int, text: str, *, espeak: str = "espeak-ng") -> np.ndarray:
    """One talker's speech from ``espeak-ng``: float32 at :data:`BANK_SR`, pauses shortened, level normalised.

    The text is read again (after a short pause) until :data:`TALKER_SECONDS` are filled.

    Raises
    ------
    SpeechUnavailable
        ``espeak-ng`` is not installed or failed.
    """
    import soundfile as sf
    import soxr

    exe = shutil.which(espeak)
    if exe is None:
        raise SpeechUnavailable(f"{espeak} not found: install it (Debian: apt-get install espeak-ng) to make speech")
    try:
        res = subprocess.run(
            [exe, "-v", voice, "-s", str(int(wpm)), "-p", str(int(pitch)), "--stdout", text],
            capture_output=True,
            check=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise SpeechUnavailable(f"{espeak} -v {voice} failed: {exc}") from None
    y, sr = sf.read(io.BytesIO(res.stdout), dtype="float32")
    if y.ndim > 1:
        y = y.mean(axis=1)
    y = soxr.resample(y, sr, BANK_SR, quality="HQ").astype(np.float32)
    y = _shorten_pauses(y, BANK_SR)
    if y.size == 0:
        raise SpeechUnavailable(f"{espeak} -v {voice} produced no speech")
    n = int(round(TALKER_SECONDS * BANK_SR))
    gap = np.zeros(int(MAX_PAUSE_S * BANK_SR), np.float32)
    reps = int(np.ceil(n / (y.size + gap.size)))
    y = np.concatenate([np.concatenate([y, gap])] * reps)[:n]
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    return (y * (0.1 / rms)).astype(np.float32)  # -20 dBFS RMS


def _shorten_pauses(y: np.ndarray, sr: int, *, frame_s: float = 0.02, floor_db: float = -40.0) -> np.ndarray:
    """Cut silent stretches (frames ``floor_db`` under the loudest) to at most :data:`MAX_PAUSE_S`; trim the ends."""
    hop = int(frame_s * sr)
    n = y.size // hop
    if n == 0:
        return y
    e = np.square(y[: n * hop].reshape(n, hop), dtype=np.float64).mean(axis=1)
    loud = e > e.max() * 10 ** (floor_db / 10)
    if not loud.any():
        return np.zeros(0, np.float32)
    keep = np.zeros(n, bool)
    limit = int(MAX_PAUSE_S / frame_s)
    run = 0
    for i in range(n):  # frames of 20 ms: a few thousand at most
        run = 0 if loud[i] else run + 1
        keep[i] = run <= limit
    first, last = np.flatnonzero(loud)[[0, -1]]
    keep[:first] = keep[last + 1 :] = False
    return y[: n * hop].reshape(n, hop)[keep].reshape(-1)


def make_bank(path: str | os.PathLike[str], *, espeak: str = "espeak-ng") -> np.ndarray:
    """Synthesise every talker of :data:`TALKERS` and write the bank to ``path`` (Ogg Vorbis, one channel each).

    Returns the bank as written (before the lossy encoding).
    """
    import soundfile as sf

    if not str(path).endswith(".ogg"):
        raise ParameterError(f"path={os.fspath(path)!r}: the speech bank is an .ogg file")
    bank = np.stack([synthesize(v, wpm, p, text, espeak=espeak) for v, wpm, p, text in TALKERS])
    sf.write(os.fspath(path), bank.T, BANK_SR, format="OGG", subtype="VORBIS", compression_level=_VORBIS_LEVEL)
    return bank


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool: python -m songmine.evaluation.speech OUT.ogg
    import sys

    make_bank(sys.argv[1] if len(sys.argv) > 1 else _BANK_FILE)
