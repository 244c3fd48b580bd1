"""songmine.stages: CPU time charged to nested stages, exclusively, only when someone measures."""

from __future__ import annotations

import threading
import time
from contextvars import copy_context

import numpy as np

from songmine.audio import load
from songmine.stages import StageClock, measuring, stage


def _spin(seconds: float) -> None:
    t0 = time.thread_time()
    while time.thread_time() - t0 < seconds:
        pass


def test_nested_stages_are_exclusive_and_add_up():
    clock = StageClock()
    t0 = time.thread_time()
    with measuring(clock):
        with stage("outer"):
            _spin(0.01)
            with stage("inner"):
                _spin(0.03)
            _spin(0.01)
    total = time.thread_time() - t0
    assert set(clock.seconds) == {"outer", "inner"}
    assert clock.seconds["inner"] >= 0.03 and clock.seconds["outer"] >= 0.02
    assert clock.seconds["outer"] < 0.03  # the inner stage's time is not the outer's too
    assert sum(clock.seconds.values()) <= total + 1e-3
    header = clock.server_timing()
    assert header.startswith("outer;dur=") and ", inner;dur=" in header


def test_nothing_is_measured_without_a_clock_and_threads_get_the_callers_clock():
    with stage("decode"):  # no clock: a no-op
        _spin(0.001)
    clock = StageClock()
    with measuring(clock):
        ctx = copy_context()  # what a thread pool hands its worker (Starlette, anyio)

    def work() -> None:
        with stage("x"):
            _spin(0.005)

    t = threading.Thread(target=ctx.run, args=(work,))
    t.start()
    t.join()
    assert set(clock.seconds) == {"x"} and clock.seconds["x"] >= 0.005


def test_decoding_charges_the_resampler_apart(tmp_path):
    import soundfile as sf

    y = (0.3 * np.random.default_rng(0).standard_normal(22050 * 3)).astype(np.float32)
    sf.write(tmp_path / "a.wav", y, 22050, subtype="PCM_16")
    clock = StageClock()
    with measuring(clock), stage("decode"):
        out = load(tmp_path / "a.wav", sr=11025)
    assert out.shape == (11025 * 3,)
    assert clock.seconds["decode"] > 0 and clock.seconds["resample"] > 0
