"""A-GEM: the projection by hand, the reference draw, the projected step on both paths, runs."""

import numpy as np
import pytest
import tensorflow as tf

from forgetbench.losses import per_sample_loss
from forgetbench.remainder import RemainderPolicy
from forgetbench.run import build_trainer
from forgetbench.strategies.agem import AGEM, project
from forgetbench.strategies.graph_memory import reference_draw
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


def as_tensors(*vectors):
    return [tf.constant(v, tf.float32) for v in vectors]


def test_projection_of_a_conflicting_gradient():
    # g = (1, 0 | 0), g_ref = (-1, 1 | 0): g . g_ref = -1, |g_ref|^2 = 2,
    # g - (-1 / 2) g_ref = (0.5, 0.5 | 0), orthogonal to g_ref.
    grads, reference = as_tensors([1.0, 0.0], [0.0]), as_tensors([-1.0, 1.0], [0.0])
    projected, conflict = project(grads, reference)
    assert bool(conflict)
    np.testing.assert_allclose(projected[0].numpy(), [0.5, 0.5])
    np.testing.assert_allclose(projected[1].numpy(), [0.0])


def test_a_gradient_that_agrees_is_left_alone():
    grads, reference = as_tensors([1.0, 1.0], [2.0]), as_tensors([1.0, 0.0], [-0.5])
    projected, conflict = project(grads, reference)  # dot = 1 - 1 = 0: no conflict
    assert not bool(conflict)
    for p, g in zip(projected, grads, strict=True):
        np.testing.assert_array_equal(p.numpy(), g.numpy())


def test_projected_gradients_never_conflict_with_the_reference():
    for seed in range(200):
        rng = np.random.default_rng(seed)
        grads = as_tensors(rng.normal(size=(3, 2)), rng.normal(size=4))
        reference = as_tensors(rng.normal(size=(3, 2)), rng.normal(size=4))
        projected, conflict = project(grads, reference)
        dot = sum(float(tf.reduce_sum(p * r)) for p, r in zip(projected, reference, strict=True))
        before = sum(float(tf.reduce_sum(g * r)) for g, r in zip(grads, reference, strict=True))
        assert dot >= -1e-5
        assert bool(conflict) == (before < 0)


def test_reference_draws_are_distinct_filled_slots_and_uniform():
    counts = np.zeros(10)
    draw = tf.function(lambda seed: reference_draw(10, 7.0, 4, seed))
    for seed in range(2000):
        slots, valid = draw(tf.constant([seed, 3]))
        slots, valid = slots.numpy(), valid.numpy()
        assert len(set(slots)) == 4 and valid.sum() == 4 and slots.max() < 7
        counts[slots] += 1
    assert counts[7:].sum() == 0
    np.testing.assert_allclose(counts[:7] / 2000, 4 / 7, atol=0.04)  # each slot 4/7 of draws
    slots, valid = reference_draw(10, 3.0, 5, [0, 0])  # fewer filled slots than the draw
    assert sorted(slots.numpy()[valid.numpy() == 1]) == [0, 1, 2] and valid.numpy().sum() == 3
    same = [reference_draw(10, 7.0, 4, [5, 9])[0].numpy() for _ in range(2)]
    np.testing.assert_array_equal(*same)


def agem_engine(k, memory_x, memory_y):
    """An engine with A-GEM whose memory holds ``memory_x, memory_y`` (all drawn each update)."""
    model = engine(k=k)
    model.ctx.phases = (None, None)
    agem = AGEM(per_shard=len(memory_y), reference_size=64)
    agem.setup(model.ctx)
    agem.memory_x[: len(memory_y)].assign(memory_x)
    agem.memory_y[: len(memory_y)].assign(memory_y.astype(np.float32))
    agem.count.assign(float(len(memory_y)))
    return model, agem


def reference_agem_step(w0, x, y, memory_x, memory_y):
    net = logreg((DIM,), CLASSES)
    net.set_weights(w0)
    grads = []
    for inputs, labels in ((x, y), (memory_x, memory_y)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(per_sample_loss(labels, net(inputs)))
        grads.append(tape.gradient(loss, net.trainable_variables))
    projected, conflict = project(*grads)
    optimizer_of("sgd").apply(projected, net.trainable_variables)
    return net.get_weights(), bool(conflict)


def conflicting_memory(x, y):
    """Samples all labelled with one class, whose gradient conflicts with the batch's."""
    w0 = engine().net.get_weights()
    for label in np.argsort(np.bincount(y, minlength=CLASSES)):  # the rarest class first
        memory = (x[:12], np.full(12, label))
        if reference_agem_step(w0, x, y, *memory)[1]:
            return memory
    raise AssertionError("no conflicting memory found")


@pytest.mark.parametrize("memory", ["conflicting", "the batch itself"])
@pytest.mark.parametrize("k", [1, 5])
def test_the_update_is_projected_on_the_single_and_the_accumulated_path(k, memory):
    x, y = make_data()
    memory_x, memory_y = conflicting_memory(x, y) if memory == "conflicting" else (x, y)
    model, agem = agem_engine(k, memory_x, memory_y)
    w0 = model.net.get_weights()
    batch = N if k == 1 else 8
    model.train_epoch(
        feed_with_column(x, y, np.zeros(N, np.float32), RemainderPolicy("weighted"), batch)
    )
    expected, conflict = reference_agem_step(w0, x, y, memory_x, memory_y)
    assert conflict == (memory == "conflicting")
    assert int(model.optimizer.iterations.numpy()) == 1
    assert float(agem.updates.numpy()) == 1.0
    assert float(agem.projected.numpy()) == float(conflict)
    assert_close(model.net.get_weights(), expected, rtol=1e-4)


def run(tiny_cfg, *overrides):
    trainer, *_ = build_trainer(tiny_cfg("strategy=agem", *overrides))
    trainer.train()
    return trainer, [(r["samples_seen"], r["accuracy"], r["loss"]) for r in trainer.records]


def test_memory_reports_and_determinism_per_seed(tiny_cfg):
    trainer, first = run(tiny_cfg, "seed=1", "strategy.plugins.agem.per_shard=20")
    summary = trainer.strategy.summary()["agem"]
    assert [m["samples"] for m in summary["memory_per_shard"]] == [20, 20, 20]
    assert [m["shard"] for m in summary["memory_per_shard"]] == [0, 1, 2]
    assert summary["memory_bytes"] == 60 * (4 * 5 + 4)
    rates = [p["projection_rate"] for p in summary["phases"]]
    assert rates[0] == 0.0 and all(0 < r <= 1 for r in rates[1:])  # no memory in phase 0
    assert run(tiny_cfg, "seed=1", "strategy.plugins.agem.per_shard=20")[1] == first
    assert run(tiny_cfg, "seed=2", "strategy.plugins.agem.per_shard=20")[1] != first
    # Rows 20k .. 20k + 19 are distinct samples of shard k.
    held = trainer.strategy.plugins["agem"].memory_x.numpy()
    for k, phase in enumerate(trainer.phases):
        feed = phase.feed
        shard_x, _ = feed.gather(np.sort(feed.plan.slice(0, 0, feed.num_samples)))
        rows = {tuple(r) for r in np.asarray(shard_x)}
        block = [tuple(r) for r in held[20 * k : 20 * (k + 1)]]
        assert len(set(block)) == 20 and set(block) <= rows


@pytest.mark.parametrize(
    "kwargs, match",
    [({"per_shard": 0}, "per_shard"), ({"reference_size": -1}, "reference_size")],
)
def test_bad_options_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AGEM(**kwargs)
