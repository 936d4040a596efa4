"""Per-shard accuracy curves over samples seen, with seed bands, training spans and onsets."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from forgetbench.plots.style import (
    BAND_ALPHA,
    DOUBLE_COLUMN,
    SAMPLES_FORMAT,
    SINGLE_COLUMN,
    SPAN_ALPHA,
    color,
    legend_rows,
    panel_grid,
    paper_style,
)

XLABEL = "training samples seen"
YLABEL = "held-out accuracy"


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
        curves: Records with ``samples_seen``, ``eval_shard`` and ``accuracy``; with ``low``
            and ``high`` columns too, the band between them is shaded (e.g. over seeds).
        phases: Optional rows ``train_shard, start_samples, end_samples``: shaded spans where
            each shard was trained (``train_shard`` null rows are not shaded).
        onsets: Optional rows ``eval_shard, samples_seen``: forgetting onset markers (rows
            with a null ``samples_seen`` are not drawn).
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
                    alpha=SPAN_ALPHA,
                    lw=0,
                )
        banded = {"low", "high"} <= set(curves.columns)
        for shard, group in curves.groupby("eval_shard", sort=True):
            group = group.sort_values("samples_seen")
            if banded:
                ax.fill_between(
                    group["samples_seen"],
                    group["low"],
                    group["high"],
                    color=color(int(shard)),
                    alpha=BAND_ALPHA,
                    lw=0,
                )
            ax.plot(
                group["samples_seen"],
                group["accuracy"],
                color=color(int(shard)),
                label=f"shard {shard}",
            )
        if onsets is not None:
            for row in onsets.dropna(subset=["samples_seen"]).itertuples():
                c = color(int(row.eval_shard))
                ax.axvline(row.samples_seen, color=c, ls=":", lw=0.9)
                ax.plot([row.samples_seen], [0.0], marker="v", ms=5, color=c, clip_on=False)
        ax.set_ylim(0, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(SAMPLES_FORMAT)
        ax.set_xlabel(XLABEL)
        ax.set_ylabel(YLABEL)
        if title:
            ax.set_title(title)
        return ax.figure


def _subset(table: pd.DataFrame | None, by: str, value) -> pd.DataFrame | None:
    return None if table is None else table[table[by] == value]


def plot_strategy_panels(
    curves: pd.DataFrame,
    *,
    phases: pd.DataFrame | None = None,
    onsets: pd.DataFrame | None = None,
    by: str = "strategy",
    ncols: int | None = None,
    width: float = DOUBLE_COLUMN,
    axes=None,
) -> Figure:
    """Small multiples of per-shard curves, one panel per ``by`` value, shared axes.

    Args:
        curves: Per-shard curves with a ``by`` column, optionally banded (``low``, ``high``),
            e.g. the report's ``bands.parquet`` for one setting.
        phases: Optional phase spans with a ``by`` column.
        onsets: Optional onset markers with a ``by`` column (e.g. median onsets).
        by: Column whose values get one panel each, in order of appearance.
        ncols: Panels per row (default: all in one row at double-column width, two per row
            below it).
        width: Figure width in inches when ``axes`` is not given.
        axes: Optional axes, one per panel; a new figure with shared axes when ``None``.

    Returns:
        The figure holding the panels, with one shard legend above them (in the last panel
        when ``axes`` are given).
    """
    names = list(dict.fromkeys(curves[by]))
    with paper_style():
        own = axes is None
        if own:
            nrows, ncols = panel_grid(len(names), ncols, width)
            fig, grid = plt.subplots(
                nrows,
                ncols,
                figsize=(width, 0.55 + 1.75 * nrows),
                sharex=True,
                sharey=True,
                squeeze=False,
                layout="constrained",
            )
            axes = grid.ravel()
            for ax in axes[len(names) :]:
                ax.set_visible(False)
        axes = list(np.ravel(axes))
        for ax, name in zip(axes, names, strict=False):
            plot_shard_curves(
                curves[curves[by] == name],
                phases=_subset(phases, by, name),
                onsets=_subset(onsets, by, name),
                title=str(name),
                ax=ax,
            )
        fig = axes[0].figure
        if not own:
            axes[len(names) - 1].legend(frameon=False)
            return fig
        for i, ax in enumerate(axes[: len(names)]):
            ax.set_xlabel("")
            if i % ncols:
                ax.set_ylabel("")
            if i + ncols >= len(names):  # nothing below: show its tick labels
                ax.xaxis.set_tick_params(labelbottom=True)
        fig.supxlabel(XLABEL, fontsize=plt.rcParams["axes.labelsize"])
        handles, labels, ncol = legend_rows(
            *axes[0].get_legend_handles_labels(), max_cols=int(width / 0.75)
        )
        fig.legend(
            handles,
            labels,
            loc="outside upper center",
            ncol=ncol,
            frameon=False,
            handlelength=1.5,
            columnspacing=1.2,
        )
        return fig
