"""What a plugin sees of a run: the narrow context its hooks receive, and its extension points.

A plugin never touches the trainer. Its hooks (``setup``, ``before_phase``, ``after_phase``)
receive a :class:`PluginContext`: the network, the optimizer, the current phase, the run's
seed and random streams, named memories, and the ways into the compiled train step:

- :meth:`PluginContext.add_loss_term`: a per-sample loss term from the batch, the logits and
  (optionally) a frozen teacher's logits, weighted by a batch column, summed and normalised
  like the data loss (so every remainder policy and exact accumulation stay exact for it);
- :meth:`PluginContext.add_penalty`: a term of the parameters alone, once per update (EWC);
- :meth:`PluginContext.add_gradient_transform`: changes the update's gradient before the
  optimizer applies it (A-GEM);
- :meth:`PluginContext.add_after_update`: runs in the graph after every update with the
  parameters before and after it and the gradient of the per-sample losses alone (SI);
- :meth:`PluginContext.add_batch_hook`: runs in the graph on every micro-batch and its logits,
  before the update (DER writes its buffer there);
- :meth:`PluginContext.teacher` / :meth:`PluginContext.freeze_teacher`: a frozen copy of the
  network whose logits loss terms can use (LwF), refreshed without retracing the step;
- :meth:`PluginContext.replace_network`: a new network at a phase start (new variables, a fresh
  optimizer state for them, a retraced step), and :meth:`PluginContext.set_evaluation_forward`
  to route each held-out shard to its own network or head (progressive networks), and
  :meth:`PluginContext.set_saved_network` for what ``model.keras`` holds;
- :meth:`PluginContext.add_callback`: Keras-style callbacks (train and epoch hooks);
- :meth:`PluginContext.train_network` / :meth:`PluginContext.reset_optimizer`: training on a
  feed of the plugin's own outside the stream (GDumb's memory), from a fresh optimizer state.

Graph state (anything the step reads) comes from :meth:`PluginContext.variable`: runs of a
sweep that share a network shape reuse one traced step, and the step reads the variables it was
traced with, which ``variable`` hands out again (reset) to every later run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from forgetbench.batch import WEIGHT

PLUGIN_STREAM = 3  # last entry of plugins' seed lists: no epoch order or replay stream shares it


@dataclass(frozen=True)
class LossTerm:
    """A per-sample loss term added to the data loss.

    Attributes:
        name: Unique name (shown in errors; part of the traced step's identity).
        fn: ``fn(batch, logits, teacher_logits) -> (batch_size,)`` per-sample values;
            ``teacher_logits`` is ``None`` unless ``needs_teacher``.
        weight_column: The batch column weighting each sample's value (``weight`` by default;
            padding has 0 there). The weighted sum is normalised like the data loss.
        needs_teacher: Compute the frozen teacher's logits for the batch.
    """

    name: str
    fn: Callable[..., Any]
    weight_column: str = WEIGHT
    needs_teacher: bool = False


class EngineHooks(Protocol):
    """What the training engine provides to a context (implemented by ``train.engine``)."""

    net: Any
    optimizer: Any

    def variable(self, name: str, initial: np.ndarray) -> Any: ...  # noqa: D102
    def teacher(self) -> Any: ...  # noqa: D102
    def train_outside(self, feed: Any, epochs: int) -> bool: ...  # noqa: D102
    def reset_optimizer_state(self) -> None: ...  # noqa: D102
    def freeze_teacher(self) -> None: ...  # noqa: D102
    def replace_network(self, net: Any) -> None: ...  # noqa: D102


class PluginContext:
    """The run as a plugin sees it; see the module docstring for the extension points.

    Attributes:
        seed: The run's seed.
        feature_shape: Shape of one sample's features.
        num_classes: Number of output logits.
        phase: The phase being trained (set before ``before_phase``), else ``None``.
        phases: Every phase of the run, in order (known before ``setup``).
        shard_classes: The class ids of each training shard, by shard index.
        scenario: The evaluation scenario (``eval.scenario``): ``class_incremental`` or
            ``task_incremental``.
        saved_network: What ``model.keras`` holds, when a plugin sets it (else ``net``).
        memories: Named memories a plugin keeps (reported and, later, checkpointed).
        diverged: Set by a plugin to a reason when its own training stopped being finite: the
            run stops after the current hook, as on a non-finite training loss.
    """

    def __init__(
        self,
        engine: EngineHooks,
        *,
        seed: int,
        feature_shape: Sequence[int],
        num_classes: int,
        samples_seen: Callable[[], int] = lambda: 0,
        evaluate: Callable[[], list[dict]] | None = None,
        plugin_configs: Mapping[str, str] | None = None,
        shard_classes: Sequence[Sequence[int]] = (),
        scenario: str = "class_incremental",
    ) -> None:
        self._engine = engine
        self.seed = int(seed)
        self.feature_shape = tuple(feature_shape)
        self.num_classes = int(num_classes)
        self.phase = None
        self.phases: tuple = ()
        self.shard_classes = [tuple(int(c) for c in classes) for classes in shard_classes]
        self.scenario = str(scenario)
        self.saved_network: Any = None
        self.memories: dict[str, Any] = {}
        self.loss_terms: list[LossTerm] = []
        self.penalties: list[tuple[str, Callable]] = []
        self.gradient_transforms: list[tuple[str, Callable]] = []
        self.after_update: list[tuple[str, Callable]] = []
        self.batch_hooks: list[tuple[str, Callable]] = []
        self.callbacks: list[Any] = []
        self.evaluation_forward: Callable | None = None
        self.diverged: str | None = None
        self._trained_outside = False
        self._samples_seen = samples_seen
        self._evaluate = evaluate
        self._plugin_configs = dict(plugin_configs or {})
        self._owner: str | None = None
        self._owners: list[tuple[str, str | None]] = []
        self.variable_names: list[str] = []  # handed out by ``variable`` (checkpointed)
        self.uses_teacher = False  # a plugin asked for the teacher (checkpointed then)

    def attach(
        self,
        samples_seen: Callable[[], int],
        evaluate: Callable[[], list[dict]],
        phases: Sequence = (),
    ) -> None:
        """Connects the trainer's sample count, evaluation and phases (called by the trainer)."""
        self._samples_seen, self._evaluate = samples_seen, evaluate
        self.phases = tuple(phases)

    @property
    def net(self):
        """The network being trained (``keras.Model`` returning logits)."""
        return self._engine.net

    @property
    def optimizer(self):
        """The optimizer applying updates to ``net``'s trainable variables."""
        return self._engine.optimizer

    @property
    def samples_seen(self) -> int:
        """Real new training samples seen so far."""
        return self._samples_seen()

    def evaluate(self) -> list[dict]:
        """Per-shard held-out records of the network now (not added to the curves)."""
        if self._evaluate is None:
            raise RuntimeError("PluginContext.evaluate: this context has no evaluator")
        return self._evaluate()

    def variable(self, name: str, initial) -> Any:
        """A graph variable ``name`` holding ``initial``.

        The same object is handed, reset to ``initial``, to every run that reuses the step.
        """
        if name not in self.variable_names:
            self.variable_names.append(name)
        return self._engine.variable(name, np.asarray(initial))

    def rng(self, *keys: int) -> np.random.Generator:
        """A random stream for ``keys`` (for example phase, epoch, purpose).

        Seeded ``[seed, *keys, PLUGIN_STREAM]``: distinct from epoch orders and replay streams.
        """
        return np.random.default_rng([self.seed, *(int(k) for k in keys), PLUGIN_STREAM])

    @contextmanager
    def owned_by(self, plugin: str):
        """Registrations made in the block belong to ``plugin``.

        The plugin's config joins the step's identity, so a trace is never reused with other
        hyperparameters.
        """
        previous, self._owner = self._owner, plugin
        try:
            yield self
        finally:
            self._owner = previous

    def _register(self, kind: str) -> None:
        self._owners.append((kind, self._owner))

    def add_loss_term(self, term: LossTerm) -> None:
        """Adds a per-sample loss term (see :class:`LossTerm`)."""
        self._register("loss_term")
        self.loss_terms.append(term)

    def add_penalty(self, name: str, fn: Callable[[], Any]) -> None:
        """Adds ``fn() -> scalar``, a term of the parameters alone, once per update."""
        self._register("penalty")
        self.penalties.append((name, fn))

    def add_gradient_transform(self, name: str, fn: Callable) -> None:
        """Adds ``fn(grads, variables) -> grads``, run on every update's gradient.

        Transforms run in order, after the penalties' gradients are added, just before the
        optimizer applies the update.
        """
        self._register("gradient_transform")
        self.gradient_transforms.append((name, fn))

    def add_after_update(self, name: str, fn: Callable) -> None:
        """Adds ``fn(before, after, sample_grads)``, run in the graph after every update.

        ``before`` and ``after`` are the parameter values around the update; ``sample_grads``
        the gradient of the per-sample losses alone (data loss and loss terms, no penalty) that
        the update was made from.
        """
        self._register("after_update")
        self.after_update.append((name, fn))

    def add_batch_hook(self, name: str, fn: Callable) -> None:
        """Adds ``fn(batch, logits)``, run in the graph on every micro-batch.

        It runs after the micro-batch's forward pass and before its update (so before the
        penalties of that update are computed), with the logits the update's gradient comes
        from (no gradient flows through them). Padding rows have ``weight`` 0 and replayed
        rows ``is_new`` 0.
        """
        self._register("batch_hook")
        self.batch_hooks.append((name, fn))

    def add_callback(self, callback) -> None:
        """Adds a Keras-style callback (``on_train_begin/end``, ``on_epoch_begin/end``)."""
        self.callbacks.append(callback)

    def train_network(self, feed, epochs: int) -> bool:
        """Trains the network on ``feed`` for ``epochs`` epochs outside the stream.

        Samples seen and the evaluation schedule are not affected. Returns whether the loss
        and the weights stayed finite; if not, set :attr:`diverged` to stop the run. Called from
        ``after_phase``, the phase's last evaluation is made again with the trained network.
        """
        self._trained_outside = True
        return self._engine.train_outside(feed, epochs)

    def take_trained_outside(self) -> bool:
        """Whether ``train_network`` ran since the last call (read by the trainer)."""
        trained, self._trained_outside = self._trained_outside, False
        return trained

    def reset_optimizer(self) -> None:
        """Restores the optimizer's initial state (moments, step count)."""
        self._engine.reset_optimizer_state()

    def teacher(self):
        """The frozen teacher network (created on first use, a copy of ``net``'s weights)."""
        self.uses_teacher = True
        return self._engine.teacher()

    def freeze_teacher(self) -> None:
        """Copies the network's current weights into the teacher (no retrace)."""
        self.uses_teacher = True
        self._engine.freeze_teacher()

    def replace_network(self, net) -> None:
        """Trains ``net`` from now on: a fresh optimizer state for it and a retraced step."""
        self._engine.replace_network(net)

    def set_evaluation_forward(self, fn: Callable | None) -> None:
        """Evaluates with ``fn(x, shard_ids) -> logits`` instead of ``net(x)``.

        Routes each held-out sample by its shard; ``None`` restores the default.
        """
        self.evaluation_forward = fn

    def set_saved_network(self, net) -> None:
        """Saves ``net`` as ``model.keras`` instead of the network trained last (``None``: it)."""
        self.saved_network = net

    def signature(self) -> tuple:
        """What the traced step depends on.

        The registered graph parts, and the config of each plugin that registered one.
        """
        owners = tuple(
            (kind, owner, self._plugin_configs.get(owner)) for kind, owner in self._owners
        )
        return (
            tuple((t.name, t.weight_column, t.needs_teacher) for t in self.loss_terms),
            tuple(name for name, _ in self.penalties),
            tuple(name for name, _ in self.gradient_transforms),
            tuple(name for name, _ in self.after_update),
            tuple(name for name, _ in self.batch_hooks),
            owners,
        )
