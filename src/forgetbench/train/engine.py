"""The training engine: one compiled loop runs every batch between two evaluation points.

Batches come in blocks (a mapping of named columns, each ``(batches, batch_size, ...)``);
:meth:`Engine.run` trains batches ``start .. stop - 1`` of a block inside one ``tf.while_loop``
and stops early, after the batch, when a loss or penalty stops being finite. There is no
``fit()``: no per-epoch set-up, no per-step Python round trip, and one trace per block layout
(shapes are left open), shared by every phase and epoch and, through
:func:`~forgetbench.train.engines.engine_for`, by every run of a process whose network,
optimizer and policy are the same (one trace per plugin signature).

The train step itself (losses, exact accumulation, the one update path) is
:class:`~forgetbench.train.step.TrainStep`; :mod:`forgetbench.train.engines` keeps the engines
of a process. :meth:`Engine.flush` applies a partly filled accumulation group at every epoch
end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from forgetbench.context import PluginContext
from forgetbench.remainder import RemainderPolicy
from forgetbench.train.step import TrainStep

# Op types whose results depend on TensorFlow's global seed (stateless ops are "Stateless...").
SEED_DEPENDENT_OPS = (
    "Random",
    "Stateful",
    "TruncatedNormal",
    "ParameterizedTruncatedNormal",
    "Multinomial",
    "RngSkip",
    "RngReadAndSkip",
)


def uses_stateful_random(function) -> bool:
    """Whether a traced (concrete) function holds an op drawing from TensorFlow's global seed."""
    graph = function.graph.as_graph_def()
    nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
    return any(node.op.startswith(SEED_DEPENDENT_OPS) for node in nodes)


@functools.lru_cache(maxsize=4096)
def _index(i: int) -> tf.Tensor:
    """``tf.constant(i)``, made once per value (a phase of a few batches makes several calls)."""
    return tf.constant(int(i))


def _zeros_like_variable(v) -> tf.Variable:
    return tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)


class Engine(TrainStep):
    """Network, optimizer and the compiled training loop of a run.

    Args:
        net: The network mapping features to class logits (saved as ``model.keras``).
        make_optimizer: Returns a new optimizer (called again when the network is replaced).
        policy: Remainder policy.
        accumulation_steps: Micro-batches per optimizer update (``k >= 1``).
    """

    def __init__(
        self,
        net: keras.Model,
        make_optimizer: Callable[[], keras.optimizers.Optimizer],
        policy: RemainderPolicy,
        accumulation_steps: int = 1,
    ) -> None:
        if int(accumulation_steps) < 1:
            raise ValueError(
                "Invalid config value train.accumulation_steps="
                f"{accumulation_steps!r}. Expected an integer >= 1."
            )
        self.policy = policy
        self.accumulation_steps = int(accumulation_steps)
        self.exact_accumulation = policy.exact and self.accumulation_steps > 1
        self.make_optimizer = make_optimizer
        # Plain ``tf.Variable``s: one graph op per ``assign_add``.
        self.samples_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="samples_seen")
        self.batches_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_seen")
        # Epoch sums: data loss, real samples, correct predictions, penalty, micro-batches.
        self._sums = tf.Variable(tf.zeros(5), trainable=False, name="epoch_sums")
        self._zero_sums = tf.zeros(5)  # made once: an eager op per epoch costs milliseconds
        self._weights_ok = True  # whether the weights were finite after the last call
        self._last_finite_loss = tf.Variable(np.nan, dtype=tf.float32, trainable=False)
        self._variables: dict[str, tf.Variable] = {}
        self._teacher = None
        self.stateful_random = False  # a trace holds an op drawing from TF's global seed
        self._tf_seeded = True  # TF's global seed was set for the current run
        self._bound: tuple | None = None
        self._set_network(net)
        self._initial_net = net
        self.ctx = PluginContext(
            self, seed=0, feature_shape=net.input_shape[1:], num_classes=net.output_shape[-1]
        )

    # -- state ----------------------------------------------------------------------------

    def _set_network(self, net: keras.Model) -> None:
        self.net = net
        self.optimizer = self.make_optimizer()
        self.optimizer.build(net.trainable_variables)
        self._optimizer_start = [v.numpy() for v in self.optimizer.variables]
        if self.exact_accumulation:
            self._grad_sums = [_zeros_like_variable(v) for v in net.trainable_variables]
            self._acc_count = tf.Variable(0.0, trainable=False, name="accumulated_samples")
            self._acc_micro = tf.Variable(0, dtype=tf.int64, trainable=False, name="micro")
        self._functions: dict = {}  # traced loops and flushes, by plugin signature and layout

    def start_run(self, net: keras.Model, *, tf_seeded: bool = True, **context) -> PluginContext:
        """Resets the engine for a new run starting from ``net``'s weights; returns its context.

        ``net`` is a freshly built network of the same architecture (its initial weights, drawn
        under the run's seed); the engine's own network takes its values, so traced functions
        are reused. Optimizer, counters, accumulators and plugin variables start afresh.
        ``tf_seeded``: whether TensorFlow's global seed was set for this run (if not, a new
        trace holding seed-dependent ops sets it and traces again).
        """
        self._tf_seeded = tf_seeded
        if net is not self.net:
            for mine, fresh in zip(self.net.variables, net.variables, strict=True):
                mine.assign(fresh)
        self.reset_optimizer_state()
        for v in (self.samples_seen, self.batches_seen):
            v.assign(0)
        self._last_finite_loss.assign(np.nan)
        self._weights_ok = True
        if self.exact_accumulation:
            self._reset_accumulators()
        if self._teacher is not None:  # a teacher starts as a copy of the initial network
            self.freeze_teacher()
        self.reset_epoch()
        self.ctx = PluginContext(self, **context)
        return self.ctx

    @property
    def reusable(self) -> bool:
        """Whether a later run can start from this engine.

        Not when its network was replaced, nor when a trace holds seed-dependent ops (their op
        seeds are fixed when traced, from the global seed of that run).
        """
        return self.net is self._initial_net and not self.stateful_random

    def bind(self) -> None:
        """Selects the traces of the plugins' current registrations (traced on first use).

        Traces are kept per registration signature, so runs of different strategies on one
        engine (sequential, replay, EWC) each trace once and keep their traces.
        """
        self._bound = self.ctx.signature()

    def variable(self, name: str, initial: np.ndarray) -> tf.Variable:
        """A plugin's graph variable, the same object for every run (reset to ``initial``)."""
        v = self._variables.get(name)
        if v is None or tuple(v.shape) != initial.shape:
            if v is not None:  # another shape: traces reading the old variable are stale
                self._functions = {}
            v = tf.Variable(initial.astype(np.float32, copy=False), trainable=False, name=name)
            self._variables[name] = v
        else:
            v.assign(initial.astype(np.float32, copy=False))
        return v

    def state_variables(self) -> dict[str, tf.Variable]:
        """Every variable the rest of a run depends on, by a stable name (for checkpoints).

        The network's and the optimizer's (its step count included), the counters, the epoch
        sums, the accumulators, the variables handed to this run's plugins, those of the saved
        network outside the trained one, and the teacher's.
        """
        named = {f"net/{i}": v for i, v in enumerate(self.net.variables)}
        named.update({f"optimizer/{i}": v for i, v in enumerate(self.optimizer.variables)})
        named.update(
            {
                "counters/samples_seen": self.samples_seen,
                "counters/batches_seen": self.batches_seen,
                "counters/epoch_sums": self._sums,
                "counters/last_finite_loss": self._last_finite_loss,
            }
        )
        if self.exact_accumulation:
            named.update({f"accumulator/{i}": v for i, v in enumerate(self._grad_sums)})
            named.update(
                {"accumulator/count": self._acc_count, "accumulator/micro": self._acc_micro}
            )
        named.update({f"plugin/{name}": self._variables[name] for name in self.ctx.variable_names})
        saved = self.ctx.saved_network  # parts outside the trained network (earlier columns)
        if saved is not None:
            trained = {id(v) for v in self.net.variables}
            extra = [v for v in saved.variables if id(v) not in trained]
            named.update({f"saved/{i}": v for i, v in enumerate(extra)})
        if self._teacher is not None and self.ctx.uses_teacher:
            named.update({f"teacher/{i}": v for i, v in enumerate(self._teacher.variables)})
        return named

    def teacher(self) -> keras.Model:
        """The frozen teacher (made on first use as a copy of the network)."""
        if self._teacher is None:
            self.freeze_teacher()
        return self._teacher

    def freeze_teacher(self) -> None:
        """Copies the network's weights into the teacher.

        A teacher of another architecture (after a network replacement) is made anew, which
        retraces the step.
        """
        shapes = [tuple(v.shape) for v in self.net.variables]
        if self._teacher is None or shapes != [tuple(v.shape) for v in self._teacher.variables]:
            self._teacher = keras.models.clone_model(self.net)
            self._teacher.trainable = False
            self._functions = {}
        for t, v in zip(self._teacher.variables, self.net.variables, strict=True):
            t.assign(v)

    def replace_network(self, net: keras.Model) -> None:
        """Trains ``net`` from now on (fresh optimizer and accumulators; retraced step).

        The teacher, if any, stays as it was frozen.
        """
        self._set_network(net)

    def reset_optimizer_state(self) -> None:
        """Returns the optimizer to its initial state (no steps, zero moments, the set rate)."""
        for v, start in zip(self.optimizer.variables, self._optimizer_start, strict=True):
            v.assign(start)

    def reset_epoch(self) -> None:
        """Zeroes the epoch's loss, accuracy and penalty sums."""
        self._sums.assign(self._zero_sums)

    def epoch_logs(self) -> dict:
        """The epoch's mean data loss and accuracy per real sample, and mean penalty per step."""
        loss, count, correct, penalty, steps = (float(v) for v in self._sums.numpy())
        return {
            "loss": loss / max(count, 1.0),
            "accuracy": correct / max(count, 1.0),
            "penalty": penalty / max(steps, 1.0),
        }

    @property
    def last_finite_loss(self) -> float | None:
        """The epoch's running mean loss at the last batch whose loss was finite."""
        value = float(self._last_finite_loss.numpy())
        return None if np.isnan(value) else value

    def _reset_accumulators(self) -> None:
        for acc in self._grad_sums:
            acc.assign(tf.zeros_like(acc), read_value=False)
        self._acc_count.assign(0.0, read_value=False)
        self._acc_micro.assign(0, read_value=False)

    def _function(self, block):
        self.bind()  # registrations changed since the last trace: trace again
        layout = tuple((name, v.dtype, tuple(v.shape[2:])) for name, v in sorted(block.items()))
        fn = self._functions.get((self._bound, layout))
        if fn is None:
            spec = {
                name: tf.TensorSpec((None, None, *shape), dtype) for name, dtype, shape in layout
            }
            scalar = tf.TensorSpec((), tf.int32)
            # A concrete function: calling it skips tf.function's argument matching (about
            # half of a call's Python cost).
            fn = self._trace(self._loop, [spec, scalar, scalar])
            self._functions[(self._bound, layout)] = fn
        return fn

    def _trace(self, fn, signature):
        """``fn`` traced for ``signature`` as a concrete function.

        With seed-dependent ops in a run that did not set TensorFlow's global seed, the seed is
        set (``ctx.seed``) and ``fn`` traced again, so its ops draw what they would in a fresh
        process.
        """
        # No AutoGraph: the loop is written with tf.while_loop and tf.cond, and converting the
        # network's and the optimizer's Python code tripled the trace time (0.65 s, not 1.9 s).
        concrete = tf.function(fn, input_signature=signature, autograph=False)
        concrete = concrete.get_concrete_function()
        if uses_stateful_random(concrete):
            self.stateful_random = True
            if not self._tf_seeded:
                tf.random.set_seed(self.ctx.seed)
                self._tf_seeded = True
                concrete = tf.function(fn, input_signature=signature, autograph=False)
                concrete = concrete.get_concrete_function()
        return concrete

    # -- running --------------------------------------------------------------------------

    def run(self, block: dict, start: int, stop: int) -> tuple[int, bool]:
        """Trains batches ``start .. stop - 1`` of ``block`` (tensors, one row per batch).

        Returns:
            The index after the last batch trained, and whether every loss and penalty was
            finite (if not, training stopped right after the batch where it stopped being).
        """
        end, finite, weights_ok = self._function(block)(block, _index(start), _index(stop))
        self._weights_ok = bool(weights_ok)
        return int(end), bool(finite)

    def train_epoch(self, feed, epoch: int = 0) -> dict:
        """Trains one epoch of ``feed`` without evaluation; returns the epoch's logs.

        Applies a partly filled group at the end; stops early if a loss stops being finite.
        """
        self.reset_epoch()
        for first, count in feed.blocks(epoch):
            block = feed.block(epoch, first, count)
            tensors = {name: tf.convert_to_tensor(column) for name, column in block.items()}
            if not self.run(tensors, 0, count)[1]:
                break
        self.flush()
        return self.epoch_logs()

    def advance(self, samples: int, batches: int) -> None:
        """Counts batches that pass without training (a phase with ``updates=False``)."""
        self.samples_seen.assign_add(int(samples))
        self.batches_seen.assign_add(int(batches))

    def train_outside(self, feed, epochs: int) -> bool:
        """Trains ``epochs`` epochs of ``feed`` outside the stream; returns whether all was finite.

        Samples and batches seen are left as they were, and the epoch's logs start afresh.
        """
        seen, batches = self.samples_seen.numpy(), self.batches_seen.numpy()
        finite = True
        for epoch in range(int(epochs)):
            logs = self.train_epoch(feed, epoch)
            finite = self.weights_finite() and bool(np.isfinite(logs["loss"]))
            if not finite:
                break
        self.samples_seen.assign(seen)
        self.batches_seen.assign(batches)
        self.reset_epoch()
        return finite

    def flush(self) -> bool:
        """Applies a partly filled accumulation group; returns whether an update was made.

        Called at the end of every epoch, so no accumulated gradient crosses an epoch or shard
        boundary. A no-op without exact accumulation.
        """
        if not self.exact_accumulation:
            return False
        self.bind()
        flush = self._functions.get((self._bound, "flush"))
        if flush is None:

            def apply_partial_group():
                made = tf.cond(
                    self._acc_micro > 0, self._apply_accumulated, lambda: tf.constant(False)
                )
                return made, self._all_weights_finite()

            flush = tf.function(apply_partial_group, autograph=False).get_concrete_function()
            self._functions[(self._bound, "flush")] = flush
        made, weights_ok = flush()
        self._weights_ok = bool(weights_ok)
        return bool(made)

    def weights_finite(self) -> bool:
        """Whether every weight was finite after the last call (checked in the same call)."""
        return self._weights_ok
