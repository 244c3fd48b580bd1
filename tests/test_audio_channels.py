"""songmine.audio keeps every channel of 1–16-channel audio, packed or planar, in any layout.

Each file is decoded in a child process (``decode_in_child``): reading a plane that is not there
crashes the process, and a crash must fail the test, not end pytest.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import encode_av_frames, songmine_serve

SR = 48000
CHANNELS = list(range(1, 17))


def pcm16_noise(ch: int, n: int, seed: int) -> np.ndarray:
    """``(ch, n)`` float32 noise on the 16-bit grid: every lossless path reproduces it exactly."""
    g = np.random.default_rng(seed)
    return (np.round(g.normal(0, 0.1, (ch, n)) * 32768).clip(-32768, 32767) / 32768).astype(np.float32)


def tones(ch: int, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """One low tone per channel (50, 55, 60 ... Hz: below any codec's LFE cut-off), and their frequencies."""
    freqs = 50.0 + 5.0 * np.arange(ch)
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * freqs[:, None] * t)).astype(np.float32), freqs


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * sr / x.size)


ALAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1(back)", 8: "7.1(wide)"}

# (name, suffix, writer(path, y of shape (ch, n), sr), channel counts): how each sample format reaches the decoder
LOSSLESS = [
    # packed sample formats: s16, s32, flt, dbl, u8 — one interleaved buffer
    ("wav-pcm16", ".wav", lambda p, y, sr: sf.write(p, y.T, sr, subtype="PCM_16"), CHANNELS),
    ("wav-pcm24", ".wav", lambda p, y, sr: sf.write(p, y.T, sr, subtype="PCM_24"), [1, 2, 8, 9, 16]),
    ("wav-float", ".wav", lambda p, y, sr: sf.write(p, y.T, sr, subtype="FLOAT"), [1, 2, 8, 9, 16]),
    ("wav-double", ".wav", lambda p, y, sr: sf.write(p, y.T, sr, subtype="DOUBLE"), [1, 2, 8, 9, 16]),
    ("aiff-pcm16", ".aiff", lambda p, y, sr: sf.write(p, y.T, sr, subtype="PCM_16"), [1, 3, 8, 11, 16]),
    ("flac", ".flac", lambda p, y, sr: sf.write(p, y.T, sr), list(range(1, 9))),
    # planar sample formats: one buffer per channel (s16p from ALAC and WavPack)
    (
        "alac-m4a",
        ".m4a",
        lambda p, y, sr: encode_av_frames(
            p, y, sr, "alac", fmt="ipod", sample_fmt="s16p", layout=ALAC_LAYOUTS[y.shape[0]]
        ),
        list(range(1, 9)),
    ),
    (
        "wavpack-mka",
        ".mka",
        lambda p, y, sr: encode_av_frames(p, y, sr, "wavpack", fmt="matroska", sample_fmt="s16p"),
        CHANNELS,
    ),
]


@pytest.mark.parametrize("name,suffix,write,counts", LOSSLESS, ids=[c[0] for c in LOSSLESS])
def test_lossless_multichannel_decodes_exactly(tmp_path, decode_in_child, name, suffix, write, counts):
    n = 2205
    sources, jobs = {}, []
    for ch in counts:
        y = pcm16_noise(ch, n, seed=ch)  # each channel its own noise: order and identity are checked
        path = tmp_path / f"{ch}ch{suffix}"
        write(path, y, SR)
        sources[ch] = y
        jobs += [(path, {"sr": None, "mono": False}), (path, {"sr": None}), (path, {"sr": 8000, "mono": False})]
    out = decode_in_child(jobs)
    for k, ch in enumerate(counts):
        y = sources[ch]
        kept, mono, resampled = out[3 * k : 3 * k + 3]
        assert kept.shape == y.shape and kept.dtype == np.float32, (ch, kept.shape)
        np.testing.assert_array_equal(kept, y, err_msg=f"{name}, {ch} channels")
        np.testing.assert_allclose(mono, y.mean(axis=0), atol=1e-6, err_msg=f"{name}, {ch} channels")
        want = (ch, int(round(n * 8000 / SR)))
        assert resampled.shape == want, (ch, resampled.shape)
        assert np.isfinite(resampled).all()


LOSSY = [
    # planar float (fltp) from every multichannel lossy decoder; odd and unordered layouts
    (
        "opus-ogg",
        ".opus",
        lambda p, y, sr: encode_av_frames(
            p, y, sr, "libopus", fmt="ogg", options={"mapping_family": "255" if y.shape[0] > 2 else "0"}
        ),
        CHANNELS,
    ),
    (
        "opus-webm",
        ".webm",
        lambda p, y, sr: encode_av_frames(
            p, y, sr, "libopus", fmt="webm", options={"mapping_family": "255" if y.shape[0] > 2 else "0"}
        ),
        [8, 9, 16],
    ),
    ("vorbis-ogg", ".ogg", lambda p, y, sr: sf.write(p, y.T, sr, format="OGG", subtype="VORBIS"), CHANNELS),
    (
        "aac-m4a",
        ".m4a",
        lambda p, y, sr: encode_av_frames(p, y, sr, "aac", fmt="ipod", layout={6: "5.1", 8: "7.1"}.get(y.shape[0])),
        [1, 2, 6, 8],
    ),
]


@pytest.mark.parametrize("name,suffix,write,counts", LOSSY, ids=[c[0] for c in LOSSY])
def test_lossy_multichannel_keeps_every_channel(tmp_path, decode_in_child, name, suffix, write, counts):
    n = SR  # one second: tones 5 Hz apart are resolved
    sources, jobs = {}, []
    for ch in counts:
        y, freqs = tones(ch, n, SR)
        path = tmp_path / f"{ch}ch{suffix}"
        write(path, y, SR)
        sources[ch] = freqs
        jobs += [(path, {"sr": None, "mono": False}), (path, {"sr": 16000})]
    out = decode_in_child(jobs)
    for k, ch in enumerate(counts):
        kept, mono = out[2 * k : 2 * k + 2]
        assert kept.shape[0] == ch and abs(kept.shape[1] - n) <= 0.05 * n, (name, ch, kept.shape)
        assert kept.dtype == np.float32 and np.isfinite(kept).all()
        # decoders may reorder channels into FFmpeg's order: every tone is there, each once
        found = sorted(dominant_hz(c, SR) for c in kept)
        np.testing.assert_allclose(found, sources[ch], atol=1.5, err_msg=f"{name}, {ch} channels")
        assert mono.ndim == 1 and abs(mono.shape[0] - 16000) <= 800 and np.isfinite(mono).all()


@pytest.mark.parametrize("first,second", [(2, 1), (1, 2), (6, 2), (8, 1)])
def test_channel_count_change_inside_one_stream(tmp_path, decode_in_child, first, second):
    # concatenated ADTS/AAC at one rate whose channel count changes: the FIFO of decoded frames
    # keeps the first frame's count, so a frame with fewer planes was read past its pointers
    # (a crash) and one with more lost its extra channels from the mono mix
    n = SR
    a, _ = tones(first, 2 * n, SR)
    fb = 250.0 + 10.0 * np.arange(second)  # the second part's tones, apart from the first's
    b = (0.3 * np.sin(2 * np.pi * fb[:, None] * np.arange(n) / SR)).astype(np.float32)
    for name, y in (("a", a), ("b", b)):
        encode_av_frames(
            tmp_path / f"{name}.aac", y, SR, "aac", fmt="adts", layout={6: "5.1", 8: "7.1"}.get(y.shape[0])
        )
    path = tmp_path / "joined.aac"
    path.write_bytes((tmp_path / "a.aac").read_bytes() + (tmp_path / "b.aac").read_bytes())
    mono, kept = decode_in_child([(path, {"sr": None}), (path, {"sr": None, "mono": False})])
    assert mono.ndim == 1 and abs(mono.shape[0] - 3 * n) < 0.05 * 3 * n and np.isfinite(mono).all()
    assert kept.shape == (first, mono.shape[0]) and np.isfinite(kept).all()
    # every channel of the second part reaches the mix, at 1/second of its level
    tail = mono[-n // 2 :]
    spec = np.abs(np.fft.rfft(tail * np.hanning(tail.size))) / (tail.size / 4)
    level = [spec[int(round(f * tail.size / SR))] for f in fb]
    np.testing.assert_allclose(level, 0.3 / second, rtol=0.25)


@pytest.mark.slow
def test_eight_channel_audio_through_index_identify_scan_and_serve(tmp_path, synth_music):
    # the commands each ran in their own process; an 8-channel WAV killed every one (exit 139,
    # the server until restarted)
    import json
    import subprocess
    import sys

    import httpx

    songmine = [sys.executable, "-c", "import sys; from songmine.cli import main; sys.exit(main())"]
    lib = tmp_path / "lib"
    lib.mkdir()
    tracks = [synth_music(22050, 20.0, seed=k) for k in range(3)]
    for k, y in enumerate(tracks):
        sf.write(lib / f"t{k}.flac", y, 22050)
    sf.write(lib / "t1-8ch.wav", np.stack([tracks[1]] * 8, axis=1), 22050, subtype="PCM_16")
    query = tmp_path / "q8.wav"
    sf.write(query, np.stack([tracks[2][5 * 22050 : 12 * 22050]] * 8, axis=1), 22050, subtype="PCM_16")
    index = tmp_path / "ix"

    def run(*args):
        return subprocess.run([*songmine, *map(str, args)], capture_output=True, text=True, timeout=300)

    r = run("index", lib, "--index", index, "--jobs", "1", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["added"] == 4
    r = run("identify", query, "--index", index, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    (record,) = json.loads(r.stdout)
    assert record["matches"][0]["path"].endswith("t2.flac") and abs(record["matches"][0]["offset_s"] - 5.0) < 0.1
    r = run("scan", lib, query, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(row["channels"] for row in json.loads(r.stdout)) == [1, 1, 1, 8, 8]

    with songmine_serve(index) as (url, server):
        r = httpx.post(f"{url}/api/identify", files={"file": ("q8.wav", query.read_bytes(), "audio/wav")}, timeout=60)
        assert r.status_code == 200 and r.json()["matches"][0]["path"].endswith("t2.flac"), r.text
        assert httpx.get(f"{url}/api/tracks", timeout=10).json()["total"] == 4  # still serving
        assert server.poll() is None
