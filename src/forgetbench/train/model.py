"""The Keras model wrapper whose train step normalises by real sample counts."""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from forgetbench.train.remainder import RemainderPolicy

Penalty = Callable[[], tf.Tensor]


def per_sample_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of every sample (class logits, integer labels)."""
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


class ShardModel(keras.Model):
    """Wraps a network ``net`` with a train step for ``(features, labels, weights, stream)``.

    Exact policies (``policy.exact``): the data loss of an update is the mean per-sample loss over
    the real samples it saw, ``sum_i w_i l_i / sum_i w_i`` (padding has ``w = 0``). With
    ``accumulation_steps = k > 1`` the train step adds the gradient of ``sum_i w_i l_i`` and the
    count ``sum_i w_i`` of each micro-batch to accumulators and applies ``sum / count`` once per
    ``k`` micro-batches, so the update equals one step on the concatenation of the ``k``
    micro-batches; :meth:`flush` applies a partial group (end of an epoch or shard), so nothing
    carries over between ``fit()`` calls.

    ``naive`` policy: what Keras does. Each batch's loss is divided by its length
    (``sum_over_batch_size``) and accumulation is the optimizer's own
    ``gradient_accumulation_steps`` (equal weight per micro-batch, carried across ``fit()`` calls).

    Penalties (strategy terms such as EWC, and the network's own regularisation losses) are added
    once per update, not per micro-batch. The reported loss and accuracy are weighted by real
    sample counts, so an epoch's loss is the mean per-sample loss.

    Args:
        net: The network mapping features to class logits (saved as ``model.keras``).
        policy: Remainder policy.
        accumulation_steps: Micro-batches per optimizer update (``k >= 1``).
    """

    def __init__(
        self, net: keras.Model, policy: RemainderPolicy, accumulation_steps: int = 1, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if int(accumulation_steps) < 1:
            raise ValueError(
                "Invalid config value train.accumulation_steps="
                f"{accumulation_steps!r}. Expected an integer >= 1."
            )
        self.net = net
        self.policy = policy
        self.accumulation_steps = int(accumulation_steps)
        self.penalties: list[Penalty] = []
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.penalty_tracker = keras.metrics.Mean(name="penalty")
        # Counters and accumulators are plain ``tf.Variable``s: their ``assign_add`` is one
        # graph op, where a ``keras.Variable``'s is a read, an add and an assign.
        self.samples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_seen")
        self.batches_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_seen")
        self.exact_accumulation = policy.exact and self.accumulation_steps > 1
        if self.exact_accumulation:
            self._grad_sums = [
                tf.Variable(tf.zeros_like(v), trainable=False, name=f"grad_sum_{i}")
                for i, v in enumerate(net.trainable_variables)
            ]
            self._acc_count = tf.Variable(0.0, trainable=False, name="accumulated_samples")
            self._acc_micro = tf.Variable(0, dtype=tf.int64, trainable=False, name="micro")
        self._flush_fn = None

    def compile(self, optimizer, **kwargs) -> None:
        """Compiles and builds the optimizer, so updates can run inside conditionals."""
        super().compile(optimizer=optimizer, **kwargs)
        self.optimizer.build(self.net.trainable_variables)

    def call(self, inputs, training=False):
        """Class logits of ``inputs``."""
        return self.net(inputs, training=training)

    @property
    def metrics(self):
        """Trackers reset at the start of every epoch."""
        return [self.loss_tracker, self.accuracy_tracker, self.penalty_tracker]

    def penalty(self) -> tf.Tensor:
        """Sum of the per-update terms: strategy penalties and the network's own losses."""
        return tf.add_n([tf.zeros(()), *(p() for p in self.penalties), *self.net.losses])

    @property
    def has_penalty(self) -> bool:
        """Whether any per-update term exists (decided when the train step is traced)."""
        return bool(self.penalties or self.net.losses)

    def _forward(self, x, y, w):
        logits = self.net(x, training=True)
        count = tf.reduce_sum(w)
        total = tf.reduce_sum(per_sample_loss(y, logits) * w)
        return logits, count, total

    def _track(self, y, logits, w, stream, total, count, penalty):
        self.loss_tracker.update_state(total / tf.maximum(count, 1.0), sample_weight=count)
        self.accuracy_tracker.update_state(y, logits, sample_weight=w)
        self.penalty_tracker.update_state(penalty)
        self.samples_seen.assign_add(tf.cast(tf.reduce_sum(stream), tf.int64), read_value=False)
        self.batches_seen.assign_add(1, read_value=False)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        """One micro-batch: an optimizer step, or an accumulation (exact, ``k > 1``)."""
        if self.exact_accumulation:
            return self._accumulate_step(data)
        x, y, w, stream = data
        variables = self.net.trainable_variables
        with tf.GradientTape() as tape:
            logits, count, total = self._forward(x, y, w)
            denominator = count if self.policy.exact else tf.cast(tf.shape(w)[0], total.dtype)
            penalty = self.penalty()
            objective = total / tf.maximum(denominator, 1.0) + penalty
        self.optimizer.apply(tape.gradient(objective, variables), variables)
        return self._track(y, logits, w, stream, total, count, penalty)

    def _accumulate_step(self, data):
        x, y, w, stream = data
        with tf.GradientTape() as tape:
            logits, count, total = self._forward(x, y, w)
        grads = tape.gradient(total, self.net.trainable_variables)
        for acc, g in zip(self._grad_sums, grads, strict=True):
            acc.assign_add(g, read_value=False)
        self._acc_count.assign_add(count, read_value=False)
        micro = self._acc_micro.assign_add(1)
        tf.cond(
            micro >= self.accumulation_steps, self._apply_accumulated, lambda: tf.constant(False)
        )
        penalty = self.penalty() if self.has_penalty else tf.zeros(())
        return self._track(y, logits, w, stream, total, count, penalty)

    def _apply_accumulated(self) -> tf.Tensor:
        variables = self.net.trainable_variables
        count = tf.maximum(self._acc_count, 1.0)
        grads = [s / count for s in self._grad_sums]
        if self.has_penalty:
            with tf.GradientTape() as tape:
                penalty = self.penalty()
            penalty_grads = tape.gradient(penalty, variables)
            grads = [
                g if pg is None else g + pg for g, pg in zip(grads, penalty_grads, strict=True)
            ]
        self.optimizer.apply(grads, variables)
        for acc in self._grad_sums:
            acc.assign(tf.zeros_like(acc), read_value=False)
        self._acc_count.assign(0.0, read_value=False)
        self._acc_micro.assign(0, read_value=False)
        return tf.constant(True)

    def flush(self) -> bool:
        """Applies a partly filled accumulation group; returns whether an update was made.

        Called at the end of every epoch and shard phase, so no accumulated gradient crosses a
        shard boundary or a ``fit()`` call. A no-op without exact accumulation.
        """
        if not self.exact_accumulation:
            return False
        if self._flush_fn is None:
            self._flush_fn = tf.function(
                lambda: tf.cond(
                    self._acc_micro > 0, self._apply_accumulated, lambda: tf.constant(False)
                )
            )
        return bool(self._flush_fn())
