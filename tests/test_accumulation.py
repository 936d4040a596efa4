"""Exactness of the remainder policies and of gradient accumulation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from omegaconf import open_dict

from forgetbench.losses import per_sample_loss
from forgetbench.remainder import RemainderPolicy
from forgetbench.run import build_trainer
from forgetbench.train.engine import Engine
from forgetbench.train.networks import logreg
from logreg_steps import identity_feed

pytestmark = pytest.mark.usefixtures("keras_session")

WEIGHTED = RemainderPolicy("weighted")
PAD = RemainderPolicy("pad", pad_partial=True)
DROP = RemainderPolicy("drop", keep_partial=False)
NAIVE = RemainderPolicy("naive", exact=False)
N, B, DIM, CLASSES, LR = 37, 8, 3, 3, 0.1


def make_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, DIM)).astype(np.float32), rng.integers(0, CLASSES, n)


def make_optimizer(name, **kwargs):
    return {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[name](
        learning_rate=LR, **kwargs
    )


def make_engine(policy, k=1, optimizer="sgd", net=None, **optimizer_kwargs):
    extra = {} if policy.exact or k == 1 else {"gradient_accumulation_steps": k}
    net = net or logreg((DIM,), CLASSES)
    return Engine(
        net,
        lambda: make_optimizer(optimizer, **extra, **optimizer_kwargs),
        policy,
        accumulation_steps=k,
    )


def train_epoch(policy, k, x, y, optimizer="sgd", seed=0, net=None):
    """One epoch through the real engine; returns the engine and the epoch's logs."""
    keras.utils.set_random_seed(seed)
    model = make_engine(policy, k, optimizer, net)
    logs = model.train_epoch(identity_feed(x, y, policy))
    return model, logs


def initial_weights(seed=0):
    keras.utils.set_random_seed(seed)
    return logreg((DIM,), CLASSES).get_weights()


def mean_loss_grads(weights, x, y):
    net = logreg((DIM,), CLASSES)
    net.set_weights(weights)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(per_sample_loss(y, net(x)))
    return net, tape.gradient(loss, net.trainable_variables)


def reference_step(weights, grads, optimizer="sgd"):
    """One optimizer step from ``weights`` with gradients ``grads``."""
    net = logreg((DIM,), CLASSES)
    net.set_weights(weights)
    opt = make_optimizer(optimizer)
    opt.apply(grads, net.trainable_variables)
    return net.get_weights()


def assert_close(actual, expected, rtol=1e-5):
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-6)


def full_batch_step(x, y, optimizer="sgd"):
    w0 = initial_weights()
    _, grads = mean_loss_grads(w0, x, y)
    return w0, reference_step(w0, grads, optimizer)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("policy", [WEIGHTED, PAD], ids=["weighted", "pad"])
@pytest.mark.parametrize("k", [5, 16])  # 5: the group closes itself; 16: flushed at epoch end
def test_accumulated_update_equals_full_batch_step(policy, k, optimizer):
    x, y = make_data()
    w0, expected = full_batch_step(x, y, optimizer)
    model, _ = train_epoch(policy, k, x, y, optimizer)
    assert int(model.optimizer.iterations.numpy()) == 1
    assert not np.allclose(model.net.get_weights()[0], w0[0])
    assert_close(model.net.get_weights(), expected)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_drop_equals_full_batch_step_over_kept_samples(optimizer):
    x, y = make_data()
    kept = N // B * B
    _, expected = full_batch_step(x[:kept], y[:kept], optimizer)
    model, _ = train_epoch(DROP, kept // B, x, y, optimizer)
    assert_close(model.net.get_weights(), expected)


def test_naive_is_the_equal_weight_average_of_micro_batch_means():
    x, y = make_data()
    w0 = initial_weights()
    starts = range(0, N, B)
    per_batch = [mean_loss_grads(w0, x[s : s + B], y[s : s + B])[1] for s in starts]
    equal_weight = [sum(g[i] for g in per_batch) / len(per_batch) for i in range(2)]
    model, _ = train_epoch(NAIVE, len(per_batch), x, y)
    assert_close(model.net.get_weights(), reference_step(w0, equal_weight))
    # ... which is not the full-batch step: the batch of 5 counts as much as one of 8.
    _, exact = full_batch_step(x, y)
    assert not np.allclose(model.net.get_weights()[0], exact[0], rtol=1e-4)


def test_no_accumulator_leaks_across_shards():
    k = 4
    xa, ya = make_data(37, seed=1)  # 5 micro-batches: one full group, then a partial one
    xb, yb = make_data(k * B, seed=2)  # exactly one group
    model, _ = train_epoch(WEIGHTED, k, xa, ya)
    after_a = model.net.get_weights()
    model.train_epoch(identity_feed(xb, yb, WEIGHTED))
    _, grads_b = mean_loss_grads(after_a, xb, yb)
    assert_close(model.net.get_weights(), reference_step(after_a, grads_b))


def test_keras_accumulation_does_leak_across_fit_calls():
    # The naive baseline keeps Keras's behaviour: the 5th micro-batch of shard A is averaged
    # into the first update of shard B.
    k = 4
    xa, ya = make_data(37, seed=1)
    xb, yb = make_data(k * B, seed=2)
    model, _ = train_epoch(NAIVE, k, xa, ya)
    after_a = model.net.get_weights()
    model.train_epoch(identity_feed(xb, yb, NAIVE))
    _, grads_b = mean_loss_grads(after_a, xb[: 3 * B], yb[: 3 * B])
    _, grads_a_tail = mean_loss_grads(after_a, xa[32:], ya[32:])
    leaked = [(3 * gb + ga) / 4 for gb, ga in zip(grads_b, grads_a_tail, strict=True)]
    assert_close(model.net.get_weights(), reference_step(after_a, leaked))


@pytest.mark.parametrize("policy", [WEIGHTED, PAD, NAIVE], ids=["weighted", "pad", "naive"])
def test_epoch_loss_is_the_mean_per_sample_loss(policy):
    x, y = make_data()
    w0 = initial_weights()
    keras.utils.set_random_seed(0)
    model = Engine(logreg((DIM,), CLASSES), lambda: keras.optimizers.SGD(learning_rate=0.0), policy)
    logs = model.train_epoch(identity_feed(x, y, policy))
    ref, _ = mean_loss_grads(w0, x, y)
    expected = float(tf.reduce_mean(per_sample_loss(y, ref(x))))
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    accuracy = float(np.mean(np.argmax(ref(x), axis=-1) == y))
    assert logs["accuracy"] == pytest.approx(accuracy)
    assert int(model.samples_seen.numpy()) == N


def test_invalid_accumulation_steps():
    with pytest.raises(ValueError, match=r"train.accumulation_steps=0. Expected an integer >= 1"):
        make_engine(WEIGHTED, k=0)


@pytest.mark.parametrize("k", [1, 5])
def test_penalty_is_added_once_per_update(k):
    # With k=5 the whole epoch (5 micro-batches) is one update: data mean plus the penalty
    # gradient once, the penalty taken at the weights the update starts from.
    x, y = make_data()
    keras.utils.set_random_seed(0)
    net = logreg((DIM,), CLASSES)
    w0 = net.get_weights()
    anchors = [tf.constant(w + 1.0) for w in w0]

    def penalty():
        return 0.5 * tf.add_n(
            [
                tf.reduce_sum(tf.square(v - a))
                for v, a in zip(net.trainable_variables, anchors, strict=True)
            ]
        )

    model = make_engine(WEIGHTED, k, net=net)
    model.ctx.add_penalty("test", penalty)
    # k=1: one batch of all the data, so one update: the same expected step.
    feed = identity_feed(x, y, WEIGHTED, batch_size=N if k == 1 else B)
    logs = model.train_epoch(feed)
    _, grads = mean_loss_grads(w0, x, y)
    penalty_grads = [w - (w + 1.0) for w in w0]  # d/dw 0.5 (w - a)^2 = w - a
    expected = reference_step(w0, [g + p for g, p in zip(grads, penalty_grads, strict=True)])
    assert int(model.optimizer.iterations.numpy()) == 1
    assert_close(model.net.get_weights(), expected)
    # Tracked at every micro-batch: without accumulation at the weights before the update;
    # with it, after the update when the micro-batch closed a group (the first four at w0,
    # 0.5 per parameter, the last at the updated weights).
    start = 0.5 * sum(w.size for w in w0)
    after = 0.5 * sum(np.sum(np.square(e - (w + 1.0))) for e, w in zip(expected, w0, strict=True))
    tracked = start if k == 1 else (4 * start + after) / 5
    assert logs["penalty"] == pytest.approx(tracked, rel=1e-5)


def test_no_penalty_tracks_zero():
    x, y = make_data()
    model, logs = train_epoch(WEIGHTED, 4, x, y)
    assert logs["penalty"] == 0.0


@pytest.mark.parametrize("remainder", ["weighted", "naive"])
def test_phase_boundaries_are_measured_on_the_model_the_phase_ends_with(tiny_cfg, remainder):
    # 8 batches per shard and k=3: each shard ends on a partly filled group, which the exact
    # policy applies when the epoch ends. The boundary evaluation must come after that update.
    cfg = tiny_cfg("strategy=sequential", f"remainder={remainder}", "train.accumulation_steps=3")
    with open_dict(cfg):
        cfg.strategy.plugins = {"probe": {"_target_": "conftest.EvaluateAfterPhase"}}
    trainer, *_ = build_trainer(cfg)
    assert all(p.feed.batches_per_epoch % 3 for p in trainer.phases)
    trainer.train()
    probe = trainer.strategy.plugins["probe"]
    assert len(probe.after) == len(trainer.phases)
    for seen, expected in probe.after:
        recorded = [r for r in trainer.records if r["samples_seen"] == seen]
        assert [r["accuracy"] for r in recorded] == [e["accuracy"] for e in expected]
        assert [r["loss"] for r in recorded] == pytest.approx([e["loss"] for e in expected])
