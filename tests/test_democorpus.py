"""The demo-corpus fetcher, on real .deb packages built here with dpkg-deb."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import need

from songmine.evaluation.democorpus import DemoCorpusError, Package, fetch, read_manifest


def build_deb(tmp: Path, name: str, files: dict[str, bytes]) -> Path:
    """A real Debian binary package holding ``files`` (path inside the package → bytes)."""
    root = tmp / f"build-{name}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test music\n test\n"
    )
    for rel, data in files.items():
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    out = tmp / f"{name}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(out)], check=True, capture_output=True)
    return out


def ogg_bytes(tmp: Path, seconds: float, seed: int, synth) -> bytes:
    p = tmp / f"s{seed}.ogg"
    sf.write(p, synth(22050, seconds, seed), 22050, format="OGG", subtype="VORBIS")
    return p.read_bytes()


@pytest.fixture
def debs(tmp_path, synth_music):
    need(shutil.which("dpkg-deb") is not None, "dpkg-deb is needed to build test packages")
    song = ogg_bytes(tmp_path, 25.0, 1, synth_music)
    root = tmp_path / "corpus"
    (root / "debs").mkdir(parents=True)
    deb = build_deb(
        tmp_path,
        "fake-music",
        {
            "/usr/share/games/fake/music/song one.ogg": song,
            "/usr/share/games/fake/music/copy.ogg": song,  # identical copy: laid out once
            "/usr/share/games/fake/music/jingle.ogg": ogg_bytes(tmp_path, 5.0, 2, synth_music),  # < 20 s
            "/usr/share/games/fake/sounds/click.ogg": ogg_bytes(tmp_path, 30.0, 3, synth_music),  # not music
            "/usr/share/doc/fake-music/copyright": b"Format: x\n\nLicense: CC0-1.0\n",
        },
    )
    shutil.move(deb, root / "debs" / deb.name)
    pcm = (np.clip(synth_music(22050, 21.0, 4), -1, 1) * 127 + 128).astype(np.uint8).tobytes()
    deb = build_deb(tmp_path, "fake-raw", {"/usr/share/fake/sounds/xbsng1.raw": pcm})
    shutil.move(deb, root / "debs" / deb.name)
    return root


PACKAGES = (
    Package("fake-music", r"/music/.*\.ogg$"),
    Package("fake-raw", r"/sounds/xbsng.*\.raw$", "GPL-2", raw_pcm_u8_sr=22050),
)


def test_fetch_lays_out_a_flat_library_with_a_manifest(debs):
    rows = fetch(debs, packages=PACKAGES)
    names = sorted(r.file for r in rows)
    assert names == ["fake-music__copy.ogg", "fake-raw__xbsng1.flac"]  # first of identical copies, sorted
    by_name = {r.file: r for r in rows}
    assert by_name["fake-music__copy.ogg"].licence == "CC0-1.0"  # read from the DEP-5 file
    assert by_name["fake-raw__xbsng1.flac"].licence == "GPL-2"  # declared
    assert abs(by_name["fake-raw__xbsng1.flac"].duration_s - 21.0) < 0.01
    assert sorted(p.name for p in (debs / "library").iterdir()) == names
    with open(debs / "manifest.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["file", "package", "licence", "duration_s"]
    assert read_manifest(debs) == rows


def test_raw_pcm_is_converted_losslessly(debs, synth_music):
    fetch(debs, packages=PACKAGES)
    y, sr = sf.read(debs / "library" / "fake-raw__xbsng1.flac", dtype="int16")
    original = (np.clip(synth_music(22050, 21.0, 4), -1, 1) * 127 + 128).astype(np.uint8)
    assert sr == 22050
    np.testing.assert_array_equal(y, (original.astype(np.int16) - 128) * 256)


def test_rerun_on_a_complete_folder_changes_nothing(debs):
    fetch(debs, packages=PACKAGES)
    before = (debs / "manifest.csv").stat().st_mtime_ns
    (debs / "debs").rename(debs / "gone")  # would fail if it tried to download again
    fetch(debs, packages=PACKAGES)
    assert (debs / "manifest.csv").stat().st_mtime_ns == before


def test_missing_apt_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get, no dpkg-deb
    with pytest.raises(DemoCorpusError, match="MUSIC="):
        fetch(tmp_path / "c", packages=PACKAGES)


@pytest.mark.corpus
def test_the_real_demo_corpus(demo_tracks):
    assert len(demo_tracks) >= 60
    assert {t.package for t in demo_tracks} >= {"wesnoth-1.16-music", "singularity-music", "asc-music"}
    assert sum(t.duration_s for t in demo_tracks) / 3600 > 3.0
    assert all(t.licence for t in demo_tracks)


_FETCH_IN_A_CHILD = """
import json, sys
from songmine.evaluation.democorpus import Package, fetch
said = []
packages = (Package("fake-music", r"/music/.*\\.ogg$"),
            Package("fake-raw", r"/sounds/xbsng.*\\.raw$", "GPL-2", raw_pcm_u8_sr=22050))
rows = fetch(sys.argv[1], packages=packages, progress=said.append)
print(json.dumps({"files": sorted(r.file for r in rows), "said": said}))
"""


def test_four_processes_fetching_into_one_folder_lay_it_out_once(debs):
    import json
    import os
    import subprocess
    import sys

    assert [p.name for p in PACKAGES] == ["fake-music", "fake-raw"]  # the child's copy of PACKAGES
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FETCH_IN_A_CHILD, str(debs)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    assert all(rc == 0 for rc, _, _ in outs), [err for _, _, err in outs]
    results = [json.loads(out) for _, out, _ in outs]
    expected = ["fake-music__copy.ogg", "fake-raw__xbsng1.flac"]
    assert all(r["files"] == expected for r in results)
    laid_out = [r for r in results if any(s.startswith("fake-music:") for s in r["said"])]
    assert len(laid_out) == 1, results  # one process did the work; the three others read its result
    assert sorted(p.name for p in (debs / "library").iterdir()) == expected
    assert not [p for p in debs.iterdir() if ".partial" in p.name]
    assert [r.file for r in read_manifest(debs)] == expected
