"""tf.data input pipeline: a lazy index plan, sorted gathers, prefetched batches.

Each batch is a mapping of named columns (``forgetbench.batch``): ``x``, ``y``, ``weight`` (1
for a real sample, 0 for padding, so the train step can normalise by the real sample count),
``is_new`` (1 for a sample of the phase's own data, 0 for padding and for samples added by
``extra`` such as replayed ones, so ``samples_seen`` counts new data only and every strategy
shares an x-axis), and any column a plugin declares in ``columns``.

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

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from forgetbench.batch import IS_NEW, WEIGHT, Column, X, Y
from forgetbench.data.samplers import IndexPlan
from forgetbench.remainder import RemainderPolicy

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


Extra = Callable[[int, int], Mapping[str, np.ndarray]]
Batches = dict[str, np.ndarray]


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
        extra: Optional ``extra(epoch, b)`` returning ``extra_size`` rows appended to batch
            ``b`` (replay): a mapping with ``x``, ``y`` and any of ``columns``; the remainder
            policy applies to the combined batch.
        extra_size: Samples ``extra`` adds to every batch.
        columns: Columns beyond ``x, y, weight, is_new`` (a plugin's), by name.
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
    columns: Mapping[str, Column] = field(default_factory=dict)
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

    def batch(self, epoch: int, b: int) -> Batches:
        """The columns of batch ``b`` of an epoch."""
        start = b * self.batch_size
        indices = self.plan.slice(epoch, start, min(start + self.batch_size, self.num_samples))
        return {name: part[0] for name, part in self._batches(indices[None], epoch, b).items()}

    def column_specs(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Every column's per-sample shape and dtype, by name."""
        core = {
            X: (tuple(self.feature_shape), "float32"),
            Y: ((), "int32"),
            WEIGHT: ((), "float32"),
            IS_NEW: ((), "float32"),
        }
        return {**core, **{k: (tuple(c.shape), c.dtype) for k, c in self.columns.items()}}

    @property
    def batches_per_call(self) -> int:
        """Full batches gathered per ``numpy_function`` call (about ``gather_bytes``)."""
        row = 4 * int(np.prod(self.feature_shape, dtype=np.int64))
        return max(1, int(self.gather_bytes) // max(1, row * (self.batch_size + self.extra_size)))

    def batches(self, epoch: int, first: int, count: int) -> Batches:
        """Full batches ``first .. first + count - 1`` stacked: columns of shape ``(count, ...)``.

        Equal to stacking :meth:`batch` of each, with one sorted gather for all of them.
        """
        epoch, first, count, size = int(epoch), int(first), int(count), self.batch_size
        rows = self.plan.slice(epoch, first * size, (first + count) * size).reshape(count, size)
        return self._batches(rows, epoch, first)

    def blocks(self, epoch: int) -> Iterator[tuple[int, int]]:
        """``(first, count)`` of the blocks of an epoch.

        Full batches by :attr:`batches_per_call`, then a partial last batch (kept or padded)
        on its own.
        """
        full = self.num_samples // self.batch_size
        for first in range(0, full, self.batches_per_call):
            yield first, min(self.batches_per_call, full - first)
        if self.batches_per_epoch > full:
            yield full, 1

    def block(self, epoch: int, first: int, count: int) -> Batches:
        """Batches ``first .. first + count - 1`` of an epoch, stacked (one of :meth:`blocks`)."""
        if first * self.batch_size + count * self.batch_size <= self.num_samples:
            return self.batches(epoch, first, count)
        return {name: part[None] for name, part in self.batch(epoch, first).items()}

    def _batches(self, rows: np.ndarray, epoch: int, first: int) -> Batches:
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
        out = {X: x, Y: y}
        for name, column in self.columns.items():
            out[name] = aligned_empty((count, width, *column.shape), column.dtype)
            out[name][...] = column.fill
        for j in range(count if n else 0):
            rows_extra = self.extra(int(epoch), first + j)
            for name, values in rows_extra.items():
                if name not in out or len(values) != n:
                    raise ValueError(
                        f"Feed.extra: expected {n} rows (extra_size) of columns "
                        f"{sorted(out)} for batch {first + j}. Received column {name!r} "
                        f"with {len(values)} rows"
                    )
                out[name][j, size : size + n] = values
        w = aligned_empty(y.shape, np.float32)
        w[:, : size + n] = 1.0
        w[:, size + n :] = 0.0
        is_new = aligned_empty(y.shape, np.float32)
        is_new[:, :size] = 1.0
        is_new[:, size:] = 0.0
        return {**out, WEIGHT: w, IS_NEW: is_new}

    def epoch(self, epoch: int):
        """The batches of one epoch as a prefetched tf.data pipeline (mappings of columns).

        Full batches come in blocks of :attr:`batches_per_call`, each computed (its slice of the
        plan, one gather) by one ``numpy_function`` call and split into batches by ``unbatch``;
        the pipeline itself holds only the block numbers. A partial last batch (kept or padded)
        follows on its own, gathered when the pipeline is built.
        """
        import tensorflow as tf

        size, per_call = self.batch_size, self.batches_per_call
        full = self.num_samples // size
        specs = self.column_specs()
        names = list(specs)
        epoch_t = tf.constant(epoch, tf.int64)

        def call(epoch_, first):
            block = self.batches(epoch_, first, min(per_call, full - int(first)))
            return [block[name] for name in names]

        def load_block(first):
            types = [tf.as_dtype(specs[name][1]) for name in names]
            parts = tf.numpy_function(call, [epoch_t, first], types)
            for name, part in zip(names, parts, strict=True):
                part.set_shape((None, None, *specs[name][0]))
            return dict(zip(names, parts, strict=True))

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
