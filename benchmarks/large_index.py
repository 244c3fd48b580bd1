"""End-to-end identify on a synthetic 1,000-hour index, against the real small index in the same run.

1. real     — the eval split of the library (``--tracks`` indexed, the rest held
   out), indexed for real with ``index_files`` (or ``--real-index`` reused, e.g.
   the one ``songmine eval --index P`` built with the same seed and tracks).
2. large    — a copy of that real index plus synthetic tracks up to ``--hours``
   hours, written in the real format through the real commit path:
   ``--segments`` commits, automatic merges off, so it keeps that many
   segments (``compact`` makes one afterwards); or, with ``--batch K``,
   commits of K tracks with the size-tiered merges and the run's final merge
   of ``index_files``, whose peak memory (printed) does not grow with the
   hours. Each synthetic track stores a profile too (its source's, rolled:
   the size and the verification work of a real one; ``--no-profiles``
   leaves them out). The size per hour is printed (segments, profiles, the
   rest of the catalogue). Synthetic tracks are not
   fingerprinted audio: each is a real member track's postings with the anchor
   frequency field ``f1`` shifted by a random ±6..12 bins (wrapped
   inside the fingerprint band) and its ~1-s blocks of time shuffled. ``df``,
   ``dt``, the density and the structure within a second (repeats,
   clustering) are real; the hash distribution is the real one smoothed by
   ±12 bins along ``f1``. A shift of at most ``f_radius`` (12) bins can never
   line up with the source track itself (two peaks that close at the same
   frame are not both local maxima); the block shuffle keeps a replica from
   passing for a sped-up (pitch-shifted) copy of its source for longer than a
   second. So the planted real tracks stay the only right answers.
3. queries  — deterministic clips as ``songmine eval`` cuts them (same seed
   scheme): ``--queries`` member clips per condition of ``--duration`` s and
   ``--nonmember`` clips from the held-out tracks, decoded and resampled to the
   index rate first; then timed through the public API
   ``songmine.identify(index, clip)`` on the real index (reference), the large
   index as built (``--segments`` + 1 segments) and after ``compact``.

The table gives per index × condition: top-1 (right track), wrong answers,
false positives of non-members, median / p95 latency and the median's ratio to
the same queries on the real index.

Run::

    PYTHONPATH=src nice -n 10 python benchmarks/large_index.py --hours 1000 \\
        --real-index REAL.idx --work WORK

``--before KEY=VALUE`` (repeatable; ``--before ''`` for the defaults) also
times a second SearchConfig on the same queries, interleaved query by query
in the same process, and adds the column "after / before" (CPU medians), e.g.
the search controls: ``--before warp=False --before
coarse_max_hits=None --before lead_margin=None --before refine_margin=0``.

``--compare INDEX`` instead times a second large index on the same queries,
interleaved query by query, and adds the column "large / compare" (CPU
medians): e.g. the index as built (many segments) against its compacted copy::

    PYTHONPATH=src nice -n 10 python benchmarks/large_index.py --hours 1000 \
        --real-index REAL.idx --work WORK11 --reuse --no-compact --compare WORK1/large.idx
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
from _common import TreeMemory, git_commit, library_or_demo, markdown_table


# ------------------------------------------------------------------ real index
def real_index(path: Path | None, indexed: list[Path], work: Path, jobs: int) -> Path:
    from songmine.fingerprint.index import Index, index_files

    if path is not None and (path / "catalog.sqlite").exists():
        return path
    path = path or work / "real.idx"
    t0 = time.perf_counter()
    with Index(path, create=True) as ix:
        rep = index_files(ix, indexed, jobs=jobs)
    print(f"real index: {rep.added} tracks in {time.perf_counter() - t0:.0f} s -> {path}")
    return path


# ------------------------------------------------------------- synthetic index
#: Smallest f1 shift of a replica, bins: a shift of k bins at bin f mimics a pitch change of k/f, and
#: k = 1..2 would pass for the residual of the multi-rate search's 1 % grid over most of the band.
_SHIFT_MIN = 6
#: Frames per block of time shuffled in a synthetic track (~1 s).
_BLOCK = 43


def build_large(
    real: Path, dest: Path, hours: float, segments: int, seed: int, *, batch: int | None = None, profiles: bool = True
) -> dict:
    """Copy ``real`` to ``dest`` and add synthetic tracks up to ``hours``.

    Without ``batch``: in ``segments`` commits, automatic merges off, so the
    index keeps that many segments (memory grows with ``hours / segments``).
    With ``batch``: commits of ``batch`` tracks with the size-tiered merges on
    and the run's segments merged into one at the end, as ``index_files``
    does — memory bounded by the batch, whatever ``hours``. ``profiles``:
    each synthetic track stores its source track's profile, rolled by a
    random number of frames (a profile of the right size that matches no
    clip), so verification reads and compares them as it would real ones.
    """
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.index.store import NewTrack
    from songmine.fingerprint.landmarks import pack_hashes, unpack_hashes
    from songmine.fingerprint.profiles import Profile

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(real, dest)
    rng = np.random.default_rng([seed, 7])
    t0 = time.perf_counter()
    with Index(dest) as ix, TreeMemory(interval=0.5) as mem:
        if batch is None:
            ix._auto_merge = lambda: None  # keep the commits as separate segments (a benchmark knob)
        first_segment = int(ix._setting("next_segment_id"))
        cfg = ix.config
        lo, hi = cfg.bin_range
        # the real postings, grouped by track
        ps = [s.data.decode() for s in ix._segments]
        h = np.concatenate([p.hashes for p in ps])
        tr = np.concatenate([p.tracks for p in ps])
        t = np.concatenate([p.times for p in ps])
        del ps
        order = np.argsort(tr, kind="stable")
        h, tr, t = h[order], tr[order], t[order]
        ids, starts, lens = np.unique(tr, return_index=True, return_counts=True)
        f1, df, dt = unpack_hashes(h)
        dur = np.array([ix.track(int(i)).duration_s for i in ids])
        prof = [ix.profile(int(i)) if profiles else None for i in ids]
        real_hours = ix.duration_s / 3600
        target_s = max(hours - real_hours, 0.0) * 3600
        # sources drawn until the synthetic audio reaches the target
        n_syn = int(target_s / dur.mean() * 1.2) + 1
        src = rng.integers(0, ids.size, size=n_syn)
        src = src[: int(np.searchsorted(np.cumsum(dur[src]), target_s)) + 1]
        n_syn = src.size
        shift = rng.integers(_SHIFT_MIN, 13, size=n_syn) * rng.choice([-1, 1], size=n_syn)
        frames = (dur[src] / cfg.hop_s).astype(np.int64) + 1
        per_seg = batch if batch is not None else -(-n_syn // segments)
        width = hi - lo + 1
        for b0 in range(0, n_syn, per_seg):  # loop over commits
            b = np.arange(b0, min(b0 + per_seg, n_syn))
            n = lens[src[b]]
            first = np.cumsum(n) - n
            idx = np.repeat(starts[src[b]] - first, n) + np.arange(int(n.sum()))
            f1s = lo + (f1[idx] - lo + np.repeat(shift[b], n)) % width
            hs = pack_hashes(f1s, df[idx], dt[idx])
            # shuffle each replica's 1-s blocks of time: a random permutation of its blocks
            nb = -(-frames[b] // _BLOCK)
            owner = np.repeat(np.arange(b.size), nb)
            perm = np.lexsort((rng.random(owner.size), owner))  # within each replica: a random order of its blocks
            slot = np.empty(owner.size, dtype=np.int64)
            slot[perm] = np.arange(owner.size) - np.repeat(np.cumsum(nb) - nb, nb)
            blk0 = np.repeat(np.cumsum(nb) - nb, n)
            tt = t[idx].astype(np.int64) % np.repeat(frames[b], n)
            ts = (slot[blk0 + tt // _BLOCK] * _BLOCK + tt % _BLOCK).astype(np.uint32)
            new = []
            for i, a, k in zip(b.tolist(), first.tolist(), n.tolist()):  # loop over tracks
                p = prof[src[i]]
                if p is not None and len(p):
                    roll = int(rng.integers(len(p) // 10, len(p) - len(p) // 10 + 1))
                    p = Profile(np.roll(p.bits, roll), np.roll(p.chroma, roll, axis=0), p.n_bands).to_bytes()
                new.append(
                    NewTrack(
                        f"/synthetic/{i:06d}.ogg",
                        hashlib.sha256(f"synthetic {i}".encode()).hexdigest(),  # a content hash, as a real one
                        0,
                        0,
                        float(dur[src[i]]),
                        None,
                        None,
                        None,
                        hs[a : a + k],
                        ts[a : a + k],
                        profile=p if profiles else None,
                    )
                )
            ix._add_tracks(new)
        if batch is not None:
            ix._merge_run(first_segment)  # as an indexing run ends
        out = {
            "hours": ix.duration_s / 3600,
            "tracks": ix.n_tracks,
            "postings": ix.n_postings,
            "segments": ix.n_segments,
            "gb": ix.size_bytes / 1e9,
            "build_s": time.perf_counter() - t0,
        }
    pss, rss, anon = mem.peak()
    out.update(peak_rss_mb=rss, peak_anon_mb=anon, peak_pss_mb=pss)
    return out


def sizes(path: Path) -> dict[str, float]:
    """Bytes on disk: the segments, the profiles (their blobs), the rest of the catalogue."""
    import sqlite3

    seg = sum(f.stat().st_size for f in (path / "segments").iterdir())
    cat = sum(f.stat().st_size for f in path.glob("catalog.sqlite*"))
    with sqlite3.connect(path / "catalog.sqlite") as c:
        prof = c.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM profiles").fetchone()[0]
    return {"segments": seg, "profiles": prof, "catalogue": cat, "total": seg + cat}


def warm(path: Path) -> None:
    """Read the segment files once so every index is measured with a warm page cache."""
    for f in sorted((path / "segments").iterdir()):
        with open(f, "rb") as fh:
            while fh.read(1 << 26):
                pass


# --------------------------------------------------------------------- queries
def make_queries(
    library: Path, tracks: int, conditions: tuple[str, ...], duration: float, n_per: int, n_non: int, seed: int, sr: int
):
    import soxr

    from songmine.evaluation.config import EvalConfig
    from songmine.evaluation.queries import cut_queries, plan_queries, split_library

    ec = EvalConfig(
        tracks=tracks,
        durations=(duration,),
        conditions=conditions,
        queries_per_cell=n_per,
        nonmember_queries=n_non,
        seed=seed,
    )
    indexed, held, durations = split_library(library, ec)
    specs = plan_queries(indexed, held, durations, ec)
    qs = []
    for q in cut_queries(specs, ec):
        if isinstance(q, tuple):
            continue
        clip = soxr.resample(q.clip, q.sr, sr, quality="HQ").astype(np.float32)
        qs.append((q.spec, q.offset_s, clip))
    qs.sort(key=lambda x: x[0].qid)
    return indexed, qs


def run(index, queries, searches: dict[str, object], others: dict[str, object] | None = None) -> dict[str, list[dict]]:
    """Time every query with every search config, interleaved query by query (same load for each).

    ``others`` maps a name to another index searched with ``searches[name]``
    (``--compare``): name -> (index, config) cells, all interleaved.
    """
    import songmine
    from songmine.fingerprint.heap import keep_heap

    keep_heap()  # as `songmine identify` / `serve` do
    cells = {name: (index, search) for name, search in searches.items()}
    cells.update({f"compare {name}": (ox, searches[name]) for name, ox in (others or {}).items()})
    for ix, search in cells.values():
        songmine.identify(ix, queries[0][2], config=search)  # warm-up (imports, caches)
    out: dict[str, list[dict]] = {name: [] for name in cells}
    for spec, _off, clip in queries:
        for name, (ix, search) in cells.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            res = songmine.identify(ix, clip, config=search)
            ms, cpu = 1000 * (time.perf_counter() - t0), 1000 * (time.thread_time() - c0)
            top = res.matches[0] if res.matches else None
            right = top is not None and spec.member and os.path.realpath(top.path) == os.path.realpath(spec.track)
            out[name].append(
                {
                    "cond": spec.condition if spec.member else "non-member",
                    "member": spec.member,
                    "ms": ms,
                    "cpu": cpu,
                    "answered": top is not None,
                    "right": right,
                    "answer": [[m.track_id, m.offset_s, m.score, m.confidence] for m in res.matches],
                }
            )
    return out


def summarise(
    label: str, res: list[dict], ref: dict[str, float] | None, before: dict[str, float] | None = None
) -> tuple[list[list], dict[str, float]]:
    """Rows per clip class; ratio = CPU median / ``ref``'s (the real index), and / ``before``'s when given."""
    rows, med = [], {}  # med: CPU medians (the ratio's base)
    conds = list(dict.fromkeys(r["cond"] for r in res)) + ["members", "all"]
    for c in conds:
        rs = [r for r in res if c == "all" or r["cond"] == c or (c == "members" and r["member"])]
        ms = np.array([r["ms"] for r in rs])
        cpu = np.array([r["cpu"] for r in rs])
        mem = [r for r in rs if r["member"]]
        non = [r for r in rs if not r["member"]]
        med[c] = float(np.median(cpu))
        ratio = f"{med[c] / ref[c]:.1f}×" if ref else "1.0×"
        rows.append(
            [
                label,
                c,
                len(rs),
                f"{100 * sum(r['right'] for r in mem) / len(mem):.1f}" if mem else "–",
                sum(r["answered"] and not r["right"] for r in mem) if mem else "–",
                f"{sum(r['answered'] for r in non)}/{len(non)}" if non else "–",
                f"{np.median(ms):.1f}",
                f"{np.percentile(ms, 95):.1f}",
                f"{np.median(cpu):.1f}",
                f"{np.percentile(cpu, 95):.1f}",
                ratio,
            ]
            + ([f"{med[c] / before[c]:.2f}×"] if before else [])
        )
    return rows, med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", default=None, help="folder of audio (default: the demo music)")
    ap.add_argument(
        "--real-index", type=Path, default=None, help="reuse this index of the eval split (built when missing)"
    )
    ap.add_argument(
        "--work",
        type=Path,
        required=True,
        help="folder for the large index (about 1.6 GB per 1,000 hours) and the real one",
    )
    ap.add_argument("--hours", type=float, default=1000.0)
    ap.add_argument("--segments", type=int, default=10, help="synthetic commits = segments (plus the real one)")
    ap.add_argument(
        "--batch",
        type=int,
        default=None,
        help="commit this many synthetic tracks at a time, merging as index_files does (flat memory); "
        "--segments is then ignored",
    )
    ap.add_argument("--no-profiles", action="store_true", help="store no profiles for the synthetic tracks")
    ap.add_argument("--build-only", action="store_true", help="build (and report) the large index, time no query")
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--conditions", default="clean,white5")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--queries", type=int, default=30, help="member queries per condition")
    ap.add_argument("--nonmember", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="reuse a large index left in --work (as it is)")
    ap.add_argument("--no-compact", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the large index in --work")
    ap.add_argument("-o", "--option", action="append", default=[], help="SearchConfig KEY=VALUE (repeatable)")
    ap.add_argument(
        "--before",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="also time a 'before' SearchConfig (these options; '' for the defaults) on the same "
        "queries, interleaved, and give the ratio after / before (repeatable)",
    )
    ap.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="INDEX",
        help="also time this index (e.g. the large index compacted) on the same queries, interleaved "
        "query by query with the large one, and give the ratio large / compare (CPU medians)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.compare is not None and args.before is not None:
        ap.error("use --before or --compare, not both")

    from songmine.evaluation.identifiers import parse_option_value
    from songmine.fingerprint.index import Index
    from songmine.fingerprint.search import SearchConfig

    search = SearchConfig(**{k: parse_option_value(v) for k, v in (o.split("=", 1) for o in args.option)})
    searches = {"after": search}
    if args.before is not None:
        searches = {
            "before": SearchConfig(
                **{k: parse_option_value(v) for k, v in (o.split("=", 1) for o in args.before if o)}
            ),
            "after": search,
        }
        print(f"before: {searches['before']}")
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"songmine {git_commit()} · {platform.node()} · {os.cpu_count()} cpus · load {os.getloadavg()[0]:.1f} · "
        f"{search}"
    )
    conditions = tuple(args.conditions.split(","))
    indexed, queries = make_queries(
        library_or_demo(args.library),
        args.tracks,
        conditions,
        args.duration,
        args.queries,
        args.nonmember,
        args.seed,
        11025,
    )
    real = real_index(args.real_index, indexed, args.work, args.jobs)
    large = args.work / "large.idx"
    info = None
    if not (args.reuse and (large / "catalog.sqlite").exists()):
        info = build_large(
            real, large, args.hours, args.segments, args.seed, batch=args.batch, profiles=not args.no_profiles
        )
        print(
            f"large index: {info['tracks']:,} tracks, {info['hours']:,.0f} h, {info['postings']:,} postings, "
            f"{info['segments']} segments, {info['gb']:.2f} GB, built in {info['build_s']:.0f} s; peak memory "
            f"RSS {info['peak_rss_mb']:.0f} MB, anonymous {info['peak_anon_mb']:.0f} MB (load "
            f"{os.getloadavg()[0]:.1f})",
            flush=True,
        )
    with Index(large) as ix:
        sz, hours = sizes(large), ix.duration_s / 3600
    print(
        "size: " + ", ".join(f"{k} {v / 1e6 / hours:.3f} MB/h" for k, v in sz.items()) + f" ({hours:,.0f} h)",
        flush=True,
    )
    if args.json and info is not None:
        args.json.write_text(json.dumps({"commit": git_commit(), "large": info, "sizes": sz}, indent=1))
    if args.build_only:
        return

    rows, results = [], {}
    with Index(real) as ix:
        res = run(ix, queries, searches)
        ref = {}
        for name, rs in res.items():
            tag = f" {name}" if len(res) > 1 else ""
            r, ref[name] = summarise(
                f"real ({ix.duration_s / 3600:.1f} h, {ix.n_segments} seg){tag}",
                rs,
                None,
                None if name == "before" or len(res) == 1 else ref["before"],
            )
            rows += [x + ["–"] for x in r] if name == "before" or args.compare else r
            results[f"real{tag}"] = rs
    steps = [False] if args.no_compact else [False, True]
    with Index(large) as ix, contextlib.ExitStack() as stack:
        cx = stack.enter_context(Index(args.compare)) if args.compare else None
        for compacted in steps:
            if compacted and ix.n_segments > 1:
                t0 = time.perf_counter()
                ix.compact()
                print(f"compact: {time.perf_counter() - t0:.0f} s")
            warm(large)
            if cx is not None:
                warm(args.compare)
            label = f"large ({ix.duration_s / 3600:,.0f} h, {ix.n_segments} seg)"
            res = run(ix, queries, searches, {name: cx for name in searches} if cx is not None else None)
            meds: dict[str, dict[str, float]] = {}
            for name in sorted(res, key=lambda k: not k.startswith("compare")):  # the compare index first: the base
                rs = res[name]
                if name.startswith("compare"):
                    lab = f"compare ({cx.duration_s / 3600:,.0f} h, {cx.n_segments} seg)"
                    r, meds[name] = summarise(lab, rs, ref[name.split(" ", 1)[1]])
                    rows += [x + ["1.00×"] for x in r]
                else:
                    lab = label + (f" {name}" if len(searches) > 1 else "")
                    base = (
                        meds.get(f"compare {name}")
                        if cx is not None
                        else (None if name == "before" or len(res) == 1 else meds["before"])
                    )
                    r, meds[name] = summarise(lab, rs, ref[name], base)
                    rows += [x + ["–"] for x in r] if name == "before" else r
                results[lab] = rs
            if cx is not None:
                for name in searches:
                    same = sum(a["answer"] == b["answer"] for a, b in zip(res[name], res[f"compare {name}"]))
                    print(
                        f"{label}{' ' + name if len(searches) > 1 else ''}: the same matches (track, offset, "
                        f"score, confidence) as the compare index for {same}/{len(queries)} queries"
                    )
    n_mem = sum(q[0].member for q in queries)
    markdown_table(
        f"identify, {args.duration:g}-s decoded clips: {n_mem} member + {len(queries) - n_mem} non-member queries; "
        f"ratio = CPU median / the real index's CPU median for the same queries",
        [
            "index",
            "queries",
            "n",
            "top-1 %",
            "wrong",
            "FP",
            "median ms",
            "p95 ms",
            "CPU median ms",
            "CPU p95 ms",
            "ratio",
        ]
        + (["large / compare"] if args.compare else ["after / before"] if len(searches) > 1 else []),
        rows,
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"commit": git_commit(), "search": str(search), "large": info, "sizes": sz, "results": results},
                indent=1,
            )
        )
    if not args.keep and not args.reuse:
        shutil.rmtree(large, ignore_errors=True)


if __name__ == "__main__":
    main()
