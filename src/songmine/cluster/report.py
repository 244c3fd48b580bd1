"""A self-contained HTML report of a :class:`~songmine.cluster.analysis.ClusterAnalysis`.

One file, no external assets: the figures are matplotlib PNGs embedded as
``data:`` URIs, the tables are plain HTML shaded by value. Sections: summary,
inputs, reduction (variance curve), choosing k (table + plot), the clusters
(sizes, 2-D projection, one paragraph each, representative genres), the pivot
tables (percent by column), and the comparisons.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np

from ..extras import require

require("cluster", __name__)  # a missing package of the extra: one line naming it, not a traceback

__all__ = ["render_html", "write_report", "figures", "choose_k_figure"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.sub{color:#666;margin-top:0}.kpi{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}
.kpi div{background:#f4f6f8;border-radius:6px;padding:.6em 1em;min-width:8em}.kpi b{display:block;font-size:1.4em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f4f6f8}td.l,th.l{text-align:left}.note{color:#555;font-size:.92em}
.cluster{border-left:5px solid #888;padding:.3em .9em;margin:.8em 0;background:#fafafa}
img{max-width:100%;border:1px solid #eee}.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:.5em 1em}
.scroll{overflow-x:auto}
"""


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
    panels = [("inertia (elbow)", ch.inertia, "elbow"), ("silhouette ↑", ch.silhouette, "silhouette"),
              ("Calinski-Harabasz ↑", ch.calinski_harabasz, "calinski_harabasz"),
              ("Davies-Bouldin ↓", ch.davies_bouldin, "davies_bouldin"), ("gap statistic", ch.gap, "gap")]
    for ax, (title, vals, key) in zip(axes.flat, panels):
        if key == "gap":
            ax.errorbar(ks, vals, yerr=ch.gap_sd, fmt="o-", ms=3, color="#1f4e79", capsize=2)
        else:
            ax.plot(ks, vals, "o-", ms=3, color="#1f4e79")
        ax.axvline(ch.votes[key], color="#e67e22", ls="--", lw=1.2, label=f"votes k={ch.votes[key]}")
        ax.axvline(ch.recommended_k, color="#c0392b", lw=1.5, alpha=.5)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(ks)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=8, loc="best")
    ax = axes.flat[5]
    ax.axis("off")
    ax.text(0, 0.95, f"recommended k = {ch.recommended_k}", fontsize=13, weight="bold", va="top")
    import textwrap

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
    show = min(len(ratios), max(2 * red.n_components, 20))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    xs = np.arange(1, show + 1)
    ax.bar(xs, 100 * ratios[:show], color="#9bb7d4", label="per component")
    ax2 = ax.twinx()
    ax2.plot(xs, 100 * np.cumsum(ratios)[:show], "o-", color="#1f4e79", ms=3, label="cumulative")
    ax2.axhline(100 * red.variance_threshold, color="#c0392b", ls="--", lw=1)
    ax2.axvline(red.n_components, color="#c0392b", ls=":", lw=1)
    ax2.text(red.n_components + 0.3, 5, f"{red.n_components} components\n{100 * red.retained_variance:.1f} %",
             color="#c0392b", fontsize=9)
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
    for c in range(k):
        m = lab == c
        ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=.45, color=cols[c], label=f"{c}", rasterized=True)
    if p.get("centers") is not None:
        C = np.asarray(p["centers"])
        ax.scatter(C[:, 0], C[:, 1], s=140, c=[cols[c] for c in range(k)], edgecolors="black", marker="X")
        for c in range(k):
            ax.annotate(str(c), C[c], fontsize=11, weight="bold", xytext=(6, 6), textcoords="offset points")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"2-D projection (first two principal components, {len(lab):,} sampled tracks)")
    ax.legend(title="cluster", markerscale=4, fontsize=8, loc="best", ncol=2 if k > 8 else 1)
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


def _table(header, rows, left=1) -> str:
    h = "".join(f"<th class='l'>{html.escape(str(c))}</th>" if i < left else f"<th>{html.escape(str(c))}</th>"
                for i, c in enumerate(header))
    body = "".join("<tr>" + "".join(
        f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<div class='scroll'><table><tr>{h}</tr>{body}</table></div>"


def _pivot_html(pct, counts) -> str:
    head = "<th class='l'>cluster</th>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in pct.columns)
    rows = []
    for i in pct.index:
        cells = "".join(
            f"<td style='background:rgba(31,119,180,{v / 100 * 0.85:.2f});color:{'#fff' if v > 55 else '#222'}'>"
            f"{v:.1f}</td>" for v in pct.loc[i])
        rows.append(f"<tr><td class='l'><b>{i}</b></td>{cells}</tr>")
    total = "".join(f"<td><i>{pct[c].sum():.0f}</i></td>" for c in pct.columns)
    n = "".join(f"<td class='note'>{int(counts[c].sum()):,}</td>" for c in pct.columns)
    return (f"<div class='scroll'><table><tr>{head}</tr>{''.join(rows)}<tr><td class='l'><i>total %</i></td>{total}"
            f"</tr><tr><td class='l note'>tracks</td>{n}</tr></table></div>")


def render_html(res, *, title: str = "songmine — catalogue clusters") -> str:
    """The report as one HTML string."""
    figs = figures(res)
    e = html.escape
    k = res.k
    cols = _colors(k)
    plan = res.plan
    red = res.reduction
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style>"
             f"</head><body><h1>{e(title)}</h1><p class='sub'>{e(str(res.source))}</p>"]
    kpis = [("tracks clustered", f"{res.n_rows:,}"), ("audio features used", f"{len(plan.columns):,}"),
            ("PCA components", f"{red.n_components} ({100 * red.retained_variance:.0f} %)"), ("clusters k", str(k))]
    if res.truth:
        kpis.append(("agreement with planted clusters (ARI)", f"{res.truth['ari']:.3f}"))
    parts.append("<div class='kpi'>" + "".join(f"<div>{e(a)}<b>{e(b)}</b></div>" for a, b in kpis) + "</div>")
    if res.choose:
        parts.append(f"<p><b>Why k = {k}:</b> {e(res.choose.reason)}</p>")
    if res.truth:
        parts.append(f"<p><b>Planted structure:</b> the synthetic catalogue has {res.truth['n_planted']} planted "
                     f"clusters; k-means found k = {k}; adjusted Rand index {res.truth['ari']:.3f}, "
                     f"NMI {res.truth['nmi']:.3f} between found and planted clusters (1 = identical).</p>")
    for w in res.warnings:
        parts.append(f"<p class='warn'>{e(w)}</p>")

    parts.append("<h2>1. Inputs</h2>")
    parts.append(
        f"<p>Clustered on <b>audio features only</b>: {len(plan.fma_columns)} FMA feature columns"
        f"{f' and {len(plan.echonest_columns)} echonest audio/temporal columns' if plan.echonest_columns else ''}"
        f". Ids, listens, dates and genres are <b>not</b> inputs; they are used below to interpret the clusters. "
        f"Rows: {plan.rows_in:,} in the table, {plan.rows_used:,} clustered"
        f"{f' ({plan.nonfinite_rows:,} rows had NaN/inf: {plan.policy})' if plan.nonfinite_rows else ''}.</p>")
    parts.append("<p>Interpretation variables: " + ", ".join(
        f"<b>{e(v.label)}</b> <span class='note'>({e(str(v.column))})</span>" for v in res.variables) + "</p>")

    parts.append("<h2>2. Reduction</h2>")
    parts.append(f"<p>Standardised (mean 0, variance 1 per feature), then {e(red.method.upper())} ({e(red.solver)} "
                 f"solver): the smallest number of components retaining more than "
                 f"{100 * red.variance_threshold:.0f} % of the variance is <b>{red.n_components}</b> "
                 f"({100 * red.retained_variance:.1f} %)."
                 + (f" {len(red.dropped_constant)} constant column(s) dropped." if red.dropped_constant else "")
                 + f"</p><img src='{figs['variance']}'>")

    if res.choose:
        ch = res.choose
        parts.append("<h2>3. Choosing k</h2>")
        rows = []
        for r in ch.table():
            mark = lambda key: " ◀" if ch.votes.get(key) == r["k"] else ""  # noqa: E731
            rows.append([f"<b>{r['k']}</b>" if r["k"] == ch.recommended_k else str(r["k"]),
                         _num(r["inertia"]) + mark("elbow"), _num(r["silhouette"]) + mark("silhouette"),
                         _num(r["calinski_harabasz"]) + mark("calinski_harabasz"),
                         _num(r["davies_bouldin"]) + mark("davies_bouldin"),
                         f"{_num(r['gap'])} ± {_num(r['gap_sd'], 2)}" + mark("gap")])
        parts.append(_table(["k", "inertia", "silhouette ↑", "Calinski-Harabasz ↑", "Davies-Bouldin ↓",
                             "gap ± s"], rows))
        parts.append(f"<p class='note'>◀ = the k each method votes for. {e(ch.reason)}</p>")
        parts.append(f"<img src='{figs['choose_k']}'>")

    parts.append("<h2>4. The clusters</h2>")
    parts.append(f"<p>k-means (songmine, k-means++ seeding, {res.model['n_init']} restarts, engine "
                 f"<code>{e(res.model['engine'])}</code>): inertia {_num(res.model['inertia'])}, "
                 f"{res.model['n_iter']} iterations, {res.model['seconds']:.2f} s.</p>")
    parts.append(f"<img src='{figs['projection']}'><img src='{figs['sizes']}'>")
    rep_rows = []
    for c in range(k):
        r = res.representative[c]
        rep_rows.append([f"<span style='color:{matplotlib_hex(cols[c])}'>■</span> {c}", f"{res.sizes[c]:,}",
                         e(r.get("genre") or "–"), _pct(r.get("share")), _pct(r.get("base_rate")),
                         f"{r['lift']:.1f}×" if r.get("lift") else "–", e(r.get("top_genre") or "–"),
                         _pct(r.get("unknown_share"))])
    parts.append("<h3>Representative genre per cluster</h3>")
    parts.append(_table(["cluster", "tracks", "most over-represented genre", "share in cluster*", "base rate*",
                         "lift", "most frequent genre", "no genre"], rep_rows))
    parts.append("<p class='note'>* among tracks with a known top genre. Lift = share in the cluster ÷ share in "
                 "the whole catalogue; only genres with ≥ 5 % of the cluster compete.</p>")
    for c in range(k):
        parts.append(f"<div class='cluster' style='border-color:{matplotlib_hex(cols[c])}'>"
                     f"<p>{e(res.descriptions[c])}</p></div>")

    parts.append("<h2>5. Pivot tables — percent of each category by cluster (columns sum to 100)</h2>")
    parts.append("<p class='note'>Read down a column: of all tracks in that category, which share landed in each "
                 "cluster. Numeric variables are cut into four rank-based quartiles (Q1 = lowest 25 %); "
                 "<i>unknown</i> = missing value, kept visible.</p>")
    for v in res.variables:
        parts.append(f"<h3>{e(v.label)} <span class='note'>({e(str(v.column))})</span></h3>")
        parts.append(_pivot_html(res.pivots[v.key], res.counts[v.key]))
        if f"pivot_{v.key}" in figs and v.key == "genre":
            parts.append(f"<img src='{figs['pivot_genre']}'>")

    parts.append("<h2>6. Comparisons</h2>")
    if res.kmeans_comparison:
        kc = res.kmeans_comparison
        parts.append(f"<h3>songmine k-means vs scikit-learn (k = {kc['k']}, {kc['n_init']} restart(s) each, "
                     "same PCA data)</h3>")
        parts.append(_table(["method", "inertia", "Δ inertia vs reference", "ARI vs reference", "iterations",
                             "time, s"],
                            [[e(r["method"]), _num(r["inertia"]), f"{r['inertia_vs_reference_pct']:+.3f} %",
                              f"{r['ari_vs_reference']:.4f}", str(r["n_iter"]), f"{r['seconds']:.3f}"]
                             for r in kc["rows"]]))
        parts.append(f"<p class='note'>Reference: {e(kc['reference'])}. ARI between our random and k-means++ "
                     f"runs: {kc['ari_random_vs_plusplus']:.4f}. Times are wall-clock on a shared machine.</p>")
        parts.append(f"<img src='{figs['kmeans_comparison']}'>")
    if res.echonest_comparison:
        ec = res.echonest_comparison
        parts.append(f"<h3>With vs without echonest features (k = {ec['k']})</h3>")
        parts.append(_table(["variant", "rows", "features", "PCA comps", "rows with genre", "NMI(genre)",
                             "genre purity", "majority baseline", "silhouette"],
                            [[e(r["variant"]), f"{r['rows']:,}", str(r["n_features"]), str(r["n_components"]),
                              f"{r.get('rows_with_genre', 0):,}", _num(r.get("nmi_genre")),
                              _pct(r.get("purity_genre")), _pct(r.get("purity_baseline")), _num(r["silhouette"])]
                             for r in ec["rows"]]))
        if ec.get("verdict"):
            parts.append(f"<p><b>{e(ec['verdict'])}</b> NMI and purity use only tracks with a known top genre; "
                         "purity is bounded below by the majority-genre baseline, so compare the two.</p>")
        if "echonest_comparison" in figs:
            parts.append(f"<img src='{figs['echonest_comparison']}'>")
    elif res.config.compare_echonest:
        parts.append("<p class='note'>With/without echonest: needs FMA feature columns and echonest columns in this "
                     "table, or the other variant of the catalogue with <code>--compare TABLE</code>; "
                     "not available here.</p>")
    parts.append("<h2>7. Settings</h2>")
    cfg = res.config
    parts.append(_table(["setting", "value"], [[e(a), e(str(b))] for a, b in [
        ("k", cfg.k if cfg.k is not None else f"chosen from {cfg.k_values[0]}..{cfg.k_values[-1]}"),
        ("seed", cfg.seed), ("engine", cfg.engine), ("restarts (n_init)", cfg.n_init),
        ("reduction", f"{red.method}, variance > {red.variance_threshold}"), ("echonest features", cfg.echonest),
        ("NaN/inf policy", cfg.nonfinite)]]))
    parts.append("<p class='note'>Generated by <code>songmine cluster run</code>. All numbers are also available "
                 "with <code>--json</code>.</p></body></html>")
    return "\n".join(parts)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.1f} %"


def matplotlib_hex(rgba) -> str:
    r, g, b = (int(round(255 * v)) for v in rgba[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def write_report(res, path) -> str:
    """Write :func:`render_html` to ``path`` (atomically); returns the path."""
    import os

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(render_html(res), encoding="utf-8")
    os.replace(tmp, p)
    return str(p)
