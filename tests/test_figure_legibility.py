"""Figures stay legible from 5 to 2,000 shards at both column widths: no text is cut off."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.legend import Legend
from matplotlib.text import Text

from forgetbench.plots import plot_accuracy_matrices, plot_onsets, plot_strategy_panels
from forgetbench.plots.curves import plot_shard_curves
from forgetbench.plots.style import DOUBLE_COLUMN, LINE_LIMIT, SINGLE_COLUMN

STRATEGIES = ["sequential", "cross_shard"]


def tables(shards: int, points: int = 24, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Report-like tables of ``shards`` shards named like daily files."""
    rng = np.random.default_rng(seed)
    seen = np.linspace(0, 1000 * shards, points).round()
    names = [f"day_2023-{1 + k // 28 % 12:02d}-{1 + k % 28:02d}_{k:04d}" for k in range(shards)]
    bands, phases, onsets = [], [], []
    for strategy in STRATEGIES:
        acc = rng.uniform(0.3, 1.0, size=(points, shards))
        bands.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "eval_shard": np.tile(np.arange(shards), points),
                    "samples_seen": np.repeat(seen, shards),
                    "accuracy": acc.ravel(),
                    "low": acc.ravel() - 0.05,
                    "high": acc.ravel() + 0.05,
                    "name": np.tile(names, points),
                }
            )
        )
        ends = np.linspace(0, seen[-1], shards + 1)
        phases.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "phase": np.arange(shards),
                    "train_shard": pd.array(np.arange(shards), dtype="Int64"),
                    "start_samples": ends[:-1],
                    "end_samples": ends[1:],
                }
            )
        )
        onsets.append(
            pd.DataFrame(
                {
                    "strategy": strategy,
                    "seed": 0,
                    "eval_shard": np.arange(shards - 1),
                    "samples_seen": np.where(
                        rng.random(shards - 1) < 0.7, ends[1:-1] + 500, np.nan
                    ),
                    "total_samples": seen[-1],
                    "name": names[:-1],
                }
            )
        )
    matrix_shards = min(shards, 200)  # reports hold matrices of at most eval.max_groups groups
    i, j = np.indices((matrix_shards, matrix_shards))
    matrices = pd.concat(
        pd.DataFrame(
            {
                "strategy": s,
                "phase": i.ravel(),
                "eval_shard": j.ravel(),
                "accuracy": rng.uniform(size=i.size),
            }
        )
        for s in STRATEGIES
    )
    return {
        "bands": pd.concat(bands, ignore_index=True),
        "phases": pd.concat(phases, ignore_index=True),
        "onsets": pd.concat(onsets, ignore_index=True),
        "matrices": matrices,
    }


def assert_legible(fig) -> None:
    """Every visible text inside the canvas; tick labels of an axis do not overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    ticks, drawn = set(), []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            labels = axis.get_majorticklabels()
            ticks.update(labels)
            for loc, label in zip(axis.get_majorticklocs(), labels, strict=False):
                if ax.get_visible() and low - 1e-9 <= loc <= high + 1e-9:  # drawn ones
                    drawn.append(label)
    texts = [
        t
        for t in fig.findobj(Text)
        if t.get_visible()
        and t.get_text().strip()
        and (t.axes is None or t.axes.get_visible())
        and (t not in ticks or t in drawn)
    ]
    assert texts
    for t in texts:
        box = t.get_window_extent(renderer)
        assert box.x0 >= canvas.x0 - 1 and box.x1 <= canvas.x1 + 1, t.get_text()
        assert box.y0 >= canvas.y0 - 1 and box.y1 <= canvas.y1 + 1, t.get_text()
    for legend in fig.findobj(Legend):
        box = legend.get_window_extent(renderer)
        assert canvas.x0 - 1 <= box.x0 and box.x1 <= canvas.x1 + 1
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            shown = [t for t in labels if t in drawn and t.get_text().strip()]
            boxes = [t.get_window_extent(renderer) for t in shown]
            for a, b in zip(boxes, boxes[1:], strict=False):
                assert not a.overlaps(b), [t.get_text() for t in shown]


@pytest.mark.parametrize("width", [SINGLE_COLUMN, DOUBLE_COLUMN])
@pytest.mark.parametrize("shards", [5, 20, 200, 2000])
def test_figures_stay_legible(shards, width):
    t = tables(shards)
    figures = {
        "panels": plot_strategy_panels(
            t["bands"], phases=t["phases"], onsets=t["onsets"], width=width
        ),
        "run": plot_shard_curves(
            t["bands"][t["bands"]["strategy"] == "sequential"].drop(columns=["low", "high"]),
            phases=t["phases"][t["phases"]["strategy"] == "sequential"],
            onsets=t["onsets"][t["onsets"]["strategy"] == "sequential"],
            title="sequential on npz_dir (seed 0)",
            width=width,
        ),
        "onsets": plot_onsets(t["onsets"], width=width),
        "matrices": plot_accuracy_matrices(t["matrices"], width=width),
    }
    for name, fig in figures.items():
        try:
            assert_legible(fig)
        except AssertionError as exc:
            raise AssertionError(f"{name} at {shards} shards, {width} in: {exc}") from exc
        finally:
            plt.close(fig)
    run = figures["run"]
    if shards <= LINE_LIMIT:  # lines: every shard named, the marks explained
        labels = [t.get_text() for t in run.legends[0].get_texts()]
        assert set(labels) - {"training span", "forgetting onset"} == set(t["bands"]["name"])
        assert {"training span", "forgetting onset"} <= set(labels)
        colours = [line.get_color() for line in run.axes[0].get_lines()[:shards]]
        assert len(set(map(str, colours))) == shards  # no colour repeats
    else:  # heatmap: a colour bar, and the marks explained
        assert any(ax.get_ylabel() == "accuracy" for ax in run.axes)
        labels = [t.get_text() for t in run.legends[0].get_texts()]
        assert {"phase boundary", "forgetting onset"} <= set(labels)
    assert run.axes[0].get_xlabel() == "training samples seen"
