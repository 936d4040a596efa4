"""DER and DER++: the terms by hand, logits stored at their step, draws, accumulation, runs."""

import math

import numpy as np
import pytest
import tensorflow as tf

from forgetbench.remainder import RemainderPolicy
from forgetbench.run import build_trainer
from forgetbench.strategies.der import DER, der_terms
from forgetbench.strategies.graph_memory import reservoir_slots
from logreg_steps import N, assert_close, engine, feed_with_column, make_data
from logreg_steps import reference_step as data_step

pytestmark = pytest.mark.usefixtures("keras_session")
WEIGHTED = RemainderPolicy("weighted")


def test_terms_on_a_hand_computed_case():
    # Logit term: rows (1, 2) vs stored (0, 2) and (0, 0) vs (1, 1): squares 1 and 2, mean over
    # 2 rows x 2 logits = 0.75; a third, invalid row is ignored. Label term: CE of (1, 2) for
    # label 1 is log(1 + e^-1), of (0, 0) for label 0 is log 2.
    logits = tf.constant([[1.0, 2.0], [0.0, 0.0], [9.0, -9.0]])
    stored = tf.constant([[0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    valid = tf.constant([1.0, 1.0, 0.0])
    labels = tf.constant([1, 0, 1])
    der = der_terms(logits, stored, valid, logits, labels, valid, 0.5, 0.0)
    assert float(der) == pytest.approx(0.5 * 0.75)
    derpp = der_terms(logits, stored, valid, logits, labels, valid, 0.5, 2.0)
    ce = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert float(derpp) == pytest.approx(0.375 + 2.0 * ce, rel=1e-6)
    nothing = tf.zeros(3)
    assert float(der_terms(logits, stored, nothing, logits, labels, nothing, 0.5, 2.0)) == 0.0


def test_reservoir_slots_keep_each_item_with_probability_capacity_over_stream():
    # 5 slots, 20 items streamed in calls of 4: after the stream each item is held with
    # probability 5 / 20; the same seeds give the same slots.
    capacity, held = 5, np.zeros(20)
    write_slots = tf.function(lambda seen, seed: reservoir_slots(seen, 4, capacity, seed))
    for trial in range(600):
        memory = np.full(capacity, -1)
        for call in range(5):
            slots, write = write_slots(float(4 * call), tf.constant([trial, call]))
            for i in np.flatnonzero(write.numpy()):
                memory[slots.numpy()[i]] = 4 * call + i
        held[memory] += 1
    np.testing.assert_allclose(held / 600, 0.25, atol=0.07)
    a = reservoir_slots(7.0, 4, capacity, [1, 2])
    b = reservoir_slots(7.0, 4, capacity, [1, 2])
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


def der_engine(k=1, alpha=0.5, beta=0.0, capacity=64, size=8):
    model = engine(k=k)
    der = DER(alpha=alpha, beta=beta, capacity=capacity, size=size)
    der.setup(model.ctx)
    return model, der


def test_stored_logits_are_those_of_the_step_that_wrote_them():
    x, y = make_data()
    model, der = der_engine()
    w0 = model.net.get_weights()
    model.train_epoch(feed_with_column(x, y, np.zeros(N, np.float32), WEIGHTED, N))
    stored_x, stored_z = der.x.numpy()[:N], der.z.numpy()[:N]
    first = engine().net  # the same seed: the initial weights
    first.set_weights(w0)
    np.testing.assert_allclose(stored_z, first(stored_x).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(stored_z, model.net(stored_x).numpy(), atol=1e-4)  # not recomputed
    assert sorted(map(tuple, stored_x)) == sorted(map(tuple, x))
    # The first update drew from the empty buffer: exactly the plain step.
    expected, _ = data_step(w0, x, y, 0.0)
    assert_close(model.net.get_weights(), expected)


def fill(der, x, y, z):
    n = len(y)
    der.x[:n].assign(x)
    der.y[:n].assign(y.astype(np.float32))
    der.z[:n].assign(z)
    der.seen.assign(float(n))


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_accumulated_update_equals_one_step_on_the_concatenation(beta):
    x, y = make_data()
    rng = np.random.default_rng(1)
    buffered = (rng.normal(size=(20, 3)), rng.integers(0, 3, 20), rng.normal(size=(20, 3)))
    results = []
    for k, batch in ((1, N), (5, 8)):
        model, der = der_engine(k=k, beta=beta, size=6)
        fill(der, *buffered)
        model.train_epoch(feed_with_column(x, y, np.zeros(N, np.float32), WEIGHTED, batch))
        assert int(model.optimizer.iterations.numpy()) == 1
        results.append(model.net.get_weights())
        assert float(der.seen.numpy()) == 20 + N
    assert_close(results[1], results[0], rtol=1e-4)
    plain, _ = data_step(engine().net.get_weights(), x, y, 0.0)
    assert not np.allclose(results[0][0], plain[0], atol=1e-6)  # the terms moved the step


def run(tiny_cfg, *overrides):
    trainer, *_ = build_trainer(tiny_cfg(*overrides))
    trainer.train()
    der = trainer.strategy.plugins["der"]
    curves = [(r["samples_seen"], r["accuracy"], r["loss"]) for r in trainer.records]
    return trainer, curves, der.x.numpy().copy()


def test_buffer_and_curves_do_not_depend_on_how_far_batches_are_gathered(tiny_cfg):
    base = ("strategy=derpp", "seed=3", "strategy.plugins.der.capacity=40")
    trainer, curves, buffer = run(tiny_cfg, *base)
    _, short_calls, short_buffer = run(tiny_cfg, *base, "train.steps_per_call=1")
    assert curves == short_calls
    np.testing.assert_array_equal(buffer, short_buffer)
    other = run(tiny_cfg, "strategy=derpp", "seed=4", "strategy.plugins.der.capacity=40")
    assert other[1] != curves
    summary = trainer.strategy.summary()["der"]
    assert summary["buffer_size"] == 40 and sum(summary["per_shard"].values()) == 40
    assert summary["samples_streamed"] == trainer.samples_seen
    assert len(summary["per_shard"]) == 3  # every shard streamed past the reservoir


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": -1}, "alpha"),
        ({"beta": -0.5}, "beta"),
        ({"capacity": 0}, "capacity"),
        ({"size": 2.5}, "size"),
    ],
)
def test_bad_options_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DER(**kwargs)
