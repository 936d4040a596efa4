"""Accuracy and loss on every shard's held-out split, in one compiled pass."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.store import ShardStore
from forgetbench.train.model import per_sample_loss

SCENARIOS = ("class_incremental", "task_incremental")


def task_classes(dataset: ShardDataset, scenario: str) -> list[tuple[int, ...]] | None:
    """The classes each shard's predictions are restricted to under ``scenario``.

    Args:
        dataset: The dataset being evaluated.
        scenario: ``class_incremental`` (one head: every class competes, ``None`` is returned)
            or ``task_incremental`` (the classes of the evaluated shard: those of its training
            and held-out splits).

    Raises:
        ValueError: for any other scenario.
    """
    if scenario not in SCENARIOS:
        raise ValueError(
            f"Invalid config value eval.scenario={scenario!r}. Expected one of {list(SCENARIOS)}."
        )
    if scenario == "class_incremental":
        return None
    pairs = zip(dataset.train.shards, dataset.heldout.shards, strict=True)
    return [tuple(sorted({*train.classes, *heldout.classes})) for train, heldout in pairs]


class Evaluator:
    """Evaluates a network on all held-out splits at once, splitting results by shard.

    The held-out splits are loaded into memory once (they are small by construction); every
    evaluation runs one compiled function over fixed-size batches and reduces per shard with
    segment sums.

    Args:
        heldout: The held-out split of every training shard.
        batch_size: Evaluation batch size (the last batch is padded, so one trace serves all).
        task_classes: Task-incremental evaluation: for every shard, the classes its samples are
            predicted among (other logits are set to -inf before the argmax and the loss).
            ``None``: class-incremental, every class competes.
    """

    def __init__(
        self,
        heldout: ShardStore,
        batch_size: int = 4096,
        task_classes: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.x, self.y = heldout.load_all()
        self.x = self.x.astype(np.float32, copy=False)
        self.y = self.y.astype(np.int32, copy=False)
        self.shard = heldout.shard_ids()
        self.num_shards = heldout.num_shards
        self.batch_size = min(int(batch_size), len(self.y))
        self.task_classes = task_classes
        self._fn = None
        self._net = None

    def _allowed(self, num_classes: int) -> tf.Tensor | None:
        """``(num_shards, num_classes)`` booleans: the classes each shard is predicted among."""
        if self.task_classes is None:
            return None
        allowed = np.zeros((self.num_shards, num_classes), bool)
        for shard, classes in enumerate(self.task_classes):
            allowed[shard, list(classes)] = True
        return tf.constant(allowed)

    def _compiled(self, net: keras.Model):
        if self._net is not net:
            allowed = self._allowed(net.output_shape[-1])

            @tf.function(reduce_retracing=True)
            def evaluate_batch(x, y, shard):
                logits = net(x, training=False)
                if allowed is not None:  # a per-sample mask: the classes of its shard
                    mask = tf.gather(allowed, shard)
                    logits = tf.where(mask, logits, tf.constant(-np.inf, logits.dtype))
                correct = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32) == y, tf.float32)
                return correct, per_sample_loss(y, logits)

            self._fn, self._net = evaluate_batch, net
        return self._fn

    def __call__(self, net: keras.Model) -> list[dict]:
        """Per-shard ``eval_shard``, ``accuracy``, ``loss`` and ``n_eval`` records."""
        fn = self._compiled(net)
        n, b = len(self.y), self.batch_size
        correct, losses = np.empty(n, np.float64), np.empty(n, np.float64)
        for start in range(0, n, b):
            stop = min(start + b, n)
            batch = [a[start:stop] for a in (self.x, self.y, self.shard)]
            if stop - start < b:  # padded to a full batch; the padding is cut off below
                batch = [
                    np.concatenate([a, np.zeros((b - len(a), *a.shape[1:]), a.dtype)])
                    for a in batch
                ]
            c, loss = fn(*batch)
            correct[start:stop] = c.numpy()[: stop - start]
            losses[start:stop] = loss.numpy()[: stop - start]
        counts = np.bincount(self.shard, minlength=self.num_shards)
        acc = np.bincount(self.shard, weights=correct, minlength=self.num_shards) / counts
        mean_loss = np.bincount(self.shard, weights=losses, minlength=self.num_shards) / counts
        return [
            {
                "eval_shard": j,
                "accuracy": float(acc[j]),
                "loss": float(mean_loss[j]),
                "n_eval": int(counts[j]),
            }
            for j in range(self.num_shards)
        ]
