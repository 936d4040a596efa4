"""Experience replay: every batch of the current shard is joined by samples from a buffer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from forgetbench.batch import X, Y
from forgetbench.options import integer_at_least
from forgetbench.strategies.base import Phase, Plugin, value_counts
from forgetbench.strategies.replay_buffer import ClassBalancedBuffer, ReservoirBuffer

WRITE_POLICIES: dict[str, Callable] = {
    "reservoir": ReservoirBuffer,
    "class_balanced": ClassBalancedBuffer,
}


# The entropy of replay's random streams: 5 entries, the last one naming the purpose, so that no
# stream repeats an epoch order's (``samplers.epoch_seed``, 3 entries, zero-padded to 4).
DRAWS, WRITES = 1, 2


def draw_seed(seed: int, phase: int, epoch: int, batch: int) -> list[int]:
    """Entropy of the replay draw for one batch."""
    return [int(seed), int(phase), int(epoch), int(batch), DRAWS]


def write_seed(seed: int, phase: int) -> list[int]:
    """Entropy of the buffer's keep-or-drop choices as a phase's samples stream past it."""
    return [int(seed), int(phase), 0, 0, WRITES]


class Replay(Plugin):
    """Replays samples of earlier shards from a fixed-capacity buffer.

    The buffer takes in each shard's samples as a stream at the end of the shard's phase, so
    while shard ``k`` is trained it holds samples of shards ``0 .. k-1`` only and stays fixed
    (replay draws are reproducible whatever is gathered ahead). Each batch of ``B`` current
    samples gets ``size`` (or ``round(ratio * B)``) replayed samples, drawn uniformly without
    replacement from the buffer; the remainder policy applies to the combined batch.

    Args:
        capacity: Buffer capacity in samples (its bytes are reported in the summary).
        write: Buffer write policy: ``reservoir`` (Algorithm R over the whole stream) or
            ``class_balanced`` (capacity split evenly over classes seen, a reservoir each).
        size: Replayed samples per batch (set this or ``ratio``).
        ratio: Replayed samples per current sample.
        stream_chunk: Samples read at a time when streaming a shard into the buffer.
    """

    options = {"capacity": integer_at_least(0)}

    def __init__(
        self,
        capacity: int,
        write: str = "reservoir",
        size: int | None = None,
        ratio: float | None = None,
        stream_chunk: int = 4096,
    ) -> None:
        if (size is None) == (ratio is None):
            raise ValueError(
                "Replay: expected exactly one of replay size or ratio. "
                f"Received size={size!r}, ratio={ratio!r}"
            )
        if (size is not None and size < 0) or (ratio is not None and ratio < 0):
            raise ValueError(
                f"Replay: expected size >= 0 or ratio >= 0. Received size={size!r}, ratio={ratio!r}"
            )
        if write not in WRITE_POLICIES or not self.options["capacity"](capacity):
            raise ValueError(
                f"Replay: expected write in {sorted(WRITE_POLICIES)} and capacity >= 0. "
                f"Received write={write!r}, capacity={capacity!r}"
            )
        self.capacity, self.write = int(capacity), write
        self.size, self.ratio, self.stream_chunk = size, ratio, int(stream_chunk)
        self.buffer = None
        self.seed = 0
        self.log: list[dict] = []

    def setup(self, ctx) -> None:
        """Creates the empty buffer for the dataset's feature shape."""
        self.buffer = WRITE_POLICIES[self.write](self.capacity, ctx.feature_shape)
        ctx.memories["replay"] = self.buffer
        self.seed = ctx.seed

    def replay_size(self, batch_size: int) -> int:
        """Replayed samples per batch of ``batch_size`` current samples."""
        return int(self.size) if self.size is not None else int(round(self.ratio * batch_size))

    def before_phase(self, ctx, phase: Phase) -> None:
        """Attaches replay draws from the buffer to the phase's batches."""
        x, y, _ = self.buffer.items()
        n = min(len(y), self.replay_size(phase.feed.batch_size))
        self.log.append({"phase": phase.index, "buffer_size": len(y), "replayed_per_batch": n})
        if n == 0:
            return

        def draw(epoch: int, b: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(draw_seed(self.seed, phase.index, epoch, b))
            idx = np.sort(rng.choice(len(y), size=n, replace=False))
            return {X: x[idx], Y: y[idx]}

        phase.feed = dataclasses.replace(phase.feed, extra=draw, extra_size=n)

    def after_phase(self, ctx, phase: Phase) -> None:
        """Streams the phase's own samples (first-epoch order, by chunks) into the buffer."""
        feed = phase.feed
        rng = np.random.default_rng(write_seed(self.seed, phase.index))
        shard = -1 if phase.train_shard is None else phase.train_shard
        for start in range(0, feed.num_samples, self.stream_chunk):
            stop = min(start + self.stream_chunk, feed.num_samples)
            idx = np.sort(feed.plan.slice(0, start, stop))
            x, y = feed.gather(idx)
            self.buffer.add(np.asarray(x), np.asarray(y), np.full(len(y), shard, np.int32), rng)

    def summary(self) -> dict:
        """Buffer capacity, memory, contents per shard and class, and replay per phase."""
        _, y, shard = self.buffer.items()
        return {
            "capacity": self.capacity,
            "write": self.write,
            "buffer_bytes": int(self.buffer.nbytes),
            "buffer_size": int(len(y)),
            "per_shard": value_counts(shard),
            "per_class": value_counts(y),
            "phases": self.log,
        }
