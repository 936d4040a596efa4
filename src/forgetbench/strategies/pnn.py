"""Progressive neural networks (Rusu et al. 2016): one column per shard, earlier ones frozen.

The first phase trains the run's own network as column 0 (as ``sequential`` would). Every later
phase starts a new column: the earlier columns' layers become non-trainable (their weights stay
bit-identical), the new column and its lateral adapters (:mod:`.pnn_columns`) are built under
``model.init`` with seeds drawn from the run's seed and the phase, and
``ctx.replace_network`` trains it from then on (a fresh optimizer state, a retraced step).

Evaluation:

- ``eval.scenario=task_incremental``: each held-out shard is routed to the column trained on it
  (``ctx.set_evaluation_forward``); shards whose column does not exist yet go to the newest.
  This is the setting PNN is made for: it cannot forget.
- ``class_incremental``: the newest column over all classes, as the network a run would deploy
  without task identities. It was trained on the last shard's classes only, so these numbers
  resemble ``sequential``'s.

``model.keras`` holds every column: a model with one output per column (column ``k``'s logits),
standard Keras layers only.

Where the implementations differ (this one follows the paper; the options give the others):

- Laterals into the first hidden layer from the earlier columns' input (identical to the column's
  own input): none in the paper and Mammoth; Avalanche has them (``input_laterals: true``).
- Laterals into the logits layer: the paper (figure 1) and Mammoth have them; Avalanche's
  columns share a multi-head classifier fed by their own last layer (``output_laterals: false``).
- ``alpha``: one scalar per earlier column and adapter, initial value uniform in [0, 0.1)
  (the paper's "random small value"); Avalanche draws ``randn``, Mammoth one value per unit.
- Mammoth's MNIST backbone never uses its laterals (its ``old_cols`` list stays empty).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from forgetbench.options import a_bool
from forgetbench.strategies.base import Phase, Plugin
from forgetbench.strategies.pnn_columns import (
    Column,
    build_columns,
    dense_structure,
    lateral_layers,
    new_column,
)
from forgetbench.train.networks import check_init


class PNN(Plugin):
    """Progressive networks: a new column per phase, laterals from the frozen earlier ones.

    Args:
        init: Weight initialisation of the new columns (``model.init`` in the config).
        input_laterals: Laterals into the first hidden layer from the earlier columns' input.
        output_laterals: Laterals into the logits layer.
    """

    label = "PNN"
    options = {"input_laterals": a_bool(), "output_laterals": a_bool()}

    def __init__(
        self, init: str = "keras", input_laterals: bool = False, output_laterals: bool = True
    ) -> None:
        self.init = check_init(init)
        self.check_options(input_laterals=input_laterals, output_laterals=output_laterals)
        self.input_laterals, self.output_laterals = input_laterals, output_laterals
        self.columns: list[Column] = []
        self.column_of_shard: dict[int, int] = {}
        self.column_phases: list[int] = []
        self.everything = None

    def setup(self, ctx) -> None:
        """Takes the run's network as column 0 (refusing a non-dense network)."""
        layers, activation = dense_structure(ctx.net)
        self.columns = [Column(layers, activation, builtin_activation=True)]
        self.column_of_shard = {}
        self.column_phases: list[int] = []  # the phases that added a column (after column 0)
        self._activation = activation
        widths = [int(np.prod(ctx.feature_shape))] + [layer.units for layer in layers[:-1]]
        self._source_widths = widths
        self._shape = ctx.feature_shape
        _, self.everything = build_columns(self._shape, self.columns)
        ctx.set_saved_network(self.everything)
        self._route(ctx)

    def before_phase(self, ctx, phase: Phase) -> None:
        """Starts a new column (after the first phase) and routes evaluation to the columns."""
        if phase.train_shard is None:
            raise ValueError(
                "strategy=pnn: progressive networks train one column per shard and need one shard "
                f"per phase. Phase {phase.index} mixes shards (a mixed or joint feed); use the "
                "sequential feed (strategy=pnn as given)"
            )
        if phase.index > 0:
            self._add_column(ctx, phase.index)
        self.column_of_shard[int(phase.train_shard)] = len(self.columns) - 1
        self._route(ctx)

    def _add_column(self, ctx, index: int) -> None:
        """Freezes the columns so far and trains a new one (seeded by the phase ``index``)."""
        for layer in (layer for c in self.columns for layer in c.all_layers):
            layer.trainable = False
        depth = len(self.columns[0].layers)
        into = lateral_layers(index, depth, self.input_laterals, self.output_laterals)
        column = new_column(
            self.columns[0].layers,
            self._activation,
            len(self.columns),
            self._source_widths,
            into,
            self.init,
            ctx.rng(index),
        )
        self.columns.append(column)
        self.column_phases.append(int(index))
        net, self.everything = build_columns(self._shape, self.columns)
        ctx.replace_network(net)
        ctx.set_saved_network(self.everything)

    def state(self) -> dict:
        """The phases that added a column, and the shard routing (weights: the network's)."""
        return {
            "column_phases": list(self.column_phases),
            "column_of_shard": dict(self.column_of_shard),
        }

    def restore(self, ctx, state: dict) -> None:
        """Builds the columns again as the checkpointed run had them; its weights come after."""
        for index in state["column_phases"]:
            self._add_column(ctx, int(index))
        self.column_of_shard = {int(s): int(c) for s, c in state["column_of_shard"].items()}
        self._route(ctx)

    def _route(self, ctx) -> None:
        if ctx.scenario != "task_incremental" or len(self.columns) == 1:
            ctx.set_evaluation_forward(None)  # the newest column (the trained network)
            return
        newest = len(self.columns) - 1
        shards = max(len(ctx.shard_classes), max(self.column_of_shard, default=0) + 1)
        table = [self.column_of_shard.get(s, newest) for s in range(shards)]
        ctx.set_evaluation_forward(routed_forward(self.everything, table))

    def summary(self) -> dict:
        """Options, the columns, parameters per column (own and lateral), shard routing."""
        counts = [column.count_params() for column in self.columns]
        return {
            "init": self.init,
            "input_laterals": self.input_laterals,
            "output_laterals": self.output_laterals,
            "columns": len(self.columns),
            "parameters_per_column": [own + lateral for own, lateral in counts],
            "lateral_parameters_per_column": [lateral for _, lateral in counts],
            "column_of_shard": {str(s): c for s, c in sorted(self.column_of_shard.items())},
        }


def routed_forward(everything, table: list[int]):
    """``forward(x, shard_ids)``: each sample's logits from column ``table[shard]``."""
    columns = tf.constant(table, tf.int32)

    def forward(x, shard):
        stacked = tf.stack(everything(x, training=False), axis=1)  # (batch, columns, classes)
        return tf.gather(stacked, tf.gather(columns, tf.cast(shard, tf.int32)), batch_dims=1)

    return forward
