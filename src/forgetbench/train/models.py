"""Model zoo: small Keras networks that output class logits."""

from __future__ import annotations

from collections.abc import Sequence

import keras


def logreg(input_shape: Sequence[int], num_classes: int) -> keras.Model:
    """Multinomial logistic regression: one dense layer on the flattened input."""
    inputs = keras.Input(shape=tuple(input_shape))
    logits = keras.layers.Dense(num_classes, name="logits")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, logits, name="logreg")


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
) -> keras.Model:
    """Multi-layer perceptron on the flattened input.

    Args:
        input_shape: Shape of one sample's features.
        num_classes: Number of output logits.
        hidden: Width of each hidden layer.
        activation: Activation of the hidden layers.
    """
    inputs = keras.Input(shape=tuple(input_shape))
    h = keras.layers.Flatten()(inputs)
    for i, width in enumerate(hidden):
        h = keras.layers.Dense(int(width), activation=activation, name=f"hidden_{i}")(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(inputs, logits, name="mlp")
