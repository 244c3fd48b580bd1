"""The harness end to end on real music: plan, cut, degrade, build, query, summarise, render.

A small cross-correlation identifier written here is the reference method
(it finds exact copies and nothing else), so the harness's arithmetic can be
checked against what must happen; the landmark method runs through the same
path when it is available on this branch.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from songmine.errors import ParameterError
from songmine.evaluation.config import EvalConfig
from songmine.evaluation.harness import evaluate
from songmine.evaluation.identifiers import BuildStats, Identifier
from songmine.evaluation.queries import cut_queries, plan_queries, split_library
from songmine.evaluation.report import plot_report, report_markdown
from songmine.evaluation.resources import PeakMemory
from songmine.methods import Method, make_identifier, register_method
from songmine.records import Match, QueryResult

SR = 4000  # the toy identifier works on a coarse rate: fast, and enough for exact copies


class XcorrIdentifier:
    """Normalised cross-correlation against every indexed track (exact copies only)."""

    name = "xcorr"
    sr = SR

    def __init__(self, index_path=None, options=None):
        self.min_ncc = float((options or {}).get("min_ncc", 0.6))
        self.tracks: list[tuple[str, np.ndarray]] = []

    def build(self, paths, *, jobs, progress):
        from songmine.audio import load

        seconds = 0.0
        for i, p in enumerate(paths):
            y = load(p, sr=SR)
            self.tracks.append((str(p), y))
            seconds += y.size / SR
            if progress:
                progress(i + 1, len(paths))
        return BuildStats(
            n_tracks=len(self.tracks),
            audio_seconds=seconds,
            seconds=0.5,
            index_bytes=sum(y.nbytes for _, y in self.tracks),
        )

    def query(self, clip, *, name):
        from scipy.signal import fftconvolve

        best = None
        q = (clip - clip.mean()) / (np.linalg.norm(clip - clip.mean()) + 1e-12)
        for tid, (_path, y) in enumerate(self.tracks):
            num = fftconvolve(y, q[::-1], mode="valid")
            csum = np.concatenate([[0.0], np.cumsum(y.astype(np.float64))])
            csq = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
            n = q.size
            s1, s2 = csum[n:] - csum[:-n], csq[n:] - csq[:-n]
            den = np.sqrt(np.maximum(s2 - s1 * s1 / n, 1e-12))
            ncc = num / den
            k = int(np.argmax(ncc))
            if best is None or ncc[k] > best[0]:
                best = (float(ncc[k]), tid, k / SR)
        matches = []
        if best and best[0] >= self.min_ncc:
            matches.append(
                Match(
                    track_id=best[1],
                    path=self.tracks[best[1]][0],
                    offset_s=best[2],
                    score=best[0],
                    confidence=min(1.0, best[0]),
                )
            )
        return QueryResult(query=name, matches=matches)

    def close(self):
        self.tracks.clear()


@pytest.fixture
def cuts_dir(real_cuts, tmp_path):
    d = tmp_path / "lib"
    d.mkdir()
    for p in real_cuts[:3]:
        (d / p.name).symlink_to(p)
    return d


def _config(**kw):
    base = dict(
        tracks=2,
        durations=(3.0,),
        conditions=("clean", "white0"),
        queries_per_cell=4,
        nonmember_queries=4,
        seed=5,
        sr=8000,
        thresholds=(0.5, 0.9),
    )
    base.update(kw)
    return EvalConfig(**base)


def test_config_is_validated():
    with pytest.raises(ParameterError, match="conditions"):
        EvalConfig(conditions=("clean", "white3"))
    with pytest.raises(ParameterError, match="tracks"):
        EvalConfig(tracks=0)
    with pytest.raises(ParameterError, match="durations"):
        EvalConfig(durations=())
    with pytest.raises(ParameterError, match="threshold_on"):
        EvalConfig(threshold_on="p")
    with pytest.raises(ParameterError, match="unknown"):
        make_identifier("nope")


@pytest.mark.corpus
def test_split_and_plan_are_deterministic_and_cover_every_cell(cuts_dir):
    cfg = _config()
    a = split_library(cuts_dir, cfg)
    b = split_library(cuts_dir, cfg)
    assert a == b and len(a[0]) == 2 and len(a[1]) == 1 and not set(a[0]) & set(a[1])
    specs = plan_queries(*a, cfg)
    assert specs == plan_queries(*b, cfg)
    members = [s for s in specs if s.member]
    assert len(members) == 2 * 4 and len(specs) - len(members) == 4
    assert {(s.condition, s.duration_s) for s in members} == {("clean", 3.0), ("white0", 3.0)}
    # each cell uses every indexed track (drawn without replacement, cycled)
    assert {s.track for s in members if s.condition == "clean"} == {str(p) for p in a[0]}
    assert all(s.track == str(a[1][0]) for s in specs if not s.member)
    with pytest.raises(ParameterError, match="needs at least"):
        split_library(cuts_dir, _config(tracks=3))
    small = split_library(cuts_dir, _config(tracks=40), clamp_tracks=True)
    assert len(small[0]) == 2 and len(small[1]) == 1


@pytest.mark.corpus
def test_queries_are_reproducible_and_not_silent(cuts_dir):
    cfg = _config(conditions=("white5", "speed-5"))
    specs = plan_queries(*split_library(cuts_dir, cfg), cfg)
    one = list(cut_queries(specs, cfg))
    two = list(cut_queries(specs, cfg))
    assert len(one) == len(specs)
    for q1, q2 in zip(one, two):
        assert q1.offset_s == q2.offset_s and np.array_equal(q1.clip, q2.clip)
        assert q1.clip.size == int(q1.spec.duration_s * cfg.sr) and q1.clip.dtype == np.float32
        assert 10 * np.log10(np.mean(q1.clip.astype(np.float64) ** 2)) > cfg.silence_dbfs
    other = EvalConfig(**{**asdict(cfg), "seed": 6})
    assert [q.offset_s for q in one] != [
        q.offset_s for q in cut_queries(plan_queries(*split_library(cuts_dir, other), other), other)
    ]


@pytest.mark.corpus
def test_end_to_end_with_an_exact_copy_identifier(cuts_dir, tmp_path):
    cfg = _config()
    ident = XcorrIdentifier()
    assert isinstance(ident, Identifier)
    rep = evaluate(cuts_dir, ident, cfg)
    cells = {(c.condition, c.duration_s): c for c in rep.cells}
    # clean copies are found, at the right offset; nothing held out is claimed
    clean = cells[("clean", 3.0)]
    assert clean.n == 4 and clean.top1 == 100.0 and clean.offset_ok == 100.0
    assert clean.peer_top1 == 97.5 and clean.peer == "olaf"
    assert rep.false_positives["n"] == 4 and rep.false_positives["rate"] == 0.0
    # at 0 dB SNR the correlation drops to ~0.7: some, not necessarily all, survive min_ncc
    assert cells[("white0", 3.0)].n == 4
    assert rep.pooled["3"]["n"] == 8
    assert rep.n_queries == 12 and rep.n_errors == 0
    assert rep.latency_ms["n"] == 12 and rep.latency_ms["median"] > 0
    assert rep.build["n_tracks"] == 2 and rep.build["peak_rss_mb"] > 50
    assert rep.offset_error_s["n"] == sum(c.correct for c in rep.cells)
    answered = [o for o in rep.outcomes if o.answered]
    assert sum(r["n"] for r in rep.reliability) == len(answered)
    # the threshold sweep is monotone: a higher bar accepts no more answers
    t = rep.thresholds
    assert [s["threshold"] for s in t] == [0.5, 0.9] and t[0]["accepted"] >= t[1]["accepted"]
    assert t[0]["accepted"] == len([o for o in answered if o.score >= 0.5])
    # renders: JSON-able, Markdown, PNG
    from songmine.cli._app import jsonable

    json.dumps(jsonable(rep), allow_nan=False)
    md = report_markdown(rep)
    assert "| clean | 100.0 (n=4; peer 97.5) |" in md
    plot_report(rep, tmp_path / "eval.png")
    assert (tmp_path / "eval.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.corpus
def test_cli_eval_with_a_registered_method(cuts_dir, tmp_path):
    from typer.testing import CliRunner

    from songmine.cli import app

    register_method(
        Method("xcorr", "exact cross-correlation (a test reference)", None, XcorrIdentifier, indexable=False)
    )
    md = tmp_path / "r.md"
    res = CliRunner().invoke(
        app,
        [
            "eval",
            str(cuts_dir),
            "--method",
            "xcorr",
            "--tracks",
            "2",
            "--durations",
            "3",
            "--conditions",
            "clean,gain-20",
            "--queries-per-cell",
            "2",
            "--nonmember-queries",
            "2",
            "--sr",
            "8000",
            "--option",
            "min_ncc=0.5",
            "--json",
            "--markdown",
            str(md),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["method"] == "xcorr" and data["n_queries"] == 6
    assert {c["condition"] for c in data["cells"]} == {"clean", "gain-20"}
    assert all(c["top1"] == 100.0 for c in data["cells"])
    assert md.read_text().startswith("# songmine eval")
    bad = CliRunner().invoke(app, ["eval", str(cuts_dir), "--conditions", "clean,loud"])
    assert bad.exit_code == 2 and "loud" in bad.output


def test_peak_memory_sees_child_processes():
    import subprocess
    import sys

    code = "import numpy as np, time; a = np.ones(200_000_000 // 8); time.sleep(0.5)"
    with PeakMemory(interval=0.02) as alone:
        pass
    with PeakMemory(interval=0.02) as mem:
        subprocess.run([sys.executable, "-c", code], check=True)
    assert mem.peak_mb > alone.peak_mb + 150


@pytest.mark.corpus
def test_end_to_end_with_the_landmark_method(cuts_dir):
    """The real method through the same harness: 3 real cuts, 2 conditions × 1 duration."""
    cfg = _config(durations=(5.0,), conditions=("clean", "white15"), queries_per_cell=4, thresholds=())
    ident = make_identifier("landmark")
    try:
        rep = evaluate(cuts_dir, ident, cfg, jobs=1)
    finally:
        ident.close()
    cells = {c.condition: c for c in rep.cells}
    assert rep.method == "landmark" and rep.n_queries == 12 and rep.n_errors == 0
    assert cells["clean"].n == 4 and cells["clean"].top1 >= 75.0
    assert cells["clean"].offset_ok == 100.0
    assert rep.false_positives["n"] == 4
    assert rep.build["n_tracks"] == 2 and rep.build["index_mb"] > 0 and rep.build["x_realtime"] > 0
    assert rep.latency_ms["n"] == 12


def _peers_module():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"
    spec = importlib.util.spec_from_file_location("songmine_bench_peers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_peers_script_subsets_the_plan_and_parses_audfprint():
    from songmine.evaluation.queries import QuerySpec

    peers = _peers_module()
    specs = [QuerySpec(i, "t.ogg", True, c, 3.0) for i, c in enumerate(["clean", "clean", "clean", "white5"])]
    specs += [QuerySpec(4 + i, "h.ogg", False, "clean", 3.0) for i in range(3)]
    sub = peers._subset(specs, 2, 1)
    assert [s.qid for s in sub] == [0, 1, 3, 4]
    line = (
        "Matched /tmp/q/q00012_clean_5s_x@1.00.wav 5.0 sec 321 raw hashes as /music/a b.ogg at "
        "  42.3 s with    17 of    40 common hashes at rank  0"
    )
    m = peers.Audfprint._line.match(line)
    assert m and m.group(1).endswith("q00012_clean_5s_x@1.00.wav") and m.group(2) == "/music/a b.ogg"
    assert float(m.group(3)) == 42.3 and int(m.group(4)) == 17
    assert peers.Audfprint._line.match("NOMATCH /tmp/q/q00013.wav 5.0 sec 12 raw hashes") is None


def test_peers_script_parses_olaf_and_audfprint2_and_refuses_missing_peers(tmp_path):
    peers = _peers_module()
    out = "12, 0.11, 4.26, /music/a, b.ogg, 2374722986, 10.11, 14.26\n7, 0.50, 3.00, /music/c.ogg, 11, 90.00, 92.50\n"
    path, offset, score = peers.Olaf.parse(out)
    assert path == "/music/a, b.ogg" and abs(offset - 10.0) < 1e-9 and score == 12
    assert peers.Olaf.parse("0, 0.00, 0.00, , 0, 0.00, 0.00\n") == (None, None, None)
    line = (
        "DEBUG:audfprint2:Matched /tmp/q/q00001_clean_3s_x@2.00.wav 3.0 sec 96 raw hashes as /music/a.ogg "
        "at   60.0 s with    21 of    21 common hashes at rank  0"
    )
    m = peers.Audfprint2._line.match(line)
    assert m and m.group(2) == "/music/a.ogg" and float(m.group(3)) == 60.0
    missing = str(tmp_path / "nope")
    for make, flag in [
        (lambda: peers.Olaf(missing), "--olaf-bin"),
        (lambda: peers.Qfp(missing), "--qfp-python"),
        (lambda: peers.Audfprint2(missing), "--audfprint2-bin"),
        (lambda: peers.Audfprint(tmp_path, missing), "--audfprint"),
    ]:
        with pytest.raises(SystemExit, match=flag):
            make()


def test_peers_script_keeps_every_finished_batch_and_resumes_where_a_stopped_run_ended(tmp_path):
    from songmine.evaluation.config import EvalConfig
    from songmine.evaluation.identifiers import BuildStats
    from songmine.evaluation.queries import QuerySpec

    peers = _peers_module()

    class Lookup(peers.Peer):
        """A peer whose index is a file naming each clip's track; it fails on the clips in ``fail``."""

        name, batch, jobs = "lookup", 2, 1

        def __init__(self, fail=()):
            self.fail, self.asked, self.builds, self.db = set(fail), [], 0, None

        def build(self, paths, workdir):
            self.builds += 1
            self.db = workdir / "db.json"
            self.db.write_text(json.dumps({f"q{i}.wav": str(paths[i % 2]) for i in range(7)}))
            return BuildStats(n_tracks=len(paths), seconds=1.0, index_bytes=self.db.stat().st_size)

        def state(self):
            return {"db": str(self.db)}

        def restore(self, state):
            self.db = Path(state["db"])

        def match_batch(self, wavs):
            if self.fail & {w.name for w in wavs}:
                raise RuntimeError("the peer crashed")
            self.asked += [w.name for w in wavs]
            db = json.loads(self.db.read_text())
            return {str(w): (db[w.name], 1.5, 10.0) for w in wavs if w.name != "q4.wav"}  # q4: no answer

    tracks = [tmp_path / "a.ogg", tmp_path / "b.ogg"]
    rows = [(QuerySpec(i, str(tracks[i % 2]), True, "clean", 3.0), 1.5, tmp_path / f"q{i}.wav", None) for i in range(7)]
    cfg, durations, work = EvalConfig(), {str(t): 60.0 for t in tracks}, tmp_path / "peers" / "lookup"
    work.mkdir(parents=True)
    journal = peers.Journal(work, {"seed": 0, "durations": (3.0,)})
    first = Lookup(fail={"q2.wav"})
    with pytest.raises(RuntimeError, match="crashed"):
        peers.run_peer(first, tracks, rows, cfg, work, durations, journal)
    # batches of 2: the second one failed, the others finished and are kept
    assert first.asked == ["q0.wav", "q1.wav", "q4.wav", "q5.wav", "q6.wav"] and first.builds == 1
    answers, cpu, wall, n = journal.load_answers()
    assert sorted(answers) == [str(tmp_path / f"q{i}.wav") for i in (0, 1, 4, 5, 6)] and n == 5 and wall >= 0
    # --partial: the answers so far, no more queries, no new build
    again = Lookup()
    _, partial = peers.run_peer(again, tracks, rows[:2], cfg, work, durations, journal, more=False)
    assert again.asked == [] and again.builds == 0 and [o.correct for o in partial] == [True, True]
    # a new process goes on: the saved build, only the queries not answered yet
    later = Lookup()
    build, outcomes = peers.run_peer(later, tracks, rows, cfg, work, durations, journal)
    assert later.builds == 0 and build.n_tracks == 2 and build.audio_seconds == 120.0
    assert later.asked == ["q2.wav", "q3.wav"]
    assert [o.correct for o in outcomes] == [True, True, True, True, False, True, True]
    assert not outcomes[4].answered and outcomes[0].top_offset_s == 1.5
    assert journal.load_answers()[3] == 7 and all(o.cpu_s is not None for o in outcomes)
    # a line cut short by a stop while it was written is skipped, the rest kept
    with open(work / "answers.jsonl", "a") as fh:
        fh.write('{"session": "x", "answ')
    assert len(journal.load_answers()[0]) == 7
    # a saved run with other settings is refused, not mixed in
    with pytest.raises(SystemExit, match="other settings.*seed"):
        peers.run_peer(
            Lookup(), tracks, rows, cfg, work, durations, peers.Journal(work, {"seed": 1, "durations": (3.0,)})
        )


def test_peers_chromaprint_search_finds_the_planted_offset_and_measures_the_margin(rng):
    peers = _peers_module()
    lengths = [500, 37, 800, 650]
    ref = rng.integers(0, 2**32, sum(lengths), dtype=np.uint32)
    bounds = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    m = 40
    query = ref[bounds[2] + 123 : bounds[2] + 123 + m].copy()
    flips = rng.random((m, 32)) < 0.15  # a 15 % bit-error rate
    query ^= (flips * (np.uint32(1) << np.arange(32, dtype=np.uint32))).sum(axis=1).astype(np.uint32)
    errors, offsets, spread = peers.chromaprint_search(query, ref, bounds, block=97)  # several blocks
    assert offsets[2] == 123 and errors[2] == flips.sum()
    assert errors[1] == 32 * m + 1  # shorter than the query: never a candidate
    # the reference: every start inside a track, counted bit by bit
    for t in (0, 3):
        track = ref[bounds[t] : bounds[t + 1]]
        want = [
            sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(track[o : o + m], query))
            for o in range(len(track) - m + 1)
        ]
        assert errors[t] == min(want) and offsets[t] == int(np.argmin(want))
    assert 10 < spread < 40  # about sqrt(32 m) / 2 = 17.9 for random bits
    best, margin = peers.chromaprint_margin(errors, spread)
    assert best == 2 and margin > 5
    # a query from nowhere: the best and the runner-up are both chance minima
    errors0, _, spread0 = peers.chromaprint_search(rng.integers(0, 2**32, m, dtype=np.uint32), ref, bounds)
    assert peers.chromaprint_margin(errors0, spread0)[1] < 2
    # a query spanning two tracks is not a match in either
    errors2, _, _ = peers.chromaprint_search(ref[bounds[1] - 10 : bounds[1] + 30].copy(), ref, bounds)
    assert errors2.min() > 0


def test_peers_chromaprint_parses_fpcalc_and_refuses_a_missing_fpcalc(tmp_path):
    peers = _peers_module()
    fp = peers.parse_fpcalc_raw("DURATION=3\nFINGERPRINT=2584587964,3188565692,3205477036\n")
    assert fp.dtype == np.uint32 and fp.tolist() == [2584587964, 3188565692, 3205477036]
    assert peers.parse_fpcalc_raw("DURATION=1\nFINGERPRINT=\n").size == 0
    assert peers.parse_fpcalc_raw("").size == 0
    with pytest.raises(SystemExit, match="--fpcalc.*libchromaprint-tools"):
        peers.Chromaprint(str(tmp_path / "no-fpcalc"))


def test_defaults_cover_every_condition_and_one_to_ten_seconds():
    from songmine.evaluation.degrade import CONDITIONS

    cfg = EvalConfig()
    assert cfg.conditions == CONDITIONS and len(CONDITIONS) == 22
    assert cfg.durations == (1.0, 2.0, 3.0, 5.0, 10.0)


@pytest.mark.corpus
def test_real_world_clips_have_the_nominal_length_at_one_and_two_seconds(cuts_dir):
    from songmine.evaluation.degrade import REAL_WORLD_CONDITIONS

    cfg = _config(conditions=REAL_WORLD_CONDITIONS, durations=(1.0, 2.0), queries_per_cell=1, nonmember_queries=2)
    specs = plan_queries(*split_library(cuts_dir, cfg), cfg)
    one = list(cut_queries(specs, cfg))
    assert len(one) == len(specs) == 9 * 2 + 2
    for q, q2 in zip(one, cut_queries(specs, cfg)):
        assert q.clip.size == int(q.spec.duration_s * cfg.sr) and np.all(np.isfinite(q.clip))
        assert np.array_equal(q.clip, q2.clip)


@pytest.mark.corpus
def test_cli_eval_stops_at_once_when_the_eval_extra_is_missing(cuts_dir, monkeypatch):
    import sys

    from typer.testing import CliRunner

    from songmine.cli import app

    monkeypatch.setitem(sys.modules, "pedalboard", None)  # as if songmine[eval] were not installed
    res = CliRunner().invoke(
        app,
        [
            "eval",
            str(cuts_dir),
            "--tracks",
            "2",
            "--conditions",
            "clean,tempo+4",
            "--durations",
            "3",
            "--queries-per-cell",
            "1",
            "--nonmember-queries",
            "1",
        ],
    )
    assert res.exit_code == 2
    assert "songmine[eval]" in res.output and "Traceback" not in res.output
    assert "indexing" not in res.output  # refused before any work
