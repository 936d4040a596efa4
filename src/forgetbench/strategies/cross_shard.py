"""Cross-shard mixing: every batch draws from every shard, straight from the memory maps."""

from __future__ import annotations

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.feed import Feed
from forgetbench.data.samplers import CrossShardPlan
from forgetbench.remainder import RemainderPolicy
from forgetbench.strategies.base import Phase, Strategy


class CrossShard(Strategy):
    """One phase over all shards, stratified so each batch holds every shard in proportion."""

    name = "cross_shard"

    def phases(
        self, dataset: ShardDataset, *, seed: int, batch_size: int, policy: RemainderPolicy
    ) -> list[Phase]:
        """A single mixed phase; each epoch is a fresh stratified order of every sample."""
        store = dataset.train
        return [
            Phase(
                index=0,
                train_shard=None,
                feed=Feed(
                    gather=store.gather,
                    plan=CrossShardPlan(store.sizes, seed),
                    batch_size=batch_size,
                    policy=policy,
                    feature_shape=store.feature_shape,
                ),
            )
        ]
