"""Forgetting onset per shard and strategy: a dot plot with one dot per seed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from forgetbench.plots.style import (
    MUTED,
    SAMPLES_FORMAT,
    SINGLE_COLUMN,
    color,
    marker,
    paper_style,
)

NEVER_GAP = 0.07  # the "never" column sits this fraction of the x range beyond the last sample


def plot_onsets(onsets: pd.DataFrame, *, by: str = "strategy", ax=None) -> Figure:
    """Samples seen at each shard's forgetting onset, one row per ``by`` value, one dot per run.

    Shards are told apart by colour and marker (the colours of the curve figures) and offset
    within a row; dots of the same shard are spread slightly by seed. Runs where a shard was
    never forgotten are drawn hollow in a separate "never" column right of the x range.

    Args:
        onsets: Rows ``by, seed, eval_shard, samples_seen`` (NaN: never forgotten), optionally
            ``total_samples`` (where the x range ends), e.g. ``onsets.parquet``.
        by: Column whose values get one row each, top to bottom in order of appearance.
        ax: Axis to draw on; a new single-column figure when ``None``.

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
    with paper_style():
        own = ax is None
        if own:
            _, ax = plt.subplots(figsize=(SINGLE_COLUMN, 0.8 + 0.45 * len(names)))
        for s, shard in enumerate(shards):
            rows = onsets[onsets["eval_shard"] == shard]
            row_pos = rows[by].map({n: i for i, n in enumerate(names)}).to_numpy(float)
            spread = np.zeros(len(rows))
            if "seed" in rows and len(seeds) > 1:
                rank = rows["seed"].map({v: i for i, v in enumerate(seeds)}).to_numpy(float)
                spread = rank / (len(seeds) - 1) - 0.5  # -0.5 .. 0.5
            y = row_pos + (s - (len(shards) - 1) / 2) * band + spread * band * 0.6
            x = rows["samples_seen"].to_numpy(float)
            gone = ~np.isnan(x)
            style = {"marker": marker(s), "ms": 3, "ls": "none", "color": color(int(shard))}
            ax.plot(x[gone], y[gone], label=f"shard {shard}", **style)
            x_never = never + spread[~gone] * end * NEVER_GAP * 0.8
            ax.plot(x_never, y[~gone], mfc="none", mew=0.7, **style)
        ax.axvline(end, color=MUTED, lw=0.6, ls="--")
        ax.set_xlim(0, end * (1 + 2 * NEVER_GAP))
        ticks = [t for t in ax.get_xticks() if 0 <= t <= end * (1 - NEVER_GAP / 2)]
        ax.set_xticks([*ticks, never], [SAMPLES_FORMAT(t) for t in ticks] + ["never"])
        ax.set_yticks(range(len(names)), [str(n) for n in names])
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        for i in range(1, len(names)):
            ax.axhline(i - 0.5, color="0.9", lw=0.5, zorder=0)
        ax.set_xlabel("training samples seen at forgetting onset")
        ax.legend(
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=len(shards),
            frameon=False,
            handletextpad=0.1,
            columnspacing=0.8,
        )
        if own:
            ax.figure.tight_layout()
        return ax.figure
