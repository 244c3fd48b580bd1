"""songmine.audio: every format decodes, spans are exact, bad files give typed errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import encode_av_frames

from songmine import audio
from songmine.errors import DecodeError, ParameterError


def encode_av(path: Path, y: np.ndarray, sr: int, codec: str, *, fmt: str | None = None, rate: int | None = None):
    """Encode mono float32 ``y`` with PyAV (FFmpeg's encoders) — how browsers and phones make files."""
    import av

    rate = rate or sr
    if rate != sr:
        import soxr

        y = soxr.resample(y, sr, rate).astype(np.float32)
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        fmt_name = stream.codec_context.codec.audio_formats[0].name
        frame_size = stream.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format=fmt_name, layout="mono", rate=rate)
        for i in range(0, len(y), frame_size):
            frame = av.AudioFrame.from_ndarray(y[None, i : i + frame_size], format="flt", layout="mono")
            frame.sample_rate = rate
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def dominant_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * sr / len(y))


FORMATS = [
    # (suffix, writer) — writer(path, y, sr)
    (".wav", lambda p, y, sr: sf.write(p, y, sr, subtype="PCM_16")),
    (".flac", lambda p, y, sr: sf.write(p, y, sr)),
    (".ogg", lambda p, y, sr: sf.write(p, y, sr, format="OGG", subtype="VORBIS")),
    (".mp3", lambda p, y, sr: encode_av(p, y, sr, "libmp3lame")),
    (".opus", lambda p, y, sr: encode_av(p, y, sr, "libopus", fmt="ogg", rate=48000)),
    (".webm", lambda p, y, sr: encode_av(p, y, sr, "libopus", fmt="webm", rate=48000)),
    (".m4a", lambda p, y, sr: encode_av(p, y, sr, "aac", fmt="ipod")),
]


@pytest.mark.parametrize("suffix,write", FORMATS, ids=[f[0] for f in FORMATS])
def test_every_format_decodes_to_the_same_tone(tmp_path, tone, suffix, write):
    sr = 44100
    y = tone(1000.0, sr, 3.0)
    path = tmp_path / f"tone{suffix}"
    write(path, y, sr)
    out = audio.load(path, sr=11025)
    assert out.dtype == np.float32 and out.ndim == 1
    # codecs add priming/padding of at most a few tens of ms
    assert abs(len(out) / 11025 - 3.0) < 0.1
    assert abs(dominant_hz(out[2000:-2000], 11025) - 1000.0) < 5.0
    assert 0.2 < np.sqrt(np.mean(out[2000:-2000] ** 2)) < 0.5  # 0.5-amplitude sine: rms 0.354


def test_lossless_decode_is_exact(tmp_path, rng):
    y = (rng.uniform(-0.5, 0.5, 22050) * 32767).round() / 32767
    sf.write(tmp_path / "x.flac", y.astype(np.float32), 22050, subtype="PCM_16")
    out = audio.load(tmp_path / "x.flac", sr=None)
    np.testing.assert_allclose(out, y, atol=1.5 / 32768)


def test_stereo_is_mixed_by_channel_mean(tmp_path):
    sr = 8000
    left = np.full(sr, 0.5, dtype=np.float32)
    right = np.full(sr, -0.25, dtype=np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], axis=1), sr, subtype="FLOAT")
    mono = audio.load(tmp_path / "s.wav", sr=None)
    np.testing.assert_allclose(mono, 0.125, atol=1e-6)
    both = audio.load(tmp_path / "s.wav", sr=None, mono=False)
    assert both.shape == (2, sr)


def test_resampling_keeps_frequency_and_length(tmp_path, tone):
    sf.write(tmp_path / "t.wav", tone(440.0, 48000, 2.0), 48000)
    y = audio.load(tmp_path / "t.wav", sr=11025)
    assert len(y) == 22050
    assert abs(dominant_hz(y, 11025) - 440.0) < 2.0


def test_offset_and_duration_read_the_exact_span(tmp_path, rng):
    sr = 22050
    y = rng.uniform(-0.5, 0.5, sr * 10).astype(np.float32)
    sf.write(tmp_path / "n.wav", y, sr, subtype="FLOAT")
    part = audio.load(tmp_path / "n.wav", sr=None, offset=3.5, duration=2.0)
    np.testing.assert_array_equal(part, y[int(3.5 * sr) : int(5.5 * sr)])
    tail = audio.load(tmp_path / "n.wav", sr=None, offset=9.0)
    np.testing.assert_array_equal(tail, y[9 * sr :])


@pytest.mark.parametrize("native,out", [(176400, 22050), (8000, 22050), (44100, 11025), (48000, 44100)])
def test_span_has_its_exact_length_at_any_rate(tmp_path, rng, native, out):
    # the span's native samples were rounded, then their resampled count: one sample off, or more
    # when upsampling (0.309 s at 176.4 kHz read at 22,050 Hz gave 6,814 samples, not 6,813)
    sf.write(tmp_path / "n.wav", rng.uniform(-0.5, 0.5, 2 * native).astype(np.float32), native, subtype="FLOAT")
    for offset, duration in [(0.838, 0.309), (0.1, 0.0123), (1.0, 0.4567), (0.0, 1.2345)]:
        part = audio.load(tmp_path / "n.wav", sr=out, offset=offset, duration=duration)
        assert part.shape == (round(duration * out),), (offset, duration)


def test_span_of_a_flac_cut_inside_its_first_frame(tmp_path, rng):
    # FFmpeg's FLAC demuxer refuses to seek in a file cut before its first whole frame, then
    # refuses a seek back to 0 too: an untyped PermissionError escaped
    sr = 16000
    y = (rng.normal(0, 0.1, (4 * sr, 2)) * 32768).round().clip(-32768, 32767).astype(np.int16)
    sf.write(tmp_path / "full.flac", y, sr)
    data = (tmp_path / "full.flac").read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 25])
    for kwargs in ({}, {"offset": 0.1, "duration": 0.05}, {"offset": 3.5}):
        with pytest.raises(DecodeError) as exc:
            audio.load(cut, sr=None, **kwargs)
        assert _reason(exc) == "not-audio", kwargs
    part = audio.load(tmp_path / "full.flac", sr=None, mono=False, offset=0.1, duration=0.05)
    np.testing.assert_array_equal(part, y[1600:2400].T / np.float32(32768))


def test_span_of_a_compressed_file_is_aligned(tmp_path, synth_music):
    sr = 22050
    y = synth_music(sr, 12.0, seed=3)
    sf.write(tmp_path / "m.ogg", y, sr, format="OGG", subtype="VORBIS")
    full = audio.load(tmp_path / "m.ogg", sr=None)
    part = audio.load(tmp_path / "m.ogg", sr=None, offset=6.0, duration=3.0)
    assert len(part) == 3 * sr
    ref = full[6 * sr : 9 * sr]
    lags = range(-200, 201)
    corr = [np.dot(ref[300:-300], part[300 + k : len(ref) - 300 + k]) for k in lags]
    assert abs(list(lags)[int(np.argmax(corr))]) <= 2


SPAN_FORMATS = [
    # (id, writer(path, y, sr), suffix, lag allowed in samples at 22,050 Hz)
    ("mp3-lame", lambda p, y, sr: encode_av(p, y, sr, "libmp3lame"), ".mp3", 2),  # first pts: the 25-ms delay
    ("opus-ogg", lambda p, y, sr: encode_av(p, y, sr, "libopus", fmt="ogg", rate=48000), ".opus", 2),  # pre-skip
    ("aac-m4a", lambda p, y, sr: encode_av(p, y, sr, "aac", fmt="ipod"), ".m4a", 2),
    ("aac-adts", lambda p, y, sr: encode_av(p, y, sr, "aac", fmt="adts"), ".aac", 2),
    (
        "aac-adts-16k-stereo",
        lambda p, y, sr: encode_av_frames(p, np.stack([soxr.resample(y, sr, 16000)] * 2), 16000, "aac", fmt="adts"),
        ".aac",
        2,
    ),  # pts guessed
    (
        "vorbis-9ch-16k",
        lambda p, y, sr: sf.write(
            p, np.stack([soxr.resample(y, sr, 16000)] * 9, axis=1), 16000, format="OGG", subtype="VORBIS"
        ),
        ".ogg",
        2,
    ),  # seeks land late
    ("opus-webm", lambda p, y, sr: encode_av(p, y, sr, "libopus", fmt="webm", rate=48000), ".webm", 23),  # ms pts
    ("wma", lambda p, y, sr: encode_av_frames(p, y[None], sr, "wmav2", fmt="asf", bit_rate=128000), ".wma", 23),
]  # WMA: ms pts, a 93-ms first pts


@pytest.mark.parametrize("name,write,suffix,max_lag", SPAN_FORMATS, ids=[f[0] for f in SPAN_FORMATS])
def test_span_is_aligned_with_the_whole_decode(tmp_path, synth_music, name, write, suffix, max_lag):
    # a span's position came from its first frame's pts as if the stream's first pts were 0
    # (MP3 spans read 25 ms late), a seek landing after the target gave a late, short span, and
    # the pts after a seek in raw ADTS are guessed from the bitrate
    sr = 22050
    path = tmp_path / f"m{suffix}"
    write(path, synth_music(sr, 12.0, seed=3), sr)
    full = audio.load(path, sr=sr)
    for offset in (0.3, 1.2, 2.1, 6.3):
        part = audio.load(path, sr=sr, offset=offset, duration=3.0)
        assert part.shape == (3 * sr,), offset
        ref = full[int(offset * sr) : int((offset + 3.0) * sr)]
        lags = np.arange(-3000, 3001)
        core = ref[3000:-3000]
        corr = [np.dot(core, part[3000 + k : 3000 + k + core.size]) for k in lags]
        lag = int(lags[int(np.argmax(corr))])
        assert abs(lag) <= max_lag, (offset, lag)


EXACT_SPAN_FORMATS = [
    ("mp3", lambda p, y, sr: encode_av_frames(p, y, sr, "libmp3lame", fmt="mp3")),  # bit reservoir
    ("opus", lambda p, y, sr: encode_av_frames(p, y, sr, "libopus", fmt="ogg")),  # 80-ms pre-roll, pre-skip
    ("vorbis", lambda p, y, sr: sf.write(p, y.T, sr, format="OGG", subtype="VORBIS")),
    ("adts", lambda p, y, sr: encode_av_frames(p, y, sr, "aac", fmt="adts", options={"aac_pns": "0"})),
    ("flac", lambda p, y, sr: sf.write(p, y.T, sr)),
]


@pytest.mark.parametrize("name,write", EXACT_SPAN_FORMATS, ids=[f[0] for f in EXACT_SPAN_FORMATS])
def test_span_holds_the_samples_of_the_whole_decode(tmp_path, rng, name, write):
    # at the native rate a span is the whole decode's samples: the decoder is warmed up before the
    # span (the first frames after a seek decode wrong), positions come from pts relative to the
    # first frame (Opus's pre-skip), and raw ADTS, whose pts after a seek are guessed, is not sought
    sr = 16000 if name == "adts" else 48000
    t = np.arange(4 * sr) / sr
    y = np.stack([0.3 * np.sin(2 * np.pi * (300 * t + 40 * t * t)), 0.3 * np.sin(2 * np.pi * (500 * t - 30 * t * t))])
    y = (y + 0.02 * rng.standard_normal(y.shape)).astype(np.float32)
    path = tmp_path / f"s.{name}"
    write(path, y, sr)
    full = audio.load(path, sr=None, mono=False)
    rate = audio.info(path).sr
    for offset in (0.1, 0.3, 0.77, 1.5, 2.9):
        part = audio.load(path, sr=None, mono=False, offset=offset, duration=0.5)
        a = int(round(offset * rate))
        np.testing.assert_allclose(part, full[:, a : a + part.shape[1]], atol=1e-6, err_msg=f"{name} at {offset} s")


def test_silence_is_valid_audio(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(8000, dtype=np.float32), 8000)
    y = audio.load(tmp_path / "silence.wav", sr=11025)
    assert len(y) == 11025 and not np.any(y)


def test_bytes_and_file_objects(tmp_path, tone):
    sf.write(tmp_path / "t.flac", tone(440.0, 22050, 1.0), 22050)
    data = (tmp_path / "t.flac").read_bytes()
    a = audio.load(data, sr=11025)
    b = audio.load(io.BytesIO(data), sr=11025)
    c = audio.load(tmp_path / "t.flac", sr=11025)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(b, c)


def test_info_reads_container_without_decoding(tmp_path, tone):
    sf.write(tmp_path / "t.flac", np.stack([tone(440, 32000, 2.5)] * 2, axis=1), 32000)
    meta = audio.info(tmp_path / "t.flac")
    assert meta.sr == 32000 and meta.channels == 2 and meta.codec == "flac"
    assert abs(meta.duration_s - 2.5) < 1e-3


class _Counting(io.BytesIO):
    """A file object that remembers how far into it anyone has read."""

    furthest = 0

    def read(self, n=-1):
        out = super().read(n)
        self.furthest = max(self.furthest, self.tell())
        return out

    def readinto(self, b):
        n = super().readinto(b)
        self.furthest = max(self.furthest, self.tell())
        return n


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("RF64", "PCM_24"), ("AIFF", "PCM_16")])
def test_pcm_containers_open_by_their_header_alone(rng, fmt, subtype):
    """FFmpeg's stream probe would read (and decode) 5 s of a WAV/AIFF file at open to learn what
    its header says: 10 s of audio cost 7 ms of CPU there, against 2 ms for the whole decode."""
    y = (0.3 * rng.standard_normal(22050 * 10)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, y, 22050, format=fmt, subtype=subtype)
    f = _Counting(buf.getvalue())
    meta = audio.info(f)
    assert meta.sr == 22050 and abs(meta.duration_s - 10.0) < 1e-3 and meta.codec.startswith("pcm_")
    assert f.furthest < 128 * 1024, f"opening read {f.furthest} bytes of a {len(buf.getvalue())}-byte file"
    f.seek(0)
    want, _ = sf.read(io.BytesIO(buf.getvalue()), dtype="float32")
    np.testing.assert_array_equal(audio.load(f, sr=None), want)  # every sample, exactly


def test_a_compressed_codec_in_a_wav_file_is_probed_as_usual(tmp_path, tone):
    """A WAVE header may wrap MP3 (or ADPCM): those get FFmpeg's full probe, and decode."""
    path = tmp_path / "mp3.wav"
    encode_av(path, tone(440.0, 22050, 3.0), 22050, "libmp3lame", fmt="wav")
    assert audio.info(path).codec.startswith("mp3")
    y = audio.load(path, sr=22050)
    assert abs(len(y) / 22050 - 3.0) < 0.1 and abs(dominant_hz(y, 22050) - 440.0) < 5


def test_a_wav_header_no_decoder_takes_is_refused_as_not_audio(tmp_path):
    """A PCM header with 0 bits a sample (and 0 bytes a second) at 34 Hz: FFmpeg opens the stream but
    has no decoder for it. Read by its header alone, it is refused like any other file that is not audio."""
    head = b"RIFF\xf0\x04\x02\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x22\x00\x00\x00" + bytes(8)
    body = head + b"data\xcc\x04\x02\x00" + np.arange(66_000, dtype="<i2").tobytes()
    path = tmp_path / "zero-bits.wav"
    path.write_bytes(body)
    for source in (path, body, io.BytesIO(body)):
        for read in (audio.info, lambda s: audio.load(s, sr=11025)):
            with pytest.raises(DecodeError, match="not a readable audio file") as err:
                read(source)
            assert err.value.reason == "not-audio"


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("channels", [1, 2])
def test_samples_convert_to_float_exactly_as_ffmpeg_does(tmp_path, rng, subtype, channels):
    """Integer and packed samples are turned into float32 with numpy: the same values, bit for bit,
    as FFmpeg's own conversion (swresample)."""
    import av

    y = (0.4 * rng.standard_normal((4000, channels))).astype(np.float32)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, y, 8000, subtype=subtype)
    planes = []
    with av.open(str(path)) as c:
        to_fltp = av.AudioResampler(format="fltp")
        for frame in c.decode(audio=0):
            frame.pts = None
            planes += [f.to_ndarray() for f in to_fltp.resample(frame)]
        planes += [f.to_ndarray() for f in to_fltp.resample(None)]
    want = np.concatenate(planes, axis=1)
    np.testing.assert_array_equal(audio.load(path, sr=None, mono=False), want)


# --- bad input: typed errors naming the file and the reason ------------------------------


def _reason(exc_info) -> str:
    return exc_info.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(DecodeError, match="no such file") as e:
        audio.load(tmp_path / "nope.mp3", sr=11025)
    assert _reason(e) == "missing" and "nope.mp3" in str(e.value)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty") as e:
        audio.load(tmp_path / "empty.mp3", sr=11025)
    assert _reason(e) == "empty"
    with pytest.raises(DecodeError, match="empty"):
        audio.load(b"", sr=11025)


def test_text_file_named_mp3(tmp_path):
    (tmp_path / "notes.mp3").write_text("these are not the songs you are looking for\n" * 50)
    with pytest.raises(DecodeError) as e:
        audio.load(tmp_path / "notes.mp3", sr=11025)
    assert _reason(e) == "not-audio" and "notes.mp3" in str(e.value)


@pytest.mark.parametrize("suffix", sorted(audio.AUDIO_EXTENSIONS))
def test_info_refuses_text_and_noise_named_as_audio(tmp_path, suffix):
    # FFmpeg's probe trusts the name: text or noise named .flac/.mp3/.aac came back from info() as
    # an audio stream of 0 Hz and 0 channels (load refused them; scan without decoding listed them)
    from songmine.library import scan

    g = np.random.default_rng(sum(map(ord, suffix)))
    files = {
        "text": b"these are not the songs you are looking for\n" * 50,
        "noise": g.integers(0, 256, 150_000, dtype=np.uint8).tobytes(),
    }
    for kind, data in files.items():
        path = tmp_path / f"{kind}{suffix}"
        path.write_bytes(data)
        with pytest.raises(DecodeError) as e:
            audio.info(path)
        assert _reason(e) in {"not-audio", "no-audio-stream"}, (kind, suffix)
        (row,) = scan([path], decode=False)
        assert row.error and row.sr is None, (kind, suffix)


def test_random_bytes_are_not_audio(rng):
    with pytest.raises(DecodeError) as e:
        audio.load(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(), sr=11025)
    assert _reason(e) in {"not-audio", "zero-length", "truncated"}


def test_file_with_only_video_has_no_audio_stream(tmp_path):
    # a 2-frame 2x2 YUV4MPEG stream: valid media, no audio
    frame = b"FRAME\n" + bytes(6)
    (tmp_path / "video.y4m").write_bytes(b"YUV4MPEG2 W2 H2 F25:1 Ip A1:1 C420jpeg\n" + frame * 2)
    with pytest.raises(DecodeError) as e:
        audio.load(tmp_path / "video.y4m", sr=11025)
    assert _reason(e) == "no-audio-stream"


def test_damaged_header_is_not_a_permission_error(tmp_path, tone):
    # FFmpeg's ASF demuxer answers a header cut short with EPERM, which PyAV raises as a
    # PermissionError: it was reported as "permission denied" (reason "missing")
    encode_av_frames(tmp_path / "a.wma", tone(440, 16000, 1.0)[None], 16000, "wmav2", fmt="asf", bit_rate=64000)
    data = (tmp_path / "a.wma").read_bytes()
    reasons = []
    for n in range(100, 1000, 3):
        (tmp_path / "cut.wma").write_bytes(data[:n])
        try:
            audio.info(tmp_path / "cut.wma")
        except DecodeError as exc:
            reasons.append(exc.reason)
    assert "missing" not in reasons and "not-audio" in reasons


def test_audio_stream_of_an_unknown_codec(tmp_path, tone):
    # an M4A whose sample entry and decoder config name no codec FFmpeg knows: PyAV gives the
    # stream no codec context, and info/load failed on None with an AttributeError
    encode_av(tmp_path / "a.m4a", tone(440, 32000, 1.0), 32000, "aac", fmt="ipod")
    data = bytearray((tmp_path / "a.m4a").read_bytes())
    k = data.index(b"\x04", data.index(b"esds") + 8) + 1  # DecoderConfigDescriptor: length, then the object type
    while data[k] & 0x80:
        k += 1
    data[k + 1] = 0xFE
    (tmp_path / "x.m4a").write_bytes(bytes(data).replace(b"mp4a", b"zzzz"))
    for call in (audio.info, lambda p: audio.load(p, sr=11025)):
        with pytest.raises(DecodeError) as e:
            call(tmp_path / "x.m4a")
        assert _reason(e) == "not-audio"


def test_zero_length_audio(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(DecodeError) as e:
        audio.load(tmp_path / "zero.wav", sr=11025)
    assert _reason(e) == "zero-length"


def test_truncated_file(tmp_path, synth_music):
    sf.write(tmp_path / "full.flac", synth_music(22050, 10.0), 22050)
    data = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 3])  # STREAMINFO still says 10 s
    with pytest.raises(DecodeError, match="truncated") as e:
        audio.load(tmp_path / "cut.flac", sr=11025)
    assert _reason(e) == "truncated"


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_truncated_wav_is_refused(tmp_path, synth_music, keep):
    """A WAV cut short: FFmpeg takes its length from the file's size, the header's data chunk says more."""
    sf.write(tmp_path / "full.wav", synth_music(22050, 8.0), 22050, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: int(len(data) * keep)])
    for source in (tmp_path / "cut.wav", (tmp_path / "cut.wav").read_bytes()):
        with pytest.raises(DecodeError, match="truncated") as e:
            audio.load(source, sr=11025)
        assert _reason(e) == "truncated"
    # the whole file, and a header written before its length was known (a stream), still decode
    assert audio.load(tmp_path / "full.wav", sr=11025).size == 8 * 11025
    for placeholder in (0, 0xFFFFFFFF):
        streamed = bytearray(data)
        at = streamed.find(b"data")
        streamed[at + 4 : at + 8] = placeholder.to_bytes(4, "little")
        (tmp_path / "streamed.wav").write_bytes(streamed)
        assert audio.load(tmp_path / "streamed.wav", sr=11025).size == 8 * 11025, placeholder


def test_span_after_the_cut_of_a_truncated_file_is_truncated(tmp_path, rng):
    # an ADTS file whose last frame is cut short: read from past the cut, no sample was kept
    # before the decode error, and the file was called "not a readable audio file"
    encode_av(tmp_path / "a.aac", (0.3 * rng.standard_normal(3 * 44100)).astype(np.float32), 44100, "aac", fmt="adts")
    data = (tmp_path / "a.aac").read_bytes()
    (tmp_path / "cut.aac").write_bytes(data[: int(len(data) * 0.7) + 1])
    for kwargs in ({}, {"offset": 2.5}, {"offset": 1.0, "duration": 2.0}):
        with pytest.raises(DecodeError, match=r"truncated or corrupt after (1\.9|2\.0|2\.1) s") as e:
            audio.load(tmp_path / "cut.aac", sr=11025, **kwargs)
        assert _reason(e) == "truncated", kwargs


def test_too_long_is_refused_before_decoding(tmp_path):
    sf.write(tmp_path / "long.flac", np.zeros(8000 * 120, dtype=np.float32), 8000)
    with pytest.raises(DecodeError, match="limit of 60 s") as e:
        audio.load(tmp_path / "long.flac", sr=11025, max_duration=60)
    assert _reason(e) == "too-long"


@pytest.mark.parametrize(
    "kwargs", [{"sr": 0}, {"sr": -5}, {"sr": 11025, "offset": -1.0}, {"sr": 11025, "duration": 0.0}]
)
def test_bad_parameters(tmp_path, tone, kwargs):
    sf.write(tmp_path / "t.wav", tone(), 22050)
    with pytest.raises(ParameterError):
        audio.load(tmp_path / "t.wav", **kwargs)


# --- real music ------------------------------------------------------------------------------


@pytest.mark.corpus
def test_real_music_of_every_package_decodes(demo_corpus, demo_tracks):
    seen = {}
    for t in demo_tracks:
        seen.setdefault(t.package, t)
    assert len(seen) >= 4
    for t in seen.values():
        path = t.path(demo_corpus)
        meta = audio.info(path)
        assert abs(meta.duration_s - t.duration_s) < 0.5
        y = audio.load(path, sr=11025, offset=10.0, duration=5.0)
        assert len(y) == 5 * 11025 and np.isfinite(y).all()
        assert np.sqrt(np.mean(y**2)) > 1e-3, f"{path.name} decoded to near silence"


@pytest.mark.corpus
def test_real_cut_full_decode_matches_its_length(real_cuts):
    for p in real_cuts[:2]:
        y = audio.load(p, sr=11025)
        assert abs(len(y) / 11025 - 30.0) < 0.05


# --- chained Ogg ---------------------------------------------------------------------------------


def _chained_ogg(tmp_path, tone, parts):
    """``cat`` of Ogg files, one per (hz, sr, channels, seconds, subtype) — a chained Ogg stream."""
    data = b""
    for k, (hz, sr, channels, seconds, subtype) in enumerate(parts):
        y = tone(hz, sr, seconds)
        p = tmp_path / f"part{k}.ogg"
        sf.write(p, np.stack([y] * channels, axis=1) if channels > 1 else y, sr, format="OGG", subtype=subtype)
        data += p.read_bytes()
    path = tmp_path / "chained.ogg"
    path.write_bytes(data)
    return path


def test_chained_ogg_with_rate_and_channel_change_decodes_whole(tmp_path, tone):
    # 3 s stereo at 44.1 kHz then 2 s mono at 22.05 kHz: FFmpeg's demuxer stops at the second chain
    path = _chained_ogg(tmp_path, tone, [(440.0, 44100, 2, 3.0, "VORBIS"), (660.0, 22050, 1, 2.0, "VORBIS")])
    meta = audio.info(path)
    assert abs(meta.duration_s - 5.0) < 0.05 and meta.sr == 44100 and meta.channels == 2
    y = audio.load(path, sr=11025)
    assert abs(len(y) / 11025 - 5.0) < 0.05
    assert abs(dominant_hz(y[: 2 * 11025], 11025) - 440.0) < 2
    assert abs(dominant_hz(y[-int(1.5 * 11025) :], 11025) - 660.0) < 2  # the 2nd chain at the right pitch
    native = audio.load(path, sr=None, mono=False)  # the first chain's rate and channels
    assert native.shape[0] == 2 and abs(native.shape[1] / 44100 - 5.0) < 0.05
    assert np.allclose(native[0, -44100:], native[1, -44100:])  # the mono chain copied to both channels
    span = audio.load(path, sr=11025, offset=2.5, duration=1.0)  # across the chain boundary
    assert len(span) == 11025 and np.sqrt(np.mean(span[-4000:] ** 2)) > 0.1
    assert np.allclose(audio.load(path.read_bytes(), sr=11025), y)
    with open(path, "rb") as f:
        assert np.allclose(audio.load(f, sr=11025), y)


def test_chained_vorbis_then_opus(tmp_path, tone):
    y = tone(1000.0, 48000, 2.0)
    encode_av(tmp_path / "b.opus", y, 48000, "libopus", fmt="ogg")
    sf.write(tmp_path / "a.ogg", tone(500.0, 32000, 1.5), 32000, format="OGG", subtype="VORBIS")
    path = tmp_path / "mixed.ogg"
    path.write_bytes((tmp_path / "a.ogg").read_bytes() + (tmp_path / "b.opus").read_bytes())
    assert abs(audio.info(path).duration_s - 3.5) < 0.05
    out = audio.load(path, sr=16000)
    assert abs(len(out) / 16000 - 3.5) < 0.05
    assert abs(dominant_hz(out[-16000:], 16000) - 1000.0) < 3


def test_chained_ogg_cut_inside_a_later_chain_is_truncated(tmp_path, tone):
    path = _chained_ogg(tmp_path, tone, [(440.0, 44100, 1, 3.0, "VORBIS"), (660.0, 22050, 1, 2.0, "VORBIS")])
    first = (tmp_path / "part0.ogg").stat().st_size
    (tmp_path / "cut.ogg").write_bytes(path.read_bytes()[: first + 40])  # 2nd chain's headers cut
    with pytest.raises(DecodeError, match=r"truncated or corrupt after 3\.0 s \(chain 2 of 2") as e:
        audio.load(tmp_path / "cut.ogg", sr=11025)
    assert _reason(e) == "truncated" and e.value.path == str(tmp_path / "cut.ogg")
    assert abs(audio.info(tmp_path / "cut.ogg").duration_s - 3.0) < 0.05  # info reads what is there


def test_chained_ogg_max_duration_counts_every_chain(tmp_path, tone):
    path = _chained_ogg(tmp_path, tone, [(440.0, 44100, 1, 3.0, "VORBIS"), (660.0, 22050, 1, 3.0, "VORBIS")])
    with pytest.raises(DecodeError, match="limit of 4 s") as e:
        audio.load(path, sr=11025, max_duration=4)
    assert _reason(e) == "too-long"


def test_rate_change_inside_one_stream_is_resampled_not_misread(tmp_path, tone):
    # concatenated ADTS/AAC: one stream whose frames change from 44.1 to 22.05 kHz (read at the first
    # rate, the second part came out at half its length and twice its pitch)
    encode_av(tmp_path / "a.aac", tone(440.0, 44100, 3.0), 44100, "aac", fmt="adts")
    encode_av(tmp_path / "b.aac", tone(660.0, 22050, 2.0), 22050, "aac", fmt="adts")
    path = tmp_path / "joined.aac"
    path.write_bytes((tmp_path / "a.aac").read_bytes() + (tmp_path / "b.aac").read_bytes())
    y = audio.load(path, sr=11025)
    assert abs(len(y) / 11025 - 5.0) < 0.2  # + the AAC priming/padding of each part
    assert abs(dominant_hz(y[11025 : 2 * 11025], 11025) - 440.0) < 2
    assert abs(dominant_hz(y[-int(1.5 * 11025) :], 11025) - 660.0) < 2
    native = audio.load(path, sr=None)
    assert abs(len(native) / 44100 - 5.0) < 0.2
    span = audio.load(path, sr=11025, offset=2.5, duration=1.0)  # across the change
    assert len(span) == 11025
    assert abs(dominant_hz(span[-4000:], 11025) - 660.0) < 5


def _mpeg_frames(data: bytes, header: bool) -> bytes:
    """An MP3 file's frames without its ID3v2 tag, and without its Xing/Info frame unless ``header``."""
    if data[:3] == b"ID3":
        data = data[10 + (data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]) :]
    if header:
        return data
    k = data.index(b"\xff", data.index(b"Info"))  # the next frame's sync
    while data[k + 1] & 0xE0 != 0xE0:
        k = data.index(b"\xff", k + 1)
    return data[k:]


def test_a_length_guessed_from_the_bitrate_is_not_a_declared_length(tmp_path, rng):
    # FFmpeg guesses the length of raw ADTS, and of MP3 without a Xing header, from the first
    # frames' bitrate: after a quiet intro, 22-25 s of audio "declared" 200-400 s and were refused
    # as truncated, and by max_duration=60 as too long
    sr = 44100
    intro, loud = np.zeros(5 * sr, np.float32), (0.3 * rng.standard_normal(20 * sr)).astype(np.float32)
    encode_av(tmp_path / "q.aac", np.concatenate([intro, loud]), sr, "aac", fmt="adts")
    parts = []
    for y, rate in ((intro[: 2 * sr], 32000), (loud, 320000)):  # VBR without a Xing header in front
        encode_av_frames(tmp_path / "p.mp3", y[None], sr, "libmp3lame", fmt="mp3", bit_rate=rate)
        parts.append(_mpeg_frames((tmp_path / "p.mp3").read_bytes(), header=bool(parts)))
    (tmp_path / "q.mp3").write_bytes(b"".join(parts))
    for name, seconds in (("q.aac", 25.0), ("q.mp3", 22.0)):
        assert audio.info(tmp_path / name).duration_s > 150  # what FFmpeg guesses
        y = audio.load(tmp_path / name, sr=11025)
        assert abs(y.size / 11025 - seconds) < 0.2, name
        assert audio.load(tmp_path / name, sr=11025, max_duration=60).size == y.size
    (tmp_path / "cut.aac").write_bytes((tmp_path / "q.aac").read_bytes()[:-100_001])  # still refused: its last
    with pytest.raises(DecodeError) as e:  # frame is cut short (a cut between frames decodes as shorter audio)
        audio.load(tmp_path / "cut.aac", sr=11025)
    assert _reason(e) == "truncated"


def test_junk_after_the_audio_is_not_a_truncation(tmp_path, tone):
    sf.write(tmp_path / "a.mp3", tone(440.0, 44100, 3.0), 44100, format="MP3")
    data = (tmp_path / "a.mp3").read_bytes()
    (tmp_path / "junk.mp3").write_bytes(data + bytes(10))  # a tagger's or downloader's padding
    y = audio.load(tmp_path / "junk.mp3", sr=11025)
    assert np.array_equal(y, audio.load(tmp_path / "a.mp3", sr=11025))
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2] + bytes(10))  # junk after a cut: still refused
    with pytest.raises(DecodeError) as e:
        audio.load(tmp_path / "cut.mp3", sr=11025)
    assert _reason(e) == "truncated"


@pytest.mark.parametrize("layouts", [(2, 2, 2), (2, 1, 2), (1, 2, 1)])
def test_sink_resamples_the_exact_channel_mean(rng, layouts):
    """Stereo blocks are resampled as their sum and halved after: the very values of resampling the mean,
    also when the layout changes mid-stream (each block is brought to the stream's scale)."""
    import soxr

    from songmine.audio import _Sink

    blocks = [
        [rng.uniform(-1, 1, 40_000 + 999 * i).astype(np.float32) for _ in range(k)] for i, k in enumerate(layouts)
    ]
    sink = _Sink(44100, 11025, mono=True)
    for b in blocks:
        sink.add(b)
    y = sink.result()
    ref = soxr.ResampleStream(44100, 11025, 1, dtype="float32", quality="HQ")
    means = [b[0] if len(b) == 1 else (b[0] + b[1]) * np.float32(0.5) for b in blocks]
    out = np.concatenate(
        [ref.resample_chunk(m) for m in means] + [ref.resample_chunk(np.zeros(0, np.float32), last=True)]
    )
    want = round(sum(m.shape[0] for m in means) * 11025 / 44100)
    out = np.pad(out[:want], (0, max(want - out.shape[0], 0)))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, out)


# --- decoded_duration: load's whole decode, keeping no samples ---------------------------


def test_decoded_duration_is_what_load_decodes(tmp_path, tone, synth_music):
    sr = 22050
    paths = []
    for suffix, write in FORMATS:
        p = tmp_path / f"m{suffix}"
        write(p, synth_music(sr, 3.0, seed=1), sr)
        paths.append(p)
    paths.append(_chained_ogg(tmp_path, tone, [(440.0, 44100, 2, 1.5, "VORBIS"), (660.0, 22050, 1, 1.0, "VORBIS")]))
    for p in paths:
        y = audio.load(p, sr=None)
        rate = audio.info(p).sr
        assert abs(audio.decoded_duration(p) - y.shape[-1] / rate) < 1e-4, p  # chained: resampled, rounded
    cut = tmp_path / "cut.flac"
    cut.write_bytes((tmp_path / "m.flac").read_bytes()[:-20000])
    for call in (lambda: audio.load(cut, sr=None), lambda: audio.decoded_duration(cut)):
        with pytest.raises(DecodeError) as e:
            call()
        assert _reason(e) == "truncated"
    with pytest.raises(DecodeError) as e:
        audio.decoded_duration(tmp_path / "m.flac", max_duration=1.0)
    assert _reason(e) == "too-long"


_SCAN_PEAK = r"""
import json, sys
from songmine import library
def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
before = peak_mb()
(row,) = library.scan([sys.argv[1]], decode=True)
print(json.dumps({"duration": row.duration_s, "error": row.error, "grew_mb": peak_mb() - before}))
"""


@pytest.mark.slow
def test_scan_decodes_three_hours_of_silence_in_constant_memory(tmp_path):
    # 3 hours of 8-kHz silence is 270 KB of FLAC; `scan` decoded it into 345 MB of samples
    # (and a 3-hour 48-kHz Opus file into 2 GB) only to divide their count by the rate
    import json
    import subprocess
    import sys

    path = tmp_path / "silence-3h.flac"
    with sf.SoundFile(path, "w", 8000, 1, "PCM_16", format="FLAC") as f:
        for _ in range(180):  # one minute at a time
            f.write(np.zeros(60 * 8000, np.int16))
    assert path.stat().st_size < 1_000_000
    proc = subprocess.run([sys.executable, "-c", _SCAN_PEAK, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["error"] is None and out["duration"] == 3 * 3600.0
    assert out["grew_mb"] < 60, out
