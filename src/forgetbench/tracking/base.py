"""The tracker interface: records at phase ends, the summary at the end; failures contained."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class Tracker:
    """Sends a run's results somewhere; this base sends nothing (``logger=none``).

    Subclasses implement :meth:`log_phase` (evaluation records and training-log rows new since
    the last call) and :meth:`log_end` (the summary). Either may fail (a server down, a full
    disk): the first failure is logged as a warning and the tracker is switched off, so the
    run itself never fails because of it.

    Args:
        out_dir: The run folder.
        identity: The run's id, dataset, strategy, remainder and seed.
    """

    name = "none"

    def __init__(self, out_dir: Path, identity: dict) -> None:
        self.out_dir, self.identity = Path(out_dir), dict(identity)
        self.failed: str | None = None
        self.trainer = None
        self._records = self._log_rows = 0

    def attach(self, trainer) -> None:
        """Logs the trainer's new records at every phase end (after a resume: the new ones).

        Called after the checkpoints are attached; logs before a phase's checkpoint is written,
        so a run stopped right after a checkpoint has sent everything up to it.
        """
        self.trainer = trainer
        trainer.phase_end_hooks.insert(0, self._phase_end)
        resume = trainer.resume
        if resume is not None:

            def resumed(t) -> None:
                resume(t)
                self._records, self._log_rows = len(t.records), len(t.train_log)

            trainer.resume = resumed

    def _guarded(self, what: str, fn, *args) -> None:
        if self.failed is not None:
            return
        try:
            fn(*args)
        except Exception as exc:  # a tracker never fails the run
            self.failed = f"{type(exc).__name__}: {exc}"
            log.warning(
                "logger=%s failed while %s (%s); the run goes on without it.",
                self.name,
                what,
                self.failed,
            )

    def _phase_end(self, phase) -> None:
        records, rows = self.trainer.records, self.trainer.train_log
        new = (records[self._records :], rows[self._log_rows :])
        self._records, self._log_rows = len(records), len(rows)
        self._guarded(f"logging phase {phase.index}", self.log_phase, phase, *new)

    def finish(self, summary: dict) -> None:
        """Logs what is left of the curves and the run's summary (called once it is written)."""
        if self.trainer is not None:
            records = self.trainer.records[self._records :]
            rows = self.trainer.train_log[self._log_rows :]
            self._guarded("logging the last phase", self.log_phase, None, records, rows)
        self._guarded("logging the run's end", self.log_end, summary)

    def log_phase(self, phase, records: list[dict], train_log: list[dict]) -> None:
        """Sends evaluation records and training-log rows (``phase`` ``None``: the run's end)."""

    def log_end(self, summary: dict) -> None:
        """Sends the run's summary (metrics) and files."""
