"""Synaptic intelligence (Zenke, Poole & Ganguli 2017): importance from each parameter's path.

At every update each parameter accumulates ``omega += -g_task * delta_theta``: ``g_task`` is
the gradient of the per-sample losses alone (the data loss and any loss terms, never the
penalty) and ``delta_theta`` the change the optimizer actually made (momentum and Adam's
scaling included). At the end of each phase, with ``delta_phase`` the parameter's change over
the phase, ``Omega = relu(Omega + omega / (delta_phase^2 + xi))`` (the reference code's form),
the anchor ``theta*`` moves to the current parameters and ``omega`` restarts from 0. Later
updates pay ``c * sum Omega (theta - theta*)^2``.

Where the implementations differ (``c`` is not portable between them):

- Avalanche (``SynapticIntelligencePlugin``) accumulates with the gradient of the *total* loss,
  penalty included (that counts the penalty's own pull as importance), multiplies the path
  integral by 0.0015 and clips ``Omega`` at 0.001; its ``si_lambda`` is ``c``.
- Mammoth's ``si.py`` accumulated ``lr * g^2`` (the step of plain SGD) instead of the applied
  change until 2024, which differs from ``-g * delta_theta`` under momentum or Adam.
- GMvandeVen/continual-learning accumulates with the total-loss gradient too, and has no
  ``relu``.

With the accumulated (exact) path, one update's ``g_task`` is the accumulated gradient of the
micro-batches of that update. Under ``remainder=naive`` with accumulation, Keras accumulates
inside the optimizer: only the micro-batch that completes an update contributes.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from forgetbench.options import number_where
from forgetbench.strategies.base import Phase, Plugin


def consolidate(
    importance: np.ndarray, path: np.ndarray, change: np.ndarray, xi: float
) -> np.ndarray:
    """``relu(importance + path / (change^2 + xi))``: Omega after one phase."""
    return np.maximum(importance + path / (np.square(change) + xi), 0.0)


class SI(Plugin):
    """The synaptic-intelligence penalty.

    Args:
        c: Penalty strength (>= 0) in ``c * sum Omega (theta - theta*)^2``.
        xi: Damping (> 0) of ``omega / (delta^2 + xi)``.
    """

    label = "SI"
    options = {
        "c": number_where(lambda v: v >= 0, "a number >= 0"),
        "xi": number_where(lambda v: v > 0, "a number > 0"),
    }

    def __init__(self, c: float = 1.0, xi: float = 0.1) -> None:
        self.check_options(c=c, xi=xi)
        self.c, self.xi = float(c), float(xi)
        self.log: list[dict] = []

    def setup(self, ctx) -> None:
        """Creates omega, Omega and the anchor (the initial parameters); registers the hooks."""
        self._variables = list(ctx.net.trainable_variables)
        values = [v.numpy() for v in self._variables]
        self.path = [ctx.variable(f"si/omega_{i}", np.zeros(v.shape)) for i, v in enumerate(values)]
        self.importance = [
            ctx.variable(f"si/Omega_{i}", np.zeros(v.shape)) for i, v in enumerate(values)
        ]
        self.anchor = [ctx.variable(f"si/anchor_{i}", v) for i, v in enumerate(values)]
        self.log = []
        ctx.add_after_update("si", self.accumulate)
        ctx.add_penalty("si", self.penalty)

    def accumulate(self, before, after, task_grads) -> None:
        """``omega += -g_task * (after - before)`` (in the graph, after every update)."""
        for omega, b, a, g in zip(self.path, before, after, task_grads, strict=True):
            omega.assign_sub(g * (a - b), read_value=False)

    def penalty(self) -> tf.Tensor:
        """``c * sum Omega (theta - theta*)^2``."""
        parts = [
            tf.reduce_sum(w * tf.square(v - m))
            for w, m, v in zip(self.importance, self.anchor, self._variables, strict=True)
        ]
        return self.c * tf.add_n(parts)

    def after_phase(self, ctx, phase: Phase) -> None:
        """Folds the phase's path integral into Omega, moves the anchor, restarts omega."""
        omegas = []
        path_sum = 0.0
        for omega, importance, anchor, v in zip(
            self.path, self.importance, self.anchor, self._variables, strict=True
        ):
            theta = v.numpy().astype(np.float64)
            path = omega.numpy().astype(np.float64)
            change = theta - anchor.numpy().astype(np.float64)
            new = consolidate(importance.numpy().astype(np.float64), path, change, self.xi)
            importance.assign(new.astype(np.float32))
            anchor.assign(theta.astype(np.float32))
            omega.assign(np.zeros(omega.shape, np.float32))
            omegas.append(new.ravel())
            path_sum += float(path.sum())
        flat = np.concatenate(omegas)
        self.log.append(
            {
                "phase": phase.index,
                "path_sum": path_sum,
                "Omega_sum": float(flat.sum()),
                "Omega_max": float(flat.max()),
                "Omega_mean": float(flat.mean()),
                "Omega_nonzero": float(np.mean(flat > 0)),
            }
        )

    def summary(self) -> dict:
        """Hyperparameters and Omega statistics after each phase."""
        return {"c": self.c, "xi": self.xi, "per_phase": self.log}
