"""Critical-difference diagram: mean ranks over datasets, joined where Nemenyi cannot tell."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forgetbench.plots.style import DOUBLE_COLUMN, MUTED, color, paper_style


def cliques(ranks: pd.Series, cd: float) -> list[tuple[float, float]]:
    """Maximal runs of strategies (sorted by rank) whose ranks lie within ``cd`` of each other."""
    values = np.sort(ranks.to_numpy(dtype=float))
    spans = []
    for i in range(len(values)):
        j = int(np.searchsorted(values, values[i] + cd, side="right")) - 1
        if j > i and not any(lo <= values[i] and values[j] <= hi for lo, hi in spans):
            spans.append((float(values[i]), float(values[j])))
    return spans


def plot_critical_difference(table: pd.DataFrame, *, metric: str = "acc") -> Figure:
    """Mean ranks of one metric's ``ranking_table`` rows, with the critical difference.

    Strategies are ticks on the rank axis (1 = best, left); a bar shows the critical difference
    and thick lines join strategies whose mean ranks differ by less than it.
    """
    rows = table[table["metric"] == metric].sort_values("mean_rank")
    ranks = rows.set_index("strategy")["mean_rank"]
    cd = float(rows["cd"].iloc[0])
    k = len(ranks)
    with paper_style():
        fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN, 1.0 + 0.28 * k), layout="constrained")
        ax.set_xlim(1, max(k, 2))
        ax.set_ylim(-(k + 1), 2)
        ax.yaxis.set_visible(False)
        for side in ("left", "right", "bottom"):
            ax.spines[side].set_visible(False)
        ax.xaxis.set_ticks_position("top")
        ax.set_xlabel(f"mean rank of {metric} over {int(rows['blocks'].iloc[0])} datasets")
        ax.xaxis.set_label_position("top")
        for i, (name, rank) in enumerate(ranks.items()):
            y = -(i + 1)
            ax.plot([rank, rank], [0, y], color=color(i), lw=1)
            ax.plot([rank], [0], "o", color=color(i), ms=4)
            ax.text(rank, y - 0.15, f"{name} ({rank:.2f})", ha="center", va="top", fontsize=7)
        ax.plot([1, 1 + cd], [1.2, 1.2], color="k", lw=1.5)
        ax.text(1 + cd / 2, 1.35, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=7)
        for n, (lo, hi) in enumerate(cliques(ranks, cd)):
            ax.plot([lo, hi], [0.35 + 0.25 * n] * 2, color=MUTED, lw=3, solid_capstyle="round")
        p = rows["friedman_p"].iloc[0]
        ax.set_title(f"Friedman p = {p:.3g}", loc="right", fontsize=7)
    return fig
