"""Synaptic intelligence: omega and Omega by hand, the task gradient in the step, runs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from forgetbench.remainder import RemainderPolicy
from forgetbench.run import build_trainer
from forgetbench.strategies.base import Phase
from forgetbench.strategies.si import SI, consolidate
from forgetbench.train.engine import Engine
from logreg_steps import LR, N, assert_close, engine, feed_with_column, make_data
from logreg_steps import reference_step as data_step

pytestmark = pytest.mark.usefixtures("keras_session")
PHASE = Phase(index=0, train_shard=0, feed=None)


def one_parameter_si(xi, c=1.0):
    net = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Ones()),
        ]
    )
    ctx = Engine(net, lambda: keras.optimizers.SGD(0.1), RemainderPolicy("weighted")).ctx
    si = SI(c=c, xi=xi)
    si.setup(ctx)
    return si, ctx, net.trainable_variables[0]


def value(x) -> float:
    return float(np.asarray(x).ravel()[0])


@pytest.mark.parametrize("xi", [0.1, 1.0])
def test_omega_and_importance_over_two_updates_of_one_parameter(xi):
    si, ctx, theta = one_parameter_si(xi, c=2.0)
    # Update 1: g = 2, theta 1.0 -> 0.8, omega += -2 * -0.2 = 0.4.
    # Update 2: g = -1, theta 0.8 -> 0.9, omega += 1 * 0.1 = 0.1.
    for g, before, after in ((2.0, 1.0, 0.8), (-1.0, 0.8, 0.9)):
        si.accumulate([tf.constant([[before]])], [tf.constant([[after]])], [tf.constant([[g]])])
        theta.assign([[after]])
    assert value(si.path[0].numpy()) == pytest.approx(0.5, rel=1e-6)
    si.after_phase(ctx, PHASE)
    # The phase moved theta by -0.1: Omega = relu(0 + 0.5 / (0.01 + xi)).
    expected = 0.5 / (0.01 + xi)
    assert value(si.importance[0].numpy()) == pytest.approx(expected, rel=1e-6)
    assert value(si.anchor[0].numpy()) == pytest.approx(0.9)
    assert value(si.path[0].numpy()) == 0.0
    theta.assign([[1.1]])  # penalty c * Omega * (1.1 - 0.9)^2
    assert float(si.penalty()) == pytest.approx(2.0 * expected * 0.04, rel=1e-5)
    log = si.summary()["per_phase"][0]
    assert log["path_sum"] == pytest.approx(0.5) and log["Omega_max"] == pytest.approx(expected)


def test_consolidation_is_clipped_at_zero():
    # A negative path integral lowers Omega, never below 0.
    np.testing.assert_allclose(
        consolidate(np.array([1.0, 1.0]), np.array([-0.05, -1.0]), np.array([0.1, 0.1]), 0.1),
        [1.0 - 0.05 / 0.11, 0.0],
    )


@pytest.mark.parametrize("k", [1, 5])
def test_omega_uses_the_task_gradient_without_the_penalty(k):
    # Phase 1 starts away from the anchor, so the penalty pulls: the update is
    # -lr (g_data + g_penalty) and omega must be lr * g_data * (g_data + g_penalty).
    x, y = make_data()
    model = engine(k=k)
    si = SI(c=0.5, xi=0.1)
    si.setup(model.ctx)
    w0 = model.net.get_weights()
    importance = [np.full(w.shape, 3.0, np.float32) for w in w0]
    anchor = [w - 0.2 for w in w0]
    for var, v in zip(si.importance, importance, strict=True):
        var.assign(v)
    for var, v in zip(si.anchor, anchor, strict=True):
        var.assign(v)
    batch = N if k == 1 else 8
    feed = feed_with_column(x, y, np.zeros(N, np.float32), RemainderPolicy("weighted"), batch)
    model.train_epoch(feed)
    _, g_data = data_step(w0, x, y, 0.0)
    g_penalty = [2 * 0.5 * o * (w - a) for o, w, a in zip(importance, w0, anchor, strict=True)]
    expected = [LR * g.numpy() * (g.numpy() + p) for g, p in zip(g_data, g_penalty, strict=True)]
    assert_close([v.numpy() for v in si.path], expected, rtol=1e-4)
    total = [LR * (g.numpy() + p) ** 2 for g, p in zip(g_data, g_penalty, strict=True)]
    assert not np.allclose(si.path[0].numpy(), total[0], rtol=1e-3)


def curve(tiny_cfg, *overrides):
    trainer, *_ = build_trainer(tiny_cfg(*overrides))
    trainer.train()
    return trainer, [(r["samples_seen"], r["accuracy"], r["loss"]) for r in trainer.records]


def test_si_is_deterministic_per_seed_and_c_zero_is_sequential(tiny_cfg):
    trainer, first = curve(tiny_cfg, "strategy=si", "seed=1", "strategy.plugins.si.c=100")
    assert curve(tiny_cfg, "strategy=si", "seed=1", "strategy.plugins.si.c=100")[1] == first
    assert curve(tiny_cfg, "strategy=si", "seed=2", "strategy.plugins.si.c=100")[1] != first
    assert curve(tiny_cfg, "strategy=sequential", "seed=1")[1] != first
    zero = curve(tiny_cfg, "strategy=si", "seed=1", "strategy.plugins.si.c=0")[1]
    assert zero == curve(tiny_cfg, "strategy=sequential", "seed=1")[1]
    phases = trainer.strategy.summary()["si"]["per_phase"]
    assert [p["phase"] for p in phases] == [0, 1, 2]
    assert all(p["Omega_sum"] > 0 for p in phases)
    assert trainer.train_log[-1]["penalty"] > 0  # the last phase pays the penalty


@pytest.mark.parametrize(
    "kwargs, match", [({"c": -1}, "c: expected a number >= 0"), ({"xi": 0}, "xi.*> 0")]
)
def test_bad_options_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SI(**kwargs)


def test_a_bad_value_in_the_config_is_refused_before_any_data_is_read(tiny_cfg, tmp_path):
    cfg = tiny_cfg("strategy=si", "strategy.plugins.si.xi=-1")
    with pytest.raises(
        Exception, match=r"(?s)SI xi: expected a number > 0. Received -1.*strategy.plugins.si"
    ):
        build_trainer(cfg)
    assert not (tmp_path / "data").exists()
