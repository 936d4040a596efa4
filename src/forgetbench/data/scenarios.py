"""Continual-learning scenarios over an in-memory labelled set, written as shard files.

Class-incremental: shard ``k`` holds the samples of the ``k``-th group of classes. Its
domain-incremental variant (Hsu et al. 2018; van de Ven et al. 2022, "domain-IL Split MNIST")
keeps those samples but labels each by its position within the shard's group, so every shard
shares one ``classes_per_shard``-way output.
Domain-incremental: every shard holds the whole set under its own input transform. Held-out
splits are stratified by class and seeded; the domain-incremental split is the same for every
shard, so no held-out sample is trained on under another transform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from forgetbench.data.generated import write_shard


def class_groups(
    class_order: Sequence[int], classes_per_shard: int, num_classes: int
) -> list[list[int]]:
    """Splits ``class_order`` into consecutive groups of ``classes_per_shard`` classes.

    Raises:
        ValueError: if the order repeats a class, names one outside ``[0, num_classes)``, or
            does not divide into groups of ``classes_per_shard``.
    """
    order = [int(c) for c in class_order]
    if len(set(order)) != len(order) or not all(0 <= c < num_classes for c in order):
        raise ValueError(
            f"data.class_order: expected distinct class ids in [0, {num_classes}). "
            f"Received: {order}"
        )
    if classes_per_shard < 1 or not order or len(order) % classes_per_shard:
        raise ValueError(
            f"data.classes_per_shard: expected an integer >= 1 dividing the {len(order)} "
            f"classes of data.class_order. Received: {classes_per_shard}"
        )
    return [order[i : i + classes_per_shard] for i in range(0, len(order), classes_per_shard)]


def stratified_split(
    labels: np.ndarray, heldout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted training and held-out indices, stratified by label.

    Raises:
        ValueError: if ``heldout_fraction`` is not strictly between 0 and 1.
    """
    if not 0 < heldout_fraction < 1:
        raise ValueError(
            f"data.heldout_fraction: expected a number in (0, 1). Received: {heldout_fraction}"
        )
    train, heldout = train_test_split(
        np.arange(len(labels)), test_size=heldout_fraction, stratify=labels, random_state=seed
    )
    return np.sort(train), np.sort(heldout)


def _write_pair(folder: Path, k: int, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    for split, (x, y) in splits.items():
        write_shard(folder / split / f"shard_{k:03d}.npz", x, y)


def write_class_incremental(
    folder: Path,
    features: np.ndarray,
    labels: np.ndarray,
    groups: list[list[int]],
    heldout_fraction: float,
    seed: int,
    within_group_labels: bool = False,
) -> None:
    """Writes ``{train,heldout}/shard_KKK.npz``: shard ``k`` holds the classes ``groups[k]``.

    With ``within_group_labels``, a sample of class ``groups[k][j]`` is labelled ``j``
    (domain-incremental split); the held-out split is the same either way.
    """
    for k, group in enumerate(groups):
        members = np.flatnonzero(np.isin(labels, group))
        train, heldout = stratified_split(labels[members], heldout_fraction, seed)
        splits = {"train": members[train], "heldout": members[heldout]}
        position = {c: j for j, c in enumerate(group)}
        relabel = np.vectorize(position.get, otypes=[labels.dtype])
        _write_pair(
            folder,
            k,
            {
                s: (features[i], relabel(labels[i]) if within_group_labels else labels[i])
                for s, i in splits.items()
            },
        )


def write_domain_incremental(
    folder: Path,
    features: np.ndarray,
    labels: np.ndarray,
    transforms: list[Callable[[np.ndarray], np.ndarray]],
    heldout_fraction: float,
    seed: int,
) -> None:
    """Writes ``{train,heldout}/shard_KKK.npz``: shard ``k`` is all samples under ``transforms[k]``.

    One stratified held-out split is shared by all shards.
    """
    train, heldout = stratified_split(labels, heldout_fraction, seed)
    for k, transform in enumerate(transforms):
        splits = {"train": train, "heldout": heldout}
        _write_pair(folder, k, {s: (transform(features[i]), labels[i]) for s, i in splits.items()})
