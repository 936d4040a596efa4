"""Shared fixtures: tiny configs composed from the real config tree."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import pytest
from hydra import compose, initialize_config_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONF = str(Path(__file__).resolve().parents[1] / "conf")

TINY = [
    "data.num_shards=3",
    "data.dim=5",
    "data.samples_per_shard=120",
    "data.heldout_per_shard=40",
    "model.hidden=[8]",
    "train.epochs=1",
    "train.batch_size=16",
    "train.verbose=0",
    "eval.every_samples=50",
]


def compose_config(overrides: list[str] | None = None):
    """The real config tree composed with ``overrides`` (no Hydra app, no chdir)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=list(overrides or []))


@pytest.fixture
def keras_session():
    """A fresh Keras session for tests that build models."""
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


@pytest.fixture
def tiny_cfg(tmp_path, keras_session):
    """Returns a function composing the tiny config (cache in ``tmp_path``) plus overrides."""

    def make(*overrides: str):
        return compose_config([*TINY, f"paths.data_cache={tmp_path / 'data'}", *overrides])

    return make


class SignalAfterPhase:
    """A test plugin that sends the process a signal after a given phase (simulated preemption)."""

    def __init__(self, phase: int = 0, signum: int = 15) -> None:
        self.phase, self.signum = phase, signum

    def setup(self, trainer):
        pass

    def before_phase(self, trainer, phase):
        pass

    def after_phase(self, trainer, phase):
        if phase.index == self.phase:
            import os

            os.kill(os.getpid(), self.signum)

    def summary(self):
        return {}
