"""Index plans: the order in which one epoch visits global sample indices.

Plans are made in numpy from a seeded generator, so a run is reproducible and each epoch gets its
own permutation (``epoch_rng(seed, phase, epoch)``), independent of how far prefetching ran ahead.
"""

from __future__ import annotations

import numpy as np


def epoch_rng(seed: int, phase: int, epoch: int) -> np.random.Generator:
    """The generator for one epoch of one phase of a run."""
    return np.random.default_rng([seed, phase, epoch])


def shard_order(offset: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of one shard's global indices (the sequential feed)."""
    return offset + rng.permutation(size).astype(np.int64)


def uniform_order(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of all global indices (the joint feed)."""
    return rng.permutation(num_samples).astype(np.int64)


def cross_shard_order(sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An order of all samples that spreads every shard evenly over the epoch.

    Shard ``k``'s ``n_k`` samples get the positions ``(i + u_i) / n_k`` (``u_i`` uniform, jittered
    stratification), all positions are merged by sorting, and each shard's slots are filled with
    a random permutation of its samples. So every sample appears exactly once, no shard is
    truncated, and every window of ``B`` consecutive slots holds ``B * n_k / N`` samples of shard
    ``k`` within ``2 + 2 * K * n_k / N`` (``K`` shards), i.e. in proportion to what remains of each
    shard, with far less spread than a uniform shuffle.

    Args:
        sizes: Number of samples of each shard, in global index order.
        rng: numpy Generator of this epoch.

    Returns:
        Global indices (int64) of length ``sizes.sum()``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    keys = np.empty(int(offsets[-1]))  # filled in place: one N-sized float array at a time
    for k, n in enumerate(sizes):
        keys[offsets[k] : offsets[k + 1]] = (np.arange(n) + rng.random(n)) / n
    slots = np.argsort(keys, kind="stable")
    del keys
    shard_ids = np.repeat(np.arange(len(sizes), dtype=np.min_scalar_type(len(sizes))), sizes)
    shard_of_slot = shard_ids[slots]
    del slots, shard_ids
    order = np.empty(int(offsets[-1]), dtype=np.int64)
    for k, n in enumerate(sizes):
        order[shard_of_slot == k] = offsets[k] + rng.permutation(n)
    return order
