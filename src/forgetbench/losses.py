"""The per-sample loss shared by training and evaluation."""

from __future__ import annotations

import keras
import tensorflow as tf


def per_sample_loss(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Cross-entropy of every sample (class logits, integer labels)."""
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
