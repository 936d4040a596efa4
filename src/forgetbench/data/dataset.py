"""A shard dataset: training shards, their held-out (test) and optional validation splits."""

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
        validation: Validation split of every training shard (for choosing hyperparameters;
            never trained on), or ``None``.
    """

    name: str
    train: ShardStore
    heldout: ShardStore
    num_classes: int
    sources: dict[str, str] = field(default_factory=dict)
    validation: ShardStore | None = None

    def __post_init__(self) -> None:
        splits = {"Held-out": self.heldout}
        if self.validation is not None:
            splits["Validation"] = self.validation
        for what, store in splits.items():
            if store.num_shards != self.train.num_shards:
                raise ShardFormatError(
                    f"{what} folder {store.folder}: expected one split per training shard "
                    f"({self.train.num_shards}). Received {store.num_shards}"
                )
            if store.feature_shape != self.train.feature_shape:
                raise ShardFormatError(
                    f"{what} folder {store.folder}: expected feature shape "
                    f"{self.train.feature_shape}. Received {store.feature_shape}"
                )
        check_labels_below(self.num_classes, self.train, *splits.values())


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
