"""Experiment tracking: a run's curves and metrics sent to TensorBoard or MLflow as it goes.

``logger=none`` (the default) sends nothing; ``logger=tensorboard`` writes event files in the
run folder at every phase end (:mod:`.tensorboard`); ``logger=mlflow`` sends one MLflow run per
job when the run ends (:mod:`.mlflow`). A tracker never fails a run: its first error is logged
as one warning and the tracker stops (:class:`~forgetbench.tracking.base.Tracker`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from forgetbench.config_check import ConfigError
from forgetbench.options import Rule, invalid_message
from forgetbench.tracking.base import Tracker

NAMES = ("none", "tensorboard", "mlflow")
NAME_RULE = Rule(lambda v: v in NAMES, f"one of {list(NAMES)} (choose with logger=NAME)")


def make_tracker(cfg: DictConfig, out_dir: Path, identity: dict) -> Tracker:
    """The tracker that ``logger.name`` selects (``none`` when the key is absent).

    Raises:
        ConfigError: for an unknown ``logger.name``.
    """
    options = OmegaConf.to_container(
        OmegaConf.select(cfg, "logger", default=None) or {}, resolve=True
    )
    name = options.pop("name", "none")
    if name == "tensorboard":
        from forgetbench.tracking.tensorboard import TensorBoardTracker

        return TensorBoardTracker(out_dir, identity, **options)
    if name == "mlflow":
        from forgetbench.tracking.mlflow import MlflowTracker

        return MlflowTracker(out_dir, identity, **options)
    if name != "none":
        raise ConfigError(invalid_message("logger.name", name, NAME_RULE))
    return Tracker(out_dir, identity)
