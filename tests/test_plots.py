import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from forgetbench.plots import (
    plot_accuracy_matrices,
    plot_accuracy_matrix,
    plot_metric_comparison,
    plot_onsets,
    plot_shard_curves,
    plot_strategy_panels,
)
from forgetbench.plots.style import SAMPLES_FORMAT, legend_rows, save_figure


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def bands(strategies=("sequential", "joint"), shards=2):
    seen = np.array([0, 50, 100])
    return pd.DataFrame(
        [
            {
                "strategy": s,
                "eval_shard": j,
                "samples_seen": x,
                "accuracy": 0.5 + 0.1 * j,
                "low": 0.4 + 0.1 * j,
                "high": 0.6 + 0.1 * j,
            }
            for s in strategies
            for j in range(shards)
            for x in seen
        ]
    )


def matrices(strategies=("sequential", "joint"), T=3):
    return pd.DataFrame(
        [
            {"strategy": s, "phase": i, "eval_shard": j, "accuracy": 0.1 * (i + j)}
            for s in strategies
            for i in range(T)
            for j in range(T)
        ]
    )


def summary():
    return pd.DataFrame(
        {
            "strategy": ["sequential", "replay", "sequential", "replay"],
            "remainder": ["drop", "drop", "pad", "pad"],
            "acc": [0.6, 0.9, 0.62, 0.91],
            "acc_ci95": [0.02, 0.01, np.nan, 0.01],
            "forgetting": [0.4, 0.05, 0.38, 0.04],
            "forgetting_ci95": [0.03, 0.01, 0.02, 0.01],
            "bwt": [-0.4, -0.02, -0.38, -0.01],
            "bwt_ci95": [0.03, 0.01, 0.02, 0.01],
        }
    )


def test_shard_curves_draw_a_line_and_a_band_per_shard_on_a_given_axis():
    fig, ax = plt.subplots()
    phases = pd.DataFrame(
        {"train_shard": [0, 1], "start_samples": [0, 50], "end_samples": [50, 100]}
    )
    onsets = pd.DataFrame({"eval_shard": [0, 1], "samples_seen": [75.0, np.nan]})
    out = plot_shard_curves(bands(("s",), shards=3), phases=phases, onsets=onsets, ax=ax)
    assert out is fig
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3  # bands
    assert len(ax.patches) == 2  # training spans
    assert [line.get_label() for line in ax.lines[:3]] == ["shard 0", "shard 1", "shard 2"]
    assert len(ax.lines) == 3 + 2  # one onset: a dotted line and a marker
    unbanded = plot_shard_curves(bands(("s",)).drop(columns=["low", "high"]))
    assert not unbanded.axes[0].collections


def test_strategy_panels_share_axes_and_wrap_at_single_column():
    fig = plot_strategy_panels(bands(("a", "b", "c")))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert isinstance(fig, Figure) and len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
    assert axes[0].get_shared_x_axes().joined(axes[0], axes[2])
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    assert len(fig.legends) == 1
    narrow = plot_strategy_panels(bands(("a", "b", "c")), width=3.3)
    assert [ax.get_visible() for ax in narrow.axes] == [True, True, True, False]


def test_strategy_panels_honour_given_axes():
    fig, axes = plt.subplots(1, 2)
    assert plot_strategy_panels(bands(), axes=axes) is fig
    assert [ax.get_title() for ax in axes] == ["sequential", "joint"]
    assert axes[1].get_legend() is not None


def test_metric_comparison_shows_acc_forgetting_bwt_with_intervals():
    table = summary()[lambda t: t.remainder == "drop"]
    fig = plot_metric_comparison(table)
    assert len(fig.axes) == 3
    assert [ax.get_title() for ax in fig.axes] == ["ACC (↑)", "forgetting (↓)", "BWT (↑)"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sequential", "replay"]
    assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 1


def test_metric_comparison_series_per_hue_and_given_axes():
    fig, axes = plt.subplots(1, 2)
    out = plot_metric_comparison(summary(), metrics=["acc", "bwt"], hue="remainder", axes=axes)
    assert out is fig
    assert len(axes[0].containers) == 2  # one series per remainder policy
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == ["drop", "pad"]


def test_accuracy_matrix_heatmap_is_annotated_on_a_given_axis():
    fig, ax = plt.subplots()
    assert plot_accuracy_matrix(matrices(("s",)), ax=ax) is fig
    (mesh,) = ax.collections
    assert mesh.get_array().shape == (3, 3) and mesh.get_clim() == (0.0, 1.0)
    assert len(ax.texts) == 9 and ax.texts[0].get_text() == ".00"
    plain = plot_accuracy_matrix(matrices(("s",)), annotate=False)
    assert not plain.axes[0].texts


def test_accuracy_matrices_share_one_colour_scale():
    fig = plot_accuracy_matrices(matrices(("a", "b", "c")))
    heatmaps = [ax for ax in fig.axes if ax.get_title()]
    assert len(heatmaps) == 3 and len(fig.axes) == 3 + 1  # and one colour bar
    assert {ax.collections[0].get_clim() for ax in heatmaps} == {(0.0, 1.0)}
    fig, axes = plt.subplots(1, 2)
    assert plot_accuracy_matrices(matrices(), axes=axes) is fig
    assert [ax.get_title() for ax in axes] == ["sequential", "joint"]


def test_onsets_show_each_run_and_never_forgotten_ones_apart():
    onsets = pd.DataFrame(
        {
            "strategy": ["sequential"] * 4 + ["joint"] * 2,
            "seed": [0, 1, 0, 1, 0, 1],
            "eval_shard": [0, 0, 1, 1, 0, 0],
            "samples_seen": [150.0, 200.0, 250.0, np.nan, np.nan, np.nan],
            "total_samples": 300,
        }
    )
    fig, ax = plt.subplots()
    assert plot_onsets(onsets, ax=ax) is fig
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sequential", "joint"]
    assert ax.get_xticklabels()[-1].get_text() == "never"
    points = {
        (line.get_marker(), line.get_markerfacecolor() == "none"): line.get_xdata()
        for line in ax.lines
        if len(line.get_xdata()) and line.get_linestyle() == "None"
    }
    assert sorted(points[("o", False)]) == [150, 200]  # shard 0, forgotten
    assert len(points[("o", True)]) == 2 and min(points[("o", True)]) > 300  # joint: never
    assert list(points[("s", False)]) == [250] and len(points[("s", True)]) == 1
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(labels) == ["never forgotten", "shard 0", "shard 1"]  # hollow dots explained


def test_style_helpers():
    assert [SAMPLES_FORMAT(v) for v in (0, 500, 5000, 12500, 1.5e6)] == [
        "0",
        "500",
        "5k",
        "12.5k",
        "1.5M",
    ]
    handles, labels, ncol = legend_rows(list("abcde"), list("abcde"), max_cols=4)
    assert ncol == 3 and labels == ["a", "d", "b", "e", "c"]  # rows: a b c / d e


def test_saved_figures_are_reproducible_and_leave_no_temporary_files(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    pdf, png = save_figure(fig, tmp_path / "out" / "fig")
    first = pdf.read_bytes(), png.read_bytes()
    assert first[0].startswith(b"%PDF") and first[1].startswith(b"\x89PNG")
    assert b"CreationDate" not in first[0]
    assert save_figure(fig, tmp_path / "out" / "fig") == [pdf, png]
    assert (pdf.read_bytes(), png.read_bytes()) == first
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig.pdf", "fig.png"]
