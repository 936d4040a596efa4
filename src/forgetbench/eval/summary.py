"""A run's final metrics, accuracy matrix and forgetting onsets, read off its curves.

With a validation split the curves carry ``split`` (``test``, ``val``): every metric is
computed for both, the held-out (test) ones under their usual names, the validation ones
prefixed ``val_`` (``val_acc``, ...), with the validation accuracy matrix as
``val_accuracy_matrix``; onsets are the test split's.
"""

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


VALIDATION_PREFIX = "val_"


def test_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """The held-out (test) split's records of a run's curves (all of them without ``split``)."""
    if "split" not in curves:
        return curves
    return curves[curves["split"] == "test"].drop(columns="split")


def validation_sizes(dataset) -> dict:
    """``{"validation_sizes": [...]}`` for a dataset with a validation split, else ``{}``."""
    if getattr(dataset, "validation", None) is None:
        return {}
    return {"validation_sizes": dataset.validation.sizes.tolist()}


def summarise(
    curves: pd.DataFrame,
    boundaries: np.ndarray,
    onset_delta: float,
    onset_patience: int,
    mixed: bool = False,
) -> dict:
    """Metrics of the test split and, when the curves have one, of the validation split.

    Args:
        curves: The run's tidy evaluation records (``split`` when there is a validation split).
        boundaries: Real samples seen at the end of each sequential phase.
        onset_delta: Drop below the peak that counts as forgetting.
        onset_patience: Evaluation points the drop must last.
        mixed: Every shard trains until the end (no onsets).
    """
    if "split" not in curves:
        return summarise_split(curves, boundaries, onset_delta, onset_patience, mixed)
    test = curves[curves["split"] == "test"]
    results = summarise_split(test, boundaries, onset_delta, onset_patience, mixed)
    validation = summarise_split(
        curves[curves["split"] == "val"], boundaries, onset_delta, onset_patience, mixed
    )
    results["metrics"].update(
        {f"{VALIDATION_PREFIX}{k}": v for k, v in validation["metrics"].items()}
    )
    results["val_accuracy_matrix"] = validation["accuracy_matrix"]
    return results


def summarise_split(
    curves: pd.DataFrame,
    boundaries: np.ndarray,
    onset_delta: float,
    onset_patience: int,
    mixed: bool = False,
) -> dict:
    """Metrics, accuracy matrix, initial accuracies, boundaries and onsets of one split.

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
