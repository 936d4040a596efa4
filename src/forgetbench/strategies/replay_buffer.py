"""Fixed-capacity replay buffers filled online from a stream of samples.

``Reservoir`` is Vitter's Algorithm R, vectorised per chunk of the stream: after ``n`` items each
one is kept with probability exactly ``capacity / n``. ``ClassBalancedBuffer`` splits the capacity
evenly over the classes seen so far, each class a reservoir of its own.
"""

from __future__ import annotations

import numpy as np


class Reservoir:
    """Algorithm R over a stream of ``(x, y, shard)`` items, in preallocated arrays.

    Args:
        capacity: Maximum number of items kept.
        feature_shape: Shape of one item's features.
        dtype: Feature dtype.
    """

    def __init__(self, capacity: int, feature_shape: tuple[int, ...], dtype=np.float32) -> None:
        self.capacity = int(capacity)
        self.x = np.empty((self.capacity, *feature_shape), dtype=dtype)
        self.y = np.empty(self.capacity, dtype=np.int64)
        self.shard = np.empty(self.capacity, dtype=np.int32)
        self.size = 0
        self.seen = 0

    def add(self, x: np.ndarray, y: np.ndarray, shard: np.ndarray, rng: np.random.Generator):
        """Streams a chunk of items past the reservoir, in order."""
        n = len(y)
        positions = self.seen + np.arange(n)  # 0-based stream position of each item
        slots = np.where(
            positions < self.capacity,
            positions,
            np.floor(rng.random(n) * (positions + 1)).astype(np.int64),
        )
        keep = np.flatnonzero(slots < self.capacity)
        # Later items overwrite earlier ones in the same slot: keep the last write per slot.
        last = len(keep) - 1 - np.unique(slots[keep][::-1], return_index=True)[1]
        chosen = keep[last]
        self.x[slots[chosen]] = x[chosen]
        self.y[slots[chosen]] = y[chosen]
        self.shard[slots[chosen]] = shard[chosen]
        self.size = min(self.capacity, self.seen + n)
        self.seen += n

    def resize(self, capacity: int, rng: np.random.Generator) -> None:
        """Changes the capacity; when shrinking, keeps a uniformly random subset of the items.

        A uniform subset of a uniform sample is uniform, so Algorithm R stays exact: each of the
        ``seen`` items is kept with probability ``capacity / seen`` afterwards too.

        Raises:
            ValueError: when growing past the items held after some were dropped: the dropped
                ones cannot be drawn back, so no uniform sample of the larger size exists.
        """
        capacity = int(capacity)
        if capacity > self.size and self.seen > self.size:
            raise ValueError(
                f"Reservoir.resize: expected a capacity <= {self.size} (the items held; "
                f"{self.seen - self.size} of the {self.seen} seen were dropped). "
                f"Received {capacity}"
            )
        keep = np.arange(self.size)
        if self.size > capacity:
            keep = np.sort(rng.choice(self.size, size=capacity, replace=False))
        arrays = [
            np.empty((capacity, *a.shape[1:]), dtype=a.dtype) for a in (self.x, self.y, self.shard)
        ]
        for new, old in zip(arrays, (self.x, self.y, self.shard), strict=True):
            new[: len(keep)] = old[keep]
        self.x, self.y, self.shard = arrays
        self.capacity, self.size = capacity, len(keep)

    @property
    def items(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored features, labels and shard ids."""
        return self.x[: self.size], self.y[: self.size], self.shard[: self.size]


class ReservoirBuffer:
    """A replay buffer with one reservoir over the whole stream.

    Args:
        capacity: Maximum number of samples kept.
        feature_shape: Shape of one sample's features.
    """

    def __init__(self, capacity: int, feature_shape: tuple[int, ...]) -> None:
        self.reservoir = Reservoir(capacity, feature_shape)

    def add(self, x, y, shard, rng: np.random.Generator) -> None:
        """Streams a chunk of samples past the buffer."""
        self.reservoir.add(x, y, shard, rng)

    def items(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stored features, labels and shard ids."""
        return self.reservoir.items

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays."""
        r = self.reservoir
        return r.x.nbytes + r.y.nbytes + r.shard.nbytes


class ClassBalancedBuffer:
    """Capacity split evenly over the classes seen so far, each class a reservoir of its own.

    When a new class appears, every class's share becomes ``capacity // classes`` (the first
    ``capacity % classes`` classes get one more), and classes over their new share drop a
    uniformly random part of their items. Once full, per-class counts differ by at most one.

    Args:
        capacity: Maximum number of samples kept over all classes.
        feature_shape: Shape of one sample's features.
    """

    def __init__(self, capacity: int, feature_shape: tuple[int, ...]) -> None:
        self.capacity = int(capacity)
        self.feature_shape = tuple(feature_shape)
        self.classes: dict[int, Reservoir] = {}

    def _rebalance(self, new_classes: list[int], rng: np.random.Generator) -> None:
        for c in new_classes:
            self.classes[c] = Reservoir(0, self.feature_shape)
        share, extra = divmod(self.capacity, len(self.classes))
        for i, c in enumerate(sorted(self.classes)):
            self.classes[c].resize(share + (i < extra), rng)

    def add(self, x, y, shard, rng: np.random.Generator) -> None:
        """Streams a chunk of samples past the buffer, each to its class's reservoir."""
        new = sorted(set(np.unique(y).tolist()) - set(self.classes))
        if new:
            self._rebalance(new, rng)
        for c in np.unique(y):
            mask = y == c
            self.classes[int(c)].add(x[mask], y[mask], shard[mask], rng)

    def items(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stored features, labels and shard ids (class by class)."""
        parts = [r.items for _, r in sorted(self.classes.items())]
        if not parts:
            return (
                np.empty((0, *self.feature_shape), np.float32),
                np.empty(0, np.int64),
                np.empty(0, np.int32),
            )
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays."""
        return sum(r.x.nbytes + r.y.nbytes + r.shard.nbytes for r in self.classes.values())
