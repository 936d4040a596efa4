"""The Keras model wrapper whose train step normalises by real sample counts."""

from __future__ import annotations

import keras
import tensorflow as tf

from forgetbench.train.remainder import RemainderPolicy


def per_sample_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of every sample (class logits, integer labels)."""
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


class ShardModel(keras.Model):
    """Wraps a network ``net`` with a train step for ``(features, labels, weights)`` batches.

    The data loss of a batch is ``sum_i w_i * l_i / sum_i w_i`` (exact policies: padding samples
    have ``w = 0`` and do not dilute the mean) or ``sum_i w_i * l_i / batch_length`` (``naive``,
    what ``sum_over_batch_size`` does). The reported loss and accuracy are weighted by the number
    of real samples, so an epoch's loss is the mean per-sample loss.

    Args:
        net: The network mapping features to class logits (saved as ``model.keras``).
        policy: Remainder policy.
    """

    def __init__(self, net: keras.Model, policy: RemainderPolicy, **kwargs) -> None:
        super().__init__(**kwargs)
        self.net = net
        self.policy = policy
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.samples_seen = keras.Variable(0, dtype="int64", trainable=False, name="samples_seen")
        self.batches_seen = keras.Variable(0, dtype="int64", trainable=False, name="batches_seen")

    def call(self, inputs, training=False):
        """Class logits of ``inputs``."""
        return self.net(inputs, training=training)

    @property
    def metrics(self):
        """Trackers reset at the start of every epoch."""
        return [self.loss_tracker, self.accuracy_tracker]

    def data_loss(self, x, y, w, training: bool = True) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Normalised batch loss, real sample count and logits."""
        logits = self.net(x, training=training)
        count = tf.reduce_sum(w)
        total = tf.reduce_sum(per_sample_loss(y, logits) * w)
        denominator = count if self.policy.exact else tf.cast(tf.shape(w)[0], total.dtype)
        return total / tf.maximum(denominator, 1.0), count, logits

    def train_step(self, data):
        """One optimizer step on one batch."""
        x, y, w = data
        with tf.GradientTape() as tape:
            loss, count, logits = self.data_loss(x, y, w)
            objective = loss + tf.add_n([loss * 0.0, *self.net.losses])
        variables = self.net.trainable_variables
        grads = tape.gradient(objective, variables)
        self.optimizer.apply(grads, variables)
        self.loss_tracker.update_state(loss, sample_weight=count)
        self.accuracy_tracker.update_state(y, logits, sample_weight=w)
        self.samples_seen.assign_add(tf.cast(count, "int64"))
        self.batches_seen.assign_add(1)
        return {m.name: m.result() for m in self.metrics}
