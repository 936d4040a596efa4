"""Learning without forgetting: the distillation term by hand, its path through the step, runs."""

import math

import numpy as np
import pytest
import tensorflow as tf
from omegaconf import open_dict

from forgetbench.losses import per_sample_loss
from forgetbench.remainder import RemainderPolicy
from forgetbench.run import build_trainer
from forgetbench.strategies.base import Phase, Plugin
from forgetbench.strategies.lwf import LwF, distillation
from forgetbench.train.networks import logreg
from logreg_steps import (
    CLASSES,
    DIM,
    N,
    assert_close,
    engine,
    feed_with_column,
    make_data,
    optimizer_of,
)

pytestmark = pytest.mark.usefixtures("keras_session")


def softmax(values):
    e = [math.exp(v) for v in values]
    return [v / sum(e) for v in e]


def test_distillation_and_its_gradient_for_two_logits_at_t2():
    # Teacher logits (0, 2) and network logits (1, 0) at T = 2: q = softmax(0, 1),
    # p = softmax(0.5, 0); KL(q || p) = sum q log(q / p); d KL / d z = (p - q) / T.
    q, p = softmax([0.0, 1.0]), softmax([0.5, 0.0])
    kl = sum(qi * math.log(qi / pi) for qi, pi in zip(q, p, strict=True))
    z = tf.Variable([[1.0, 0.0]])
    with tf.GradientTape() as tape:
        value = distillation(z, tf.constant([[0.0, 2.0]]), 2.0)
    grad = tape.gradient(value, z).numpy()[0]
    assert kl == pytest.approx(0.25740, abs=1e-5)
    assert float(value[0]) == pytest.approx(kl, rel=1e-5)
    np.testing.assert_allclose(grad, [(p[0] - q[0]) / 2, (p[1] - q[1]) / 2], rtol=1e-5)
    # The cross-entropy -sum q log p has the same gradient (it differs by q's entropy).
    with tf.GradientTape() as tape:
        ce = -tf.reduce_sum(
            tf.nn.softmax(tf.constant([[0.0, 1.0]])) * tf.nn.log_softmax(z / 2.0), -1
        )
    np.testing.assert_allclose(tape.gradient(ce, z).numpy()[0], grad, rtol=1e-5)


def test_distillation_over_a_mask_ignores_the_other_units():
    z, z_old = tf.constant([[1.0, 0.0, 7.0]]), tf.constant([[0.0, 2.0, -3.0]])
    masked = distillation(z, z_old, 2.0, mask=tf.constant([1.0, 1.0, 0.0]))
    two = distillation(z[:, :2], z_old[:, :2], 2.0)
    assert float(masked[0]) == pytest.approx(float(two[0]), rel=1e-6)
    assert float(distillation(z, z, 2.0)[0]) == pytest.approx(0.0, abs=1e-7)


def test_alpha_per_phase_and_t_squared():
    lwf = LwF(alpha=[5.0, 0.5, 2.0], temperature=3.0, t_squared=True)
    assert [lwf.alpha_at(k) for k in range(3)] == [0.0, 0.5, 2.0]  # no teacher in phase 0
    assert LwF(alpha=0.7).alpha_at(4) == 0.7


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": [1.0, -0.1]}, "alpha"),
        ({"alpha": []}, "alpha"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -2}, "temperature"),
        ({"distill_over": "old_units"}, "distill_over.*old_units"),
    ],
)
def test_bad_options_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LwF(**kwargs)


def lwf_engine(k, optimizer, alpha=0.5, temperature=2.0):
    """An engine training with LwF in phase 1, its teacher a perturbed copy of the network."""
    model = engine(k=k, optimizer=optimizer)
    w0 = model.net.get_weights()
    rng = np.random.default_rng(3)
    model.net.set_weights([w + rng.normal(size=w.shape).astype(np.float32) for w in w0])
    model.ctx.freeze_teacher()  # the teacher: another network than the one trained
    teacher = model.ctx.teacher().get_weights()
    model.net.set_weights(w0)
    lwf = LwF(alpha=alpha, temperature=temperature, distill_over="all_units")
    lwf.setup(model.ctx)
    lwf.before_phase(model.ctx, Phase(index=1, train_shard=1, feed=None))
    return model, w0, teacher


def reference_lwf_step(w0, teacher_weights, x, y, optimizer, alpha=0.5, temperature=2.0):
    net, teacher = logreg((DIM,), CLASSES), logreg((DIM,), CLASSES)
    net.set_weights(w0)
    teacher.set_weights(teacher_weights)
    z_old = teacher(x)
    with tf.GradientTape() as tape:
        z = net(x)
        loss = tf.reduce_mean(per_sample_loss(y, z) + alpha * distillation(z, z_old, temperature))
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer_of(optimizer).apply(grads, net.trainable_variables)
    return net.get_weights()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("k", [1, 5])
def test_lwf_step_distils_towards_the_teacher_exactly_under_accumulation(k, optimizer):
    # k = 5 micro-batches under `weighted` equal one step on their concatenation.
    x, y = make_data()
    model, w0, teacher = lwf_engine(k, optimizer)
    batch = N if k == 1 else 8
    model.train_epoch(
        feed_with_column(x, y, np.zeros(N, np.float32), RemainderPolicy("weighted"), batch)
    )
    assert int(model.optimizer.iterations.numpy()) == 1
    assert_close(model.net.get_weights(), reference_lwf_step(w0, teacher, x, y, optimizer))
    # Distilling towards the network itself (KL = 0) would have made another step.
    other = reference_lwf_step(w0, w0, x, y, optimizer)
    assert not np.allclose(model.net.get_weights()[0], other[0], atol=1e-6)


class TeacherProbe(Plugin):
    """Records the teacher at each phase start and the network at each phase end."""

    def __init__(self) -> None:
        self.teachers, self.ends = [], []

    def before_phase(self, ctx, phase) -> None:
        self.teachers.append(ctx.teacher().get_weights())

    def after_phase(self, ctx, phase) -> None:
        self.ends.append(ctx.net.get_weights())


def lwf_run(tiny_cfg, *overrides, probe=False):
    cfg = tiny_cfg("strategy=lwf", *overrides)
    if probe:
        with open_dict(cfg):
            cfg.strategy.plugins["probe"] = {"_target_": "test_lwf.TeacherProbe"}
    trainer, *_ = build_trainer(cfg)
    trainer.train()
    return trainer


def test_teacher_is_the_network_at_the_end_of_the_previous_phase(tiny_cfg):
    trainer = lwf_run(tiny_cfg, probe=True)
    probe, lwf = trainer.strategy.plugins["probe"], trainer.strategy.plugins["lwf"]
    for p in (1, 2):
        assert_close(probe.teachers[p], probe.ends[p - 1], rtol=0)
        assert not np.allclose(probe.teachers[p][0], probe.ends[p][0])  # not the current one
    log = lwf.summary()["phases"]
    assert [e["teacher_from_phase"] for e in log] == [None, 0, 1]
    assert [e["alpha"] for e in log] == [0.0, 1.0, 1.0]
    assert log[1]["distilled_units"] == sorted(trainer.ctx.shard_classes[0])


def test_lwf_is_deterministic_per_seed_and_changes_the_run(tiny_cfg):
    def curve(*overrides):
        trainer = lwf_run(tiny_cfg, *overrides)
        return [(r["samples_seen"], r["accuracy"], r["loss"]) for r in trainer.records]

    assert curve("seed=1") == curve("seed=1")
    assert curve("seed=1") != curve("seed=2")
    assert curve("seed=1") != curve("seed=1", "strategy.plugins.lwf.alpha=0")


def test_alpha_list_shorter_than_the_phases_refused_before_training(tiny_cfg):
    cfg = tiny_cfg("strategy=lwf", "strategy.plugins.lwf.alpha=[0,1]")  # 3 phases
    trainer, *_ = build_trainer(cfg)
    with pytest.raises(ValueError, match=r"one value per phase \(3 phases\)"):
        trainer.train()
    assert trainer.samples_seen == 0


@pytest.mark.parametrize("distill_over", ["seen_classes", "all_units"])
def test_distilled_units_on_split_digits(tmp_path, distill_over, compose_config):
    cfg = compose_config(
        [
            "data=digits_split",
            "strategy=lwf",
            f"strategy.plugins.lwf.distill_over={distill_over}",
            "model.hidden=[8]",
            "train.epochs=1",
            "train.verbose=0",
            "eval.every_samples=1000",
            f"paths.data_cache={tmp_path}",
        ]
    )
    trainer, *_ = build_trainer(cfg)
    trainer.train()
    units = [e["distilled_units"] for e in trainer.strategy.plugins["lwf"].summary()["phases"]]
    if distill_over == "seen_classes":
        assert units == [[], [0, 1], [0, 1, 2, 3], [0, 1, 2, 3, 4, 5], list(range(8))]
    else:
        assert units == [[]] + [list(range(10))] * 4
