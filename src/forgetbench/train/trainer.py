"""Runs a strategy's phases with ``model.fit``, evaluating on an interval of real samples."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import keras
import numpy as np

from forgetbench.eval.evaluator import Evaluator
from forgetbench.strategies.base import Phase, Strategy
from forgetbench.train.model import ShardModel


class EvaluationSchedule(keras.callbacks.Callback):
    """Stops on a non-finite loss; otherwise evaluates whenever an evaluation point is due.

    An evaluation due at an epoch's last batch waits for ``on_epoch_end``, after the model has
    applied a partly filled accumulation group (``ShardModel.flush``): a phase boundary is then
    measured on the model the phase ends with, not on one an update behind.
    """

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.trainer = trainer

    def on_train_batch_end(self, batch, logs=None):
        """Checks the loss, then evaluates once the samples seen reach the next due point."""
        if not self.trainer.check_finite(logs or {}):
            return
        steps = self.params.get("steps")
        if steps is None or batch + 1 < steps:  # the last batch: see on_epoch_end
            self.trainer.evaluate_if_due()

    def on_epoch_end(self, epoch, logs=None):
        """Applies a partly filled accumulation group, then evaluates if a point is due."""
        if self.trainer.diverged is None:
            self.trainer.model.flush()
            self.trainer.evaluate_if_due()


@dataclass
class Trainer:
    """Trains ``model`` through the ``phases`` of ``strategy`` and records evaluations.

    Evaluation happens at initialisation, every ``every_samples`` real training samples, at each
    phase boundary of the sequential feed (``boundaries``), and at the end.

    Attributes:
        model: The model with the sample-weighted train step.
        strategy: The strategy whose hooks run around each phase.
        phases: The phases to train, in order.
        evaluator: Evaluates the network on every shard's held-out split.
        epochs: Passes over each phase's feed.
        every_samples: Evaluation interval in real training samples.
        boundaries: Real samples seen at each phase boundary (sequential feed).
        seed: The run's seed (for plugins' random draws).
        reset_optimizer: Zero the optimizer's state (moments, step count) before every phase
            after the first; by default the state carries over, as reference libraries do.
        verbose: Keras progress display (0 silent, 1 progress bar, 2 one line per epoch).
        records: The evaluation records so far.
        train_log: Training loss, accuracy and penalty of every (phase, epoch).
        diverged: Where training stopped on a non-finite loss or weights, else ``None``.
    """

    model: ShardModel
    strategy: Strategy
    phases: list[Phase]
    evaluator: Evaluator
    epochs: int
    every_samples: int
    boundaries: np.ndarray
    seed: int = 0
    verbose: int = 0
    reset_optimizer: bool = False
    records: list[dict] = field(default_factory=list)
    diverged: dict | None = None
    train_log: list[dict] = field(default_factory=list)
    eval_seconds: float = 0.0
    _phase: Phase | None = None
    _epoch: int = 0
    _next_boundary: int = 0
    _last_eval: int = -1
    _last_finite_loss: float | None = None

    @property
    def samples_seen(self) -> int:
        """Real training samples seen so far."""
        return int(self.model.samples_seen.numpy())

    def _due(self) -> int:
        next_regular = (max(self._last_eval, 0) // self.every_samples + 1) * self.every_samples
        if self._next_boundary < len(self.boundaries):
            return min(next_regular, int(self.boundaries[self._next_boundary]))
        return next_regular

    def check_finite(self, logs: dict) -> bool:
        """Records divergence and stops ``fit`` if the loss or penalty is not finite."""
        values = [float(logs[k]) for k in ("loss", "penalty") if k in logs]
        if all(np.isfinite(values)):
            if "loss" in logs:
                self._last_finite_loss = float(logs["loss"])
            return True
        self._diverge("non-finite training loss")
        return False

    def _diverge(self, reason: str) -> None:
        self.diverged = {
            "reason": reason,
            "step": int(self.model.batches_seen.numpy()),
            "samples_seen": self.samples_seen,
            "phase": None if self._phase is None else self._phase.index,
            "last_finite_loss": self._last_finite_loss,
        }
        self.model.stop_training = True

    def _weights_finite(self) -> bool:
        return all(np.isfinite(w).all() for w in self.model.net.get_weights())

    def _reset_optimizer(self) -> None:
        """Zeroes the optimizer's state (step count, moments); its learning rate stays."""
        for v in self.model.optimizer.variables:
            if v.name != "learning_rate":  # a hyperparameter held as a variable, not state
                v.assign(np.zeros(v.shape, dtype=v.dtype))

    def evaluate_if_due(self) -> None:
        """Evaluates if the samples seen reached the next interval or boundary."""
        seen = self.samples_seen
        if seen >= self._due():
            self.evaluate(seen)

    def evaluate(self, seen: int | None = None) -> None:
        """Evaluates every shard now and appends one record per shard.

        Args:
            seen: The samples seen, when the caller has just read them (saves a read).
        """
        seen = self.samples_seen if seen is None else seen
        if seen == self._last_eval:
            return
        start = time.perf_counter()
        point = {
            "step": int(self.model.batches_seen.numpy()),
            "samples_seen": seen,
            "epoch": self._epoch,
            "train_shard": None if self._phase is None else self._phase.train_shard,
        }
        self.records.extend({**point, **rec} for rec in self.evaluator(self.model.net))
        self._last_eval = seen
        while (
            self._next_boundary < len(self.boundaries)
            and seen >= self.boundaries[self._next_boundary]
        ):
            self._next_boundary += 1
        self.eval_seconds += time.perf_counter() - start

    def train(self) -> float:
        """Trains every phase; returns the wall seconds spent training (evaluation excluded).

        Stops at once, without evaluating a broken model again, when the loss or the weights
        stop being finite (see ``diverged``).
        """
        self.strategy.setup(self)
        self.evaluate()  # before the clock: its time (tracing included) is not training's
        callbacks = [EvaluationSchedule(self)]
        start, eval_before = time.perf_counter(), self.eval_seconds

        def train_seconds() -> float:
            return time.perf_counter() - start - (self.eval_seconds - eval_before)

        for phase in self.phases:
            self._phase = phase
            if self.reset_optimizer and phase.index > 0:
                self._reset_optimizer()
            self.strategy.before_phase(self, phase)
            for epoch in range(self.epochs):
                self._epoch = epoch
                history = self.model.fit(
                    phase.feed.epoch(epoch),
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    shuffle=False,
                    verbose=self.verbose,
                    callbacks=callbacks,
                )  # EvaluationSchedule.on_epoch_end has applied a partly filled group
                if self.diverged is None and not self._weights_finite():
                    self._diverge("non-finite weights")
                if self.diverged is not None:
                    return train_seconds()
                logs = {k: float(v[-1]) for k, v in history.history.items()}
                self.train_log.append({"phase": phase.index, "epoch": epoch, **logs})
            self.strategy.after_phase(self, phase)
        self.evaluate()
        return train_seconds()
