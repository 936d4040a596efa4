"""Sample memories kept in graph variables, written and drawn inside the compiled train step.

Draws and reservoir decisions are stateless functions of the run's seed and a counter held in
a variable, so they are deterministic per seed however batches are gathered ahead, and never
depend on TensorFlow's global seed (engines stay reusable).
"""

from __future__ import annotations

import tensorflow as tf

SEED_RANGE = 2**24  # seeds kept exactly in a float32 variable


def reference_draw(capacity: int, count, size: int, seed):
    """Slots of one draw: ``size`` distinct slots uniform among the first ``count``.

    A stateless function of ``seed`` (two integers). While the memory holds fewer than
    ``size`` samples, every filled slot is drawn and the rest of the draw is marked invalid.

    Returns:
        ``(slots, valid)``: ``min(size, capacity)`` slot indices and a 0/1 mask.
    """
    scores = tf.random.stateless_uniform([capacity], seed=tf.cast(seed, tf.int64))
    filled = tf.range(capacity, dtype=tf.float32) < count
    slots = tf.math.top_k(tf.where(filled, scores, -1.0), k=min(size, capacity)).indices
    return slots, tf.cast(tf.gather(filled, slots), tf.float32)


def reservoir_slots(seen, n, capacity: int, seed):
    """Where Algorithm R writes the next ``n`` stream items, after ``seen`` items.

    Item ``i`` (stream position ``t = seen + i``) goes to slot ``t`` while ``t < capacity``,
    else to a slot uniform in ``[0, t]``, kept when below ``capacity``: after ``t + 1`` items
    each one is held with probability ``capacity / (t + 1)``. When two items of the call land
    in one slot, only the later one is written (as a sequential stream would leave it).

    Args:
        seen: Items streamed before (a float or integer scalar).
        n: Items in this call (``int32`` scalar; may be smaller than the rows given).
        capacity: Slots of the memory.
        seed: Two integers (a stateless seed).

    Returns:
        ``(slots, write)``: a slot per item (``int32``) and whether to write it.
    """
    rows = tf.convert_to_tensor(n, tf.int32)
    positions = tf.cast(seen, tf.float64) + tf.cast(tf.range(rows), tf.float64)
    uniform = tf.random.stateless_uniform([rows], seed=tf.cast(seed, tf.int64), dtype=tf.float64)
    drawn = tf.floor(uniform * (positions + 1.0))
    slots = tf.cast(tf.where(positions < capacity, positions, drawn), tf.int32)
    kept = slots < capacity
    # The last item of the call per slot wins: an item is overwritten by any later one.
    later = tf.range(rows)[None, :] > tf.range(rows)[:, None]
    same = (slots[:, None] == slots[None, :]) & kept[None, :]
    superseded = tf.reduce_any(later & same, axis=1)
    return slots, kept & ~superseded
