"""``forgetbench-report``: aggregate run folders into tables and paper-ready figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pyarrow.parquet as pq
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from forgetbench.eval.summary import VALIDATION_PREFIX, test_curves
from forgetbench.plots.cd import plot_critical_difference
from forgetbench.plots.compare import FIGURE_METRICS, plot_metric_comparison
from forgetbench.plots.curves import plot_strategy_panels
from forgetbench.plots.heatmap import plot_accuracy_matrices
from forgetbench.plots.onset import plot_onsets
from forgetbench.plots.style import save_figure
from forgetbench.results import aggregate
from forgetbench.results.aggregate import mean_ci
from forgetbench.results.io import CURVES, SUMMARY, write_with
from forgetbench.results.paired import comparison_arms, paired_table, ranking_table
from forgetbench.results.run_files import read_summary
from forgetbench.results.tables import latex, markdown, paired_markdown
from forgetbench.run_folder import config_differences, setting_digest
from forgetbench.strategies.catalog import strategy_rank
from forgetbench.sweep import TRIAL, count_jobs

__all__ = ["latex", "load_tables", "make_figures", "markdown", "mean_ci", "report", "summary_table"]

GROUP = ["dataset", "strategy", "remainder"]
# Config values shown per run; those that vary within a report also split the summary table.
CONFIG_COLUMNS = {
    "accumulation_steps": "train.accumulation_steps",
    "batch_size": "train.batch_size",
    "epochs": "train.epochs",
    "learning_rate": "optimizer.learning_rate",
    "scenario": "eval.scenario",
}
# Per-run metrics from summary.json; a key no run has is left out of the tables (older runs
# lack the later ones). Figures show FIGURE_METRICS only.
TEST_METRICS = [
    "acc",
    "forgetting",
    "bwt",
    "fwt",
    "min_acc",
    "wc_acc",
    "acc_auc",
    "forgetting_last",
]
# The same metrics on the validation split (runs with data.validation_fraction > 0), prefixed.
METRICS = [*TEST_METRICS, *(f"{VALIDATION_PREFIX}{m}" for m in TEST_METRICS)]
# The data fingerprint of a run that recorded none (written before runs recorded one): such runs
# average with each other, never with runs of a recorded fingerprint.
UNRECORDED = "unrecorded"
OPTIONAL_TABLES = ("paired", "ranking")  # absent from reports written before them
# The parquet tables of a report folder, enough to redraw every figure.
TABLES = [
    "runs",
    "curves",
    "summary",
    "bands",
    "matrices",
    "onsets",
    "onset_summary",
    "phases",
    "paired",
    "ranking",
]


def find_runs(roots: list[Path]) -> tuple[list[Path], list[Path]]:
    """Complete run folders (with a summary) and incomplete ones (Hydra files, no summary)."""
    complete, incomplete = [], []
    for root in roots:
        marks = (SUMMARY, ".hydra")
        for folder in sorted({p.parent for p in root.rglob("*") if p.name in marks}):
            if (folder / SUMMARY).exists():
                complete.append(folder)
            elif not (folder / TRIAL).exists():  # a search trial's folder holds its seeds' runs
                incomplete.append(folder)
    return complete, incomplete


def readable_runs(folders: list[Path]) -> list[Path]:
    """The folders whose summary and curves read back; says which are left out and why."""
    kept = []
    for folder in folders:
        try:
            read_summary(folder)
            pq.read_metadata(folder / CURVES)
        except (OSError, ValueError) as exc:
            print(f"[forgetbench-report] unreadable run, left out: {folder}: {exc}")
            continue
        kept.append(folder)
    return kept


def expected_runs(roots: list[Path], found: list[Path]) -> None:
    """Says, for every sweep root with a ``multirun.yaml``, how many of its jobs finished."""
    for root in roots:
        grid = root / "multirun.yaml"
        if not grid.exists():
            continue
        sweep = OmegaConf.load(grid)
        if sweep.get("tuning") is not None:  # a search: trials are not a grid of runs
            continue
        total = count_jobs(sweep.hydra.overrides.task)
        done = sum(1 for f in found if f == root or root in f.parents)
        if done < total:
            print(
                f"[forgetbench-report] {root}: {done} of the sweep's {total} runs finished; "
                f"{total - done} missing (not run, unfinished or failed): the tables show "
                "fewer seeds or settings than the sweep asked for"
            )


def runs_table(folders: list[Path]) -> tuple[pd.DataFrame, list[dict]]:
    """One row per finished run: status, identity, final metrics (none if diverged), timing."""
    rows, summaries = [], []
    for folder in folders:
        s = read_summary(folder)  # either layout: tables beside it, or all inline
        summaries.append(s)
        rows.append(
            {
                "run_id": s["run_id"],
                "status": s["status"],
                **{k: s[k] for k in GROUP},
                **{name: _select(s["config"], key) for name, key in CONFIG_COLUMNS.items()},
                "seed": s["seed"],
                "setting": setting_digest(s["config"]),
                "data": (s.get("data") or {}).get("fingerprint") or UNRECORDED,
                **{k: (s.get("metrics") or {}).get(k) for k in METRICS},
                "train_seconds": s["timing"]["train_seconds"],
                "samples_per_second": s["timing"]["samples_per_second"],
                "path": str(folder),
            }
        )
    present = {k for s in summaries for k in (s.get("metrics") or {})}
    runs = pd.DataFrame(rows).drop(columns=[k for k in METRICS if k not in present])
    for k in METRICS:
        if k in runs:
            runs[k] = pd.to_numeric(runs[k], errors="coerce").astype(float)
    return runs, summaries


def _select(config: dict, dotted: str):
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def group_keys(runs: pd.DataFrame) -> list[str]:
    """The summary table's grouping: dataset, strategy, remainder and any varying config value.

    Runs that these columns do not tell apart but whose configs differ otherwise (another
    ``setting``), or that were made on different data (another ``data`` fingerprint), are
    never averaged together: ``data`` and ``setting`` join the keys then.
    """
    varying = [c for c in CONFIG_COLUMNS if c in runs and runs[c].nunique(dropna=False) > 1]
    keys = [*GROUP, *varying]
    if "data" in runs and (runs.groupby(keys, dropna=False)["data"].nunique() > 1).any():
        keys.append("data")
    if "setting" in runs and (runs.groupby(keys, dropna=False)["setting"].nunique() > 1).any():
        keys.append("setting")
    return keys


def distinct_runs(runs: pd.DataFrame, summaries: list[dict], folders: list[Path]) -> tuple:
    """Keeps the first folder of each run id (a run copied or repeated is one seed, not two).

    Returns:
        ``runs``, ``summaries`` and ``folders`` without the repeats.
    """
    first = ~runs["run_id"].duplicated()
    for row in runs[~first].itertuples():
        print(f"[forgetbench-report] repeat of run {row.run_id}, left out: {row.path}")
    keep = first.to_numpy()
    return (
        runs[keep].reset_index(drop=True),
        [s for s, k in zip(summaries, keep, strict=True) if k],
        [f for f, k in zip(folders, keep, strict=True) if k],
    )


def warn_mixed_settings(runs: pd.DataFrame, summaries: list[dict]) -> None:
    """Names the config keys that split runs the table columns alone do not tell apart."""
    keys = group_keys(runs)
    if "setting" not in keys:
        return
    config_of = {s["run_id"]: s["config"] for s in summaries}
    for _, group in runs.groupby(keys[:-1], dropna=False):  # "setting" is the last key
        settings = group.drop_duplicates("setting")
        if len(settings) > 1:
            a, b = (config_of[r] for r in settings["run_id"].iloc[:2])
            changes = "; ".join(config_differences(a, b, ignore=("seed",)))
            print(
                "[forgetbench-report] runs of "
                + ", ".join(f"{k}={group[k].iloc[0]}" for k in GROUP)
                + f" differ in other config values ({changes}): kept apart by the 'setting' column"
            )


def warn_mixed_data(runs: pd.DataFrame) -> None:
    """Names the runs of one setting that were made on different data (kept apart)."""
    keys = [k for k in group_keys(runs) if k not in ("data", "setting")]
    for _, group in runs.groupby(keys, dropna=False):
        if group["data"].nunique() > 1:
            seeds = group.groupby("data", sort=False)["seed"].apply(lambda s: sorted(s.tolist()))
            shown = ", ".join(f"{fp} (seeds {s})" for fp, s in seeds.items())
            print(
                "[forgetbench-report] runs of "
                + ", ".join(f"{k}={group[k].iloc[0]}" for k in GROUP)
                + f" were made on different data ({shown}): kept apart by the 'data' column, "
                "never averaged; re-run the old ones on the data as it is now"
            )


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over seeds of every metric present, per ``group_keys(runs)``."""
    return aggregate.summary_table(runs, group_keys(runs), METRICS)


def report_tables(runs: pd.DataFrame, summaries: list[dict], curves: pd.DataFrame) -> dict:
    """Every table of a report, keyed by file stem (see ``TABLES``).

    Args:
        runs: All finished runs (``runs_table``), diverged ones included.
        summaries: Their ``summary.json`` contents, in the same order.
        curves: The curves of the completed runs.
    """
    all_runs, completed = runs, (runs["status"] == "completed").to_numpy()
    runs = runs[completed].reset_index(drop=True)
    summaries = [s for s, ok in zip(summaries, completed, strict=True) if ok]
    keys = group_keys(runs)
    names = aggregate.eval_names(summaries)  # legend labels of the figures
    onsets = aggregate.with_names(aggregate.onsets_table(summaries, runs, keys), names)
    return {
        "runs": all_runs,
        "curves": curves,
        "summary": summary_table(runs),
        "bands": aggregate.with_names(aggregate.curve_bands(curves, runs, keys), names),
        "matrices": aggregate.matrices_table(summaries, runs, keys),
        "onsets": onsets,
        "onset_summary": aggregate.with_names(aggregate.onset_summary(onsets, keys), names),
        "phases": aggregate.phases_table(summaries, runs, keys),
        "paired": paired_table(*comparison_arms(runs, keys, list(CONFIG_COLUMNS))),
        "ranking": ranking_table(comparison_arms(runs, keys, list(CONFIG_COLUMNS))[0]),
    }


def load_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Reads a report folder's parquet tables back, keyed by file stem (see ``TABLES``)."""
    tables = {}
    for name in TABLES:  # a report written before a table existed lacks it
        path = Path(folder) / f"{name}.parquet"
        if path.exists() or name not in OPTIONAL_TABLES:
            tables[name] = pd.read_parquet(path)
    return tables


def make_figures(tables: dict[str, pd.DataFrame]) -> dict[str, Figure]:
    """The report's figures, drawn from its tables alone.

    The per-strategy figures (curve panels with seed bands, accuracy matrices, onsets) are
    drawn when nothing but the strategy varies: runs of different settings are not averaged
    together. The metric comparison always is, against the last varying setting, one series
    per value of the first.
    """
    summary = tables["summary"]
    varying = [c for c in summary.columns[: summary.columns.get_loc("seeds")]]
    varying = [c for c in varying if summary[c].nunique() > 1]
    figures = {}
    if varying in ([], ["strategy"]):
        figures["strategies"] = plot_strategy_panels(
            tables["bands"], phases=tables["phases"], onsets=tables["onset_summary"]
        )
        figures["matrices"] = plot_accuracy_matrices(tables["matrices"])
        if len(tables["onsets"]):
            figures["onsets"] = plot_onsets(tables["onsets"])
    if len(tables.get("ranking", [])):
        figures["critical_difference"] = plot_critical_difference(tables["ranking"])
    figures["metrics"] = plot_metric_comparison(
        summary,
        metrics=FIGURE_METRICS,
        by=varying[-1] if varying else "strategy",
        hue=varying[0] if len(varying) > 1 else None,
    )
    return figures


def write_figures(
    tables: dict[str, pd.DataFrame], out: Path, figure_copy: Path | None
) -> list[Path]:
    """Saves every figure as PDF and PNG in ``out``; ``figure_copy`` gets the first one too."""
    written = []
    for i, (name, fig) in enumerate(make_figures(tables).items()):
        written += save_figure(fig, out / name)
        if figure_copy is not None and i == 0:
            written += save_figure(fig, figure_copy)
        plt.close(fig)
    return written


def diverged_settings(runs: pd.DataFrame, summaries: list[dict]) -> list[str]:
    """One line per setting whose runs all diverged (the summary table has no row for it)."""
    keys = [k for k in group_keys(runs) if k != "setting"]
    why = {s["run_id"]: s.get("diverged") or {} for s in summaries}
    lines = []
    for _, group in runs.groupby(keys, dropna=False, sort=False):
        if (group["status"] == "completed").any():
            continue
        first = why.get(group["run_id"].iloc[0], {})
        reason = first.get("reason", "no reason recorded")
        lines.append(
            ", ".join(f"{k}={group[k].iloc[0]}" for k in keys)
            + f": all {len(group)} runs {'/'.join(sorted(set(group['status'])))} "
            + f"(seed {group['seed'].iloc[0]}: {reason} at step {first.get('step')})"
        )
    return lines


def _write_tables(
    tables: dict[str, pd.DataFrame], out: Path, notes: list[str] | None = None
) -> None:
    for name in TABLES:
        write_with(out / f"{name}.parquet", lambda p, t=tables[name]: t.to_parquet(p, index=False))
    write_with(out / "runs.csv", lambda p: tables["runs"].to_csv(p, index=False))
    summary = tables["summary"]
    write_with(out / "summary.csv", lambda p: summary.to_csv(p, index=False))
    text = markdown(summary)
    if notes:
        text += "\nNot in the table, as no run of these settings completed:\n\n"
        text += "".join(f"- {line}\n" for line in notes)
    write_with(out / "summary.md", lambda p: p.write_text(text))
    write_with(out / "summary.tex", lambda p: p.write_text(latex(summary)))
    write_with(out / "paired.md", lambda p: p.write_text(paired_markdown(tables["paired"])))


def report(roots: list[Path], out: Path, figure_copy: Path | None = None) -> pd.DataFrame:
    """Writes every table and figure of the runs below ``roots`` into ``out``; returns the summary.

    Args:
        roots: Sweep or run folders, searched recursively.
        out: The report folder.
        figure_copy: Optional path stem that also gets the first figure (PDF and PNG).
    """
    complete, incomplete = find_runs(roots)
    for folder in incomplete:
        print(f"[forgetbench-report] ignoring incomplete run (no {SUMMARY}): {folder}")
    complete = readable_runs(complete)
    expected_runs(roots, complete)
    if not complete:
        raise SystemExit(f"No completed run (folder with {SUMMARY}) under {roots}.")
    runs, summaries, complete = distinct_runs(*runs_table(complete), complete)
    warn_mixed_settings(runs, summaries)
    warn_mixed_data(runs)
    order = sorted(
        range(len(runs)),
        key=lambda i: (strategy_rank(runs.strategy[i]), runs.strategy[i], runs.seed[i]),
    )
    runs = runs.iloc[order].reset_index(drop=True)
    complete = [complete[i] for i in order]
    summaries = [summaries[i] for i in order]
    diverged = runs[runs.status != "completed"]
    for row in diverged.itertuples():
        print(f"[forgetbench-report] {row.status} run, left out of the tables: {row.path}")
    completed = runs.status == "completed"
    if not completed.any():
        raise SystemExit(f"No run under {roots} completed; {len(diverged)} diverged.")
    curves = pd.concat(  # the held-out (test) split's curves: what the figures show
        [
            test_curves(pd.read_parquet(f / CURVES))
            for f, ok in zip(complete, completed, strict=True)
            if ok
        ],
        ignore_index=True,
    )
    tables = report_tables(runs, summaries, curves)
    notes = diverged_settings(runs, summaries)
    for line in notes:
        print(f"[forgetbench-report] no run completed, left out of the tables: {line}")
    _write_tables(tables, out, notes)
    written = write_figures(tables, out, figure_copy)
    print(markdown(tables["summary"]))
    print(
        f"[forgetbench-report] {len(complete)} runs -> tables in {out}; figures: "
        + ", ".join(str(p) for p in written)
    )
    return tables["summary"]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="forgetbench-report", description=__doc__)
    parser.add_argument("roots", nargs="+", type=Path, help="sweep or run folders")
    parser.add_argument("--out", type=Path, help="output folder (default: FIRST_ROOT/report)")
    parser.add_argument(
        "--figure-copy", type=Path, help="also save the first figure at this path stem"
    )
    args = parser.parse_args(argv)
    report(args.roots, args.out or args.roots[0] / "report", args.figure_copy)


if __name__ == "__main__":
    sys.exit(main())
