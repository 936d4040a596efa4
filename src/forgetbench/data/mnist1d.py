"""MNIST-1D (Greydanus & Kobak, 2020), generated locally, as class-incremental shards.

The samples come from the ``mnist1d`` package's generator (``make_dataset``), never its
download path: nothing is fetched. Features are 40-step signals (float32), labels the digits 0-9.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.generated import cached_folder
from forgetbench.data.scenarios import class_groups, write_class_incremental
from forgetbench.data.validation import open_splits, with_validation

NUM_CLASSES = 10


@contextmanager
def _global_rng_kept() -> Iterator[None]:
    """Restores Python's and numpy's global random states after the block.

    ``make_dataset`` reseeds both, which would otherwise change the model's initial weights
    whenever the data is generated rather than read from the cache.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def generate_mnist1d(num_samples: int, generation_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``num_samples`` MNIST-1D samples (the package's train and test parts together).

    Args:
        num_samples: Samples to generate (``num_samples // 10`` per class).
        generation_seed: Seed of the generator (42 is the package's default).

    Returns:
        Features ``(n, 40)`` float32 and labels int64.
    """
    if num_samples < NUM_CLASSES:
        raise ValueError(
            f"data.num_samples: expected an integer >= {NUM_CLASSES}. Received: {num_samples}"
        )
    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(generation_seed)
    with _global_rng_kept():
        data = make_dataset(args)
    features = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    return features, np.concatenate([data["y"], data["y_test"]]).astype(np.int64)


def build_mnist1d_split(
    cache_dir: str | os.PathLike,
    *,
    name: str | None = None,
    num_samples: int = 5000,
    generation_seed: int = 42,
    class_order: Sequence[int] = tuple(range(NUM_CLASSES)),
    classes_per_shard: int = 2,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    domain_incremental: bool = False,
    validation_fraction: float = 0.0,
) -> ShardDataset:
    """Class-incremental MNIST-1D: shard ``k`` holds the ``k``-th group of ``class_order``.

    Args:
        cache_dir: Root folder of the data cache.
        name: Dataset name in results (``mnist1d_split``, or ``mnist1d_split_domain`` when
            ``domain_incremental``, if ``None``).
        num_samples: Samples generated over all classes.
        generation_seed: Seed of the MNIST-1D generator.
        class_order: Classes in the order they are met; split into consecutive groups.
        classes_per_shard: Classes per shard (5 shards of 2 classes by default).
        heldout_fraction: Fraction of each shard held out, stratified by class.
        seed: Seed of the held-out split.
        domain_incremental: Label each sample by its class's position within its shard's
            group: one ``classes_per_shard``-way output shared by every shard.
        validation_fraction: Fraction of each training shard carved out as its validation
            split (seeded by ``seed``, stratified by class); 0: none.
    """
    groups = class_groups(class_order, classes_per_shard, NUM_CLASSES)
    params = {
        "mnist1d": version("mnist1d"),
        "num_samples": num_samples,
        "generation_seed": generation_seed,
        "groups": groups,
        "heldout_fraction": heldout_fraction,
        "seed": seed,
    }
    if domain_incremental:  # only then: the class-incremental cache keeps its key
        params["within_group_labels"] = True

    def write(folder: Path) -> None:
        x, y = generate_mnist1d(num_samples, generation_seed)
        write_class_incremental(
            folder, x, y, groups, heldout_fraction, seed, bool(domain_incremental)
        )

    params, write = with_validation(params, write, validation_fraction, seed)
    folder = cached_folder(cache_dir, "mnist1d_split", params, write)
    name = name or ("mnist1d_split_domain" if domain_incremental else "mnist1d_split")
    return open_splits(folder, name, classes_per_shard if domain_incremental else NUM_CLASSES)
