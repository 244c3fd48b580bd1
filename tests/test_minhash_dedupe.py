"""Near-duplicate detection on real music: re-encodes, trims and gain found, unrelated tracks not."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import soundfile as sf

from songmine.errors import ParameterError
from songmine.minhash.dedupe import DedupeConfig, dedupe, find_duplicates, offset_vote, prints_from_arrays


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
            _write_ogg(trimmed, y[int(4.0 * 44100) :], 44100)
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
        prints_from_arrays(
            f"t{i}",
            rng.integers(0, 2**25, size=2000).astype(np.uint32),
            rng.integers(0, 20000, size=2000).astype(np.uint32),
        )
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
    sf.write(tmp_path / "b.flac", y[11025 * 3 :], 11025)
    sf.write(tmp_path / "c.wav", (0.1 * rng.standard_normal(11025 * 30)).astype(np.float32), 11025)
    (tmp_path / "broken.mp3").write_bytes(b"\x00garbage")
    one, two = dedupe([tmp_path], jobs=1), dedupe([tmp_path], jobs=2)
    members = lambda r: [sorted(m.path for m in g.members) for g in r.groups]
    assert members(two) == members(one) and len(members(one)) == 1
    assert [s["path"] for s in two.skipped] == [s["path"] for s in one.skipped] == [str(tmp_path / "broken.mp3")]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"n_bands": 10, "n_rows": 10}, "n_perm=512"),
        ({"n_bands": 8}, "both"),
    ],
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
    sf.write(tmp_path / "b.flac", y[11025 * 3 :], 11025)
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
    from songmine.fingerprint.index import Index, index_files
    from songmine.minhash.dedupe import dedupe_index

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
        decoded.append((str(source), kw.get("sr")))
        return real_load(source, **kw)

    def fingerprinted():  # decodes at the landmark rate; sr=None is the keeper's bandwidth measure
        return [p for p, sr in decoded if sr is not None]

    monkeypatch.setattr(songmine.audio, "load", counting_load)
    report = dedupe_index(ix_path)
    assert fingerprinted() == [] and report.n_from_index == report.n_files == sum(len(g) for g in truth)
    # only the grouped files are decoded, once each, to measure their bandwidth
    assert sorted(p for p, _ in decoded) == sorted(m.path for g in report.groups for m in g.members)
    assert all(m.bandwidth_hz > 0 for g in report.groups for m in g.members)
    assert dedupe_index(ix_path, DedupeConfig(bandwidth=False)).groups[0].reason.endswith("bandwidth not measured")
    decoded.clear()
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
    assert fingerprinted() == []

    # a file changed since indexing is fingerprinted again (only it); a vanished one is reported
    changed = next(p for p in truth[0] if p.endswith("_copy.mp3"))
    with open(changed, "ab") as fh:
        fh.write(b"\0" * 10)  # trailing junk: same audio, new sha256
    gone = truth[1][1]
    os.remove(gone)
    decoded.clear()
    report = dedupe_index(ix_path)
    assert fingerprinted() == [changed]
    assert [s["path"] for s in report.skipped] == [gone], report.skipped
    want = _pairs([[p for p in g if p != gone] for g in truth])
    assert _pairs([[m.path for m in g.members] for g in report.groups]) == want


def test_index_mode_refuses_a_non_landmark_index(tmp_path):
    from songmine.fingerprint.index import Index
    from songmine.methods import Method, register_method
    from songmine.minhash.dedupe import dedupe_index

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


def _mp3_128k(src, out):
    """Transcode ``src`` to a 128-kbps MP3 with LAME (through PyAV), at the source's rate and channels."""
    import av

    from songmine.audio import info, load

    meta = info(src)
    y = np.atleast_2d(load(src, sr=None, mono=False)).astype(np.float32)
    with av.open(str(out), "w") as c:
        st = c.add_stream("libmp3lame", rate=meta.sr)
        st.bit_rate = 128_000
        st.layout = "stereo" if y.shape[0] == 2 else "mono"
        for s in range(0, y.shape[1], meta.sr):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(y[:, s : s + meta.sr]), format="fltp", layout=st.layout
            )
            frame.sample_rate = meta.sr
            for pkt in st.encode(frame):
                c.mux(pkt)
        for pkt in st.encode(None):
            c.mux(pkt)


@pytest.mark.corpus
@pytest.mark.slow
def test_keeper_is_the_source_of_a_transcode_not_the_higher_bitrate(demo_corpus, demo_tracks, tmp_path, capsys):
    """A 128-kbps MP3 made from a ~110-kbps Vorbis track: the Vorbis is kept, and the report says why."""
    import shutil

    from songmine.audio import info
    from songmine.bandwidth import effective_bandwidth
    from songmine.cli._app import main

    src = next(t for t in demo_tracks if t.file == "singularity-music__Apex_Aleph.ogg")
    ogg = tmp_path / "lib" / "Apex_Aleph.ogg"
    ogg.parent.mkdir()
    shutil.copyfile(src.path(demo_corpus), ogg)
    mp3 = tmp_path / "lib" / "Apex_Aleph (mp3 copy).mp3"
    _mp3_128k(ogg, mp3)
    assert info(ogg).codec == "vorbis"
    bw_ogg, bw_mp3 = effective_bandwidth(ogg), effective_bandwidth(mp3)
    assert bw_ogg - bw_mp3 >= 1000  # LAME's low-pass at 128 kbps sits well below Vorbis's

    report = dedupe([tmp_path / "lib"])
    (group,) = report.groups
    by_name = {os.path.basename(m.path): m for m in group.members}
    assert by_name["Apex_Aleph (mp3 copy).mp3"].bitrate_kbps > by_name["Apex_Aleph.ogg"].bitrate_kbps
    assert group.keeper == str(ogg) and by_name["Apex_Aleph.ogg"].keeper
    assert (
        by_name["Apex_Aleph.ogg"].bandwidth_hz == bw_ogg and by_name["Apex_Aleph (mp3 copy).mp3"].bandwidth_hz == bw_mp3
    )
    assert group.reason.startswith(
        f"widest effective bandwidth, {bw_ogg / 1000:.2f} kHz against {bw_mp3 / 1000:.2f} kHz or less"
    )

    assert main(["dedupe", str(tmp_path / "lib"), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["groups"][0]["reason"] == group.reason
    assert {m["bandwidth_hz"] for m in rec["groups"][0]["members"]} == {bw_ogg, bw_mp3}
    assert main(["dedupe", str(tmp_path / "lib"), "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].endswith("bandwidth_hz,keeper_reason") and "widest effective bandwidth" in rows[1]


def test_choose_keeper_rules_and_reasons():
    from songmine.minhash.dedupe import TrackPrint, choose_keeper

    def tp(path, codec, kbps, bw, lossless=False, dur=100.0, sr=44100):
        return TrackPrint(
            path,
            np.zeros(0, np.uint32),
            np.zeros(0, np.uint32),
            duration_s=dur,
            codec=codec,
            bitrate_kbps=kbps,
            lossless=lossless,
            sr=sr,
            bandwidth_hz=bw,
        )

    # equal bandwidth (within 500 Hz): lossless, then bitrate decide, and the reason says so
    k, why = choose_keeper([tp("a.mp3", "mp3", 320, 19_750), tp("a.flac", "flac", 900, 20_000, lossless=True)])
    assert k == 1 and why.startswith("lossless (flac); bandwidths equal within 500 Hz (19.75 kHz–20.00 kHz)")
    k, why = choose_keeper([tp("a.ogg", "vorbis", 112, 15_750), tp("a.mp3", "mp3", 128, 15_750)])
    assert k == 1 and why.startswith("highest bitrate (128 kbps against 112)")
    # a FLAC made from an MP3 keeps the MP3's low-pass: the wider MP3 of the source wins
    k, why = choose_keeper([tp("fake.flac", "flac", 800, 16_000, lossless=True), tp("b.mp3", "mp3", 320, 19_500)])
    assert k == 1 and "19.50 kHz against 16.00 kHz" in why
    # not measured: the container's facts alone
    k, why = choose_keeper([tp("a.ogg", "vorbis", 112, None), tp("a.mp3", "mp3", 128, None)])
    assert k == 1 and why.endswith("; bandwidth not measured")
