"""Named batch columns: what every training batch holds, and columns plugins add.

A batch is a mapping of column name to an array with one row per sample:

- ``x``: features; ``y``: integer labels;
- ``weight``: 1 for a sample that counts in the loss, 0 for padding (the data loss of an update
  is ``sum_i weight_i loss_i / sum_i weight_i``);
- ``is_new``: 1 for a sample of the phase's own data, 0 for padding and for samples a plugin
  appends (replayed ones), so ``samples_seen`` counts new data only;
- any column a plugin declares (:class:`Column`): stored logits, a flag marking memory rows.
  Rows the plugin does not set (the phase's own samples, padding) hold the column's ``fill``.
"""

from __future__ import annotations

from dataclasses import dataclass

X, Y, WEIGHT, IS_NEW = "x", "y", "weight", "is_new"
CORE = (X, Y, WEIGHT, IS_NEW)


@dataclass(frozen=True)
class Column:
    """A per-sample batch column a plugin adds.

    Attributes:
        shape: Shape of one sample's entry (``()`` for a scalar per sample).
        dtype: numpy dtype name.
        fill: Value of rows the plugin does not set (the phase's own samples and padding); a
            column used as a loss weight should fill with 0, so padding never counts.
    """

    shape: tuple[int, ...] = ()
    dtype: str = "float32"
    fill: float = 0.0
