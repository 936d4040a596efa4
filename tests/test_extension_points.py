"""Each extension point of the engine, exercised by a test plugin on a tiny model, against
expectations computed by hand (one SGD or Adam step on a logistic regression)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import open_dict

from forgetbench.context import LossTerm
from forgetbench.run import build_trainer
from forgetbench.strategies.base import Plugin
from forgetbench.train.networks import mlp
from logreg_steps import (
    PAD,
    WEIGHTED,
    B,
    N,
    assert_close,
    engine,
    feed_with_column,
    make_data,
    reference_step,
    scales,
    squared_logits,
)

pytestmark = pytest.mark.usefixtures("keras_session")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("policy", [WEIGHTED, PAD], ids=["weighted", "pad"])
def test_loss_term_accumulated_over_micro_batches_equals_one_step_on_their_concatenation(
    policy, optimizer
):
    x, y = make_data()
    s = scales()
    model = engine(policy, k=5, optimizer=optimizer)  # 5 micro-batches: one update
    w0 = model.net.get_weights()
    model.ctx.add_loss_term(LossTerm("squared_logits", squared_logits, weight_column="scale"))
    model.train_epoch(feed_with_column(x, y, s, policy, B))
    expected, _ = reference_step(w0, x, y, s, optimizer)
    assert int(model.optimizer.iterations.numpy()) == 1
    assert_close(model.net.get_weights(), expected)


def test_loss_term_in_a_single_step_is_normalised_like_the_data_loss():
    x, y = make_data()
    s = scales()
    model = engine()
    w0 = model.net.get_weights()
    model.ctx.add_loss_term(LossTerm("squared_logits", squared_logits, weight_column="scale"))
    model.train_epoch(feed_with_column(x, y, s, WEIGHTED, N))  # one batch of everything
    expected, _ = reference_step(w0, x, y, s)
    assert_close(model.net.get_weights(), expected)


def test_gradient_transform_changes_the_update_before_the_optimizer():
    # Doubling the kernel's gradient and zeroing the bias's: one SGD step moves the kernel by
    # 2 * lr * g and leaves the bias where it was.
    x, y = make_data()
    model = engine()
    w0 = model.net.get_weights()
    model.ctx.add_gradient_transform(
        "double_kernel_freeze_bias", lambda grads, variables: [2 * grads[0], 0 * grads[1]]
    )
    model.train_epoch(feed_with_column(x, y, np.zeros(N, np.float32), WEIGHTED, N))
    expected, _ = reference_step(w0, x, y, 0.0, extra_grad=lambda g: [2 * g[0], 0 * g[1]])
    assert_close(model.net.get_weights(), expected)
    np.testing.assert_array_equal(model.net.get_weights()[1], w0[1])
    _, grads = reference_step(w0, x, y, 0.0)
    assert np.abs(grads[1].numpy()).sum() > 0  # the bias would have moved without it


@pytest.mark.parametrize("k", [1, 5])
def test_after_update_hook_sees_the_parameters_and_the_data_gradient_alone(k):
    # A penalty pulls every weight towards 1: the update includes its gradient, the hook's
    # gradient does not.
    x, y = make_data()
    model = engine(k=k)
    w0 = model.net.get_weights()
    net = model.net
    seen = {
        name: [model.ctx.variable(f"probe/{name}_{i}", np.zeros(w.shape)) for i, w in enumerate(w0)]
        for name in ("before", "after", "grad")
    }
    calls = model.ctx.variable("probe/calls", np.zeros(()))

    def penalty():
        return 0.5 * tf.add_n([tf.reduce_sum(tf.square(v - 1.0)) for v in net.trainable_variables])

    def hook(before, after, grads):
        for name, values in (("before", before), ("after", after), ("grad", grads)):
            for var, value in zip(seen[name], values, strict=True):
                var.assign(value)
        calls.assign_add(1.0)

    model.ctx.add_penalty("pull", penalty)
    model.ctx.add_after_update("probe", hook)
    model.train_epoch(feed_with_column(x, y, np.zeros(N, np.float32), WEIGHTED, N if k == 1 else B))
    _, data_grads = reference_step(w0, x, y, 0.0)
    expected, _ = reference_step(
        w0, x, y, 0.0, extra_grad=lambda g: [gi + (w - 1.0) for gi, w in zip(g, w0, strict=True)]
    )
    assert float(calls.numpy()) == 1.0
    assert_close([v.numpy() for v in seen["before"]], w0)
    assert_close([v.numpy() for v in seen["after"]], expected)
    assert_close([v.numpy() for v in seen["grad"]], [g.numpy() for g in data_grads])
    assert_close(model.net.get_weights(), expected)


class ExtensionProbe(Plugin):
    """Freezes a teacher after phase 0 and distils towards it; replaces the network at phase 2
    and routes evaluation of the last shard to the new network; counts epoch callbacks."""

    def __init__(self) -> None:
        self.phase_end_weights: list[list[np.ndarray]] = []
        self.teacher_at_phase_start: list[list[np.ndarray]] = []
        self.epochs_ended = 0
        self.old_net = None

    def setup(self, ctx) -> None:
        probe = self

        class Count(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                probe.epochs_ended += 1

        ctx.add_callback(Count())
        ctx.teacher()
        ctx.add_loss_term(
            LossTerm(
                "distil",
                lambda batch, z, z_old: 0.1 * tf.reduce_sum(tf.square(z - z_old), -1),
                needs_teacher=True,
            )
        )

    def before_phase(self, ctx, phase) -> None:
        self.teacher_at_phase_start.append(ctx.teacher().get_weights())
        if phase.index == 2:
            self.old_net = ctx.net
            keras.utils.set_random_seed(99)
            ctx.replace_network(mlp(ctx.feature_shape, ctx.num_classes, hidden=(5,)))
            old, new, last = self.old_net, ctx.net, phase.train_shard

            def forward(x, shard):
                return tf.where((shard == last)[:, None], new(x), old(x))

            ctx.set_evaluation_forward(forward)

    def after_phase(self, ctx, phase) -> None:
        self.phase_end_weights.append(ctx.net.get_weights())
        ctx.freeze_teacher()


def test_teacher_replacement_routing_and_callbacks_in_a_run(tiny_cfg):
    cfg = tiny_cfg("train.epochs=2")
    with open_dict(cfg):
        cfg.strategy.plugins = {"probe": {"_target_": "test_extension_points.ExtensionProbe"}}
    trainer, *_ = build_trainer(cfg)
    trainer.train()
    probe = trainer.strategy.plugins["probe"]
    assert probe.epochs_ended == 3 * 2
    # The teacher used while training phase p is the network as phase p - 1 ended.
    for p in (1, 2):
        assert_close(probe.teacher_at_phase_start[p], probe.phase_end_weights[p - 1], rtol=0)
    # After the replacement, the old network is frozen where phase 1 left it; the new one
    # trained with a fresh optimizer (its step count is phase 2's updates only).
    assert_close(probe.old_net.get_weights(), probe.phase_end_weights[1], rtol=0)
    assert trainer.net is not probe.old_net
    phase2 = trainer.phases[2].feed.batches_per_epoch * 2
    assert int(trainer.engine.optimizer.iterations.numpy()) == phase2
    # Evaluation routes the last shard to the new network, the others to the old one.
    final, evaluator = trainer.records[-3:], trainer.evaluator
    n = evaluator.num_samples
    x = evaluator.x.reshape(-1, evaluator.x.shape[-1])[:n]
    y, shard = evaluator.y.ravel()[:n], evaluator.shard
    for record in final:
        j = record["eval_shard"]
        net = trainer.net if j == 2 else probe.old_net
        predicted = np.argmax(net(x[shard == j]).numpy(), -1)
        assert record["accuracy"] == pytest.approx(np.mean(predicted == y[shard == j]))


def test_a_reused_engine_gives_the_curves_of_a_fresh_one(tiny_cfg):
    # Runs of one engine key share the network and the traced steps (one per plugin signature
    # and plugin config): strategies, seeds and an EWC lambda alternate in one process; every
    # run records the curves a fresh engine records.
    def records(*overrides, reuse=True):
        cfg = tiny_cfg(*overrides)
        keras.utils.set_random_seed(int(cfg.seed))
        trainer, *_ = build_trainer(cfg, reuse_engine=reuse)
        trainer.train()
        return trainer, [(r["samples_seen"], r["accuracy"], r["loss"]) for r in trainer.records]

    sequence = [
        ("strategy=ewc", "seed=0"),
        ("strategy=sequential", "seed=1"),
        ("strategy=ewc", "seed=0", "strategy.plugins.ewc.lam=1"),
        ("strategy=replay", "seed=0"),
        ("strategy=ewc", "seed=0"),
    ]
    shared = [records(*overrides) for overrides in sequence]
    assert len({id(trainer.engine) for trainer, _ in shared}) == 1
    for overrides, (_, curves) in zip(sequence, shared, strict=True):
        fresh_trainer, fresh = records(*overrides, reuse=False)
        assert fresh_trainer.engine is not shared[0][0].engine
        assert curves == fresh, overrides
    assert shared[0][1] == shared[4][1] != shared[2][1]  # lambda 100 vs 1: other curves


class Noise(Plugin):
    """A loss term drawing from TensorFlow's stateful generator (its global seed)."""

    def setup(self, ctx) -> None:
        ctx.add_loss_term(
            LossTerm("noise", lambda batch, z, _: tf.random.uniform(tf.shape(z)[:1]) * z[:, 0])
        )


def test_stateful_random_ops_draw_as_in_a_fresh_process(tiny_cfg):
    # A run on a reused engine leaves TensorFlow's global seed alone unless a trace draws from
    # it: then the seed is set and the step traced again, so each run matches a fresh one.
    def records(overrides, noise, reuse=True):
        cfg = tiny_cfg(*overrides)
        if noise:
            with open_dict(cfg):
                cfg.strategy.plugins = {"noise": {"_target_": "test_extension_points.Noise"}}
        trainer, *_ = build_trainer(cfg, reuse_engine=reuse)
        trainer.train()
        return trainer, [(r["samples_seen"], r["accuracy"], r["loss"]) for r in trainer.records]

    sequence = [(("seed=0",), False), (("seed=1",), True), (("seed=0",), True), (("seed=1",), True)]
    shared = [records(overrides, noise) for overrides, noise in sequence]
    # The second run found the engine of the first and traced its noise anew, seeded; an
    # engine with such a trace is not reused (op seeds are fixed when traced).
    assert shared[0][0].engine is shared[1][0].engine and shared[1][0].engine.stateful_random
    assert len({id(trainer.engine) for trainer, _ in shared[1:]}) == 3
    for (overrides, noise), (_, curves) in zip(sequence, shared, strict=True):
        assert curves == records(overrides, noise, reuse=False)[1], overrides
    assert shared[1][1] == shared[3][1] != shared[2][1]
