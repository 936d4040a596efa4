"""The compiled train step: forward pass, losses, the one update path, tracking.

Exact policies (``policy.exact``): the loss of an update is ``sum_i w_i l_i / sum_i w_i`` over
its real samples (padding has ``w = 0``), where ``l_i`` is the data loss plus every plugin loss
term (each weighted by its own column). With ``accumulation_steps = k > 1`` the gradient of
``sum_i w_i l_i`` and the count ``sum_i w_i`` of each micro-batch are accumulated and applied
once per ``k`` micro-batches as ``sum / count`` (one step on their concatenation). ``naive``:
each batch's loss is divided by its length and accumulation is the optimizer's own
``gradient_accumulation_steps`` (Keras's behaviour, the measured baseline).

Every update goes through :meth:`TrainStep._apply_update`, the one place where updates are
made: penalty gradients (once per update) are added, gradient transforms run, the optimizer
applies, after-update hooks run. Batch hooks see every micro-batch and its logits just before.
"""

from __future__ import annotations

import tensorflow as tf

from forgetbench.batch import IS_NEW, WEIGHT, X, Y
from forgetbench.losses import per_sample_loss


class TrainStep:
    """The graph half of :class:`~forgetbench.train.engine.Engine` (state lives there)."""

    def _penalty(self) -> tf.Tensor:
        terms = [fn() for _, fn in self.ctx.penalties] + list(self.net.losses)
        return tf.add_n([tf.zeros(()), *terms])

    @property
    def _has_penalty(self) -> bool:
        return bool(self.ctx.penalties or self.net.losses)

    def _forward(self, batch):
        """Logits, real-sample count, data-loss sum and plugin-term sum of one micro-batch."""
        x, y, w = batch[X], batch[Y], batch[WEIGHT]
        logits = self.net(x, training=True)
        teacher_logits = None
        if any(t.needs_teacher for t in self.ctx.loss_terms):
            teacher_logits = tf.stop_gradient(self._teacher(x, training=False))
        data_total = tf.reduce_sum(per_sample_loss(y, logits) * w)
        terms = [
            tf.reduce_sum(t.fn(batch, logits, teacher_logits) * batch[t.weight_column])
            for t in self.ctx.loss_terms
        ]
        term_total = tf.add_n(terms) if terms else None
        return logits, tf.reduce_sum(w), data_total, term_total

    def _apply_update(self, sample_grads) -> tf.Tensor:
        """The one place updates are made; returns the penalty at the update's start."""
        variables = self.net.trainable_variables
        grads = list(sample_grads)
        penalty = tf.zeros(())
        if self._has_penalty:
            with tf.GradientTape() as tape:
                penalty = self._penalty()
            penalty_grads = tape.gradient(penalty, variables)
            grads = [g if p is None else g + p for g, p in zip(grads, penalty_grads, strict=True)]
        for _, transform in self.ctx.gradient_transforms:
            grads = list(transform(grads, variables))
        before = [tf.convert_to_tensor(v) for v in variables] if self.ctx.after_update else None
        self.optimizer.apply(grads, variables)
        if before is not None:
            after = [tf.convert_to_tensor(v) for v in variables]
            for _, hook in self.ctx.after_update:
                hook(before, after, list(sample_grads))
        return penalty

    def _step(self, batch) -> tf.Tensor:
        """One micro-batch; returns whether its loss and penalty are finite."""
        variables = self.net.trainable_variables
        with tf.GradientTape() as tape:
            logits, count, data_total, term_total = self._forward(batch)
            sample_total = data_total if term_total is None else data_total + term_total
            if not self.exact_accumulation:
                exact = self.policy.exact
                size = count if exact else tf.cast(tf.shape(batch[WEIGHT])[0], count.dtype)
                objective = sample_total / tf.maximum(size, 1.0)
        for _, hook in self.ctx.batch_hooks:
            hook(batch, tf.stop_gradient(logits))
        if self.exact_accumulation:
            grads = tape.gradient(sample_total, variables)
            for acc, g in zip(self._grad_sums, grads, strict=True):
                acc.assign_add(g, read_value=False)
            self._acc_count.assign_add(count, read_value=False)
            micro = self._acc_micro.assign_add(1)
            tf.cond(
                micro >= self.accumulation_steps, self._apply_accumulated, lambda: tf.constant(True)
            )
            penalty = self._penalty() if self._has_penalty else tf.zeros(())
        else:
            penalty = self._apply_update(tape.gradient(objective, variables))
        return self._track(batch, logits, count, data_total, sample_total, penalty)

    def _apply_accumulated(self) -> tf.Tensor:
        count = tf.maximum(self._acc_count, 1.0)
        self._apply_update([s / count for s in self._grad_sums])
        self._reset_accumulators()
        return tf.constant(True)

    def _track(self, batch, logits, count, data_total, sample_total, penalty) -> tf.Tensor:
        y, w = batch[Y], batch[WEIGHT]
        correct = tf.cast(tf.argmax(logits, axis=-1, output_type=y.dtype) == y, w.dtype)
        step_sums = tf.stack([data_total, count, tf.reduce_sum(correct * w), penalty, 1.0])
        sums = self._sums.assign_add(step_sums)
        new = tf.cast(tf.reduce_sum(batch[IS_NEW]), tf.int64)
        self.samples_seen.assign_add(new, read_value=False)
        self.batches_seen.assign_add(1, read_value=False)
        finite = tf.math.is_finite(sample_total) & tf.math.is_finite(penalty)
        mean = sums[0] / tf.maximum(sums[1], 1.0)
        self._last_finite_loss.assign(
            tf.where(finite, mean, self._last_finite_loss), read_value=False
        )
        return finite

    def _loop(self, block, start, stop):
        def body(i, finite):
            return i + 1, self._step({name: column[i] for name, column in block.items()})

        end, finite = tf.while_loop(
            lambda i, finite: finite & (i < stop),
            body,
            (start, tf.constant(True)),
            parallel_iterations=1,  # each step depends on the last: no iterations to overlap
        )
        return end, finite, self._all_weights_finite()

    def _all_weights_finite(self) -> tf.Tensor:
        return tf.reduce_all(
            [tf.reduce_all(tf.math.is_finite(tf.cast(w, tf.float32))) for w in self.net.weights]
        )
