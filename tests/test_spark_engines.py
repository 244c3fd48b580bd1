"""Indexing and identification on Spark (local[2]) give what the local engine gives, on real music.

Equality is exact: the same tracks and postings (by content, as track ids follow completion
order in both engines), the same identify records bit for bit, the same timelines. One
SparkSession is shared by the module; without Java/pyspark the tests skip locally and FAIL
under CI=true.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import need

from songmine.errors import EngineError

pytestmark = [pytest.mark.spark, pytest.mark.corpus, pytest.mark.slow]

SR = 22050


@pytest.fixture(scope="module")
def spark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need(False, "pyspark is not installed (pip install 'songmine[spark]')")
    from songmine.spark import get_session

    try:
        return get_session("local[2]")
    except EngineError as exc:
        need(False, f"Spark cannot start here: {exc}")


def content(ix) -> dict:
    """Per sha256: the track's catalogue facts, its postings (sorted) and its profile."""
    tracks = {t.track_id: t for t in ix.tracks()}
    out = {}
    for tid, (h, t) in ix.landmarks().items():
        r = tracks[tid]
        order = np.lexsort((t, h))
        prof = ix.profile(tid)
        out[r.sha256] = (
            r.path,
            r.duration_s,
            r.n_hashes,
            r.title,
            r.artist,
            r.album,
            h[order].tobytes(),
            t[order].tobytes(),
            None if prof is None else prof.to_bytes(),
        )
    return out


@pytest.fixture(scope="module")
def music(real_cuts, tmp_path_factory):
    """Four real cuts and a file that is not audio, in one folder."""
    import shutil

    root = tmp_path_factory.mktemp("spark-music")
    for c in real_cuts[:4]:
        shutil.copyfile(c, root / c.name)
    (root / "broken.mp3").write_bytes(b"ID3" + b"\x00" * 64 + b"not really an mp3 " * 50)
    return root


@pytest.fixture(scope="module")
def local_index(music, tmp_path_factory):
    from songmine.fingerprint.index import Index, index_files

    path = tmp_path_factory.mktemp("ix-local") / "index"
    with Index(path, create=True) as ix:
        report = index_files(ix, [music], jobs=2)
    assert report.added == 4 and [p for p, _ in report.failed] == [str(music / "broken.mp3")]
    return path


def test_index_on_spark_has_the_local_postings_and_resumes(spark, music, local_index, tmp_path):
    from songmine.fingerprint.index import Index
    from songmine.spark.index import index_files_spark

    files = sorted(p for p in music.iterdir() if p.suffix == ".flac")
    with Index(tmp_path / "ix", create=True) as ix:
        first = index_files_spark(ix, files[:2], session=spark, batch_tracks=1)  # two commits, merged at the end
        assert first.added == 2 and not first.failed
        report = index_files_spark(ix, [music], session=spark, files_per_task=1)
        assert (report.added, report.unchanged) == (2, 2)  # resumed: the first two are not decoded again
        assert [(p, e.split(": ", 1)[0]) for p, e in report.failed] == [(str(music / "broken.mp3"),) * 2]
        assert ix.verify() == []
        got = content(ix)
        again = index_files_spark(ix, [music], session=spark)
        assert (again.added, again.unchanged, len(again.failed)) == (0, 4, 1)
    with Index(local_index) as ix:
        want = content(ix)
    assert len(want) == 4 and got == want


def _crash_on_long(y, config):
    """An extractor that kills its Python process on the one file longer than 29.9 s, like a decoder crash."""
    from songmine.fingerprint.landmarks import fingerprint

    if y.shape[0] > 29.9 * config.sr:
        os._exit(3)
    return fingerprint(y, config)


def test_a_task_that_dies_fails_only_its_file(spark, tmp_path, real_cuts, synth_music):
    from pyspark import cloudpickle

    from songmine.fingerprint.index import Index
    from songmine.spark.index import index_files_spark

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # executors cannot import this test module
    folder = tmp_path / "m"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"short{i}.wav", synth_music(sr=SR, seconds=6.0, seed=i), SR)
    import shutil

    shutil.copyfile(real_cuts[0], folder / "long.flac")  # 30 s
    with Index(tmp_path / "ix", create=True) as ix:
        report = index_files_spark(ix, [folder], session=spark, files_per_task=4, extractor=_crash_on_long)
        assert report.added == 3
        assert [p for p, _ in report.failed] == [str(folder / "long.flac")]
        assert "the Spark task died while processing this file" in report.failed[0][1]
        assert sorted(os.path.basename(t.path) for t in ix.tracks()) == ["short0.wav", "short1.wav", "short2.wav"]
    assert spark.sparkContext.parallelize([1, 2], 2).sum() == 3  # the session survived


@pytest.fixture(scope="module")
def clips(real_cuts, tmp_path_factory):
    """Five-second excerpts of the four indexed cuts (one with noise, one 2 % faster), one of a track
    not in the index, and a file that is not audio."""
    import soxr

    from songmine.audio import load

    root = tmp_path_factory.mktemp("clips")
    g = np.random.default_rng(5)
    out = []
    for i, cut in enumerate(real_cuts[:5]):
        y = load(cut, sr=SR)[(4 + 3 * i) * SR : (9 + 3 * i) * SR]
        if i == 1:
            y = y + 0.05 * g.standard_normal(y.size).astype(np.float32)
        if i == 2:
            y = soxr.resample(y, SR, SR / 1.02).astype(np.float32)
        sf.write(root / f"clip{i}.wav", y, SR)
        out.append(root / f"clip{i}.wav")
    (root / "not-audio.mp3").write_text("hello")
    out.append(root / "not-audio.mp3")
    return out


def test_identify_on_spark_answers_each_clip_as_local(spark, local_index, clips):
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.query import identify
    from songmine.spark.identify import identify_clips_spark

    with Index(local_index) as ix:
        local = [identify(ix, str(c), top=3) for c in clips]
    got = identify_clips_spark(local_index, clips, top=3, session=spark, n_partitions=3)
    assert [o.result for o in got] == local  # every field: matches, offsets, scores, confidences, errors
    assert [o.kind for o in got] == ["ok"] * 5 + ["ok"]
    assert [bool(r.matches) for r in local] == [True, True, True, True, False, False]
    assert "not a readable audio file" in local[-1].error
    missing = identify_clips_spark(local_index.parent / "nowhere", clips[:1], session=spark)
    assert missing[0].kind == "index" and "no index here" in missing[0].result.error


@pytest.fixture(scope="module")
def recording(real_cuts, tmp_path_factory):
    """An 'hour' of radio in small: 4 s of noise, cut 0 from 2 s to 24 s, cut 1 from its start for 20 s,
    8 s of a track not in the index. Returns the path and the truth ``[(cut, start, end)]``."""
    from songmine.audio import load

    g = np.random.default_rng(9)
    a, b, c = (load(real_cuts[i], sr=SR) for i in (0, 1, 5))
    parts = [0.01 * g.standard_normal(4 * SR).astype(np.float32), a[2 * SR : 24 * SR], b[: 20 * SR], c[: 8 * SR]]
    path = tmp_path_factory.mktemp("radio") / "radio.wav"
    sf.write(path, np.concatenate(parts), SR)
    return path, [(0, 4.0, 26.0), (1, 26.0, 46.0)]


def test_monitoring_on_spark_draws_the_local_timeline(spark, local_index, recording, real_cuts):
    from songmine.cli._app import jsonable
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.monitor import identify_recording
    from songmine.spark.identify import identify_recordings_spark

    path, truth = recording
    with Index(local_index) as ix:
        local = identify_recording(ix, str(path), window_s=8, hop_s=4, top=3)
    got = identify_recordings_spark(
        local_index, [path, path.parent / "missing.wav"], window_s=8, hop_s=4, top=3, session=spark, n_partitions=3
    )
    assert jsonable(got[0][0]) == jsonable(local)
    assert got[1][0].error and "missing.wav" in got[1][0].error
    # what played when: the right tracks, in order, each boundary within a window (8 s)
    assert [os.path.basename(p.path) for p in local.played] == [real_cuts[k].name for k, _, _ in truth]
    for p, (_, start, end) in zip(local.played, truth):
        assert abs(p.start_s - start) <= 8.0 and abs(p.end_s - end) <= 8.0
    assert local.played[1].start_s == pytest.approx(26.0, abs=0.1)  # heard from its beginning: exact
    assert local.played[1].track_start_s == pytest.approx(0.0, abs=0.1)


def test_cli_index_and_identify_with_the_spark_engine(spark, music, local_index, clips, recording, tmp_path, capsys):
    from songmine.cli._app import main

    ix = tmp_path / "ix"
    assert main(["index", str(music), "--index", str(ix), "--engine", "spark", "--master", "local[2]", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["added"], len(summary["failed"])) == (4, 1)
    listing = tmp_path / "clips.txt"
    listing.write_text("# clips\n" + "\n".join(str(c) for c in clips[:4]) + "\n\n")
    args = ["identify", "--index", str(local_index), "--from-list", str(listing), "--json"]
    assert main(args) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*args, "--engine", "spark", "--master", "local[2]"]) == 0
    assert json.loads(capsys.readouterr().out) == local
    # the threshold and the first 2 s only: the executors apply them as the local search does
    strict = [*args, "--threshold", "0.9999", "--max-duration", "2"]
    main(strict)
    local_strict = json.loads(capsys.readouterr().out)
    main([*strict, "--engine", "spark", "--master", "local[2]"])
    assert json.loads(capsys.readouterr().out) == local_strict != local
    path, _ = recording
    args = ["identify", str(path), "--index", str(local_index), "--window", "8", "--hop", "4", "--json"]
    assert main(args) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*args, "--engine", "spark", "--master", "local[2]"]) == 0
    assert json.loads(capsys.readouterr().out) == local and len(local[0]["played"]) == 2
    assert main(["identify", str(path), "--index", str(local_index), "--window", "8", "--master", "local[2]"]) == 2
    assert "--master is only meaningful with --engine spark" in capsys.readouterr().err


def test_one_pass_as_a_spark_join_and_vote_answers_as_local(spark, local_index, clips, recording):
    """Lookups as a join, votes as an aggregation: the records of the local one-pass search, bit for bit."""
    from songmine.cli._app import jsonable
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.monitor import identify_recording
    from songmine.fingerprint.query import identify
    from songmine.fingerprint.search import SearchConfig, one_pass
    from songmine.spark.vote import vote_clips_spark, vote_recordings_spark

    # two speeds keep the rounds few (a clip of no indexed track tries them all); the 2 %-fast clip needs the second
    config = one_pass(SearchConfig(speeds=(1.0, 1.02), max_hits=20_000))
    path, _ = recording
    with Index(local_index) as ix:
        local = [identify(ix, str(c), top=3, config=config) for c in clips]
        local_rec = identify_recording(ix, str(path), window_s=8, hop_s=4, top=3, config=config)
    got = vote_clips_spark(local_index, clips, top=3, config=config, session=spark, n_partitions=3)
    assert [o.result for o in got] == local
    assert [bool(r.matches) for r in local] == [True, True, True, True, False, False]
    assert got[-1].kind == "clip" and "not a readable audio file" in got[-1].result.error
    rec = vote_recordings_spark(local_index, [path], window_s=8, hop_s=4, top=3, config=config, session=spark)
    assert jsonable(rec[0]) == jsonable(local_rec) and len(local_rec.played) == 2


@pytest.fixture(scope="module")
def copies(real_cuts, tmp_path_factory):
    """Three recordings with re-encoded copies (mp3; 4 s trimmed ogg; 10 dB quieter 22.05 kHz wav), three
    without, and a file that is not audio."""
    import soxr

    from songmine.audio import load

    root = tmp_path_factory.mktemp("copies")
    for k, cut in enumerate(real_cuts):
        y = load(cut, sr=44100)
        sf.write(root / f"{k}_orig.flac", y, 44100, subtype="PCM_16")
        if k < 3:
            sf.write(root / f"{k}_copy.mp3", y, 44100, format="MP3")
            with sf.SoundFile(str(root / f"{k}_trim.ogg"), "w", 44100, 1, format="OGG", subtype="VORBIS") as fh:
                for s in range(4 * 44100, y.size, 44100):  # block writes (long one-shot Vorbis writes crash)
                    fh.write(y[s : s + 44100])
            sf.write(
                root / f"{k}_quiet.wav", (soxr.resample(y, 44100, 22050) * 10 ** (-10 / 20)).astype(np.float32), 22050
            )
    (root / "zz_broken.mp3").write_bytes(b"not audio" * 40)
    return root


def test_dedupe_on_spark_finds_the_local_groups(spark, copies, capsys):
    from songmine.cli._app import jsonable, main
    from songmine.minhash.dedupe import dedupe

    local = jsonable(dedupe([copies]))
    assert main(["dedupe", str(copies), "--engine", "spark", "--master", "local[2]", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    local.pop("timings_s"), got.pop("timings_s")
    assert got == local  # groups, keepers and their reasons, offsets, pairs, candidates, skipped files
    assert len(local["groups"]) == 3 and all(len(g["members"]) == 4 for g in local["groups"])
    assert [s["path"] for s in local["skipped"]] == [str(copies / "zz_broken.mp3")]
