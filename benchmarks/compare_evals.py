"""Compare two ``songmine eval --save-json`` reports query by query.

Two runs with the same library, seed and cells ask the same clips; this says
how many got the same answer (track and offset), and the same score and
confidence too, and lists the queries whose answer changed::

    songmine eval LIBRARY --save-json before.json     # with one version
    songmine eval LIBRARY --save-json after.json      # with another
    python benchmarks/compare_evals.py before.json after.json
"""

from __future__ import annotations

import argparse
import json
import statistics


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--show", type=int, default=20, help="list at most this many changed queries")
    args = ap.parse_args(argv)
    a = {o["qid"]: o for o in json.load(open(args.before))["outcomes"]}
    b = {o["qid"]: o for o in json.load(open(args.after))["outcomes"]}
    common = sorted(a.keys() & b.keys())
    clip = ("track", "member", "condition", "duration_s", "offset_s")
    answer = ("top_path", "top_offset_s")
    full = (*answer, "score", "confidence")
    same_clip = [q for q in common if all(a[q][f] == b[q][f] for f in clip)]
    same_answer = [q for q in same_clip if all(a[q][f] == b[q][f] for f in answer)]
    same_full = [q for q in same_answer if all(a[q][f] == b[q][f] for f in full)]
    print(f"queries: {len(a)} before, {len(b)} after, {len(common)} in both")
    print(f"same clip (track, condition, duration, offset): {len(same_clip)}")
    print(f"same answer (track and offset): {len(same_answer)}")
    print(f"same answer, score and confidence: {len(same_full)}")
    for side, o in (("before", a), ("after", b)):
        right = sum(o[q]["correct"] for q in common)
        cpu = statistics.median(o[q]["cpu_s"] for q in common if o[q]["cpu_s"] is not None) * 1e3
        print(
            f"{side}: top-1 right {right}, answered {sum(o[q]['answered'] for q in common)}, "
            f"query CPU median {cpu:.2f} ms"
        )
    changed = [q for q in same_clip if q not in set(same_answer)]
    for q in changed[: args.show]:
        print(
            f"  qid {q} {a[q]['condition']} {a[q]['duration_s']:g} s: {a[q]['top_path']} @ {a[q]['top_offset_s']} "
            f"-> {b[q]['top_path']} @ {b[q]['top_offset_s']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
