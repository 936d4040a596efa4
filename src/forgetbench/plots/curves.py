"""Per-shard accuracy curves over samples seen, with training spans and onset markers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from forgetbench.plots.style import DOUBLE_COLUMN, SINGLE_COLUMN, color, paper_style


def plot_shard_curves(
    curves: pd.DataFrame,
    *,
    phases: pd.DataFrame | None = None,
    onsets: pd.DataFrame | None = None,
    title: str | None = None,
    ax=None,
) -> Figure:
    """Plots one accuracy line per evaluated shard against real samples seen.

    Args:
        curves: Records with ``samples_seen``, ``eval_shard`` and ``accuracy``.
        phases: Optional rows ``train_shard, start_samples, end_samples``: shaded spans where
            each shard was trained (``train_shard`` null rows are not shaded).
        onsets: Optional rows ``eval_shard, samples_seen``: forgetting onset markers.
        title: Optional axis title.
        ax: Axis to draw on; a new single-column figure when ``None``.

    Returns:
        The figure holding the axis.
    """
    with paper_style():
        if ax is None:
            _, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.2))
        if phases is not None:
            for row in phases.dropna(subset=["train_shard"]).itertuples():
                ax.axvspan(
                    row.start_samples,
                    row.end_samples,
                    color=color(int(row.train_shard)),
                    alpha=0.08,
                    lw=0,
                )
        for shard, group in curves.groupby("eval_shard", sort=True):
            group = group.sort_values("samples_seen")
            ax.plot(
                group["samples_seen"],
                group["accuracy"],
                color=color(int(shard)),
                label=f"shard {shard}",
            )
        if onsets is not None:
            for row in onsets.dropna(subset=["samples_seen"]).itertuples():
                ax.axvline(row.samples_seen, color=color(int(row.eval_shard)), ls=":", lw=0.9)
                ax.plot([row.samples_seen], [0.02], marker="v", color=color(int(row.eval_shard)))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("training samples seen")
        ax.set_ylabel("held-out accuracy")
        if title:
            ax.set_title(title)
        return ax.figure


def plot_strategy_panels(
    curves: pd.DataFrame,
    *,
    phases: pd.DataFrame | None = None,
    onsets: pd.DataFrame | None = None,
) -> Figure:
    """Side-by-side per-shard curves, one panel per strategy, shared axes.

    Args:
        curves: Records of one run per strategy, with a ``strategy`` column.
        phases: Optional phase spans with a ``strategy`` column.
        onsets: Optional onset markers with a ``strategy`` column.
    """
    strategies = list(dict.fromkeys(curves["strategy"]))
    with paper_style():
        fig, axes = plt.subplots(
            1,
            len(strategies),
            figsize=(DOUBLE_COLUMN, 2.4),
            sharex=True,
            sharey=True,
            squeeze=False,
        )
        for ax, name in zip(axes[0], strategies, strict=True):
            plot_shard_curves(
                curves[curves["strategy"] == name],
                phases=None if phases is None else phases[phases["strategy"] == name],
                onsets=None if onsets is None else onsets[onsets["strategy"] == name],
                title=name,
                ax=ax,
            )
        for ax in axes[0][1:]:
            ax.set_ylabel("")
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=len(labels),
            frameon=False,
            bbox_to_anchor=(0.5, -0.02),
        )
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        return fig
