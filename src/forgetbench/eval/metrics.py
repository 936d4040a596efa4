"""Continual-learning metrics: pure numpy functions of the accuracy matrix and the curves.

``R[i, j]`` is the accuracy on shard ``j`` after training phase ``i`` (``T`` phases, 0-based);
``b[j]`` is the accuracy on shard ``j`` at initialisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def average_accuracy(R: np.ndarray) -> float:
    """ACC: mean final accuracy over all shards."""
    return float(np.mean(R[-1]))


def backward_transfer(R: np.ndarray) -> float:
    """BWT (Lopez-Paz & Ranzato 2017): mean of ``R[T-1, j] - R[j, j]`` over ``j < T-1``.

    NaN when ``T == 1``.
    """
    T = R.shape[0]
    if T < 2:
        return float("nan")
    return float(np.mean([R[-1, j] - R[j, j] for j in range(T - 1)]))


def forward_transfer(R: np.ndarray, b: np.ndarray) -> float:
    """FWT (Lopez-Paz & Ranzato 2017): mean of ``R[j-1, j] - b[j]`` over ``j >= 1``.

    NaN when ``T == 1``.
    """
    T = R.shape[0]
    if T < 2:
        return float("nan")
    return float(np.mean([R[j - 1, j] - b[j] for j in range(1, T)]))


def forgetting(R: np.ndarray) -> float:
    """Average forgetting (Chaudhry et al. 2018): mean of ``max_{l<T-1} R[l, j] - R[T-1, j]``.

    Averaged over ``j < T-1``; NaN when ``T == 1``.
    """
    T = R.shape[0]
    if T < 2:
        return float("nan")
    return float(np.mean([R[: T - 1, j].max() - R[-1, j] for j in range(T - 1)]))


def accuracy_matrix(curves: pd.DataFrame, boundaries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reads ``R`` and ``b`` off the curves.

    Row ``i`` of ``R`` is the first evaluation point whose ``samples_seen`` reaches
    ``boundaries[i]`` (the end of phase ``i`` of the sequential feed), so mixed and joint feeds
    are read at the same points as the sequential one.

    Args:
        curves: Tidy records with ``samples_seen``, ``eval_shard`` and ``accuracy``.
        boundaries: Real samples seen at the end of each phase (length ``T``).

    Returns:
        ``R`` of shape ``(T, T)`` and ``b`` of shape ``(T,)``.
    """
    wide = curves.pivot_table(index="samples_seen", columns="eval_shard", values="accuracy")
    points = wide.index.to_numpy()
    rows = np.searchsorted(points, boundaries, side="left")
    if np.any(rows >= len(points)):
        raise ValueError(
            f"Curves end at samples_seen={points[-1]}. Expected an evaluation at or after every "
            f"phase boundary. Received boundaries {boundaries.tolist()}"
        )
    return wide.to_numpy()[rows], wide.to_numpy()[0]


ONSET_TOLERANCE = 1e-9  # accuracies are fractions k/n: far coarser than this


def forgetting_onset(accuracy: np.ndarray, start: int, delta: float, patience: int) -> int | None:
    """Index of the evaluation point where a shard starts being forgotten, or ``None``.

    The onset is the first point ``t > start`` (``start``: the last point at which the shard was
    trained) whose accuracy is below ``peak - delta``, where ``peak`` is the highest accuracy
    before ``t``, and which does not recover: the next ``patience`` points (as many as exist)
    all stay below that same threshold.

    Args:
        accuracy: The shard's accuracy at every evaluation point, in order.
        start: Index of the evaluation point that ends the shard's last training phase.
        delta: Drop below the peak that counts as forgetting.
        patience: Number of following points that must stay below the threshold.
    """
    for t in range(start + 1, len(accuracy)):
        # A drop of exactly delta does not count, whatever the float rounding of peak - delta.
        threshold = accuracy[:t].max() - delta - ONSET_TOLERANCE
        if accuracy[t] < threshold and np.all(accuracy[t + 1 : t + 1 + patience] < threshold):
            return t
    return None


def forgetting_since_learned(R: np.ndarray) -> float:
    """Forgetting measured from right after training: mean of ``R[j, j] - R[T-1, j]``, ``j < T-1``.

    Equals ``-BWT``; kept under its own name because papers report it as "forgetting" too.
    """
    return -backward_transfer(R)


def min_accuracy(curve: np.ndarray, learned: np.ndarray) -> float:
    """min-ACC (De Lange et al. 2023): mean over earlier shards of their lowest later accuracy.

    Args:
        curve: Accuracy at every evaluation point (rows) on every shard (columns, ``T``).
        learned: For each shard, the index of the evaluation point that ends its phase.

    Returns:
        Mean over shards ``j < T-1`` of ``min(curve[learned[j]:, j])``; NaN when ``T == 1``.
    """
    T = curve.shape[1]
    if T < 2:
        return float("nan")
    return float(np.mean([curve[learned[j] :, j].min() for j in range(T - 1)]))


def worst_case_accuracy(R: np.ndarray, min_acc: float) -> float:
    """WC-ACC (De Lange et al. 2023): ``R[T-1, T-1] / T + (1 - 1/T) * min-ACC``."""
    T = R.shape[0]
    if T < 2:
        return float(R[-1, -1])
    return float(R[-1, -1] / T + (1 - 1 / T) * min_acc)


def accuracy_auc(samples_seen: np.ndarray, curve: np.ndarray) -> float:
    """Area under the average-accuracy curve, normalised by the samples seen (in [0, 1]).

    The average over all shards at each evaluation point, integrated by the trapezoid rule over
    ``samples_seen``; NaN when there is a single evaluation point.
    """
    if len(samples_seen) < 2 or samples_seen[-1] == samples_seen[0]:
        return float("nan")
    mean = curve.mean(axis=1)
    area = np.sum((mean[1:] + mean[:-1]) / 2 * np.diff(samples_seen))
    return float(area / (samples_seen[-1] - samples_seen[0]))
