"""Averaged gradient episodic memory (A-GEM; Chaudhry, Ranzato, Rohrbach & Elhoseiny 2019).

After each phase, ``per_shard`` samples of its shard (a seeded uniform subset) join an episodic
memory. At every update a reference gradient ``g_ref`` of the mean cross-entropy on
``reference_size`` memory samples (drawn uniformly without replacement, a new draw per update)
is computed at the current parameters; when the update's gradient ``g`` conflicts with it
(``g . g_ref < 0``) it is projected, ``g <- g - (g . g_ref / ||g_ref||^2) g_ref``, so that the
step does not increase the memory's loss to first order. The dot products run over all
parameters at once (one flat vector, as the paper).

The projection acts on the gradient the optimizer receives: under exact accumulation that is
the accumulated gradient of the whole update, with one reference gradient per update; with a
penalty (A-GEM combined with EWC) it includes the penalty's gradient.

The memory and the draws live in the graph (the draw is a stateless function of the run's seed
and the update count), so they are deterministic per seed however batches are prefetched.
Where the peers differ: Avalanche's ``AGEMPlugin`` draws ``sample_size`` memory samples per
update from per-experience memories of ``patterns_per_exp`` samples (as here); Mammoth's
``agem.py`` keeps ``buffer_size / tasks`` samples of each finished task and draws
``minibatch_size``.
The paper draws 256 reference samples per update.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from forgetbench.losses import per_sample_loss
from forgetbench.options import int_at_least
from forgetbench.strategies.base import Phase, Plugin, value_counts
from forgetbench.strategies.graph_memory import SEED_RANGE, reference_draw


def project(grads, reference):
    """A-GEM's projection of ``grads`` on the half-space ``g . reference >= 0``.

    Args:
        grads: The update's gradient, one tensor per variable.
        reference: The reference gradient, the same structure.

    Returns:
        ``(projected gradient, whether it was projected)``.
    """
    dot = tf.add_n([tf.reduce_sum(g * r) for g, r in zip(grads, reference, strict=True)])
    norm = tf.add_n([tf.reduce_sum(tf.square(r)) for r in reference])
    conflict = dot < 0
    coefficient = tf.where(conflict, dot / tf.maximum(norm, 1e-30), tf.zeros_like(dot))
    projected = [g - coefficient * r for g, r in zip(grads, reference, strict=True)]
    return projected, conflict


class AGEM(Plugin):
    """Projects every update's gradient away from conflicts with an episodic memory's gradient.

    Args:
        per_shard: Samples of each finished shard kept in the memory (>= 1).
        reference_size: Memory samples per reference gradient (>= 1).
    """

    label = "A-GEM"
    options = {"per_shard": int_at_least(1), "reference_size": int_at_least(1)}

    def __init__(self, per_shard: int = 100, reference_size: int = 256) -> None:
        self.check_options(per_shard=per_shard, reference_size=reference_size)
        self.per_shard, self.reference_size = int(per_shard), int(reference_size)
        self.log: list[dict] = []
        self.contents: list[dict] = []

    def setup(self, ctx) -> None:
        """Allocates the memory (``per_shard`` rows per phase) and registers the projection."""
        self.capacity = self.per_shard * max(1, len(ctx.phases))
        self.row_bytes = 4 * int(np.prod(ctx.feature_shape, dtype=np.int64)) + 4
        self.memory_x = ctx.variable("agem/x", np.zeros((self.capacity, *ctx.feature_shape)))
        self.memory_y = ctx.variable("agem/y", np.zeros(self.capacity))
        self.count = ctx.variable("agem/count", np.zeros(()))
        self.seed = ctx.variable("agem/seed", np.array(ctx.seed % SEED_RANGE))
        self.updates = ctx.variable("agem/updates", np.zeros(()))
        self.projected = ctx.variable("agem/projected", np.zeros(()))
        self._net = ctx.net
        self.log, self.contents, self._size = [], [], 0
        ctx.add_gradient_transform("agem", self.transform)

    def reference_gradient(self, variables):
        """The mean cross-entropy gradient on this update's draw from the memory."""
        idx, valid = reference_draw(
            self.capacity, self.count, self.reference_size, tf.stack([self.seed, self.updates])
        )
        x = tf.gather(self.memory_x, idx)
        y = tf.cast(tf.gather(self.memory_y, idx), tf.int32)
        with tf.GradientTape() as tape:
            losses = per_sample_loss(y, self._net(x, training=True))
            loss = tf.reduce_sum(losses * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)
        grads = tape.gradient(loss, variables)
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables, strict=True)]

    def transform(self, grads, variables):
        """The gradient transform: projects ``grads`` when they conflict with the memory's."""
        reference = self.reference_gradient(variables)
        projected, conflict = project(grads, reference)
        self.updates.assign_add(1.0, read_value=False)
        self.projected.assign_add(tf.cast(conflict, tf.float32), read_value=False)
        return projected

    def before_phase(self, ctx, phase: Phase) -> None:
        """Notes the update and projection counts where the phase starts."""
        self._start = (float(self.updates.numpy()), float(self.projected.numpy()))

    def after_phase(self, ctx, phase: Phase) -> None:
        """Reports the phase's projection rate; adds ``per_shard`` of its samples to the memory."""
        updates = float(self.updates.numpy()) - self._start[0]
        projected = float(self.projected.numpy()) - self._start[1]
        self.log.append(
            {
                "phase": phase.index,
                "memory_size": self._size,
                "updates": int(updates),
                "projected": int(projected),
                "projection_rate": projected / updates if updates else 0.0,
            }
        )
        feed = phase.feed
        n = min(self.per_shard, feed.num_samples, self.capacity - self._size)
        if n <= 0:
            return
        order = feed.plan.slice(0, 0, feed.num_samples)
        chosen = np.sort(order[ctx.rng(phase.index).choice(len(order), size=n, replace=False)])
        x, y = feed.gather(chosen)
        start, self._size = self._size, self._size + n
        self.memory_x[start : self._size].assign(np.asarray(x, np.float32))
        self.memory_y[start : self._size].assign(np.asarray(y, np.float32))
        self.count.assign(float(self._size))
        self.contents.append(
            {"shard": phase.train_shard, "samples": int(n), "per_class": value_counts(y)}
        )

    def summary(self) -> dict:
        """Memory size, bytes and content per shard, and the projection rate per phase."""
        updates, projected = float(self.updates.numpy()), float(self.projected.numpy())
        return {
            "per_shard": self.per_shard,
            "reference_size": self.reference_size,
            "memory_size": self._size,
            "memory_bytes": self._size * self.row_bytes,
            "memory_per_shard": self.contents,
            "projection_rate": projected / updates if updates else 0.0,
            "phases": self.log,
        }
