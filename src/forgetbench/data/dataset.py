"""A shard dataset: training shards and their held-out evaluation splits."""

from __future__ import annotations

from dataclasses import dataclass, field

from forgetbench.data.errors import ShardFormatError
from forgetbench.data.store import ShardStore


@dataclass
class ShardDataset:
    """Training shards and a held-out split per shard, in the same order.

    Attributes:
        name: Dataset name used in results.
        train: Training shards.
        heldout: Held-out evaluation split of every training shard.
        num_classes: Number of classes of the output layer.
        sources: Shard name -> the file it came from, where the stores read derived files (a
            carved split); named when the data changed under a finished run.
    """

    name: str
    train: ShardStore
    heldout: ShardStore
    num_classes: int
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.heldout.num_shards != self.train.num_shards:
            raise ShardFormatError(
                f"Held-out folder {self.heldout.folder}: expected one split per training shard "
                f"({self.train.num_shards}). Received {self.heldout.num_shards}"
            )
        if self.heldout.feature_shape != self.train.feature_shape:
            raise ShardFormatError(
                f"Held-out folder {self.heldout.folder}: expected feature shape "
                f"{self.train.feature_shape}. Received {self.heldout.feature_shape}"
            )
        check_labels_below(self.num_classes, self.train, self.heldout)


def check_labels_below(num_classes: int, *stores: ShardStore) -> None:
    """Checks that every label of every shard of ``stores`` is below ``num_classes``.

    Raises:
        ShardFormatError: naming the first shard file holding a label out of range.
    """
    for store in stores:
        for shard in store.shards:
            if shard.classes and shard.classes[-1] >= num_classes:
                raise ShardFormatError(
                    f"Labels in {shard.source}: expected class ids below num_classes="
                    f"{num_classes}. Received label {shard.classes[-1]}"
                )
