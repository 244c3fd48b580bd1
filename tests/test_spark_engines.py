"""Indexing on Spark (local[2]) gives what the local engine gives, on real music.

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

from songmine.errors import EngineError

from conftest import need

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
        out[r.sha256] = (r.path, r.duration_s, r.n_hashes, r.title, r.artist, r.album,
                         h[order].tobytes(), t[order].tobytes(), None if prof is None else prof.to_bytes())
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
