"""Aggregation over seeds: the summary table and the tables each report figure draws.

Every function takes per-run data (the runs table, run summaries, curves) and returns a tidy
DataFrame keyed by the report's grouping columns, so figures can be redrawn from the tables
alone. The plot functions compute nothing; everything they show is computed here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgetbench.strategies.catalog import strategy_rank


def mean_ci(values: pd.Series) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t confidence interval (NaN for one value)."""
    from scipy import stats

    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if len(v) < 2:
        return (float(v.mean()) if len(v) else float("nan")), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def order_strategies(table: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by the strategies' ``order`` (others last, stable otherwise)."""
    return table.sort_values(
        "strategy", key=lambda s: s.map(strategy_rank), kind="stable", ignore_index=True
    )


def summary_table(runs: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Mean and 95% CI over seeds of each metric, one row per value of ``keys``.

    Args:
        runs: One row per completed run, with ``keys`` and metric columns.
        keys: Grouping columns.
        metrics: Metric columns to summarise (those missing from ``runs`` are skipped).

    Returns:
        Rows ``*keys, seeds, METRIC, METRIC_ci95`` for every metric present.
    """
    metrics = [m for m in metrics if m in runs]
    rows = []
    for key, group in runs.groupby(keys, sort=True):
        row = dict(zip(keys, key, strict=True))
        row["seeds"] = len(group)
        for metric in metrics:
            row[metric], row[f"{metric}_ci95"] = mean_ci(group[metric])
        rows.append(row)
    return order_strategies(pd.DataFrame(rows))


def _identity(summary: dict, keys: list[str], runs: pd.DataFrame) -> dict:
    row = runs.loc[runs["run_id"] == summary["run_id"]].iloc[0]
    return {k: row[k] for k in keys}


def curve_bands(curves: pd.DataFrame, runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Seed-mean accuracy per shard over samples seen, with the min-max band over seeds.

    Each run's curve is put on the union of its group's evaluation points by linear
    interpolation in ``samples_seen`` (no extrapolation), so seeds whose evaluation points
    differ are still averaged point by point; where they coincide nothing is interpolated.

    Returns:
        Rows ``*keys, eval_shard, samples_seen, accuracy, low, high, seeds``.
    """
    labelled = curves.merge(runs[["run_id", *[k for k in keys if k not in curves]]], on="run_id")
    parts = []
    for key, group in labelled.groupby(keys, sort=False):
        wide = group.pivot_table(
            index="samples_seen", columns=["eval_shard", "run_id"], values="accuracy"
        )
        wide = wide.interpolate(method="index", limit_area="inside")
        stats = {
            "accuracy": wide.T.groupby(level="eval_shard").mean().T,
            "low": wide.T.groupby(level="eval_shard").min().T,
            "high": wide.T.groupby(level="eval_shard").max().T,
            "seeds": wide.T.groupby(level="eval_shard").count().T,
        }
        tidy = pd.concat({k: v.stack() for k, v in stats.items()}, axis=1).reset_index()
        parts.append(tidy.assign(**dict(zip(keys, key, strict=True))))
    out = pd.concat(parts, ignore_index=True)
    out["seeds"] = out["seeds"].astype(int)
    columns = [*keys, "eval_shard", "samples_seen", "accuracy", "low", "high", "seeds"]
    return order_strategies(out[columns].sort_values([*keys, "eval_shard", "samples_seen"]))


def matrices_table(summaries: list[dict], runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Seed-mean accuracy matrix ``R[phase, eval_shard]`` per group, in long form.

    Returns:
        Rows ``*keys, phase, eval_shard, accuracy, low, high, seeds`` (``low``/``high``: the
        minimum and maximum over seeds).
    """
    rows = []
    for s in summaries:
        R = np.asarray(s["accuracy_matrix"], dtype=float)
        ident = _identity(s, keys, runs)
        for (i, j), value in np.ndenumerate(R):
            rows.append({**ident, "phase": i, "eval_shard": j, "accuracy": value})
    long = pd.DataFrame(rows)
    out = (
        long.groupby([*keys, "phase", "eval_shard"], sort=True)["accuracy"]
        .agg(accuracy="mean", low="min", high="max", seeds="count")
        .reset_index()
    )
    return order_strategies(out)


def onsets_table(summaries: list[dict], runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Forgetting onset of each shard in each run; ``samples_seen`` NaN: never forgotten.

    Shards trained up to the end of the run (whose boundary is the last one) have no
    evaluation after their training and so no observable onset: they are left out.

    Returns:
        Rows ``*keys, seed, run_id, eval_shard, samples_seen, samples_to_forget, forgotten,
        total_samples``.
    """
    rows = []
    for s in summaries:
        ident = _identity(s, keys, runs)
        total = s["boundaries"][-1]
        for onset, boundary in zip(s["onset"], s["boundaries"], strict=True):
            if boundary >= total:
                continue
            rows.append(
                {
                    **ident,
                    "seed": s["seed"],
                    "run_id": s["run_id"],
                    "eval_shard": onset["eval_shard"],
                    "samples_seen": onset["samples_seen"],
                    "samples_to_forget": onset["samples_to_forget"],
                    "forgotten": onset["samples_seen"] is not None,
                    "total_samples": total,
                }
            )
    columns = [*keys, "seed", "run_id", "eval_shard", "samples_seen", "samples_to_forget"]
    out = pd.DataFrame(rows, columns=[*columns, "forgotten", "total_samples"])  # maybe none
    for column in ("samples_seen", "samples_to_forget"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return order_strategies(out)


def onset_summary(onsets: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Median onset over the seeds where it happened, and how many seeds that was.

    Returns:
        Rows ``*keys, eval_shard, samples_seen, forgotten, seeds``; ``samples_seen`` is NaN
        where no seed forgot the shard.
    """
    out = (
        onsets.groupby([*keys, "eval_shard"], sort=True)
        .agg(
            samples_seen=("samples_seen", "median"),
            forgotten=("forgotten", "sum"),
            seeds=("forgotten", "size"),
        )
        .reset_index()
    )
    return order_strategies(out)


def phases_table(summaries: list[dict], runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Training spans of each phase per group (the first run's; seeds share them).

    Returns:
        Rows ``*keys, phase, train_shard, start_samples, end_samples``; ``train_shard`` is
        null for mixed and joint feeds.
    """
    parts = [
        pd.DataFrame(s["phases"]).assign(**_identity(s, keys, runs))
        for s in summaries
        if s.get("phases")
    ]
    out = pd.concat(parts, ignore_index=True).drop_duplicates([*keys, "phase"])
    out["train_shard"] = out["train_shard"].astype("Int64")
    columns = [*keys, "phase", "train_shard", "start_samples", "end_samples"]
    return order_strategies(out[columns])


def eval_names(summaries: list[dict]) -> list[str] | None:
    """Name of each evaluated shard or group, when every run agrees on them (else ``None``).

    Evaluation group names when the summary has them, else the shard names (run folders
    written before groups existed).
    """
    found = []
    for s in summaries:
        groups = s.get("groups") or {}
        found.append(groups.get("names") or (s.get("shards") or {}).get("names"))
    if not found or found[0] is None or any(f != found[0] for f in found):
        return None
    return list(found[0])


def with_names(table: pd.DataFrame, names: list[str] | None) -> pd.DataFrame:
    """``table`` with a ``name`` column from its ``eval_shard`` (unchanged without names)."""
    if names is None or "eval_shard" not in table or table.empty:
        return table
    index = table["eval_shard"].astype(int)
    return table.assign(name=[names[i] if 0 <= i < len(names) else str(i) for i in index])
