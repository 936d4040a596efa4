"""``logger=tensorboard``: the run's curves as TensorBoard scalars in its run folder.

At every phase end (and at the end) the new evaluation records and training-log rows are
written with ``tf.summary`` into ``RUN/tensorboard/``, so ``tensorboard --logdir SWEEP`` shows
every run of a sweep side by side:

- ``eval/accuracy/<shard>`` and ``eval/loss/<shard>``: held-out accuracy and mean loss per
  evaluated shard (or group), stepped by samples seen;
- ``train/loss``, ``train/accuracy``, ``train/penalty``: each epoch's training means, stepped by
  the samples seen when the epoch ended;
- ``final/<metric>``: the summary's metrics, at the last step.

A resumed run writes only what the interrupted one had not (its records after the checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from forgetbench.tracking.base import Tracker

TRAIN_KEYS = ("loss", "accuracy", "penalty")


class TensorBoardTracker(Tracker):
    """Writes scalars with ``tf.summary`` into ``RUN/<folder>``.

    Args:
        out_dir: The run folder.
        identity: The run's id and settings.
        folder: The event files' folder inside the run folder.
    """

    name = "tensorboard"

    def __init__(self, out_dir: Path, identity: dict, folder: str = "tensorboard") -> None:
        super().__init__(out_dir, identity)
        self.folder = self.out_dir / folder
        self._writer = None

    def _write(self, scalars) -> None:
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.folder))
        with self._writer.as_default():
            for name, value, step in scalars:
                tf.summary.scalar(name, float(value), step=int(step))
        self._writer.flush()

    def log_phase(self, phase, records: list[dict], train_log: list[dict]) -> None:
        """Writes the records' accuracy and loss per shard and the epochs' training means."""
        scalars = []
        for r in records:
            for key in ("accuracy", "loss"):
                scalars.append((f"eval/{key}/{r['eval_shard']}", r[key], r["samples_seen"]))
        if phase is not None:  # the phase's epochs, back from the samples seen at its end
            end, per_epoch = self.trainer.samples_seen, phase.feed.samples_per_epoch
            for row in train_log:
                step = end - (self.trainer.epochs - 1 - int(row["epoch"])) * per_epoch
                scalars.extend((f"train/{key}", row[key], step) for key in TRAIN_KEYS if key in row)
        if scalars:
            self._write(scalars)

    def log_end(self, summary: dict) -> None:
        """Writes the summary's metrics at the last step and closes the event file."""
        step = int((summary.get("timing") or {}).get("samples_seen") or 0)
        metrics = summary.get("metrics") or {}
        self._write([(f"final/{k}", v, step) for k, v in metrics.items() if v is not None])
        self._writer.close()
