"""Instructions one indexing worker executes per file: this checkout against a git revision (valgrind).

CPU seconds on a shared machine move by ±20 % from run to run; the count of
executed instructions does not (it is the same on an idle and on a loaded machine). This runs ``fingerprint.index.build.fingerprint_file``
(what a worker does per file: sha256, decode, resample, fingerprint, tags)
under ``valgrind --tool=callgrind`` for this checkout and for ``--reference
REV`` (its ``src/songmine`` imported as ``songmine_ref``), plus FFmpeg's
decoder alone (a decode-only pass: the floor), each minus a run that only
imports (so start-up is not counted), and prints instructions per second of
audio and the ratios. Instructions are not time (vector width, cache misses
and branch mispredictions differ), so ``index_build.py`` measures the CPU
seconds; this is the load-independent cross-check. The library defaults to the
demo music (``songmine demo-corpus``).

Run::

    PYTHONPATH=src python benchmarks/worker_instructions.py --reference REV [--library DIR] [--files 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import git_commit, library_or_demo, markdown_table

_TASK = """
import importlib, sys, time
pkg, what, paths = sys.argv[1], sys.argv[2], sys.argv[3:]

def module(*names):  # the package layout, then the flat one of older revisions
    for name in names:
        try:
            return importlib.import_module(pkg + "." + name)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith(pkg):
                raise
    raise ModuleNotFoundError(f"none of {names} in {pkg}")

build = module("fingerprint.index.build", "index.build")
cfg = module("fingerprint.landmarks", "landmarks").FingerprintConfig()
build._preload(None)
import av, hashlib, scipy.fft, scipy.ndimage, soxr
for p in paths:
    if what == "task":
        build.fingerprint_file(p, cfg)
    elif what == "decode":
        with av.open(p) as container:
            for _ in container.decode(audio=0):
                pass
"""


def instructions(package_path: Path, package: str, what: str, paths: list[str], workdir: Path) -> int:
    """Instructions executed by one ``python`` running ``_TASK`` under callgrind."""
    script = workdir / "task.py"
    script.write_text(_TASK)
    out = workdir / f"callgrind.{package}.{what}.out"
    env = {**os.environ, "PYTHONPATH": str(package_path)}
    r = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(script),
            package,
            what,
            *paths,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    m = re.search(r"I\s+refs:\s+([\d,]+)", r.stderr)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"valgrind failed ({r.returncode}): {r.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=Path, help="folder of audio (default: the demo music)")
    ap.add_argument(
        "--files", type=int, default=3, help="files spread over the library (shortest first: valgrind is ~50x slower)"
    )
    ap.add_argument("--reference", required=True, metavar="REV", help="git revision to compare against")
    args = ap.parse_args()
    library = library_or_demo(args.library)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from index_build import reference_package

    from songmine.audio import info
    from songmine.library import iter_audio_files

    files = list(iter_audio_files([library]))
    step = max(len(files) // max(args.files, 1), 1)
    picked = sorted(files[::step][: args.files], key=lambda p: p.stat().st_size)
    audio_s = sum(info(p).duration_s for p in picked)
    paths = [str(p) for p in picked]
    src = Path(__file__).resolve().parent.parent / "src"
    with tempfile.TemporaryDirectory(prefix="songmine-instr-") as tmp:
        work = Path(tmp)
        reference_package(args.reference, work)
        ref_path = work / f"reference-{args.reference}"
        runs = {}
        for label, (path, pkg) in {"before": (ref_path, "songmine_ref"), "now": (src, "songmine")}.items():
            base = instructions(path, pkg, "none", paths, work)
            runs[label] = instructions(path, pkg, "task", paths, work) - base
            if label == "now":
                runs["decode"] = instructions(path, pkg, "decode", paths, work) - base
    print(
        f"# worker instructions — commit {git_commit()} against {args.reference}; {len(paths)} files, "
        f"{audio_s:.0f} s of audio: " + ", ".join(p.name for p in picked)
    )
    dec, before, now = runs["decode"], runs["before"], runs["now"]
    rows = [
        ["FFmpeg decode alone (the floor)", f"{dec / audio_s / 1e6:.1f}", "-", "-"],
        [
            f"worker task, before ({args.reference})",
            f"{before / audio_s / 1e6:.1f}",
            f"{(before - dec) / audio_s / 1e6:.1f}",
            "1.00",
        ],
        [
            "worker task, now",
            f"{now / audio_s / 1e6:.1f}",
            f"{(now - dec) / audio_s / 1e6:.1f}",
            f"**{before / now:.2f}**",
        ],
        ["non-decoder part: before / now", "", f"**{(before - dec) / (now - dec):.2f}**", ""],
    ]
    markdown_table(
        "instructions per second of audio (millions; valgrind callgrind, load-independent)",
        ["what", "all", "beyond the decoder", "before / now (all)"],
        rows,
    )


if __name__ == "__main__":
    sys.exit(main())
