"""``shard_range``: a run on a contiguous part of a dataset's shards.

``shard_range: [start, stop]`` keeps shards ``start:stop`` of the training order (a Python
slice: ``null`` for an open end) in every split. It serves the tuning protocol of Chaudhry et
al. (2019): hyperparameters chosen on the first ``k`` shards (``[0, k]``), the methods then
compared on the rest (``[k, null]``).
"""

from __future__ import annotations

import dataclasses

from forgetbench.config_check import ConfigError
from forgetbench.data.dataset import ShardDataset


def parse_range(value) -> tuple[int | None, int | None] | None:
    """``shard_range`` as ``(start, stop)``, or ``None`` for all shards.

    Raises:
        ConfigError: for anything but ``null`` or a list of two integers or nulls.
    """
    if value is None:
        return None
    items = list(value) if isinstance(value, list | tuple) or hasattr(value, "__len__") else None
    ok = items is not None and len(items) == 2
    ok = ok and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in items)
    if not ok:
        raise ConfigError(
            f"Invalid config value shard_range={value!r}. Expected null (all shards) or "
            "[start, stop], integers or null (a slice of the training order), e.g. [0, 3]"
        )
    return items[0], items[1]


def select_shards(dataset: ShardDataset, value) -> ShardDataset:
    """``dataset`` restricted to the shards of ``shard_range`` (``value``), in every split."""
    bounds = parse_range(value)
    if bounds is None:
        return dataset
    start, stop = bounds
    names = set(dataset.train.names[start:stop])
    return dataclasses.replace(
        dataset,
        train=dataset.train.subset(start, stop),
        heldout=dataset.heldout.subset(start, stop),
        validation=None if dataset.validation is None else dataset.validation.subset(start, stop),
        sources={k: v for k, v in dataset.sources.items() if k in names},
    )
