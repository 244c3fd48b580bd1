"""How long `songmine --help` takes to start, against a bare Python start-up in the same run.

Usage: python benchmarks/cli_startup.py [--runs 15]

Prints median / p90 wall time of each command and the ratio to bare Python.
The budget for `songmine --help` is 0.3 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timeit(cmd: list[str], runs: int) -> list[float]:
    out = []
    subprocess.run(cmd, capture_output=True)  # warm the page cache / pyc
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    exe = shutil.which("songmine") or "songmine"
    cases = {
        "python -c pass (reference)": [sys.executable, "-c", "pass"],
        "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
        "songmine --help": [exe, "--help"],
        "songmine --version": [exe, "--version"],
    }
    ref = None
    print(f"{'command':32} {'median s':>9} {'p90 s':>7} {'× python':>9}")
    for name, cmd in cases.items():
        ts = sorted(timeit(cmd, args.runs))
        med = statistics.median(ts)
        p90 = ts[int(0.9 * (len(ts) - 1))]
        ref = ref or med
        print(f"{name:32} {med:9.3f} {p90:7.3f} {med / ref:9.1f}")


if __name__ == "__main__":
    main()
