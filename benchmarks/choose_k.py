"""How the choose-k rules fare on planted catalogues: one row per (n, planted k, seed).

Each case is ``songmine.cluster.synthetic.make_fma_like(n, k=K, seed=S)`` (the 518
``features`` columns of its ``full`` table), read and reduced as ``songmine cluster
choose-k`` does (standardise, PCA keeping more than ``--variance`` of the variance),
then scored by :func:`songmine.cluster.choose_k.choose_k` twice on the same fits:

* the default: the gap statistic's k, Gaussian reference (the recommendation and its
  evidence; elbow, silhouette, Calinski-Harabasz and Davies-Bouldin are its other votes);
* ``gap_reference="uniform", rule="majority"``: Tibshirani's bounding-box reference, and
  the majority vote of the five methods.

ARI compares the partition at the recommended k with the planted clusters. ``--null``
adds the three cases without clusters (``make_fma_like(5000, k=1, seed=7)``, one
Gaussian of 30 correlated columns, uniform in a 10-D cube).

    PYTHONPATH=src python benchmarks/choose_k.py --case 1500,3,5 --case 2500,4,3 --k-range 2..12
    PYTHONPATH=src python benchmarks/choose_k.py --case 20000,8,1 --case 20000,12,0 --k-range 2..15 --null
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from _common import git_commit, markdown_table


def reduced(X: np.ndarray, variance: float) -> np.ndarray:
    from songmine.cluster.reduce import ReduceConfig, reduce

    return reduce(X, config=ReduceConfig(variance=variance))[0]


def planted(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    from songmine.cluster.data import clean_features
    from songmine.cluster.synthetic import make_fma_like

    cat = make_fma_like(n, k=k, seed=seed)
    X, _, _ = clean_features(cat.full, echonest=False)
    return X, cat.truth.to_numpy()


def null_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(30, 30))
    return [
        ("planted 1 (`make_fma_like(5000, k=1, seed=7)`)", planted(5000, 1, 7)[0]),
        ("one Gaussian, 30 correlated columns, n = 5,000", rng.normal(size=(5000, 30)) @ A),
        ("uniform in a 10-D cube, n = 5,000", rng.uniform(size=(5000, 10))),
    ]


def row(label: str, X: np.ndarray, truth, ks: tuple[int, ...], variance: float, seed: int) -> list:
    from songmine.cluster.analysis import adjusted_rand_index
    from songmine.cluster.choose_k import ChooseKConfig, choose_k, narrow_k_values

    Z = reduced(X, variance)
    ks, _ = narrow_k_values(ks, len(Z))
    t0 = time.process_time()
    gap = choose_k(Z, config=ChooseKConfig(k_values=ks, random_state=seed))
    vote = choose_k(Z, config=ChooseKConfig(k_values=ks, random_state=seed, gap_reference="uniform", rule="majority"))
    cpu = time.process_time() - t0
    v = gap.votes
    ari = (
        f"{adjusted_rand_index(truth, gap.labels[gap.recommended_k]):.2f}"
        if truth is not None and gap.evidence != "none"
        else "—"
    )
    return [
        label,
        Z.shape[1],
        f"**{gap.recommended_k}** ({gap.evidence})",
        vote.votes["gap"],
        v["elbow"],
        v["silhouette"],
        v["calinski_harabasz"],
        v["davies_bouldin"],
        vote.recommended_k,
        ari,
        f"{cpu:.0f}",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="N,K,SEED",
        help="a planted catalogue: rows, planted k, generator seed (repeatable)",
    )
    ap.add_argument("--null", action="store_true", help="also the three catalogues without clusters")
    ap.add_argument("--k-range", default="2..15")
    ap.add_argument("--variance", type=float, default=0.70)
    ap.add_argument("--seed", type=int, default=0, help="choose-k's random_state")
    args = ap.parse_args(argv)
    if not args.case and not args.null:
        ap.error("give at least one --case N,K,SEED or --null")

    from songmine.cluster.choose_k import parse_k_range

    ks = tuple(parse_k_range(args.k_range))
    rows = []
    for spec in args.case:
        try:
            n, k, s = (int(v) for v in spec.split(","))
        except ValueError:
            ap.error(f"--case {spec!r} must be N,K,SEED (three integers)")
        X, truth = planted(n, k, s)
        rows.append(row(f"planted {k}, n = {n:,}, seed {s}", X, truth, ks, args.variance, args.seed))
    if args.null:
        rows += [row(label, X, None, ks, args.variance, args.seed) for label, X in null_cases()]
    markdown_table(
        f"choose-k on planted catalogues — songmine {git_commit()}, k range {args.k_range}, "
        f"PCA {100 * args.variance:.0f} %",
        [
            "data",
            "kept comps",
            "**recommended** (evidence)",
            "gap, uniform ref.",
            "elbow",
            "silhouette",
            "C-H",
            "D-B",
            "majority vote",
            "ARI at recommended k",
            "CPU s",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
