"""The strategy interface: which phases a run trains, and do-nothing lifecycle hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from forgetbench.context import PluginContext
from forgetbench.data.dataset import ShardDataset
from forgetbench.data.feed import Feed
from forgetbench.options import Rule, option_message
from forgetbench.plain_state import plain_state, restore_plain_state
from forgetbench.remainder import RemainderPolicy


@dataclass
class Phase:
    """One stretch of training: ``epochs`` passes over ``feed``.

    Attributes:
        index: Position of the phase in the run.
        train_shard: The shard trained in this phase, or ``None`` for mixed and joint feeds.
        feed: The phase's batches.
        updates: Whether the batches update the network. ``False``: the stream passes (counted
            in samples seen, evaluated on schedule) without training on it (GDumb).
    """

    index: int
    train_shard: int | None
    feed: Feed
    updates: bool = True


class Plugin:
    """A mitigation that hooks into a strategy's lifecycle (replay, EWC); all hooks do nothing.

    Hooks receive the run's :class:`~forgetbench.context.PluginContext` (network, optimizer,
    phase, seed streams, memories, and the extension points of the train step). Plugins
    compose: a strategy runs every plugin's hook in the order given.

    Attributes:
        options: ``{option: Rule}``, what the plugin's constructor options allow; checked
            before any work (``Invalid config value strategy.plugins.NAME.OPTION=...``, or in
            the plugin's words when it has a ``label``), and by the constructor itself.
        label: The plugin's name in its messages (``LABEL KEY: expected ...``), if it has
            its own wording.
    """

    options: ClassVar[dict[str, Rule]] = {}
    label: ClassVar[str | None] = None

    @classmethod
    def check_options(cls, **values) -> None:
        """Refuses a value its rule in ``options`` rejects, in the plugin's words.

        Raises:
            ValueError: ``LABEL KEY: expected ALLOWED. Received VALUE``.
        """
        for key, value in values.items():
            rule = cls.options[key]
            if not rule(value):
                raise ValueError(option_message(cls.label or cls.__name__, key, value, rule))

    def setup(self, ctx: PluginContext) -> None:
        """Called once before training, before the train step is traced.

        Create graph variables (``ctx.variable``) and register loss terms, penalties,
        gradient transforms and after-update hooks here.
        """

    def before_phase(self, ctx: PluginContext, phase: Phase) -> None:
        """Called before the first epoch of ``phase`` (may replace its feed or the network)."""

    def after_phase(self, ctx: PluginContext, phase: Phase) -> None:
        """Called after the last epoch of ``phase``."""

    def summary(self) -> dict:
        """Plugin-specific entries for ``summary.json``."""
        return {}

    def state(self) -> dict:
        """The plugin's Python-side state, for a checkpoint (its graph variables are saved apart).

        By default every attribute holding plain data: numbers, strings, numpy arrays and
        generators, containers of them, and objects of this package made of them (memories).
        Networks, variables and functions are left out: ``setup`` makes them again, and the
        variables handed out by ``ctx.variable`` are checkpointed with the engine.
        """
        return plain_state(self)

    def restore(self, ctx: PluginContext, state: dict) -> None:
        """Puts back what :meth:`state` returned (called after ``setup``, before the next phase).

        Objects of this package are updated in place, so references to them (``ctx.memories``)
        stay valid.
        """
        restore_plain_state(self, state)


class Strategy:
    """Base of all strategies: subclasses define ``phases``; plugins add behaviour through hooks.

    Args:
        name: Strategy name in results (the subclass's default when ``None``).
        plugins: Named plugins, run in order at each hook.
        order: Position in reports (``conf/strategy/*.yaml``; :mod:`forgetbench.strategies.catalog`
            reads it there); kept, unused by the run.
    """

    name = "base"

    def __init__(
        self,
        name: str | None = None,
        plugins: dict[str, Plugin] | None = None,
        order: float | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        self.plugins = dict(plugins or {})
        self.order = order

    def phases(
        self, dataset: ShardDataset, *, seed: int, batch_size: int, policy: RemainderPolicy
    ) -> list[Phase]:
        """The training phases of a run, in order."""
        raise NotImplementedError

    def setup(self, ctx: PluginContext) -> None:
        """Runs every plugin's ``setup``."""
        for name, plugin in self.plugins.items():
            with ctx.owned_by(name):
                plugin.setup(ctx)

    def before_phase(self, ctx: PluginContext, phase: Phase) -> None:
        """Runs every plugin's ``before_phase``."""
        for name, plugin in self.plugins.items():
            with ctx.owned_by(name):
                plugin.before_phase(ctx, phase)

    def after_phase(self, ctx: PluginContext, phase: Phase) -> None:
        """Runs every plugin's ``after_phase``."""
        for name, plugin in self.plugins.items():
            with ctx.owned_by(name):
                plugin.after_phase(ctx, phase)

    def summary(self) -> dict:
        """Strategy-specific entries for ``summary.json``: one entry per plugin."""
        return {name: plugin.summary() for name, plugin in self.plugins.items()}

    def state(self) -> dict:
        """Every plugin's :meth:`Plugin.state`, by plugin name (for a checkpoint)."""
        return {name: _plugin_state(plugin) for name, plugin in self.plugins.items()}

    def restore(self, ctx: PluginContext, state: dict) -> None:
        """Restores every plugin from :meth:`state` (after ``setup``).

        Raises:
            ValueError: if the plugins named in ``state`` are not this strategy's.
        """
        if sorted(state) != sorted(self.plugins):
            raise ValueError(
                f"Checkpoint holds the state of plugins {sorted(state)}; expected this "
                f"strategy's plugins {sorted(self.plugins)}"
            )
        for name, plugin in self.plugins.items():
            with ctx.owned_by(name):
                if hasattr(plugin, "restore"):
                    plugin.restore(ctx, state[name])
                else:  # a plugin not derived from Plugin (tests): its plain attributes
                    restore_plain_state(plugin, state[name])


def _plugin_state(plugin) -> dict:
    return plugin.state() if hasattr(plugin, "state") else plain_state(plugin)


def sequential_boundaries(
    sizes: np.ndarray, epochs: int, batch_size: int, policy: RemainderPolicy
) -> np.ndarray:
    """Real samples seen at the end of each shard phase of the sequential feed.

    Mixed and joint feeds read their accuracy matrix at these same points, so every strategy's
    matrix is comparable.
    """
    fed = [epochs * policy.samples_fed(int(n), batch_size) for n in sizes]
    return np.cumsum(fed).astype(np.int64)


def value_counts(values: np.ndarray) -> dict[int, int]:
    """How often each integer value occurs, by value (for summaries of memories)."""
    keys, numbers = np.unique(np.asarray(values, dtype=np.int64), return_counts=True)
    return {int(k): int(c) for k, c in zip(keys, numbers, strict=True)}
