"""Near-duplicate detection on real music: re-encodes, trims and gain found, unrelated tracks not."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import soundfile as sf

from songmine.minhash.dedupe import DedupeConfig, dedupe, find_duplicates, offset_vote, prints_from_arrays
from songmine.errors import ParameterError


def _write_ogg(path, y, sr):
    with sf.SoundFile(str(path), "w", sr, 1, format="OGG", subtype="VORBIS") as fh:
        for s in range(0, y.size, sr):  # block writes (libsndfile crashes on long one-shot Vorbis writes)
            fh.write(y[s : s + sr])


@pytest.fixture(scope="module")
def dup_library(real_cuts, tmp_path_factory):
    """3 recordings with 3 copies each (mp3, ogg + trim, gain + 22.05 kHz wav) and 3 unrelated tracks."""
    import soxr

    from songmine.audio import load

    root = tmp_path_factory.mktemp("duplib")
    truth, trims = [], {}
    for k, cut in enumerate(real_cuts):
        y = load(cut, sr=44100)
        orig = root / f"{k}_orig.flac"
        sf.write(orig, y, 44100, subtype="PCM_16")
        group = [str(orig)]
        if k < 3:
            mp3 = root / f"{k}_copy.mp3"
            sf.write(mp3, y, 44100, format="MP3")
            trimmed = root / f"{k}_trim.ogg"
            _write_ogg(trimmed, y[int(4.0 * 44100):], 44100)
            quiet = root / f"{k}_quiet.wav"
            sf.write(quiet, (soxr.resample(y, 44100, 22050) * 10 ** (-10 / 20)).astype(np.float32), 22050)
            group += [str(mp3), str(trimmed), str(quiet)]
            trims[str(trimmed)] = str(orig)
        truth.append(group)
    return root, truth, trims


def _pairs(groups):
    return {tuple(sorted(p)) for g in groups for p in itertools.combinations(g, 2)}


@pytest.mark.corpus
@pytest.mark.slow
def test_finds_exactly_the_copies_with_keeper_and_alignment(dup_library):
    root, truth, trims = dup_library
    report = dedupe([root])
    assert report.skipped == []
    got = [[m.path for m in g.members] for g in report.groups]
    assert _pairs(got) == _pairs(truth)
    for g in report.groups:
        assert g.keeper.endswith("_orig.flac")  # lossless and longest wins
        keeper = [m for m in g.members if m.keeper]
        assert len(keeper) == 1 and keeper[0].lossless
        for m in g.members:
            if m.path in trims:
                # the trimmed copy starts 4.0 s into the original (one frame is 11.6 ms)
                assert m.offset_s == pytest.approx(4.0, abs=0.05)
            elif not m.keeper:
                assert abs(m.offset_s) < 0.1
    # sub-quadratic search: LSH proposes far fewer pairs than all pairs
    assert report.n_candidates < report.n_files * (report.n_files - 1) // 2


def test_offset_vote_recovers_a_shift(rng):
    h = rng.integers(0, 2**25, size=3000).astype(np.uint32)
    t = np.sort(rng.integers(0, 20000, size=3000)).astype(np.uint32)
    a = prints_from_arrays("a", h, t)
    keep = t >= 500
    b = prints_from_arrays("b", h[keep], t[keep] - 345)  # b starts 345 frames into a
    votes, off = offset_vote(a, b)
    assert off == 345 and votes == int(keep.sum())
    c = prints_from_arrays("c", rng.integers(0, 2**25, size=3000).astype(np.uint32), t)
    assert offset_vote(a, c)[0] < 20


def test_unrelated_synthetic_sets_make_no_group(rng):
    prints = [
        prints_from_arrays(f"t{i}", rng.integers(0, 2**25, size=2000).astype(np.uint32),
                           rng.integers(0, 20000, size=2000).astype(np.uint32))
        for i in range(40)
    ]
    report = find_duplicates(prints)
    assert report.groups == [] and report.n_files == 40


def test_silence_short_and_broken_files_never_crash(tmp_path, synth_music):
    sf.write(tmp_path / "silent1.wav", np.zeros(11025 * 20, np.float32), 11025)
    sf.write(tmp_path / "silent2.wav", np.zeros(11025 * 25, np.float32), 11025)
    sf.write(tmp_path / "tiny.wav", synth_music(11025, 0.1), 11025)
    (tmp_path / "broken.mp3").write_bytes(b"\x00garbage")
    report = dedupe([tmp_path])
    assert report.groups == []  # two silent files have empty sets: not "duplicates"
    assert [s["path"].endswith("broken.mp3") for s in report.skipped] == [True]
    assert report.n_files == 3


def test_worker_processes_find_what_one_process_finds(tmp_path, synth_music, rng):
    y = synth_music(11025, 30.0, seed=5)
    sf.write(tmp_path / "a.wav", y, 11025)
    sf.write(tmp_path / "b.flac", y[11025 * 3:], 11025)
    sf.write(tmp_path / "c.wav", (0.1 * rng.standard_normal(11025 * 30)).astype(np.float32), 11025)
    (tmp_path / "broken.mp3").write_bytes(b"\x00garbage")
    one, two = dedupe([tmp_path], jobs=1), dedupe([tmp_path], jobs=2)
    members = lambda r: [sorted(m.path for m in g.members) for g in r.groups]
    assert members(two) == members(one) and len(members(one)) == 1
    assert [s["path"] for s in two.skipped] == [s["path"] for s in one.skipped] == [str(tmp_path / "broken.mp3")]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"threshold": 0.0}, "threshold"), ({"threshold": 1.5}, "threshold"),
     ({"n_bands": 10, "n_rows": 10}, "n_perm=512"), ({"n_bands": 8}, "both")],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        DedupeConfig(**kwargs)


def test_cli_json_exits_0_and_bad_threshold_exits_2(tmp_path, synth_music):
    from songmine.cli._app import main

    y = synth_music(11025, 20.0, seed=4)
    sf.write(tmp_path / "a.wav", y, 11025)
    sf.write(tmp_path / "b.flac", y, 11025)
    code = main(["dedupe", str(tmp_path), "--json"])
    assert code == 0
    assert main(["dedupe", str(tmp_path), "--threshold", "1.5"]) == 2
    assert main(["dedupe"]) == 2


def test_cli_json_and_csv_output(tmp_path, synth_music, rng, capsys):
    from songmine.cli._app import main

    y = synth_music(11025, 30.0, seed=5)
    sf.write(tmp_path / "a.wav", y, 11025)
    sf.write(tmp_path / "b.flac", y[11025 * 3:], 11025)
    # unrelated: noise (two synth_music signals share the note grid and pitch set)
    sf.write(tmp_path / "c.wav", (0.1 * rng.standard_normal(11025 * 30)).astype(np.float32), 11025)
    capsys.readouterr()
    assert main(["dedupe", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_files"] == 3
    assert len(out["groups"]) == 1
    g = out["groups"][0]
    assert g["keeper"].endswith("a.wav")  # both lossless: the longer one, whatever the file size
    assert {m["path"].rsplit("/", 1)[1] for m in g["members"]} == {"a.wav", "b.flac"}
    assert main(["dedupe", str(tmp_path), "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("group,path,keeper") and len(lines) == 3


# --------------------------------------------------------------------------- dedupe --index


@pytest.mark.corpus
@pytest.mark.slow
def test_index_mode_reads_stored_landmarks_and_decodes_only_changed_files(dup_library, tmp_path, monkeypatch, capsys):
    import shutil

    import songmine.audio
    from songmine.minhash.dedupe import dedupe_index
    from songmine.fingerprint.index import Index, index_files

    root, truth, trims = dup_library
    lib = tmp_path / "lib"
    shutil.copytree(root, lib)
    truth = [[str(lib / os.path.basename(p)) for p in g] for g in truth]
    trims = {str(lib / os.path.basename(k)) for k in trims}
    ix_path = tmp_path / "ix"
    with Index(ix_path, create=True) as ix:
        index_files(ix, [lib], jobs=1)

    decoded = []
    real_load = songmine.audio.load

    def counting_load(source, **kw):
        decoded.append(str(source))
        return real_load(source, **kw)

    monkeypatch.setattr(songmine.audio, "load", counting_load)
    report = dedupe_index(ix_path)
    assert decoded == [] and report.n_from_index == report.n_files == sum(len(g) for g in truth)
    assert _pairs([[m.path for m in g.members] for g in report.groups]) == _pairs(truth)
    for g in report.groups:
        assert g.keeper.endswith("_orig.flac")
        for m in g.members:
            if m.path in trims:
                assert m.offset_s == pytest.approx(4.0, abs=0.05)

    from songmine.cli._app import main

    assert main(["dedupe", "--index", str(ix_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_from_index"] == report.n_files and len(out["groups"]) == len(report.groups)
    assert decoded == []

    # a file changed since indexing is fingerprinted again (only it); a vanished one is reported
    changed = next(p for p in truth[0] if p.endswith("_copy.mp3"))
    with open(changed, "ab") as fh:
        fh.write(b"\0" * 10)  # trailing junk: same audio, new sha256
    gone = truth[1][1]
    os.remove(gone)
    report = dedupe_index(ix_path)
    assert decoded == [changed]
    assert [s["path"] for s in report.skipped] == [gone], report.skipped
    want = _pairs([[p for p in g if p != gone] for g in truth])
    assert _pairs([[m.path for m in g.members] for g in report.groups]) == want


def test_index_mode_refuses_a_non_landmark_index(tmp_path):
    from songmine.minhash.dedupe import dedupe_index
    from songmine.fingerprint.index import Index
    from songmine.methods import Method, register_method

    class OtherConfig:  # another method's postings are not landmark hashes
        def to_dict(self):
            return {}

        @classmethod
        def from_dict(cls, d):
            return cls()

    register_method(Method("_other_for_dedupe_test", "another method", OtherConfig, None, indexable=False))
    with Index(tmp_path / "ix", create=True, config=OtherConfig()):
        pass
    with pytest.raises(ParameterError, match="landmark index"):
        dedupe_index(tmp_path / "ix")
