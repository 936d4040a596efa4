"""A logistic regression engine, data and a hand-computed reference step, shared by the tests
of the extension points and of the plugins built on them (a plain module: its constants are
used at import time, where fixtures cannot reach)."""

import keras
import numpy as np
import tensorflow as tf

from forgetbench.batch import Column
from forgetbench.data.feed import Feed, array_gather
from forgetbench.data.samplers import FixedPlan
from forgetbench.losses import per_sample_loss
from forgetbench.remainder import RemainderPolicy
from forgetbench.train.engine import Engine
from forgetbench.train.networks import logreg

WEIGHTED, PAD = RemainderPolicy("weighted"), RemainderPolicy("pad", pad_partial=True)
N, B, DIM, CLASSES, LR = 37, 8, 3, 3, 0.1


def make_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, DIM)).astype(np.float32), rng.integers(0, CLASSES, n)


def identity_feed(x, y, policy, batch_size=B):
    """A feed of ``x``, ``y`` in their own order, in batches of ``batch_size``."""
    return Feed(
        gather=array_gather(x, y),
        plan=FixedPlan(np.arange(len(y))),
        batch_size=batch_size,
        policy=policy,
        feature_shape=(DIM,),
    )


def scales(n=N, seed=5):
    """A per-sample weight column for the loss term (0 for some rows)."""
    s = np.random.default_rng(seed).random(n).astype(np.float32)
    s[::4] = 0.0
    return s


def feed_with_column(x, y, s, policy, batch_size):
    """A feed whose own rows carry the column ``s`` (as a plugin's extra column would)."""

    def gather(indices, out=None):
        return array_gather(x, y)(indices, out)

    feed = Feed(
        gather=gather,
        plan=FixedPlan(np.arange(len(y))),
        batch_size=batch_size,
        policy=policy,
        feature_shape=(DIM,),
        columns={"scale": Column()},
    )
    original = feed._batches

    def batches(rows, epoch, first):
        out = original(rows, epoch, first)
        own = np.sort(rows, axis=1)
        out["scale"][:, : own.shape[1]] = s[own]
        return out

    feed._batches = batches
    return feed


def squared_logits(batch, logits, teacher_logits):
    return 0.5 * tf.reduce_sum(tf.square(logits), axis=-1)


def optimizer_of(name):
    return {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[name](learning_rate=LR)


def engine(policy=WEIGHTED, k=1, optimizer="sgd", seed=0):
    keras.utils.set_random_seed(seed)
    return Engine(logreg((DIM,), CLASSES), lambda: optimizer_of(optimizer), policy, k)


def reference_step(weights, x, y, s, optimizer="sgd", extra_grad=None):
    """One step on the mean over all samples of CE + s * 0.5 |z|^2, computed directly."""
    net = logreg((DIM,), CLASSES)
    net.set_weights(weights)
    with tf.GradientTape() as tape:
        logits = net(x)
        per_sample = per_sample_loss(y, logits) + s * 0.5 * tf.reduce_sum(tf.square(logits), -1)
        loss = tf.reduce_mean(per_sample)
    grads = tape.gradient(loss, net.trainable_variables)
    if extra_grad is not None:
        grads = extra_grad(grads)
    optimizer_of(optimizer).apply(grads, net.trainable_variables)
    return net.get_weights(), grads


def assert_close(actual, expected, rtol=1e-5):
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-6)
