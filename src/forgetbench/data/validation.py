"""Validation splits: a seeded, stratified part of every training shard, kept apart.

A dataset's three splits per shard are training, validation (for choosing hyperparameters) and
held-out (test: for reporting). Generated datasets carve the validation split from each training
shard when their cache folder is written (``with_validation``); the cache parameters gain
``validation_fraction`` only when it is non-zero, so folders written without one keep their
names and contents. Shards whose labels are the same array (domain-incremental data: every shard
is the same samples under another transform) get the same validation rows, so no validation
sample is trained on under another transform.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.generated import FEATURE_KEY, LABEL_KEY, write_shard
from forgetbench.data.store import ShardStore

VALIDATION = "validation"
KEY = "data.validation_fraction"


def check_fraction(fraction, key: str = KEY) -> float:
    """``fraction`` as a float in [0, 1).

    Raises:
        ValueError: naming ``key``, for anything else.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise ValueError(
            f"{key}: expected a number in [0, 1) (0: no validation split). Received: {fraction!r}"
        )
    return float(fraction)


def validation_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted training and validation row indices of one shard.

    Stratified by label when every class has at least two samples and the validation part can
    hold one of each; otherwise uniformly at random. At least one row goes to each part.

    Raises:
        ValueError: if the shard has fewer than 2 samples or ``fraction`` is not in (0, 1).
    """
    n = len(labels)
    if not 0 < fraction < 1:
        raise ValueError(f"{KEY}: expected a number in (0, 1). Received: {fraction}")
    if n < 2:
        raise ValueError(f"{KEY}: a shard of {n} sample(s) cannot give a validation split")
    count = min(n - 1, max(1, int(n * fraction + 0.5)))
    _, per_class = np.unique(labels, return_counts=True)
    stratify = labels if per_class.min() >= 2 and len(per_class) <= min(count, n - count) else None
    train, validation = train_test_split(
        np.arange(n), test_size=count, stratify=stratify, random_state=seed
    )
    return np.sort(train), np.sort(validation)


def carve_validation(folder: Path, fraction: float, seed: int) -> None:
    """Moves a validation split of every ``folder/train`` shard into ``folder/validation``."""
    for path in sorted((Path(folder) / "train").glob("*.npz")):
        with np.load(path) as shard:
            x, y = shard[FEATURE_KEY], shard[LABEL_KEY]
        train, validation = validation_split(y, fraction, seed)
        write_shard(Path(folder) / VALIDATION / path.name, x[validation], y[validation])
        write_shard(path, x[train], y[train])


def with_validation(
    params: dict, write: Callable[[Path], None], fraction: float, seed: int
) -> tuple[dict, Callable[[Path], None]]:
    """The cache parameters and writer of a generated dataset with its validation split.

    With ``fraction == 0`` both are returned unchanged (the cache entry of a dataset without a
    validation split); otherwise the parameters gain ``validation_fraction`` and the writer
    carves the split after writing the shards.
    """
    fraction = check_fraction(fraction)
    if fraction == 0:
        return params, write

    def write_all(folder: Path) -> None:
        write(folder)
        carve_validation(folder, fraction, seed)

    return {**params, "validation_fraction": fraction}, write_all


def open_splits(folder: Path, name: str, num_classes: int) -> ShardDataset:
    """Opens ``folder/{train,heldout}`` and, when present, ``folder/validation`` (common layout)."""
    keys = {"feature_key": FEATURE_KEY, "label_key": LABEL_KEY}
    validation = folder / VALIDATION
    return ShardDataset(
        name=name,
        train=ShardStore(folder / "train", **keys),
        heldout=ShardStore(folder / "heldout", **keys),
        num_classes=num_classes,
        validation=ShardStore(validation, **keys) if validation.is_dir() else None,
    )
