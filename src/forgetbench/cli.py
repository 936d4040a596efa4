"""The ``forgetbench`` command: a thin Hydra entry point around :func:`forgetbench.run.run`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from forgetbench.sweep import ERROR, record_failure, with_sweep_dir  # noqa: E402

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("forgetbench")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Runs one experiment in Hydra's output folder and prints where the results are.

    In a multirun, a job that fails records its traceback in ``error.txt`` and lets the other
    jobs run; the sweep then lists the failures and exits non-zero.
    """
    from forgetbench.run import run
    from forgetbench.run_folder import RunInProgressError

    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    (out_dir / ERROR).unlink(missing_ok=True)
    try:
        summary = run(cfg, out_dir)
    except RunInProgressError as exc:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            raise
        log.warning("%s", exc)  # not a failure: the other process finishes it
        return
    except Exception as exc:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            raise
        record_failure(out_dir, exc)
        log.error("Job failed (%s): %s", out_dir, exc)
        return
    shown = ", ".join(
        f"{name}={value:.3f}" if value is not None else f"{name}=n/a"
        for name, value in summary.get("metrics", {}).items()
    )
    print(f"[forgetbench] {summary['run_id']} {summary['status']}: {shown} -> {out_dir}")


def entry() -> None:
    """Console entry point: names a multirun's folder from its overrides, then runs Hydra."""
    sys.argv = [sys.argv[0], *with_sweep_dir(sys.argv[1:])]
    main()


if __name__ == "__main__":
    entry()
