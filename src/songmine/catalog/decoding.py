"""Decode a file the way FMA's feature code did: native rate, 16-bit PCM, channels averaged.

FMA's ``features.py`` called ``librosa.load(sr=None)`` on librosa 0.5.0, which read
through audioread (FFmpeg's command-line program) as 16-bit integers and averaged
the channels. :func:`decode` does the same with PyAV (or with the ``ffmpeg``
program itself, ``decoder="ffmpeg"``), so the features see the same samples.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..audio import info, load
from ..errors import DecodeError, ParameterError

__all__ = ["decode", "DECODERS"]


def decode(path: str | os.PathLike[str], *, pcm16: bool = True, decoder: str = "pyav") -> tuple[np.ndarray, int]:
    """Decode to mono float32 at the file's native rate, as FMA's ``librosa.load(sr=None)`` did.

    librosa 0.5.0 decoded through audioread, whose backends (FFmpeg, GStreamer)
    hand over **16-bit PCM**: every channel is rounded to 16 bits and clipped
    to [−1, 1) before the channel mean (``buf_to_float``: ``int16 / 32768``).
    ``pcm16=True`` (the default) reproduces that: float samples as FFmpeg
    converts float to s16 (``lrintf(x · 32768)``, clipped), integer ones by
    keeping the top 16 bits (FFmpeg's s32 → s16 is ``>> 16``). Decoders' overshoot above full
    scale — common in MP3s — is clipped as it was for FMA; near-silent
    passages keep the 16-bit noise floor that the chroma_cens/tonnetz minima
    depend on. ``pcm16=False`` keeps libsndfile's floats (today's
    ``librosa.load``).

    Decoders: uncompressed files (WAV, FLAC, AIFF: exact whatever the decoder) through
    libsndfile; compressed ones (MP3, Vorbis, Opus, AAC...) through FFmpeg's own decoders
    (PyAV), as audioread's FFmpeg backend did — libsndfile's libvorbis/mpg123 differ by one
    LSB here and there and can start up to 128 samples later (priming), which shifts every
    frame. With ``pcm16=False`` libsndfile (today's ``librosa.load``) reads what it can.

    ``decoder`` picks who decodes compressed files: ``"pyav"`` (default: FFmpeg's decoders
    in this process) or ``"ffmpeg"`` (the ``ffmpeg`` program on ``PATH``, piping 16-bit PCM —
    literally what audioread handed librosa 0.5.0). FFmpeg builds differ in the last float
    bit of their Vorbis/MP3 output, which flips ~0.04 % of 16-bit samples by one LSB; with the
    same ``ffmpeg`` as FMA's code ran on, the samples, and so the 518 values, are the same.

    Raises
    ------
    DecodeError
        Missing, empty or undecodable file; ``decoder="ffmpeg"`` without an ``ffmpeg`` program.
    ParameterError
        Unknown ``decoder``.
    """
    import soundfile as sf

    if decoder not in DECODERS:
        raise ParameterError(f"decoder={decoder!r}: expected one of {', '.join(DECODERS)}")
    p = Path(path)
    if not p.exists():
        raise DecodeError(f"{p}: no such file", path=str(p), reason="missing")
    if p.is_file() and p.stat().st_size == 0:
        raise DecodeError(f"{p}: file is empty (0 bytes)", path=str(p), reason="empty")
    sf_error: Exception | None = None
    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            integer = f.subtype.startswith("PCM_") and pcm16
            if integer or f.subtype in ("FLOAT", "DOUBLE") or not pcm16:
                y = f.read(dtype="int32" if integer else "float32", always_2d=True)
            else:
                y = None  # compressed: FFmpeg below
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        sf_error, y = exc, None
    if y is not None:
        if integer:  # full-scale int32 from libsndfile: the top 16 bits are FFmpeg's s16
            y >>= 16
            return _mono_pcm16(y.astype(np.float32).T), sr
        if pcm16:
            return _mono_pcm16(_round_pcm16(y).T), sr
        return _mono(y.T), sr
    if decoder == "ffmpeg":
        return _decode_ffmpeg_cli(p, pcm16)

    try:
        sr = info(p).sr
        y = load(p, sr=sr, mono=False)
    except DecodeError:
        raise
    except Exception as exc:  # pragma: no cover - PyAV oddities
        why = f"{sf_error}; {exc}" if sf_error is not None else str(exc)
        raise DecodeError(f"{p}: undecodable ({why})", path=str(p)) from exc
    y = np.atleast_2d(y)  # [channels, n]
    return (_mono_pcm16(_round_pcm16(y)) if pcm16 else _mono(y)), int(sr)


#: ``decode``'s decoders for compressed files: PyAV in-process, or the ``ffmpeg`` program.
DECODERS = ("pyav", "ffmpeg")


def _decode_ffmpeg_cli(p: Path, pcm16: bool) -> tuple[np.ndarray, int]:
    """Decode through the ``ffmpeg`` program as audioread's FFmpeg backend did
    (``ffmpeg -i FILE -f s16le -``: native rate and channels, 16-bit PCM), then the channel mean."""

    exe = shutil.which("ffmpeg")
    if exe is None:
        raise DecodeError(f"{p}: decoder='ffmpeg' needs the ffmpeg program on PATH", path=str(p), reason="no-ffmpeg")
    meta = info(p)  # rate and channel count (raises DecodeError on a non-audio file)
    fmt, dtype = ("s16le", np.int16) if pcm16 else ("f32le", np.float32)
    proc = subprocess.run(
        [exe, "-nostdin", "-v", "error", "-i", str(p), "-f", fmt, "-"],
        capture_output=True,
        check=False,
    )
    why = proc.stderr.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not proc.stdout:
        raise DecodeError(
            f"{p}: ffmpeg failed (exit {proc.returncode}: {why[-1] if why else 'no output'})", path=str(p)
        )
    ch = max(int(meta.channels), 1)
    n = len(proc.stdout) // (ch * np.dtype(dtype).itemsize)
    q = np.frombuffer(proc.stdout, dtype, count=n * ch).reshape(n, ch).T
    if pcm16:
        return _mono_pcm16(q.astype(np.float32)), int(meta.sr)
    return _mono(q.astype(np.float32)), int(meta.sr)


def _round_pcm16(y: np.ndarray) -> np.ndarray:
    """Float samples → 16-bit integer values (as float32, in place): FFmpeg's float → s16,
    ``av_clip_int16(lrintf(x · 32768))``."""
    y *= np.float32(32768)
    np.rint(y, out=y)
    np.clip(y, -32768, 32767, out=y)
    return y


def _mono_pcm16(q: np.ndarray) -> np.ndarray:
    """[channels, n] 16-bit values → float32 [n]: librosa 0.5.0's ``int16 / 32768`` then channel mean.

    The mean of integers is exact in float32 and scaling by 2^-15 commutes with it, so
    scaling once after the mean gives the same bits as scaling every channel first.
    """
    y = _mono(q)
    y *= np.float32(1 / 32768)
    return y


def _mono(y: np.ndarray) -> np.ndarray:
    """[channels, n] (any strides) → contiguous float32 [n], the channel mean (librosa's ``to_mono``)."""
    if y.shape[0] == 1:
        return np.ascontiguousarray(y[0], dtype=np.float32)
    if y.shape[0] == 2:
        out = y[0] + y[1]
        out *= np.float32(0.5)  # (a + b) / 2, as numpy's float32 mean of two values
        return out
    return np.ascontiguousarray(np.mean(y, axis=0, dtype=np.float32))
