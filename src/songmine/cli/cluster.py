"""``songmine cluster choose-k`` and ``songmine cluster run``: thin verbs over :mod:`songmine.cluster`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..extras import require
from ._app import JsonOption, app, emit_json, err_console, needs_extra, out_console, printable

cluster_app = typer.Typer(
    name="cluster",
    help="Cluster a catalogue on its audio features: choose k, run k-means, write a report.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(cluster_app, name="cluster")

TableArg = Annotated[
    Path,
    typer.Argument(
        help="Table from `songmine catalog merge` (parquet/CSV) or an FMA-layout features.csv "
        "(from `songmine features`; a tracks.csv beside it adds the metadata).",
        show_default=False,
    ),
]
NoEchonest = Annotated[bool, typer.Option("--no-echonest", help="Ignore echonest audio/temporal features.")]
Nonfinite = Annotated[
    str,
    typer.Option(
        "--nonfinite",
        help="What to do with NaN/±inf feature values: error (report and stop), drop the rows, "
        "or impute column medians.",
    ),
]
Variance = Annotated[
    float,
    typer.Option("--variance", help="PCA keeps the fewest components retaining more than this share of the variance."),
]
Reduction = Annotated[str, typer.Option("--reduce", help="pca (default), svd (TruncatedSVD, no centring) or none.")]


def _prepare(table: Path, *, echonest: bool, nonfinite: str, variance: float, method: str, quiet: bool = False):
    """Read, clean and reduce the table; the reduction's warnings (constant columns dropped) as one line each."""
    import warnings

    from ..cluster.data import clean_features, read_table
    from ..cluster.reduce import ReduceConfig, reduce

    df = read_table(table)
    X, _, plan = clean_features(df, echonest=echonest, nonfinite=nonfinite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Z, red = reduce(
            X, columns=[str(c) for c in plan.columns], config=ReduceConfig(method=method, variance=variance)
        )
    if not quiet:
        for w in caught:
            err_console().print(f"note: {w.message}")
    return df, Z, red, plan


@cluster_app.command("choose-k")
@needs_extra("cluster", "songmine cluster choose-k")
def choose_k_cmd(
    table: TableArg,
    k_range: Annotated[
        str, typer.Option("--k-range", metavar="RANGE", help="Values of k to try: 2..15 or 3,5,8.")
    ] = "2..15",
    plot: Annotated[Path | None, typer.Option("--plot", help="Write the k-selection plot (PNG) here.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    engine: Annotated[str, typer.Option("--engine", help="k-means engine: local or spark.")] = "local",
    no_echonest: NoEchonest = False,
    nonfinite: Nonfinite = "error",
    variance: Variance = 0.70,
    reduce_method: Reduction = "pca",
    json_out: JsonOption = False,
) -> None:
    """Score every k in a range five ways (elbow, silhouette, Calinski-Harabasz, Davies-Bouldin, gap)
    and recommend one, with the reason."""
    from ..cluster.choose_k import ChooseKConfig, choose_k, narrow_k_values, parse_k_range

    if engine == "spark":
        require("spark", "songmine cluster choose-k --engine spark")
    ks = tuple(parse_k_range(k_range))
    _, Z, red, plan = _prepare(
        table, echonest=not no_echonest, nonfinite=nonfinite, variance=variance, method=reduce_method, quiet=json_out
    )
    ks, note = narrow_k_values(ks, len(Z))
    if not json_out:
        err_console().print(
            f"{plan.rows_used:,} tracks × {len(plan.columns)} audio features → "
            f"{red.n_components} PCA components ({100 * red.retained_variance:.1f} % variance)"
        )
        if note:
            err_console().print(note)
    res = choose_k(Z, config=ChooseKConfig(k_values=ks, random_state=seed), engine=engine)
    res.note = note
    if plot is not None:
        _write_choose_plot(res, plot)
    if json_out:
        emit_json(
            {
                "table": str(table),
                "inputs": plan.summary(),
                "reduction": red.summary(),
                **res.to_dict(),
                "plot": str(plot) if plot else None,
            }
        )
        return
    from rich.table import Table

    t = Table(title=f"choosing k for {table.name}")
    for c in ("k", "inertia", "silhouette ↑", "Calinski-Harabasz ↑", "Davies-Bouldin ↓", "gap ± s"):
        t.add_column(c, justify="right")
    for r in res.table():
        votes = [m for m, v in res.votes.items() if v == r["k"]]
        t.add_row(
            f"{r['k']}" + (" ◀" if r["k"] == res.recommended_k else ""),
            f"{r['inertia']:,.0f}",
            f"{r['silhouette']:.3f}",
            f"{r['calinski_harabasz']:,.1f}",
            f"{r['davies_bouldin']:.3f}",
            f"{r['gap']:.3f} ± {r['gap_sd']:.3f}" + (f"  ({', '.join(votes)})" if votes else ""),
        )
    con = out_console()
    con.print(t)
    con.print(f"recommended k = {res.recommended_k}: {res.reason}")
    if plot is not None:
        con.print(f"plot: {plot}")


def _write_choose_plot(res, path: Path) -> None:
    import base64

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(_choose_png(res).split(",", 1)[1]))


def _choose_png(res) -> str:
    from ..cluster.report import choose_k_figure

    return choose_k_figure(res)


@cluster_app.command("run")
@needs_extra("cluster", "songmine cluster run")
def run_cmd(
    table: Annotated[
        str,
        typer.Argument(
            help="Table from `songmine catalog merge` (parquet/CSV) or an FMA-layout features.csv "
            "(from `songmine features`; a tracks.csv beside it adds the metadata). With --engine spark: "
            "a parquet file or folder, any URL Spark reads (hdfs://, s3a://, file://).",
            show_default=False,
        ),
    ],
    k: Annotated[
        int | None, typer.Option("--k", "-k", metavar="K", help="Number of clusters (default: chosen by choose-k).")
    ] = None,
    k_range: Annotated[
        str, typer.Option("--k-range", metavar="RANGE", help="k values tried when --k is not given.")
    ] = "2..15",
    engine: Annotated[str, typer.Option("--engine", help="k-means engine: local or spark.")] = "local",
    master: Annotated[str | None, typer.Option("--master", help="Spark master URL (with --engine spark).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    report: Annotated[Path | None, typer.Option("--report", help="Write the HTML report here.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Write per-track assignments (track_id, cluster, distance): .parquet or .csv."
        ),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="The catalogue's other variant (e.g. merged without echonest: all rows) for the "
            "with/without-echonest comparison.",
        ),
    ] = None,
    genre_column: Annotated[str | None, typer.Option("--genre-column", help="Column holding the genre.")] = None,
    no_sklearn: Annotated[bool, typer.Option("--no-sklearn", help="Skip the scikit-learn comparison.")] = False,
    no_echonest: NoEchonest = False,
    nonfinite: Nonfinite = "error",
    variance: Variance = 0.70,
    reduce_method: Reduction = "pca",
    planted: Annotated[
        Path | None,
        typer.Option(
            "--planted",
            help="CSV/parquet of track_id → planted cluster (synthetic data): report the recovery.",
            hidden=True,
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Cluster the catalogue on its audio features and explain the clusters (report, assignments, JSON)."""
    import pandas as pd

    from ..cluster.analysis import RunConfig, run
    from ..cluster.choose_k import parse_k_range
    from ..cluster.data import read_table
    from ..cluster.reduce import ReduceConfig
    from ..errors import ParameterError

    if engine not in ("local", "spark"):
        raise ParameterError(f"--engine {engine!r} must be 'local' or 'spark'")
    if engine == "spark":
        require("spark", "songmine cluster run --engine spark")
    elif master:
        raise ParameterError("--master is only meaningful with --engine spark")
    cfg = RunConfig(
        k=k,
        k_values=tuple(parse_k_range(k_range)),
        seed=seed,
        engine=engine,
        echonest=not no_echonest,
        nonfinite=nonfinite,
        reduce=ReduceConfig(method=reduce_method, variance=variance),
        genre_column=genre_column,
        compare_sklearn=not no_sklearn,
    )
    console = err_console()
    progress = None if json_out else (lambda msg: console.print(f"… {msg}", style="dim"))
    if engine == "spark":
        from ..spark.cluster import run_spark
        from ..spark.session import get_session

        for flag, given in (("--compare", compare), ("--planted", planted)):
            if given is not None:
                raise ParameterError(f"{flag} needs the whole table in memory: use it with --engine local")
        # the executors write the assignments (a folder of parquet or CSV parts)
        res = run_spark(
            table,
            config=cfg,
            session=get_session(master),
            progress=progress,
            assignments=str(out) if out is not None else None,
        )
        out_written = True
    else:
        df = read_table(Path(table))
        other = read_table(compare) if compare is not None else None
        truth = None
        if planted is not None:
            t = pd.read_parquet(planted) if planted.suffix == ".parquet" else pd.read_csv(planted)
            truth = t.set_index("track_id").iloc[:, 0]
        res = run(df, config=cfg, source=str(table), other=other, truth=truth, progress=progress)
        out_written = False
    if out is not None and not out_written:
        a = res.assignments()
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.name.endswith((".csv", ".csv.gz")):
            a.to_csv(out, index=False)
        else:
            a.to_parquet(out, index=False)
    if report is not None:
        from ..cluster.report import write_report

        write_report(res, report)
    if json_out:
        d = res.to_dict()
        d["model"]["engine"] = engine
        d.update({"report": str(report) if report else None, "assignments": str(out) if out else None})
        emit_json(d)
        return
    con = out_console()
    if res.choose and res.choose.note:
        err_console().print(res.choose.note)
    if res.choose:
        con.print(f"k = {res.k}: {res.choose.reason}")
    con.print(
        f"{res.n_rows:,} tracks, {len(res.plan.columns)} audio features → {res.reduction.n_components} "
        f"components ({100 * res.reduction.retained_variance:.1f} % variance), k = {res.k}, "
        f"inertia {res.model['inertia']:,.1f}"
    )
    from rich.text import Text

    for c, text in enumerate(res.descriptions):
        con.print(Text(str(c), style="bold").append(" " + printable(text, lines=True)), highlight=False)
    if res.truth:
        con.print(f"planted clusters recovered: ARI {res.truth['ari']:.3f}, NMI {res.truth['nmi']:.3f}")
    if report is not None:
        con.print(f"report: {report}")
    if out is not None:
        con.print(f"assignments: {out}")
