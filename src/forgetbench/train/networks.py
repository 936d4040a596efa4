"""Model zoo: small Keras networks that output class logits.

Every model takes ``init``, the weight initialisation of its layers (see :data:`INITS`):

- ``keras``: Keras's defaults, Glorot-uniform weights and zero biases;
- ``torch``: PyTorch's ``nn.Linear`` / ``nn.Conv2d`` defaults, weights and biases uniform in
  ``+-1/sqrt(fan_in)`` (``kaiming_uniform_`` with ``a=sqrt(5)``), ``fan_in`` being the inputs of
  a dense unit or ``in_channels * kernel_height * kernel_width`` of a convolution;
- ``he``: Keras's He normal (normal with standard deviation ``sqrt(2 / fan_in)``, truncated at
  two standard deviations and rescaled) and zero biases.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from forgetbench.options import invalid_message, one_of

INITS = ("keras", "torch", "he")
INIT_RULE = one_of(INITS)  # model.init, checked before any work and by every model


def check_init(init: str) -> str:
    """Returns ``init`` if it is one of :data:`INITS`, else raises naming the config key."""
    if not INIT_RULE(init):
        raise ValueError(invalid_message("model.init", init, INIT_RULE))
    return init


def initializers(init: str, fan_in: int, seed: int | None = None) -> dict:
    """Keyword arguments setting a layer's kernel and bias initialisers under ``init``.

    Args:
        init: One of :data:`INITS`.
        fan_in: Inputs of one unit (``in_channels * kh * kw`` for a convolution).
        seed: Seed of the kernel's (and, for ``torch``, the bias's) draw; ``None`` draws one
            from Python's generator, as Keras does. With ``keras`` and no seed, nothing is set:
            the layer's own defaults, exactly as without the option.
    """
    check_init(init)
    bias_seed = None if seed is None else seed + 1
    if init == "keras":
        if seed is None:
            return {}
        kernel, bias = keras.initializers.GlorotUniform(seed), keras.initializers.Zeros()
    elif init == "he":
        kernel, bias = keras.initializers.HeNormal(seed), keras.initializers.Zeros()
    else:
        bound = 1.0 / max(int(fan_in), 1) ** 0.5
        # uniform in +-sqrt(3 * scale / fan_in) = +-1/sqrt(fan_in) with scale 1/3
        kernel = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", seed)
        bias = keras.initializers.RandomUniform(-bound, bound, bias_seed)
    return {"kernel_initializer": kernel, "bias_initializer": bias}


def dense(units: int, inputs, init: str, name: str, **kwargs) -> keras.layers.Dense:
    """A dense layer for ``inputs`` (a tensor whose last axis is ``fan_in``) under ``init``."""
    seed = kwargs.pop("seed", None)
    fan_in = int(inputs.shape[-1])
    return keras.layers.Dense(units, name=name, **initializers(init, fan_in, seed), **kwargs)


def logreg(input_shape: Sequence[int], num_classes: int, init: str = "keras") -> keras.Model:
    """Multinomial logistic regression: one dense layer on the flattened input."""
    check_init(init)
    inputs = keras.Input(shape=tuple(input_shape))
    flat = keras.layers.Flatten()(inputs)
    logits = dense(num_classes, flat, init, "logits")(flat)
    return keras.Model(inputs, logits, name="logreg")


def mlp(
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    init: str = "keras",
) -> keras.Model:
    """Multi-layer perceptron on the flattened input.

    Args:
        input_shape: Shape of one sample's features.
        num_classes: Number of output logits.
        hidden: Width of each hidden layer.
        activation: Activation of the hidden layers.
        init: Weight initialisation, one of :data:`INITS`.
    """
    check_init(init)
    inputs = keras.Input(shape=tuple(input_shape))
    h = keras.layers.Flatten()(inputs)
    for i, width in enumerate(hidden):
        h = dense(int(width), h, init, f"hidden_{i}", activation=activation)(h)
    logits = dense(num_classes, h, init, "logits")(h)
    return keras.Model(inputs, logits, name="mlp")


def cnn(
    input_shape: Sequence[int],
    num_classes: int,
    filters: Sequence[int] = (16, 32),
    kernel_size: int = 3,
    pool_size: int = 2,
    dense_units: int = 64,
    activation: str = "relu",
    init: str = "keras",
) -> keras.Model:
    """A small convolutional network: conv blocks (convolution, activation, pooling), a dense head.

    Args:
        input_shape: ``(H, W)`` (taken as one channel) or ``(H, W, C)``.
        num_classes: Number of output logits.
        filters: Filters of each block's ``kernel_size`` convolution ('same' padding).
        kernel_size: Side of the square convolution kernels.
        pool_size: Side of each block's max pooling ('same' padding: odd sides round up).
        dense_units: Width of the dense hidden layer of the head (0: logits straight from the
            flattened feature maps).
        activation: Activation of the convolutions and the dense hidden layer.
        init: Weight initialisation, one of :data:`INITS`.

    Raises:
        ValueError: Features that are not image-shaped.
    """
    check_init(init)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"model=cnn: expected image-shaped features (H, W) or (H, W, C). Received features "
            f"of shape {shape}. For the digits datasets set data.image_shape=true; flat "
            "features need model=mlp or model=logreg"
        )
    inputs = keras.Input(shape=shape)
    h = keras.layers.Reshape((*shape, 1))(inputs) if len(shape) == 2 else inputs
    for i, width in enumerate(filters):
        fan_in = int(h.shape[-1]) * int(kernel_size) ** 2
        h = keras.layers.Conv2D(
            int(width),
            int(kernel_size),
            padding="same",
            activation=activation,
            name=f"conv_{i}",
            **initializers(init, fan_in),
        )(h)
        h = keras.layers.MaxPooling2D(int(pool_size), padding="same", name=f"pool_{i}")(h)
    h = keras.layers.Flatten()(h)
    if dense_units:
        h = dense(int(dense_units), h, init, "hidden_0", activation=activation)(h)
    logits = dense(num_classes, h, init, "logits")(h)
    return keras.Model(inputs, logits, name="cnn")
