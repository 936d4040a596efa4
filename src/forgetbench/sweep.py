"""Sweep bookkeeping: failed jobs are recorded in their folder and listed when the sweep ends."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

ERROR = "error.txt"


def record_failure(out_dir: Path, exc: BaseException) -> None:
    """Writes the job's traceback to ``out_dir/error.txt``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    (out_dir / ERROR).write_text(text)


def failed_jobs(sweep_dir: Path) -> list[tuple[Path, str]]:
    """``(job folder, last line of its error)`` for every job that recorded a failure."""
    return [
        (path.parent, path.read_text().strip().splitlines()[-1])
        for path in sorted(Path(sweep_dir).rglob(ERROR))
    ]


class SweepFailures(Callback):
    """At the end of a multirun, lists failed jobs and exits non-zero if there are any."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Prints the failed jobs and their errors; exits with status 1 if any failed."""
        failures = failed_jobs(Path(config.hydra.sweep.dir))
        if not failures:
            return
        print(f"[forgetbench] {len(failures)} job(s) failed:", file=sys.stderr)
        for folder, error in failures:
            print(f"  {folder}: {error}", file=sys.stderr)
        raise SystemExit(1)
