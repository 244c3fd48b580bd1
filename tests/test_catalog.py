"""Catalogue loaders and merge on the FMA samples (both layouts) and on corrupt inputs."""

from __future__ import annotations

import ast
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from songmine.catalog import (
    ECHONEST_COLUMNS,
    FEATURE_COLUMNS,
    TRACKS_COLUMNS,
    load,
    load_tables,
    merge,
)
from songmine.catalog.merge import audio_feature_columns, merge_source
from songmine.errors import DataError, ParameterError

DATA = Path(__file__).parent / "data" / "fma"
OFFICIAL = DATA / "official"
FLAT = DATA / "flat"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SONGMINE_CACHE", str(tmp_path / "cache"))


def reference_load(path: Path) -> pd.DataFrame:
    """The FMA reference loader's documented semantics (FORMAT.md §6), written out plainly."""
    name = path.name
    if "features" in name or "echonest" in name:
        return pd.read_csv(path, index_col=0, header=[0, 1, 2])
    if "genres" in name:
        return pd.read_csv(path, index_col=0)
    t = pd.read_csv(path, index_col=0, header=[0, 1])
    for c in [("track", "tags"), ("album", "tags"), ("artist", "tags"), ("track", "genres"), ("track", "genres_all")]:
        t[c] = t[c].map(ast.literal_eval)
    for c in [
        ("track", "date_created"),
        ("track", "date_recorded"),
        ("album", "date_created"),
        ("album", "date_released"),
        ("artist", "date_created"),
        ("artist", "active_year_begin"),
        ("artist", "active_year_end"),
    ]:
        t[c] = pd.to_datetime(t[c])
    t["set", "subset"] = t["set", "subset"].astype(pd.CategoricalDtype(["small", "medium", "large"], ordered=True))
    for c in [
        ("track", "genre_top"),
        ("track", "license"),
        ("album", "type"),
        ("album", "information"),
        ("artist", "bio"),
    ]:
        t[c] = t[c].astype("category")
    return t


# --------------------------------------------------------------------------- loaders


def test_column_constants_match_the_published_headers():
    assert len(FEATURE_COLUMNS) == 518 and len(set(FEATURE_COLUMNS)) == 518
    assert list(FEATURE_COLUMNS) == sorted(FEATURE_COLUMNS)  # the file's sort_index(axis=1) order
    assert len(TRACKS_COLUMNS) == 52 and len(ECHONEST_COLUMNS) == 249
    ref = reference_load(OFFICIAL / "features.csv")
    assert list(ref.columns) == list(FEATURE_COLUMNS)
    assert list(reference_load(OFFICIAL / "tracks.csv").columns) == list(TRACKS_COLUMNS)
    assert list(reference_load(OFFICIAL / "echonest.csv").columns) == list(ECHONEST_COLUMNS)


def test_tracks_match_the_reference_loader():
    ours = load(OFFICIAL / "tracks.csv")
    ref = reference_load(OFFICIAL / "tracks.csv")
    assert ours.shape == (20, 52)
    assert list(ours.index) == list(ref.index) and ours.index.name == "track_id"
    for c in ref.columns:
        a, b = ours[c], ref[c]
        if isinstance(b.dtype, pd.CategoricalDtype):
            assert isinstance(a.dtype, pd.CategoricalDtype), c
            assert a.dtype.ordered == b.dtype.ordered
        if pd.api.types.is_numeric_dtype(b.dtype) and not isinstance(b.dtype, pd.CategoricalDtype):
            np.testing.assert_array_equal(a.to_numpy(dtype=float), b.to_numpy(dtype=float), err_msg=str(c))
        else:
            assert [None if pd.isna(x) is True else x for x in a.astype(object)] == [
                None if pd.isna(x) is True else x for x in b.astype(object)
            ], c
    assert ours["track", "genres"].loc[2] == [21]
    assert ours["artist", "tags"].loc[2] == ["awol"]
    assert str(ours["track", "date_created"].dtype).startswith("datetime64")
    assert (ours["set", "subset"] <= "medium").sum() == 13  # small 7 + medium 6
    assert ours["track", "genre_top"].isna().sum() == 5


@pytest.mark.parametrize("table", ["features", "echonest"])
def test_numeric_tables_match_the_reference_loader_in_float32(table):
    ours = load(OFFICIAL / f"{table}.csv")
    ref = reference_load(OFFICIAL / f"{table}.csv")
    assert ours.shape == ref.shape
    assert list(ours.columns) == list(ref.columns) and list(ours.index) == list(ref.index)
    num = [c for c in ref.columns if pd.api.types.is_float_dtype(ref[c].dtype)]
    np.testing.assert_allclose(ours[num].to_numpy(dtype=np.float64), ref[num].to_numpy(), rtol=1e-6, atol=1e-30)
    if table == "features":
        assert set(ours.dtypes) == {np.dtype("float32")}
        assert ours.columns.names == ["feature", "statistics", "number"]
        assert ours["mfcc", "mean"].shape == (20, 20)
    else:
        assert ours["echonest", "audio_features"].shape == (8, 8)
        assert ours["echonest", "ranks"].isna().any().any()  # NaN allowed where the real file has them


@pytest.mark.parametrize("table", ["tracks", "features", "echonest"])
def test_flat_layout_loads_to_the_same_frame(table):
    a = load(OFFICIAL / f"{table}.csv")
    b = load(FLAT / f"{table}.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)


def test_echonest_flat_with_the_echonest_prefix_too(tmp_path):
    text = (FLAT / "echonest.csv").read_text()
    head, rest = text.split("\n", 1)
    cells = head.split(",")
    head = ",".join([cells[0]] + ["echonest_" + c for c in cells[1:]])
    p = tmp_path / "echonest.csv"
    p.write_text(head + "\n" + rest)
    pd.testing.assert_frame_equal(load(p), load(OFFICIAL / "echonest.csv"), check_exact=False, rtol=1e-6)


def test_genres():
    g = load(OFFICIAL / "genres.csv")
    assert g.shape == (163, 4) and g.index.name == "genre_id"
    assert (g["parent"] == 0).sum() == 16
    pd.testing.assert_frame_equal(g, reference_load(OFFICIAL / "genres.csv"), check_dtype=False)


def _zip(tmp_path: Path, prefix: str = "fma_metadata/") -> Path:
    z = tmp_path / "fma_metadata.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in OFFICIAL.glob("*.csv"):
            zf.write(f, prefix + f.name)
    return z


@pytest.mark.parametrize("prefix", ["fma_metadata/", ""])
def test_zip_is_read_without_unpacking(tmp_path, prefix):
    z = _zip(tmp_path, prefix)
    for t in ("tracks", "features", "echonest", "genres"):
        pd.testing.assert_frame_equal(load(z, t, cache=False), load(OFFICIAL / f"{t}.csv", cache=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "fma_metadata.zip"] or sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["fma_metadata.zip"]


def test_truncated_zip_is_a_data_error(tmp_path):
    z = _zip(tmp_path)
    data = z.read_bytes()
    bad = tmp_path / "cut.zip"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.zip"):
        load(bad, "features")
    # a damaged member (CRC) too
    raw = bytearray(data)
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("fma_metadata/features.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    raw[start : start + 50] = bytes(50)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="broken.zip"):
        load(broken, "features", cache=False)


def test_parquet_cache_is_used_and_invalidated(tmp_path):
    p = tmp_path / "features.csv"
    shutil.copy(OFFICIAL / "features.csv", p)
    first = load(p)
    cached = list((tmp_path / "cache" / "catalog").glob("features-*.parquet"))
    assert len(cached) == 1
    second = load(p)
    pd.testing.assert_frame_equal(first, second)
    # a changed file is re-read, not served stale from the cache
    df = pd.read_csv(p, index_col=0, header=[0, 1, 2])
    df.iloc[0, 0] = 123.0
    df.to_csv(p, float_format="%.10e")
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    assert load(p).iloc[0, 0] == np.float32(123.0)


def test_tracks_cache_round_trip_keeps_types():
    a = load(OFFICIAL / "tracks.csv")
    b = load(OFFICIAL / "tracks.csv")
    pd.testing.assert_frame_equal(a, b)
    assert b["set", "subset"].dtype.ordered
    assert b["track", "genres_all"].loc[20] == a["track", "genres_all"].loc[20]


# --------------------------------------------------------------------------- bad input


def _edit_header(src: Path, dst: Path, old: str, new: str, line: int) -> None:
    lines = src.read_text().split("\n")
    cells = lines[line].split(",")
    cells[cells.index(old)] = new
    lines[line] = ",".join(cells)
    dst.write_text("\n".join(lines))


def test_missing_file_in_the_set(tmp_path):
    d = tmp_path / "meta"
    d.mkdir()
    shutil.copy(OFFICIAL / "tracks.csv", d)
    shutil.copy(OFFICIAL / "features.csv", d)
    with pytest.raises(DataError, match="missing echonest.csv"):
        load_tables(d)
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope" / "tracks.csv")
    with pytest.raises(ParameterError):
        load(d)  # a directory needs a table name


def test_renamed_column_is_named(tmp_path):
    p = tmp_path / "tracks.csv"
    _edit_header(FLAT / "tracks.csv", p, "track_genre_top", "track_genre", 0)
    with pytest.raises(DataError, match=r"missing column 'track_genre_top'.*unexpected column 'track_genre'"):
        load(p)
    p = tmp_path / "features.csv"
    _edit_header(FLAT / "features.csv", p, "mfcc_mean_03", "mfcc_avg_03", 0)
    with pytest.raises(DataError, match=r"features.csv: missing column 'mfcc_mean_03'"):
        load(p)


def test_missing_column_official_layout(tmp_path):
    df = pd.read_csv(OFFICIAL / "features.csv", index_col=0, header=[0, 1, 2])
    p = tmp_path / "features.csv"
    df.drop(columns=[("zcr", "std", "01")]).to_csv(p, float_format="%.10e")
    with pytest.raises(DataError, match=r"missing column \('zcr', 'std', '01'\)"):
        load(p)


def test_duplicate_track_ids(tmp_path):
    df = pd.read_csv(OFFICIAL / "features.csv", index_col=0, header=[0, 1, 2])
    df = df.rename(index={10: 5})
    p = tmp_path / "features.csv"
    df.to_csv(p, float_format="%.10e")
    with pytest.raises(DataError, match=r"duplicate track_id 5 in data records \[3, 4\]"):
        load(p)
    t = tmp_path / "tracks.csv"
    lines = (FLAT / "tracks.csv").read_text().split("\n")
    t.write_text("\n".join(lines + [lines[1]]))
    with pytest.raises(DataError, match="duplicate track_id 2"):
        load(t)


@pytest.mark.parametrize("value, shown", [("nan", "NaN"), ("inf", "inf"), ("-inf", "-inf")])
def test_non_finite_features_name_column_and_row(tmp_path, value, shown):
    df = pd.read_csv(OFFICIAL / "features.csv", index_col=0, header=[0, 1, 2])
    df.loc[137, ("mfcc", "mean", "04")] = float(value)
    p = tmp_path / "features.csv"
    df.to_csv(p, float_format="%.10e")
    with pytest.raises(DataError, match=rf"{shown}.*\('mfcc', 'mean', '04'\) at track_id=137 \(data record 12\)"):
        load(p)
    kept = load(p, nonfinite="keep")
    assert kept.shape == (20, 518)
    dropped = load(p, nonfinite="drop")
    assert 137 not in dropped.index and dropped.shape == (19, 518)


def test_ragged_row_and_garbage_value(tmp_path):
    lines = (OFFICIAL / "features.csv").read_text().split("\n")
    p = tmp_path / "features.csv"
    p.write_text("\n".join(lines[:6] + [lines[6].rsplit(",", 1)[0]] + lines[7:]))
    with pytest.raises(DataError, match="features.csv"):
        load(p)
    cells = lines[5].split(",")
    cells[3] = "abc"
    p.write_text("\n".join(lines[:5] + [",".join(cells)] + lines[6:]))
    with pytest.raises(DataError, match=r"features.csv.*abc"):
        load(p)


def test_unknown_layout_and_name(tmp_path):
    p = tmp_path / "features.csv"
    p.write_text("id,a,b\n1,2,3\n")
    with pytest.raises(DataError, match="unrecognised header"):
        load(p)
    q = tmp_path / "mystery.csv"
    q.write_text("track_id,a\n1,2\n")
    with pytest.raises(ParameterError, match="cannot tell which FMA table"):
        load(q)


# --------------------------------------------------------------------------- merge


def test_merge_counts_and_flat_names():
    df, rep = merge_source(OFFICIAL)
    assert df.shape == (8, 52 + 518 + 249)
    assert [(c.table, c.rows, c.kept, c.dropped) for c in rep.inputs] == [
        ("tracks", 20, 8, 12),
        ("features", 20, 8, 12),
        ("echonest", 8, 8, 0),
    ]
    assert "tracks.track.genre_top" in df.columns
    assert "features.mfcc.mean.01" in df.columns
    assert "echonest.audio_features.tempo" in df.columns
    assert list(df.index) == [2, 3, 5, 10, 134, 139, 140, 141]
    feats = audio_feature_columns(df)
    assert len(feats) == 518 + 8 + 224
    assert not any(c.startswith("tracks.") for c in feats)
    df2, rep2 = merge_source(FLAT, echonest=False)
    assert df2.shape == (20, 570) and rep2.inputs[1].dropped == 0


def test_merge_is_by_id_not_position():
    tables = load_tables(OFFICIAL)
    shuffled = {t: df.sample(frac=1.0, random_state=7) for t, df in tables.items()}
    shuffled["features"] = shuffled["features"].iloc[::-1]
    a, _ = merge(tables)
    b, _ = merge(shuffled)
    pd.testing.assert_frame_equal(a, b)
    # each merged row carries its own id's values
    f = tables["features"]
    for tid in a.index:
        assert a.loc[tid, "features.mfcc.mean.01"] == f.loc[tid, ("mfcc", "mean", "01")]
        assert a.loc[tid, "tracks.track.title"] == tables["tracks"].loc[tid, ("track", "title")]


def test_merge_refuses_mixed_id_kinds_and_empty_joins():
    t = load(OFFICIAL / "tracks.csv")
    f = load(OFFICIAL / "features.csv")
    g = f.copy()
    g.index = pd.Index([f"music/{i}.mp3" for i in f.index], name="track_id")
    with pytest.raises(DataError, match="track_id types differ"):
        merge({"tracks": t, "features": g})
    h = f.copy()
    h.index = h.index + 10**6
    with pytest.raises(DataError, match="share no track_id"):
        merge({"tracks": t, "features": h})


def test_cli_merge_json_and_outputs(tmp_path):
    from songmine.cli._app import main

    out = tmp_path / "m.parquet"
    code = main(["catalog", "merge", str(OFFICIAL), "-o", str(out), "--json"])
    assert code == 0
    m = pd.read_parquet(out)
    assert m.shape == (8, 819) and m.index.name == "track_id"
    csv_out = tmp_path / "m.csv"
    assert main(["catalog", "merge", str(_zip(tmp_path)), "--no-echonest", "-o", str(csv_out)]) == 0
    c = pd.read_csv(csv_out, index_col=0)
    assert c.shape == (20, 570)


def test_cli_merge_json_summary(tmp_path, capsys):
    from songmine.cli._app import main

    assert main(["catalog", "merge", str(OFFICIAL), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["rows"] == 8 and [i["dropped"] for i in rec["inputs"]] == [12, 12, 0]


def test_cli_merge_bad_input_exits_2(tmp_path, capsys):
    from songmine.cli._app import main

    d = tmp_path / "meta"
    d.mkdir()
    shutil.copy(OFFICIAL / "tracks.csv", d)
    assert main(["catalog", "merge", str(d)]) == 2
    assert "missing features.csv" in capsys.readouterr().err


# --------------------------------------------------------------------------- features of an index


def test_cli_features_of_an_index(tmp_path, synth_music, capsys):
    """`songmine features --index P`: the index's integer ids, its live tracks only, resumable."""
    import soundfile as sf
    from mutagen.flac import FLAC

    from songmine.cli._app import main
    from songmine.fingerprint.index import Index, index_files

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(4):
        sf.write(str(lib / f"s{i}.flac"), synth_music(22050, 2.5, 10 + i), 22050)
    f = FLAC(str(lib / "s1.flac"))
    f["title"], f["artist"], f["genre"], f["date"] = "Second", "Band", "Jazz", "2014"
    f.save()
    ix_path = tmp_path / "ix"
    with Index(ix_path, create=True) as ix:
        index_files(ix, [lib], jobs=1)
        ids = {Path(r.path).name: r.track_id for r in ix.tracks()}
        ix.remove([ids["s2.flac"]])  # a removed track is not a track of the index any more
    (lib / "s3.flac").unlink()  # gone from disk: reported, not fatal
    out = tmp_path / "out" / "features.csv"
    assert main(["features", "--index", str(ix_path), "-o", str(out), "--jobs", "1", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["files"] == 3 and rec["computed"] == 2 and rec["rows"] == 2
    assert rec["failed"] == [
        {"track_id": ids["s3.flac"], "path": str(lib / "s3.flac"), "error": rec["failed"][0]["error"]}
    ]
    assert "no such file" in rec["failed"][0]["error"]
    feats = load(out, cache=False)
    want = sorted([ids["s0.flac"], ids["s1.flac"]])
    assert list(feats.index) == want and feats.index.dtype == np.int64 and feats.shape == (2, 518)
    assert np.isfinite(feats.to_numpy()).all()
    tracks = load(out.with_name("tracks.csv"), cache=False)
    assert list(tracks.index) == want
    s1 = tracks.loc[ids["s1.flac"]]
    assert s1["track", "title"] == "Second" and s1["artist", "name"] == "Band" and s1["track", "genre_top"] == "Jazz"
    assert s1["album", "date_released"].year == 2014 and s1["track", "duration"] == 2
    # the two tables of an index merge like FMA's (integer ids on both sides)
    merged, _ = merge({"tracks": tracks, "features": feats})
    assert list(merged.index) == want
    # resume after removing one more track: nothing recomputed, its row is not carried over
    with Index(ix_path) as ix:
        ix.remove([ids["s0.flac"]])
    assert main(["features", "--index", str(ix_path), "-o", str(out), "--jobs", "1", "--json"]) == 0
    rec2 = json.loads(capsys.readouterr().out)
    assert rec2["computed"] == 0 and rec2["resumed"] == 1 and rec2["stale_dropped"] == 1
    again = load(out, cache=False)
    assert list(again.index) == [ids["s1.flac"]]
    np.testing.assert_array_equal(again.to_numpy(), feats.loc[[ids["s1.flac"]]].to_numpy())
    assert load(out.with_name("tracks.csv"), cache=False).loc[ids["s1.flac"], ("track", "title")] == "Second"


def test_cli_features_missing_index_exits_2(tmp_path, capsys):
    from songmine.cli._app import main

    assert main(["features", "--index", str(tmp_path / "nope"), "-o", str(tmp_path / "f.csv")]) == 2
    assert "no index" in capsys.readouterr().err


# --------------------------------------------------------------------------- planted FMA files


def test_planted_fma_csvs_are_in_the_exact_format(tmp_path):
    from songmine.cluster.synthetic import FMA_ROOT_IDS, make_fma_like, write_fma_csvs

    p = write_fma_csvs(tmp_path / "fma", 400, n_echonest=120, k=3, seed=1)
    for table, n_header in (("tracks", 3), ("features", 4), ("echonest", 4), ("genres", 1)):
        ours = (tmp_path / "fma" / f"{table}.csv").read_text().split("\n")[:n_header]
        assert ours == (OFFICIAL / f"{table}.csv").read_text().split("\n")[:n_header], table
    # the FMA reference loader and ours read the same thing
    for table in ("tracks", "features", "echonest"):
        ours, ref = load(p.files[table]), reference_load(p.files[table])
        assert list(ours.columns) == list(ref.columns) and list(ours.index) == list(ref.index), table
        if table == "tracks":
            pd.testing.assert_frame_equal(ours, ref, check_dtype=False, check_categorical=False)
        else:
            num = [c for c in ref.columns if pd.api.types.is_float_dtype(ref[c].dtype)]
            np.testing.assert_allclose(ours[num].to_numpy(np.float64), ref[num].to_numpy(), rtol=1e-6)
    genres = load(p.files["genres"])
    assert set(genres.loc[genres["parent"] == 0, "title"]) == set(FMA_ROOT_IDS)
    tracks = load(p.files["tracks"])
    assert tracks.shape == (400, 52) and tracks.index.is_monotonic_increasing
    assert tracks["artist", "bio"].dropna().str.contains("\n").any()  # quoted newlines, as in FMA
    # genre_top is set exactly when the genres have one root, and that root is genre_top
    top_level = genres["top_level"].to_dict()
    for g, lst in zip(tracks["track", "genre_top"], tracks["track", "genres"]):
        roots = {top_level[x] for x in lst}
        assert (roots == {FMA_ROOT_IDS[g]}) if isinstance(g, str) else len(roots) != 1
    # echonest ids ⊂ tracks ids; merge counts; the truth is make_fma_like's
    df, rep = merge_source(tmp_path / "fma")
    assert [(c.rows, c.kept) for c in rep.inputs] == [(400, 120), (400, 120), (120, 120)]
    assert merge_source(tmp_path / "fma", echonest=False)[1].rows == 400
    truth = pd.read_csv(p.files["planted"], index_col="track_id")["planted_cluster"]
    ref_cat = make_fma_like(400, n_echonest=120, k=3, seed=1)  # same defaults as write_fma_csvs
    assert truth.equals(ref_cat.truth.rename("planted_cluster"))
    np.testing.assert_allclose(
        load(p.files["features"]).to_numpy(),
        ref_cat.full[[f"features.{a}.{b}.{c}" for a, b, c in FEATURE_COLUMNS]].to_numpy(),
        rtol=1e-6,
    )
    assert json.loads(p.files["planted_info"].read_text())["dominant_genre"] == {
        "0": "Rock",
        "1": "Electronic",
        "2": "Hip-Hop",
    }


def test_cached_list_columns_are_fresh_lists():
    a = load(OFFICIAL / "tracks.csv")
    b = load(OFFICIAL / "tracks.csv")  # from the parquet cache
    for c in [("track", "tags"), ("album", "tags"), ("artist", "tags"), ("track", "genres"), ("track", "genres_all")]:
        assert all(type(x) is list for x in b[c]) and b[c].tolist() == a[c].tolist()
    g = b["track", "genres"]
    assert len({id(x) for x in g}) == len(g)  # equal lists are distinct objects: mutating one changes one row
    g.iloc[0].append(999)
    assert 999 not in g.iloc[1] and 999 not in load(OFFICIAL / "tracks.csv")["track", "genres"].iloc[0]
