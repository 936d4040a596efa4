"""The ``forgetbench`` command: a thin Hydra entry point around :func:`forgetbench.run.run`."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Runs one experiment in Hydra's output folder and prints where the results are."""
    from forgetbench.run import run

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = run(cfg, out_dir)
    shown = ", ".join(
        f"{name}={value:.3f}" if value is not None else f"{name}=n/a"
        for name, value in summary.get("metrics", {}).items()
    )
    print(f"[forgetbench] {summary['run_id']}: {shown} -> {out_dir}")


if __name__ == "__main__":
    main()
