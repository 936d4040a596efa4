"""``forgetbench-report``: aggregate run folders into tables and a comparison figure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from forgetbench.plots.compare import plot_metric_comparison
from forgetbench.plots.curves import plot_strategy_panels
from forgetbench.plots.style import save_figure
from forgetbench.results.io import read_json, write_with
from forgetbench.run import CURVES, SUMMARY

GROUP = ["dataset", "strategy", "remainder"]
# Config values shown per run; those that vary within a report also split the summary table.
CONFIG_COLUMNS = {
    "accumulation_steps": "train.accumulation_steps",
    "batch_size": "train.batch_size",
    "epochs": "train.epochs",
    "learning_rate": "optimizer.learning_rate",
    "scenario": "eval.scenario",
}
STRATEGY_ORDER = ["sequential", "replay", "ewc", "cross_shard", "joint"]
METRICS = ["acc", "forgetting", "bwt", "fwt"]


def find_runs(roots: list[Path]) -> tuple[list[Path], list[Path]]:
    """Complete run folders (with a summary) and incomplete ones (Hydra files, no summary)."""
    complete, incomplete = [], []
    for root in roots:
        marks = (SUMMARY, ".hydra")
        for folder in sorted({p.parent for p in root.rglob("*") if p.name in marks}):
            (complete if (folder / SUMMARY).exists() else incomplete).append(folder)
    return complete, incomplete


def runs_table(folders: list[Path]) -> tuple[pd.DataFrame, list[dict]]:
    """One row per finished run: status, identity, final metrics (none if diverged), timing."""
    rows, summaries = [], []
    for folder in folders:
        s = read_json(folder / SUMMARY)
        summaries.append(s)
        rows.append(
            {
                "run_id": s["run_id"],
                "status": s["status"],
                **{k: s[k] for k in GROUP},
                **{name: _select(s["config"], key) for name, key in CONFIG_COLUMNS.items()},
                "seed": s["seed"],
                **{k: s.get("metrics", {}).get(k) for k in METRICS},
                "train_seconds": s["timing"]["train_seconds"],
                "samples_per_second": s["timing"]["samples_per_second"],
                "path": str(folder),
            }
        )
    return pd.DataFrame(rows), summaries


def _select(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def group_keys(runs: pd.DataFrame) -> list[str]:
    """The summary table's grouping: dataset, strategy, remainder and any varying config value."""
    varying = [c for c in CONFIG_COLUMNS if c in runs and runs[c].nunique(dropna=False) > 1]
    return [*GROUP, *varying]


def mean_ci(values: pd.Series) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t confidence interval (NaN for one value)."""
    from scipy import stats

    v = values.dropna().to_numpy(dtype=float)
    if len(v) < 2:
        return (float(v.mean()) if len(v) else float("nan")), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over seeds of every metric, per (dataset, strategy, remainder)."""
    rows = []
    keys = group_keys(runs)
    for key, group in runs.groupby(keys, sort=True):
        row = dict(zip(keys, key, strict=True))
        row["seeds"] = len(group)
        for metric in METRICS:
            row[metric], row[f"{metric}_ci95"] = mean_ci(group[metric])
        rows.append(row)
    rank = {name: i for i, name in enumerate(STRATEGY_ORDER)}
    table = pd.DataFrame(rows)
    return table.sort_values(
        "strategy", key=lambda s: s.map(rank), kind="stable", ignore_index=True
    )


def markdown(table: pd.DataFrame) -> str:
    """The summary table as Markdown, ``mean ± ci`` per metric."""
    keys = [c for c in table.columns if c in GROUP or c in CONFIG_COLUMNS]
    head = [*keys, "seeds", *METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.itertuples(index=False):
        r = row._asdict()
        cells = [str(r[k]) for k in (*keys, "seeds")]
        for metric in METRICS:
            mean, ci = r[metric], r[f"{metric}_ci95"]
            cells.append(
                "n/a"
                if np.isnan(mean)
                else f"{mean:.3f}" + ("" if np.isnan(ci) else f" ± {ci:.3f}")
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure_tables(summaries: list[dict], curves: pd.DataFrame):
    """Seed-mean curves, phase spans and median onsets per strategy, for the comparison figure."""
    mean_curves = (
        curves.groupby(["strategy", "eval_shard", "samples_seen"], sort=False)["accuracy"]
        .mean()
        .reset_index()
    )
    phases = pd.concat(
        [pd.DataFrame(s["phases"]).assign(strategy=s["strategy"]) for s in summaries]
    ).drop_duplicates(["strategy", "phase"])
    onsets = pd.concat([pd.DataFrame(s["onset"]).assign(strategy=s["strategy"]) for s in summaries])
    onsets = (
        onsets.dropna(subset=["samples_seen"])
        .groupby(["strategy", "eval_shard"])["samples_seen"]
        .median()
        .reset_index()
    )
    return mean_curves, phases, onsets


def write_figures(
    table: pd.DataFrame,
    summaries: list[dict],
    curves: pd.DataFrame,
    out: Path,
    figure_copy: Path | None,
) -> list[Path]:
    """Writes the figures; ``figure_copy`` gets a copy of the first one.

    Seed-mean curve panels per strategy are drawn when nothing but the strategy varies (curves
    of different settings are not averaged together); the metric comparison always is, against
    the last varying setting, one series per value of the first.
    """
    varying = [c for c in group_keys(table) if table[c].nunique() > 1]
    figures = {}
    if varying in ([], ["strategy"]):
        mean_curves, phases, onsets = figure_tables(summaries, curves)
        figures["strategies"] = plot_strategy_panels(mean_curves, phases=phases, onsets=onsets)
    figures["metrics"] = plot_metric_comparison(
        table,
        metrics=["acc", "forgetting"],
        x=varying[-1] if varying else "strategy",
        hue=varying[0] if len(varying) > 1 else None,
    )
    written = []
    for name, fig in figures.items():
        written += save_figure(fig, out / name)
        if figure_copy is not None and name == next(iter(figures)):
            written += save_figure(fig, figure_copy)
        plt.close(fig)
    return written


def report(roots: list[Path], out: Path, figure_copy: Path | None = None) -> pd.DataFrame:
    """Writes runs, curves and summary tables and the comparison figure; returns the summary."""
    complete, incomplete = find_runs(roots)
    for folder in incomplete:
        print(f"[forgetbench-report] ignoring incomplete run (no {SUMMARY}): {folder}")
    if not complete:
        raise SystemExit(f"No completed run (folder with {SUMMARY}) under {roots}.")
    runs, summaries = runs_table(complete)
    rank = {name: i for i, name in enumerate(STRATEGY_ORDER)}
    order = sorted(
        range(len(runs)),
        key=lambda i: (rank.get(runs.strategy[i], len(rank)), runs.strategy[i], runs.seed[i]),
    )
    runs = runs.iloc[order].reset_index(drop=True)
    complete = [complete[i] for i in order]
    summaries = [summaries[i] for i in order]
    curves = pd.concat([pd.read_parquet(f / CURVES) for f in complete], ignore_index=True)
    diverged = runs[runs.status != "completed"]
    for row in diverged.itertuples():
        print(f"[forgetbench-report] {row.status} run, left out of the tables: {row.path}")
    completed = runs.status == "completed"
    if not completed.any():
        raise SystemExit(f"No run under {roots} completed; {len(diverged)} diverged.")
    summaries = [s for s, ok in zip(summaries, completed, strict=True) if ok]
    curves = curves[curves.run_id.isin(runs.run_id[completed])]
    table = summary_table(runs[completed])
    write_with(out / "runs.parquet", lambda p: runs.to_parquet(p, index=False))
    write_with(out / "runs.csv", lambda p: runs.to_csv(p, index=False))
    write_with(out / "curves.parquet", lambda p: curves.to_parquet(p, index=False))
    write_with(out / "summary.csv", lambda p: table.to_csv(p, index=False))
    write_with(out / "summary.md", lambda p: p.write_text(markdown(table)))
    written = write_figures(table, summaries, curves, out, figure_copy)
    print(markdown(table))
    print(
        f"[forgetbench-report] {len(complete)} runs -> tables in {out}; figures: "
        + ", ".join(str(p) for p in written)
    )
    return table


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="forgetbench-report", description=__doc__)
    parser.add_argument("roots", nargs="+", type=Path, help="sweep or run folders")
    parser.add_argument("--out", type=Path, help="output folder (default: FIRST_ROOT/report)")
    parser.add_argument(
        "--figure-copy", type=Path, help="also save the comparison figure at this path stem"
    )
    args = parser.parse_args(argv)
    report(args.roots, args.out or args.roots[0] / "report", args.figure_copy)


if __name__ == "__main__":
    sys.exit(main())
