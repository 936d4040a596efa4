"""Final metrics compared across settings, with confidence intervals over seeds."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forgetbench.plots.style import DOUBLE_COLUMN, color, paper_style

LABELS = {"acc": "final accuracy (ACC)", "forgetting": "forgetting", "bwt": "BWT", "fwt": "FWT"}


def plot_metric_comparison(
    table: pd.DataFrame, *, metrics: list[str], x: str, hue: str | None = None, axes=None
) -> Figure:
    """Mean and 95% CI of each metric against ``x``, one series per ``hue`` value.

    Args:
        table: Summary rows with ``METRIC`` and ``METRIC_ci95`` columns (``forgetbench-report``).
        metrics: Metrics to show, one panel each.
        x: Column on the horizontal axis (categorical).
        hue: Optional column whose values get one series each.
        axes: Optional sequence of axes, one per metric.
    """
    with paper_style():
        if axes is None:
            fig, axes = plt.subplots(1, len(metrics), figsize=(DOUBLE_COLUMN, 2.3), squeeze=False)
            axes = axes[0]
        categories = list(dict.fromkeys(table[x]))
        series = list(dict.fromkeys(table[hue])) if hue else [None]
        width = 0.8 / len(series)
        for ax, metric in zip(axes, metrics, strict=True):
            for i, value in enumerate(series):
                rows = table if value is None else table[table[hue] == value]
                rows = rows.set_index(x).reindex(categories)
                pos = np.arange(len(categories)) + (i - (len(series) - 1) / 2) * width
                ax.errorbar(
                    pos,
                    rows[metric],
                    yerr=rows[f"{metric}_ci95"].fillna(0),
                    fmt="o",
                    ms=3.5,
                    capsize=2,
                    color=color(i),
                    label=None if value is None else str(value),
                )
            ax.set_xticks(np.arange(len(categories)), [str(c) for c in categories])
            ax.set_xlabel(x.replace("_", " "))
            ax.set_ylabel(LABELS.get(metric, metric))
        if hue:
            axes[0].legend(title=hue, frameon=False)
        fig = axes[0].figure
        fig.tight_layout()
        return fig
