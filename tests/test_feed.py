import numpy as np
import pytest
import tensorflow as tf

from forgetbench.batch import Column
from forgetbench.data.feed import ALIGNMENT, Feed, aligned_empty
from forgetbench.data.samplers import IndexPlan, ShuffledPlan
from forgetbench.remainder import RemainderPolicy

POLICIES = [
    RemainderPolicy("weighted"),
    RemainderPolicy("naive", exact=False),
    RemainderPolicy("drop", keep_partial=False),
    RemainderPolicy("pad", pad_partial=True),
]
N, B = 70, 16
DATA = np.arange(2 * N, dtype=np.float64).reshape(N, 2)


def sorted_gather(idx, out=None):
    assert len(np.unique(idx)) == len(idx), "a gather reads every index once"
    x, y = DATA[idx], (idx % 5).astype(np.int64)
    if out is not None:
        out[0][...], out[1][...] = x, y
        return out
    return x, y


def extra(epoch, b):
    rng = np.random.default_rng([epoch, b])
    return {"x": rng.normal(size=(3, 2)), "y": rng.integers(0, 5, 3)}


def make_feed(policy, gather_bytes, extra_size, num_samples=N):
    return Feed(
        gather=sorted_gather,
        plan=ShuffledPlan(0, num_samples, seed=0),
        batch_size=B,
        policy=policy,
        feature_shape=(2,),
        extra=extra if extra_size else None,
        extra_size=extra_size,
        gather_bytes=gather_bytes,
    )


def reference_batch(feed, epoch, b):
    """Batch ``b`` built by hand: sorted own samples, extra samples, then zero-weight padding."""
    start = b * B
    idx = np.sort(feed.plan.slice(epoch, start, min(start + B, feed.num_samples)))
    x, y = [DATA[idx]], [idx % 5]
    if feed.extra is not None:
        rows = extra(epoch, b)
        x.append(rows["x"])
        y.append(rows["y"])
    x, y = np.concatenate(x).astype(np.float32), np.concatenate(y).astype(np.int32)
    real = len(y)
    pad = B + feed.extra_size - real if feed.policy.pad_partial else 0
    x = np.concatenate([x, np.zeros((pad, 2), np.float32)])
    y = np.concatenate([y, np.zeros(pad, np.int32)])
    w = (np.arange(len(y)) < real).astype(np.float32)
    is_new = (np.arange(len(y)) < len(idx)).astype(np.float32)
    return {"x": x, "y": y, "weight": w, "is_new": is_new}


def assert_batches_equal(expected, got, feed, epoch):
    assert len(got) == len(expected)
    for b, (want, have) in enumerate(zip(expected, got, strict=True)):
        single = feed.batch(epoch, b)
        assert sorted(want) == sorted(have) == sorted(single)
        for name, a in want.items():
            assert a.dtype == have[name].dtype == single[name].dtype
            np.testing.assert_array_equal(a, have[name], err_msg=f"batch {b} {name}")
            np.testing.assert_array_equal(a, single[name], err_msg=f"batch {b} {name}")


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize("gather_bytes", [1, 2 * B * 8, 2**30])
@pytest.mark.parametrize("extra_size", [0, 3])
@pytest.mark.parametrize("num_samples", [N, 64, 9])
def test_blocked_epoch_equals_batch_by_batch(policy, gather_bytes, extra_size, num_samples):
    feed = make_feed(policy, gather_bytes, extra_size, num_samples)
    expected = [reference_batch(feed, 1, b) for b in range(feed.batches_per_epoch)]
    dataset = feed.epoch(1)
    got = list(dataset.as_numpy_iterator())
    assert len(got) == int(dataset.cardinality())
    assert_batches_equal(expected, got, feed, 1)
    # The engine's path: blocks of stacked batches, the partial one on its own.
    blocks = [feed.block(1, first, count) for first, count in feed.blocks(1)]
    assert [count for _, count in feed.blocks(1)] == [len(b["y"]) for b in blocks]
    unstacked = [
        {k: v[i] for k, v in block.items()} for block in blocks for i in range(len(block["y"]))
    ]
    assert_batches_equal(expected, unstacked, feed, 1)


def test_blocked_epoch_keeps_the_element_spec():
    spec = make_feed(POLICIES[0], 2 * B * 8, 0).epoch(0).element_spec
    assert sorted(spec) == ["is_new", "weight", "x", "y"]
    assert spec["x"].shape.as_list() == [None, 2]
    assert [spec[k].shape.as_list() for k in ("y", "weight", "is_new")] == [[None]] * 3
    assert [spec[k].dtype for k in ("x", "y", "weight", "is_new")] == [
        tf.float32,
        tf.int32,
        tf.float32,
        tf.float32,
    ]


def test_extra_of_the_wrong_size_is_refused():
    feed = make_feed(POLICIES[0], 2**30, 3)
    feed.extra_size = 4
    with pytest.raises(ValueError, match="expected 4 rows"):
        feed.batches(0, 0, 2)


def test_plugin_columns_are_filled_for_own_rows_and_padding():
    # A plugin column (stored logits of memory rows, say): own samples and padding hold the
    # fill value, the extra rows what the plugin gave.
    def extra_with_logits(epoch, b):
        rows = extra(epoch, b)
        return {**rows, "logits": np.full((3, 4), 7.0, np.float32)}

    feed = make_feed(POLICIES[3], 2**30, 3)  # pad
    feed.extra = extra_with_logits
    feed.columns = {"logits": Column(shape=(4,), fill=-1.0)}
    for first, count in feed.blocks(0):
        block = feed.block(0, first, count)
        assert block["logits"].shape == (count, B + 3, 4)
        for batch in range(count):
            own = int(block["is_new"][batch].sum())
            np.testing.assert_array_equal(block["logits"][batch, :own], -1.0)
            np.testing.assert_array_equal(block["logits"][batch, own : own + 3], 7.0)
            np.testing.assert_array_equal(block["logits"][batch, own + 3 :], -1.0)
            np.testing.assert_array_equal(block["weight"][batch, own + 3 :], 0.0)


class RecordingPlan(IndexPlan):
    """A plan that records the largest slice anyone asked of it."""

    def __init__(self, plan):
        self.plan, self.num_samples, self.largest = plan, plan.num_samples, 0

    def slice(self, epoch, start, stop):
        self.largest = max(self.largest, stop - start)
        return self.plan.slice(epoch, start, stop)


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
def test_the_pipeline_never_materialises_the_epochs_order(policy):
    feed = make_feed(policy, 2 * B * 8, 0)
    feed.plan = RecordingPlan(feed.plan)
    got = list(feed.epoch(0).as_numpy_iterator())
    assert len(got) == feed.batches_per_epoch
    assert 0 < feed.plan.largest <= feed.batches_per_call * B < N


@pytest.mark.parametrize("shape", [(1,), (3, 5), (7, 16, 2), (64, 33)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float64, np.uint8])
def test_aligned_empty_starts_on_the_alignment_boundary(shape, dtype):
    for _ in range(5):
        a = aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % ALIGNMENT == 0
