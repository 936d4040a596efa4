"""Accuracy and loss on every shard's held-out split, in one compiled pass."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from forgetbench.data.store import ShardStore
from forgetbench.train.model import per_sample_loss


class Evaluator:
    """Evaluates a network on all held-out splits at once, splitting results by shard.

    The held-out splits are loaded into memory once (they are small by construction); every
    evaluation runs one compiled function over fixed-size batches and reduces per shard with
    segment sums.

    Args:
        heldout: The held-out split of every training shard.
        batch_size: Evaluation batch size (the last batch is padded, so one trace serves all).
    """

    def __init__(self, heldout: ShardStore, batch_size: int = 4096) -> None:
        self.x, self.y = heldout.load_all()
        self.x = self.x.astype(np.float32, copy=False)
        self.y = self.y.astype(np.int32, copy=False)
        self.shard = heldout.shard_ids()
        self.num_shards = heldout.num_shards
        self.batch_size = min(int(batch_size), len(self.y))
        self._fn = None
        self._net = None

    def _compiled(self, net: keras.Model):
        if self._net is not net:

            @tf.function(reduce_retracing=True)
            def evaluate_batch(x, y):
                logits = net(x, training=False)
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
            x, y = self.x[start:stop], self.y[start:stop]
            if stop - start < b:
                x = np.concatenate([x, np.zeros((b - len(x), *x.shape[1:]), x.dtype)])
                y = np.concatenate([y, np.zeros(b - len(y), y.dtype)])
            c, loss = fn(x, y)
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
