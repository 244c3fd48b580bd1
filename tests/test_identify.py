"""identify: offset voting, the null model, and real-music matches through a MemoryIndex."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from songmine.errors import ParameterError
from songmine.fingerprint.landmarks import FingerprintConfig
from songmine.fingerprint.memory import MemoryIndex, TrackInfo
from songmine.fingerprint.query import identify
from songmine.fingerprint.scoring import confidence_from, margin_confidence, vote
from songmine.fingerprint.search import Candidate, SearchConfig, search
from songmine.records import QueryResult

SR = FingerprintConfig().sr


def test_vote_toy_counts_by_hand():
    # query anchors at frames 0..4; track 7 agrees on offset 100 (±1), track 3 is scattered
    qt = np.array([0, 1, 2, 3, 4], np.uint32)
    qpos = np.array([0, 1, 2, 3, 4, 0, 1, 2], np.int64)
    tracks = np.array([7, 7, 7, 7, 7, 3, 3, 3], np.uint32)
    times = np.array([100, 101, 103, 103, 104, 50, 90, 7], np.uint32)  # offsets 100,100,101,100,100 | 50,89,5
    tr, off, votes, hits, n = vote(qt, qpos, tracks, times, tolerance=1)
    assert tr.tolist() == [7, 3] and int(n) == 2
    assert off[0] == 100 and votes[0] == 5 and hits[0] == 5
    assert votes[1] == 1 and hits[1] == 3
    tr0, off0, votes0, _, _ = vote(qt, qpos, tracks, times, tolerance=0)
    assert votes0[0] == 4  # the offset-101 vote no longer counts


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("lone", [30, 3000])
@pytest.mark.parametrize("tolerance", [0, 1, 2])
def test_vote_equals_its_definition(rng, monkeypatch, tolerance, lone, whole):
    """Every track's best bin (most hits within ±tolerance of an occupied offset; the lowest such
    offset on ties), its hits, and the ranking (most votes first, then lower track id), against a
    count by hand over clusters of agreeing hits among a few lone chance hits (a small index) or
    many (a big one); with the bins reduced whole, and (as on a big lookup) only those scoring more
    than one hit."""
    from collections import Counter

    from songmine.fingerprint import scoring

    monkeypatch.setattr(scoring, "_SPARSE_MIN_BINS", 10**9 if whole else 0)

    n_q = 200
    qt = np.sort(rng.integers(0, 400, n_q)).astype(np.uint32)
    hits = []  # (query position, track, track time)
    for q in rng.integers(0, n_q, lone).tolist():  # chance: lone hits spread over the tracks and offsets
        hits.append((q, int(rng.integers(0, 500)), int(qt[q]) + int(rng.integers(0, 20_000))))
    for trk in rng.integers(0, 500, 60).tolist():  # clusters: a few hits agreeing on an offset (±2)
        off = int(rng.integers(0, 20_000))
        for q in rng.integers(0, n_q, int(rng.integers(2, 12))).tolist():
            hits.append((q, trk, int(qt[q]) + off + int(rng.integers(-2, 3))))
    qpos, tracks, times = (np.array(col, dtype) for col, dtype in zip(zip(*hits), (np.int64, np.uint32, np.uint32)))
    bins: dict[int, Counter] = {}
    for q, trk, tm in zip(qpos.tolist(), tracks.tolist(), times.tolist()):
        bins.setdefault(trk, Counter())[tm - int(qt[q])] += 1
    want = []
    for trk, c in bins.items():
        scores = {o: sum(c.get(o + d, 0) for d in range(-tolerance, tolerance + 1)) for o in c}
        top = max(scores.values())
        want.append((-top, trk, min(o for o, v in scores.items() if v == top), sum(c.values())))
    want.sort()
    got_tracks, got_offsets, got_votes, got_hits, n = vote(qt, qpos, tracks, times, tolerance=tolerance)
    assert int(n) == len(bins)
    assert list(zip((-got_votes).tolist(), got_tracks.tolist(), got_offsets.tolist(), got_hits.tolist())) == want
    assert want[0][0] <= -3  # the clusters lead


def test_vote_empty():
    z = np.zeros(0, np.uint32)
    tr, off, votes, hits, n = vote(z, np.zeros(0, np.int64), z, z)
    assert tr.size == 0 and int(n) == 0


def test_confidence_grows_with_votes_and_falls_with_chance_rate():
    votes = np.arange(1, 60)
    c = confidence_from(votes, np.full(votes.shape, 0.05), n_tests=1e6, overdispersion=5.0)
    assert np.all(np.diff(c) >= 0) and c[0] < 0.01 and c[-1] > 0.999
    lo = confidence_from(np.array([30]), np.array([0.01]), n_tests=1e6, overdispersion=5.0)
    hi = confidence_from(np.array([30]), np.array([1.0]), n_tests=1e6, overdispersion=5.0)
    assert lo > hi


def test_search_config_validation():
    from songmine.errors import ParameterError

    with pytest.raises(ParameterError, match="speeds"):
        SearchConfig(speeds=())
    with pytest.raises(ParameterError, match="min_confidence"):
        SearchConfig(min_confidence=2.0)
    with pytest.raises(ParameterError, match="margin_alpha"):
        SearchConfig(margin_alpha=-1.0)
    with pytest.raises(ParameterError, match="margin_tests"):
        SearchConfig(margin_tests=0.5)
    with pytest.raises(ParameterError, match="margin_floor"):
        SearchConfig(margin_floor=0)
    with pytest.raises(ParameterError, match="margin_min_tracks"):
        SearchConfig(margin_min_tracks=1)
    with pytest.raises(ParameterError, match="speed_margin_alpha"):
        SearchConfig(speed_margin_alpha=float("nan"))
    with pytest.raises(ParameterError, match="speed_margin_tests"):
        SearchConfig(speed_margin_tests=0.0)

    with pytest.raises(ParameterError, match="max_hits"):
        SearchConfig(max_hits=0)
    with pytest.raises(ParameterError, match="refine_speeds"):
        SearchConfig(refine_speeds=0)
    with pytest.raises(ParameterError, match="coarse_max_hits"):
        SearchConfig(coarse_max_hits=0)
    with pytest.raises(ParameterError, match="lead_margin"):
        SearchConfig(lead_margin=0.5)
    with pytest.raises(ParameterError, match="refine_margin"):
        SearchConfig(refine_margin=float("nan"))


def test_margin_confidence_is_the_pareto_tail_of_the_ratio():
    alpha, m = 7.8, 300.0
    # 0.5 exactly where m * r**-alpha = ln 2
    r_half = (m / np.log(2)) ** (1 / alpha)
    assert margin_confidence(r_half * 10, 10, alpha=alpha, n_tests=m) == pytest.approx(0.5)
    assert margin_confidence(10, 10, alpha=alpha, n_tests=m) == 0.0  # a tie is no evidence
    assert margin_confidence(9, 10, alpha=alpha, n_tests=m) == 0.0
    c = [margin_confidence(v, 8, alpha=alpha, n_tests=m) for v in range(8, 60)]
    assert np.all(np.diff(c) >= 0) and c[-1] > 0.999
    # the runner-up counts as at least `floor` votes: 9 against 1 is 9 against 4
    assert margin_confidence(9, 1, alpha=alpha, n_tests=m, floor=4) == margin_confidence(9, 4, alpha=alpha, n_tests=m)


def test_margin_only_raises_the_most_voted_track():
    from songmine.fingerprint.search import _with_margin

    def cand(track, votes, conf, speed=1.0, n_hit=40):
        return Candidate(track, 100, votes, 500, speed, conf, n_tracks_hit=n_hit)

    sc = SearchConfig()
    best = [cand(1, 30, 0.01), cand(2, 6, 0.0), cand(1, 20, 0.2, 0.98), cand(3, 5, 0.0, 0.98)]
    out = _with_margin(best, sc)
    assert out[0].confidence == pytest.approx(margin_confidence(30, 6, alpha=sc.margin_alpha, n_tests=sc.margin_tests))
    assert out[0].confidence > 0.99 and out[1:] == best[1:]
    # a close runner-up (another track at another speed) gives no pooled margin; nothing changes
    close = [cand(1, 30, 0.01), cand(2, 20, 0.0, 1.02), cand(3, 12, 0.0)]
    assert _with_margin(close, sc) == close
    assert _with_margin(close, SearchConfig(speed_margin_alpha=0.0)) == close
    # already certain by the Poisson model: kept as it is
    sure = [cand(1, 30, 1.0), cand(2, 6, 0.0)]
    assert _with_margin(sure, sc) == sure
    # too few tracks hit for the runner-up to say anything about chance
    few = [cand(1, 30, 0.01, n_hit=5), cand(2, 6, 0.0, n_hit=5)]
    assert _with_margin(few, sc) == few


def test_per_speed_margin_ignores_chance_maxima_at_other_speeds():
    from songmine.fingerprint.search import _with_margin

    def cand(track, votes, conf, speed=1.0, n_hit=40):
        return Candidate(track, 100, votes, 500, speed, conf, n_tracks_hit=n_hit)

    pooled_only = SearchConfig(speed_margin_alpha=0.0)
    sc = SearchConfig()
    # 21 votes against 4 at its own speed; a chance 12 at speed 1.03 spoils the pooled ratio (1.75)
    best = [cand(34, 21, 0.1), cand(24, 4, 0.0), cand(6, 12, 0.0, 1.03), cand(4, 9, 0.0, 1.03)]
    assert _with_margin(best, pooled_only)[0].confidence < 0.5
    out = _with_margin(best, sc)
    expect = margin_confidence(21, 4, alpha=sc.speed_margin_alpha, n_tests=sc.speed_margin_tests, floor=sc.margin_floor)
    assert out[0].confidence == pytest.approx(expect) and expect > 0.5
    assert out[1:] == best[1:]
    # the per-speed test needs a wide margin: 4x the runner-up of its speed is not enough at the defaults
    assert _with_margin([cand(1, 16, 0.1), cand(2, 4, 0.0), cand(3, 12, 0.0, 1.03)], sc)[0].confidence < 0.5
    # it judges the most-voted track only, at the speed where it was most voted
    other = [cand(1, 21, 0.1), cand(2, 17, 0.0), cand(3, 20, 0.0, 0.98), cand(4, 2, 0.0, 0.98)]
    assert _with_margin(other, sc) == other
    # and only when that lookup hit enough tracks for its runner-up to mean anything
    few = [cand(34, 21, 0.1, n_hit=8), cand(24, 4, 0.0, n_hit=8), cand(6, 12, 0.0, 1.03, n_hit=40)]
    assert _with_margin(few, sc) == _with_margin(few, pooled_only)  # the pooled test alone (0.12)


@pytest.fixture(scope="module")
def cuts_index(real_cuts):
    """Five of the six real cuts indexed; the sixth is a non-member."""
    return MemoryIndex.from_files(real_cuts[:5]), real_cuts


def _noisy(y: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    n = g.standard_normal(y.size)
    n *= np.sqrt(np.mean(y.astype(np.float64) ** 2) / 10 ** (snr_db / 10) / np.mean(n**2))
    return (y + n).astype(np.float32)


@pytest.mark.corpus
def test_noisy_excerpt_matches_at_the_right_offset(cuts_index):
    from songmine.audio import load

    idx, cuts = cuts_index
    assert idx.n_tracks == 5 and idx.n_postings > 0 and not idx.skipped
    for k in (0, 3):
        y = load(cuts[k], sr=SR)
        start = 12 * SR + 777  # not on the frame grid
        clip = _noisy(y[start : start + 5 * SR], snr_db=5.0, seed=k)
        r = identify(idx, clip, name="noisy")
        assert r.error is None and r.query == "noisy"
        assert r.matches, "no match for a 5 dB noisy excerpt"
        m = r.matches[0]
        assert m.path == str(cuts[k])
        assert abs(m.offset_s - start / SR) <= 1.5 * idx.config.hop_s
        assert m.confidence > 0.99 and m.score >= 10


@pytest.mark.corpus
def test_clip_from_unindexed_track_gives_no_match(cuts_index):
    from songmine.audio import load

    idx, cuts = cuts_index
    y = load(cuts[5], sr=SR)
    for start_s in (2, 11, 20):
        clip = y[start_s * SR : (start_s + 5) * SR]
        r = identify(idx, clip)
        assert r.matches == [] and r.error is None


@pytest.mark.corpus
def test_speed_change_of_three_percent_still_matches(cuts_index):
    from songmine.audio import load

    idx, cuts = cuts_index
    y = load(cuts[1], sr=SR)
    seg = y[8 * SR : 8 * SR + int(10 * SR * 1.03)]
    fast = soxr.resample(seg, 1.03, 1.0).astype(np.float32)  # played 3 % faster: pitch and tempo
    r = identify(idx, fast)
    assert r.matches and r.matches[0].path == str(cuts[1])
    assert abs(r.matches[0].offset_s - 8.0) < 0.1
    cands = search(idx, fast, top=1)
    assert abs(cands[0].speed - 1.03) <= 0.011


@pytest.mark.corpus
def test_path_bytes_and_file_object_queries(cuts_index, tmp_path):
    import soundfile as sf

    from songmine.audio import load

    idx, cuts = cuts_index
    y = load(cuts[2], sr=SR)[5 * SR : 10 * SR]
    p = tmp_path / "q.wav"
    sf.write(p, y, SR)
    for clip, name in ((str(p), str(p)), (p.read_bytes(), "<upload>"), (open(p, "rb"), str(p))):
        r = identify(idx, clip)
        assert isinstance(r, QueryResult) and r.query == name
        assert r.matches and r.matches[0].path == str(cuts[2])
        if hasattr(clip, "close"):
            clip.close()


def test_bad_clips_go_into_error_never_raise(tmp_path):
    idx = MemoryIndex()
    bad = tmp_path / "notes.mp3"
    bad.write_text("this is not audio\n")
    r = identify(idx, str(bad))
    assert r.matches == [] and r.error and "notes.mp3" in r.error
    r = identify(idx, str(tmp_path / "missing.ogg"))
    assert r.error and "no such file" in r.error
    r = identify(idx, b"")
    assert r.error
    r = identify(idx, np.zeros(70 * SR, np.float32), max_duration_s=60)
    assert r.error and "limit" in r.error
    r = identify(idx, np.full(3 * SR, np.nan, np.float32))
    assert r.error is None and r.matches == []


def test_silence_and_empty_index_give_no_match(synth_music):
    idx = MemoryIndex()
    idx.add(synth_music(SR, 20.0, seed=1), path="a", title="A")
    assert identify(idx, np.zeros(5 * SR, np.float32)).matches == []
    assert identify(MemoryIndex(), synth_music(SR, 5.0)).matches == []


def test_memory_index_skips_unreadable_files(tmp_path, synth_music):
    import soundfile as sf

    good = tmp_path / "good.wav"
    sf.write(good, synth_music(SR, 8.0), SR)
    (tmp_path / "bad.mp3").write_bytes(b"\x00" * 100)
    idx = MemoryIndex.from_files([tmp_path])
    assert idx.n_tracks == 1 and len(idx.skipped) == 1
    t = idx.track(0)
    assert isinstance(t, TrackInfo) and t.path == str(good) and t.duration_s == pytest.approx(8.0, abs=0.01)


def test_cli_identify_exit_codes_and_json(tmp_path, synth_music, monkeypatch):
    import json

    import soundfile as sf
    from typer.testing import CliRunner

    from songmine.cli import app
    from songmine.cli import identify as cli_identify

    y = synth_music(SR, 30.0, seed=5)
    idx = MemoryIndex()
    idx.add(y, path="/music/song.ogg", title="Song", artist="Band")
    monkeypatch.setattr(cli_identify, "open_index", lambda path: idx)
    clip = tmp_path / "clip.wav"
    sf.write(clip, y[10 * SR : 16 * SR], SR)
    other = tmp_path / "other.wav"
    sf.write(other, np.zeros(6 * SR, np.float32), SR)  # silence: valid audio, no landmarks
    bad = tmp_path / "bad.mp3"
    bad.write_text("not audio")
    runner = CliRunner()

    r = runner.invoke(app, ["identify", str(clip), str(bad), "--json"])
    assert r.exit_code == 2, r.output  # a clip failed: 2, and every record is printed
    recs = json.loads(r.stdout)
    assert [x["query"] for x in recs] == [str(clip), str(bad)]
    assert recs[0]["matches"][0]["title"] == "Song" and abs(recs[0]["matches"][0]["offset_s"] - 10.0) < 0.05
    assert recs[1]["matches"] == [] and "bad.mp3" in recs[1]["error"]

    r = runner.invoke(app, ["identify", str(other), str(bad)])
    assert r.exit_code == 2 and "no match" in r.stdout and "error" in r.stdout

    r = runner.invoke(app, ["identify", str(other)])
    assert r.exit_code == 1 and "no match" in r.stdout

    r = runner.invoke(app, ["identify", str(clip)])
    assert r.exit_code == 0 and "Song" in r.stdout and ("0:10.0" in r.stdout or "0:09.9" in r.stdout)

    r = runner.invoke(app, ["identify", str(clip), "--method", "nope"])
    assert r.exit_code == 2


@pytest.fixture
def cli_index(tmp_path, synth_music, monkeypatch):
    """``songmine identify`` answers from a one-song MemoryIndex; returns (song y, the index)."""
    from songmine.cli import identify as cli_identify

    y = synth_music(SR, 30.0, seed=5)
    idx = MemoryIndex()
    idx.add(y, path="/music/song.ogg", title="Song", artist="Band")
    monkeypatch.setattr(cli_identify, "open_index", lambda path: idx)
    return y, idx


def test_cli_identify_bad_inputs_exit_2_not_no_match(tmp_path, cli_index, capsys):
    import json

    import soundfile as sf

    from songmine.cli._app import main

    y, _ = cli_index
    good = tmp_path / "good.flac"
    sf.write(good, y[5 * SR : 12 * SR], SR)
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.txt").write_text("hello\n" * 100)
    data = good.read_bytes()
    (tmp_path / "truncated.flac").write_bytes(data[: len(data) // 2])
    bad = ["adir", "missing.wav", "empty.wav", "text.txt", "truncated.flac"]
    for name in bad:
        assert main(["identify", str(tmp_path / name)]) == 2, name
        out = capsys.readouterr().out
        assert "error" in out and name in out
    # a batch: every record printed, in order, the good clip answered, exit 2
    assert main(["identify", *(str(tmp_path / n) for n in ["good.flac", *bad]), "--json"]) == 2
    recs = json.loads(capsys.readouterr().out)
    assert [r["query"] for r in recs] == [str(tmp_path / n) for n in ["good.flac", *bad]]
    assert recs[0]["matches"][0]["title"] == "Song" and recs[0]["error"] is None
    assert all(r["error"] and r["matches"] == [] for r in recs[1:])
    assert main(["identify", str(good)]) == 0


def test_cli_identify_a_bug_on_one_clip_keeps_the_batch(tmp_path, cli_index, capsys, monkeypatch):
    import json

    import soundfile as sf

    import songmine.fingerprint.query as module
    from songmine.cli._app import main

    y, _ = cli_index
    monkeypatch.setenv("SONGMINE_CACHE", str(tmp_path / "cache"))
    for name in ("a.wav", "boom.wav", "c.wav"):
        sf.write(tmp_path / name, y[5 * SR : 12 * SR], SR)
    real = module.identify

    def flaky(index, clip, **kw):
        if clip.endswith("boom.wav"):
            raise RuntimeError("boom")
        return real(index, clip, **kw)

    monkeypatch.setattr(module, "identify", flaky)
    code = main(["identify", *(str(tmp_path / n) for n in ("a.wav", "boom.wav", "c.wav")), "--json"])
    cap = capsys.readouterr()
    assert code == 70
    recs = json.loads(cap.out)
    assert [bool(r["matches"]) for r in recs] == [True, False, True]
    assert recs[1]["error"] == "internal error: RuntimeError: boom"
    assert "traceback in" in cap.err and "RuntimeError: boom" in (tmp_path / "cache" / "crash.log").read_text()


def test_cli_identify_missing_index_is_a_usage_error(tmp_path):
    from songmine.cli._app import main

    assert main(["identify", str(tmp_path / "x.wav"), "--index", str(tmp_path / "no-index")]) == 2


def test_package_level_identify_is_the_function_even_after_its_module_is_imported():
    import songmine
    import songmine.fingerprint.query  # noqa: F401  (the module that defines it)

    r = songmine.identify(MemoryIndex(), np.zeros(3 * SR, np.float32), name="z")
    assert isinstance(r, QueryResult) and r.query == "z" and r.matches == []


@pytest.mark.corpus
def test_coarse_stage_answers_clean_clips_and_dense_stage_the_rest(cuts_index):
    from songmine.audio import load

    idx, cuts = cuts_index
    y = load(cuts[2], sr=SR)
    clean = y[5 * SR : 15 * SR]
    coarse = search(idx, clean, top=1)
    dense = search(idx, clean, top=1, config=SearchConfig(coarse=False))
    assert coarse[0].track_id == dense[0].track_id and coarse[0].offset == dense[0].offset
    assert coarse[0].confidence >= SearchConfig().stop_confidence
    # the coarse stage looks up the index-density landmarks only: fewer votes, same answer
    assert coarse[0].votes < dense[0].votes
    # a non-member goes through both stages and still gets no match
    other = load(cuts[5], sr=SR)[10 * SR : 20 * SR]
    assert identify(idx, other).matches == []
    assert identify(idx, other, config=SearchConfig(refine_speeds=None)).matches == []


@pytest.mark.corpus
def test_a_tight_hit_budget_keeps_the_right_answer(cuts_index):
    from songmine.audio import load

    idx, cuts = cuts_index
    y = load(cuts[0], sr=SR)
    clip = _noisy(y[3 * SR : 13 * SR], snr_db=10.0)
    full = search(idx, clip, top=1, config=SearchConfig(coarse=False, max_hits=None))
    h, _ = __import__("songmine.fingerprint.landmarks", fromlist=["fingerprint"]).fingerprint(
        clip, idx.config, query=True
    )
    budget = max(idx.lookup(h)[0].shape[0] // 4, 1)
    tight = search(idx, clip, top=1, config=SearchConfig(coarse=False, max_hits=budget))
    assert tight[0].track_id == full[0].track_id and abs(tight[0].offset - full[0].offset) <= 1
    assert tight[0].votes <= full[0].votes


@pytest.mark.corpus
def test_margin_test_on_real_music_only_raises_and_keeps_non_members_out(real_cuts):
    """35 'tracks' (4-s pieces of five real cuts): enough for the runner-up test to run."""
    from songmine.audio import load

    idx = MemoryIndex()
    ys = [load(p, sr=SR) for p in real_cuts]
    for k, y in enumerate(ys[:5]):
        for j in range(7):
            idx.add(y[j * 4 * SR : (j + 1) * 4 * SR], path=f"cut{k}-{j}")
    # dense landmarks at every speed, so the margin test runs on every clip
    on, off = SearchConfig(coarse=False), SearchConfig(coarse=False, margin_alpha=0.0, speed_margin_alpha=0.0)
    per_speed = SearchConfig(coarse=False, margin_alpha=0.0)  # the per-speed test alone
    assert idx.n_tracks >= on.margin_min_tracks
    n_hit = []
    for k in range(5):  # members: 3-s clips inside piece 3, under 0 dB white noise
        clip = _noisy(ys[k][12 * SR + 500 : 15 * SR + 500], snr_db=0.0, seed=k)
        c_on, c_off = search(idx, clip, top=3, config=on), search(idx, clip, top=3, config=off)
        assert c_on and c_off and c_on[0].confidence >= c_off[0].confidence
        c_ps = search(idx, clip, top=3, config=per_speed)
        assert c_ps[0].confidence >= c_off[0].confidence  # the per-speed test only raises, too
        for c in (c_on[0], c_ps[0]):
            if c.confidence >= on.min_confidence:
                assert idx.track(c.track_id).path == f"cut{k}-3"
        n_hit.append(max(c.n_tracks_hit for c in c_on))
    assert max(n_hit) >= on.margin_min_tracks  # the test did run
    for start_s in (2, 11, 20):  # the sixth cut is not indexed
        for snr in (None, 5.0, 0.0):
            y = ys[5][start_s * SR : (start_s + 3) * SR]
            clip = y if snr is None else _noisy(y, snr_db=snr, seed=start_s)
            assert identify(idx, clip).matches == []
            assert identify(idx, clip, config=on).matches == []
            assert identify(idx, clip, config=per_speed).matches == []


def _best_votes(idx, h, t, track_id: int) -> int:
    """Votes of ``track_id``'s best offset bin for query landmarks ``(h, t)``."""
    from songmine.fingerprint.search import expand_query

    h, t = expand_query(h, t, 1)
    tracks, _, votes, _, _ = vote(t, *idx.lookup(h), tolerance=1)
    return int(votes[tracks == track_id][0]) if np.any(tracks == track_id) else 0


@pytest.mark.corpus
def test_moved_peaks_find_a_sped_up_clip_about_as_well_as_resampling(cuts_index):
    """Peaks of a clip played 5 % faster, moved back by 1.05, vote for the right offset of the right track."""
    from songmine.audio import load
    from songmine.fingerprint.landmarks import fingerprint, landmark_peaks, pack_hashes, pair_peaks, speed_fingerprinter

    idx, cuts = cuts_index
    fc = idx.config
    seg = load(cuts[1], sr=SR)[8 * SR + 333 : 8 * SR + 333 + int(10 * SR * 1.05)]
    fast = soxr.resample(seg, 1.05, 1.0).astype(np.float32)  # pitch and tempo 5 % up
    at = speed_fingerprinter(fast, fc)
    resampled = _best_votes(idx, *fingerprint(soxr.resample(fast, 1.0, 1.05).astype(np.float32), fc), 1)
    moved = _best_votes(idx, *at(1.05), 1)
    assert _best_votes(idx, *at(1.0), 1) < 0.25 * moved  # unmoved, the sped-up landmarks mostly miss
    assert moved >= 0.6 * resampled and moved >= 30  # moved back, most are found again
    # the sub-bin offsets matter: moving whole bins finds clearly fewer
    t, f = landmark_peaks(fast, fc)
    tb, fb = np.rint(t * 1.05).astype(np.int64), np.rint(f / 1.05).astype(np.int64)
    o = np.lexsort((fb, tb))
    t1, f1, df, dt = pair_peaks(tb[o], fb[o], dt_min=fc.dt_min, dt_max=fc.dt_max, df_max=fc.df_max, fan_out=fc.fan_out)
    assert _best_votes(idx, pack_hashes(f1, df, dt), t1.astype(np.uint32), 1) < 0.8 * moved


class _CountingIndex:
    """A MemoryIndex that records the hit budget of every lookup (one per speed and stage searched)."""

    def __init__(self, idx: MemoryIndex):
        self.idx, self.config, self.budgets, self.sizes = idx, idx.config, [], []

    def lookup(self, hashes, max_per_hash=None, max_hits=None):
        self.budgets.append(max_hits)
        self.sizes.append(len(hashes))
        return self.idx.lookup(hashes, max_per_hash=max_per_hash, max_hits=max_hits)

    def track(self, track_id):
        return self.idx.track(track_id)

    def profile(self, track_id):
        return None  # like an index built before profiles: the search control alone decides

    @property
    def n_tracks(self):
        return self.idx.n_tracks


#: The search control of before (every coarse speed resampled, no coarse budget, no early dense pass).
_PLAIN = SearchConfig(warp=False, coarse_max_hits=None, lead_margin=None, refine_margin=0.0)


@pytest.mark.corpus
def test_search_control_stops_early_for_members_and_searches_everything_for_non_members(cuts_index):
    from songmine.audio import load

    idx, cuts = cuts_index
    sc = SearchConfig()
    y = load(cuts[3], sr=SR)
    seg = y[6 * SR + 100 : 6 * SR + 100 + int(10 * SR * 1.05)]
    fast = soxr.resample(seg, 1.05, 1.0).astype(np.float32)  # played 5 % faster
    for config in (sc, _PLAIN):
        ci = _CountingIndex(idx)
        c = search(ci, fast, top=1, config=config)
        assert c[0].track_id == 3 and abs(c[0].speed - 1.05) <= 0.011 and c[0].confidence >= sc.stop_confidence
        assert abs(c[0].offset * idx.config.hop_s - (6 * SR + 100) / SR) < 0.1
        assert len(ci.budgets) < len(sc.rates)  # found before the end of the coarse sweep
    # a clip of a track that is not indexed: every rate coarse (within the coarse budget), then a dense
    # pass at 1.00; no track leads anywhere, so nothing would be accepted and the other rates' dense
    # passes (the runner-up sample that could veto an answer) are skipped; then the denser last pass
    other = load(cuts[5], sr=SR)[10 * SR : 20 * SR]
    ci = _CountingIndex(idx)
    assert identify(ci, other, config=sc).matches == []
    assert ci.budgets == [sc.coarse_max_hits] * len(sc.rates) + [sc.max_hits] * 2
    assert ci.sizes[-1] > 2 * ci.sizes[-2]  # three times the peaks
    ci = _CountingIndex(idx)
    assert identify(ci, other, config=_PLAIN).matches == []
    assert ci.budgets == [None] * len(sc.rates) + [sc.max_hits] * (sc.refine_speeds + 1)


@pytest.mark.corpus
def test_a_lead_in_the_coarse_stage_is_refined_at_once(cuts_index):
    """When the coarse stage is not certain but one track leads, the dense pass at that speed comes next."""
    from songmine.audio import load

    idx, cuts = cuts_index
    clip = _noisy(load(cuts[4], sr=SR)[4 * SR : 9 * SR], snr_db=5.0, seed=4)
    n = len(SearchConfig().rates)
    never = dict(
        stop_confidence=1.0, margin_alpha=0.0, speed_margin_alpha=0.0
    )  # nothing is ever certain: every stage runs
    ci = _CountingIndex(idx)
    search(ci, clip, top=1, config=SearchConfig(lead_margin=None, **never))
    assert ci.budgets == [SearchConfig().coarse_max_hits] * n + [SearchConfig().max_hits] * 3
    ci = _CountingIndex(idx)
    c = search(ci, clip, top=1, config=SearchConfig(lead_margin=2.0, **never))
    assert c[0].track_id == 4 and c[0].speed == 1.0
    # the lead at speed 1.00: its grid neighbours next (less lead) — speeds 0.99 and 1.01, tempos 0.97 and
    # 1.03, a semitone up and down — then 1.00 densely (once only)
    assert ci.budgets[:8] == [SearchConfig().coarse_max_hits] * 7 + [SearchConfig().max_hits]
    dense = [size for b, size in zip(ci.budgets, ci.sizes) if b == SearchConfig().max_hits]
    assert len(dense) == len(set(dense)) >= 3  # no rate searched densely twice


@pytest.mark.corpus
def test_a_tight_coarse_budget_keeps_the_right_answer(cuts_index):
    from songmine.audio import load
    from songmine.fingerprint.landmarks import fingerprint

    idx, cuts = cuts_index
    clip = load(cuts[2], sr=SR)[11 * SR : 21 * SR]
    h, _ = fingerprint(clip, idx.config)
    budget = max(idx.lookup(h)[0].shape[0] // 4, 1)
    full = search(idx, clip, top=1, config=SearchConfig(coarse_max_hits=None))
    tight = search(idx, clip, top=1, config=SearchConfig(coarse_max_hits=budget))
    assert tight[0].track_id == full[0].track_id == 2 and tight[0].offset == full[0].offset
    assert tight[0].votes <= full[0].votes


def test_lead_ratio_and_grid_step():
    from songmine.fingerprint.search import _grid_step, _lead_ratio

    def cand(tid, votes):
        return Candidate(tid, 0, votes, votes, 1.0, 0.0)

    assert _lead_ratio([], 4) == 0.0
    assert _lead_ratio([cand(1, 12)], 4) == 3.0  # no runner-up: the floor
    assert _lead_ratio([cand(1, 12), cand(2, 6)], 4) == 2.0
    assert _lead_ratio([cand(2, 6), cand(1, 12)], 4) == 2.0
    assert _grid_step(SearchConfig().speeds) == pytest.approx(0.01)
    assert _grid_step((1.0,)) == 0.0


@pytest.mark.corpus
def test_a_lead_cut_short_by_the_coarse_budget_is_looked_up_again_in_full(cuts_index):
    from songmine.audio import load
    from songmine.fingerprint.landmarks import fingerprint
    from songmine.fingerprint.search import expand_query

    idx, cuts = cuts_index
    clip = _noisy(load(cuts[3], sr=SR)[4 * SR : 18 * SR], snr_db=-5.0, seed=4)
    h, t = expand_query(*fingerprint(clip, idx.config), SearchConfig().dt_jitter)
    budget = idx.lookup(h)[0].shape[0] // 3  # binds: the commonest hashes are left out
    never = dict(stop_confidence=1.0, margin_alpha=0.0, speed_margin_alpha=0.0, lead_margin=None)  # every stage runs
    n = len(SearchConfig().rates)
    ci = _CountingIndex(idx)
    c = search(ci, clip, top=1, config=SearchConfig(coarse_max_hits=budget, **never))
    assert c[0].track_id == 3
    # every speed within the budget, then speed 1.00 (where track 3 leads) again: the same landmarks, in full
    assert ci.budgets[: n + 1] == [budget] * n + [SearchConfig().max_hits]
    assert ci.sizes[n] == ci.sizes[0]
    # a budget that does not bind: no second look
    ci = _CountingIndex(idx)
    search(ci, clip, top=1, config=SearchConfig(coarse_max_hits=10**9, **never))
    assert all(size > 2 * ci.sizes[0] for b, size in zip(ci.budgets, ci.sizes) if b != 10**9)  # dense ones only


@pytest.mark.parametrize("big_ids", [False, True])
def test_distinct_votes_equals_its_definition(rng, big_ids):
    from songmine.fingerprint.scoring import distinct_votes

    n_q, n_hits = 300, 5000
    h = rng.integers(0, 50, n_q).astype(np.uint32)  # few values: many repeats
    t = rng.integers(0, 400, n_q).astype(np.uint32)
    qpos = np.sort(rng.integers(0, n_q, n_hits))
    base = (1 << 30) if big_ids else 0  # ids past the lookup table: the binary-search path
    hit_tracks = (base + rng.integers(0, 40, n_hits)).astype(np.uint32)
    hit_times = (t[qpos].astype(np.int64) + rng.integers(0, 6, n_hits)).astype(np.uint32)
    tracks = np.array([base + 3, base + 17, base + 39, base + 5, base + 99], dtype=np.int64)  # 99: no hits
    offsets = np.array([2, 0, 4, 1, 0], dtype=np.int64)
    got = distinct_votes(h, t, qpos, hit_tracks, hit_times, tracks, offsets, tolerance=1)
    offs = hit_times.astype(np.int64) - t[qpos].astype(np.int64)
    want = [
        len({int(h[q]) for q, tr, o in zip(qpos, hit_tracks, offs) if tr == trk and abs(o - off) <= 1})
        for trk, off in zip(tracks, offsets)
    ]
    assert got.tolist() == want and want[-1] == 0 and min(want[:-1]) > 0


@pytest.mark.corpus
def test_without_a_lead_on_a_cut_short_index_the_dense_long_shot_is_skipped(cuts_index):
    """Probes cut short by the budget (as on a big index) and no track leading anywhere: one full coarse
    look at the top speed, and no dense pass; with a budget that does not bind, the dense long shot runs."""
    from songmine.audio import load
    from songmine.fingerprint.landmarks import fingerprint
    from songmine.fingerprint.search import expand_query

    idx, cuts = cuts_index
    # an indexed track played 25 % faster, outside the speed grid: chance hits only, but many of them
    other = soxr.resample(load(cuts[0], sr=SR)[2 * SR : 15 * SR], 1.25, 1.0).astype(np.float32)
    h, _ = expand_query(*fingerprint(other, idx.config), SearchConfig().dt_jitter)
    assert idx.lookup(h)[0].shape[0] > 20
    budget = 4  # cuts the lookups short
    n = len(SearchConfig().rates)
    ci = _CountingIndex(idx)
    assert identify(ci, other, config=SearchConfig(coarse_max_hits=budget)).matches == []
    assert ci.budgets == [budget] * n + [SearchConfig().max_hits]
    assert ci.sizes[n] in ci.sizes[:n]  # the coarse landmarks of one of the speeds, not the dense ones
    ci = _CountingIndex(idx)
    assert identify(ci, other, config=SearchConfig(coarse_max_hits=10**9)).matches == []
    assert ci.budgets == [10**9] * n + [SearchConfig().max_hits] * 2 and ci.sizes[n] > 2 * max(ci.sizes[:n])


def test_rates_are_the_speeds_then_the_tempos_then_the_pitches():
    sc = SearchConfig(speeds=(1.0, 1.02), tempos=(1.03, 1.0), pitches=(1.06,))
    assert sc.rates == ((1.0, 1.0), (1.02, 1.02), (1.03, 1.0), (1.0, 1.06))
    assert SearchConfig().rates[0] == (1.0, 1.0) and len(SearchConfig().rates) == 11 + 6 + 2
    with pytest.raises(ParameterError, match="tempos"):
        SearchConfig(tempos=(3.0,))
    with pytest.raises(ParameterError, match="pitches"):
        SearchConfig(pitches=(0.1,))
    with pytest.raises(ParameterError, match="rate_refine_margin"):
        SearchConfig(rate_refine_margin=float("nan"))


def _eval_extra():
    from conftest import need

    try:
        import pedalboard  # noqa: F401
    except ImportError:
        need(False, "the eval extra (pedalboard) is not installed: pip install -e '.[eval]'")


@pytest.mark.corpus
def test_a_key_change_is_found(cuts_index):
    """Rubber Band's pitch shift with the tempo kept, a semitone up and down, 10-s clips of each
    indexed track: the pitch axis (the clip's peaks moved in frequency only) finds them all; the
    turntable grid alone (a speed that matches the pitch stretches time by 6 % too) misses some."""
    _eval_extra()
    from songmine.audio import load
    from songmine.evaluation.degrade import pitch_shift

    idx, cuts = cuts_index
    new = old = 0
    for semitones in (1, -1):
        for k in range(5):
            clip = pitch_shift(load(cuts[k], sr=SR)[6 * SR : 16 * SR], SR, semitones)
            c = search(idx, clip, top=1)
            assert c and c[0].track_id == k and c[0].confidence >= 0.5, (semitones, k)
            assert abs(c[0].offset * idx.config.hop_s - 6.0) < 0.5  # the eval's offset tolerance
            new += 1
            o = search(idx, clip, top=1, config=SearchConfig(tempos=(), pitches=()))
            old += bool(o and o[0].track_id == k and o[0].confidence >= 0.5)
    assert new == 10 and old < new


@pytest.mark.corpus
@pytest.mark.parametrize("factor", [1.08, 0.92])
def test_a_tempo_change_is_found(cuts_index, factor):
    """Rubber Band's tempo change with the pitch kept, 5-s clips of each indexed track."""
    _eval_extra()
    from songmine.audio import load
    from songmine.evaluation.degrade import time_stretch

    idx, cuts = cuts_index
    for k in range(5):
        y = load(cuts[k], sr=SR)
        clip = time_stretch(y[6 * SR : 6 * SR + int(5 * SR * factor)], SR, factor)
        c = search(idx, clip, top=1)
        assert c and c[0].track_id == k and c[0].confidence >= 0.5
        assert abs(c[0].offset * idx.config.hop_s - 6.0) < 0.5


@pytest.mark.corpus
@pytest.mark.parametrize("condition", ["clean", "white5", "pink5", "reverb_noise10"])
def test_a_longer_clip_answers_what_the_shorter_one_inside_it_answered(cuts_index, condition):
    """A 5-s clip answered is answered the same (track and offset) when it goes on to 10 s: more of
    the same recording only adds votes to its bin (the margin and null tests scale with the clip)."""
    from songmine.audio import load
    from songmine.evaluation.degrade import degrade

    idx, cuts = cuts_index
    answered = 0
    for k in range(5):
        y = load(cuts[k], sr=SR)
        for start in (2, 9, 17):
            long = degrade(y[start * SR : (start + 10) * SR], SR, condition, random_state=10 * k + start)
            short = identify(idx, long[: 5 * SR])
            if not short.matches:
                continue
            answered += 1
            full = identify(idx, long)
            assert full.matches, (k, start)
            assert full.matches[0].track_id == short.matches[0].track_id == k
            assert abs(full.matches[0].offset_s - short.matches[0].offset_s) <= 0.05
            assert full.matches[0].confidence >= min(short.matches[0].confidence, 0.99)
    assert answered >= 12  # the invariant was exercised


@pytest.mark.corpus
def test_a_voice_over_the_music_is_found_by_the_denser_last_pass(cuts_index):
    """Talk-over at 0 dB: the voice's harmonics take most of the query's peak slots. The last dense
    pass with three times the peaks (only when nothing else was accepted) reaches the music's; a
    clip of a track that is not indexed still gets no answer."""
    _eval_extra()
    from songmine.audio import load
    from songmine.evaluation.degrade import degrade

    idx, cuts = cuts_index
    off = SearchConfig(boost_peaks=1.0)
    with_boost = without = 0
    for k in range(5):
        y = load(cuts[k], sr=SR)
        for start in (2, 9, 17):
            for seed in range(3):
                clip = degrade(y[start * SR : (start + 5) * SR], SR, "speech0", random_state=seed)
                a, b = search(idx, clip, top=1), search(idx, clip, top=1, config=off)
                with_boost += bool(a and a[0].track_id == k and a[0].confidence >= 0.5)
                without += bool(b and b[0].track_id == k and b[0].confidence >= 0.5)
                assert not (b and b[0].confidence >= 0.5 and b[0].track_id != k)
                assert not (a and a[0].confidence >= 0.5 and a[0].track_id != k)
    assert with_boost >= without + 3
    y = load(cuts[5], sr=SR)
    for start in (2, 9, 17):
        clip = degrade(y[start * SR : (start + 5) * SR], SR, "speech0", random_state=1)
        assert identify(idx, clip).matches == []
    with pytest.raises(ParameterError, match="boost_peaks"):
        SearchConfig(boost_peaks=0.5)


@pytest.fixture(scope="module")
def demo_index(demo_corpus, demo_tracks):
    """A minute (from 30 s in) of each of 30 demo tracks indexed, and four other tracks held out:
    enough tracks for the runner-up tests (``margin_min_tracks``)."""
    from conftest import need

    from songmine.audio import load

    long = sorted((t for t in demo_tracks if t.duration_s >= 100), key=lambda t: t.file)
    need(len(long) >= 34, f"the demo corpus has {len(long)} tracks of 100 s or more, the test needs 34")
    idx = MemoryIndex()
    for t in long[:30]:
        idx.add(load(t.path(demo_corpus), sr=SR, offset=30.0, duration=60.0), path=t.file)
    held = [load(t.path(demo_corpus), sr=SR, offset=30.0, duration=60.0) for t in long[30:34]]
    return idx, [t.path(demo_corpus) for t in long[:30]], held


@pytest.mark.corpus
def test_a_voice_over_the_music_is_found_by_the_talk_over_pass(demo_index):
    """Talk-over at 0 dB: stage 2c picks peaks in small neighbourhoods (the voice's harmonic comb no
    longer hides the music's peaks between its teeth), lasting ones first; clips that no earlier
    stage answered are answered, none wrongly, and clips of tracks not indexed get no answer."""
    _eval_extra()
    from songmine.audio import load
    from songmine.evaluation.degrade import degrade

    idx, paths, held = demo_index
    off = SearchConfig(talk_peaks=0.0)
    with_talk = without = 0
    for k in range(0, 30, 2):
        y = load(paths[k], sr=SR, offset=30.0, duration=60.0)
        for start in (5, 25, 45):
            clip = degrade(y[start * SR : (start + 5) * SR], SR, "speech0", random_state=k + start)
            a, b = search(idx, clip, top=1), search(idx, clip, top=1, config=off)
            with_talk += bool(a and a[0].track_id == k and a[0].confidence >= 0.5)
            without += bool(b and b[0].track_id == k and b[0].confidence >= 0.5)
            assert not (a and a[0].confidence >= 0.5 and a[0].track_id != k), (k, start)
    assert with_talk >= without + 4, (with_talk, without)
    for j, y in enumerate(held):
        for start in (5, 25, 45):
            clip = degrade(y[start * SR : (start + 5) * SR], SR, "speech0", random_state=j + start)
            c = search(idx, clip, top=1)
            assert not (c and c[0].confidence >= 0.5), (j, start)
    with pytest.raises(ParameterError, match="talk_peaks"):
        SearchConfig(talk_peaks=0.5)
    with pytest.raises(ParameterError, match="talk_f_radius"):
        SearchConfig(talk_f_radius=-1)
