"""Progressive network columns as one Keras functional graph of standard layers.

Column ``k`` repeats the dense layers of the run's network (widths ``n_1 .. n_L``, then the
logits). Its layer ``i`` receives, besides its own previous layer, lateral input from layer
``i - 1`` of every earlier column ``j < k`` through one adapter (Rusu et al. 2016, eq. 2, as
Avalanche's ``MLPAdapter``)::

    h_i^k = act(W_i^k h_{i-1}^k + b_i^k + U_i^k relu(V_i^k [alpha_{i,0}^k h_{i-1}^0, ...,
                                                           alpha_{i,k-1}^k h_{i-1}^{k-1}] + c))

with one learned scalar ``alpha`` per earlier column, ``V`` projecting the concatenation to the
width of layer ``i - 1`` (with a bias ``c``) and ``U`` to the width of layer ``i`` (no bias:
the layer has its own). The logits layer has no activation. Every layer is a standard Keras
layer (a scalar ``alpha`` is a 1x1 ``Dense`` kernel applied to each unit), so a saved model
loads with plain Keras.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from forgetbench.train.networks import initializers

ALPHA_RANGE = (0.0, 0.1)  # initial alphas: "a random small value" (uniform, as Mammoth's)


@dataclass
class Column:
    """The layers of one column.

    Attributes:
        layers: Its dense layers, hidden ones then the logits layer.
        activation: The hidden layers' activation (applied after the lateral sum).
        laterals: Layer index ``i`` -> ``(alphas, V, U)`` of the adapter into layer ``i``.
        builtin_activation: The hidden layers apply their activation themselves (the run's own
            network as the first column; it has no laterals).
    """

    layers: list
    activation: str
    laterals: dict = field(default_factory=dict)
    builtin_activation: bool = False

    @property
    def all_layers(self) -> list:
        """Every layer holding weights of this column."""
        adapters = [layer for alphas, v, u in self.laterals.values() for layer in (*alphas, v, u)]
        return [*self.layers, *adapters]

    def count_params(self) -> tuple[int, int]:
        """Parameters of the column's own layers and of its adapters."""
        own = sum(layer.count_params() for layer in self.layers)
        return own, sum(layer.count_params() for layer in self.all_layers) - own


def dense_structure(net: keras.Model) -> tuple[list, str]:
    """The dense layers of ``net`` and its hidden activation; refuses any other network.

    Raises:
        ValueError: ``net`` holds layers other than ``Flatten`` and ``Dense``.
    """
    kinds = {type(layer).__name__ for layer in net.layers} - {"InputLayer", "Flatten", "Dense"}
    if kinds:
        raise ValueError(
            "strategy=pnn: progressive networks here build columns of dense networks only "
            f"(Flatten and Dense layers). Received the network {net.name!r} with "
            f"{sorted(kinds)} layers. Use model=mlp or model=logreg"
        )
    layers = [layer for layer in net.layers if isinstance(layer, keras.layers.Dense)]
    activation = layers[0].get_config()["activation"] if len(layers) > 1 else "linear"
    return layers, activation


def lateral_layers(index: int, depth: int, input_laterals: bool, output_laterals: bool) -> list:
    """Indices of the layers of a column (``depth`` of them) that receive laterals."""
    first = 0 if input_laterals else 1
    last = depth if output_laterals else depth - 1
    return list(range(first, last))


def new_column(
    template: list,
    activation: str,
    index: int,
    source_widths: list[int],
    lateral_into: list[int],
    init: str,
    rng: np.random.Generator,
) -> Column:
    """Column ``index`` (>= 1): layers shaped as ``template``, adapters into ``lateral_into``.

    Args:
        template: The first column's dense layers (their widths are copied).
        activation: Activation of the hidden layers.
        index: The column's index (its number of earlier columns).
        source_widths: Width of the input of each layer (the flattened input, then each hidden
            layer's width).
        lateral_into: Layers receiving laterals.
        init: Weight initialisation (``model.init``).
        rng: Draws every initialiser's seed (the run's seed and the phase).
    """

    def seed() -> int:
        return int(rng.integers(1, 2**31 - 1))

    def layer(units, fan_in, name, **kwargs):
        made = initializers(init, fan_in, seed())
        return keras.layers.Dense(units, name=f"c{index}_{name}", **made, **kwargs)

    layers = [
        layer(template[i].units, source_widths[i], "logits" if i == len(template) - 1 else f"h{i}")
        for i in range(len(template))
    ]
    laterals = {}
    for i in lateral_into:
        width, units = source_widths[i], template[i].units
        alphas = [
            keras.layers.Dense(
                1,
                use_bias=False,
                name=f"c{index}_lateral{i}_alpha{j}",
                kernel_initializer=keras.initializers.RandomUniform(*ALPHA_RANGE, seed()),
            )
            for j in range(index)
        ]
        v = layer(width, width * index, f"lateral{i}_V", activation="relu")
        u = layer(units, width, f"lateral{i}_U", use_bias=False)
        laterals[i] = (alphas, v, u)
    return Column(layers, activation, laterals)


def _adapter(alphas, v, u, sources, width: int):
    scaled = [
        keras.layers.Reshape((width,))(alpha(keras.layers.Reshape((width, 1))(h)))
        for alpha, h in zip(alphas, sources, strict=True)
    ]
    joined = scaled[0] if len(scaled) == 1 else keras.layers.Concatenate()(scaled)
    return u(v(joined))


def build_columns(input_shape, columns: list[Column]) -> tuple[keras.Model, keras.Model]:
    """The network of the newest column and the model of every column's logits (shared layers)."""
    inputs = keras.Input(shape=tuple(input_shape))
    flat = keras.layers.Flatten()(inputs)
    states, logits = [], []  # per column: the input of each of its layers
    for k, column in enumerate(columns):
        h = [flat]
        for i, layer in enumerate(column.layers):
            z = layer(h[i])
            if i in column.laterals:
                alphas, v, u = column.laterals[i]
                sources = [states[j][i] for j in range(k)]
                z = keras.layers.Add()([z, _adapter(alphas, v, u, sources, int(h[i].shape[-1]))])
            if i == len(column.layers) - 1:
                logits.append(z)
            elif column.builtin_activation:
                h.append(z)
            else:
                h.append(keras.layers.Activation(column.activation)(z))
        states.append(h)
    count = len(columns)
    net = keras.Model(inputs, logits[-1], name=f"pnn_column_{count - 1}")
    every = keras.Model(inputs, logits, name=f"pnn_{count}_columns")
    return net, every
