import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf

from forgetbench.data.feed import Feed
from forgetbench.data.samplers import epoch_rng, uniform_order
from forgetbench.train.remainder import RemainderPolicy

POLICIES = [
    RemainderPolicy("weighted"),
    RemainderPolicy("naive", exact=False),
    RemainderPolicy("drop", keep_partial=False),
    RemainderPolicy("pad", pad_partial=True),
]
N, B = 70, 16
DATA = np.arange(2 * N, dtype=np.float64).reshape(N, 2)


def sorted_gather(idx):
    assert np.all(np.diff(idx) > 0), "gathers must be sorted"
    return DATA[idx], (idx % 5).astype(np.int64)


def extra(epoch, b):
    rng = np.random.default_rng([epoch, b])
    return rng.normal(size=(3, 2)), rng.integers(0, 5, 3)


def make_feed(policy, gather_bytes, extra_size, num_samples=N):
    return Feed(
        gather=sorted_gather,
        order=lambda epoch: uniform_order(num_samples, epoch_rng(0, 0, epoch)),
        num_samples=num_samples,
        batch_size=B,
        policy=policy,
        feature_shape=(2,),
        extra=extra if extra_size else None,
        extra_size=extra_size,
        gather_bytes=gather_bytes,
    )


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize("gather_bytes", [1, 2 * B * 8, 2**30])
@pytest.mark.parametrize("extra_size", [0, 3])
@pytest.mark.parametrize("num_samples", [N, 64, 9])
def test_blocked_epoch_equals_batch_by_batch(policy, gather_bytes, extra_size, num_samples):
    feed = make_feed(policy, gather_bytes, extra_size, num_samples)
    order = feed.order(1)
    expected = [feed.batch(order, 1, b) for b in range(feed.batches_per_epoch)]
    dataset = feed.epoch(1)
    got = list(dataset.as_numpy_iterator())
    assert len(got) == len(expected) == int(dataset.cardinality())
    for b, (want, have) in enumerate(zip(expected, got, strict=True)):
        for a, c in zip(want, have, strict=True):
            assert a.dtype == c.dtype
            np.testing.assert_array_equal(a, c, err_msg=f"batch {b}")


def test_blocked_epoch_keeps_the_element_spec():
    spec = make_feed(POLICIES[0], 2 * B * 8, 0).epoch(0).element_spec
    assert [s.shape.as_list() for s in spec] == [[None, 2], [None], [None], [None]]
    assert [s.dtype for s in spec] == [tf.float32, tf.int32, tf.float32, tf.float32]


def test_extra_of_the_wrong_size_is_refused():
    feed = make_feed(POLICIES[0], 2**30, 3)
    feed.extra_size = 4
    with pytest.raises(ValueError, match="expected 4 samples"):
        feed.batches(feed.order(0), 0, 0, 2)


def test_an_epochs_index_plan_is_freed_with_its_pipeline():
    plans = []

    def order(epoch):
        plans.append(uniform_order(N, epoch_rng(0, 0, epoch)))
        return plans[-1]

    feed = make_feed(POLICIES[0], 2 * B * 8, 0)
    feed.order = order
    dataset = feed.epoch(0)
    assert len(list(dataset.as_numpy_iterator())) == feed.batches_per_epoch
    plan = weakref.ref(plans.pop())
    del dataset
    gc.collect()
    assert plan() is None, "the index plan outlived its pipeline (it would leak every epoch)"
