"""A self-contained HTML report of a :class:`~songmine.cluster.analysis.ClusterAnalysis`.

One file, no external assets: the figures are matplotlib PNGs embedded as
``data:`` URIs, the tables are HTML shaded by value. The page is a jinja2
template shipped with the package (``templates/report.html.j2``, autoescaped);
:func:`context` turns the analysis into the numbers and words it shows.
Sections, always all seven: summary, 1 inputs, 2 reduction (variance curve),
3 choosing k (table + plot, or why none was run), 4 the clusters (sizes, 2-D
projection, one paragraph each, representative genres and their rule), 5 the
pivot tables (percent by column), 6 the comparisons, 7 settings.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from pathlib import Path

from ..extras import require

require("cluster", __name__)  # before the extra's packages: a missing one is one line naming the extra

import jinja2  # noqa: E402
import numpy as np  # noqa: E402
from markupsafe import Markup  # noqa: E402

from ..atomic import atomic_path  # noqa: E402

__all__ = ["render_html", "write_report", "figures", "choose_k_figure", "context", "point_size"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("songmine.cluster", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def point_size(n: int) -> float:
    """Scatter marker area for ``n`` points: large for a few dozen tracks, small (not invisible) for thousands."""
    return float(np.clip(3000.0 / max(int(n), 1), 10.0, 60.0))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _colors(k: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab20" if k > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(k)]


def choose_k_figure(ch) -> str:
    """The five k-selection criteria of a :class:`~songmine.cluster.choose_k.ChooseKResult`, as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    ks = ch.k_values
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.6))
    panels = [
        ("inertia (elbow)", ch.inertia, "elbow"),
        ("silhouette ↑", ch.silhouette, "silhouette"),
        ("Calinski-Harabasz ↑", ch.calinski_harabasz, "calinski_harabasz"),
        ("Davies-Bouldin ↓", ch.davies_bouldin, "davies_bouldin"),
        ("gap statistic", ch.gap, "gap"),
    ]
    for ax, (title, vals, key) in zip(axes.flat, panels):
        if key == "gap":
            ax.errorbar(ks, vals, yerr=ch.gap_sd, fmt="o-", ms=3, color="#1f4e79", capsize=2)
        else:
            ax.plot(ks, vals, "o-", ms=3, color="#1f4e79")
        ax.axvline(ch.votes[key], color="#e67e22", ls="--", lw=1.2, label=f"votes k={ch.votes[key]}")
        ax.axvline(ch.recommended_k, color="#c0392b", lw=1.5, alpha=0.5)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(ks)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8, loc="best")
    ax = axes.flat[5]
    ax.axis("off")
    ax.text(0, 0.95, f"recommended k = {ch.recommended_k}", fontsize=13, weight="bold", va="top")

    ax.text(0, 0.75, "\n".join(textwrap.wrap(ch.reason, 42)), fontsize=8.5, va="top")
    fig.suptitle("Choosing k (red line: recommendation; orange: each method's vote)", fontsize=11)
    fig.tight_layout()
    return _png(fig)


def figures(res) -> dict[str, str]:
    """The report's figures as PNG data URIs: variance, choose_k, projection, sizes, genre_heatmap, comparisons."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = {}
    red = res.reduction
    ratios = red.explained_variance_ratio
    show = _variance_shown(red)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    xs = np.arange(1, show + 1)
    ax.bar(xs, 100 * ratios[:show], color="#9bb7d4", label="per component")
    ax2 = ax.twinx()
    ax2.plot(xs, 100 * np.cumsum(ratios)[:show], "o-", color="#1f4e79", ms=3, label="cumulative")
    ax2.axhline(100 * red.variance_threshold, color="#c0392b", ls="--", lw=1)
    ax2.axvline(red.n_components, color="#c0392b", ls=":", lw=1)
    ax2.text(
        red.n_components + 0.3,
        5,
        f"{red.n_components} components\n{100 * red.retained_variance:.1f} %",
        color="#c0392b",
        fontsize=9,
    )
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance, %")
    ax2.set_ylabel("cumulative, %")
    ax2.set_ylim(0, 102)
    ax.set_title("Explained variance (standardised audio features)")
    out["variance"] = _png(fig)

    if res.choose is not None:
        out["choose_k"] = choose_k_figure(res.choose)

    k = res.k
    cols = _colors(k)
    p = res.projection
    fig, ax = plt.subplots(figsize=(7.5, 6))
    lab = np.asarray(p["labels"])
    xy = np.asarray(p["xy"])
    size = point_size(len(lab))
    for c in range(k):
        m = lab == c
        ax.scatter(
            xy[m, 0],
            xy[m, 1],
            s=size,
            alpha=0.8 if len(lab) < 1000 else 0.5,
            color=cols[c],
            label=f"{c}",
            edgecolors="white" if len(lab) < 1000 else "none",
            linewidths=0.4,
            rasterized=True,
        )
    if p.get("centers") is not None:
        C = np.asarray(p["centers"])
        ax.scatter(C[:, 0], C[:, 1], s=140, c=[cols[c] for c in range(k)], edgecolors="black", marker="X")
        for c in range(k):
            ax.annotate(str(c), C[c], fontsize=11, weight="bold", xytext=(6, 6), textcoords="offset points")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"2-D projection (first two principal components, {len(lab):,} sampled tracks)")
    ax.legend(title="cluster", markerscale=max(1.0, 40 / size) ** 0.5, fontsize=8, loc="best", ncol=2 if k > 8 else 1)
    out["projection"] = _png(fig)

    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(range(k), res.sizes, color=cols)
    ax.set_xticks(range(k))
    ax.set_xlabel("cluster")
    ax.set_ylabel("tracks")
    ax.set_title("Cluster sizes")
    out["sizes"] = _png(fig)

    for key in [v.key for v in res.variables if v.key == "genre"]:
        pct = res.pivots[key]
        fig, ax = plt.subplots(figsize=(min(12, 1.2 + 0.75 * pct.shape[1]), 0.9 + 0.38 * k))
        im = ax.imshow(pct.values, aspect="auto", cmap="Blues", vmin=0, vmax=100)
        ax.set_xticks(range(pct.shape[1]))
        ax.set_xticklabels([str(c) for c in pct.columns], rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(k))
        ax.set_ylabel("cluster")
        for (i, j), v in np.ndenumerate(pct.values):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v > 55 else "black")
        fig.colorbar(im, ax=ax, label="% of the category")
        label = next(v.label for v in res.variables if v.key == key)
        ax.set_title(f"{label}: where each category's tracks went (columns sum to 100 %)", fontsize=10)
        out[f"pivot_{key}"] = _png(fig)

    if res.kmeans_comparison:
        rows = res.kmeans_comparison["rows"]
        fig, axes = plt.subplots(1, 2, figsize=(10, 2.8))
        names = [r["method"] for r in rows]
        axes[0].barh(names, [r["inertia"] for r in rows], color="#9bb7d4")
        axes[0].set_title("final inertia (lower is better)", fontsize=10)
        axes[1].barh(names, [r["seconds"] for r in rows], color="#f0b27a")
        axes[1].set_title("fit time, s", fontsize=10)
        for ax in axes:
            ax.tick_params(labelsize=8)
        axes[1].set_yticklabels([])
        fig.tight_layout()
        out["kmeans_comparison"] = _png(fig)
    if res.echonest_comparison:
        rows = [r for r in res.echonest_comparison["rows"] if "nmi_genre" in r]
        if rows:
            fig, ax = plt.subplots(figsize=(9, 0.9 + 0.55 * len(rows)))
            y = np.arange(len(rows))
            ax.barh(y - 0.2, [r["nmi_genre"] for r in rows], 0.4, label="NMI with genre", color="#1f77b4")
            ax.barh(y + 0.2, [r["purity_genre"] for r in rows], 0.4, label="genre purity", color="#ff7f0e")
            ax.set_yticks(y)
            ax.set_yticklabels([r["variant"] for r in rows], fontsize=8)
            ax.set_xlim(0, 1)
            ax.legend(fontsize=8, loc="lower right")
            ax.set_title("Genre coherence of the clusters (same k)", fontsize=10)
            out["echonest_comparison"] = _png(fig)
    return out


def _variance_shown(red) -> int:
    """Components in the variance plot: twice the kept ones (at least 20), never more than carry variance."""
    return min(len(red.explained_variance_ratio), max(2 * red.n_components, 20))


def _num(x, digits=3) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    if not math.isfinite(x):
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:,.{digits}f}".rstrip("0").rstrip(".")


def _pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.1f} %"


def matplotlib_hex(rgba) -> str:
    r, g, b = (int(round(255 * v)) for v in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _echonest_setting(cfg, plan) -> str:
    if not cfg.echonest:
        return "ignored (--no-echonest)"
    n = len(plan.echonest_columns)
    return f"used ({n} columns)" if n else "none in this table"


def _choose_rows(ch) -> list[list]:
    rows = []
    for r in ch.table():

        def mark(key, text, r=r):
            return text + (" ◀" if ch.votes.get(key) == r["k"] else "")

        k = Markup("<b>{}</b>").format(r["k"]) if r["k"] == ch.recommended_k else str(r["k"])
        rows.append(
            [
                k,
                mark("elbow", _num(r["inertia"])),
                mark("silhouette", _num(r["silhouette"])),
                mark("calinski_harabasz", _num(r["calinski_harabasz"])),
                mark("davies_bouldin", _num(r["davies_bouldin"])),
                mark("gap", f"{_num(r['gap'])} ± {_num(r['gap_sd'], 2)}"),
            ]
        )
    return rows


def _pivot(v, pct, counts, figure) -> dict:
    rows = [
        {
            "cluster": i,
            "cells": [
                {"alpha": f"{x / 100 * 0.85:.2f}", "ink": "#fff" if x > 55 else "#222", "text": f"{x:.1f}"}
                for x in pct.loc[i]
            ],
        }
        for i in pct.index
    ]
    return {
        "label": v.label,
        "column": str(v.column),
        "columns": [str(c) for c in pct.columns],
        "rows": rows,
        "totals": [f"{pct[c].sum():.0f}" for c in pct.columns],
        "counts": [f"{int(counts[c].sum()):,}" for c in pct.columns],
        "figure": figure,
    }


def context(res, *, figs: dict[str, str] | None = None, title: str = "songmine — catalogue clusters") -> dict:
    """What the template shows, as plain values (numbers formatted, no HTML but a few marked cells)."""
    figs = figures(res) if figs is None else figs
    k = res.k
    cols = [matplotlib_hex(c) for c in _colors(k)]
    plan, red, cfg = res.plan, res.reduction, res.config
    kpis = [
        ("tracks clustered", f"{res.n_rows:,}"),
        ("audio features used", f"{len(plan.columns):,}"),
        ("PCA components", f"{red.n_components} ({100 * red.retained_variance:.0f} %)"),
        ("clusters k", str(k)),
    ]
    if res.truth:
        kpis.append(("agreement with planted clusters (ARI)", f"{res.truth['ari']:.3f}"))
    shown = _variance_shown(red)
    choose = None
    if res.choose:
        choose = {"reason": res.choose.reason, "note": res.choose.note, "rows": _choose_rows(res.choose)}
    rep_rows = []
    for c in range(k):
        r = res.representative[c]
        rep_rows.append(
            {
                "cluster": c,
                "color": cols[c],
                "size": f"{res.sizes[c]:,}",
                "genre": r.get("genre") or "–",
                "count": r.get("count") or "–",
                "share": _pct(r.get("share")),
                "base_rate": _pct(r.get("base_rate")),
                "lift": f"{r['lift']:.1f}×" if r.get("lift") else "–",
                "top_genre": r.get("top_genre") or "–",
                "unknown": _pct(r.get("unknown_share")),
            }
        )
    kc = res.kmeans_comparison
    kmeans_cmp = None
    if kc:
        kmeans_cmp = {
            "k": kc["k"],
            "n_init": kc["n_init"],
            "reference": kc["reference"],
            "ari_random_vs_plusplus": f"{kc['ari_random_vs_plusplus']:.4f}",
            "rows": [
                [
                    r["method"],
                    _num(r["inertia"]),
                    f"{r['inertia_vs_reference_pct']:+.3f} %",
                    f"{r['ari_vs_reference']:.4f}",
                    str(r["n_iter"]),
                    f"{r['seconds']:.3f}",
                ]
                for r in kc["rows"]
            ],
        }
    ec = res.echonest_comparison
    echo_cmp = None
    if ec:
        echo_cmp = {
            "k": ec["k"],
            "verdict": ec.get("verdict"),
            "rows": [
                [
                    r["variant"],
                    f"{r['rows']:,}",
                    str(r["n_features"]),
                    str(r["n_components"]),
                    f"{r.get('rows_with_genre', 0):,}",
                    _num(r.get("nmi_genre")),
                    _pct(r.get("purity_genre")),
                    _pct(r.get("purity_baseline")),
                    _num(r["silhouette"]),
                ]
                for r in ec["rows"]
            ],
        }
    n_proj = len(res.projection["labels"])
    return {
        "title": title,
        "source": str(res.source),
        "k": k,
        "kpis": kpis,
        "warnings": list(res.warnings),
        "truth": (
            {"n_planted": res.truth["n_planted"], "ari": f"{res.truth['ari']:.3f}", "nmi": f"{res.truth['nmi']:.3f}"}
            if res.truth
            else None
        ),
        "inputs": {
            "n_fma": len(plan.fma_columns),
            "n_echonest": len(plan.echonest_columns),
            "rows_in": f"{plan.rows_in:,}",
            "rows_used": f"{plan.rows_used:,}",
            "nonfinite_rows": f"{plan.nonfinite_rows:,}" if plan.nonfinite_rows else None,
            "policy": plan.policy,
        },
        "variables": [{"label": v.label, "column": str(v.column)} for v in res.variables],
        "reduction": {
            "method": red.method.upper(),
            "solver": red.solver,
            "threshold": f"{100 * red.variance_threshold:.0f} %",
            "n_components": red.n_components,
            "retained": f"{100 * red.retained_variance:.1f} %",
            "n_dropped": len(red.dropped_constant),
            "rank": len(red.explained_variance_ratio),
            "plot_alt": f"explained variance of the first {shown} components",
        },
        "choose": choose,
        "figs": figs,
        "model": {
            "n_init": res.model["n_init"],
            "engine": res.model["engine"],
            "inertia": _num(res.model["inertia"]),
            "n_iter": res.model["n_iter"],
            "seconds": f"{res.model['seconds']:.2f}",
        },
        "projection_alt": f"2-D projection of {n_proj} tracks (marker size {point_size(n_proj):.0f})",
        "representative": rep_rows,
        "genre_rule": res.representative_rule,
        "descriptions": [{"color": cols[c], "text": res.descriptions[c]} for c in range(k)],
        "pivots": [_pivot(v, res.pivots[v.key], res.counts[v.key], figs.get(f"pivot_{v.key}")) for v in res.variables],
        "kmeans_comparison": kmeans_cmp,
        "echonest_comparison": echo_cmp,
        "echonest_comparison_wanted": bool(cfg.compare_echonest),
        "settings": [
            [a, str(b)]
            for a, b in [
                ("k", cfg.k if cfg.k is not None else f"chosen from {cfg.k_values[0]}..{cfg.k_values[-1]}"),
                ("seed", cfg.seed),
                ("engine", getattr(cfg.engine, "name", cfg.engine)),
                ("restarts (n_init)", cfg.n_init),
                ("reduction", f"{red.method}, variance > {red.variance_threshold}"),
                ("echonest features", _echonest_setting(cfg, plan)),
                ("NaN/inf policy", cfg.nonfinite),
            ]
        ],
    }


def render_html(res, *, title: str = "songmine — catalogue clusters") -> str:
    """The report as one HTML string."""
    return _ENV.get_template("report.html.j2").render(**context(res, title=title))


def write_report(res, path) -> str:
    """Write :func:`render_html` to ``path`` (atomically); returns the path."""
    html = render_html(res)
    with atomic_path(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return str(Path(path))
