"""tf.data input pipeline: an index plan in numpy, sorted gathers, prefetched batches.

Each batch is ``(features, labels, weights, stream)``: ``weights`` is 1 for a real sample and 0
for a padding sample, so the train step can normalise by the real sample count; ``stream`` is 1
for a sample of the phase's own data and 0 for padding and for samples added by ``extra`` (such
as replayed ones), so ``samples_seen`` counts new data only and every strategy shares an x-axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from forgetbench.train.remainder import RemainderPolicy

Gather = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
Extra = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


@dataclass
class Feed:
    """Batches of one training phase, one tf.data pipeline per epoch.

    Attributes:
        gather: Reads ``(features, labels)`` at sorted global indices.
        order: ``order(epoch)`` returns that epoch's global indices in visiting order.
        num_samples: Samples per epoch before the remainder policy.
        batch_size: Samples per batch.
        policy: Remainder policy.
        feature_shape: Shape of one sample's features.
        extra: Optional ``extra(epoch, b)`` returning ``extra_size`` samples ``(x, y)`` appended
            to batch ``b`` (replay); the remainder policy applies to the combined batch.
        extra_size: Samples ``extra`` adds to every batch.
    """

    gather: Gather
    order: Callable[[int], np.ndarray]
    num_samples: int
    batch_size: int
    policy: RemainderPolicy
    feature_shape: tuple[int, ...]
    extra: Extra | None = None
    extra_size: int = 0

    @property
    def batches_per_epoch(self) -> int:
        """Batches in one epoch under the remainder policy."""
        return self.policy.num_batches(self.num_samples, self.batch_size)

    @property
    def samples_per_epoch(self) -> int:
        """Real samples trained on in one epoch under the remainder policy."""
        return self.policy.samples_fed(self.num_samples, self.batch_size)

    def batch(self, order: np.ndarray, epoch: int, b: int) -> tuple[np.ndarray, ...]:
        """Features, labels, weights and stream flags of batch ``b`` of an epoch."""
        idx = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])
        xs, ys = self.gather(idx)
        xs, ys = [xs], [ys]
        if self.extra is not None and self.extra_size:
            x_extra, y_extra = self.extra(epoch, b)
            xs.append(x_extra)
            ys.append(y_extra)
        x = np.concatenate(xs).astype(np.float32, copy=False)
        y = np.concatenate(ys).astype(np.int32, copy=False)
        w = np.ones(len(y), dtype=np.float32)
        stream = np.zeros(len(y), dtype=np.float32)
        stream[: len(idx)] = 1.0
        pad = self.batch_size + self.extra_size - len(y)
        if pad > 0 and self.policy.pad_partial:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), dtype=np.float32)])
            y = np.concatenate([y, np.zeros(pad, dtype=np.int32)])
            w = np.concatenate([w, np.zeros(pad, dtype=np.float32)])
            stream = np.concatenate([stream, np.zeros(pad, dtype=np.float32)])
        return x, y, w, stream

    def epoch(self, epoch: int) -> tf.data.Dataset:
        """The batches of one epoch as a prefetched tf.data pipeline."""
        order = self.order(epoch)

        def load(b):
            x, y, w, stream = tf.numpy_function(
                lambda b_: self.batch(order, epoch, int(b_)),
                [b],
                [tf.float32, tf.int32, tf.float32, tf.float32],
            )
            x.set_shape((None, *self.feature_shape))
            for t in (y, w, stream):
                t.set_shape((None,))
            return x, y, w, stream

        return (
            tf.data.Dataset.range(self.batches_per_epoch)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )
