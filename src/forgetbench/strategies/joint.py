"""Joint training on all data in memory, uniformly shuffled: the upper bound."""

from __future__ import annotations

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.feed import Feed, array_gather
from forgetbench.data.samplers import ShuffledPlan
from forgetbench.remainder import RemainderPolicy
from forgetbench.strategies.base import Phase, Strategy


class Joint(Strategy):
    """All shards loaded into memory and shuffled i.i.d. each epoch."""

    name = "joint"

    def phases(
        self, dataset: ShardDataset, *, seed: int, batch_size: int, policy: RemainderPolicy
    ) -> list[Phase]:
        """A single phase over the in-memory concatenation of all shards."""
        x, y = dataset.train.load_all()

        return [
            Phase(
                index=0,
                train_shard=None,
                feed=Feed(
                    gather=array_gather(x, y),
                    plan=ShuffledPlan(0, len(y), seed),
                    batch_size=batch_size,
                    policy=policy,
                    feature_shape=dataset.train.feature_shape,
                ),
            )
        ]
