"""GDumb: the greedy class-balanced memory by hand, training from the initial weights, runs."""

import numpy as np
import pytest
from omegaconf import open_dict

from forgetbench.run import build_trainer
from forgetbench.strategies.base import Plugin
from forgetbench.strategies.gdumb import GDumb, GreedyClassBalancedMemory

pytestmark = pytest.mark.usefixtures("keras_session")


def test_memory_over_a_hand_written_label_stream():
    # Capacity 4. Four 0s fill it; the 1s each evict a 0 (class 1 holds fewer than 4 // 2);
    # the first 2 evicts from the largest class, 0 (tied with 1, the first wins); then 0 and 2
    # hold 4 // 3 = 1 each, so later 0s and 2s are not stored.
    labels = [0, 0, 0, 0, 1, 1, 2, 0, 2, 2]
    expected = [
        {0: 1},
        {0: 2},
        {0: 3},
        {0: 4},
        {0: 3, 1: 1},
        {0: 2, 1: 2},
        {0: 1, 1: 2, 2: 1},
        {0: 1, 1: 2, 2: 1},
        {0: 1, 1: 2, 2: 1},
        {0: 1, 1: 2, 2: 1},
    ]
    memory = GreedyClassBalancedMemory(4, (1,))
    rng = np.random.default_rng(0)
    for i, (label, counts) in enumerate(zip(labels, expected, strict=True)):
        memory.add(np.array([[float(i)]]), np.array([label]), shard=0, rng=rng)
        x, y = memory.items()
        held = {int(c): int((y == c).sum()) for c in np.unique(y)}
        assert held == counts, i
        assert {k: v for k, v in memory.counts.items() if v} == counts
        np.testing.assert_array_equal(y, np.array(labels)[x[:, 0].astype(int)])  # rows intact
    assert sorted(x[:, 0].astype(int))[-2:] == [5, 6]  # the last 1 and the first 2 are held


def test_eviction_takes_a_random_sample_of_the_largest_class():
    evicted = set()
    for seed in range(40):
        memory = GreedyClassBalancedMemory(3, (1,))
        memory.add(np.arange(4.0)[:, None], np.array([0, 0, 0, 1]), 0, np.random.default_rng(seed))
        x, _ = memory.items()
        evicted |= {0, 1, 2} - set(x[:, 0].astype(int))
    assert evicted == {0, 1, 2}


class Scramble(Plugin):
    """Sets random weights after each phase (before GDumb's hook runs)."""

    def after_phase(self, ctx, phase) -> None:
        rng = np.random.default_rng(phase.index)
        ctx.net.set_weights([rng.normal(size=w.shape) for w in ctx.net.get_weights()])


class Probe(Plugin):
    """Records the network's evaluation after GDumb trained it, at each phase end."""

    def __init__(self) -> None:
        self.after_training = []

    def after_phase(self, ctx, phase) -> None:
        self.after_training.append([r["accuracy"] for r in ctx.evaluate()])


def gdumb_run(tiny_cfg, *overrides, before=None, after=None):
    cfg = tiny_cfg("strategy=gdumb", "strategy.plugins.gdumb.epochs=3", *overrides)
    with open_dict(cfg):
        plugins = {}
        if before:
            plugins["before"] = {"_target_": f"test_gdumb.{before}"}
        plugins.update(cfg.strategy.plugins)
        if after:
            plugins["after"] = {"_target_": f"test_gdumb.{after}"}
        cfg.strategy.plugins = plugins
    trainer, *_ = build_trainer(cfg)
    trainer.train()
    return trainer


def curves(trainer):
    return [(r["samples_seen"], r["eval_shard"], r["accuracy"]) for r in trainer.records]


def test_trained_from_the_initial_weights_and_evaluated_as_training_ended(tiny_cfg):
    plain = gdumb_run(tiny_cfg, after="Probe")
    scrambled = gdumb_run(tiny_cfg, before="Scramble")
    assert curves(scrambled) == curves(plain)  # whatever the network was, training restarts
    probe = plain.strategy.plugins["after"]
    ends = [int(b) for b in plain.boundaries]
    for k, end in enumerate(ends):
        at_end = [r["accuracy"] for r in plain.records if r["samples_seen"] == end]
        assert at_end == pytest.approx(probe.after_training[k])
    # Between phase ends the network does not change: every point of phase k + 1 before its
    # end shows the model trained after phase k.
    for k in range(len(ends) - 1):
        inside = {
            r["samples_seen"]: r["accuracy"]
            for r in plain.records
            if ends[k] < r["samples_seen"] < ends[k + 1] and r["eval_shard"] == 0
        }
        assert inside and set(inside.values()) == {probe.after_training[k][0]}
    assert plain.train_log[0] == {"phase": 0, "epoch": 0}  # no training on the stream


def test_summary_and_determinism(tiny_cfg):
    trainer = gdumb_run(tiny_cfg, "strategy.plugins.gdumb.capacity=30", "seed=1")
    summary = trainer.strategy.summary()["gdumb"]
    assert summary["memory_size"] == 30 and sum(summary["per_class"].values()) == 30
    assert max(summary["per_class"].values()) - min(summary["per_class"].values()) <= 1
    assert summary["memory_bytes"] == 30 * (5 * 4 + 8)
    assert [p["memory_size"] for p in summary["phases"]] == [30, 30, 30]
    again = gdumb_run(tiny_cfg, "strategy.plugins.gdumb.capacity=30", "seed=1")
    assert curves(again) == curves(trainer)
    other = gdumb_run(tiny_cfg, "strategy.plugins.gdumb.capacity=30", "seed=2")
    assert curves(other) != curves(trainer)


@pytest.mark.parametrize(
    "kwargs, match", [({"capacity": 0}, "capacity"), ({"epochs": 0}, "epochs")]
)
def test_bad_options_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GDumb(**kwargs)


def test_a_memory_training_that_diverges_stops_the_run(tiny_cfg):
    trainer = gdumb_run(tiny_cfg, "optimizer.learning_rate=1e30")
    assert trainer.diverged is not None and "GDumb" in trainer.diverged["reason"]
    assert trainer.diverged["phase"] == 0
    assert max(r["samples_seen"] for r in trainer.records) == int(trainer.boundaries[0])
