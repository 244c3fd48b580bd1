"""What `pip install songmine[...]` puts on disk: the core and each extra, each in a fresh venv.

Usage: python benchmarks/install_size.py --source . --work /tmp/sizes [--extras core,catalog,...]

Builds songmine's wheel from SOURCE once, then for each target makes a new venv
(``python -m venv``), runs ``pip install 'songmine-*.whl[extra]'`` (default pip
options: byte-compiled, as a user gets it) and measures the venv with ``du``;
the reference is an empty venv measured in the same run (pip and its
interpreter links), so "added" is what songmine and its dependencies take.
Prints a Markdown table: packages installed, MB on disk, MB added, added × the core's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import git_commit, markdown_table

TARGETS = ("core", "catalog", "features", "cluster", "server", "spark", "eval", "all")


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def packages(venv: Path) -> set[str]:
    out = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    return {p["name"].lower() for p in json.loads(out)}


def make_venv(path: Path, requirement: str | None) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    if requirement is not None:
        subprocess.run(
            [str(path / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", requirement], check=True
        )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="songmine's source tree (with pyproject.toml)")
    ap.add_argument("--work", type=Path, required=True, help="where the venvs are made (deleted afterwards)")
    ap.add_argument("--extras", default=",".join(TARGETS), help="targets: core and/or extra names")
    ap.add_argument("--keep", action="store_true", help="keep the venvs")
    args = ap.parse_args()
    targets = [t.strip() for t in args.extras.split(",") if t.strip()]
    args.work.mkdir(parents=True, exist_ok=True)
    wheels = Path(tempfile.mkdtemp(dir=args.work, prefix="wheel-"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "-w",
            str(wheels),
            str(args.source.resolve()),
        ],
        check=True,
    )
    wheel = next(wheels.glob("songmine-*.whl"))

    ref_dir = args.work / "reference"
    shutil.rmtree(ref_dir, ignore_errors=True)
    make_venv(ref_dir, None)
    ref_mb, ref_pkgs = du_mb(ref_dir), packages(ref_dir)
    rows, core_added = [], None
    for t in targets:
        d = args.work / f"venv-{t}"
        shutil.rmtree(d, ignore_errors=True)
        req = str(wheel) if t == "core" else f"{wheel}[{t}]"
        secs = make_venv(d, req)
        mb = du_mb(d)
        added = mb - ref_mb
        n = len(packages(d) - ref_pkgs)
        if t == "core":
            core_added = added
        ratio = f"{added / core_added:.1f}×" if core_added else "–"
        name = "`pip install songmine`" if t == "core" else f"`pip install 'songmine[{t}]'`"
        rows.append([name, n, f"{mb:,.0f}", f"{added:,.0f}", ratio, f"{secs:.0f}"])
        print(f"{t}: {n} packages, {mb:.0f} MB ({added:.0f} MB added) in {secs:.0f} s", file=sys.stderr, flush=True)
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    markdown_table(
        f"install size in a fresh venv (songmine {git_commit()}, Python {sys.version.split()[0]}; reference: an empty "
        f"venv, {ref_mb:.0f} MB, {len(ref_pkgs)} packages)",
        ["install", "packages (incl. songmine)", "venv MB", "MB added", "added × core", "install s"],
        rows,
    )
    shutil.rmtree(wheels, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(ref_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
