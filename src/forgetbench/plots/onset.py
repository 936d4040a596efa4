"""Forgetting onset per shard and strategy: a dot plot with one dot per seed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from forgetbench.plots.style import (
    CMAP,
    LINE_LIMIT,
    MUTED,
    SAMPLES_FORMAT,
    SINGLE_COLUMN,
    colors,
    legend_columns,
    legend_rows,
    marker,
    paper_style,
    series_label,
)

NEVER_GAP = 0.07  # the "never" column sits this fraction of the x range beyond the last sample


def plot_onsets(
    onsets: pd.DataFrame,
    *,
    by: str = "strategy",
    shard_names=None,
    width: float = SINGLE_COLUMN,
    ax=None,
) -> Figure:
    """Samples seen at each shard's forgetting onset, one row per ``by`` value, one dot per run.

    Shards are told apart by colour and marker (the colours of the curve figures) and offset
    within a row; dots of the same shard are spread slightly by seed. Runs where a shard was
    never forgotten are drawn hollow in a separate "never" column right of the x range. Above
    ``LINE_LIMIT`` shards, colours follow the training order along a colour bar instead of a
    legend.

    Args:
        onsets: Rows ``by, seed, eval_shard, samples_seen`` (NaN: never forgotten), optionally
            ``total_samples`` (where the x range ends), e.g. ``onsets.parquet``.
        by: Column whose values get one row each, top to bottom in order of appearance.
        shard_names: Name of each ``eval_shard`` (legend labels); default the ``name`` column, else
            ``shard N``.
        width: Width of a new figure, in inches.
        ax: Axis to draw on; a new figure when ``None``.

    Returns:
        The figure holding the axis.
    """
    names = list(dict.fromkeys(onsets[by]))
    shards = sorted(onsets["eval_shard"].unique())
    seeds = sorted(onsets["seed"].unique()) if "seed" in onsets else [None]
    finite = onsets["samples_seen"].dropna()
    end = onsets["total_samples"].max() if "total_samples" in onsets else finite.max()
    end = float(end) if np.isfinite(end) else 1.0
    never = end * (1 + NEVER_GAP)
    band = 0.7 / max(len(shards), 1)
    if shard_names is None and "name" in onsets:
        shard_names = dict(zip(onsets["eval_shard"], onsets["name"], strict=True))
    many = len(shards) > LINE_LIMIT
    palette = [] if many else colors(len(shards))
    with paper_style():
        own = ax is None
        if own:
            _, ax = plt.subplots(figsize=(width, 1.1 + 0.45 * len(names)), layout="constrained")
        rank = {v: i for i, v in enumerate(seeds)}
        row_of = {n: i for i, n in enumerate(names)}

        def place(rows: pd.DataFrame, s: np.ndarray):
            """Positions of each run's dot (never-forgotten runs in the "never" column)."""
            spread = np.zeros(len(rows))
            if "seed" in rows and len(seeds) > 1:
                spread = rows["seed"].map(rank).to_numpy(float) / (len(seeds) - 1) - 0.5
            y = rows[by].map(row_of).to_numpy(float)
            y = y + (s - (len(shards) - 1) / 2) * band + spread * band * 0.6
            x = rows["samples_seen"].to_numpy(float, copy=True)
            gone = ~np.isnan(x)
            x[~gone] = never + spread[~gone] * end * NEVER_GAP * 0.8
            return x, y, gone

        if many:  # one colour per shard along the colour map: two scatter calls in all
            s = onsets["eval_shard"].map({v: i for i, v in enumerate(shards)}).to_numpy(float)
            x, y, gone = place(onsets, s)
            tone = {"cmap": CMAP, "vmin": 0, "vmax": len(shards) - 1}
            ax.scatter(x[gone], y[gone], c=s[gone], s=3, lw=0, **tone)
            hollow = plt.get_cmap(CMAP)(s[~gone] / max(1, len(shards) - 1))
            ax.scatter(x[~gone], y[~gone], s=3, facecolors="none", edgecolors=hollow, lw=0.4)
        for s, shard in enumerate([] if many else shards):
            rows = onsets[onsets["eval_shard"] == shard]
            x, y, gone = place(rows, np.full(len(rows), s, float))
            style = {"marker": marker(s), "ms": 3, "ls": "none", "color": palette[s]}
            ax.plot(x[gone], y[gone], label=_label(shard, shard_names), **style)
            ax.plot(x[~gone], y[~gone], mfc="none", mew=0.7, **style)
        ax.axvline(end, color=MUTED, lw=0.6, ls="--")
        ax.set_xlim(0, end * (1 + 2 * NEVER_GAP))
        ax.xaxis.set_major_locator(MaxNLocator(max(2, int(width / 1.1)), steps=[1, 2, 2.5, 5, 10]))
        ticks = [t for t in ax.get_xticks() if 0 <= t <= end * (1 - 2 * NEVER_GAP)]
        ax.set_xticks([*ticks, never], [SAMPLES_FORMAT(t) for t in ticks] + ["never"])
        ax.set_yticks(range(len(names)), [str(n) for n in names])
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        for i in range(1, len(names)):
            ax.axhline(i - 0.5, color="0.9", lw=0.5, zorder=0)
        ax.set_xlabel("training samples seen at forgetting onset")
        fig = ax.figure
        if many:
            scale = plt.cm.ScalarMappable(cmap=CMAP, norm=plt.Normalize(0, len(shards) - 1))
            fig.colorbar(scale, ax=ax, label="shard (training order)", aspect=15, pad=0.02)
        hollow = Line2D(
            [], [], marker="o", ls="", ms=3, mfc="none", color=MUTED, label="never forgotten"
        )
        handles, labels = ([], []) if many else ax.get_legend_handles_labels()
        labels = [*labels, "never forgotten"]
        handles, labels, ncol = legend_rows(
            [*handles, hollow], labels, legend_columns(labels, width)
        )
        (fig.legend if own else ax.legend)(
            handles,
            labels,
            loc="outside upper center" if own else "best",
            ncol=ncol,
            frameon=False,
            handletextpad=0.1,
            columnspacing=0.8,
        )
        return fig


def _label(shard, names) -> str:
    if isinstance(names, dict):
        return str(names.get(shard, f"shard {shard}"))
    return series_label(shard, names)
