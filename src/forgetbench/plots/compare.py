"""Final metrics compared across settings, with confidence intervals over seeds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forgetbench.plots.style import (
    DOUBLE_COLUMN,
    MUTED,
    color,
    legend_rows,
    marker,
    paper_style,
)

FIGURE_METRICS = ["acc", "forgetting", "bwt"]
# Panel titles; the arrow says which direction is better.
LABELS = {
    "acc": "ACC (↑)",
    "forgetting": "forgetting (↓)",
    "bwt": "BWT (↑)",
    "fwt": "FWT (↑)",
    "min_acc": "min-ACC (↑)",
    "wc_acc": "WC-ACC (↑)",
    "acc_auc": "accuracy AUC (↑)",
    "forgetting_last": "forgetting since learned (↓)",
}
SIGNED = {"forgetting", "bwt", "fwt", "forgetting_last"}  # a zero line helps reading these


def plot_metric_comparison(
    table: pd.DataFrame,
    *,
    metrics: list[str] | None = None,
    by: str = "strategy",
    hue: str | None = None,
    width: float = DOUBLE_COLUMN,
    axes=None,
) -> Figure:
    """Mean and 95% CI of each metric, one row per ``by`` value, one panel per metric.

    A forest plot: rows (shared by the panels) are the values of ``by`` top to bottom, dots
    the means over seeds, bars the confidence intervals (none for a single seed).

    Args:
        table: Summary rows with ``METRIC`` and ``METRIC_ci95`` columns (``summary.parquet``).
        metrics: Metrics to show, one panel each (default: ACC, forgetting, BWT).
        by: Column whose values get one row each, in order of appearance.
        hue: Optional column whose values get one series each (colour and marker), offset
            within each row.
        width: Figure width in inches when ``axes`` is not given.
        axes: Optional sequence of axes, one per metric.

    Returns:
        The figure holding the panels.
    """
    metrics = list(metrics or FIGURE_METRICS)
    categories = list(dict.fromkeys(table[by]))
    series = list(dict.fromkeys(table[hue])) if hue else [None]
    with paper_style():
        own = axes is None
        if own:
            height = 0.6 + 0.2 * len(categories) * (1 + 0.4 * (len(series) - 1))
            _, axes = plt.subplots(
                1,
                len(metrics),
                figsize=(width, max(height, 1.4)),
                sharey=True,
                squeeze=False,
                layout="constrained",
            )
        axes = list(np.ravel(axes))
        step = 0.6 / len(series)
        for ax, metric in zip(axes, metrics, strict=True):
            if metric in SIGNED:
                ax.axvline(0, color=MUTED, lw=0.6, ls="--", zorder=0)
            for i, value in enumerate(series):
                rows = table if value is None else table[table[hue] == value]
                rows = rows.set_index(by).reindex(categories)
                pos = np.arange(len(categories)) + (i - (len(series) - 1) / 2) * step
                ax.errorbar(
                    rows[metric],
                    pos,
                    xerr=rows[f"{metric}_ci95"].fillna(0),
                    fmt=marker(i),
                    ms=3.5,
                    capsize=2,
                    elinewidth=0.9,
                    color=color(i),
                    label=None if value is None else str(value),
                )
            ax.set_yticks(np.arange(len(categories)), [str(c) for c in categories])
            ax.set_ylim(len(categories) - 0.5, -0.5)
            ax.tick_params(axis="y", length=0)
            ax.grid(axis="x", color="0.92", lw=0.5)
            ax.set_axisbelow(True)
            ax.set_title(LABELS.get(metric, metric))
        axes[0].set_ylabel(by.replace("_", " "))
        if hue and own and width < DOUBLE_COLUMN:  # narrow: the legend goes on top
            handles, labels, ncol = legend_rows(
                *axes[0].get_legend_handles_labels(), max_cols=int(width / 0.8)
            )
            axes[0].figure.legend(
                handles,
                labels,
                title=hue.replace("_", " "),
                loc="outside upper center",
                ncol=ncol,
                frameon=False,
            )
        elif hue:
            axes[-1].legend(
                title=hue.replace("_", " "),
                frameon=False,
                loc="center left",
                bbox_to_anchor=(1.0, 0.5),
            )
        return axes[0].figure
