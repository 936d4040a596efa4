"""Accuracy matrices ``R[phase, shard]`` as annotated heatmaps on one colour scale."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from forgetbench.plots.style import (
    CMAP,
    DOUBLE_COLUMN,
    LINE_LIMIT,
    SINGLE_COLUMN,
    panel_grid,
    paper_style,
)

XLABEL = "evaluated shard"
YLABEL = "after phase"


def plot_accuracy_matrix(
    matrix: pd.DataFrame,
    *,
    vmin: float = 0.0,
    vmax: float = 1.0,
    annotate: bool = True,
    fontsize: float | None = None,
    title: str | None = None,
    ax=None,
) -> Figure:
    """One accuracy matrix as a heatmap, rows = phases, columns = evaluated shards.

    Args:
        matrix: Rows ``phase, eval_shard, accuracy`` (one setting of ``matrices.parquet``).
        vmin: Accuracy at the bottom of the colour scale.
        vmax: Accuracy at the top of the colour scale.
        annotate: Write each cell's value (two decimals) in it (up to ``LINE_LIMIT`` rows and
            columns).
        fontsize: Size of those values in points (default: from the number of shards).
        title: Optional axis title.
        ax: Axis to draw on; a new single-column figure when ``None``.

    Returns:
        The figure holding the axis; the cells are ``ax.collections[0]`` (a ``QuadMesh``, for
        a colour bar).
    """
    grid = matrix.pivot(index="phase", columns="eval_shard", values="accuracy").sort_index()
    grid = grid.reindex(sorted(grid.columns), axis=1)
    norm = Normalize(vmin, vmax)
    with paper_style():
        if ax is None:
            _, ax = plt.subplots(figsize=(SINGLE_COLUMN * 0.7, SINGLE_COLUMN * 0.6))
        rows, cols = grid.shape
        # Rectangles, not an image: stays vector in PDF (viewers blur small embedded images).
        mesh = ax.pcolormesh(
            np.arange(cols + 1) - 0.5,
            np.arange(rows + 1) - 0.5,
            np.ma.masked_invalid(grid.to_numpy()),
            cmap=CMAP,
            norm=norm,
            rasterized=grid.size > 20_000,  # a vector PDF of millions of cells is unusable
        )
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)
        ax.set_aspect("equal")
        if annotate and max(grid.shape) <= LINE_LIMIT:
            cmap = mesh.get_cmap()
            size = fontsize or min(6.0, 30.0 / max(grid.shape))
            for (i, j), value in np.ndenumerate(grid.to_numpy()):
                if np.isnan(value):
                    continue
                r, g, b, _ = cmap(norm(value))
                ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                text = f"{value:.2f}".replace("0.", ".", 1) if value < 1 else f"{value:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color=ink)
        if max(grid.shape) <= LINE_LIMIT:  # every row and column labelled
            ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
            ax.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index])
        else:  # ticks spaced by the drawn size
            ax.xaxis.set_major_locator(MaxNLocator("auto", integer=True))
            ax.yaxis.set_major_locator(MaxNLocator("auto", integer=True))
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel(XLABEL)
        ax.set_ylabel(YLABEL)
        if title:
            ax.set_title(title)
        return ax.figure


def plot_accuracy_matrices(
    matrices: pd.DataFrame,
    *,
    by: str = "strategy",
    ncols: int | None = None,
    width: float = DOUBLE_COLUMN,
    annotate: bool = True,
    axes=None,
) -> Figure:
    """One small accuracy-matrix heatmap per ``by`` value, one shared colour scale and bar.

    Args:
        matrices: Rows ``by, phase, eval_shard, accuracy`` (e.g. ``matrices.parquet`` for one
            setting, seed means).
        by: Column whose values get one heatmap each, in order of appearance.
        ncols: Heatmaps per row (default: all in one row at double-column width, two per
            row below it).
        width: Figure width in inches when ``axes`` is not given.
        annotate: Write each cell's value in it.
        axes: Optional axes, one per heatmap.

    Returns:
        The figure holding the heatmaps and a colour bar (0 to 1).
    """
    names = list(dict.fromkeys(matrices[by]))
    with paper_style():
        own = axes is None
        if own:
            nrows, ncols = panel_grid(len(names), ncols, width)
            side = min((width - 0.6) / ncols, 2.0)
            shards = matrices["eval_shard"].nunique()
            fontsize = float(np.clip(72 * 0.75 * side / shards * 0.42, 3.5, 6.5))
            fig, grid = plt.subplots(
                nrows,
                ncols,
                figsize=(width, side * nrows + 0.35),
                squeeze=False,
                layout="constrained",
            )
            axes = grid.ravel()
            for ax in axes[len(names) :]:
                ax.set_visible(False)
        else:
            fontsize, nrows = None, 1
        axes = list(np.ravel(axes))
        for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
            plot_accuracy_matrix(
                matrices[matrices[by] == name],
                annotate=annotate,
                fontsize=fontsize,
                title=str(name),
                ax=ax,
            )
            if own:
                ax.set_xlabel("")
                if i % ncols:
                    ax.set_ylabel("")
        fig = axes[0].figure
        if own:
            fig.supxlabel(XLABEL, fontsize=plt.rcParams["axes.labelsize"])
        fig.colorbar(
            axes[0].collections[0],
            ax=axes[: len(names)],
            label="accuracy",
            shrink=0.8 if nrows == 1 else 0.5,
            aspect=15,
            pad=0.02,
        )
        return fig
