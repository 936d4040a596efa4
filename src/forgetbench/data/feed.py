"""tf.data input pipeline: a lazy index plan, sorted gathers, prefetched batches.

Each batch is ``(features, labels, weights, stream)``: ``weights`` is 1 for a real sample and 0
for a padding sample, so the train step can normalise by the real sample count; ``stream`` is 1
for a sample of the phase's own data and 0 for padding and for samples added by ``extra`` (such
as replayed ones), so ``samples_seen`` counts new data only and every strategy shares an x-axis.

Full batches are gathered several at a time (about ``gather_bytes`` per ``numpy_function``
call, one gather over the union of their indices, read shard by shard in sorted order and
written straight into a 64-byte aligned block that TensorFlow takes without copying) and split
into batches inside tf.data, so the per-call Python cost and the per-shard slicing of a gather
are paid once per block instead of once per batch. Each batch is the same as when gathered
alone: its samples in ascending index order, then its ``extra`` samples. Each call computes its
own part of the epoch's order (``plan.slice``), so the pipeline holds no index plan: its memory
does not grow with the dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from forgetbench.data.samplers import IndexPlan
from forgetbench.train.remainder import RemainderPolicy

Gather = Callable[..., tuple[np.ndarray, np.ndarray]]
ALIGNMENT = 64  # bytes: TensorFlow wraps aligned numpy arrays without copying them


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``ALIGNMENT``-byte boundary.

    ``numpy_function`` outputs that are not aligned are copied into a new tensor; aligned ones
    are used as they are (one copy of every block fewer).
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


Extra = Callable[[int, int], tuple[np.ndarray, np.ndarray]]


def array_gather(x: np.ndarray, y: np.ndarray) -> Gather:
    """The ``Feed.gather`` of in-memory arrays (``x[indices]``, ``y[indices]``)."""

    def gather(indices: np.ndarray, out: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
        if out is None:
            return x[indices], y[indices]
        out[0][...] = x[indices]
        out[1][...] = y[indices]
        return out

    return gather


@dataclass
class Feed:
    """Batches of one training phase, one tf.data pipeline per epoch.

    Attributes:
        gather: ``gather(indices, out=None)`` reads ``(features, labels)`` at global indices
            (any order), returning them in that order; with ``out=(x, y)`` it writes into
            those arrays (cast to their dtypes) and returns them.
        plan: The visiting order of the phase's samples, epoch by epoch
            (``plan.num_samples`` samples per epoch before the remainder policy).
        batch_size: Samples per batch.
        policy: Remainder policy.
        feature_shape: Shape of one sample's features.
        extra: Optional ``extra(epoch, b)`` returning ``extra_size`` samples ``(x, y)`` appended
            to batch ``b`` (replay); the remainder policy applies to the combined batch.
        extra_size: Samples ``extra`` adds to every batch.
        gather_bytes: Feature bytes read per gather call (several full batches at once); the
            batches are the same whatever its value.
    """

    gather: Gather
    plan: IndexPlan
    batch_size: int
    policy: RemainderPolicy
    feature_shape: tuple[int, ...]
    extra: Extra | None = None
    extra_size: int = 0
    gather_bytes: int = 2**23

    @property
    def num_samples(self) -> int:
        """Samples per epoch before the remainder policy."""
        return self.plan.num_samples

    @property
    def batches_per_epoch(self) -> int:
        """Batches in one epoch under the remainder policy."""
        return self.policy.num_batches(self.num_samples, self.batch_size)

    @property
    def samples_per_epoch(self) -> int:
        """Real samples trained on in one epoch under the remainder policy."""
        return self.policy.samples_fed(self.num_samples, self.batch_size)

    def batch(self, epoch: int, b: int) -> tuple[np.ndarray, ...]:
        """Features, labels, weights and stream flags of batch ``b`` of an epoch."""
        start = b * self.batch_size
        indices = self.plan.slice(epoch, start, min(start + self.batch_size, self.num_samples))
        parts = self._batches(indices[None], epoch, b)
        return tuple(part[0] for part in parts)

    @property
    def batches_per_call(self) -> int:
        """Full batches gathered per ``numpy_function`` call (about ``gather_bytes``)."""
        row = 4 * int(np.prod(self.feature_shape, dtype=np.int64))
        return max(1, int(self.gather_bytes) // max(1, row * (self.batch_size + self.extra_size)))

    def batches(self, epoch: int, first: int, count: int) -> tuple:
        """Full batches ``first .. first + count - 1`` stacked: arrays of shape ``(count, ...)``.

        Equal to stacking :meth:`batch` of each, with one sorted gather for all of them.
        """
        epoch, first, count, size = int(epoch), int(first), int(count), self.batch_size
        rows = self.plan.slice(epoch, first * size, (first + count) * size).reshape(count, size)
        return self._batches(rows, epoch, first)

    def _batches(self, rows: np.ndarray, epoch: int, first: int) -> tuple:
        """Batches of the global indices in ``rows`` (one row per batch, full or partial)."""
        size, fs, count, first = rows.shape[1], tuple(self.feature_shape), len(rows), int(first)
        n = self.extra_size if self.extra is not None else 0
        # pad: a partial batch, and missing extra samples, padded to full size with zero weight.
        pad = self.batch_size + self.extra_size - size - n if self.policy.pad_partial else 0
        width = size + n + pad  # each batch's own samples, then extra samples, then padding
        x = aligned_empty((count, width, *fs), np.float32)
        y = aligned_empty((count, width), np.int32)
        # Each batch's samples in ascending index order (as gathered alone), one gather for all.
        idx = np.sort(rows.astype(np.int64, copy=False), axis=1).ravel()
        if width == size:  # written in place: no copy of the block besides the reads
            self.gather(idx, out=(x.reshape(count * size, *fs), y.reshape(-1)))
        else:
            xs, ys = self.gather(idx)
            x[:, :size] = np.reshape(xs, (count, size, *fs))
            y[:, :size] = np.reshape(ys, (count, size))
            x[:, size + n :] = 0.0
            y[:, size + n :] = 0
        for j in range(count if n else 0):
            x_extra, y_extra = self.extra(int(epoch), first + j)
            if len(y_extra) != n or len(x_extra) != n:
                raise ValueError(
                    f"Feed.extra: expected {n} samples (extra_size) for batch {first + j}. "
                    f"Received {len(x_extra)} features and {len(y_extra)} labels"
                )
            x[j, size : size + n] = x_extra
            y[j, size : size + n] = y_extra
        w = aligned_empty(y.shape, np.float32)
        w[:, : size + n] = 1.0
        w[:, size + n :] = 0.0
        stream = aligned_empty(y.shape, np.float32)
        stream[:, :size] = 1.0
        stream[:, size:] = 0.0
        return x, y, w, stream

    def epoch(self, epoch: int) -> tf.data.Dataset:
        """The batches of one epoch as a prefetched tf.data pipeline.

        Full batches come in blocks of :attr:`batches_per_call`, each computed (its slice of the
        plan, one gather) by one ``numpy_function`` call and split into batches by ``unbatch``;
        the pipeline itself holds only the block numbers. A partial last batch (kept or padded)
        follows on its own, gathered when the pipeline is built.
        """
        size, per_call = self.batch_size, self.batches_per_call
        full = self.num_samples // size
        types = [tf.float32, tf.int32, tf.float32, tf.float32]
        epoch_t = tf.constant(epoch, tf.int64)

        def call(epoch_, first):
            return self.batches(epoch_, first, min(per_call, full - int(first)))

        def load_block(first):
            x, y, w, stream = tf.numpy_function(call, [epoch_t, first], types)
            x.set_shape((None, None, *self.feature_shape))
            for t in (y, w, stream):
                t.set_shape((None, None))
            return x, y, w, stream

        dataset = (
            tf.data.Dataset.range(0, full, per_call)
            .map(load_block, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .unbatch()
        )
        if self.batches_per_epoch > full:  # small: gathered now, saves tracing one more map
            dataset = dataset.concatenate(tf.data.Dataset.from_tensors(self.batch(epoch, full)))
        return dataset.apply(
            tf.data.experimental.assert_cardinality(self.batches_per_epoch)
        ).prefetch(tf.data.AUTOTUNE)
