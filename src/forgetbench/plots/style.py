"""One style for paper-ready figures: colourblind-safe palette, legible at column widths."""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND"):  # headless by default; Jupyter sets its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from forgetbench.results.io import write_with  # noqa: E402

# Okabe & Ito (2008), safe for the common forms of colour blindness.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
# Sequential colour map for accuracies: perceptually uniform and colourblind-safe (Nunez 2018).
CMAP = "cividis"
SINGLE_COLUMN = 3.3
DOUBLE_COLUMN = 7.0
SPAN_ALPHA = 0.08  # shaded training spans
BAND_ALPHA = 0.22  # seed bands around a mean curve
MUTED = "0.45"  # reference lines and secondary text
LINE_LIMIT = 12  # more series than this: a heatmap instead of lines

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "lines.linewidth": 1.2,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
}


@contextmanager
def paper_style():
    """Context in which figures get the paper style.

    Interactive mode is kept as it is at the end: a backend first set up inside the context
    (Jupyter's inline backend turns it on) must not be turned off by restoring the rcParams.
    """
    with plt.rc_context(RC):
        try:
            yield
        finally:
            interactive = matplotlib.is_interactive()
    matplotlib.interactive(interactive)


def color(i: int) -> str:
    """The ``i``-th colour of the palette (cycling)."""
    return PALETTE[i % len(PALETTE)]


def colors(n: int) -> list:
    """``n`` colours that do not repeat within a figure.

    The Okabe-Ito palette up to its 8 colours; matplotlib's ``tab20`` up to 20; beyond that,
    ``n`` samples of ``turbo`` (figures switch to a heatmap well before lines get that many).
    """
    if n <= len(PALETTE):
        return PALETTE[: max(n, 0)]
    if n <= 20:
        return list(matplotlib.colormaps["tab20"].colors[:n])
    return [tuple(c) for c in matplotlib.colormaps["turbo"].resampled(n)(range(n))]


def series_label(index: int, names=None, kind: str = "shard") -> str:
    """A series' legend label: its name when known, else ``shard N``."""
    if names is not None and 0 <= int(index) < len(names):
        return str(names[int(index)])
    return f"{kind} {int(index)}"


def thinned(count: int, most: int) -> list[int]:
    """At most about ``most`` evenly spaced positions of ``range(count)``, the last included."""
    step = max(1, -(-count // max(1, most)))
    picks = list(range(0, count, step))
    if picks and picks[-1] != count - 1 and count - 1 - picks[-1] >= step / 2:
        picks.append(count - 1)
    return picks


def marker(i: int) -> str:
    """The ``i``-th marker shape (cycling), to tell series apart without colour."""
    return MARKERS[i % len(MARKERS)]


def panel_grid(panels: int, ncols: int | None, width: float) -> tuple[int, int]:
    """Rows and columns of a figure of ``panels`` panels.

    ``ncols`` if given; else all in one row at double-column width, at most two per row below.
    """
    ncols = ncols or (panels if width >= DOUBLE_COLUMN else min(panels, 2))
    return math.ceil(panels / ncols), ncols


def legend_rows(handles: list, labels: list, max_cols: int) -> tuple[list, list, int]:
    """Handles and labels reordered so a legend reads row by row; returns them and ``ncol``.

    Matplotlib fills legend columns first; with at most ``max_cols`` columns and rows as
    balanced as possible, this order makes the first row hold the first entries.
    """
    n = len(labels)
    rows = math.ceil(n / max(1, min(max_cols, n)))
    ncol = math.ceil(n / rows) if n else 1
    order = [r * ncol + c for c in range(ncol) for r in range(rows) if r * ncol + c < n]
    return [handles[i] for i in order], [labels[i] for i in order], ncol


def legend_columns(labels: list, width: float) -> int:
    """Most legend columns of ``labels`` that fit in ``width`` inches (7 pt legend text)."""
    longest = max((len(str(t)) for t in labels), default=1)
    return max(1, int(width / (0.3 + 0.055 * longest)))


def _samples(value: float, _pos=None) -> str:
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


SAMPLES_FORMAT = FuncFormatter(_samples)
"""Tick formatter for sample counts: 0, 500, 5k, 12.5k, 1.5M."""


def save_figure(fig, stem: str | Path) -> list[Path]:
    """Saves ``fig`` as vector PDF and 300 dpi PNG; returns the paths written.

    Each file is written atomically (an interrupted save leaves the previous file), and the
    PDF carries no creation date, so the same figure gives the same bytes on every run.
    """
    stem = Path(stem)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    write_with(
        paths[0], lambda tmp: fig.savefig(tmp, format="pdf", metadata={"CreationDate": None})
    )
    write_with(paths[1], lambda tmp: fig.savefig(tmp, format="png", dpi=300))
    return paths
