"""Cross-shard batches when shards outnumber batch slots (K > B): what holds, over many seeds."""

import numpy as np
import pytest

from forgetbench.data.samplers import CrossShardPlan

B = 32


def batch_counts(sizes: np.ndarray, seed: int) -> np.ndarray:
    """Samples of each shard in each full batch of the epoch's order, ``(batches, K)``."""
    plan = CrossShardPlan(sizes, seed=seed)
    order = plan.order(0)
    assert np.array_equal(np.sort(order), np.arange(plan.num_samples))  # each sample once
    shard = np.searchsorted(plan.offsets, order, side="right") - 1
    batches = len(order) // B
    counts = np.zeros((batches, len(sizes)), np.int64)
    np.add.at(counts, (np.repeat(np.arange(batches), B), shard[: batches * B]), 1)
    return counts


@pytest.mark.parametrize(("shards", "low", "high"), [(200, 10, 11), (500, 5, 40), (1000, 3, 30)])
def test_each_shard_appears_evenly_and_at_most_its_share_plus_one(shards, low, high):
    for seed in range(12):
        sizes = np.random.default_rng([seed, shards]).integers(low, high, shards)
        total = int(sizes.sum())
        assert shards > B
        counts = batch_counts(sizes, seed)
        # At most ceil(B n_k / N) + 1 samples of a shard in a batch (2 when n_k < N / B).
        assert np.all(counts <= np.ceil(B * sizes / total) + 1)
        # Shard k appears every N / (B n_k) batches (ceil(K / B) for equal sizes), never more
        # than twice that apart (from the epoch's start and to its end too).
        every = np.ceil(total / (B * sizes))
        if low + 1 == high:
            assert np.all(every == np.ceil(shards / B))
        for k in range(shards):
            seen = np.flatnonzero(counts[:, k])
            gaps = np.diff(np.concatenate([[-1], seen, [len(counts)]]))
            assert gaps.max() <= 2 * every[k] + 1, (seed, k, gaps.max(), every[k])
            # And on average once per expected interval: as many batches as its share.
            assert abs(len(seen) - len(counts) / every[k]) <= len(counts) / every[k] * 0.5 + 2
