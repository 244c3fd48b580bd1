"""The cluster report: every section, the stated genre rule, readable quartiles, honest plots, jinja2 template."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest

from songmine.cluster.analysis import RunConfig, genre_min_count, quartiles, representative_genres, run
from songmine.cluster.report import context, point_size, render_html
from songmine.cluster.synthetic import make_fma_like


@pytest.fixture(scope="module")
def no_echonest():
    """A small planted catalogue with no echonest column at all."""
    cat = make_fma_like(400, n_echonest=0, k=3, seed=11)
    return cat.full[[c for c in cat.full.columns if "echonest" not in str(c)]]


def _headings(page: str) -> list[str]:
    return re.findall(r"<h2>(\d)\. ", page)


def test_all_sections_when_k_is_given(no_echonest):
    res = run(no_echonest, config=RunConfig(k=3, n_init=1, compare_sklearn=False, compare_echonest=False))
    page = render_html(res)
    assert _headings(page) == ["1", "2", "3", "4", "5", "6", "7"]
    assert "k = 3 was given (<code>--k</code>): no k was chosen here." in page
    # the settings say what happened to echonest features, not the flag's value
    assert re.search(r"<td class=\"l\">echonest features</td><td>none in this table</td>", page)
    assert ">True<" not in page
    res2 = run(
        no_echonest, config=RunConfig(k=3, n_init=1, echonest=False, compare_sklearn=False, compare_echonest=False)
    )
    assert "ignored (--no-echonest)" in render_html(res2)


def test_all_sections_when_k_is_chosen(no_echonest):
    res = run(
        no_echonest, config=RunConfig(k_values=(2, 3, 4), n_init=1, compare_sklearn=False, compare_echonest=False)
    )
    page = render_html(res)
    assert _headings(page) == ["1", "2", "3", "4", "5", "6", "7"]
    assert "each method votes for" in page and "was given" not in page


def test_variance_plot_stops_at_the_rank_and_points_are_visible(no_echonest):
    res = run(no_echonest.iloc[:8], config=RunConfig(k=2, n_init=1, compare_sklearn=False, compare_echonest=False))
    ctx = context(res, figs={})
    assert ctx["reduction"]["rank"] == 7  # 8 centred rows carry at most 7 components
    assert ctx["reduction"]["plot_alt"] == "explained variance of the first 7 components"
    assert point_size(62) >= 40 and point_size(6000) >= 10 and point_size(10) <= 60


def test_genre_rule_is_stated_and_never_falls_back():
    # the demo music at k = 4: a cluster of 9 Romantic Classical, 1 Game (the only Game track), 12 unknown
    labels = np.array([0] * 26 + [2] * 22 + [1] * 7)
    genre = np.array(
        ["Romantic Classical"] * 26 + ["Romantic Classical"] * 9 + ["Game"] + ["unknown"] * 12 + ["unknown"] * 7,
        dtype=object,
    )
    rep = representative_genres(labels, genre, k=3)
    assert genre_min_count(36) == 2 and rep[2]["min_count"] == 2
    assert rep[2]["genre"] is None and rep[2]["lift"] is None  # Romantic Classical is under-represented there
    assert rep[2]["top_genre"] == "Romantic Classical" and rep[2]["top_share"] == pytest.approx(0.9)
    assert rep[0]["genre"] == "Romantic Classical" and rep[0]["lift"] > 1
    # two Game tracks, both in cluster 2: now Game is the over-represented genre, with its count
    genre2 = genre.copy()
    genre2[36] = "Game"
    rep2 = representative_genres(labels, genre2, k=3)
    assert rep2[2]["genre"] == "Game" and rep2[2]["count"] == 2 and rep2[2]["lift"] > 3
    assert genre_min_count(13_129) == 14


def test_report_footnote_states_the_rule(no_echonest):
    res = run(no_echonest, config=RunConfig(k=3, n_init=1, compare_sklearn=False, compare_echonest=False))
    n_known = sum(r["n_known"] for r in res.representative)
    m = genre_min_count(n_known)
    page = render_html(res)
    assert (
        f"among genres with lift &gt; 1 and at least {m} tracks in the cluster ({m} = max(2, 0.1 % of the "
        f"{n_known:,} tracks with a known genre))"
    ) in page
    assert res.to_dict()["representative_rule"].startswith("most over-represented genre = the highest lift")


def test_quartile_labels_keep_distinct_bounds_distinct():
    v = np.array([0.0412, 0.0418, 0.0423, 0.0431, 0.0437, 0.0442, 0.0448, 0.0455])
    _, labels = quartiles(v)
    assert labels == ["Q1 low (0.0412–0.0418)", "Q2 (0.0423–0.0431)", "Q3 (0.0437–0.0442)", "Q4 high (0.0448–0.0455)"]
    _, labels = quartiles([179.3, 681.0, 723.4, 853.9, 1_204.0, 2_500.5, 9_000.0, 12_345.6])
    assert labels[0] == "Q1 low (179–681)" and labels[3] == "Q4 high (9,000–12,346)"
    _, labels = quartiles([5.0] * 8)
    assert labels == ["Q1 low (5.0)", "Q2 (5.0)", "Q3 (5.0)", "Q4 high (5.0)"]


def test_template_is_package_data_and_autoescaped(no_echonest):
    assert resources.files("songmine.cluster").joinpath("templates", "report.html.j2").is_file()
    df = no_echonest.copy()
    col = next(c for c in df.columns if "genre_top" in str(c))
    df[col] = df[col].astype(object)
    df.loc[df.index[:40], col] = "<script>alert(1)</script>"
    page = render_html(run(df, config=RunConfig(k=3, n_init=1, compare_sklearn=False, compare_echonest=False)))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
