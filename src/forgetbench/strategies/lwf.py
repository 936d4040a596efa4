"""Learning without forgetting (Li & Hoiem 2016): distillation towards the last phase's network.

At the end of every phase the network is frozen as the teacher. Later batches add, per sample,
``alpha * KL(q || p)`` between the temperature-scaled softmaxes ``q = softmax(z_old / T)`` of
the teacher and ``p = softmax(z / T)`` of the network, over the current inputs (new and, when
combined with replay, replayed rows). The KL divergence and the cross-entropy ``-sum q log p``
differ by the teacher's entropy, a constant: the same gradient, but a loss that is 0 when the
network agrees with its teacher.

Where the implementations differ:

- ``distill_over``: ``seen_classes`` (the paper's old-task outputs: the units of the classes of
  the shards trained before; Avalanche's "active units", Mammoth's class-IL variant) or
  ``all_units`` (every output; GMvandeVen/continual-learning in its single-head setting).
  Avalanche issue 825 reports that distilling only the old units does worse on class-IL splits.
- No ``T^2`` factor by default, as the peers; ``t_squared: true`` multiplies the term by
  ``T^2`` (Hinton et al. 2015), which keeps the gradient's scale as ``T`` changes. With it,
  ``alpha`` means ``T^2`` times less: alpha values are not portable between the two settings.
- ``alpha`` may be a list, one value per phase (entry 0 unused: there is no teacher yet), as
  Avalanche's baselines do with a growing schedule.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from forgetbench.context import LossTerm
from forgetbench.options import Rule, number_where, one_of
from forgetbench.strategies.base import Phase, Plugin

DISTILL_OVER = ("seen_classes", "all_units")
_MASKED = -1e9  # logit of a unit left out of the distillation (softmax weight exactly 0)


def distillation(logits, teacher_logits, temperature: float, mask=None) -> tf.Tensor:
    """Per-sample ``KL(softmax(teacher / T) || softmax(logits / T))`` over the units in ``mask``.

    Args:
        logits: The network's logits, ``(batch, units)``.
        teacher_logits: The teacher's logits for the same inputs.
        temperature: ``T > 0``.
        mask: ``(units,)`` of 1 (distilled) and 0 (left out); all units when ``None``.

    Returns:
        ``(batch,)`` divergences, each ``>= 0``.
    """
    student, teacher = logits / temperature, teacher_logits / temperature
    if mask is not None:
        keep = tf.cast(mask, tf.bool)[None, :]
        student = tf.where(keep, student, _MASKED)
        teacher = tf.where(keep, teacher, _MASKED)
    log_q, log_p = tf.nn.log_softmax(teacher), tf.nn.log_softmax(student)
    return tf.reduce_sum(tf.exp(log_q) * (log_q - log_p), axis=-1)


def _alpha_values(alpha) -> list | None:
    """``alpha`` as a list when it is one (one weight per phase), else ``None``."""
    return list(alpha) if isinstance(alpha, Sequence) and not isinstance(alpha, str) else None


def _alpha_allowed(alpha) -> bool:
    values = _alpha_values(alpha)
    numbers = values if values is not None else [alpha]
    return bool(numbers) and all(
        isinstance(a, int | float) and not isinstance(a, bool) and a >= 0 for a in numbers
    )


class LwF(Plugin):
    """Distils the network towards its own copy frozen at the end of the previous phase.

    Args:
        alpha: Weight of the distillation term (>= 0), or one weight per phase.
        temperature: Softmax temperature ``T > 0`` (2 in the paper).
        distill_over: ``seen_classes`` or ``all_units`` (see the module docstring).
        t_squared: Multiply the term by ``T^2`` (Hinton et al.'s scaling).
    """

    label = "LwF"
    options = {
        "alpha": Rule(
            _alpha_allowed,
            "a number >= 0 or a non-empty list of numbers >= 0 (one per phase)",
        ),
        "temperature": number_where(lambda v: v > 0, "a number > 0"),
        "distill_over": one_of(DISTILL_OVER),
    }

    def __init__(
        self,
        alpha: float | Sequence[float] = 1.0,
        temperature: float = 2.0,
        distill_over: str = "seen_classes",
        t_squared: bool = False,
    ) -> None:
        self.check_options(alpha=alpha, temperature=temperature, distill_over=distill_over)
        values = _alpha_values(alpha)
        self.alpha = [float(a) for a in values] if values is not None else float(alpha)
        self.temperature, self.distill_over = float(temperature), distill_over
        self.t_squared = bool(t_squared)
        self.seen: set[int] = set()
        self.log: list[dict] = []
        self.teacher_phase: int | None = None
        self.teacher_parameters = 0

    def alpha_at(self, phase: int) -> float:
        """The distillation weight while ``phase`` is trained (0 without a teacher)."""
        if phase == 0:
            return 0.0
        return self.alpha[phase] if isinstance(self.alpha, list) else self.alpha

    def setup(self, ctx) -> None:
        """Creates the teacher, the weight and mask variables and registers the loss term."""
        if isinstance(self.alpha, list) and len(self.alpha) < len(ctx.phases):
            raise ValueError(
                f"LwF alpha: expected one value per phase ({len(ctx.phases)} phases). "
                f"Received {len(self.alpha)} values: {self.alpha}"
            )
        self.seen, self.log, self.teacher_phase = set(), [], None
        self._weight = ctx.variable("lwf/alpha", np.zeros(()))
        self._mask = ctx.variable("lwf/mask", np.ones(ctx.num_classes))
        self.teacher_parameters = int(ctx.teacher().count_params())
        scale = self.temperature**2 if self.t_squared else 1.0
        temperature, weight, mask = self.temperature, self._weight, self._mask

        def term(batch, logits, teacher_logits):
            return (weight * scale) * distillation(logits, teacher_logits, temperature, mask)

        ctx.add_loss_term(LossTerm("lwf", term, needs_teacher=True))
        self._num_classes = ctx.num_classes

    def before_phase(self, ctx, phase: Phase) -> None:
        """Sets the phase's weight and the distilled units (the classes seen before)."""
        alpha = self.alpha_at(phase.index)
        units = list(range(self._num_classes))
        if self.distill_over == "seen_classes":
            units = sorted(self.seen)
        mask = np.zeros(self._num_classes)
        mask[units] = 1.0
        self._weight.assign(alpha)
        self._mask.assign(mask.astype(np.float32))
        self.log.append(
            {
                "phase": phase.index,
                "alpha": alpha,
                "teacher_from_phase": self.teacher_phase,
                "distilled_units": units if alpha > 0 else [],
            }
        )

    def after_phase(self, ctx, phase: Phase) -> None:
        """Freezes the network as the next phases' teacher; records the classes trained."""
        ctx.freeze_teacher()
        self.teacher_phase = phase.index
        if phase.train_shard is None:
            self.seen |= set(range(self._num_classes))
        elif phase.train_shard < len(ctx.shard_classes):
            self.seen |= set(ctx.shard_classes[phase.train_shard])
        elif self.distill_over == "seen_classes":
            raise ValueError(
                f"LwF distill_over=seen_classes: the context knows the classes of "
                f"{len(ctx.shard_classes)} shards, not of shard {phase.train_shard}. Start "
                "runs with Engine.start_run(..., shard_classes=...) as forgetbench.run does"
            )

    def summary(self) -> dict:
        """Hyperparameters and, per phase, the weight, the teacher's phase and the units."""
        return {
            "alpha": self.alpha,
            "temperature": self.temperature,
            "distill_over": self.distill_over,
            "t_squared": self.t_squared,
            "teacher_from_phase": self.teacher_phase,
            "teacher_parameters": self.teacher_parameters,
            "phases": self.log,
        }
