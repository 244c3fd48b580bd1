"""The windowed MinHash sketch index: finds real clips at the right offset, refuses non-members."""

from __future__ import annotations

import numpy as np
import pytest

from songmine.errors import IndexFormatError, ParameterError
from songmine.minhash.sketch import SketchConfig, SketchIndex


@pytest.fixture(scope="module")
def sketch_and_audio(real_cuts):
    from songmine.audio import load

    audio = [load(p, sr=11025) for p in real_cuts]
    idx = SketchIndex()
    for k, (p, y) in enumerate(zip(real_cuts[:5], audio[:5])):
        idx.add_audio(k, str(p), y)
    return idx, audio


@pytest.mark.corpus
@pytest.mark.slow
def test_clips_found_at_their_offset_and_non_member_refused(sketch_and_audio, tmp_path):
    from songmine.evaluation.degrade import degrade

    idx, audio = sketch_and_audio
    rng = np.random.default_rng(1)
    right = 0
    for k in range(5):
        start = rng.uniform(2.0, 20.0)
        clip = audio[k][int(start * 11025) : int((start + 5.0) * 11025)]
        r = idx.query_audio(clip)
        if r.matches and r.matches[0].track_id == k:
            right += 1
            assert r.matches[0].offset_s == pytest.approx(start, abs=0.3)
        noisy = degrade(clip, 11025, "white15", random_state=k)
        r = idx.query_audio(noisy)
        right += bool(r.matches) and r.matches[0].track_id == k
    assert right >= 8  # of 10 (5 clean + 5 at 15 dB SNR)
    # the sixth real track is not indexed: its clips must not be claimed
    false = sum(
        bool(idx.query_audio(audio[5][int(s * 11025) : int((s + 5) * 11025)]).matches) for s in (3.0, 11.0, 19.0)
    )
    assert false == 0

    folder = idx.save(tmp_path / "sketch")
    again = SketchIndex.load(folder)
    clip = audio[2][int(8.0 * 11025) : int(13.0 * 11025)]
    r1, r2 = idx.query_audio(clip), again.query_audio(clip)
    assert [m.track_id for m in r1.matches] == [m.track_id for m in r2.matches] == [2]


def test_silence_and_short_clips_do_not_crash(synth_music):
    idx = SketchIndex()
    idx.add_audio(0, "music", synth_music(11025, 20.0, seed=2))
    idx.add_audio(1, "silence", np.zeros(11025 * 5, np.float32))
    assert idx.query_audio(np.zeros(11025 * 3, np.float32)).matches == []
    assert idx.query_audio(np.zeros(1102, np.float32)).matches == []  # 0.1 s
    r = idx.query_audio(synth_music(11025, 0.1, seed=2))
    assert r.error is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_bands": 10}, "n_perm"),
        ({"window_s": 0.5, "hop_s": 1.0}, "window_s"),
        ({"min_pair_jaccard": 0.0}, "min_pair_jaccard"),
        ({"hop_s": 0.3}, "multiple"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        SketchConfig(**kwargs)


def test_empty_or_missing_index(tmp_path):
    with pytest.raises(IndexFormatError, match="empty"):
        SketchIndex().query_audio(np.zeros(11025, np.float32))
    with pytest.raises(IndexFormatError, match="no sketch index"):
        SketchIndex.load(tmp_path)
