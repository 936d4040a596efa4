"""Sequential per-shard training: the baseline that forgets."""

from __future__ import annotations

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.feed import Feed
from forgetbench.data.samplers import ShuffledPlan
from forgetbench.remainder import RemainderPolicy
from forgetbench.strategies.base import Phase, Strategy


class Sequential(Strategy):
    """Shards in order; ``train.epochs`` passes over each shard before the next."""

    name = "sequential"

    def phases(
        self, dataset: ShardDataset, *, seed: int, batch_size: int, policy: RemainderPolicy
    ) -> list[Phase]:
        """One phase per shard, each over that shard's samples only."""
        store = dataset.train
        return [
            Phase(
                index=k,
                train_shard=k,
                feed=Feed(
                    gather=store.gather,
                    plan=ShuffledPlan(int(store.offsets[k]), int(store.sizes[k]), seed, phase=k),
                    batch_size=batch_size,
                    policy=policy,
                    feature_shape=store.feature_shape,
                ),
            )
            for k in range(store.num_shards)
        ]
