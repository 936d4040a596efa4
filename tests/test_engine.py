"""The engine's run loop: exact evaluation points whatever the call length, divergence at the
batch where it happens, progress display."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import open_dict

from forgetbench.run import build_trainer, run_id
from forgetbench.strategies.base import Plugin


def records(cfg):
    keras.utils.set_random_seed(int(cfg.seed))
    trainer, *_ = build_trainer(cfg, reuse_engine=False)
    trainer.train()
    return trainer, [
        (r["step"], r["samples_seen"], r["eval_shard"], r["accuracy"], r["loss"])
        for r in trainer.records
    ]


def test_results_do_not_depend_on_the_call_length(tiny_cfg):
    _, whole = records(tiny_cfg("strategy=replay", "train.epochs=2"))
    for cap in (1, 3):
        cfg = tiny_cfg("strategy=replay", "train.epochs=2", f"train.steps_per_call={cap}")
        _, capped = records(cfg)
        assert capped == whole
    # Evaluation points are exact: every interval and boundary is a recorded sample count.
    trainer, _ = records(tiny_cfg("strategy=replay", "train.epochs=2"))
    seen = {r["samples_seen"] for r in trainer.records}
    assert {int(b) for b in trainer.boundaries} <= seen
    assert run_id(tiny_cfg("train.steps_per_call=3"), "s", "d", "r") == run_id(
        tiny_cfg(), "s", "d", "r"
    )


class NonFiniteFromUpdate(Plugin):
    """A penalty that becomes infinite once ``after`` updates are done."""

    def __init__(self, after: int = 5) -> None:
        self.after = after

    def setup(self, ctx) -> None:
        optimizer = ctx.optimizer
        ctx.add_penalty(
            "explodes",
            lambda: tf.where(optimizer.iterations >= self.after, np.inf, 0.0),
        )


def test_divergence_stops_right_after_the_batch_where_it_happens(tiny_cfg):
    cfg = tiny_cfg("eval.every_samples=1000000")
    with open_dict(cfg):
        cfg.strategy.plugins = {"boom": {"_target_": "test_engine.NonFiniteFromUpdate"}}
    trainer, *_ = build_trainer(cfg, reuse_engine=False)
    trainer.train()
    # Updates 0..4 are finite; the 6th batch's penalty (taken at its start) is not.
    info = trainer.diverged
    assert info["reason"] == "non-finite training loss"
    assert info["step"] == 6 and info["samples_seen"] == 6 * 16 and info["phase"] == 0
    assert info["last_finite_loss"] is not None and np.isfinite(info["last_finite_loss"])
    assert int(trainer.engine.optimizer.iterations.numpy()) == 6
    assert max(r["samples_seen"] for r in trainer.records) == 0  # only the initial evaluation


@pytest.mark.parametrize("verbose", [1, 2])
def test_progress_display(tiny_cfg, capsys, verbose):
    trainer, *_ = build_trainer(tiny_cfg(f"train.verbose={verbose}"), reuse_engine=False)
    trainer.train()
    out = capsys.readouterr().out
    assert out.count("Phase ") == len(trainer.phases) * trainer.epochs
    assert "loss" in out and "accuracy" in out
