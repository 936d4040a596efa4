"""The ``forgetbench`` command: a thin Hydra entry point around :func:`forgetbench.run.run`.

What a person can act on is said in one line: a config or data error (the root cause, no
traceback), an interruption (``interrupted at step S of phase P ...``, exit status 128 + the
signal), a diverged run (its reason and step). TensorFlow's native log lines that say nothing
on a CPU machine are left out unless ``TF_CPP_MIN_LOG_LEVEL`` is set (see ``forgetbench.quiet``).
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

from forgetbench.quiet import quiet_tensorflow, without_native_noise
from forgetbench.signals import terminate_raises

quiet_tensorflow()

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from forgetbench.sweep import (  # noqa: E402
    ERROR,
    error_line,
    expand_home,
    record_failure,
    root_cause,
    with_sweep_dir,
)

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("forgetbench")


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors in what a person gave (config, data, disk): reported in one line, no traceback."""
    from forgetbench.config_check import ConfigError
    from forgetbench.data.errors import DiskFullError, ShardCacheError, ShardFormatError
    from forgetbench.run_folder import OtherConfigError, OtherDataError

    return (
        ConfigError,
        ShardFormatError,
        ShardCacheError,
        DiskFullError,
        OtherConfigError,
        OtherDataError,
    )


def interrupted_line(out_dir: Path, exc: BaseException, since: float = 0.0) -> tuple[str, int]:
    """``interrupted at step S of phase P; partial curves in FOLDER; re-run to redo``, status.

    With a checkpoint in the folder, the line ends ``re-run to resume after phase K``.

    Args:
        out_dir: The run folder.
        exc: The interruption (``KeyboardInterrupt``: SIGINT; ``RunInterrupted``: SIGTERM).
        since: When the job started: an ``interrupted.json`` older than that is an earlier one's.
    """
    from forgetbench.results.io import INTERRUPTED, read_json

    signum = getattr(exc, "signum", None) or (
        signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM
    )
    from forgetbench.checkpoint import CHECKPOINT, MANIFEST

    marker = out_dir / INTERRUPTED
    if marker.exists() and marker.stat().st_mtime >= since:
        info = read_json(marker)
        where = f"step {info.get('step')} of phase {info.get('phase')}"
        again = "re-run to redo"
        checkpoint = out_dir / CHECKPOINT / MANIFEST
        if checkpoint.exists():
            again = f"re-run to resume after phase {read_json(checkpoint).get('phase')}"
        line = f"interrupted at {where}; partial curves in {out_dir}; {again}"
    else:
        line = f"interrupted before training; nothing written in {out_dir}; re-run to redo"
    return f"[forgetbench] {signal.Signals(signum).name}: {line}", 128 + int(signum)


def result_line(summary: dict, out_dir: Path) -> str:
    """The console line of a finished run: its metrics, or why and where it diverged."""
    if summary["status"] == "diverged":
        d = summary.get("diverged") or {}
        shown = (
            f"{d.get('reason', 'no reason recorded')} at step {d.get('step')} "
            f"(phase {d.get('phase')}, {d.get('samples_seen')} samples seen)"
        )
    else:
        shown = ", ".join(
            f"{name}={value:.3f}" if value is not None else f"{name}=n/a"
            for name, value in summary.get("metrics", {}).items()
        )
    return f"[forgetbench] {summary['run_id']} {summary['status']}: {shown} -> {out_dir}"


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Runs one experiment in Hydra's output folder and prints where the results are.

    A search trial (a config with ``tuning``, from ``conf/search/``) runs every seed of
    ``tuning.seeds`` and returns its validation objective to the sweeper
    (:mod:`forgetbench.search`). In a multirun, a job that fails records its traceback in
    ``error.txt`` and lets the other jobs run; the sweep then lists the failures and exits
    non-zero. A single run stops with one line for an error in its config or data; SIGINT and
    SIGTERM stop with one line and exit status 128 + the signal.
    """
    with without_native_noise():  # TensorFlow's import prints before its log level applies
        from forgetbench.run import RunInterrupted, run
        from forgetbench.run_folder import RunInProgressError

    from forgetbench.per_strategy import apply_per_strategy

    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    (out_dir / ERROR).unlink(missing_ok=True)
    started = time.time()
    try:
        with terminate_raises(RunInterrupted):
            apply_per_strategy(cfg, hydra_cfg.runtime.choices.get("strategy"))
            if cfg.get("tuning") is not None:
                from forgetbench.search import run_trial

                overrides, number = hydra_cfg.overrides.task, hydra_cfg.job.get("num")
                value = run_trial(cfg, out_dir, run, overrides, number)
                print(f"[forgetbench] trial {out_dir}: {cfg.tuning.objective}={value}")
                return value
            summary = run(cfg, out_dir)
    except (KeyboardInterrupt, RunInterrupted) as exc:
        line, status = interrupted_line(out_dir, exc, since=started)
        print(line, file=sys.stderr)
        raise SystemExit(status) from None
    except RunInProgressError as exc:
        if not multirun:
            raise
        log.warning("%s", exc)  # not a failure: the other process finishes it
        return
    except Exception as exc:
        if multirun:
            record_failure(out_dir, exc)
            log.error("Job failed (%s): %s", out_dir, exc)
            return
        if isinstance(root_cause(exc), user_errors()):
            print(f"[forgetbench] error: {error_line(exc, full=True)}", file=sys.stderr)
            raise SystemExit(1) from None
        raise
    print(result_line(summary, out_dir))


def entry() -> None:
    """Console entry point: names a multirun's folder from its overrides, then runs Hydra."""
    sys.argv = [sys.argv[0], *with_sweep_dir(expand_home(sys.argv[1:]))]
    main()


if __name__ == "__main__":
    entry()
