"""Files shared by several processes: written whole under unique temporary names, built once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from songmine.atomic import atomic_path, build_once, exclusive

SRC = str(Path(__file__).parents[1] / "src")

# A child that builds one cache entry slowly, noting each build it really does.
_BUILD = """
import sys, time
from pathlib import Path
from songmine.atomic import build_once
dest, log = Path(sys.argv[1]), Path(sys.argv[2])

def build(tmp):
    with open(log, "a") as fh:
        fh.write("built\\n")
    tmp.write_bytes(b"x" * 100_000)
    time.sleep(0.5)  # long enough for every other process to arrive while this one builds
    tmp.write_bytes(b"entry" * 20_000)

print(build_once(dest, build).read_bytes() == b"entry" * 20_000)
"""


def _children(code: str, *args: str, n: int = 4) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(n)
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


def test_four_processes_build_one_cache_entry_once(tmp_path):
    dest, log = tmp_path / "cache" / "cut.30s.flac", tmp_path / "builds.log"
    results = _children(_BUILD, str(dest), str(log))
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    assert [r.stdout.strip() for r in results] == ["True"] * 4  # each saw the whole entry
    assert log.read_text() == "built\n"  # built by one of them only
    assert sorted(p.name for p in dest.parent.iterdir()) == [".cut.30s.flac.lock", "cut.30s.flac"]


def test_a_failed_build_leaves_nothing_and_the_next_caller_builds(tmp_path):
    dest = tmp_path / "entry.bin"

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("decoder died")

    with pytest.raises(RuntimeError, match="decoder died"):
        build_once(dest, broken)
    assert not dest.exists() and [p.name for p in tmp_path.iterdir()] == [".entry.bin.lock"]
    assert build_once(dest, lambda tmp: tmp.write_bytes(b"whole")).read_bytes() == b"whole"
    assert build_once(dest, lambda tmp: pytest.fail("built twice")).read_bytes() == b"whole"


def test_atomic_path_keeps_the_old_file_on_failure_and_the_extension_on_the_temp_name(tmp_path):
    dest = tmp_path / "merged.parquet"
    dest.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(dest) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".parquet" and tmp != dest
            tmp.write_text("new but broken")
            raise ValueError
    assert dest.read_text() == "old" and sorted(tmp_path.iterdir()) == [dest]
    with atomic_path(dest) as tmp:
        tmp.write_text("new")
    assert dest.read_text() == "new" and sorted(tmp_path.iterdir()) == [dest]
    assert dest.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


_HOLD = """
import sys, time
from songmine.atomic import exclusive
with exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_lock_dies_with_a_killed_holder(tmp_path):
    lock = tmp_path / ".lock"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait(timeout=30)
        with exclusive(lock):  # would wait forever if the lock outlived its holder
            pass
    finally:
        holder.kill()
