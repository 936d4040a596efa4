"""GDumb (Prabhu, Torr & Dokania 2020): a greedy class-balanced memory, and a model trained on it.

GDumb never trains on the stream. Each new sample is offered to a memory of ``capacity``
samples: stored while the memory has room; once full, stored only while its class holds fewer
than ``capacity // classes seen`` samples, in place of a random sample of the largest class
(the first such class on ties). At every phase end the network is reset to the run's initial
weights and trained on the memory alone for ``epochs`` epochs (a fresh optimizer state, the
run's batch size and remainder policy, a seeded order per epoch). The curves between phase ends
show the last memory-trained model; each phase end shows the model as its training ended.

The official code reports the best held-out accuracy over the memory training's epochs (model
selection on the test split); here the accuracy is the one at the end of that training. It also
trains with SGD under cosine annealing with warm restarts and CutMix: here the run's optimizer,
without augmentation.
"""

from __future__ import annotations

import numpy as np

from forgetbench.data.feed import Feed, array_gather
from forgetbench.data.samplers import ShuffledPlan
from forgetbench.options import int_at_least
from forgetbench.strategies.base import Phase, Plugin, value_counts

PLAN_KEY = 1 << 20  # the memory's epoch orders: phase keys no stream order uses


class GreedyClassBalancedMemory:
    """GDumb's sampler over a stream of ``(x, y)`` items, in preallocated arrays.

    Args:
        capacity: Samples kept.
        feature_shape: Shape of one sample's features.
    """

    def __init__(self, capacity: int, feature_shape: tuple[int, ...]) -> None:
        self.capacity = int(capacity)
        self.x = np.empty((self.capacity, *feature_shape), np.float32)
        self.y = np.empty(self.capacity, np.int64)
        self.shard = np.empty(self.capacity, np.int32)
        self.size = 0
        self.counts: dict[int, int] = {}
        self.seen_classes: set[int] = set()

    def add(self, x: np.ndarray, y: np.ndarray, shard: int, rng: np.random.Generator) -> None:
        """Offers each item of the chunk, in order."""
        for xi, yi in zip(x, (int(v) for v in y), strict=True):
            self.seen_classes.add(yi)
            if self.size < self.capacity:
                slot = self.size
                self.size += 1
            elif self.counts.get(yi, 0) < self.capacity // len(self.seen_classes):
                largest = max(sorted(self.counts), key=lambda c: self.counts[c])
                slot = int(rng.choice(np.flatnonzero(self.y[: self.size] == largest)))
                self.counts[largest] -= 1
            else:
                continue
            self.x[slot], self.y[slot], self.shard[slot] = xi, yi, shard
            self.counts[yi] = self.counts.get(yi, 0) + 1

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """The stored features and labels."""
        return self.x[: self.size], self.y[: self.size]


class GDumb(Plugin):
    """Trains only on a greedy class-balanced memory, from the initial weights at each phase end.

    Args:
        capacity: Samples in the memory (>= 1).
        epochs: Epochs of training on the memory at each phase end (>= 1).
        stream_chunk: Samples read at a time when offering a shard to the memory.
    """

    label = "GDumb"
    options = {"capacity": int_at_least(1), "epochs": int_at_least(1)}

    def __init__(self, capacity: int = 500, epochs: int = 30, stream_chunk: int = 4096) -> None:
        self.check_options(capacity=capacity, epochs=epochs)
        self.capacity, self.epochs, self.stream_chunk = int(capacity), int(epochs), stream_chunk
        self.log: list[dict] = []

    def setup(self, ctx) -> None:
        """Keeps the run's initial weights; creates the empty memory."""
        self.initial = [w.copy() for w in ctx.net.get_weights()]
        self.memory = GreedyClassBalancedMemory(self.capacity, ctx.feature_shape)
        ctx.memories["gdumb"] = self.memory
        self.log = []

    def before_phase(self, ctx, phase: Phase) -> None:
        """The stream passes without training."""
        phase.updates = False

    def after_phase(self, ctx, phase: Phase) -> None:
        """Offers the phase's samples to the memory, then trains from the initial weights."""
        feed = phase.feed
        rng = ctx.rng(phase.index)
        shard = -1 if phase.train_shard is None else phase.train_shard
        for start in range(0, feed.num_samples, self.stream_chunk):
            stop = min(start + self.stream_chunk, feed.num_samples)
            x, y = feed.gather(np.sort(feed.plan.slice(0, start, stop)))
            self.memory.add(np.asarray(x), np.asarray(y), shard, rng)
        x, y = self.memory.items()
        ctx.net.set_weights(self.initial)
        ctx.reset_optimizer()
        memory_feed = Feed(
            gather=array_gather(x.copy(), y.copy()),
            plan=ShuffledPlan(0, len(y), ctx.seed, phase=PLAN_KEY + phase.index),
            batch_size=feed.batch_size,
            policy=feed.policy,
            feature_shape=tuple(ctx.feature_shape),
        )
        finite = ctx.train_network(memory_feed, self.epochs)
        if not finite:
            ctx.diverged = (
                f"non-finite loss or weights in GDumb's training after phase {phase.index}"
            )
        self.log.append({"phase": phase.index, "memory_size": len(y), "finite": finite})

    def summary(self) -> dict:
        """Capacity, training epochs, memory bytes and content per shard and class."""
        x, y = self.memory.items()
        shards = self.memory.shard[: self.memory.size]

        return {
            "capacity": self.capacity,
            "epochs": self.epochs,
            "memory_bytes": int(x.nbytes + y.nbytes),
            "memory_size": len(y),
            "per_shard": value_counts(shards),
            "per_class": value_counts(y),
            "phases": self.log,
        }
