"""Spectral profiles (songmine.fingerprint.profiles): format, statistics on real music, storage in the index, stage 4 of search."""

from __future__ import annotations

import dataclasses
import math
import sqlite3

import numpy as np
import pytest

from songmine.errors import ParameterError
from songmine.fingerprint.profiles import Profile, hop_length, n_bands, profile, similarity, supported

SR = 11025


def _noisy(y: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    p = float(np.mean(y.astype(np.float64) ** 2))
    return (y + g.standard_normal(y.shape[0]) * math.sqrt(p / 10 ** (snr_db / 10))).astype(np.float32)


def _clip_at(y: np.ndarray, start: int, seconds: float) -> tuple[np.ndarray, int]:
    """The clip from sample ``start``, cut to begin at the track's next whole profile frame."""
    hop = hop_length(SR)
    first = -(-start // hop)
    return y[first * hop : start + int(seconds * SR)], first


def test_bytes_round_trip_and_size(synth_music):
    p = profile(synth_music(SR, 20.0, seed=3), SR)
    assert len(p) == 1 + (20 * SR - 2048) // hop_length(SR)
    assert p.n_bands == n_bands(SR) <= 64
    assert int(np.max(p.bits)) < 1 << p.n_bands  # only the bands' bits are used
    assert np.abs(p.chroma).max() <= 7
    data = p.to_bytes()
    assert len(data) == 14 * len(p)  # 14 bytes per 0.19 s: 0.27 MB per hour
    q = Profile.from_bytes(data, p.n_bands)
    assert np.array_equal(q.bits, p.bits) and np.array_equal(q.chroma, p.chroma)
    w = p.window(len(p) - 3, 10)
    assert len(w) == 3 and np.array_equal(w.bits, p.bits[-3:])


def test_short_silent_and_bad_input():
    assert len(profile(np.zeros(100, np.float32), SR)) == 0
    assert len(profile(np.zeros(SR, np.float32), SR)) == 5  # silence is a profile too, not an error
    with pytest.raises(ParameterError):
        profile(np.zeros((2, SR), np.float32), SR)
    assert not supported(6000) and supported(8000) and supported(44100)
    with pytest.raises(ParameterError, match="too low"):
        profile(np.zeros(SR, np.float32), 6000)
    with pytest.raises(Exception, match="whole frames"):
        Profile.from_bytes(b"x" * 15, 63)


@pytest.mark.corpus
def test_a_noisy_real_clip_agrees_with_its_track_at_its_offset_only(real_cuts):
    """10 s of real music under 0 dB white noise: both statistics well above chance at the right frame."""
    from songmine.audio import load

    ys = [load(p, sr=SR) for p in real_cuts[:4]]
    refs = [profile(y, SR) for y in ys]
    for k, y in enumerate(ys):
        clip, first = _clip_at(y, 7 * SR + 777, 10.0)
        q = profile(_noisy(clip, 0.0, seed=k), SR)
        zb, zc, n = similarity(q, refs[k], first)
        assert n == len(q) >= 50
        # chance maxima measured on 3,120 non-member clips are about 0.7 (bands) and 6 (chroma)
        assert zb > 1.0 and zc > 6.0, (k, zb, zc)
        far = similarity(q, refs[k], first + 60)  # 11 s later in the same track
        other = similarity(q, refs[(k + 1) % 4], first)
        assert far[0] < 0.6 * zb and other[0] < 0.6 * zb
        assert other[1] < zc


def test_similarity_needs_half_an_overlap_and_equal_bands(synth_music):
    y = synth_music(SR, 12.0, seed=5)
    p = profile(y, SR)
    q = p.window(10, 20)
    assert similarity(q, p, 10)[2] == 20
    assert similarity(q, p, len(p) - 5)[2] == 0  # 5 of 20 frames overlap: not compared
    assert similarity(q, p, len(p) - 12)[2] >= 10
    with pytest.raises(ParameterError):
        similarity(Profile(q.bits, q.chroma, 40), p, 10)


@pytest.mark.corpus
def test_index_stores_one_profile_per_track_and_drops_it_with_the_track(real_cuts, tmp_path):
    from songmine.audio import load
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.build import index_files

    with Index(tmp_path / "ix", create=True) as ix:
        index_files(ix, real_cuts[:3], jobs=1)
        tracks = ix.tracks()
        for t in tracks:
            stored = ix.profile(t.track_id)
            fresh = profile(load(t.path, sr=SR), SR)
            assert np.array_equal(stored.bits, fresh.bits) and np.array_equal(stored.chroma, fresh.chroma)
        ix.remove([tracks[0].track_id])
        ix.compact()
        assert ix.profile(tracks[0].track_id) is None and ix.profile(tracks[1].track_id) is not None
        n = ix._conn.execute("SELECT COUNT(*) FROM profiles").fetchone()[0]
        assert n == 2


@pytest.mark.corpus
def test_an_index_from_before_profiles_opens_and_searches_without_them(real_cuts, tmp_path):
    """Format 1 had no profiles table: it is added on open; the old tracks just have none."""
    from songmine.audio import load
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.build import index_files
    from songmine.fingerprint.search import search

    with Index(tmp_path / "ix", create=True) as ix:
        index_files(ix, real_cuts[:2], jobs=1)
        path = ix.tracks()[0].path
    con = sqlite3.connect(tmp_path / "ix" / "catalog.sqlite")
    con.execute("DROP TABLE profiles")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    with Index(tmp_path / "ix") as ix:
        assert all(ix.profile(t.track_id) is None for t in ix.tracks())
        y = load(path, sr=SR)
        res = search(ix, _noisy(y[5 * SR : 10 * SR], 20.0, seed=1), top=2)
        assert res and ix.track(res[0].track_id).path == path and np.isnan(res[0].z_bands)
        index_files(ix, real_cuts[2:3], jobs=1)  # a track added now has one
        assert ix.profile(max(t.track_id for t in ix.tracks())) is not None


def _hum(y: np.ndarray, n_tones: int, db: float, seed: int) -> np.ndarray:
    """``y`` plus ``n_tones`` steady sine tones, together ``db`` above its power (mains hum, whistles, feedback)."""
    g = np.random.default_rng(seed)
    t = np.arange(y.shape[0]) / SR
    f = np.exp(g.uniform(np.log(120), np.log(3400), n_tones))
    a = math.sqrt(float(np.mean(y.astype(np.float64) ** 2)) * 10 ** (db / 10) / n_tones * 2)
    tones = a * np.sin(2 * np.pi * f[:, None] * t[None, :] + g.uniform(0, 2 * np.pi, (n_tones, 1)))
    return (y + tones.sum(axis=0)).astype(np.float32)


@pytest.mark.corpus
def test_stage_4_answers_what_the_votes_leave_and_never_a_non_member(real_cuts):
    """10-s clips under 30 steady tones 6 dB above the music: the tones take the peak budget, so few
    landmarks survive, but the music's band changes do; the profiles answer clips the votes leave, all right."""
    from songmine.audio import load
    from songmine.fingerprint.memory import MemoryIndex
    from songmine.fingerprint.search import SearchConfig, search

    ys = [load(p, sr=SR) for p in real_cuts]
    idx = MemoryIndex()
    for k, y in enumerate(ys[:5]):
        idx.add(y, path=f"cut{k}")
    off = SearchConfig(verify_candidates=0)
    on = SearchConfig()
    assert np.isfinite(on.verify_bands_at) and np.isfinite(on.verify_chroma_at)  # calibrated, on by default
    gained = 0
    for k in range(5):
        for j, start in enumerate((3 * SR + 123, 16 * SR + 4321)):
            clip = _hum(ys[k][start : start + 10 * SR], 30, 6.0, seed=10 * k + j)
            a, b = search(idx, clip, top=2, config=off), search(idx, clip, top=2, config=on)
            was = bool(a) and a[0].confidence >= on.min_confidence
            now = bool(b) and b[0].confidence >= on.min_confidence
            assert now >= was  # verification only adds answers
            if now:
                assert idx.track(b[0].track_id).path == f"cut{k}"
                assert abs(b[0].offset * idx.config.hop_s - start / SR) < 0.5
            if now and not was:
                assert b[0].z_bands >= on.verify_bands_at or b[0].z_chroma >= on.verify_chroma_at
                gained += 1
    assert gained >= 1
    for start_s in (2, 11, 18):  # the sixth cut is not indexed
        y = ys[5][start_s * SR : (start_s + 10) * SR]
        for clip in (y, _noisy(y, 0.0, seed=start_s), _hum(y, 30, 6.0, seed=start_s)):
            res = search(idx, clip, top=2, config=on)
            assert not res or res[0].confidence < on.min_confidence


def test_other_offsets_are_the_next_best_bins_a_clip_apart():
    from songmine.fingerprint.scoring import other_offsets

    t = np.arange(200, dtype=np.uint32)  # query landmark times
    # track 7: 60 hits at offset 1000, 40 at 3000, 30 at 1010 (too close to 1000), 20 at 5000; track 9: 10 at 0
    offs = np.concatenate([np.full(60, 1000), np.full(40, 3000), np.full(30, 1010), np.full(20, 5000), np.full(10, 0)])
    tracks = np.concatenate([np.full(150, 7), np.full(10, 9)]).astype(np.uint32)
    qpos = np.arange(160) % 200
    times = (offs + t[qpos]).astype(np.uint32)
    got = other_offsets(t, qpos, tracks, times, np.array([7, 9]), np.array([1000, 0]), n=2, sep=50)
    assert got == [(3000, 5000), ()]
    assert other_offsets(t, qpos, tracks, times, np.array([7]), np.array([1000]), n=1, sep=50) == [(3000,)]


@pytest.mark.corpus
def test_stage_4_tries_the_other_offsets_and_reports_where_the_profiles_agree(real_cuts):
    """A candidate voted at the wrong place of its track, with the right one among its other offsets."""
    from songmine.audio import load
    from songmine.fingerprint.memory import MemoryIndex
    from songmine.fingerprint.search import Candidate, SearchConfig, _verify

    idx = MemoryIndex()
    ys = [load(p, sr=SR) for p in real_cuts[:3]]
    for k, y in enumerate(ys):
        idx.add(y, path=f"cut{k}")
    start = 12 * SR + 3000
    clip = _noisy(ys[1][start : start + 8 * SR], 0.0, seed=3)
    right = round(start / idx.config.hop_length)
    wrong = right - 300  # 7 s earlier
    c = Candidate(1, wrong, 9, 40, 1.0, 0.0, other_offsets=(right + 700, right))
    only = _verify(idx, [dataclasses.replace(c, other_offsets=())], lambda s: clip, SearchConfig())[0]
    both = _verify(idx, [c], lambda s: clip, SearchConfig())[0]
    assert only.confidence < 0.5 and only.offset == wrong
    assert both.confidence > 0.9 and both.offset == right and both.z_bands > only.z_bands
