"""Elastic weight consolidation (Kirkpatrick et al. 2017; online variant: Schwarz et al. 2018).

After each shard, the diagonal Fisher information ``F`` of the parameters is estimated on that
shard's training samples from per-sample gradients, and later updates pay the penalty
``(lambda / 2) * sum_i F_i (theta_i - theta*_i)^2``. ``F`` is the mean over the exact number of
samples used (a partial last batch is not over-counted) of squared per-sample gradients of the
log-likelihood: of the true label (``empirical``) or in expectation over the model's predicted
class distribution (``exact``, the true Fisher).

Lambda is not portable between libraries: some drop the 1/2, and some sum the squared gradients
over samples instead of averaging, which scales ``F`` (and so the effective lambda) with the
number of samples.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from forgetbench.options import number_where
from forgetbench.strategies.base import Phase, Plugin

FISHER_VARIANTS = ("empirical", "exact")
MODES = ("separate", "online")


_FISHER_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fisher_function(net: keras.Model, variant: str):
    """A compiled ``(x, y, mask) -> [sum_i mask_i * per-sample squared gradient]`` for ``net``.

    Per-sample gradients come from one vectorised Jacobian (``pfor``); ``mask`` zeroes padding
    rows, so every batch has the same shape and the function is traced once per network and
    variant in a process (runs that share an engine share it).
    """
    if variant not in FISHER_VARIANTS:
        raise ValueError(f"EWC fisher: expected one of {FISHER_VARIANTS}. Received {variant!r}")
    functions = _FISHER_FUNCTIONS.setdefault(net, {})
    if variant not in functions:
        functions[variant] = _fisher_function(net, variant)
    return functions[variant]


def _fisher_function(net: keras.Model, variant: str):
    variables = net.trainable_variables

    @tf.function(reduce_retracing=True)
    def squared_grad_sum(xb, yb, mask):
        with tf.GradientTape() as tape:
            log_probs = tf.nn.log_softmax(net(xb, training=False))
            if variant == "empirical":
                target = tf.gather(log_probs, yb, axis=1, batch_dims=1)
            else:
                target = log_probs
        jacobians = tape.jacobian(target, variables, experimental_use_pfor=True)
        # empirical: jacobians (n, *shape), weights (n, 1); exact: (n, C, *shape), weights p.
        weights = mask[:, None] * (
            tf.ones_like(mask)[:, None]
            if variant == "empirical"
            else tf.stop_gradient(tf.exp(log_probs))
        )
        return [
            tf.reshape(
                tf.einsum(
                    "nc,ncp->p",
                    weights,
                    tf.reshape(tf.square(j), tf.concat([tf.shape(weights), [-1]], 0)),
                ),
                v.shape,
            )
            for j, v in zip(jacobians, variables, strict=True)
        ]

    return squared_grad_sum


def fisher_diagonal(
    net: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    variant: str,
    batch_size: int = 64,
    function=None,
) -> list[np.ndarray]:
    """Diagonal Fisher information of ``net``'s trainable variables on ``(x, y)``.

    The sum of per-sample squared gradients is divided by ``len(x)`` exactly; the last, partial
    batch is padded with zero-weight rows (not over-counted).

    Args:
        net: Network returning class logits.
        x: Features of the samples.
        y: Integer labels (used by ``empirical`` only).
        variant: ``empirical`` or ``exact``.
        batch_size: Samples per vectorised Jacobian.
        function: A :func:`fisher_function` of ``net`` to reuse (made here when ``None``).

    Returns:
        One array per trainable variable, of the variable's shape.
    """
    function = function or fisher_function(net, variant)
    sums = [np.zeros(v.shape, np.float64) for v in net.trainable_variables]
    for start in range(0, len(y), batch_size):
        xb = np.zeros((batch_size, *x.shape[1:]), np.float32)
        yb = np.zeros(batch_size, np.int32)
        mask = np.zeros(batch_size, np.float32)
        n = min(batch_size, len(y) - start)
        xb[:n], yb[:n], mask[:n] = x[start : start + n], y[start : start + n], 1.0
        for total, part in zip(sums, function(xb, yb, mask), strict=True):
            total += part.numpy()
    return [(s / len(y)).astype(np.float32) for s in sums]


class EWC(Plugin):
    """EWC penalty, one term per past shard (``separate``) or one running term (``online``).

    ``separate``: ``sum_k F_k (theta - theta*_k)^2`` is kept in the equal, constant-cost form
    ``A (theta - m)^2 + c`` with ``A = sum_k F_k``, ``m = sum_k F_k theta*_k / A`` and
    ``c = sum_k F_k (theta*_k - m)^2`` (computed in float64), so the train step costs the same
    however many shards have passed. ``online``: ``F <- gamma F + F_new``, anchored at the
    latest parameters (Schwarz et al. 2018).

    Args:
        lam: Penalty strength lambda (>= 0) in ``(lambda / 2) * sum F (theta - theta*)^2``.
        fisher: ``empirical`` or ``exact`` Fisher.
        fisher_samples: Training samples of each shard used for its Fisher (all if larger).
        fisher_batch_size: Samples per vectorised per-sample-gradient batch.
        mode: ``separate`` or ``online``.
        gamma: Decay of the online Fisher (``online`` only).
    """

    options = {"lam": number_where(lambda v: v >= 0, "a number >= 0")}

    def __init__(
        self,
        lam: float = 100.0,
        fisher: str = "empirical",
        fisher_samples: int = 1000,
        fisher_batch_size: int = 64,
        mode: str = "separate",
        gamma: float = 1.0,
    ) -> None:
        if (
            not self.options["lam"](lam)
            or fisher not in FISHER_VARIANTS
            or mode not in MODES
            or fisher_samples < 1
        ):
            raise ValueError(
                f"EWC: expected lam >= 0, fisher in {FISHER_VARIANTS}, mode in {MODES}, "
                f"fisher_samples >= 1. Received lam={lam!r}, fisher={fisher!r}, "
                f"mode={mode!r}, fisher_samples={fisher_samples!r}"
            )
        self.lam, self.fisher, self.mode, self.gamma = float(lam), fisher, mode, float(gamma)
        self.fisher_samples, self.fisher_batch_size = int(fisher_samples), int(fisher_batch_size)
        self.log: list[dict] = []
        self.seed = 0
        self.phases_seen = 0
        self._fisher_fn = None

    def setup(self, ctx) -> None:
        """Creates zeroed penalty variables (fixed structure: the train step is traced once)."""
        self._variables = ctx.net.trainable_variables
        shapes = [tuple(v.shape) for v in self._variables]
        self.weight = [ctx.variable(f"ewc/weight_{i}", np.zeros(s)) for i, s in enumerate(shapes)]
        self.anchor = [ctx.variable(f"ewc/anchor_{i}", np.zeros(s)) for i, s in enumerate(shapes)]
        self.constant = ctx.variable("ewc/constant", np.zeros(()))
        self._sums = [[np.zeros(s) for s in shapes] for _ in range(3)]  # A, B, C in float64
        self.seed = ctx.seed
        ctx.add_penalty("ewc", self.penalty)

    def penalty(self) -> tf.Tensor:
        """``(lambda / 2) * (sum_i A_i (theta_i - m_i)^2 + c)``."""
        parts = [
            tf.reduce_sum(a * tf.square(v - m))
            for a, m, v in zip(self.weight, self.anchor, self._variables, strict=True)
        ]
        return 0.5 * self.lam * (tf.add_n(parts) + self.constant)

    def _fold_in(self, new: list[np.ndarray], theta: list[np.ndarray]) -> None:
        if self.mode == "online":
            decay = self.gamma if self.phases_seen else 0.0
            for a, f_new, t, w, m in zip(
                self._sums[0], new, theta, self.weight, self.anchor, strict=True
            ):
                a *= decay
                a += f_new
                w.assign(a.astype(np.float32))
                m.assign(t)
            return
        constant = 0.0
        for a, b, c, f_new, t, w, m in zip(
            *self._sums, new, theta, self.weight, self.anchor, strict=True
        ):
            a += f_new
            b += f_new * t
            c += f_new * t * t
            mean = np.divide(b, a, out=t.astype(np.float64), where=a > 0)
            constant += float(np.sum(c - 2 * b * mean + a * mean * mean))
            w.assign(a.astype(np.float32))
            m.assign(mean.astype(np.float32))
        self.constant.assign(max(constant, 0.0))

    def after_phase(self, ctx, phase: Phase) -> None:
        """Estimates the shard's Fisher on its samples and folds it into the penalty."""
        feed = phase.feed
        # The first samples of epoch 0's order: a uniform random subset under the shuffled plans.
        idx = np.sort(feed.plan.slice(0, 0, min(self.fisher_samples, feed.num_samples)))
        x, y = feed.gather(idx)
        net = ctx.net
        if self._fisher_fn is None:
            self._fisher_fn = fisher_function(net, self.fisher)
        new = fisher_diagonal(
            net,
            np.asarray(x),
            np.asarray(y),
            self.fisher,
            self.fisher_batch_size,
            self._fisher_fn,
        )
        self._fold_in([f.astype(np.float64) for f in new], [v.numpy() for v in self._variables])
        self.phases_seen += 1
        flat = np.concatenate([f.ravel() for f in new])
        self.log.append(
            {
                "phase": phase.index,
                "fisher_samples": len(y),
                "fisher_sum": float(flat.sum()),
                "fisher_max": float(flat.max()),
            }
        )

    def summary(self) -> dict:
        """Hyperparameters and Fisher statistics per phase."""
        return {
            "lambda": self.lam,
            "fisher": self.fisher,
            "mode": self.mode,
            "gamma": self.gamma,
            "fisher_per_phase": self.log,
        }
