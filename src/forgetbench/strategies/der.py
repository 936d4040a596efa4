"""Dark experience replay, DER and DER++ (Buzzega et al. 2020).

A reservoir buffer of ``capacity`` samples is written at every training step, not only at shard
ends: each new sample of a batch streams past Algorithm R with the logits the network gave it
in that step's forward pass. Each update then adds, on a uniform draw ``(x', z')`` of ``size``
buffered samples, ``alpha * mean((f(x') - z')^2)`` (the mean over samples and logits, as
Mammoth's ``mse_loss``), and for DER++ ``beta * mean CE(f(x''), y'')`` on a second, independent
draw of ``size`` samples (``beta = 0``: DER).

Determinism: the buffer lives in graph variables and is written inside the compiled step; the
reservoir's choices and the draws are stateless functions of the run's seed and a step counter
(``graph_memory``), so they do not depend on how far batches are gathered ahead. Each update's
draws are taken (and copied out) at its first micro-batch, before any of its samples is
written, so an update never replays its own samples and, under exact accumulation, one update
of ``k`` micro-batches draws what one step on their concatenation draws.

Avalanche's ``DER`` differs: it stores the samples with their logits at the end of each
experience (recomputed by the network as it is then), not the logits of the step that saw them;
that replays the end-of-experience network's outputs, closer to LwF on a memory, and is not
the paper's method.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from forgetbench.batch import IS_NEW, X, Y
from forgetbench.losses import per_sample_loss
from forgetbench.options import int_at_least, number_where
from forgetbench.strategies.base import Phase, Plugin, value_counts
from forgetbench.strategies.graph_memory import SEED_RANGE, reference_draw, reservoir_slots

DRAW_LOGITS, DRAW_LABELS, WRITE = 0, 1, 2  # purposes of the stateless streams


def der_terms(logits, stored_logits, logits_valid, label_logits, labels, labels_valid, alpha, beta):
    """``alpha * mean((f(x') - z')^2) + beta * mean CE(f(x''), y'')`` over the valid draws.

    Args:
        logits: ``f(x')``, ``(size, classes)``.
        stored_logits: ``z'``, the logits stored with ``x'``.
        logits_valid: 0/1 per row of the first draw.
        label_logits: ``f(x'')`` of the second draw.
        labels: ``y''``.
        labels_valid: 0/1 per row of the second draw.
        alpha: Weight of the logit term.
        beta: Weight of the label term (0 for DER).
    """
    classes = tf.cast(tf.shape(logits)[-1], tf.float32)
    squares = tf.reduce_sum(tf.square(logits - stored_logits), axis=-1) * logits_valid
    term = alpha * tf.reduce_sum(squares) / tf.maximum(tf.reduce_sum(logits_valid) * classes, 1.0)
    if beta:
        ce = per_sample_loss(labels, label_logits) * labels_valid
        term += beta * tf.reduce_sum(ce) / tf.maximum(tf.reduce_sum(labels_valid), 1.0)
    return term


class DER(Plugin):
    """DER (``beta = 0``) or DER++ (``beta > 0``).

    Args:
        alpha: Weight of the stored-logit term (>= 0).
        beta: Weight of the stored-label term (>= 0; 0 is DER).
        capacity: Samples the buffer holds (>= 1).
        size: Samples per draw (>= 1); DER++ draws twice.
    """

    label = "DER"
    options = {
        "alpha": number_where(lambda v: v >= 0, "a number >= 0"),
        "beta": number_where(lambda v: v >= 0, "a number >= 0"),
        "capacity": int_at_least(1),
        "size": int_at_least(1),
    }

    def __init__(
        self, alpha: float = 0.3, beta: float = 0.0, capacity: int = 500, size: int = 32
    ) -> None:
        self.check_options(alpha=alpha, beta=beta, capacity=capacity, size=size)
        self.alpha, self.beta = float(alpha), float(beta)
        self.capacity, self.size = int(capacity), int(size)
        self.log: list[dict] = []

    def setup(self, ctx) -> None:
        """Allocates the buffer and the draw copies; registers the write and the terms."""
        cap, size, classes = self.capacity, self.size, ctx.num_classes
        shape = tuple(ctx.feature_shape)
        self.row_bytes = 4 * (int(np.prod(shape, dtype=np.int64)) + 2 + classes)
        self.x = ctx.variable("der/x", np.zeros((cap, *shape)))
        self.y = ctx.variable("der/y", np.zeros(cap))
        self.z = ctx.variable("der/z", np.zeros((cap, classes)))
        self.shard = ctx.variable("der/shard", np.full(cap, -1.0))
        self.seen = ctx.variable("der/seen", np.zeros(()))
        self.steps = ctx.variable("der/steps", np.zeros(()))
        self.updates = ctx.variable("der/updates", np.zeros(()))
        self.drawn = ctx.variable("der/drawn", np.zeros(()))  # this update's draws are taken
        self.seed = ctx.variable("der/seed", np.array(ctx.seed % SEED_RANGE))
        self.phase_shard = ctx.variable("der/phase_shard", np.array(-1.0))
        self.draw = {
            "x1": ctx.variable("der/draw_x1", np.zeros((size, *shape))),
            "z1": ctx.variable("der/draw_z1", np.zeros((size, classes))),
            "v1": ctx.variable("der/draw_v1", np.zeros(size)),
            "x2": ctx.variable("der/draw_x2", np.zeros((size, *shape))),
            "y2": ctx.variable("der/draw_y2", np.zeros(size)),
            "v2": ctx.variable("der/draw_v2", np.zeros(size)),
        }
        self._net, self.log = ctx.net, []
        ctx.add_batch_hook("der", self.write)
        ctx.add_penalty("der", self.penalty)
        ctx.add_after_update("der", self.end_update)

    def _count(self):
        return tf.minimum(self.seen, float(self.capacity))

    def _take_draws(self) -> tf.Tensor:
        """Copies this update's draws out of the buffer (before the update writes to it)."""
        count, key = self._count(), self.updates * 4.0
        draws = [("1", DRAW_LOGITS, ((self.x, "x"), (self.z, "z")))]
        if self.beta:  # DER++ only
            draws.append(("2", DRAW_LABELS, ((self.x, "x"), (self.y, "y"))))
        for suffix, purpose, columns in draws:
            seed = tf.stack([self.seed, key + purpose])
            slots, valid = reference_draw(self.capacity, count, self.size, seed)
            for source, name in columns:
                self.draw[name + suffix].assign(tf.gather(source, slots), read_value=False)
            self.draw["v" + suffix].assign(valid, read_value=False)
        self.drawn.assign(1.0, read_value=False)
        return tf.constant(True)

    def write(self, batch, logits) -> None:
        """The batch hook: takes the update's draws if not yet done, then streams in new rows."""
        tf.cond(self.drawn > 0, lambda: tf.constant(True), self._take_draws)
        rows = tf.cast(tf.where(batch[IS_NEW] > 0)[:, 0], tf.int32)
        n = tf.shape(rows)[0]
        seed = tf.stack([self.seed, self.steps * 4.0 + WRITE])
        slots, write = reservoir_slots(self.seen, n, self.capacity, seed)
        kept = tf.boolean_mask(rows, write)
        where = tf.boolean_mask(slots, write)[:, None]
        for var, values in (
            (self.x, tf.gather(batch[X], kept)),
            (self.y, tf.cast(tf.gather(batch[Y], kept), tf.float32)),
            (self.z, tf.gather(logits, kept)),
            (self.shard, tf.fill(tf.shape(kept), self.phase_shard)),
        ):
            var.scatter_nd_update(where, tf.cast(values, var.dtype))
        self.seen.assign_add(tf.cast(n, tf.float32), read_value=False)
        self.steps.assign_add(1.0, read_value=False)

    def penalty(self) -> tf.Tensor:
        """The DER (and DER++) terms on this update's draws."""
        d = self.draw
        logits = self._net(d["x1"], training=True)
        label_logits = self._net(d["x2"], training=True) if self.beta else logits
        labels = tf.cast(d["y2"], tf.int32)
        return der_terms(
            logits, d["z1"], d["v1"], label_logits, labels, d["v2"], self.alpha, self.beta
        )

    def end_update(self, before, after, task_grads) -> None:
        """After each update: the next one takes new draws."""
        self.updates.assign_add(1.0, read_value=False)
        self.drawn.assign(0.0, read_value=False)

    def before_phase(self, ctx, phase: Phase) -> None:
        """Rows written during the phase are labelled with its training shard."""
        shard = -1 if phase.train_shard is None else phase.train_shard
        self.phase_shard.assign(float(shard))

    def after_phase(self, ctx, phase: Phase) -> None:
        """Logs the buffer's fill after the phase."""
        self.log.append({"phase": phase.index, "buffer_size": int(self._count().numpy())})

    def summary(self) -> dict:
        """Buffer capacity, bytes and content per shard and class."""
        n = int(self._count().numpy())
        shards = self.shard.numpy()[:n].astype(int)
        labels = self.y.numpy()[:n].astype(int)

        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "capacity": self.capacity,
            "size": self.size,
            "buffer_bytes": self.capacity * self.row_bytes,
            "buffer_size": n,
            "samples_streamed": int(self.seen.numpy()),
            "per_shard": value_counts(shards),
            "per_class": value_counts(labels),
            "phases": self.log,
        }
