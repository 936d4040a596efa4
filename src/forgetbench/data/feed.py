"""tf.data input pipeline: an index plan in numpy, sorted gathers, prefetched batches.

Each batch is ``(features, labels, weights)``: ``weights`` is 1 for a real sample and 0 for a
padding sample, so the train step can normalise by the real sample count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from forgetbench.train.remainder import RemainderPolicy

Gather = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


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
    """

    gather: Gather
    order: Callable[[int], np.ndarray]
    num_samples: int
    batch_size: int
    policy: RemainderPolicy
    feature_shape: tuple[int, ...]

    @property
    def batches_per_epoch(self) -> int:
        """Batches in one epoch under the remainder policy."""
        return self.policy.num_batches(self.num_samples, self.batch_size)

    @property
    def samples_per_epoch(self) -> int:
        """Real samples trained on in one epoch under the remainder policy."""
        return self.policy.samples_fed(self.num_samples, self.batch_size)

    def batch(self, order: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, labels and weights of batch ``b`` of an epoch visiting ``order``."""
        idx = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])
        x, y = self.gather(idx)
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int32)
        w = np.ones(len(idx), dtype=np.float32)
        pad = self.batch_size - len(idx)
        if pad and self.policy.pad_partial:
            x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), dtype=np.float32)])
            y = np.concatenate([y, np.zeros(pad, dtype=np.int32)])
            w = np.concatenate([w, np.zeros(pad, dtype=np.float32)])
        return x, y, w

    def epoch(self, epoch: int) -> tf.data.Dataset:
        """The batches of one epoch as a prefetched tf.data pipeline."""
        order = self.order(epoch)

        def load(b):
            x, y, w = tf.numpy_function(
                lambda b_: self.batch(order, int(b_)), [b], [tf.float32, tf.int32, tf.float32]
            )
            x.set_shape((None, *self.feature_shape))
            y.set_shape((None,))
            w.set_shape((None,))
            return x, y, w

        return (
            tf.data.Dataset.range(self.batches_per_epoch)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )
