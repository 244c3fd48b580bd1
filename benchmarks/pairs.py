"""Benchmark: pairs with a given sum — sort path vs hashing path vs plain dict vs brute force.

Each (approach, n) runs in a fresh child process that builds the data, then
times the call (best of ``--repeat``, fewer at large n) and records the peak
RSS growth during it (``ru_maxrss`` after minus before: extra memory the call
needed beyond its input). Ratios are against the sort path in the same run;
"slope" is the log-log growth exponent from the previous n (1.0 = linear).

Data: ``n`` ints uniform in [-n, n) (dense: ~0.15 n value pairs), target 12345.

    PYTHONPATH=src python benchmarks/pairs.py                  # 10^3 .. 10^7
    PYTHONPATH=src python benchmarks/pairs.py --max-exp 6 --brute-max 1000
    PYTHONPATH=src python benchmarks/pairs.py --parse          # checked text parsing vs a bare split + int

``--parse`` times, in this process (CPU time, median of 3), ``parse_integers`` on
10^6 and 4·10^6 comma-separated integers against ``[int(t) for t in text.split(",")]``,
which accepts ``1_000`` and ``1,,3`` silently.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

TARGET = 12345


def make_data(n: int):
    import numpy as np

    return np.random.default_rng(n).integers(-n, n, n)


def plain_dict(values, s):
    """The textbook approach: one pass with a dict of counts, pairs collected in a set."""
    seen: dict[int, int] = {}
    found = set()
    for x in values.tolist():
        y = s - x
        if y in seen:
            found.add((y, x) if y < x else (x, y))
        seen[x] = seen.get(x, 0) + 1
    return sorted(found)


def brute_force(values, s):
    xs = values.tolist()
    n = len(xs)
    return sorted(
        {(min(xs[i], xs[j]), max(xs[i], xs[j])) for i in range(n) for j in range(i + 1, n) if xs[i] + xs[j] == s}
    )


def run_one(approach: str, n: int, repeat: int) -> dict:
    from songmine.pairs import count_pairs, pairs_with_sum

    a = make_data(n)
    fns = {
        "sort": lambda: pairs_with_sum(a, TARGET, method="sort"),
        "hash": lambda: pairs_with_sum(a, TARGET, method="hash"),
        "plain-dict": lambda: plain_dict(a, TARGET),
        "brute-force": lambda: brute_force(a, TARGET),
        "sort-indices": lambda: pairs_with_sum(a, TARGET, mode="indices", method="sort"),
        "count-indices": lambda: count_pairs(a, TARGET, mode="indices", method="sort"),
    }
    fn = fns[approach]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        m = out if isinstance(out, int) else len(out)
        del out
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"approach": approach, "n": n, "s": best, "mb": (after - before) / 1024, "pairs": m}


def child(approach: str, n: int, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--one", approach, str(n), str(repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout)


def cli_timings(n: int) -> list[tuple[str, float]]:
    import numpy as np

    exe = os.path.join(os.path.dirname(sys.executable), "songmine")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "values.npy")
        np.save(path, make_data(n))
        for label, args in [
            ("songmine --help", ["--help"]),
            (f"songmine pairs --sum {TARGET} {n:.0e}.npy --count", ["pairs", "--sum", str(TARGET), path, "--count"]),
            (f"songmine pairs --sum {TARGET} {n:.0e}.npy > /dev/null", ["pairs", "--sum", str(TARGET), path]),
            (
                f"songmine pairs --sum {TARGET} {n:.0e}.npy --json > /dev/null",
                ["pairs", "--sum", str(TARGET), path, "--json"],
            ),
        ]:
            best = math.inf
            for _ in range(2):
                t0 = time.perf_counter()
                subprocess.run([exe, *args], stdout=subprocess.DEVNULL, check=True)
                best = min(best, time.perf_counter() - t0)
            rows.append((label, best))
    return rows


def parse_timings(sizes=(10**6, 4 * 10**6), repeats: int = 3) -> list[list]:
    """CPU seconds of checked parsing (``parse_integers``) against a bare split + ``int``, same text."""
    import numpy as np

    from songmine.pairs import parse_integers

    rows = []
    for n in sizes:
        text = ", ".join(map(str, make_data(n).tolist()))

        def cpu(fn) -> float:
            times = []
            for _ in range(repeats):
                t0 = time.process_time()
                fn()
                times.append(time.process_time() - t0)
            return sorted(times)[len(times) // 2]

        checked = cpu(lambda: parse_integers(text))
        bare = cpu(lambda: np.array([int(t) for t in text.split(",")], dtype=np.int64))
        rows.append([f"{n:,}", f"{checked:.2f}", f"{bare:.2f}", f"{checked / bare:.2f}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--min-exp", type=int, default=3)
    ap.add_argument("--max-exp", type=int, default=7)
    ap.add_argument("--brute-max", type=int, default=10_000, help="largest n for brute force")
    ap.add_argument("--python-max", type=int, default=10**7, help="largest n for hash / plain-dict")
    ap.add_argument("--no-cli", action="store_true")
    ap.add_argument("--parse", action="store_true", help="only the text-parsing comparison")
    args = ap.parse_args()
    if args.one:
        approach, n, repeat = args.one
        print(json.dumps(run_one(approach, int(n), int(repeat))))
        return
    if args.parse:
        print("| integers (comma-separated) | parse_integers CPU s | split + int CPU s | ratio |")
        print("|---:|---:|---:|---:|")
        for r in parse_timings():
            print("| " + " | ".join(r) + " |")
        return

    import numpy as np

    print(
        f"# pairs benchmark — {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"python {platform.python_version()}, numpy {np.__version__}; target s={TARGET}"
    )
    approaches = ["sort", "hash", "plain-dict", "brute-force", "sort-indices", "count-indices"]
    results: dict[tuple[str, int], dict] = {}
    for e in range(args.min_exp, args.max_exp + 1):
        n = 10**e
        repeat = 3 if n <= 10**5 else 1
        for ap_name in approaches:
            if ap_name == "brute-force" and n > args.brute_max:
                continue
            if ap_name in ("hash", "plain-dict") and n > args.python_max:
                continue
            results[(ap_name, n)] = child(ap_name, n, repeat)
            r = results[(ap_name, n)]
            print(f"  measured {ap_name:13s} n={n:>9,}  {r['s']:.4f} s", file=sys.stderr, flush=True)

    print()
    print("| approach | n | time (s) | × sort | slope | extra peak RSS (MB) | pairs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for ap_name in approaches:
        prev = None
        for e in range(args.min_exp, args.max_exp + 1):
            n = 10**e
            r = results.get((ap_name, n))
            if r is None:
                continue
            ref = results[("sort", n)]["s"]
            slope = f"{math.log10(r['s'] / prev):.2f}" if prev else ""
            prev = r["s"]
            print(
                f"| {ap_name} | {n:.0e} | {r['s']:.4f} | {r['s'] / ref:.1f} | {slope} | "
                f"{r['mb']:.0f} | {r['pairs']:,} |"
            )
    if not args.no_cli:
        n = 10**args.max_exp
        print()
        print(f"| CLI command (n = {n:.0e}, wall time incl. start-up, best of 2) | s |")
        print("|---|---:|")
        for label, t in cli_timings(n):
            print(f"| `{label}` | {t:.2f} |")


if __name__ == "__main__":
    main()
