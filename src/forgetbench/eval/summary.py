"""A run's final metrics, accuracy matrix and forgetting onsets, read off its curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgetbench.eval import metrics


def _onsets(
    wide: pd.DataFrame, steps: np.ndarray, boundaries, delta: float, patience: int, mixed: bool
):
    seen = wide.index.to_numpy()
    onsets = []
    for j, boundary in enumerate(boundaries):
        start = len(seen) - 1 if mixed else int(np.searchsorted(seen, boundary, side="left"))
        t = metrics.forgetting_onset(wide[j].to_numpy(), start, delta, patience)
        onsets.append(
            {
                "eval_shard": j,
                "step": None if t is None else int(steps[t]),
                "samples_seen": None if t is None else int(seen[t]),
                "samples_to_forget": None if t is None else int(seen[t] - boundary),
            }
        )
    return onsets


def summarise(
    curves: pd.DataFrame,
    boundaries: np.ndarray,
    onset_delta: float,
    onset_patience: int,
    mixed: bool = False,
) -> dict:
    """Metrics, accuracy matrix, initial accuracies, boundaries and onsets of one run.

    Args:
        curves: The run's tidy evaluation records.
        boundaries: Real samples seen at the end of each sequential phase.
        onset_delta: Drop below the peak that counts as forgetting.
        onset_patience: Evaluation points the drop must last.
        mixed: Every shard trains until the end (mixed and joint feeds): no shard has an
            evaluation after its last training, so every onset is null.
    """
    wide = curves.pivot_table(index="samples_seen", columns="eval_shard", values="accuracy")
    steps = curves.drop_duplicates("samples_seen").sort_values("samples_seen")["step"].to_numpy()
    seen, curve = wide.index.to_numpy(), wide.to_numpy()
    R, b = metrics.accuracy_matrix(curves, boundaries)
    min_acc = metrics.min_accuracy(curve, np.searchsorted(seen, boundaries, side="left"))
    return {
        "metrics": {
            "acc": metrics.average_accuracy(R),
            "bwt": metrics.backward_transfer(R),
            "fwt": metrics.forward_transfer(R, b),
            "forgetting": metrics.forgetting(R),
            "forgetting_last": metrics.forgetting_since_learned(R),
            "min_acc": min_acc,
            "wc_acc": metrics.worst_case_accuracy(R, min_acc),
            "acc_auc": metrics.accuracy_auc(seen, curve),
        },
        "accuracy_matrix": R.tolist(),
        "init_accuracy": b.tolist(),
        "boundaries": boundaries.tolist(),
        "onset": _onsets(
            wide, steps, boundaries, float(onset_delta), int(onset_patience), mixed=mixed
        ),
    }
