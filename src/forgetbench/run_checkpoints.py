"""A run's checkpoints: settings, resuming from one, writing them, dropping the last one.

:class:`RunCheckpoints` connects :mod:`forgetbench.checkpoint` (the files) to a run's trainer:
it resumes the trainer from the run folder's checkpoint of this config and data, writes one at
the due phase and epoch ends (``checkpoint.every``, ``checkpoint.every_epochs``, at most one per
``checkpoint.min_interval_s``), and drops the last one once the run has finished
(``checkpoint.keep_after_finish``).
"""

from __future__ import annotations

import logging
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from forgetbench import checkpoint as files
from forgetbench.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    CheckpointMismatchError,
    find_checkpoint,
    random_states,
)
from forgetbench.config_check import ConfigError
from forgetbench.options import Rule, a_bool, int_at_least, invalid_message, number_where
from forgetbench.run_folder import comparable_config, config_digest

log = logging.getLogger(__name__)
_COUNT = int_at_least(0).check
SETTING_RULES = {  # checkpoint.KEY: what it allows
    "every": Rule(_COUNT, "an integer >= 0 (0: never)"),
    "every_epochs": Rule(_COUNT, "an integer >= 0 (0: never)"),
    "min_interval_s": number_where(lambda v: v >= 0, "a number >= 0 (0: at every due phase end)"),
    "keep_after_finish": a_bool(),
    "resume": a_bool(),
}


@dataclass(frozen=True)
class CheckpointSettings:
    """The ``checkpoint`` config group's values.

    Attributes:
        every: Write a checkpoint at the end of every this many phases (0: never).
        every_epochs: Also within a phase, at the end of every this many epochs (0: never).
        min_interval_s: Skip a due checkpoint until this many seconds have passed since the
            run started or wrote its last one (many short phases: a few writes, not thousands).
        keep_after_finish: Keep the last checkpoint once the run has finished.
        resume: Resume from a checkpoint in the run folder (``False``: start over).
    """

    every: int = 1
    every_epochs: int = 0
    min_interval_s: float = 60.0
    keep_after_finish: bool = False
    resume: bool = True

    @classmethod
    def from_config(cls, cfg: DictConfig) -> CheckpointSettings:
        """Reads and checks ``checkpoint.*`` (absent: the defaults).

        Raises:
            ConfigError: naming the key, the value and what is allowed.
        """
        node = OmegaConf.select(cfg, "checkpoint", default=None) or {}
        values = {key: node.get(key, getattr(cls, key)) for key in SETTING_RULES}
        for key, rule in SETTING_RULES.items():
            if not rule(values[key]):
                raise ConfigError(invalid_message(f"checkpoint.{key}", values[key], rule))
        return cls(**{**values, "min_interval_s": float(values["min_interval_s"])})


class RunCheckpoints:
    """A run's checkpoints: resume from one, write one at phase ends, drop it when done.

    Args:
        cfg: The run's config (``checkpoint.*``).
        out_dir: The run folder.
        resolved: The resolved config.
        data: The data's fingerprint (``forgetbench.data.fingerprint``).
        run_id: The run's id.
    """

    def __init__(self, cfg: DictConfig, out_dir: Path, resolved: dict, data: dict, run_id: str):
        self.settings = CheckpointSettings.from_config(cfg)
        self.out_dir = Path(out_dir)
        self.identity = {
            "run_id": run_id,
            "config_digest": config_digest(resolved),
            "config": comparable_config(resolved),
            "data": data,
        }
        self.resumed: dict | None = None
        self.trainer = None
        self._last_write = time.monotonic()

    def attach(self, trainer) -> None:
        """Resumes ``trainer`` from this run's checkpoint, if any; checkpoints its phase ends.

        Raises:
            CheckpointMismatchError: see :func:`find_checkpoint`.
            CheckpointDataError: see :func:`find_checkpoint`.
        """
        self.trainer = trainer
        found = find_checkpoint(self.out_dir, self.identity) if self.settings.resume else None
        if found is not None:
            if found.manifest["phases"] != len(trainer.phases):
                raise CheckpointMismatchError(
                    f"Checkpoint {found.folder} is of a run of {found.manifest['phases']} "
                    f"phases; this one has {len(trainer.phases)}. Remove that folder"
                )
            self.resumed = found.describe()
            trainer.resume = found.restore
            log.info("Resuming %s after phase %s.", self.out_dir, found.manifest["phase"])
        if self.settings.every:
            trainer.phase_end_hooks.append(self._after_phase)
        if self.settings.every_epochs:
            trainer.phase_start_hooks.append(self._phase_start)
            trainer.epoch_end_hooks.append(self._after_epoch)

    def _due(self) -> bool:
        return time.monotonic() - self._last_write >= self.settings.min_interval_s

    def _phase_start(self, phase) -> None:
        """Keeps what the phase's ``before_phase`` starts from (for checkpoints within it)."""
        variables = self.trainer.engine.state_variables().items()
        start = {
            "strategy": self.trainer.strategy.state(),
            "random": random_states(),
            "variables": {name: v.numpy() for name, v in variables},
        }
        self._start_state = pickle.loads(pickle.dumps(start))  # a copy, not views

    def _after_epoch(self, phase, epoch: int) -> None:
        if (epoch + 1) % self.settings.every_epochs == 0 and self._due():
            files.write_checkpoint(
                self.out_dir,
                self.trainer,
                phase.index,
                self.identity,
                epoch=epoch,
                phase_start=self._start_state,
            )
            self._last_write = time.monotonic()

    def _after_phase(self, phase) -> None:
        last = phase.index == len(self.trainer.phases) - 1
        if not last and self._due() and (phase.index + 1) % self.settings.every == 0:
            files.write_checkpoint(self.out_dir, self.trainer, phase.index, self.identity)
            self._last_write = time.monotonic()

    def finish(self) -> None:
        """Drops the checkpoint of a finished run unless ``checkpoint.keep_after_finish``."""
        if not self.settings.keep_after_finish:
            for name in (CHECKPOINT, PREVIOUS):
                shutil.rmtree(self.out_dir / name, ignore_errors=True)
