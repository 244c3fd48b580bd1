"""songmine as a new user gets it: a new venv, ``pip install`` of the core alone, then the README, every
example run literally in that venv (its ``pip install 'songmine[...]'`` lines add the extras as they come).

Both tests share one venv (module scope; they run in file order): the first checks the core install
(no heavy package, ``songmine index`` + ``identify`` work); the second runs the README's blocks
(:mod:`docblocks`) in a home folder holding what the examples name: ``~/Music`` (real music cuts),
``song.ogg``, ``clip.m4a``, ``noisy-phone-recording.webm``, ``clip.ogg``, ``clips/``,
``fma_metadata.zip`` (a planted FMA-like catalogue) and ``values.npy``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import HEAVY_PACKAGES, require
from docblocks import BlockFailed, blocks, install_from, run_block, venv_env

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


# ------------------------------------------------------------------ the extractor (fast)


def test_blocks_are_found_marked_and_install_from_the_source(tmp_path):
    md = (
        "Intro\n\n```sh\npip install songmine\nsongmine --help\n```\n\n<!-- no-run: runs forever -->\n"
        '```bash\nsongmine serve\n```\n\n```python\nimport songmine\n```\n\n```json\n{"a": 1}\n```\n\n'
        "   ```console\n   pip install 'songmine[cluster,eval]'  # two extras\n   ```\n"
        "<!-- background: sleep -->\n```sh\necho one\nsleep 60   # a server\necho two\n```\n"
    )
    got = blocks(md)
    assert [(b.lang, b.line, b.skip, b.runs, b.background) for b in got] == [
        ("sh", 3, None, True, None),
        ("sh", 9, "runs forever", False, None),
        ("python", 13, None, True, None),
        ("json", 17, None, False, None),
        ("sh", 21, None, True, None),
        ("sh", 25, None, True, "sleep"),
    ]
    assert install_from(got[0].code, tmp_path) == f"pip install '{tmp_path}'\nsongmine --help\n"
    assert install_from(got[4].code, tmp_path) == f"pip install '{tmp_path}[cluster,eval]'  # two extras\n"
    assert install_from("echo songmine\n", tmp_path) == "echo songmine\n"
    with pytest.raises(ValueError, match="needs a reason"):
        blocks("<!-- no-run -->\n```sh\nls\n```\n")
    env = {"PATH": "/usr/bin:/bin"}
    r = run_block(got[5], cwd=tmp_path, env=env, python=sys.executable)  # the sleeper stays up: passes
    assert r.stdout.split() == ["one", "two"]
    dies = blocks("<!-- background: false -->\n```sh\nfalse --serve\n```\n")[0]  # ends at once: fails
    with pytest.raises(BlockFailed, match="ended early"):
        run_block(dies, cwd=tmp_path, env=env, python=sys.executable)
    with pytest.raises(BlockFailed, match="line 2"):
        run_block(blocks("\n```sh\ntrue\nfalse\ntrue\n```\n")[0], cwd=tmp_path, env=env, python=sys.executable)


def test_the_readme_installs_first_and_says_why_a_block_does_not_run():
    bs = blocks(README.read_text())
    shell = [b for b in bs if b.lang == "sh" and b.runs]
    assert shell and re.search(r"^pip install songmine\s", shell[0].code, re.M), "the first example installs"
    assert all(b.skip for b in bs if b.lang in ("sh", "python") and not b.runs)
    assert sum(b.runs for b in bs) >= 3


# ------------------------------------------------------------------ a fresh venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A new venv with ``pip install <source>`` (the core alone) — what ``pip install songmine`` gives."""
    v = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(v)], check=True, timeout=300)
    home = v.parent / "home"
    home.mkdir()
    r = subprocess.run(
        [str(v / "bin" / "pip"), "install", "-q", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=venv_env(v, home),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return v


def installed(v: Path) -> set[str]:
    out = subprocess.run(
        [str(v / "bin" / "pip"), "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    return {p["name"].lower() for p in json.loads(out)}


@pytest.mark.slow
@pytest.mark.corpus
def test_the_core_install_is_light_and_identifies_a_clip(venv, real_cuts, tmp_path):
    assert installed(venv).isdisjoint(HEAVY_PACKAGES), installed(venv) & HEAVY_PACKAGES
    songmine = str(venv / "bin" / "songmine")
    ix = tmp_path / "ix"
    r = subprocess.run(
        [songmine, "index", *map(str, real_cuts[:3]), "--index", str(ix), "-j", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [songmine, "identify", str(real_cuts[2]), "--index", str(ix), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["matches"][0]["path"].endswith(real_cuts[2].name)
    r = subprocess.run([songmine, "cluster", "run", "t.csv"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "pip install 'songmine[cluster]'" in r.stderr, r.stderr


def _encode(y: np.ndarray, sr: int, path: Path, codec: str, rate: int) -> None:
    import av
    import soxr

    if sr != rate:
        y = soxr.resample(y, sr, rate).astype(np.float32)
    fmt = {".m4a": "mp4", ".webm": "webm"}[path.suffix]
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(y[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)


@pytest.fixture
def home(tmp_path, real_cuts, demo_corpus, demo_tracks) -> Path:
    """What the README's examples name, in a home folder of their own (``~``, and the working directory)."""
    import soundfile as sf

    from songmine.audio import load
    from songmine.evaluation.degrade import add_noise, telephone

    home = tmp_path / "home"
    music = home / "Music"
    music.mkdir(parents=True)
    for c in real_cuts:
        (music / c.name).symlink_to(c)
    for t in sorted(demo_tracks, key=lambda t: t.file)[:2]:  # eight tracks: `cluster run --k 6` needs more than 6
        sf.write(
            music / f"{Path(t.file).stem}.60s.flac",
            load(t.path(demo_corpus), sr=22050, offset=60.0, duration=20.0),
            22050,
        )
    sr = 22050
    song = next(t for t in sorted(demo_tracks, key=lambda t: t.file) if t.file.endswith(".ogg") and t.duration_s >= 60)
    (home / "song.ogg").symlink_to(song.path(demo_corpus))  # a whole song, as it came
    _encode(load(real_cuts[1], sr=sr, offset=12.0, duration=8.0), sr, home / "clip.m4a", "aac", 44100)
    noisy = add_noise(telephone(load(real_cuts[2], sr=sr, offset=5.0, duration=10.0), sr), 10.0, random_state=0)
    _encode(noisy.astype(np.float32), sr, home / "noisy-phone-recording.webm", "libopus", 48000)
    sf.write(
        home / "clip.ogg", load(real_cuts[3], sr=sr, offset=1.0, duration=10.0), sr, format="OGG", subtype="VORBIS"
    )
    (home / "clips").mkdir()
    for i in (4, 5):
        sf.write(home / "clips" / f"clip{i}.flac", load(real_cuts[i], sr=sr, offset=3.0, duration=6.0), sr)
    np.save(home / "values.npy", np.array([7, -2, 8, 2, 6, 4, -7, 2, 1, 3, -3], dtype=np.int64))
    _fma_zip(home / "fma_metadata.zip", tmp_path / "fma")
    cache = home / ".cache" / "songmine"  # the demo music where `songmine demo-corpus` finds it; the rest apart
    cache.mkdir(parents=True)
    (cache / "demo-corpus").symlink_to(demo_corpus, target_is_directory=True)
    return home


def _fma_zip(path: Path, work: Path) -> None:
    """A planted FMA-like catalogue laid out as fma_metadata.zip (fma_metadata/tracks.csv ...)."""
    require("pandas")  # the cluster extra's synthetic catalogue: fail under CI=true, not skip
    from songmine.cluster.synthetic import write_fma_csvs

    write_fma_csvs(work, n=3000, n_echonest=600, seed=7)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("tracks.csv", "features.csv", "echonest.csv", "genres.csv"):
            z.write(work / name, f"fma_metadata/{name}")


@pytest.mark.slow
@pytest.mark.corpus
def test_every_readme_example_runs_in_the_fresh_venv(venv, home):
    env = venv_env(venv, home, SONGMINE_CACHE=str(home / ".cache" / "songmine"))
    pip_conf = Path.home() / ".config" / "pip" / "pip.conf"  # where the packages come from, as for the user
    if pip_conf.exists() and "PIP_CONFIG_FILE" not in env:
        env["PIP_CONFIG_FILE"] = str(pip_conf)
    ran = []
    for b in blocks(README.read_text()):
        if not b.runs:
            continue
        try:
            run_block(b, cwd=home, env=env, python=str(venv / "bin" / "python"), source=ROOT, timeout=1200)
        except BlockFailed as exc:
            pytest.fail(f"README.md: {exc}", pytrace=False)
        ran.append(b.line)
    assert ran, "the README has examples that run"
