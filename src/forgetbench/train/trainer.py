"""Runs a strategy's phases through the engine, evaluating at exact sample counts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from forgetbench.batch import IS_NEW
from forgetbench.data.feed import Feed
from forgetbench.eval.evaluator import Evaluator
from forgetbench.strategies.base import Phase, Strategy
from forgetbench.train.engine import Engine


def prefetched_blocks(
    feed: Feed, epochs: int, pool: ThreadPoolExecutor | None = None, first_epoch: int = 0
) -> Iterator[tuple[int, int, int, dict]]:
    """``(epoch, first, count, arrays)`` of every block of a phase, one gathered ahead.

    The first block is gathered at once (nothing could overlap with it); while the engine
    trains on a block, a background thread of ``pool`` gathers the next one (TensorFlow releases
    the GIL while it runs). Blocks depend on ``(epoch, first, count)`` and the phase's feed
    alone, so what is gathered ahead is what would be gathered later. Without ``pool``, one is
    made for the phase. ``first_epoch``: the epochs before it are left out (a resumed phase).
    """
    epochs_left = range(first_epoch, epochs)
    order = [(e, first, count) for e in epochs_left for first, count in feed.blocks(e)]
    if not order:
        return
    if pool is None and len(order) > 1:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgetbench-gather") as own:
            yield from prefetched_blocks(feed, epochs, own, first_epoch)
        return
    arrays = feed.block(*order[0])
    for i, (epoch, first, count) in enumerate(order):
        pending = pool.submit(feed.block, *order[i + 1]) if i + 1 < len(order) else None
        yield epoch, first, count, arrays
        if pending is not None:
            arrays = pending.result()


@dataclass
class Trainer:
    """Trains through the ``phases`` of ``strategy`` and records evaluations.

    Evaluation happens at initialisation, every ``every_samples`` real training samples, at each
    phase boundary of the sequential feed (``boundaries``), and at the end. Every batch between
    two evaluation points runs in one compiled call; an evaluation due at an epoch's last batch
    waits for the epoch's partly filled accumulation group to be applied, so a phase boundary
    is measured on the model the phase ends with.

    Attributes:
        engine: Network, optimizer and the compiled training loop.
        strategy: The strategy whose plugin hooks run around each phase.
        phases: The phases to train, in order.
        evaluator: Evaluates the network on every shard's held-out split.
        epochs: Passes over each phase's feed.
        every_samples: Evaluation interval in real training samples.
        boundaries: Real samples seen at each phase boundary (sequential feed).
        reset_optimizer: Return the optimizer to its initial state (moments, step count)
            before every phase after the first; by default the state carries over.
        verbose: Progress display (0 silent, 1 progress bar, 2 one line per epoch).
        steps_per_call: Most batches one compiled call trains (``None``: every batch up to the
            next evaluation point); control returns to Python (progress, interrupts) between
            calls. Results do not depend on it.
        records: The evaluation records so far.
        train_log: Training loss, accuracy and penalty of every (phase, epoch).
        diverged: Where training stopped on a non-finite loss or weights, else ``None``.
        resume: Called once after the plugins' ``setup``; restores a checkpoint (state,
            plugins, variables) and sets ``start_phase`` (``forgetbench.checkpoint``).
        phase_end_hooks: Called in order with each phase once it is complete (its plugin hooks
            and evaluations done): checkpoints, experiment trackers.
        start_phase: The first phase to train (after a resume; 0 otherwise).
        start_epoch: The first epoch of ``start_phase`` to train (a resume within a phase).
        phase_start_hooks: Called in order with each phase before its plugins' ``before_phase``.
        epoch_end_hooks: Called in order with ``(phase, epoch)`` at every epoch end but a
            phase's last (mid-phase checkpoints).
        after_before_phase: Called once after the next ``before_phase`` (a resume within a
            phase puts its variables back then), then cleared.
    """

    engine: Engine
    strategy: Strategy
    phases: list[Phase]
    evaluator: Evaluator
    epochs: int
    every_samples: int
    boundaries: np.ndarray
    verbose: int = 0
    reset_optimizer: bool = False
    steps_per_call: int | None = None
    records: list[dict] = field(default_factory=list)
    diverged: dict | None = None
    train_log: list[dict] = field(default_factory=list)
    eval_seconds: float = 0.0
    ctx: object = None
    resume: Callable[[Trainer], None] | None = None
    phase_end_hooks: list[Callable[[Phase], None]] = field(default_factory=list)
    start_phase: int = 0
    start_epoch: int = 0
    phase_start_hooks: list[Callable[[Phase], None]] = field(default_factory=list)
    epoch_end_hooks: list[Callable[[Phase, int], None]] = field(default_factory=list)
    after_before_phase: Callable[[], None] | None = None
    _phase: Phase | None = None
    _epoch: int = 0
    _next_boundary: int = 0
    _last_eval: int = -1
    _pool: ThreadPoolExecutor | None = None

    STATE = ("records", "train_log", "_epoch", "_next_boundary", "_last_eval")

    def state(self) -> dict:
        """Evaluation records, training log and evaluation schedule (for a checkpoint)."""
        return {name: getattr(self, name) for name in self.STATE}

    def restore_state(self, state: dict) -> None:
        """Puts back what :meth:`state` returned."""
        for name in self.STATE:
            setattr(self, name, state[name])

    @property
    def net(self) -> keras.Model:
        """The network being trained."""
        return self.engine.net

    @property
    def saved_net(self) -> keras.Model:
        """What ``model.keras`` holds: ``ctx.saved_network`` if a plugin set it, else ``net``."""
        saved = None if self.ctx is None else self.ctx.saved_network
        return self.net if saved is None else saved

    @property
    def samples_seen(self) -> int:
        """Real training samples seen so far."""
        return int(self.engine.samples_seen.numpy())

    def _due(self) -> int:
        next_regular = (max(self._last_eval, 0) // self.every_samples + 1) * self.every_samples
        if self._next_boundary < len(self.boundaries):
            return min(next_regular, int(self.boundaries[self._next_boundary]))
        return next_regular

    def _diverge(self, reason: str) -> None:
        self.diverged = {
            "reason": reason,
            "step": int(self.engine.batches_seen.numpy()),
            "samples_seen": self.samples_seen,
            "phase": None if self._phase is None else self._phase.index,
            "last_finite_loss": self.engine.last_finite_loss,
        }

    def evaluate_if_due(self, seen: int | None = None) -> None:
        """Evaluates if the samples seen reached the next interval or boundary."""
        seen = self.samples_seen if seen is None else seen
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
            "step": int(self.engine.batches_seen.numpy()),
            "samples_seen": seen,
            "epoch": self._epoch,
            "train_shard": None if self._phase is None else self._phase.train_shard,
        }
        self.records.extend({**point, **rec} for rec in self._evaluate_now())
        self._last_eval = seen
        while (
            self._next_boundary < len(self.boundaries)
            and seen >= self.boundaries[self._next_boundary]
        ):
            self._next_boundary += 1
        self.eval_seconds += time.perf_counter() - start

    def _redo_last_evaluation(self) -> None:
        """Evaluates again at the last point: a hook trained the network after it (GDumb)."""
        seen = self.samples_seen
        if self._last_eval != seen:
            self.evaluate(seen)
            return
        self.records = [r for r in self.records if r["samples_seen"] != seen]
        self._last_eval = -1
        self.evaluate(seen)

    def _evaluate_now(self) -> list[dict]:
        forward = None if self.ctx is None else self.ctx.evaluation_forward
        return self.evaluator(self.engine.net, forward=forward)

    def _steps_until_due(self, new: np.ndarray, seen: int) -> int:
        """Batches of ``new`` (new samples per batch) until an evaluation is due (at least 1)."""
        need = self._due() - seen
        reached = np.searchsorted(np.cumsum(new), need, side="left") + 1
        steps = int(min(max(reached, 1), len(new)))
        return steps if self.steps_per_call is None else min(steps, int(self.steps_per_call))

    def _callbacks(self, hook: str, *args) -> None:
        for callback in self.ctx.callbacks:
            getattr(callback, hook)(*args)

    def _train_epochs(self, phase: Phase) -> bool:
        """Trains every epoch of ``phase``; returns ``False`` if training diverged."""
        feed, engine = phase.feed, self.engine
        epoch, seen, progress = -1, self.samples_seen, None
        first_epoch, self.start_epoch = self.start_epoch, 0
        blocks = prefetched_blocks(feed, self.epochs, self._pool, first_epoch)
        for block_epoch, first, count, arrays in blocks:
            if block_epoch != epoch:
                epoch = self._epoch = block_epoch
                engine.reset_epoch()
                self._callbacks("on_epoch_begin", epoch)
                progress = self._progress(phase, epoch, feed.batches_per_epoch)
            tensors = {name: tf.convert_to_tensor(column) for name, column in arrays.items()}
            new = arrays[IS_NEW].sum(axis=1).astype(np.int64)
            epoch_ends = first + count == feed.batches_per_epoch
            position = 0
            while position < count:
                stop = position + self._steps_until_due(new[position:], seen)
                if phase.updates:
                    end, finite = engine.run(tensors, position, stop)
                else:  # the stream passes without training (GDumb)
                    end, finite = stop, True
                    engine.advance(int(new[position:end].sum()), end - position)
                seen += int(new[position:end].sum())
                position = end
                if not finite:
                    blocks.close()
                    self._diverge("non-finite training loss")
                    return False
                if progress is not None:
                    progress.update(first + position, list(engine.epoch_logs().items()))
                if not (epoch_ends and position == count):  # see the epoch end below
                    self.evaluate_if_due(seen)
            if epoch_ends and not self._end_epoch(phase, epoch, seen):
                blocks.close()
                return False
            if epoch_ends and epoch < self.epochs - 1:
                for hook in self.epoch_end_hooks:
                    hook(phase, epoch)
        return True

    def _end_epoch(self, phase: Phase, epoch: int, seen: int) -> bool:
        """Applies a partly filled group, checks the weights, evaluates if due, logs."""
        self.engine.flush()
        if not self.engine.weights_finite():
            self._diverge("non-finite weights")
            return False
        self.evaluate_if_due(seen)
        logs = self.engine.epoch_logs() if phase.updates else {}
        self.train_log.append({"phase": phase.index, "epoch": epoch, **logs})
        self._callbacks("on_epoch_end", epoch, logs)
        return True

    def _progress(self, phase: Phase, epoch: int, batches: int) -> keras.utils.Progbar | None:
        if not self.verbose:
            return None
        shard = "all shards" if phase.train_shard is None else f"shard {phase.train_shard}"
        print(f"Phase {phase.index} ({shard}), epoch {epoch + 1}/{self.epochs}")
        names = ["loss", "accuracy", "penalty"]
        return keras.utils.Progbar(batches, verbose=self.verbose, stateful_metrics=names)

    def train(self) -> float:
        """Trains every phase; returns the wall seconds spent training (evaluation excluded).

        Stops at once, without evaluating a broken model again, when a loss or the weights
        stop being finite (see ``diverged``).
        """
        self.ctx = self.ctx or self.engine.ctx
        self.ctx.attach(lambda: self.samples_seen, self._evaluate_now, self.phases)
        self.strategy.setup(self.ctx)
        if self.resume is not None:
            self.resume(self)
        if not self.records:  # not resumed
            self.evaluate()  # before the clock: its time (tracing included) is not training's
        for callback in self.ctx.callbacks:
            callback.set_model(self.engine.net)
        self._callbacks("on_train_begin")
        start, eval_before = time.perf_counter(), self.eval_seconds

        def train_seconds() -> float:
            return time.perf_counter() - start - (self.eval_seconds - eval_before)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgetbench-gather") as pool:
            self._pool = pool  # one gathering thread for every phase
            try:
                return self._train_phases(train_seconds)
            finally:
                self._pool = None

    def _train_phases(self, train_seconds) -> float:
        for phase in self.phases[self.start_phase :]:
            self._phase = self.ctx.phase = phase
            if self.reset_optimizer and phase.index > 0:
                self.engine.reset_optimizer_state()
            for hook in self.phase_start_hooks:
                hook(phase)
            self.strategy.before_phase(self.ctx, phase)
            if self.after_before_phase is not None:
                restore, self.after_before_phase = self.after_before_phase, None
                restore()
            if not self._train_epochs(phase):
                return train_seconds()
            self.strategy.after_phase(self.ctx, phase)
            if self.ctx.diverged:
                self._diverge(self.ctx.diverged)
                return train_seconds()
            if self.ctx.take_trained_outside():
                self._redo_last_evaluation()
            for hook in self.phase_end_hooks:
                hook(phase)
        self.evaluate()
        self._callbacks("on_train_end")
        return train_seconds()
