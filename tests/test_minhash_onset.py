"""The course's onset-peak MinHash/LSH method: faithful features, fixed defects, honest limits."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from songmine.errors import IndexFormatError, ParameterError
from songmine.minhash import EMPTY
from songmine.minhash.onset import SeedConfig, SeedIndex, onset_peak_frames, peak_pick, peak_vector


def test_default_config_is_the_originals():
    c = SeedConfig()
    assert (c.sr, c.offset_s, c.duration_s, c.hop_length) == (22050, 1.0, 10.0, 512)
    assert (c.pre_max, c.post_max, c.pre_avg, c.post_avg, c.delta, c.wait) == (10, 10, 10, 10, 0.5, 0.5)
    assert (c.n_perm, c.n_bands, c.n_rows) == (100, 20, 5)
    assert c.n_frames == 431


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_bands": 7}, "n_perm=100"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.2}, "threshold"),
        ({"post_max": 0}, "post_max"),
        ({"duration_s": 0}, "duration_s"),
        ({"variant": "minhash"}, "variant"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SeedConfig(**kwargs)


def test_peaks_match_a_direct_librosa_pipeline(synth_music):
    import librosa

    y = synth_music(22050, 10.0, seed=3)
    env = librosa.onset.onset_strength(y=y, sr=22050, hop_length=512)
    assert env.shape == (431,)
    want = librosa.util.peak_pick(env, pre_max=10, post_max=10, pre_avg=10, post_avg=10, delta=0.5, wait=1)
    got = onset_peak_frames(y)
    np.testing.assert_array_equal(got, want)
    assert got.size > 5  # synthetic notes every 0.25 s give onsets
    v = peak_vector(y)
    assert v.shape == (431,) and v.dtype == bool and np.flatnonzero(v).tolist() == got.tolist()


def _random_picker_case(rng: np.random.Generator):
    """An envelope and picker parameters; a third of the envelopes are coarsely quantised so that
    values tie with the window maximum and with the mean + delta threshold."""
    n = int(rng.integers(1, 300))
    kind = int(rng.integers(0, 4))
    if kind == 0:
        x = rng.standard_normal(n).astype(np.float32)
    elif kind == 1:
        x = (rng.integers(0, 4, n) * 0.5).astype(np.float32)
    elif kind == 2:
        x = (rng.integers(0, 7, n) / 3).astype(np.float32)
    else:
        x = np.abs(rng.standard_normal(n))  # float64
    params = dict(
        pre_max=int(rng.integers(0, 12)),
        post_max=int(rng.integers(1, 12)),
        pre_avg=int(rng.integers(0, 12)),
        post_avg=int(rng.integers(1, 12)),
        delta=float(rng.choice([0.0, 0.5, 1 / 3, 0.1])),
        wait=float(rng.choice([0.0, 0.5, 1.0, 3.0])),
    )
    return x, params


def test_peak_pick_picks_librosas_frames_ties_included():
    import librosa

    rng = np.random.default_rng(11)
    picked = 0
    for _ in range(1500):
        x, params = _random_picker_case(rng)
        want = librosa.util.peak_pick(x, **params)
        got = peak_pick(x, **params)
        np.testing.assert_array_equal(got, want, err_msg=str(params))
        picked += got.size
    assert picked > 10_000  # the cases pick peaks, not only empty sets


@pytest.mark.corpus
def test_peak_pick_on_real_music_envelopes(real_cuts):
    import librosa

    from songmine.audio import load

    for path in real_cuts[:6]:
        y = load(path, sr=22050, mono=True, duration=30.0)
        env = librosa.onset.onset_strength(y=y, sr=22050, hop_length=512)
        params = dict(pre_max=10, post_max=10, pre_avg=10, post_avg=10, delta=0.5, wait=0.5)
        want = librosa.util.peak_pick(env, **params)
        assert want.size > 10
        np.testing.assert_array_equal(peak_pick(env, **params), want)


def test_peak_pick_rejects_what_librosa_rejects():
    x = np.ones(10, np.float32)
    with pytest.raises(ParameterError):
        peak_pick(x, pre_max=1, post_max=0, pre_avg=1, post_avg=1, delta=0.0, wait=0)
    with pytest.raises(ParameterError):
        peak_pick(x, pre_max=-1, post_max=1, pre_avg=1, post_avg=1, delta=0.0, wait=0)
    with pytest.raises(ParameterError):
        peak_pick(x.reshape(2, 5), pre_max=1, post_max=1, pre_avg=1, post_avg=1, delta=0.0, wait=0)
    assert peak_pick(np.zeros(0, np.float32), pre_max=1, post_max=1, pre_avg=1, post_avg=1, delta=0, wait=0).size == 0


def test_silence_and_tiny_input_give_empty_sets_and_no_match(tmp_path, synth_music):
    assert onset_peak_frames(np.zeros(22050 * 10, np.float32)).size == 0
    assert onset_peak_frames(np.zeros(2205, np.float32)).size == 0  # 0.1 s of silence
    assert onset_peak_frames(synth_music(22050, 0.1)).dtype == np.int64  # 0.1 s of music: defined, no crash
    idx = SeedIndex()
    idx.add_peaks(0, "music", onset_peak_frames(synth_music(22050, 11.0, seed=1)[22050:]))
    short = tmp_path / "short.wav"
    sf.write(short, synth_music(22050, 0.1), 22050)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050 * 12, np.float32), 22050)
    assert idx.add_files([short, silent]) == 2  # defined (empty) signatures, no crash
    assert np.all(idx.signatures[1:] == EMPTY)
    for clip in (short, silent):
        r = idx.query_file(clip)
        assert r.error is None and r.matches == [] and r.chosen is None


@pytest.mark.corpus
def test_real_music_found_when_aligned_not_from_the_middle(real_cuts, tmp_path):
    """The method works for a clip cut exactly where the index window is, and fails mid-song."""
    from songmine.audio import load

    idx = SeedIndex()
    assert idx.add_files(real_cuts) == len(real_cuts)
    hits_aligned = hits_middle = 0
    for tid, path in enumerate(real_cuts):
        aligned = load(path, sr=22050, offset=1.0, duration=10.0)
        r = idx.query_audio(aligned, query=str(path))
        assert r.candidates and r.candidates[0]["jaccard"] > 0.9
        hits_aligned += r.chosen == tid
        assert r.matches[0].confidence > 0.99
        middle = load(path, sr=22050, offset=17.0, duration=10.0)
        r = idx.query_audio(middle)
        hits_middle += r.chosen == tid
    assert hits_aligned == len(real_cuts)
    assert hits_middle <= 1  # alignment: a mid-song clip shares few peak frames with 1-11 s

    # persistence round trip, and a config mismatch is refused
    folder = idx.save(tmp_path / "seed")
    again = SeedIndex.load(folder)
    np.testing.assert_array_equal(again.signatures, idx.signatures)
    r = again.query_audio(load(real_cuts[2], sr=22050, offset=1.0, duration=10.0))
    assert r.chosen == 2
    with pytest.raises(IndexFormatError, match="another config"):
        SeedIndex.load(folder, config=SeedConfig(n_perm=120, n_bands=24))


def test_bad_file_is_skipped_not_fatal(tmp_path, synth_music):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio at all")
    good = tmp_path / "good.wav"
    sf.write(good, synth_music(22050, 12.0), 22050)
    idx = SeedIndex()
    assert idx.add_files([bad, good]) == 1
    assert len(idx) == 1 and idx.skipped and "bad.mp3" in idx.skipped[0][0]
    r = idx.query_file(bad)
    assert r.error and r.matches == []


def test_missing_seed_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexFormatError, match="no seed index"):
        SeedIndex.load(tmp_path)


@pytest.mark.corpus
@pytest.mark.slow
@pytest.mark.parametrize("method", ["seed", "sketch"])
def test_cli_index_and_identify_with_method(real_cuts, tmp_path, capsys, method):
    import json

    from songmine.audio import load
    from songmine.cli._app import main

    lib = tmp_path / "lib"
    lib.mkdir()
    for p in real_cuts[:3]:
        (lib / p.name).symlink_to(p)
    ix = tmp_path / "ix"
    assert main(["index", str(lib), "--index", str(ix), "--method", method, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_tracks"] == 3 and (ix / method / "catalog.sqlite").exists()
    # a clip cut where the seed method looks (1–11 s) — the only place it can work
    clip = tmp_path / "clip.wav"
    sf.write(clip, load(real_cuts[1], sr=22050, offset=1.0, duration=10.0), 22050)
    code = main(["identify", str(clip), "--index", str(ix), "--method", method, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out[0]["matches"][0]["path"].endswith(real_cuts[1].name)
    if method == "seed":
        assert out[0]["chosen"] == out[0]["matches"][0]["track_id"] and out[0]["candidates"]
    assert main(["identify", str(clip), "--index", str(tmp_path / "nothing"), "--method", method]) == 2
