"""Decode any audio file to mono float32 at the rate a method asks for.

Every method in songmine starts here. Decoding goes through PyAV (FFmpeg's
decoders: mp3, ogg/vorbis, opus, webm, flac, wav, m4a/aac, ...); resampling
through soxr, streamed chunk by chunk so a long file never needs its full
native-rate copy in memory. A WAVE or AIFF file is opened by its header alone
(FFmpeg's stream probe would decode 5 s of it first, to learn what the header
says), and integer or packed samples become float32 in numpy, with the values
FFmpeg's own conversion gives: a 10-s WAV clip decodes in about 2 ms of CPU.

Stereo → mono rule: the plain mean of all channels (no ``1/√2`` gain, no
channel weighting), applied per decoded frame before resampling. This is what
librosa's ``to_mono`` does, so methods that reproduce librosa pipelines agree.

Chained Ogg (logical streams one after another, e.g. ``cat a.ogg b.ogg``, as
internet radio rips and some taggers make them) is split into its chains here
and each chain is decoded on its own (FFmpeg's Ogg demuxer refuses a chain
that changes rate or channels), resampled to the requested rate (``sr=None``:
the first chain's rate) and appended; :func:`info` sums the chains' durations.
With ``mono=False`` a chain whose channel count differs from the first chain's
is mixed to mono (the mean) and copied to every output channel. A single stream
whose frames change rate mid-way (concatenated ADTS/AAC) is resampled likewise,
segment by segment, instead of being read at the first rate.

Errors are :class:`~songmine.errors.DecodeError` with the file and a ``reason``
(``missing``, ``empty``, ``not-audio``, ``no-audio-stream``, ``truncated``,
``zero-length``, ``too-long``). Digital silence is valid audio, not an error.

Partial files are refused, never returned in part: a decode error after some
audio, or a clean end well short of the declared length (less than
``0.9 × declared − 1 s``), is ``reason="truncated"``; a decode error once the
declared length is decoded is junk after the audio, and the audio is kept — for each chain of a
chained Ogg alike. (An Ogg file cut mid-way declares only what it still holds,
so it decodes as shorter audio: the container cannot tell. Nor can raw ADTS/AAC
or MPEG audio without a Xing header, whose length FFmpeg only guesses from the
first frames' bitrate: a guess is not a declared length.)
"""

from __future__ import annotations

import errno
import io
import itertools
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from .errors import DecodeError, ParameterError
from .stages import stage

_BLOCK = 1 << 16  # native-rate samples handed to the resampler at a time
_PREROLL = 0.5  # seconds decoded and dropped before a seek target: the decoder's warm-up
_END_SLACK_S = 0.5  # a decode error this close to the declared end is junk after the audio, not a cut

log = logging.getLogger(__name__)

__all__ = ["AudioInfo", "AUDIO_EXTENSIONS", "Source", "load", "info", "decoded_duration", "is_audio_path"]

#: File endings treated as audio when walking a folder.
AUDIO_EXTENSIONS = frozenset(
    {".mp3", ".ogg", ".oga", ".opus", ".webm", ".flac", ".wav", ".m4a", ".aac", ".mp4", ".wma", ".aiff", ".aif"}
)

#: A path, raw bytes, or a binary file object (e.g. an HTTP upload).
Source = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes]


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a file's container says about it, without decoding the audio."""

    duration_s: float
    sr: int
    channels: int
    codec: str
    tags: dict[str, str] = field(default_factory=dict)


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` has one of :data:`AUDIO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", None) or "<in-memory audio>"


#: FFmpeg options for a container whose header alone describes its audio (see :func:`_header_only`).
_SHORT_PROBE = {"probesize": "32"}


def _header_only(head: bytes) -> bool:
    """Whether ``head`` (a file's first 12 bytes) starts a WAVE (RIFF/RF64/BW64) or AIFF container.

    Their header names the codec, rate and channels; FFmpeg's stream probe would
    still read and decode up to 5 s of audio at open (about 7 ms of CPU for a
    10-s WAV clip, more than the rest of its decode), only to learn what the
    header said. For these the probe is cut to the header: the packets, the
    decoded samples and the declared duration are the same.
    """
    return (head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE") or (
        head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC")
    )


def _head(target: object) -> bytes:
    """The first 12 bytes of a path, a bytes buffer or a seekable file object (b"" when unreadable)."""
    try:
        if isinstance(target, str):
            with open(target, "rb", buffering=0) as f:
                return f.read(12)
        if isinstance(target, io.BytesIO):
            return target.getbuffer()[:12].tobytes()
        if hasattr(target, "seekable") and target.seekable():
            pos = target.tell()
            head = target.read(12)
            target.seek(pos)
            return head if isinstance(head, bytes) else b""
    except (OSError, ValueError, TypeError):
        pass
    return b""


def _open(source: Source):
    """Open a container with PyAV, turning every failure into a typed DecodeError."""
    import av

    name = _name(source)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.exists():
            raise DecodeError(f"{name}: no such file", path=name, reason="missing")
        if p.is_dir():
            raise DecodeError(f"{name}: is a directory, not an audio file", path=name, reason="not-audio")
        if p.stat().st_size == 0:
            raise DecodeError(f"{name}: file is empty (0 bytes)", path=name, reason="empty")
        target: object = os.fspath(p)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise DecodeError(f"{name}: upload is empty (0 bytes)", path=None, reason="empty")
        target = io.BytesIO(bytes(source))
    else:
        target = source
    short = _header_only(_head(target))
    start = target.tell() if short and not isinstance(target, str) else 0
    try:
        container = av.open(target, mode="r", metadata_errors="ignore", options=_SHORT_PROBE if short else None)
        ctx = container.streams.audio[0].codec_context if short and container.streams.audio else None
        if ctx is not None and not ctx.name.startswith("pcm_"):  # (None: no decoder, refused below)
            container.close()  # a compressed codec in a WAVE/AIFF file: probe it as usual
            if not isinstance(target, str):
                target.seek(start)
            container = av.open(target, mode="r", metadata_errors="ignore")
    except PermissionError as exc:
        if not isinstance(exc, av.error.FFmpegError) or exc.errno == errno.EACCES:
            raise DecodeError(f"{name}: permission denied", path=name, reason="missing") from exc
        # EPERM is also what FFmpeg demuxers return on input they refuse (an ASF header cut short)
        raise DecodeError(
            f"{name}: not a readable audio file ({_ffmpeg_reason(exc)})", path=name, reason="not-audio"
        ) from exc
    except (av.error.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise DecodeError(
            f"{name}: not a readable audio file ({_ffmpeg_reason(exc)})", path=name, reason="not-audio"
        ) from exc
    if not container.streams.audio:
        container.close()
        raise DecodeError(f"{name}: contains no audio stream", path=name, reason="no-audio-stream")
    if container.streams.audio[0].codec_context is None:  # FFmpeg knows no decoder for it (a damaged codec tag)
        container.close()
        raise DecodeError(f"{name}: not a readable audio file (unknown audio codec)", path=name, reason="not-audio")
    return container


def _ffmpeg_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # PyAV messages look like "[Errno 1094995529] Invalid data found when processing input: 'x.mp3'"
    if "]" in text:
        text = text.split("]", 1)[1].strip()
    return text.split(": '")[0]


def info(source: Source) -> AudioInfo:
    """Duration, native rate, channels, codec and tags, read from the container.

    Raises
    ------
    DecodeError
        When the file is missing, empty, not audio, or has no audio stream.
    """
    chains = _ogg_chains(source)
    if chains is not None:
        return _info_chained(chains, _name(source))
    with _open(source) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = float("nan")
        tags = {str(k).lower(): str(v) for k, v in {**container.metadata, **stream.metadata}.items()}
        ctx = stream.codec_context
        sr, channels = int(ctx.sample_rate or 0), int(ctx.channels or 0)
        if sr <= 0 or channels <= 0:  # what FFmpeg's probe makes of text or noise named .flac/.mp3/.aac
            name = _name(source)
            raise DecodeError(
                f"{name}: not a readable audio file (an audio stream of {sr} Hz, {channels} channels)",
                path=name,
                reason="not-audio",
            )
        return AudioInfo(duration_s=duration, sr=sr, channels=channels, codec=str(ctx.name), tags=tags)


def load(
    source: Source,
    *,
    sr: int | None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
    max_duration: float | None = None,
) -> np.ndarray:
    """Decode ``source`` to float32 samples at ``sr`` Hz.

    Parameters
    ----------
    source : path, bytes or binary file object
        Any format FFmpeg decodes.
    sr : int or None
        Target rate in Hz; ``None`` keeps the file's native rate.
    mono : bool
        Mix channels down by their mean (the module's one rule). With
        ``mono=False`` the result has shape ``(channels, n)``.
    offset : float
        Start reading this many seconds into the file (seeks; earlier audio is
        not decoded where the container allows).
    duration : float or None
        Read at most this many seconds from ``offset``; ``None`` reads to the end.
    max_duration : float or None
        Refuse (``reason="too-long"``) sources longer than this many seconds
        instead of decoding them — a guard for uploads and queries.

    Returns
    -------
    y : np.ndarray [shape=(n,) or (channels, n), dtype=float32]

    Raises
    ------
    DecodeError
        Missing, empty, not audio, no audio stream, truncated, zero-length, too long.
    ParameterError
        Bad ``sr``, ``offset`` or ``duration``.

    Examples
    --------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros(22050, dtype="float32"), 22050)
    >>> load(path, sr=11025).shape
    (11025,)
    """
    if sr is not None and (not isinstance(sr, (int, np.integer)) or sr <= 0):
        raise ParameterError(f"sr={sr!r} must be a positive integer or None")
    if offset < 0 or not np.isfinite(offset):
        raise ParameterError(f"offset={offset!r} must be a finite number >= 0")
    if duration is not None and (duration <= 0 or not np.isfinite(duration)):
        raise ParameterError(f"duration={duration!r} must be a positive number or None")

    return _read(source, sr, mono, offset, duration, max_duration)[0]


def decoded_duration(source: Source, *, max_duration: float | None = None) -> float:
    """Seconds of audio ``source`` really holds, decoding all of it but keeping no samples.

    What ``load(source, sr=None)`` returns, divided by the rate, in constant memory: proving a
    file readable to its end (``songmine scan``) never holds hours of samples.

    Raises
    ------
    DecodeError
        As :func:`load` (missing, not audio, truncated, zero-length, too long...).
    """
    return _read(source, None, True, 0.0, None, max_duration, keep=False)[1]


def _read(source: Source, sr, mono, offset, duration, max_duration, keep: bool = True):
    """:func:`load`'s work: ``(samples, seconds decoded)``; ``keep=False`` keeps no samples (an empty array)."""
    name = _name(source)
    chains = _ogg_chains(source)
    if chains is not None:
        return _load_chained(chains, name, sr, mono, offset, duration, max_duration, keep)
    with _open(source) as container:
        stream = container.streams.audio[0]
        native_sr = int(stream.codec_context.sample_rate or 0)
        if native_sr <= 0:
            raise DecodeError(f"{name}: audio stream has no sample rate", path=name, reason="not-audio")
        declared = _declared_duration(container, stream, source)
        if max_duration is not None and declared is not None and declared > max_duration + 0.5:
            raise DecodeError(
                f"{name}: audio is {declared:.1f} s long, more than the limit of {max_duration:g} s",
                path=name,
                reason="too-long",
            )
        sink = _Sink(native_sr, native_sr if sr is None else int(sr), mono, keep)
        n_native = _decode(container, stream, sink, offset, duration, max_duration, name, declared)

    y = sink.result()
    if n_native == 0 or (keep and y.shape[-1] == 0):
        raise DecodeError(f"{name}: decoded to zero samples", path=name, reason="zero-length")
    if keep and duration is not None:  # native and resampled lengths are rounded: keep the span exact
        y = _exact_span(y, int(round(duration * sink.sr_out)), sink.n_switches)
    if declared is not None and offset == 0 and duration is None:
        _check_complete(sink.seconds, declared, name, path=name)
    return _finite(y), sink.seconds


def _exact_span(y, want: int, slack: int):
    """``y`` cut to ``want`` samples; up to ``slack`` samples short (one lost to rounding at each
    resampled piece's boundary) are padded with zeros."""
    if 0 < want - y.shape[-1] <= slack:
        y = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, want - y.shape[-1])])
    return y[..., :want]


def _check_complete(got: float, declared: float, name: str, path: str | None = None) -> None:
    """The truncation policy: a clean end short of 0.9 × declared − 1 s is a truncated file."""
    if got < 0.9 * declared - 1.0:
        raise DecodeError(
            f"{name}: truncated: decoded {got:.1f} s of a declared {declared:.1f} s", path=path, reason="truncated"
        )


def _finite(y):
    """NaN and ±inf samples (a broken decoder's) as silence."""
    # a sum over a NaN or an inf is not finite (a finite sum proves them all finite, without the
    # boolean array of a full isfinite; a sum that overflows only sends us to the exact test)
    if not np.isfinite(y.sum(dtype=np.float32)) and not np.all(np.isfinite(y)):
        y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    return y


#: FFmpeg demuxers of raw elementary streams: their duration is a guess from the first frames' bitrate.
_GUESSED_DURATION = frozenset({"aac", "ac3", "eac3", "dts", "loas", "truehd", "mlp"})


def _declared_duration(container, stream, source: Source) -> float | None:
    """The length the container states, in seconds; None when it states none, or only a guess.

    FFmpeg guesses the length of raw ADTS/AAC, AC-3 or DTS, and of MPEG audio without a
    Xing/Info/VBRI header, from the bitrate of the first frames: a quiet intro made a 22-s file
    "declare" 200-400 s, refused as truncated (and as too long by ``max_duration``). Such files
    are judged by what they decode to, as a cut Ogg file is.
    """
    fmt = container.format.name
    if fmt in _GUESSED_DURATION or (fmt == "mp3" and not _has_mpeg_length_header(source)):
        return None
    if stream.duration is not None and stream.time_base is not None:
        d = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        d = container.duration / 1_000_000
    else:
        return None
    if fmt == "wav":  # FFmpeg's length of a WAV is what the file's size allows: a cut file "declares" its cut
        d = max(d, _wav_data_seconds(source) or 0.0)
    return d if d > 0 else None


#: Data sizes a WAV writer puts in its header before it knows the length (a stream, a pipe): not a length.
_WAV_PLACEHOLDER = 0x7FFFF000


def _wav_data_seconds(source: Source) -> float | None:
    """Seconds of audio a RIFF/WAVE header's ``data`` chunk declares (its size over the byte rate).

    None when the file is not RIFF/WAVE, the ``data`` chunk is not in the first 64 KB, or its size
    is a placeholder (0, or near 2 or 4 GB: written before the length was known).
    """
    head = _read_at(source, 0, 65536)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"fmt " and pos + 20 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")  # after format tag, channels, rate
        elif cid == b"data":
            if size == 0 or size >= _WAV_PLACEHOLDER or byte_rate <= 0:
                return None
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return None


def _has_mpeg_length_header(source: Source) -> bool:
    """True when the first MPEG audio frame (after an ID3v2 tag) is a Xing, Info or VBRI header."""
    head = _read_at(source, 0, 10)
    skip = 0
    if len(head) == 10 and head[:3] == b"ID3":  # syncsafe size, plus a footer when flagged
        skip = 10 + (head[6] & 0x7F) * 2**21 + (head[7] & 0x7F) * 2**14 + (head[8] & 0x7F) * 2**7 + (head[9] & 0x7F)
        skip += 10 if head[5] & 0x10 else 0
    data = _read_at(source, skip, 8192)
    i = data.find(b"\xff")
    while 0 <= i < len(data) - 1 and data[i + 1] & 0xE0 != 0xE0:  # the first frame sync
        i = data.find(b"\xff", i + 1)
    if i < 0:
        return False
    first = data[i : i + 64]
    return b"Xing" in first or b"Info" in first or first[36:40] == b"VBRI"


def _read_at(source: Source, offset: int, n: int) -> bytes:
    """Up to ``n`` bytes of ``source`` from ``offset`` (b"" when it cannot be read); a file object's
    position is kept."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                f.seek(offset)
                return f.read(n)
        if isinstance(source, (bytes, bytearray, memoryview)):
            return bytes(source[offset : offset + n])
        pos = source.tell()
        try:
            source.seek(offset)
            return source.read(n)
        finally:
            source.seek(pos)
    except (OSError, ValueError, AttributeError, TypeError):
        return b""


class _Sink:
    """Collects decoded native-rate blocks: downmixes, then resamples as a stream.

    Streaming through :class:`soxr.ResampleStream` keeps peak memory at the
    output rate, whatever the length of the file. A stream whose rate changes
    mid-way (concatenated ADTS/AAC, say) is resampled in segments, one per
    input rate (:meth:`switch`), each of exactly ``round(n · sr_out / sr_in)``
    samples. With ``mono=False`` the first block's channel count is kept: a
    block with another count is mixed to mono (the mean) and copied to each.
    With ``keep=False`` samples are only counted.
    """

    def __init__(self, sr_in: int, sr_out: int, mono: bool, keep: bool = True):
        self.sr_in, self.sr_out, self.mono, self.keep = sr_in, sr_out, mono, keep
        self.blocks: list = []
        self.stream = None
        self.channels: int | None = None
        self.n_in = 0  # native samples of every segment
        self._seg_n_in = 0  # ... of the current segment
        self._seg_block = 0  # index in ``blocks`` where the current segment starts
        self._done_s = 0.0  # seconds of the finished segments
        self.n_switches = 0
        self.doubled = False  # the resampler is fed the sum of two channels, not their mean

    @property
    def seconds(self) -> float:
        """Seconds of audio received so far (all segments, each at its own rate)."""
        return self._done_s + self._seg_n_in / self.sr_in

    def add(self, chans) -> None:  # chans: one float32 array of n samples per channel
        import soxr

        if not self.keep:
            self.n_in += chans[0].shape[-1]
            self._seg_n_in += chans[0].shape[-1]
            return
        doubled = False
        if not self.mono:
            a = np.stack(chans)
            if self.channels is None:
                self.channels = a.shape[0]
            elif a.shape[0] != self.channels:  # the layout changed mid-stream
                a = np.repeat(a.mean(axis=0, dtype=np.float32)[None], self.channels, axis=0)
        elif len(chans) == 1:
            a = chans[0]
        elif len(chans) == 2:  # the common case, without the copy of a stack: twice the mean
            a = np.add(chans[0], chans[1])
            doubled = True
        else:
            a = np.stack(chans).mean(axis=0, dtype=np.float32)
        self.n_in += a.shape[-1]
        self._seg_n_in += a.shape[-1]
        if self.sr_in == self.sr_out:
            if doubled:
                a *= np.float32(0.5)
                self.blocks.append(a)  # a new array already
            else:
                self.blocks.append(np.array(a, dtype=np.float32, copy=True))
            return
        if self.stream is None:
            ch = 1 if a.ndim == 1 else a.shape[0]
            self.stream = soxr.ResampleStream(self.sr_in, self.sr_out, ch, dtype="float32", quality="HQ")
            # A stream that starts on a stereo block is fed the channels' sum and its output is
            # halved, on 1/4 to 1/2 as many samples: the same values as resampling the mean,
            # since soxr is linear and scaling by a power of two is exact in floating point.
            self.doubled = doubled
        if doubled != self.doubled:  # the layout changed mid-stream: feed the stream's scale (exact)
            a = a * np.float32(2.0 if self.doubled else 0.5)
        x = np.ascontiguousarray(a if a.ndim == 1 else a.T, dtype=np.float32)
        with stage("resample"):
            self._append(self.stream.resample_chunk(x))

    def _append(self, out) -> None:
        """Append a block of resampled output (halved when the stream is fed the channels' sum)."""
        if out.shape[0]:
            if self.doubled:
                out *= np.float32(0.5)
            self.blocks.append(out if out.ndim == 1 else out.T)

    def switch(self, sr_in: int) -> None:
        """The input rate changes to ``sr_in`` from the next block on."""
        self._finish_segment()
        self.sr_in = sr_in
        self.n_switches += 1

    def _finish_segment(self) -> None:
        if self.stream is not None:
            with stage("resample"):
                self._append(
                    self.stream.resample_chunk(
                        np.zeros((0,) if self.mono else (0, self.channels or 1), dtype=np.float32), last=True
                    )
                )
            self.stream = None
        seg = self.blocks[self._seg_block :]
        # soxr's stream may differ from round(n * ratio) by a sample: make the length exact
        want = int(round(self._seg_n_in * self.sr_out / self.sr_in))
        have = sum(b.shape[-1] for b in seg)
        if seg and have != want:
            y = np.concatenate(seg, axis=-1)[..., :want]
            if y.shape[-1] < want:
                y = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, want - y.shape[-1])])
            self.blocks[self._seg_block :] = [y]
        self._done_s += self._seg_n_in / self.sr_in
        self._seg_n_in = 0
        self._seg_block = len(self.blocks)

    def result(self):
        self._finish_segment()
        if not self.blocks:
            return np.zeros(0, dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(self.blocks, axis=-1), dtype=np.float32)


def _decode(container, stream, sink: _Sink, offset, duration, max_duration, name, declared=None) -> int:
    """Decode frames of ``[offset, offset+duration)`` into ``sink``; return native samples kept.

    An FFmpeg error once the ``declared`` length (seconds) has been decoded is
    trailing junk after the audio (a broken tagger, a padded download), not a
    truncation: the audio is kept.

    The per-frame Python work is kept to a minimum (decoders such as Vorbis
    emit frames of a few hundred samples, so it is paid tens of thousands of
    times per track): each frame goes into an :class:`av.AudioFifo` (a copy in
    C), and the FIFO is read in blocks of ``_BLOCK`` samples, which are
    converted to float32, trimmed and handed to the sink with numpy.
    """
    import av

    native_sr = sink.sr_in
    start = int(round(offset * native_sr))
    stop = None
    if duration is not None:  # enough native samples for round(duration * sr_out) resampled ones
        want = int(round(duration * sink.sr_out))
        stop = start + max(int(round(duration * native_sr)), math.ceil(want * native_sr / sink.sr_out))
    limit = None if max_duration is None else int(round(max_duration * native_sr)) + native_sr // 2
    if start > 0 and stream.time_base is not None:
        frames, pos = _seek(container, stream, offset, start, native_sr, name)
    else:
        frames, pos = _frames(container, stream), 0  # pos: native-rate index of the next decoded sample
    blocks = _Blocks(sink, name)
    try:
        for frame in frames:
            if blocks.first is None:
                blocks.first = pos
                if frame.sample_rate != native_sr:  # the header said otherwise: trust the frames
                    r = frame.sample_rate / native_sr
                    start, pos = int(round(start * r)), int(round(pos * r))
                    stop = None if stop is None else int(round(stop * r))
                    limit = None if limit is None else int(round(limit * r))
                    native_sr, blocks.first = frame.sample_rate, pos
                    sink.switch(native_sr)
            pos += frame.samples
            try:
                blocks.write(frame, start, stop)
            except _RateChange:  # resample the rest from the new rate; positions follow in seconds
                blocks.flush(start, stop)
                r = frame.sample_rate / native_sr
                before = int(round((pos - frame.samples) * r))
                start = int(round(start * r))
                stop = None if stop is None else int(round(stop * r))
                limit = None if limit is None else int(round(limit * r))
                native_sr = frame.sample_rate
                sink.switch(native_sr)
                pos, blocks.first = before + frame.samples, before
                blocks.write(frame, start, stop)
            if limit is not None and pos - start > limit:
                raise DecodeError(
                    f"{name}: audio is longer than the limit of {max_duration:g} s",
                    path=name,
                    reason="too-long",
                )
            if stop is not None and pos >= stop:
                break
    except av.error.FFmpegError as exc:
        blocks.flush(start, stop)
        if sink.n_in and declared is not None and offset + sink.seconds >= declared - _END_SLACK_S:
            log.debug("%s: ignoring data after the declared %.2f s of audio (%s)", name, declared, exc)
            return sink.n_in
        if blocks.first is None:  # not one frame decoded (audio before ``offset`` counts as audio)
            raise DecodeError(
                f"{name}: not a readable audio file ({_ffmpeg_reason(exc)})", path=name, reason="not-audio"
            ) from exc
        at = sink.seconds if offset == 0 else pos / native_sr
        raise DecodeError(
            f"{name}: truncated or corrupt after {at:.1f} s ({_ffmpeg_reason(exc)})",
            path=name,
            reason="truncated",
        ) from exc
    blocks.flush(start, stop)
    return sink.n_in


def _frames(container, stream):
    """The decoded frames of ``stream`` from the demuxer's position on."""
    for packet in container.demux(stream):
        yield from packet.decode()


def _seek(container, stream, offset: float, start: int, sr: int, name: str):
    """Decoded frames from a point at or before native sample ``start``: ``(frames, index of the first)``.

    A frame's index is its pts relative to the stream's first decoded frame, whose pts is not 0
    everywhere (MP3's encoder delay, Opus's pre-skip, ASF's preroll: 25, 6.5, 93 ms — spans read
    that much late). The seek aims :data:`_PREROLL` s early: the first frames after a seek decode
    wrong (AAC's and MP3's overlap and bit reservoir, Opus's 80 ms) and are dropped with the rest
    before ``start``. A seek that lands after ``start`` (FFmpeg's Ogg demuxer with long Vorbis
    blocks) is retried 1, 2, 4 ... s earlier; a seek that fails, or whose first frame has no pts
    or does not decode, falls back to decoding from the start of the stream, as do raw streams
    (ADTS, AC-3...), whose pts after a seek are guessed from the bitrate.
    """
    import av

    tb = stream.time_base
    origin = None if container.format.name in _GUESSED_DURATION else _first_pts(container, stream)
    target = offset - _PREROLL
    while origin is not None and target > 0:
        try:
            container.seek(int(target / tb), stream=stream, backward=True)
            frames = _frames(container, stream)
            first = next(frames, None)
        except av.error.FFmpegError:
            break
        if first is None or first.pts is None:
            break
        pos = int(round(float((first.pts - origin) * tb) * sr))
        if pos <= start:
            return itertools.chain([first], frames), pos
        target = max(offset - 2 * max(offset - target, 0.5), 0.0)  # 1, 2, 4 ... s before offset
    if origin is None and container.format.name in _GUESSED_DURATION:
        return _frames(container, stream), 0  # nothing read yet: decode from here, the start
    try:
        container.seek(0)
    except av.error.FFmpegError as exc:  # e.g. FFmpeg's FLAC demuxer on a cut file holding no whole frame
        raise DecodeError(
            f"{name}: not a readable audio file (cannot seek to {offset:g} s, nor back to its start: "
            f"{_ffmpeg_reason(exc)})",
            path=name,
            reason="not-audio",
        ) from exc
    frames = _frames(container, stream)
    if origin is None:
        return frames, 0
    try:  # after a seek to 0 the start is not trimmed as on opening (Opus's pre-skip): pts tell
        first = next(frames, None)
    except av.error.FFmpegError as exc:
        return _raising(exc), 0  # the decode loop reports it
    if first is None or first.pts is None:
        return itertools.chain([first] if first is not None else [], frames), 0
    return itertools.chain([first], frames), int(round(float((first.pts - origin) * tb) * sr))


def _raising(exc: BaseException):
    """Frames that are an error: ``exc`` raised where the decode loop reads the first one."""
    raise exc
    yield  # unreachable: makes this a generator


def _first_pts(container, stream):
    """The pts of the first frame a decode from the start gives (None if it gives none with a pts)."""
    import av

    try:
        for frame in _frames(container, stream):
            return frame.pts
    except av.error.FFmpegError:
        pass
    return None


def _new_fifo():
    import av

    return av.AudioFifo()


class _Blocks:
    """Decoded frames → an :class:`av.AudioFifo` → ``(channels, n)`` float32 blocks for the sink.

    ``first`` is the native-rate index of the first sample written; blocks are
    trimmed to ``[start, stop)`` in absolute sample indices.
    """

    def __init__(self, sink: _Sink, name: str):
        self.sink, self.name = sink, name
        self.fifo = None
        self.channels = 0  # of the frames in the FIFO
        self.first: int | None = None  # absolute index of the FIFO's first sample

    def write(self, frame, start: int, stop: int | None) -> None:
        # called once per decoded frame: no imports or repeated attribute look-ups here
        frame.pts = None  # the FIFO checks pts continuity otherwise; positions are counted here
        fifo = self.fifo
        channels = frame.layout.nb_channels
        if fifo is not None and channels != self.channels:
            # the stream changed its channel count mid-way; AudioFifo checks format and rate, not
            # the layout, and would copy the first frame's count of planes from this one
            if frame.sample_rate != self.sink.sr_in:
                raise _RateChange(self.sink.sr_in, frame.sample_rate)
            self.flush(start, stop)
            fifo = None
        if fifo is None:
            fifo = self.fifo = _new_fifo()
            self.channels = channels
        try:
            fifo.write(frame)
        except ValueError:  # the stream changed format/layout/rate mid-way: start a new FIFO
            if frame.sample_rate != self.sink.sr_in:  # the caller rescales positions and switches the sink
                raise _RateChange(self.sink.sr_in, frame.sample_rate) from None
            self.flush(start, stop)
            fifo = self.fifo = _new_fifo()
            self.channels = channels
            fifo.write(frame)
        if fifo.samples >= _BLOCK:
            self._drain(start, stop, _BLOCK)

    def flush(self, start: int, stop: int | None) -> None:
        if self.fifo is not None and self.fifo.samples:
            self._drain(start, stop, 0)
        self.fifo = None

    def _drain(self, start: int, stop: int | None, block: int) -> None:
        while self.fifo.samples and self.fifo.samples >= block:
            n = self.fifo.samples if block == 0 else block
            frame = self.fifo.read(n)
            lo = self.first
            self.first += n
            a, b = max(start - lo, 0), n if stop is None else min(stop - lo, n)
            if b <= a:
                continue
            self.sink.add([c[a:b] for c in self._float32(frame, np)])

    def _float32(self, frame, np) -> list:
        """One FIFO block as float32 arrays, one per channel.

        The buffers are read by count — one per channel for a planar format, one
        interleaved buffer for a packed one — never through ``frame.planes``, which
        counts pointers up to the first null one: with 8 or more channels it runs
        past the frame's pointer array and yields planes that do not exist (reading
        them crashes the process). The conversion to float32 is FFmpeg's own
        (integers scaled by a power of two, exact; ``u8`` centred on 128).
        """
        from av.audio.plane import AudioPlane

        fmt = frame.format
        kind = fmt.name.removesuffix("p")
        dtype = _SAMPLE_DTYPES.get(kind)
        n, ch = frame.samples, frame.layout.nb_channels
        if dtype is None or ch < 1:
            raise DecodeError(
                f"{self.name}: cannot read decoded frames of {ch} channels in sample format {fmt.name!r}",
                path=self.name,
                reason="not-audio",
            )
        if fmt.is_planar:
            return [_as_float32(np.frombuffer(AudioPlane(frame, i), dtype, n), kind, np) for i in range(ch)]
        x = _as_float32(np.frombuffer(AudioPlane(frame, 0), dtype, n * ch), kind, np).reshape(n, ch)
        return [x[:, i] for i in range(ch)]


#: numpy dtypes of FFmpeg's sample formats (planar or packed; native byte order).
_SAMPLE_DTYPES = {"u8": "=u1", "s16": "=i2", "s32": "=i4", "s64": "=i8", "flt": "=f4", "dbl": "=f8"}


def _as_float32(x, kind: str, np):
    """Samples of FFmpeg sample format ``kind`` as float32 in [-1, 1], as FFmpeg converts them."""
    if kind == "flt":
        return x
    y = x.astype(np.float32)
    if kind == "u8":
        y -= np.float32(128.0)
        y *= np.float32(1 / 128)
    elif kind != "dbl":
        y *= np.float32(2.0 ** (1 - 8 * x.itemsize))
    return y


class _RateChange(Exception):
    """A decoded frame arrived at another sample rate than the sink's (internal: ``_decode`` switches)."""


# --- chained Ogg ---------------------------------------------------------------------------------

_OGG_BOS = 0x02  # header_type flag: first page of a logical stream


def _ogg_chain_spans(f) -> list[tuple[int, int]]:
    """Byte spans ``[start, end)`` of the chains of the Ogg file ``f`` (seekable, at any position).

    Only page headers are read (27 bytes + the segment table per page). A
    chain starts at a run of beginning-of-stream pages that follows a
    non-BOS page (the BOS pages of multiplexed logical streams come together,
    so they stay in one chain). The walk stops at the first byte that is not a
    page header (garbage, a truncated last page): the rest belongs to the last
    chain, for the decoder to judge.
    """
    f.seek(0, io.SEEK_END)
    size = f.tell()
    starts = [0]
    o, prev_bos = 0, True
    while o + 27 <= size:
        f.seek(o)
        h = f.read(27 + 255)
        if len(h) < 27 or h[:4] != b"OggS":
            break
        n_seg = h[26]
        if len(h) < 27 + n_seg:
            break
        bos = bool(h[5] & _OGG_BOS)
        if bos and not prev_bos:
            starts.append(o)
        prev_bos = bos
        o += 27 + n_seg + sum(h[27 : 27 + n_seg])
    return [(a, b) for a, b in zip(starts, starts[1:] + [size])]


class _Chains:
    """The chains of a chained Ogg source: their byte spans and a way to read each one."""

    def __init__(self, f, spans: list[tuple[int, int]], close: bool):
        self.f, self.spans, self.close = f, spans, close

    def read(self, i: int) -> bytes:
        a, b = self.spans[i]
        self.f.seek(a)
        return self.f.read(b - a)

    def __len__(self) -> int:
        return len(self.spans)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.close:
            self.f.close()


def _ogg_chains(source: Source) -> _Chains | None:
    """The chains of ``source`` when it is an Ogg file with more than one chain, else None.

    Never raises: anything unreadable is left to the normal path's typed errors.
    """
    close = False
    try:
        if isinstance(source, (str, os.PathLike)):
            f = open(source, "rb", buffering=1 << 20)  # noqa: SIM115 - closed below or by _Chains
            close = True
        elif isinstance(source, (bytes, bytearray, memoryview)):
            f = io.BytesIO(source)  # shares the buffer of an immutable bytes object
        elif hasattr(source, "seekable") and source.seekable():
            f = source
        else:
            return None
        pos = f.tell()
        f.seek(0)
        if f.read(4) != b"OggS":
            spans = []
        else:
            spans = _ogg_chain_spans(f)
        if len(spans) > 1:
            return _Chains(f, spans, close)
        f.seek(pos)
    except (OSError, ValueError, TypeError):
        pass
    if close:
        f.close()
    return None


def _chain_name(name: str, i: int, n: int) -> str:
    return f"{name} (chain {i + 1} of {n})"


def _info_chained(chains: _Chains, name: str) -> AudioInfo:
    """:func:`info` of a chained Ogg: the first chain's rate, channels, codec and tags; the sum of the durations."""
    first, total = None, 0.0
    with chains:
        for i in range(len(chains)):
            try:
                part = info(_Named(chains.read(i), _chain_name(name, i, len(chains))))
            except DecodeError:
                if first is None:
                    raise
                break  # a later chain cut short or corrupt: info reads, load judges (reason "truncated")
            first = first or part
            if math.isfinite(part.duration_s):
                total += part.duration_s
    return AudioInfo(duration_s=total, sr=first.sr, channels=first.channels, codec=first.codec, tags=first.tags)


class _Named(io.BytesIO):
    """Bytes of one chain as a file object whose ``name`` says which chain (for messages)."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name


def _load_chained(chains: _Chains, name, sr, mono, offset, duration, max_duration, keep=True):
    """:func:`load` of a chained Ogg: each chain decoded alone, resampled to ``sr``, then joined.

    ``offset``/``duration`` are in seconds of the whole file; chains wholly
    before ``offset`` are skipped from their declared length without decoding.
    """
    parts: list = []
    state = {"elapsed": 0.0, "sr": None if sr is None else int(sr), "channels": None}
    end = None if duration is None else offset + duration
    with chains:
        for i in range(len(chains)):
            if end is not None and state["elapsed"] >= end:
                break
            cname = _chain_name(name, i, len(chains))
            try:
                y = _load_chain(chains.read(i), cname, state, mono, offset, end, max_duration, keep)
            except DecodeError as exc:
                if i > 0 and exc.reason in ("not-audio", "no-audio-stream"):  # audio before it: cut or corrupt
                    raise DecodeError(
                        f"{name}: truncated or corrupt after {state['elapsed']:.1f} s "
                        f"(chain {i + 1} of {len(chains)}: {str(exc).removeprefix(cname + ': ')})",
                        path=name,
                        reason="truncated",
                    ) from exc
                exc.path = name  # the file, whichever chain failed (the message names the chain)
                raise
            if y is not None:
                parts.append(y)
    if not parts:
        raise DecodeError(f"{name}: decoded to zero samples", path=name, reason="zero-length")
    y = np.concatenate(parts, axis=-1)
    if keep and end is not None:  # each chain's resampled length is rounded: keep the span exact
        y = _exact_span(y, int(round(duration * state["sr"])), len(parts) - 1)
    return np.ascontiguousarray(_finite(y), dtype=np.float32), state["elapsed"] - offset


def _load_chain(data: bytes, cname: str, state: dict, mono, offset, end, max_duration, keep=True):
    """Decode one chain into the output rate (``state`` carries the first chain's rate and channels
    and the seconds of audio before this chain); None when it holds nothing of the span."""
    elapsed = state["elapsed"]
    with _open(_Named(data, cname)) as container:
        stream = container.streams.audio[0]
        native_sr = int(stream.codec_context.sample_rate or 0)
        if native_sr <= 0:
            raise DecodeError(f"{cname}: audio stream has no sample rate", reason="not-audio")
        state["sr"] = state["sr"] or native_sr
        state["channels"] = state["channels"] or int(stream.codec_context.channels or 1)
        declared = _declared_duration(container, stream, data)
        if max_duration is not None and declared is not None and elapsed + declared > max_duration + 0.5:
            raise DecodeError(
                f"{cname}: audio is at least {elapsed + declared:.1f} s long, "
                f"more than the limit of {max_duration:g} s",
                reason="too-long",
            )
        if declared is not None and elapsed + declared <= offset:
            state["elapsed"] = elapsed + declared
            return None
        local_offset = max(offset - elapsed, 0.0)
        local_duration = None if end is None else end - max(offset, elapsed)
        limit = None if max_duration is None else max(max_duration - elapsed, 1e-3)
        sink = _Sink(native_sr, state["sr"], mono, keep)
        n_native = _decode(container, stream, sink, local_offset, local_duration, limit, cname, declared)
    state["elapsed"] = elapsed + local_offset + sink.seconds
    if n_native == 0:
        return None
    if declared is not None and local_offset == 0 and local_duration is None:
        _check_complete(sink.seconds, declared, cname)
    y = sink.result()
    if not mono and y.shape[0] != state["channels"]:
        y = np.repeat(y.mean(axis=0, dtype=np.float32)[None], state["channels"], axis=0)
    return y
