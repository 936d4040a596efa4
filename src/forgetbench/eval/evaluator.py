"""Accuracy and loss on every shard's held-out (test) and validation splits in one pass."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.store import ShardStore
from forgetbench.losses import per_sample_loss

SCENARIOS = ("class_incremental", "task_incremental")
TEST, VALIDATION = "test", "val"  # values of the records' ``split`` (when there is a validation)
UNROLL_BATCHES = 8  # up to this many evaluation batches are unrolled in the compiled graph
MAX_CACHED_PASSES = 16
# Compiled evaluation passes of this process, by network, forward, layout and shard structure:
# runs of a sweep that share an engine (``train.engines.engine_for``) and their held-out split
# structure reuse one XLA program. Values hold the network, so its id is never reused meanwhile.
_PASSES: OrderedDict[tuple, tuple] = OrderedDict()


def task_classes(dataset: ShardDataset, scenario: str) -> list[tuple[int, ...]] | None:
    """The classes each shard's predictions are restricted to under ``scenario``.

    Args:
        dataset: The dataset being evaluated.
        scenario: ``class_incremental`` (one head: every class competes, ``None`` is returned)
            or ``task_incremental`` (the classes of the evaluated shard: those of its training
            and held-out splits).

    Raises:
        ValueError: for any other scenario.
    """
    if scenario not in SCENARIOS:
        raise ValueError(
            f"Invalid config value eval.scenario={scenario!r}. Expected one of {list(SCENARIOS)}."
        )
    if scenario == "class_incremental":
        return None
    stores = [dataset.train, dataset.heldout]
    if dataset.validation is not None:
        stores.append(dataset.validation)
    per_shard = zip(*(store.shards for store in stores), strict=True)
    return [tuple(sorted({c for shard in shards for c in shard.classes})) for shards in per_shard]


class Evaluator:
    """Evaluates a network on all held-out splits at once, splitting results by shard.

    The held-out splits are loaded into memory once (they are small by construction) and kept
    as tensors, padded to whole batches. Every evaluation is one call of a compiled function
    that runs the network over the fixed-size batches, reduces per evaluation group (a shard, or
    shards evaluated together) with segment sums (float64, in sample order, so the same sums as
    a ``bincount`` over per-sample values) and returns only ``2 x num_groups`` numbers: one host
    copy per evaluation, whose cost is linear in held-out samples whatever the shard count. The
    function is compiled with XLA by default.

    Args:
        heldout: The held-out split of every training shard.
        batch_size: Evaluation batch size (the last batch is padded, so one trace serves all).
        task_classes: Task-incremental evaluation: for every shard, the classes its samples are
            predicted among (other logits are set to -inf before the argmax and the loss).
            ``None``: class-incremental, every class competes.
        jit_compile: Compile the evaluation with XLA (one fused program: about half the time
            of the plain graph for a small network on CPU); a network XLA cannot compile falls
            back to the plain graph with a warning.
        groups: Evaluation group of every shard (:mod:`forgetbench.eval.groups`): results are
            summed per group, one record per group; ``None``: one group per shard.
        validation: The validation split of every training shard, evaluated in the same pass;
            records then carry ``split`` (``test`` for the held-out split, ``val``). ``None``:
            held-out only, records without ``split``.
    """

    def __init__(
        self,
        heldout: ShardStore,
        batch_size: int = 4096,
        task_classes: Sequence[Sequence[int]] | None = None,
        jit_compile: bool = True,
        groups: np.ndarray | None = None,
        validation: ShardStore | None = None,
    ) -> None:
        x, y = heldout.load_all()
        self.shard = heldout.shard_ids()
        self.num_shards = heldout.num_shards
        split = np.zeros(len(y), np.int64)  # 0: held-out (test), 1: validation
        self.splits = [TEST] if validation is None else [TEST, VALIDATION]
        if validation is not None:
            vx, vy = validation.load_all()
            x, y = np.concatenate([x, vx]), np.concatenate([y, vy])
            self.shard = np.concatenate([self.shard, validation.shard_ids()])
            split = np.concatenate([split, np.ones(len(vy), np.int64)])
        if groups is None:
            groups = np.arange(self.num_shards)
        self.groups = np.asarray(groups, dtype=np.int64)
        if self.groups.shape != (self.num_shards,):
            raise ValueError(
                f"Evaluator: expected one group per shard ({self.num_shards}). Received groups "
                f"of shape {self.groups.shape}"
            )
        self.num_groups = int(self.groups.max()) + 1
        # Segment of every evaluated sample: its group, offset by the split's groups.
        self.group = (self.groups[self.shard] + split * self.num_groups).astype(np.int32)
        self.num_segments = self.num_groups * len(self.splits)
        self.num_samples = n = len(y)
        self.batch_size = b = min(int(batch_size), n)
        self.num_batches = -(-n // b)
        padding = self.num_batches * b - n  # zero rows, cut off before the sums
        self.x = np.concatenate(
            [x.astype(np.float32, copy=False), np.zeros((padding, *x.shape[1:]), np.float32)]
        ).reshape(self.num_batches, b, *x.shape[1:])
        self.y = np.concatenate([y.astype(np.int32, copy=False), np.zeros(padding, np.int32)])
        self.y = self.y.reshape(self.num_batches, b)
        self.counts = np.bincount(self.group, minlength=self.num_segments)
        self.task_classes = task_classes
        self.jit_compile = bool(jit_compile)
        self._tensors = None
        self._fn = self._plain_fn = None
        self._net = self._forward = None
        self._structure = hashlib.sha256(
            np.ascontiguousarray(self.shard).tobytes()
            + np.ascontiguousarray(self.group).tobytes()
            + repr((task_classes, self.x.shape, self.jit_compile)).encode()
        ).hexdigest()

    def _allowed(self, num_classes: int) -> tf.Tensor | None:
        """``(num_shards, num_classes)`` booleans: the classes each shard is predicted among."""
        if self.task_classes is None:
            return None
        allowed = np.zeros((self.num_shards, num_classes), bool)
        for shard, classes in enumerate(self.task_classes):
            allowed[shard, list(classes)] = True
        return tf.constant(allowed)

    def _data(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The batched features and labels and the shard ids, as tensors made once."""
        if self._tensors is None:
            shard = np.concatenate(
                [self.shard, np.zeros(self.num_batches * self.batch_size - self.num_samples)]
            ).astype(np.int32)
            self._tensors = (
                tf.constant(self.x),
                tf.constant(self.y),
                tf.constant(shard.reshape(self.num_batches, self.batch_size)),
            )
        return self._tensors

    def _compiled(self, net: keras.Model, forward: Callable | None):
        if self._net is net and self._forward is forward:
            return self._fn
        key = (id(net), id(forward), self._structure)
        cached = _PASSES.pop(key, None)
        if cached is None:
            cached = (*self._build(net, forward), net, forward)
        _PASSES[key] = cached
        while len(_PASSES) > MAX_CACHED_PASSES:
            _PASSES.popitem(last=False)
        self._fn, self._plain_fn, self._net, self._forward = cached
        return self._fn

    def _build(self, net: keras.Model, forward: Callable | None):
        """The compiled pass (XLA) and its plain-graph fallback for ``net``."""
        allowed = self._allowed(net.output_shape[-1])
        n, num_groups = self.num_samples, self.num_segments
        group_ids = tf.constant(self.group)

        def evaluate_batch(x, y, shard):
            logits = net(x, training=False) if forward is None else forward(x, shard)
            if allowed is not None:  # a per-sample mask: the classes of its shard
                mask = tf.gather(allowed, shard)
                logits = tf.where(mask, logits, tf.constant(-np.inf, logits.dtype))
            correct = tf.argmax(logits, axis=-1, output_type=tf.int32) == y
            return tf.cast(correct, tf.float64), tf.cast(per_sample_loss(y, logits), tf.float64)

        def evaluate_all(xs, ys, shards):
            if xs.shape[0] <= UNROLL_BATCHES:  # a few batches: no loop in the graph
                parts = [evaluate_batch(xs[i], ys[i], shards[i]) for i in range(xs.shape[0])]
                correct = tf.concat([c for c, _ in parts], 0)
                losses = tf.concat([loss for _, loss in parts], 0)
            else:
                correct = tf.TensorArray(tf.float64, size=xs.shape[0])
                losses = tf.TensorArray(tf.float64, size=xs.shape[0])
                for i in tf.range(xs.shape[0]):
                    c, loss = evaluate_batch(xs[i], ys[i], shards[i])
                    correct = correct.write(i, c)
                    losses = losses.write(i, loss)
                correct, losses = correct.concat(), losses.concat()
            per_sample = tf.stack([correct[:n], losses[:n]], axis=1)
            # (num_groups, 2): correct predictions and summed losses, in sample order.
            return tf.math.unsorted_segment_sum(per_sample, group_ids, num_groups)

        # Concrete functions: a call skips tf.function's argument matching.
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in self._data()]
        compiled = tf.function(evaluate_all, jit_compile=self.jit_compile)
        return (
            compiled.get_concrete_function(*specs),
            tf.function(evaluate_all).get_concrete_function(*specs),
        )

    def _sums(self, net: keras.Model, forward: Callable | None) -> np.ndarray:
        """``(num_segments, 2)`` correct predictions and summed losses, compiled with XLA if it can.

        A network XLA cannot compile is evaluated by the plain graph from then on.
        """
        fn = self._compiled(net, forward)
        try:
            return fn(*self._data()).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            if fn is self._plain_fn:
                raise
            logging.getLogger(__name__).warning(
                "Evaluator: XLA could not compile the evaluation (%s); using the plain graph.",
                str(error).splitlines()[0],
            )
            self._fn = self._plain_fn
            key = (id(net), id(forward), self._structure)
            if key in _PASSES:
                _PASSES[key] = (self._plain_fn, self._plain_fn, net, forward)
            return self._fn(*self._data()).numpy()

    def __call__(self, net: keras.Model, forward: Callable | None = None) -> list[dict]:
        """Per-group ``eval_shard``, ``accuracy``, ``loss`` and ``n_eval`` records.

        ``eval_shard`` is the group's index: the shard's own index when every shard is a group.
        With a validation split, every group has a ``test`` record, then a ``val`` one (key
        ``split``).

        Args:
            net: The network (its logits are evaluated unless ``forward`` is given).
            forward: ``forward(x, shard_ids) -> logits``, routing each held-out sample by its
                shard (a per-shard network or head); ``None``: ``net(x)``.
        """
        sums = self._sums(net, forward)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = sums[:, 0] / self.counts
            mean_loss = sums[:, 1] / self.counts
        records = []
        for s, split in enumerate(self.splits):
            for j in range(self.num_groups):
                i = s * self.num_groups + j
                record = {"split": split} if len(self.splits) > 1 else {}
                record.update(
                    eval_shard=j,
                    accuracy=float(acc[i]),
                    loss=float(mean_loss[i]),
                    n_eval=int(self.counts[i]),
                )
                records.append(record)
        return records
