"""The strategy interface: which phases a run trains, and do-nothing lifecycle hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.feed import Feed
from forgetbench.train.remainder import RemainderPolicy

if TYPE_CHECKING:
    from forgetbench.train.trainer import Trainer


@dataclass
class Phase:
    """One stretch of training: ``epochs`` passes over ``feed``.

    Attributes:
        index: Position of the phase in the run.
        train_shard: The shard trained in this phase, or ``None`` for mixed and joint feeds.
        feed: The phase's batches.
    """

    index: int
    train_shard: int | None
    feed: Feed


class Strategy:
    """Base of all strategies: subclasses define ``phases`` and override the hooks they need.

    Attributes:
        name: Strategy name in results.
    """

    name = "base"

    def phases(
        self, dataset: ShardDataset, *, seed: int, batch_size: int, policy: RemainderPolicy
    ) -> list[Phase]:
        """The training phases of a run, in order."""
        raise NotImplementedError

    def before_phase(self, trainer: Trainer, phase: Phase) -> None:
        """Called before the first epoch of ``phase``."""

    def after_phase(self, trainer: Trainer, phase: Phase) -> None:
        """Called after the last epoch of ``phase``."""

    def summary(self) -> dict:
        """Strategy-specific entries for ``summary.json``."""
        return {}


def sequential_boundaries(
    sizes: np.ndarray, epochs: int, batch_size: int, policy: RemainderPolicy
) -> np.ndarray:
    """Real samples seen at the end of each shard phase of the sequential feed.

    Mixed and joint feeds read their accuracy matrix at these same points, so every strategy's
    matrix is comparable.
    """
    fed = [epochs * policy.samples_fed(int(n), batch_size) for n in sizes]
    return np.cumsum(fed).astype(np.int64)
