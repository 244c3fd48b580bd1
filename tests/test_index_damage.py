"""A damaged index, end to end: every kind of damage is refused with the recovery, `songmine verify`
names the part, `--repair` brings the index back; an index from before checksums keeps working.

A real landmark index of synthetic songs, built and queried through the CLI.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest
import soundfile as sf
from test_index_integrity import damage, flip, layout, postings

from songmine.cli._app import main
from songmine.errors import IndexCorruptError
from songmine.fingerprint.index import Index
from songmine.fingerprint.index import segments as seg_mod
from songmine.fingerprint.index import store as store_mod
from songmine.fingerprint.index.schema import CATALOG_NAME, FORMAT_VERSION, SEGMENT_HEADER_V3, SEGMENT_MAGIC_V3
from songmine.fingerprint.index.segments import open_segment, segment_checksum, write_segment

SR = 22050


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A landmark index of 8 synthetic songs (one segment), and 3 clips of them."""
    from conftest import _tone_mix

    root = tmp_path_factory.mktemp("integrity")
    music = root / "music"
    music.mkdir()
    for i in range(8):
        sf.write(music / f"song{i}.flac", _tone_mix(SR, 20.0, 500 + i), SR)
    assert main(["index", str(music), "--index", str(root / "ix"), "--jobs", "1"]) == 0
    clips = []
    for i in (1, 4, 6):
        y, _ = sf.read(music / f"song{i}.flac", dtype="float32")
        clips.append(root / f"clip{i}.wav")
        sf.write(clips[-1], y[5 * SR : 12 * SR], SR)
    return root / "ix", clips, music


@pytest.fixture
def ix(built, tmp_path):
    """A fresh copy of the built index (each test damages its own)."""
    shutil.copytree(built[0], tmp_path / "ix")
    return tmp_path / "ix"


def only_segment(ix):
    (seg,) = (ix / "segments").iterdir()
    return seg, layout(seg, len(open_segment(seg)))


def lazy_records(lay) -> tuple[int, int]:
    """The bytes of the records in blocks of their own (the blocks holding the tables and the window
    directory are checked at open: damage there stops the opening, not a lookup)."""
    start = 64 + -(-(lay["records"] - 64) // 4096) * 4096
    stop = 64 + (lay["window keys"] - 64) // 4096 * 4096
    assert stop > start
    return start, stop


def identify(ix, clips, capsys):
    code = main(["identify", *map(str, clips), "--index", str(ix), "--json"])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_the_index_answers_before_damage(ix, built, capsys):
    code, out, _ = identify(ix, built[1], capsys)
    assert code == 0 and all(r["matches"] for r in json.loads(out))


@pytest.mark.parametrize(
    "kind", ["flip8", "zero-records", "zero-all-records", "random", "zero-directory", "header", "table"]
)
def test_a_damaged_segment_is_refused_with_the_recovery(ix, built, capsys, rng, kind):
    seg, lay = only_segment(ix)
    size = lay["window keys"] - lay["records"]
    if kind == "flip8":
        flip(seg, lay["records"] + size // 8 * 4)
    elif kind == "zero-records":
        damage(seg, lay["records"] + size // 12 * 4, bytes(min(4096, size // 2)))
    elif kind == "zero-all-records":
        damage(seg, lay["records"], bytes(size))
    elif kind == "random":
        damage(seg, lay["records"], rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    elif kind == "zero-directory":
        damage(seg, lay["window keys"], bytes(lay["end"] - lay["window keys"]))
    elif kind == "header":
        flip(seg, 8, 1)
    else:
        flip(seg, lay["table"] + 8, 1)
    code, out, err = identify(ix, built[1], capsys)
    recs = json.loads(out)  # the index cannot be opened: every clip's record says why
    assert code == 2 and [r["query"] for r in recs] == list(map(str, built[1]))
    assert all(r["matches"] == [] and "segment is damaged" in r["error"] for r in recs)
    assert f"{seg}: segment is damaged" in err and f"songmine verify --index {ix} --repair" in err
    assert "track_id" not in err and "internal error" not in err and len(err.strip().splitlines()) == 1
    # verify names the part, lists the tracks, exits 2; --repair drops it and indexes the files again
    code = main(["verify", "--index", str(ix), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 2 and not rep["ok"] and rep["repairable"]
    assert (
        rep["problems"][0]["part"] == f"segments/{seg.name}" and "segment is damaged" in rep["problems"][0]["problem"]
    )
    assert len(rep["affected"]) == 8
    code = main(["verify", "--index", str(ix), "--repair", "--jobs", "1", "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 0 and rep["repaired"] and rep["reindexed"] == {"added": 8, "failed": []}
    assert main(["verify", "--index", str(ix)]) == 0 and "intact" in capsys.readouterr().out
    code, out, _ = identify(ix, built[1], capsys)
    assert code == 0 and all(r["matches"] for r in json.loads(out))


def test_a_damaged_catalogue_page_is_a_clear_error(ix, built, capsys):
    with sqlite3.connect(ix / CATALOG_NAME) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tracks'").fetchone()[0]
        page = c.execute("PRAGMA page_size").fetchone()[0]
    damage(ix / CATALOG_NAME, (root - 1) * page, b"\xa5" * 64)
    for args in (["identify", str(built[1][0])], ["tracks"], ["index", str(built[2])]):
        code = main([*args, "--index", str(ix)])
        err = capsys.readouterr().err
        assert code == 2 and "the catalogue is damaged" in err and "rebuild the index" in err, (args, err)
        assert len(err.strip().splitlines()) == 1
    code = main(["verify", "--index", str(ix), "--repair", "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 2 and not rep["repairable"] and not rep["repaired"]
    assert rep["problems"][0]["part"] == CATALOG_NAME and "rebuild" in rep["recovery"]


def test_lazily_checked_damage_fails_the_clip_not_the_batch(ix, built, capsys, monkeypatch):
    monkeypatch.setattr(seg_mod, "CHECK_AT_OPEN", 0)  # checked as lookups touch it, as a big segment is
    seg, lay = only_segment(ix)
    start, stop = lazy_records(lay)
    damage(seg, start, bytes(stop - start))  # (nearly) every hit lands in damage
    good = ix.parent / "good.wav"
    sf.write(good, np.zeros(3 * SR, np.float32), SR)  # silence: no landmark, no lookup of the damage
    code, out, err = identify(ix, [built[1][0], good, built[1][1]], capsys)
    recs = json.loads(out)  # every record printed
    assert code == 2 and [r["query"] for r in recs] == [str(built[1][0]), str(good), str(built[1][1])]
    assert "segment is damaged" in recs[0]["error"] and "segment is damaged" in recs[2]["error"]
    assert recs[1]["error"] is None and recs[1]["matches"] == []
    assert "songmine verify" in err


def test_lazy_lookups_equal_checked_ones(ix, built, monkeypatch):
    from songmine.audio import load
    from songmine.fingerprint.landmarks import fingerprint

    with Index(ix) as eager:
        fc = eager.config
        qs = [fingerprint(load(c, sr=fc.sr), fc)[0] for c in built[1]]
        ref = [eager.lookup(q, max_per_hash=50) for q in qs]
    monkeypatch.setattr(seg_mod, "CHECK_AT_OPEN", 0)
    with Index(ix) as lazy:
        assert not lazy._segments[0].data.checked
        for q, r in zip(qs, ref):
            assert all(np.array_equal(a, b) for a, b in zip(lazy.lookup(q, max_per_hash=50), r))
        assert lazy.verify() == []


def test_a_damaged_profile_is_refused_and_repaired(ix, built, capsys):
    with Index(ix) as index:
        tid = index.tracks()[3].track_id
        assert index.profile(tid) is not None
    with sqlite3.connect(ix / CATALOG_NAME) as c:
        data = bytearray(c.execute("SELECT data FROM profiles WHERE track_id = ?", (tid,)).fetchone()[0])
        data[len(data) // 2] ^= 0x10
        c.execute("UPDATE profiles SET data = ? WHERE track_id = ?", (bytes(data), tid))
    with Index(ix) as index, pytest.raises(IndexCorruptError, match=f"profile of track {tid} is damaged") as exc:
        index.profile(tid)
    assert exc.value.part == f"profile of track {tid}" and "songmine verify" in str(exc.value)
    code = main(["verify", "--index", str(ix), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert code == 2 and rep["problems"] == [{"part": f"profile of track {tid}", "problem": "fails its checksum"}]
    assert [a["track_id"] for a in rep["affected"]] == [tid]
    assert main(["verify", "--index", str(ix), "--repair", "--jobs", "1"]) == 0
    capsys.readouterr()
    with Index(ix) as index:
        assert index.n_tracks == 8 and tid not in {t.track_id for t in index.tracks()}  # indexed again, new id
        assert all(index.profile(t.track_id) is not None for t in index.tracks()) and index.verify() == []


def test_a_swapped_or_missing_segment_is_refused(ix, built, tmp_path, rng, monkeypatch):
    seg, _ = only_segment(ix)
    write_segment(tmp_path / "other.sgm", postings(rng, len(open_segment(seg))))  # same size, other content
    shutil.copyfile(tmp_path / "other.sgm", seg)
    with pytest.raises(IndexCorruptError, match="not the segment the catalogue registered"):
        Index(ix)
    seg.unlink()
    monkeypatch.setattr(store_mod.time, "sleep", lambda s: None)  # (refresh waits for a concurrent compaction)
    with pytest.raises(IndexCorruptError, match="segment file is missing"):
        Index(ix)


def downgrade(ix) -> None:
    """Make ``ix`` look like an index of format 2: version-3 segments, no checksum columns."""
    for seg in (ix / "segments").iterdir():
        p = open_segment(seg).decode()
        arrays = (p.hashes[::32], p.hashes, p.tracks, p.times)
        seg.write_bytes(
            SEGMENT_HEADER_V3.pack(SEGMENT_MAGIC_V3, len(p), 8, 32)
            + b"".join(np.ascontiguousarray(a, dtype="<u4").tobytes() for a in arrays)
        )
    with sqlite3.connect(ix / CATALOG_NAME) as c:
        c.execute("ALTER TABLE segments DROP COLUMN checksum")
        c.execute("ALTER TABLE profiles DROP COLUMN checksum")
        c.execute("PRAGMA user_version = 2")


def test_an_index_from_before_checksums_keeps_working(ix, built, capsys, caplog):
    code, before, _ = identify(ix, built[1], capsys)
    downgrade(ix)
    with caplog.at_level("WARNING"):
        code, out, _ = identify(ix, built[1], capsys)
    assert code == 0 and json.loads(out) == json.loads(before)
    assert "without checksums" in caplog.text and "songmine compact" in caplog.text
    assert main(["verify", "--index", str(ix), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["unchecked"] == [f"segments/{next((ix / 'segments').iterdir()).name}", "8 profile(s)"]
    assert main(["compact", "--index", str(ix)]) == 0
    capsys.readouterr()
    assert main(["verify", "--index", str(ix), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["unchecked"] == [] and rep["bytes_checked"] > 0
    with sqlite3.connect(ix / CATALOG_NAME) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
        assert c.execute("SELECT COUNT(*) FROM segments WHERE checksum IS NULL").fetchone()[0] == 0
        assert c.execute("SELECT COUNT(*) FROM profiles WHERE checksum IS NULL").fetchone()[0] == 0
    code, out, _ = identify(ix, built[1], capsys)
    assert code == 0 and json.loads(out) == json.loads(before)


def test_an_index_of_the_previous_segment_format_answers_the_same_and_compacts_to_the_new(ix, built, capsys):
    """Version-4 segments (12 bytes a posting, as the release before the packed format wrote them) are read
    as they are, checked, and `songmine compact` rewrites them as version 5 with the same answers."""
    code, before, _ = identify(ix, built[1], capsys)
    seg, _ = only_segment(ix)
    write_segment(seg, open_segment(seg).decode(), version=4)
    with sqlite3.connect(ix / CATALOG_NAME) as c:
        c.execute("UPDATE segments SET checksum = ?", (segment_checksum(seg),))
    assert seg.read_bytes()[:8] == b"SMSEGv04"
    code, out, _ = identify(ix, built[1], capsys)
    assert code == 0 and json.loads(out) == json.loads(before)
    assert main(["verify", "--index", str(ix), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    assert main(["compact", "--index", str(ix)]) == 0
    capsys.readouterr()
    (seg,) = (ix / "segments").iterdir()
    assert seg.read_bytes()[:8] == b"SMSEGv05"
    code, out, _ = identify(ix, built[1], capsys)
    assert code == 0 and json.loads(out) == json.loads(before)


def test_a_segment_from_a_newer_songmine_is_refused_not_repaired(ix, built, capsys):
    """A newer segment format is not damage: identify says what to do in one line, verify --repair drops nothing."""
    seg, _ = only_segment(ix)
    damage(seg, 0, b"SMSEGv06")
    code = main(["identify", str(built[1][0]), "--index", str(ix)])
    cap = capsys.readouterr()
    line = cap.err.strip()
    assert code == 2 and cap.out == "" and "\n" not in line
    assert "segment format version 6 is newer" in line and "upgrade songmine" in line
    assert f"songmine index <music folders> --index {ix}" in line and "--repair" not in line
    assert main(["verify", "--index", str(ix), "--repair"]) == 2
    assert "newer" in capsys.readouterr().err
    assert seg.exists() and seg.read_bytes()[:8] == b"SMSEGv06"


def test_a_merge_never_copies_damage(ix, built, tmp_path, capsys, monkeypatch):
    """Indexing more files merges segments: a damaged one stops the merge, and nothing committed is lost."""
    monkeypatch.setattr(seg_mod, "CHECK_AT_OPEN", 0)
    monkeypatch.setattr(store_mod, "MERGE_FANIN", 2)
    seg, lay = only_segment(ix)
    flip(seg, lazy_records(lay)[0] + 40)
    more = tmp_path / "more"
    more.mkdir()
    from conftest import _tone_mix

    sf.write(more / "new.flac", _tone_mix(SR, 20.0, 900), SR)
    code = main(["index", str(more), "--index", str(ix), "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "segment is damaged" in err and "songmine verify" in err
    monkeypatch.setattr(seg_mod, "CHECK_AT_OPEN", 16 << 20)
    with Index(ix, _salvage=True) as index:
        assert seg.name in index.damaged and index.n_tracks == 9  # the new track's segment committed
