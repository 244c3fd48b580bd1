"""Every ``--engine spark`` verb on a real Spark standalone cluster: a master and two workers (each a JVM
of its own, started with Spark's own deploy classes) on 127.0.0.1, executors in JVMs the workers launch.

index → identify → dedupe → cluster run there give what the local engine gives on the same data; the
cluster is stopped afterwards (also when a test fails) and leaves no process behind. Without
Java/pyspark, or when the cluster cannot start, the tests skip locally and FAIL under CI=true.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import need

from songmine.errors import EngineError

pytestmark = [pytest.mark.spark, pytest.mark.corpus, pytest.mark.slow]

SR = 22050


def _left_behind(groups: list[int], port: int) -> list[str]:
    """Processes still alive in the cluster's process groups (master, workers, executors, Python
    workers), or a master or worker naming its master's port (not this process's own driver JVM,
    which names it too and lives as long as this process)."""
    out = []
    for pgid in groups:
        r = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
        out += r.stdout.split()
    r = subprocess.run(
        ["pgrep", "-f", f"org[.]apache[.]spark[.]deploy[.](master|worker)[.].*(--port {port}|127[.]0[.]0[.]1:{port})"],
        capture_output=True,
        text=True,
    )
    return out + r.stdout.split()


@pytest.fixture(scope="module")
def cluster():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        need(False, "pyspark is not installed (pip install 'songmine[spark]')")
    from songmine.spark.session import get_session, stop_session
    from songmine.spark.standalone import LocalCluster

    c = LocalCluster(workers=2, cores=1, memory="1g")
    try:
        c.start()
    except EngineError as exc:
        need(False, f"a Spark standalone cluster cannot start here: {exc}")
    groups = [p.pid for p in c.procs]
    try:
        try:
            get_session(c.master_url, conf={"spark.executor.memory": "640m", "spark.executor.cores": "1"})
        except EngineError as exc:
            need(False, f"Spark cannot start an application on {c.master_url}: {exc}")
        yield c
    finally:
        stop_session()  # the application (driver side) first, then the cluster
        c.stop()
    assert _left_behind(groups, c.port) == []


@pytest.fixture(scope="module")
def music(real_cuts, tmp_path_factory):
    root = tmp_path_factory.mktemp("sa-music")
    for c in real_cuts[:3]:
        shutil.copyfile(c, root / c.name)
    (root / "broken.mp3").write_bytes(b"not audio" * 40)
    return root


def postings(path) -> dict:
    from songmine.fingerprint.index import Index

    with Index(path) as ix:
        tracks = {t.track_id: t for t in ix.tracks()}
        out = {}
        for tid, (h, t) in ix.landmarks().items():
            order = np.lexsort((t, h))
            out[tracks[tid].sha256] = (tracks[tid].duration_s, h[order].tobytes(), t[order].tobytes())
    return out


def cli(capsys, *args) -> tuple[int, str]:
    from songmine.cli._app import main

    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out if code in (0, 1) else cap.err


def test_the_cluster_is_a_real_standalone_cluster(cluster):
    deadline = time.monotonic() + 120
    while True:  # the second executor may still be starting
        status = cluster.status()
        apps = status["activeapps"]
        if (len(apps) == 1 and apps[0]["cores"] == 2) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status["status"] == "ALIVE" and status["aliveworkers"] == 2
    assert len(apps) == 1 and apps[0]["cores"] == 2  # one executor on each worker


def test_index_identify_dedupe_on_the_cluster_as_local(cluster, music, real_cuts, tmp_path, capsys):
    from songmine.audio import load

    url = cluster.master_url
    # index: the executors decode and fingerprint, the driver commits
    code, out = cli(capsys, "index", str(music), "--index", str(tmp_path / "local"), "--jobs", "1", "--json")
    assert code == 0, out
    code, out = cli(
        capsys, "index", str(music), "--index", str(tmp_path / "spark"), "--engine", "spark", "--master", url, "--json"
    )
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["added"], len(summary["failed"])) == (3, 1)
    local = postings(tmp_path / "local")
    assert postings(tmp_path / "spark") == local and len(local) == 3
    # identify: clips of two indexed tracks and of one that is not
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, cut in enumerate([real_cuts[0], real_cuts[2], real_cuts[4]]):
        sf.write(clips / f"c{i}.wav", load(cut, sr=SR)[(5 + 4 * i) * SR : (10 + 4 * i) * SR], SR)
    listing = tmp_path / "clips.txt"
    listing.write_text("\n".join(str(p) for p in sorted(clips.iterdir())) + "\n")
    args = ["identify", "--index", str(tmp_path / "local"), "--from-list", str(listing), "--top", "3", "--json"]
    code, want = cli(capsys, *args)
    assert code == 0
    code, got = cli(capsys, *args, "--engine", "spark", "--master", url)
    assert code == 0 and json.loads(got) == json.loads(want)
    assert [bool(r["matches"]) for r in json.loads(want)] == [True, True, False]
    # dedupe: two recordings with an MP3 copy each, one without
    copies = tmp_path / "copies"
    copies.mkdir()
    for k, cut in enumerate(real_cuts[:3]):
        y = load(cut, sr=44100)
        sf.write(copies / f"{k}_orig.flac", y, 44100, subtype="PCM_16")
        if k < 2:
            sf.write(copies / f"{k}_copy.mp3", y, 44100, format="MP3")
    code, want = cli(capsys, "dedupe", str(copies), "--json")
    assert code == 0, want
    code, got = cli(capsys, "dedupe", str(copies), "--engine", "spark", "--master", url, "--json")
    assert code == 0, got
    want, got = json.loads(want), json.loads(got)
    want.pop("timings_s"), got.pop("timings_s")
    assert got == want and len(want["groups"]) == 2


def test_cluster_run_on_the_cluster_as_local(cluster, tmp_path):
    from test_spark_cluster import assert_same_analysis

    from songmine.cluster.analysis import RunConfig, run
    from songmine.cluster.data import clean_features, read_table
    from songmine.cluster.reduce import reduce
    from songmine.cluster.synthetic import make_fma_like
    from songmine.spark.cluster import run_spark
    from songmine.spark.session import get_session

    table = tmp_path / "table.parquet"
    make_fma_like(600, n_echonest=10, k=3, seed=4).full.to_parquet(table)
    df = read_table(table)
    X, _, plan = clean_features(df)
    cfg = RunConfig(k=3, seed=2, compare_sklearn=False, compare_echonest=False)
    Z, _ = reduce(X, columns=[str(c) for c in plan.columns], config=cfg.reduce)
    cfg = dataclasses.replace(cfg, init=Z[[0, 200, 400]] + 0.1)
    local = run(df, config=cfg)
    out = tmp_path / "assignments.parquet"
    got = run_spark(str(table), config=cfg, session=get_session(cluster.master_url), assignments=str(out))
    assert_same_analysis(local, got, pd.read_parquet(out))
