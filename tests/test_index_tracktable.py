"""The catalogue snapshot's tracks kept by column: the same mapping as a dict of records, in less memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from songmine.fingerprint.index.schema import STATUS_OK, STATUS_REMOVED
from songmine.fingerprint.index.tracktable import PART_ROWS, TrackRecord, TrackTable


def _rows(n: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(10 * n + 1, n, replace=False) + 1  # gaps, any order
    rows = []
    for i, tid in enumerate(ids.tolist()):
        tagged = i % 3 == 0
        rows.append(
            (
                tid,
                f"/music/album {i % 97}/track {i:06d}.ogg",
                f"{rng.integers(0, 2**63):016x}" * 4,
                float(rng.uniform(30, 600)),
                f"title {i}" if tagged else None,
                "artist" if tagged and i % 2 else None,
                None,
                int(rng.integers(0, 50_000)),
                STATUS_REMOVED if i % 11 == 0 else STATUS_OK,
            )
        )
    return rows


def test_the_table_is_the_dict_of_records():
    rows = _rows(3000)
    want = {r[0]: TrackRecord(*r) for r in rows}
    got = TrackTable(rows)
    assert len(got) == len(want) and list(got) == sorted(want)
    assert dict(got.items()) == want  # every field of every record
    for tid in list(want)[:50]:
        assert tid in got and got[tid] == want[tid] and got.get(tid) == want[tid]
    for missing in (0, -1, 10**9, max(want) + 1, "7", 3.0, True, None):
        assert missing not in got and got.get(missing) is None
    with pytest.raises(KeyError):
        got[max(want) + 1]
    live = [t for t, r in sorted(want.items()) if r.status == STATUS_OK]
    assert got.ids_where(live=True) == live
    assert got.ids_where(live=False) == sorted(t for t, r in want.items() if r.status != STATUS_OK)
    assert got.n_live == len(live)
    assert got.live_duration_s == pytest.approx(sum(want[t].duration_s for t in live), rel=1e-12)
    assert isinstance(got[live[0]].track_id, int) and isinstance(got[live[0]].duration_s, float)


def test_an_empty_table():
    t = TrackTable(())
    assert len(t) == 0 and list(t) == [] and t.n_live == 0 and t.live_duration_s == 0.0 and 1 not in t
    only_removed = TrackTable([(1, "/a.ogg", "x" * 64, 3.0, None, None, None, 10, STATUS_REMOVED)])
    assert only_removed.n_live == 0 and only_removed.ids_where(live=False) == [1]


def test_the_table_holds_under_two_fifths_of_the_dicts_memory_and_says_how_much():
    """Built from fresh catalogue rows, as a snapshot is: what stays allocated afterwards."""

    def allocated(build) -> int:
        tracemalloc.start()
        try:
            obj = build(_rows(20_000, seed=1))  # the rows (and their strings) made while traced
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del obj
        return size

    as_dict = allocated(lambda rows: {r[0]: TrackRecord(*r) for r in rows})
    as_table = allocated(TrackTable)
    assert as_table < 0.4 * as_dict, (as_table, as_dict)
    table = TrackTable(_rows(20_000, seed=1))
    assert 0.9 * as_table < table.nbytes < 1.1 * as_table  # what it says it holds is what it holds


@pytest.mark.parametrize(
    "strings",
    [
        [],
        [""],
        ["", "", "a"],
        ["/música/Ünïcode ♫.flac", "/plain.ogg", ""],
        ["/bad-\udcff-bytes.ogg", "/ok.ogg"],  # a file name that was not UTF-8, as os.fsdecode gives it
        ["with\x00nul", "x", "\x00"],  # not a path, but kept whole too
    ],
)
def test_packed_strings_round_trip(strings):
    from songmine.fingerprint.index.tracktable import _Strings

    packed = _Strings(strings)
    assert [packed[i] for i in range(len(strings))] == strings


def test_tables_joined_are_the_table_of_all_their_rows():
    rows = sorted(_rows(3000, seed=3))
    rows[5] = (rows[5][0], "/odd\udcff name\0with a NUL", *rows[5][2:])  # a part that takes the slow string path
    whole = TrackTable(rows)
    rng = np.random.default_rng(4)
    for _ in range(20):
        cuts = sorted(rng.choice(len(rows) + 1, int(rng.integers(0, 8)), replace=True).tolist())
        parts = [TrackTable(rows[a:b]) for a, b in zip([0, *cuts], [*cuts, len(rows)])]
        got = TrackTable.concat(parts)
        assert list(got) == list(whole) and dict(got.items()) == dict(whole.items())
        assert got.ids_where(live=True) == whole.ids_where(live=True) and got.n_live == whole.n_live
        assert got.last_id == rows[-1][0]
    rem = [r for r in rows if r[8] == STATUS_REMOVED][:5]  # a part of removed tracks only: its statuses coded apart
    rest = [r for r in rows if r[0] > rem[-1][0]]
    got = TrackTable.concat([TrackTable(rem), TrackTable(rest)])
    assert dict(got.items()) == {r[0]: TrackRecord(*r) for r in rem + rest}
    assert got.ids_where(live=False) == sorted(r[0] for r in rem + rest if r[8] == STATUS_REMOVED)
    odd = [(r[0], r[1], r[2].upper() if i % 2 else "not a digest", *r[3:]) for i, r in enumerate(rest[:6])]
    tail = rest[6:]  # content hashes that are not lowercase hex: kept as they were given, joined with digests
    got = TrackTable.concat([TrackTable(rem), TrackTable(odd), TrackTable(tail)])
    assert dict(got.items()) == {r[0]: TrackRecord(*r) for r in rem + odd + tail}
    assert len(TrackTable.concat([])) == 0 and TrackTable(()).last_id == 0
    with pytest.raises(ValueError, match="do not ascend"):
        TrackTable.concat([TrackTable(rows[10:20]), TrackTable(rows[:10])])


def test_the_live_contents_are_the_set_of_the_live_hashes():
    rows = _rows(3000, seed=3)
    rows[5] = (*rows[5][:2], "not-a-digest", *rows[5][3:])  # a hash songmine did not write: kept as text
    table = TrackTable(rows)
    for t in (table, TrackTable([r for r in rows if r[2] != "not-a-digest"])):  # text and digest columns
        contents = t.live_contents()
        live = {t[i].sha256 for i in t.ids_where(live=True)}
        dead = {t[i].sha256 for i in t.ids_where(live=False)} - live
        assert len(contents) == len(live) and all(h in contents for h in live)
        assert not any(h in contents for h in dead)
        rng = np.random.default_rng(4)
        others = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(500)]
        near = [h[:-1] + ("0" if h[-1] != "0" else "1") for h in list(live)[:500]]  # same first 8 bytes
        assert not any(h in contents for h in others + near + [h.upper() for h in live] + [None, 3, ""])


def test_contents_sharing_their_first_eight_bytes_are_told_apart():
    from songmine.fingerprint.index.contents import ContentSet

    a = "ab" * 8 + "00" * 24
    twins = [a[:16] + f"{i:048x}" for i in range(50)]  # one sort key, 50 digests
    s = ContentSet.of(twins[::2])
    assert [h in s for h in twins] == [i % 2 == 0 for i in range(50)]
    assert len(ContentSet.of([])) == 0 and a not in ContentSet.of([])


def test_joining_new_rows_to_a_table_copies_at_most_one_part():
    """A refresh after a commit joins the new tracks to the snapshot's table: the old parts are shared."""
    rows = sorted(_rows(60_000, seed=5))
    big = TrackTable.concat([TrackTable(rows[i : min(i + 8192, 50_000)]) for i in range(0, 50_000, 8192)])
    assert all(len(p) <= PART_ROWS for p in big._parts) and len(big._parts) <= 50_000 // PART_ROWS + 1
    table = big
    for lo in range(50_000, 60_000, 500):  # loop over commits of 500 tracks
        tracemalloc.start()
        joined = TrackTable.concat([table, TrackTable(rows[lo : lo + 500])])
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert all(a is b for a, b in zip(table._parts[:-1], joined._parts))  # every part but the last shared
        assert peak < 0.3 * big.nbytes, (peak, big.nbytes)  # (a whole copy would be ~1×)
        table = joined
    whole = TrackTable(rows)
    assert dict(table.items()) == dict(whole.items()) and table.live_duration_s == whole.live_duration_s
    assert len(table._parts) <= 60_000 // PART_ROWS + 2
