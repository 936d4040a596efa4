import keras
import numpy as np
import pytest
import tensorflow as tf

from forgetbench.remainder import RemainderPolicy
from forgetbench.strategies.ewc import EWC, fisher_diagonal
from forgetbench.train.engine import Engine
from forgetbench.train.networks import mlp

pytestmark = pytest.mark.usefixtures("keras_session")


def tiny_net(seed=0):
    keras.utils.set_random_seed(seed)
    return mlp((4,), 3, hidden=[5])


def brute_force_fisher(net, x, y, variant):
    """One sample at a time, one class at a time: the definition, no vectorisation."""
    total = [np.zeros(v.shape) for v in net.trainable_variables]
    for i in range(len(y)):
        probs = tf.nn.softmax(net(x[i : i + 1])).numpy()[0]
        classes = [int(y[i])] if variant == "empirical" else range(3)
        for c in classes:
            with tf.GradientTape() as tape:
                log_p = tf.nn.log_softmax(net(x[i : i + 1]))[0, c]
            weight = 1.0 if variant == "empirical" else probs[c]
            for t, g in zip(total, tape.gradient(log_p, net.trainable_variables), strict=True):
                t += weight * g.numpy() ** 2
    return [t / len(y) for t in total]


@pytest.mark.parametrize("variant", ["empirical", "exact"])
def test_fisher_matches_per_sample_loop_with_partial_batch(variant):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 4)).astype(np.float32)  # 23 = 2 batches of 10 + 3
    y = rng.integers(0, 3, 23)
    net = tiny_net()
    fast = fisher_diagonal(net, x, y, variant, batch_size=10)
    slow = brute_force_fisher(net, x, y, variant)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def context(net):
    """A real engine's plugin context for ``net``."""
    engine = Engine(net, lambda: keras.optimizers.SGD(0.1), RemainderPolicy("weighted"))
    return engine.ctx


def penalty_gradient(ewc, net):
    with tf.GradientTape() as tape:
        value = ewc.penalty()
    return value, tape.gradient(value, net.trainable_variables)


def set_weights(net, rng):
    net.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in net.get_weights()])
    return [w.astype(np.float64) for w in net.get_weights()]


def test_separate_penalty_value_and_gradient_sum_over_past_shards():
    net, rng, lam = tiny_net(), np.random.default_rng(1), 3.0
    ewc = EWC(lam=lam, mode="separate")
    ewc.setup(context(net))
    fishers, anchors = [], []
    for _ in range(2):
        anchors.append(set_weights(net, rng))
        fishers.append([rng.random(w.shape) for w in anchors[-1]])
        ewc._fold_in(fishers[-1], anchors[-1])
    theta = set_weights(net, rng)
    value, grads = penalty_gradient(ewc, net)
    expected_value = (
        lam
        / 2
        * sum(
            np.sum(f * (t - a) ** 2)
            for F, A in zip(fishers, anchors, strict=True)
            for f, a, t in zip(F, A, theta, strict=True)
        )
    )
    assert float(value) == pytest.approx(expected_value, rel=1e-4)
    for i, g in enumerate(grads):
        expected = lam * sum(
            F[i] * (theta[i] - A[i]) for F, A in zip(fishers, anchors, strict=True)
        )
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_online_penalty_decays_fisher_and_anchors_at_latest():
    net, rng, lam, gamma = tiny_net(), np.random.default_rng(2), 2.0, 0.5
    ewc = EWC(lam=lam, mode="online", gamma=gamma)
    ewc.setup(context(net))
    f1 = [rng.random(w.shape) for w in net.get_weights()]
    f2 = [rng.random(w.shape) for w in net.get_weights()]
    ewc._fold_in(f1, set_weights(net, rng))
    ewc.phases_seen = 1
    latest = set_weights(net, rng)
    ewc._fold_in(f2, latest)
    for w, a, b in zip(ewc.weight, f1, f2, strict=True):
        np.testing.assert_allclose(w.numpy(), gamma * a + b, rtol=1e-6)
    theta = set_weights(net, rng)
    _, grads = penalty_gradient(ewc, net)
    for g, a, b, t, anchor in zip(grads, f1, f2, theta, latest, strict=True):
        np.testing.assert_allclose(
            g.numpy(), lam * (gamma * a + b) * (t - anchor), rtol=1e-4, atol=1e-5
        )


def test_invalid_hyperparameters():
    with pytest.raises(ValueError, match="lam=-1"):
        EWC(lam=-1)
    with pytest.raises(ValueError, match="fisher='fancy'"):
        EWC(fisher="fancy")
