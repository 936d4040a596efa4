"""Paper-ready figures from the report's tables: each function takes a DataFrame, returns a figure.

The functions compute no metrics; ``forgetbench.report`` (via ``forgetbench.results.aggregate``)
writes every table they draw.
"""

from forgetbench.plots.compare import plot_metric_comparison
from forgetbench.plots.curves import plot_shard_curves, plot_strategy_panels
from forgetbench.plots.heatmap import plot_accuracy_matrices, plot_accuracy_matrix
from forgetbench.plots.onset import plot_onsets
from forgetbench.plots.style import paper_style, save_figure

__all__ = [
    "paper_style",
    "plot_accuracy_matrices",
    "plot_accuracy_matrix",
    "plot_metric_comparison",
    "plot_onsets",
    "plot_shard_curves",
    "plot_strategy_panels",
    "save_figure",
]
