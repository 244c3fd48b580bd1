"""The catalogue's parquet cache: eviction of stale and old-format entries, safety, `catalog cache`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from songmine.catalog import load
from songmine.catalog.cache import CACHE_FORMAT, TEMP_GRACE_S, entries
from songmine.cli._app import main

OFFICIAL = Path(__file__).parent / "data" / "fma" / "official"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SONGMINE_CACHE", str(tmp_path / "cache"))


def cache_files(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "cache" / "catalog").iterdir())


def touch_later(p: Path, seconds: int = 1) -> None:
    """A new version of the file, as far as the cache key can tell (size, mtime)."""
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_a_new_version_of_a_source_evicts_its_old_entry(tmp_path):
    p = tmp_path / "a" / "features.csv"
    other = tmp_path / "b" / "features.csv"
    for q in (p, other):
        q.parent.mkdir()
        shutil.copy(OFFICIAL / "features.csv", q)
    load(p)
    load(other)
    load(p, nonfinite="keep")  # other load options of the same file: their own entry, kept
    assert len(cache_files(tmp_path)) == 3
    for k in range(1, 4):  # three new versions of p: still one entry for each (source, options)
        touch_later(p, k)
        load(p)
    files = cache_files(tmp_path)
    assert len(files) == 3 and all(f.startswith("features-") and f"-v{CACHE_FORMAT}-" in f for f in files)
    statuses = sorted((e.source == str(p.resolve()), e.status) for e in entries())
    # p's nonfinite="keep" entry is of p's first version: stale (kept until that load or a prune)
    assert statuses == [(False, "current"), (True, "current"), (True, "stale")]


def test_old_formats_and_dead_temp_files_go_nothing_else(tmp_path):
    root = tmp_path / "cache" / "catalog"
    root.mkdir(parents=True)
    outside = tmp_path / "precious.parquet"
    outside.write_bytes(b"not the cache's")
    old = time.time() - 2 * TEMP_GRACE_S
    planted = {
        "features-0123456789abcdef0123.parquet": True,  # the pre-v5-naming cache file
        f"tracks-{'a' * 16}-v{CACHE_FORMAT - 1}-{'b' * 16}.parquet": True,  # an older format
        f"tracks-{'a' * 16}-v{CACHE_FORMAT + 1}-{'b' * 16}.parquet": False,  # a newer songmine's
        "echonest-0123456789abcdef0123.tmp4242": True,  # a dead writer's temp file (old naming), old
        f"genres-{'c' * 16}-v{CACHE_FORMAT}-{'d' * 16}.parquet.77-abcdef.tmp": False,  # young: may be writing
        "notes.txt": False,  # not ours
    }
    for name in planted:
        (root / name).write_bytes(b"x")
    os.utime(root / "echonest-0123456789abcdef0123.tmp4242", (old, old))
    link = root / "features-fedcba9876543210fedc.parquet"  # a symlink named like an entry
    link.symlink_to(outside)
    load(OFFICIAL / "genres.csv")
    left = set(cache_files(tmp_path))
    for name, goes in planted.items():
        assert (name not in left) == goes, name
    assert link.is_symlink() and outside.read_bytes() == b"not the cache's"
    assert any(n.startswith("genres-") and n.endswith(".parquet") for n in left)


def test_a_reader_with_the_entry_mapped_survives_its_eviction(tmp_path):
    import pyarrow.parquet as pq

    p = tmp_path / "echonest.csv"
    shutil.copy(OFFICIAL / "echonest.csv", p)
    first = load(p)
    [entry] = (tmp_path / "cache" / "catalog").glob("echonest-*.parquet")
    mapped = pq.ParquetFile(entry, memory_map=True).read()  # Arrow buffers on the mmap
    touch_later(p)
    load(p)
    assert not entry.exists()  # evicted while mapped
    again = mapped.to_pandas()  # the mapping still reads the old inode (POSIX)
    assert len(again) == len(first)
    col = [c for c in again.columns if c.split("\x1f")[-2:] == ["audio_features", "tempo"]][0]
    np.testing.assert_array_equal(again[col].to_numpy(), first["echonest", "audio_features", "tempo"].to_numpy())


def test_concurrent_processes_writing_and_evicting(tmp_path):
    p = tmp_path / "tracks.csv"
    shutil.copy(OFFICIAL / "tracks.csv", p)
    code = (
        "import os, sys\n"
        "from songmine.catalog import load\n"
        "p = sys.argv[1]\n"
        "for k in range(4):\n"
        "    st = os.stat(p)\n"
        "    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))\n"  # new versions while others read
        "    assert len(load(p)) == 20, k\n"
    )
    env = {
        **os.environ,
        "SONGMINE_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p)], env=env, stderr=subprocess.PIPE) for _ in range(3)]
    errs = [(pr.wait(timeout=120), pr.stderr.read().decode()) for pr in procs]
    assert all(rc == 0 for rc, _ in errs), errs
    assert not any("Traceback" in e for _, e in errs)
    load(p)  # the last version: exactly one entry remains, no temp files
    files = cache_files(tmp_path)
    assert len(files) == 1 and files[0].endswith(".parquet"), files
    assert [e.status for e in entries()] == ["current"]


def run(args, capsys):
    code = main(args)
    return code, capsys.readouterr().out


def test_cli_lists_prunes_and_clears(tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(OFFICIAL, src)
    load(src / "features.csv")
    load(src / "tracks.csv")
    (tmp_path / "cache" / "catalog" / "notes.txt").write_text("mine")
    code, out = run(["catalog", "cache", "--json"], capsys)
    listing = json.loads(out)
    assert code == 0 and listing["dir"] == str(tmp_path / "cache" / "catalog")
    assert sorted((e["table"], e["status"]) for e in listing["entries"]) == [
        ("features", "current"),
        ("tracks", "current"),
    ]
    (src / "tracks.csv").unlink()
    code, out = run(["catalog", "cache", "--prune", "--json"], capsys)
    pruned = json.loads(out)
    assert [Path(d).name.split("-")[0] for d in pruned["deleted"]] == ["tracks"]
    assert [e["table"] for e in pruned["entries"]] == ["features"]
    code, out = run(["catalog", "cache", "--clear", "--json"], capsys)
    assert code == 0 and json.loads(out)["entries"] == []
    assert cache_files(tmp_path) == ["notes.txt"]
    assert isinstance(load(src / "features.csv"), pd.DataFrame)  # reloads from the CSV after a clear
    code, out = run(["catalog", "cache"], capsys)
    assert code == 0 and "current" in out
