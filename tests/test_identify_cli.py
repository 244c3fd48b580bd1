"""``songmine identify`` as a user meets it: folders of clips, whole files, the rate found (speed, tempo,
pitch), and the seed method's candidates with a threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import require

from songmine.audio import load
from songmine.cli._app import main
from songmine.records import Match

pytestmark = pytest.mark.corpus
SR = 22050


@pytest.fixture(scope="module")
def library(real_cuts, tmp_path_factory) -> tuple[Path, Path]:
    """A landmark index of four real cuts: (index, folder of the cuts)."""
    root = tmp_path_factory.mktemp("identify")
    lib = root / "lib"
    lib.mkdir()
    for c in real_cuts[:4]:
        (lib / c.name).symlink_to(c)
    ix = root / "ix"
    assert main(["index", str(lib), "--index", str(ix), "-j", "1"]) == 0
    return ix, lib


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_folder_of_clips_is_walked_like_a_library(library, real_cuts, tmp_path, capsys):
    ix, _ = library
    clips = tmp_path / "clips"
    (clips / "sub").mkdir(parents=True)
    for i, c in enumerate(real_cuts[:3]):
        sf.write((clips if i else clips / "sub") / f"clip{i}.wav", load(c, sr=SR, offset=8.0 + i, duration=5.0), SR)
    (clips / "notes.txt").write_text("not audio: not walked")
    code, out, _ = run(capsys, "identify", str(clips), "--index", str(ix), "--json")
    records = json.loads(out)
    assert code == 0 and [Path(r["query"]).name for r in records] == ["clip1.wav", "clip2.wav", "clip0.wav"]
    for r in records:
        want = real_cuts[int(Path(r["query"]).stem[-1])].name
        assert Path(r["matches"][0]["path"]).name == want
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, _ = run(capsys, "identify", str(empty), "--index", str(ix), "--json")
    assert code == 2 and "no audio files" in json.loads(out)[0]["error"]


def test_max_duration_refuses_long_clips_by_default_and_0_matches_whole_files(library, real_cuts, tmp_path, capsys):
    ix, _ = library
    whole = tmp_path / "long.flac"  # 90 s: three cuts end to end, the first one indexed
    sf.write(whole, np.concatenate([load(c, sr=SR) for c in (real_cuts[0], real_cuts[4], real_cuts[5])]), SR)
    code, out, _ = run(capsys, "identify", str(whole), "--index", str(ix), "--json")
    assert code == 2 and "limit of 60 s" in json.loads(out)[0]["error"]
    code, out, _ = run(capsys, "identify", str(whole), "--index", str(ix), "--max-duration", "0", "--json")
    match = json.loads(out)[0]["matches"][0]
    assert code == 0 and Path(match["path"]).name == real_cuts[0].name and abs(match["offset_s"]) < 0.1
    code, out, _ = run(capsys, "identify", str(whole), "--index", str(ix), "--max-duration", "100", "--json")
    assert code == 0


@pytest.mark.parametrize("factor", [1.04, 0.96])
def test_the_speed_a_clip_plays_at_is_reported(library, real_cuts, tmp_path, capsys, factor):
    """A turntable speed change moves time and frequency alike: tempo == pitch == the factor."""
    from songmine.evaluation.degrade import change_speed

    ix, _ = library
    clip = tmp_path / f"sped{factor}.wav"
    sf.write(clip, change_speed(load(real_cuts[2], sr=SR, offset=10.0, duration=8.0), SR, factor), SR)
    code, out, _ = run(capsys, "identify", str(clip), "--index", str(ix), "--json")
    m = json.loads(out)[0]["matches"][0]
    assert code == 0 and Path(m["path"]).name == real_cuts[2].name
    assert m["tempo"] == m["pitch"] == pytest.approx(factor, abs=0.015)
    code, out, _ = run(capsys, "identify", str(clip), "--index", str(ix))
    assert f"speed {m['tempo']:.2f}×" in out
    for field in ("tempo", "pitch"):
        assert Match.model_fields[field].default == 1.0, "new fields with defaults: older readers keep working"


@pytest.mark.parametrize("change", ["tempo", "pitch"])
def test_a_tempo_or_a_key_change_is_reported_on_its_own_axis(library, real_cuts, tmp_path, capsys, change):
    """Rubber Band's time stretch keeps the pitch and its pitch shift keeps the tempo: the record says which
    moved (the other stays 1.0), and the table says it in words."""
    require("pedalboard")
    from songmine.evaluation.degrade import pitch_shift, time_stretch

    ix, _ = library
    y = load(real_cuts[1], sr=SR, offset=6.0, duration=10.0)
    clip = tmp_path / f"{change}.wav"
    sf.write(clip, time_stretch(y, SR, 1.09) if change == "tempo" else pitch_shift(y, SR, 1.0), SR)
    code, out, _ = run(capsys, "identify", str(clip), "--index", str(ix), "--json")
    m = json.loads(out)[0]["matches"][0]
    assert code == 0 and Path(m["path"]).name == real_cuts[1].name
    if change == "tempo":
        assert 1.03 <= m["tempo"] <= 1.12 and m["pitch"] == 1.0, (
            m
        )  # a grid point near 1.09 (the search stops when sure)
        words = f"tempo {m['tempo']:.2f}×"
    else:
        assert m["tempo"] == 1.0 and m["pitch"] == pytest.approx(2 ** (1 / 12), abs=0.01), m
        words = "pitch +1.0 st"
    code, out, _ = run(capsys, "identify", str(clip), "--index", str(ix))
    assert code == 0 and words in out, out


def test_the_rate_column_says_speed_tempo_or_pitch():
    from songmine.cli.identify import rate_text

    assert rate_text(1.0, 1.0) == "1.00×"
    assert rate_text(1.04, 1.04) == "speed 1.04×"
    assert rate_text(1.06, 1.0) == "tempo 1.06×"
    assert rate_text(1.0, 2 ** (-1 / 12)) == "pitch -1.0 st"
    assert rate_text(0.97, 2 ** (2 / 12)) == "tempo 0.97×, pitch +2.0 st"


def test_threshold_for_the_landmark_method_is_the_confidence(library, real_cuts, tmp_path, capsys):
    ix, _ = library
    clip = tmp_path / "clip.wav"
    sf.write(clip, load(real_cuts[1], sr=SR, offset=3.0, duration=3.0), SR)
    code, out, _ = run(capsys, "identify", str(clip), "--index", str(ix), "--json")
    conf = json.loads(out)[0]["matches"][0]["confidence"]
    assert code == 0 and conf > 0.5
    assert run(capsys, "identify", str(clip), "--index", str(ix), "--threshold", "1.0")[0] in (0, 1)
    code, _, err = run(capsys, "identify", str(clip), "--index", str(ix), "--threshold", "1.5")
    assert code == 2 and "--threshold" in err


def test_seed_shows_its_best_candidates_and_marks_those_below_the_threshold(real_cuts, tmp_path, capsys):
    require("librosa")
    ix = tmp_path / "ix"
    assert main(["index", *map(str, real_cuts[:4]), "--index", str(ix), "--method", "seed", "-j", "1"]) == 0
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, c in enumerate(real_cuts[:4]):  # 5 s where the method looks: part of the indexed window's peaks
        sf.write(clips / f"c{i}.wav", load(c, sr=SR, offset=1.0, duration=5.0), SR)
    capsys.readouterr()
    code, out, _ = run(capsys, "identify", str(clips), "--index", str(ix), "--method", "seed", "--json")
    found = [r for r in json.loads(out) if r["candidates"]]
    assert found, "some 5-s clip shares an LSH band with its track"
    partial = [r for r in found if r["candidates"][0]["jaccard"] < 0.95]
    assert partial, [r["candidates"][0]["jaccard"] for r in found]
    assert all(r["matches"] for r in partial), "above the default threshold 0.2: matches"
    code, out, _ = run(
        capsys, "identify", str(clips), "--index", str(ix), "--method", "seed", "--threshold", "0.95", "--json"
    )
    strict = {r["query"]: r for r in json.loads(out)}
    for r in partial:
        s = strict[r["query"]]
        assert s["matches"] == [] and s["threshold"] == 0.95 and s["candidates"][0]["jaccard"] < 0.95
    code, out, _ = run(capsys, "identify", str(clips), "--index", str(ix), "--method", "seed", "--threshold", "0.95")
    assert "below 0.95" in out and "no match (no candidate reaches the threshold 0.95)" in out
    assert f"{partial[0]['candidates'][0]['jaccard']:.3f}" in out
