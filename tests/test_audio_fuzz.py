"""The decoder fuzz (benchmarks/decoder_fuzz.py), a seeded sample: no input crashes, hangs or
escapes untyped from songmine's decoder.

One random cell (channels, rate, damage) of every format the encoders here can write, and the
special inputs (empty, text and noise named as audio, hours of silence in a small file, headers
declaring huge or tiny durations, a 1-Hz rate, AAC that changes rate or channels mid-way), each
decoded in a worker process with a time bound. The whole grid is the benchmark's.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SONGMINE_FUZZ_SEED", "0"))


@pytest.fixture(scope="module")
def fuzz():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "decoder_fuzz.py"
    spec = importlib.util.spec_from_file_location("songmine_bench_decoder_fuzz", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _table(results) -> str:
    return "\n".join(f"{r.case} {r.call}: {r.outcome} {r.detail[:200]}" for r in results)


def test_the_harness_reports_a_crash_and_a_hang(fuzz, tmp_path):
    worker = fuzz.Worker(memory_mb=0, log_dir=tmp_path)
    try:
        status, detail = worker.ask({"op": "abort"}, timeout=60)
        assert status == "crash" and "exit -6" in detail
        assert worker.ask({"op": "sleep", "seconds": 30}, timeout=0.5) == ("hang", "")
        assert worker.ask({"op": "sleep", "seconds": 0}, timeout=60) == ("ok", {"done": "sleep"})  # a new worker
    finally:
        worker.stop()


def test_decoder_fuzz_sample(fuzz):
    cases = fuzz.ci_sample(SEED)
    results = fuzz.run(cases, jobs=2, timeout=60)
    ran = [r for r in results if r.outcome != "n/a"]
    failed = [r for r in results if r.failed]
    assert not failed, f"{len(failed)} failures (seed {SEED}):\n{_table(failed)}"
    # every format was written and decoded, and every call ran
    assert {r.fmt for r in ran} >= set(fuzz.FORMATS) | set(fuzz.SPECIALS), _table(results)
    assert {r.call for r in ran} == set(fuzz.CALLS)
    assert sum(r.outcome == "audio" for r in ran) > 100
    # what callers bound with max_duration stays small, whatever the file declares or holds
    limited = [
        r
        for r in ran
        if r.call == "load-limit" and r.fmt in ("silence-3h", "under-declared", "rate-1hz", "huge-declared")
    ]
    assert len(limited) >= 10
    assert all(r.outcome in ("audio", "DecodeError:too-long", "DecodeError:truncated") for r in limited), _table(
        limited
    )
    assert max(r.rss_mb for r in limited) < 250, _table(limited)
    hours = [r for r in ran if r.fmt in ("silence-3h", "under-declared") and r.call in ("load-limit", "scan")]
    assert {r.outcome for r in hours if r.call == "load-limit"} == {"DecodeError:too-long"}, _table(hours)
    assert max(r.rss_mb for r in hours) < 250, _table(hours)
