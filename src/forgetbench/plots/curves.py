"""Per-shard accuracy curves over samples seen, with seed bands, training spans and onsets.

Up to ``LINE_LIMIT`` shards (or groups) are drawn as lines in colours that do not repeat within
the figure, named in a legend that also explains the marks (seed band, training spans, onset
markers). More become a heatmap: one row per shard or group, samples seen across, colour =
accuracy, phase boundaries as thin lines and onsets as markers.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from forgetbench.plots.style import (
    BAND_ALPHA,
    CMAP,
    DOUBLE_COLUMN,
    LINE_LIMIT,
    MUTED,
    SAMPLES_FORMAT,
    SINGLE_COLUMN,
    SPAN_ALPHA,
    colors,
    legend_columns,
    legend_rows,
    panel_grid,
    paper_style,
    series_label,
)

XLABEL = "training samples seen"
YLABEL = "held-out accuracy"


def key_handles(*, band: bool, spans: bool, onsets: bool, heatmap: bool = False) -> list:
    """Legend entries explaining the marks a curve figure uses."""
    handles = []
    if band and not heatmap:
        handles.append(Patch(color=MUTED, alpha=BAND_ALPHA * 2, lw=0, label="seed range"))
    if spans:
        label = "phase boundary" if heatmap else "training span"
        handles.append(
            Line2D([], [], color="white", lw=0.8, label=label)
            if heatmap
            else Patch(color=MUTED, alpha=SPAN_ALPHA * 3, lw=0, label=label)
        )
    if onsets:
        handles.append(
            Line2D(
                [],
                [],
                color=MUTED,
                ls="" if heatmap else ":",
                marker="v",
                ms=4,
                label="forgetting onset",
            )
        )
    if heatmap:  # the phase-boundary line is white: give it a visible edge in the key
        for h in handles:
            if isinstance(h, Line2D) and h.get_label() == "phase boundary":
                h.set_color(MUTED)
    return handles


def _names(curves: pd.DataFrame, names):
    if names is not None or "name" not in curves:
        return names
    pairs = curves[["eval_shard", "name"]].drop_duplicates("eval_shard")
    top = int(pairs["eval_shard"].max()) + 1 if len(pairs) else 0
    out = [str(i) for i in range(top)]
    for shard, name in pairs.itertuples(index=False):
        out[int(shard)] = str(name)
    return out


def _heatmap(ax, curves, phases, onsets, names):
    grid = curves.pivot_table(index="eval_shard", columns="samples_seen", values="accuracy")
    x = grid.columns.to_numpy(float)
    edges = np.concatenate([[x[0]], (x[1:] + x[:-1]) / 2, [x[-1]]]) if len(x) > 1 else x
    rows = np.arange(len(grid) + 1) - 0.5
    mesh = ax.pcolormesh(
        edges if len(x) > 1 else [x[0] - 0.5, x[0] + 0.5],
        rows,
        np.ma.masked_invalid(grid.to_numpy()),
        cmap=CMAP,
        vmin=0,
        vmax=1,
        rasterized=grid.size > 20_000,
    )
    if phases is not None:
        ends = phases.dropna(subset=["train_shard"])["end_samples"].to_numpy(float)
        step = max(1, -(-len(ends) // 60))  # at most about 60 lines: the colours stay visible
        ax.vlines(ends[:-1:step], -0.5, len(grid) - 0.5, color="white", lw=0.5, alpha=0.8)
    if onsets is not None:
        found = onsets.dropna(subset=["samples_seen"])
        index = {s: i for i, s in enumerate(grid.index)}
        y = [index.get(s, np.nan) for s in found["eval_shard"]]
        ax.plot(
            found["samples_seen"], y, ls="", marker="v", ms=3, mfc="white", mec="black", mew=0.4
        )
    ax.set_ylim(len(grid) - 0.5, -0.5)
    # Ticks spaced by the drawn axis height (``auto``), each labelled with its row's name.
    ax.yaxis.set_major_locator(MaxNLocator("auto", integer=True))
    labels = [series_label(s, names) for s in grid.index]
    ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _: labels[int(v)] if 0 <= v < len(labels) and v == int(v) else "")
    )
    ax.tick_params(axis="y", length=0)
    return mesh


def plot_shard_curves(
    curves: pd.DataFrame,
    *,
    phases: pd.DataFrame | None = None,
    onsets: pd.DataFrame | None = None,
    title: str | None = None,
    names=None,
    ax=None,
    width: float = SINGLE_COLUMN,
) -> Figure:
    """Plots one accuracy line per evaluated shard (or group) against real samples seen.

    Args:
        curves: Records with ``samples_seen``, ``eval_shard`` and ``accuracy``; with ``low``
            and ``high`` columns too, the band between them is shaded (e.g. over seeds); a
            ``name`` column names the series.
        phases: Optional rows ``train_shard, start_samples, end_samples``: shaded spans where
            each shard was trained (``train_shard`` null rows are not shaded).
        onsets: Optional rows ``eval_shard, samples_seen``: forgetting onset markers (rows
            with a null ``samples_seen`` are not drawn).
        title: Optional axis title.
        names: Name of each ``eval_shard`` (legend labels); default the ``name`` column, else
            ``shard N``.
        ax: Axis to draw on; a new figure of ``width`` inches with its legend (or colour bar)
            and key when ``None``.
        width: Width of a new figure, in inches.

    Returns:
        The figure holding the axis.
    """
    names = _names(curves, names)
    shards = sorted(curves["eval_shard"].unique())
    heatmap = len(shards) > LINE_LIMIT
    with paper_style():
        own = ax is None
        if own:
            _, ax = plt.subplots(figsize=(width, 2.4), layout="constrained")
        if heatmap:
            mesh = _heatmap(ax, curves, phases, onsets, names)
        else:
            palette = dict(zip(shards, colors(len(shards)), strict=True))
            _lines(ax, curves, phases, onsets, names, palette)
        ax.xaxis.set_major_locator(MaxNLocator("auto", steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(SAMPLES_FORMAT)
        ax.set_xlabel(XLABEL)
        ax.set_ylabel("shard or group" if heatmap else YLABEL)
        if title:
            ax.set_title(title)
        if own:
            fig = ax.figure
            keys = key_handles(
                band={"low", "high"} <= set(curves.columns),
                spans=phases is not None and phases["train_shard"].notna().any(),
                onsets=onsets is not None and onsets["samples_seen"].notna().any(),
                heatmap=heatmap,
            )
            if heatmap:
                fig.colorbar(mesh, ax=ax, label="accuracy", aspect=15, pad=0.02)
                handles, labels = keys, [h.get_label() for h in keys]
            else:
                handles, labels = ax.get_legend_handles_labels()
                handles, labels = handles + keys, labels + [h.get_label() for h in keys]
            _legend(fig, handles, labels, width)
        return ax.figure


def _lines(ax, curves, phases, onsets, names, palette) -> None:
    if phases is not None:
        for row in phases.dropna(subset=["train_shard"]).itertuples():
            ax.axvspan(
                row.start_samples,
                row.end_samples,
                color=palette.get(row.train_shard, MUTED),
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
                color=palette[shard],
                alpha=BAND_ALPHA,
                lw=0,
            )
        ax.plot(
            group["samples_seen"],
            group["accuracy"],
            color=palette[shard],
            label=series_label(shard, names),
        )
    if onsets is not None:
        for row in onsets.dropna(subset=["samples_seen"]).itertuples():
            c = palette.get(row.eval_shard, MUTED)
            ax.axvline(row.samples_seen, color=c, ls=":", lw=0.9)
            ax.plot([row.samples_seen], [0.0], marker="v", ms=5, color=c, clip_on=False)
    ax.set_ylim(0, 1.02)


def _legend(fig, handles, labels, width: float) -> None:
    if not handles:
        return
    handles, labels, ncol = legend_rows(handles, labels, legend_columns(labels, width))
    fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncol=ncol,
        frameon=False,
        handlelength=1.5,
        columnspacing=1.0,
    )


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
    names=None,
    axes=None,
) -> Figure:
    """Small multiples of per-shard curves, one panel per ``by`` value, shared axes.

    Args:
        curves: Per-shard curves with a ``by`` column, optionally banded (``low``, ``high``)
            and named (``name``), e.g. the report's ``bands.parquet`` for one setting.
        phases: Optional phase spans with a ``by`` column.
        onsets: Optional onset markers with a ``by`` column (e.g. median onsets).
        by: Column whose values get one panel each, in order of appearance.
        ncols: Panels per row (default: all in one row at double-column width, two per row
            below it).
        width: Figure width in inches when ``axes`` is not given.
        names: Name of each ``eval_shard``; default the ``name`` column, else ``shard N``.
        axes: Optional axes, one per panel; a new figure with shared axes when ``None``.

    Returns:
        The figure holding the panels, with one legend above them naming the shards (or
        groups) and explaining the marks, or a colour bar for heatmap panels (in the last
        panel when ``axes`` are given).
    """
    panels = list(dict.fromkeys(curves[by]))
    names = _names(curves, names)
    heatmap = curves["eval_shard"].nunique() > LINE_LIMIT
    with paper_style():
        own = axes is None
        if own:
            nrows, ncols = panel_grid(len(panels), ncols, width)
            fig, grid = plt.subplots(
                nrows,
                ncols,
                figsize=(width, 0.8 + 1.9 * nrows),
                sharex=True,
                sharey=True,
                squeeze=False,
                layout="constrained",
            )
            axes = grid.ravel()
            for ax in axes[len(panels) :]:
                ax.set_visible(False)
        axes = list(np.ravel(axes))
        for ax, name in zip(axes, panels, strict=False):
            plot_shard_curves(
                curves[curves[by] == name],
                phases=_subset(phases, by, name),
                onsets=_subset(onsets, by, name),
                title=str(name),
                names=names,
                ax=ax,
            )
        fig = axes[0].figure
        keys = key_handles(
            band={"low", "high"} <= set(curves.columns),
            spans=phases is not None and phases["train_shard"].notna().any(),
            onsets=onsets is not None and onsets["samples_seen"].notna().any(),
            heatmap=heatmap,
        )
        handles, labels = ([], []) if heatmap else axes[0].get_legend_handles_labels()
        handles, labels = handles + keys, labels + [h.get_label() for h in keys]
        if heatmap:
            fig.colorbar(
                axes[0].collections[0], ax=axes[: len(panels)], label="accuracy", aspect=15
            )
        if not own:
            axes[len(panels) - 1].legend(handles, labels, frameon=False)
            return fig
        for i, ax in enumerate(axes[: len(panels)]):
            ax.set_xlabel("")
            if i % ncols:
                ax.set_ylabel("")
            if i + ncols >= len(panels):  # nothing below: show its tick labels
                ax.xaxis.set_tick_params(labelbottom=True)
        fig.supxlabel(XLABEL, fontsize=plt.rcParams["axes.labelsize"])
        _legend(fig, handles, labels, width)
        return fig
