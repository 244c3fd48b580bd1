"""FMA-compatible features: shape, statistics, agreement with plain librosa per family, folders, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import need, require

from songmine.catalog import FEATURE_COLUMNS, load
from songmine.catalog.features import (
    N_FEATURES,
    decode,
    extract,
    extract_families,
    extract_folder,
    summarize,
    write_features_csv,
)
from songmine.catalog.librosa050 import _downsample, _estimate_tuning, _stft_magnitude
from songmine.errors import DecodeError, ParameterError

COL = {c: i for i, c in enumerate(FEATURE_COLUMNS)}


def _family_cols(family: str, stat: str) -> list[int]:
    return [i for c, i in COL.items() if c[0] == family and c[1] == stat]


# --------------------------------------------------------------------------- statistics and layout


def test_summarize_order_and_scipy_statistics(rng):
    from scipy import stats

    fams = {
        f: rng.standard_normal((d, 300))
        for f, d in {
            "chroma_cens": 12,
            "chroma_cqt": 12,
            "chroma_stft": 12,
            "mfcc": 20,
            "rmse": 1,
            "spectral_bandwidth": 1,
            "spectral_centroid": 1,
            "spectral_contrast": 7,
            "spectral_rolloff": 1,
            "tonnetz": 6,
            "zcr": 1,
        }.items()
    }
    fams["mfcc"][2] = 5.0  # a constant row: scipy 0.19 gave skew 0, kurtosis -3
    v = summarize(fams)
    assert v.shape == (N_FEATURES,) and v.dtype == np.float32
    m = fams["mfcc"]
    np.testing.assert_allclose(v[_family_cols("mfcc", "mean")], m.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v[_family_cols("mfcc", "std")], m.std(1), rtol=1e-5)
    np.testing.assert_allclose(v[_family_cols("mfcc", "median")], np.median(m, 1), rtol=1e-5)
    np.testing.assert_allclose(v[_family_cols("mfcc", "min")], m.min(1), rtol=1e-6)
    np.testing.assert_allclose(v[_family_cols("mfcc", "max")], m.max(1), rtol=1e-6)
    sk, ku = v[_family_cols("mfcc", "skew")], v[_family_cols("mfcc", "kurtosis")]
    rows = [i for i in range(20) if i != 2]
    np.testing.assert_allclose(sk[rows], stats.skew(m[rows], axis=1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ku[rows], stats.kurtosis(m[rows], axis=1), rtol=1e-4, atol=1e-6)
    assert sk[2] == 0.0 and ku[2] == -3.0
    assert v[COL[("zcr", "mean", "01")]] == pytest.approx(fams["zcr"].mean(), rel=1e-5, abs=1e-7)


def test_downsampling_is_resampys_kaiser_fast(rng):
    resampy = require("resampy")
    for n, factor in [(1001, 2), (44100, 2), (30011, 4)]:
        y = rng.standard_normal(n).astype(np.float32)
        ref = resampy.resample(y, 44100, 44100 / factor, filter="kaiser_fast")
        m = int(np.ceil(n / factor))
        ref = np.pad(ref, (0, m - len(ref))) * np.sqrt(factor)
        np.testing.assert_allclose(_downsample(y, factor, "kaiser_fast"), ref, atol=1e-5)


def test_downsampling_tails_into_digital_silence_are_resampys(rng):
    """Where music stops dead, resampy's time-domain sums leave a tail of values down to ~1e-30.

    FFT round-off (~1e-16 of the peak) used to swamp them; chroma's per-frame normalisation then
    turned that noise into full-size chroma_cens/tonnetz vectors in the frames after the music.
    Through six cascaded stages (the CQT's octaves) every tail value must keep resampy's digits.
    """
    resampy = require("resampy")
    y = np.zeros(40000, np.float32)
    y[5000:21000] = 0.3 * rng.standard_normal(16000).astype(np.float32)
    ours, ref = y, y
    smallest = 1.0
    for stage in range(6):
        ours = _downsample(ours, 2, "kaiser_fast")
        r = resampy.resample(ref, 2.0, 1.0, filter="kaiser_fast")
        ref = np.pad(r, (0, int(np.ceil(len(ref) / 2)) - len(r))) * np.float32(np.sqrt(2))
        nz = np.flatnonzero(ref)
        assert np.array_equal(np.flatnonzero(ours), nz), stage  # exact zeros exactly where resampy's are
        smallest = min(smallest, float(np.abs(ref[nz]).min()))
        faint = nz[np.abs(ref[nz]) < 1e-6]  # the tails: resampy's own digits, relatively
        np.testing.assert_allclose(ours[faint], ref[faint], rtol=1e-3, atol=0)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)  # the music (resampy sums in float32)
    assert smallest < 1e-20  # the far tail really is far below FFT round-off


def test_bad_arrays_and_files(tmp_path, tone):
    with pytest.raises(ParameterError, match="sr"):
        extract(tone())
    with pytest.raises(ParameterError, match="too short"):
        extract(np.zeros(1000, np.float32), sr=22050)
    y = tone()
    y[10] = np.nan
    with pytest.raises(ParameterError, match="finite"):
        extract(y, sr=22050)
    with pytest.raises(DecodeError):
        extract(tmp_path / "missing.flac")
    (tmp_path / "junk.mp3").write_bytes(b"not audio at all" * 10)
    with pytest.raises(DecodeError):
        extract(tmp_path / "junk.mp3")


def test_silence_and_a_tone_give_finite_features(tone):
    for y in (np.zeros(22050 * 3, np.float32), tone(440.0, 22050, 3.0)):
        v = extract(y, sr=22050)
        assert v.shape == (518,) and np.isfinite(v).all()
    v = extract(tone(440.0, 22050, 3.0), sr=22050)
    # a pure A4: chroma_stft and chroma_cqt peak on A (index 9 from C)
    means = v[_family_cols("chroma_cqt", "mean")]
    assert int(np.argmax(means)) == 9
    assert int(np.argmax(v[_family_cols("chroma_stft", "mean")])) == 9


# --------------------------------------------------------------------------- real music vs librosa


DATA = Path(__file__).parent / "data" / "features"


@pytest.mark.corpus
def test_real_cuts_match_librosa_050(real_cuts):
    """Every one of the 518 values of six real cuts equals what FMA's code computed on librosa 0.5.0."""
    ref = load(DATA / "librosa050_real_cuts.csv", "features", cache=False)
    by_name = {p.name: p for p in real_cuts}
    common = [t for t in ref.index if t in by_name]
    need(bool(common), "the reference cuts are not in this demo corpus")
    for tid in common:
        ours = extract(by_name[tid]).astype(np.float64)
        theirs = ref.loc[tid, list(FEATURE_COLUMNS)].to_numpy(np.float64)
        bad = ~np.isclose(ours, theirs, rtol=1e-3, atol=1e-4)
        assert not bad.any(), (tid, [(FEATURE_COLUMNS[i], ours[i], theirs[i]) for i in np.flatnonzero(bad)[:5]])


def test_decode_is_16_bit_pcm_like_librosa_050(tmp_path):
    """audioread handed librosa 0.5.0 16-bit PCM: float sources rounded and clipped, 24-bit truncated."""
    t = np.arange(4410) / 44100
    left = 1.3 * np.sin(2 * np.pi * 220 * t)  # overshoots full scale, as MP3 decoders do
    right = 1e-5 * np.sin(2 * np.pi * 330 * t)  # below one 16-bit step (3.05e-5)
    stereo = np.stack([left, right], axis=1).astype(np.float32)
    sf.write(tmp_path / "float.wav", stereo, 44100, subtype="FLOAT")
    y, sr = decode(tmp_path / "float.wav")
    q = np.clip(np.rint(stereo.astype(np.float64) * 32768), -32768, 32767) / 32768
    assert sr == 44100 and y.dtype == np.float32
    np.testing.assert_array_equal(y, q.mean(axis=1).astype(np.float32))
    assert y.max() < 0.5 and np.all(np.rint(y * 65536) == y * 65536)
    raw, _ = decode(tmp_path / "float.wav", pcm16=False)
    np.testing.assert_allclose(raw, stereo.mean(axis=1), rtol=1e-6)
    assert raw.max() > 0.6  # no clipping without pcm16
    ints = (np.sin(2 * np.pi * 220 * t) * (2**23 - 1)).astype(np.int64) * 256  # 24-bit samples, int32 scale
    sf.write(tmp_path / "deep.flac", ints.astype(np.int32), 44100, subtype="PCM_24")
    y24, _ = decode(tmp_path / "deep.flac")
    np.testing.assert_array_equal(y24, (np.floor(ints / 65536) / 32768).astype(np.float32))  # FFmpeg's >> 16


@pytest.mark.corpus
def test_decoder_ffmpeg_program_is_audioreads_path(tmp_path, demo_corpus, demo_tracks, monkeypatch):
    """``decoder="ffmpeg"`` pipes 16-bit PCM from the ffmpeg program, as audioread did for FMA's code.

    Another FFmpeg build than PyAV's may round the last float bit differently, so the two decoders
    may differ by one 16-bit step on a few samples — never more, and never in length or rate.
    """
    import shutil
    import subprocess

    need(shutil.which("ffmpeg") is not None, "no ffmpeg program on PATH (an optional decoder; make test installs it)")
    track = next((t for t in demo_tracks if Path(t.file).suffix.lower() in (".ogg", ".mp3")), None)
    need(track is not None, "no compressed track in the demo corpus")
    path = track.path(demo_corpus)
    y_cli, sr_cli = decode(path, decoder="ffmpeg")
    y_av, sr_av = decode(path)
    assert sr_cli == sr_av and len(y_cli) == len(y_av) and y_cli.dtype == np.float32
    steps = np.abs(y_cli.astype(np.float64) - y_av) * 65536  # half-steps: a stereo mean of 16-bit values
    assert steps.max() <= 2 and np.mean(steps > 0) < 0.01
    # the program's own s16le, channel-averaged exactly as librosa 0.5.0 did (int16 / 32768, then mean)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-"], capture_output=True, check=True
    ).stdout
    from songmine.audio import info

    q = np.frombuffer(raw, np.int16).reshape(-1, info(path).channels) / np.float32(32768)
    np.testing.assert_array_equal(y_cli, q.mean(axis=1, dtype=np.float32))
    # uncompressed files do not depend on the decoder; bad values and a missing program are clear errors
    sf.write(tmp_path / "a.wav", (0.1 * np.sin(np.arange(5000) / 7)).astype(np.float32), 22050)
    np.testing.assert_array_equal(decode(tmp_path / "a.wav", decoder="ffmpeg")[0], decode(tmp_path / "a.wav")[0])
    with pytest.raises(ParameterError, match="decoder"):
        decode(path, decoder="gstreamer")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DecodeError, match="ffmpeg program") as err:
        decode(path, decoder="ffmpeg")
    assert err.value.reason == "no-ffmpeg"


@pytest.fixture(scope="module")
def two_cuts(real_cuts):
    """Two real 30-s cuts at different native rates (one 22,050 Hz, one 44,100/48,000 Hz) when possible."""
    by_rate = {}
    for p in real_cuts:
        by_rate.setdefault(sf.info(str(p)).samplerate, p)
    chosen = sorted(by_rate.values(), key=lambda p: sf.info(str(p)).samplerate)
    return (chosen + real_cuts)[:2] if len(chosen) < 2 else [chosen[0], chosen[-1]]


@pytest.mark.corpus
@pytest.mark.slow
def test_real_cuts_match_plain_librosa_per_family(two_cuts):
    librosa = require("librosa")
    for path in two_cuts:
        y, sr = decode(path)
        ours = extract_families(y, sr)
        v = summarize(ours)
        assert v.shape == (518,) and v.dtype == np.float32 and np.isfinite(v).all()
        # the straightforward per-family librosa computation (today's librosa, 0.5.0 arguments)
        S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512, pad_mode="reflect"))
        tuning = librosa.estimate_tuning(S=S**2, sr=22050, bins_per_octave=12)
        mel = librosa.feature.melspectrogram(sr=sr, S=S**2)
        ref = {
            "zcr": librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512),
            "rmse": np.sqrt(np.mean(S**2, axis=0, keepdims=True)),
            "spectral_centroid": librosa.feature.spectral_centroid(S=S),
            "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=S),
            "spectral_rolloff": librosa.feature.spectral_rolloff(S=S),
            "spectral_contrast": librosa.feature.spectral_contrast(S=S, n_bands=6),
            "chroma_stft": librosa.feature.chroma_stft(S=S**2, n_chroma=12, tuning=tuning),
            "mfcc": librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=20),
        }
        for fam, r in ref.items():
            o = ours[fam]
            assert o.shape == r.shape, fam
            scale = np.abs(r).max()
            np.testing.assert_allclose(o, r, atol=2e-3 * scale, err_msg=f"{fam} of {path.name}")
        # the CQT families: today's CQT differs by a few % per bin (other filters and resampler);
        # the chroma built from it must still agree closely with ours
        C = np.abs(
            librosa.cqt(
                y, sr=sr, hop_length=512, bins_per_octave=12, n_bins=84, tuning=librosa.estimate_tuning(y=y, sr=sr)
            )
        )
        chroma_ref = librosa.feature.chroma_cqt(C=C, n_chroma=12, bins_per_octave=12)
        n = min(chroma_ref.shape[1], ours["chroma_cqt"].shape[1])
        assert abs(ours["chroma_cqt"].shape[1] - chroma_ref.shape[1]) <= 1
        r = np.corrcoef(ours["chroma_cqt"][:, :n].ravel(), chroma_ref[:, :n].ravel())[0, 1]
        assert r > 0.99, (path.name, r)
        np.testing.assert_allclose(ours["chroma_cqt"][:, :n].mean(1), chroma_ref[:, :n].mean(1), atol=0.05)
        # tonnetz is computed from chroma_cens, as in FMA's features.py
        np.testing.assert_allclose(ours["tonnetz"], librosa.feature.tonnetz(chroma=ours["chroma_cens"]), atol=1e-9)
        # both tuning estimates agree with librosa's piptrack-based estimator
        assert _estimate_tuning(_stft_magnitude(y) ** 2, 22050.0) == pytest.approx(tuning, abs=0.011)


# --------------------------------------------------------------------------- folders and the CLI


def _write_song(path: Path, synth, seconds: float = 3.0, sr: int = 22050, seed: int = 0, **tags) -> None:
    sf.write(str(path), synth(sr, seconds, seed), sr)
    if tags:
        from mutagen.flac import FLAC

        f = FLAC(str(path))
        for k, v in tags.items():
            f[k] = str(v)
        f.save()


def test_extract_folder_resumes_and_reports_bad_files(tmp_path, synth_music):
    a, b, bad = tmp_path / "a.flac", tmp_path / "b.flac", tmp_path / "bad.ogg"
    _write_song(a, synth_music, seed=1)
    _write_song(b, synth_music, seed=2)
    bad.write_bytes(b"OggS" + b"\x00" * 100)
    items = {"a.flac": str(a), "b.flac": str(b), "bad.ogg": str(bad)}
    calls = []
    df, failures = extract_folder({"a.flac": str(a)}, jobs=1, progress=lambda d, t: calls.append((d, t)))
    assert list(df.index) == ["a.flac"] and calls[-1] == (1, 1)
    df2, failures2 = extract_folder(items, jobs=1, resume_from=df)
    assert list(df2.index) == ["a.flac", "b.flac"]
    assert [f.track_id for f in failures2] == ["bad.ogg"] and "bad.ogg" in failures2[0].error
    assert set(df2.attrs["durations"]) == {"b.flac"}  # a.flac was not recomputed
    np.testing.assert_array_equal(df2.loc["a.flac"].to_numpy(), df.loc["a.flac"].to_numpy())
    np.testing.assert_allclose(df2.loc["b.flac"].to_numpy(), extract(b), rtol=1e-6)


def test_extract_folder_in_worker_processes_equals_one_process(tmp_path, synth_music):
    a, b, bad = tmp_path / "a.flac", tmp_path / "b.flac", tmp_path / "bad.ogg"
    _write_song(a, synth_music, seed=1)
    _write_song(b, synth_music, seed=2)
    bad.write_bytes(b"OggS" + b"\x00" * 100)
    items = {"a.flac": str(a), "b.flac": str(b), "bad.ogg": str(bad)}
    one, f1 = extract_folder(items, jobs=1)
    two, f2 = extract_folder(items, jobs=2)
    assert list(two.index) == list(one.index) == ["a.flac", "b.flac"]
    np.testing.assert_allclose(two.to_numpy(), one.to_numpy(), rtol=1e-5, atol=1e-7)  # (one BLAS thread per worker)
    assert [f.track_id for f in f2] == [f.track_id for f in f1] == ["bad.ogg"]


def test_features_csv_round_trip(tmp_path, synth_music):
    a = tmp_path / "a.flac"
    _write_song(a, synth_music)
    df, _ = extract_folder([a], jobs=1)
    out = tmp_path / "features.csv"
    write_features_csv(df, out)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("feature,chroma_cens,") and lines[1].startswith("statistics,kurtosis,")
    assert lines[2].startswith("number,01,02,") and lines[3].startswith("track_id,,")
    back = load(out, cache=False)
    assert list(back.columns) == list(FEATURE_COLUMNS) and back.shape == (1, 518)
    np.testing.assert_allclose(back.to_numpy(), df.to_numpy(), rtol=1e-9)


def test_cli_features_folder_with_tags_and_resume(tmp_path, synth_music, capsys):
    from songmine.cli._app import main

    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    _write_song(
        lib / "one.flac",
        synth_music,
        seed=3,
        title="First Song",
        artist="Band",
        album="LP",
        genre="Rock",
        date="2011-05-02",
    )
    _write_song(lib / "sub" / "two.flac", synth_music, seed=4)
    (lib / "broken.mp3").write_bytes(b"\xff\xfb" + b"\x00" * 50)
    out = tmp_path / "out" / "features.csv"
    assert main(["features", str(lib), "-o", str(out), "--jobs", "1", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["rows"] == 2 and rec["computed"] == 2 and [f["track_id"] for f in rec["failed"]] == ["broken.mp3"]
    feats = load(out, cache=False)
    assert list(feats.index) == ["one.flac", "sub/two.flac"]
    tracks = load(out.with_name("tracks.csv"), cache=False)
    assert list(tracks.index) == ["one.flac", "sub/two.flac"]
    one = tracks.loc["one.flac"]
    assert one[("track", "title")] == "First Song" and one[("artist", "name")] == "Band"
    assert one[("album", "title")] == "LP" and one[("track", "genre_top")] == "Rock"
    assert one[("album", "date_released")].year == 2011 and one[("track", "duration")] == 3
    assert pd.isna(tracks.loc["sub/two.flac", ("track", "title")])
    # the FMA merge works on a user's own library too
    from songmine.catalog import merge

    merged, rep = merge({"tracks": tracks, "features": feats})
    assert merged.shape == (2, 6 + 518)
    # resume: nothing recomputed, tags kept
    assert main(["features", str(lib), "-o", str(out), "--jobs", "1", "--json"]) == 0
    rec2 = json.loads(capsys.readouterr().out)
    assert rec2["computed"] == 0 and rec2["resumed"] == 2
    assert load(out.with_name("tracks.csv"), cache=False).loc["one.flac", ("track", "title")] == "First Song"


def test_cli_features_usage_errors(tmp_path, capsys):
    from songmine.cli._app import main

    assert main(["features", "-o", str(tmp_path / "f.csv")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["features", str(empty), "-o", str(tmp_path / "f.csv")]) == 2
    assert "no audio files" in capsys.readouterr().err
    (empty / "x.wav").write_bytes(b"")
    assert main(["features", str(empty), "-o", str(tmp_path / "f.csv"), "--decoder", "gstreamer"]) == 2
    assert "--decoder 'gstreamer'" in capsys.readouterr().err
