import numpy as np
import pytest

from forgetbench.data.feed import Feed
from forgetbench.data.samplers import cross_shard_order, epoch_rng, shard_order, uniform_order
from forgetbench.train.remainder import RemainderPolicy

SIZES = np.array([37, 250, 91, 5, 180])
OFFSETS = np.concatenate([[0], np.cumsum(SIZES)])
SEEDS = range(50)


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_shard_every_sample_exactly_once(seed):
    order = cross_shard_order(SIZES, epoch_rng(seed, 0, 0))
    assert np.array_equal(np.sort(order), np.arange(SIZES.sum()))


@pytest.mark.parametrize("batch_size", [8, 32, 64])
def test_cross_shard_batches_hold_every_shard_in_proportion(batch_size):
    n = SIZES.sum()
    shard_of = np.repeat(np.arange(len(SIZES)), SIZES)
    expected = batch_size * SIZES / n
    bound = 2 + 2 * len(SIZES) * SIZES / n  # jittered stratification: see cross_shard_order
    deviations = []
    for seed in SEEDS:
        order = cross_shard_order(SIZES, epoch_rng(seed, 0, 0))
        for start in range(0, n - batch_size + 1, batch_size):
            counts = np.bincount(shard_of[order[start : start + batch_size]], minlength=len(SIZES))
            assert np.all(np.abs(counts - expected) <= bound), (seed, start, counts, expected)
            deviations.append(np.abs(counts - expected))
    # A uniform shuffle strays by 0.77 (B=8) to 2.1 (B=64) samples on average on these sizes.
    assert np.mean(deviations) < 0.6


def test_cross_shard_prefixes_track_remaining_sizes():
    # In proportion to what remains: after any prefix, each shard's remaining share stays close
    # to its share of the whole epoch.
    n = SIZES.sum()
    shard_of = np.repeat(np.arange(len(SIZES)), SIZES)
    order = cross_shard_order(SIZES, epoch_rng(3, 0, 0))
    seen = np.cumsum(np.eye(len(SIZES), dtype=int)[shard_of[order]], axis=0)
    expected = np.arange(1, n + 1)[:, None] * SIZES / n
    assert np.all(np.abs(seen - expected) <= 2 + 2 * len(SIZES) * SIZES / n)


def test_cross_shard_differs_per_epoch_and_is_deterministic_per_seed():
    a0 = cross_shard_order(SIZES, epoch_rng(1, 0, 0))
    a1 = cross_shard_order(SIZES, epoch_rng(1, 0, 1))
    b0 = cross_shard_order(SIZES, epoch_rng(2, 0, 0))
    assert not np.array_equal(a0, a1)
    assert not np.array_equal(a0, b0)
    assert np.array_equal(a0, cross_shard_order(SIZES, epoch_rng(1, 0, 0)))


def test_within_shard_order_is_uniform():
    # Each sample of a shard is equally likely to occupy the shard's first slot.
    sizes = np.array([4, 6])
    firsts = np.zeros(10)
    for seed in range(4000):
        order = cross_shard_order(sizes, epoch_rng(seed, 0, 0))
        firsts[order[np.isin(order, np.arange(4, 10))][0]] += 1
    freq = firsts[4:] / firsts[4:].sum()
    assert np.abs(freq - 1 / 6).max() < 0.03


@pytest.mark.parametrize("seed", SEEDS)
def test_shard_and_uniform_orders_are_permutations(seed):
    rng = epoch_rng(seed, 2, 0)
    order = shard_order(int(OFFSETS[2]), int(SIZES[2]), rng)
    assert np.array_equal(np.sort(order), np.arange(OFFSETS[2], OFFSETS[3]))
    assert np.array_equal(np.sort(uniform_order(100, rng)), np.arange(100))


def _feed(policy, n=70, batch=16):
    data = np.arange(n, dtype=np.float32)[:, None]
    return Feed(
        gather=lambda idx: (data[idx], idx % 3),
        order=lambda epoch: uniform_order(n, epoch_rng(0, 0, epoch)),
        num_samples=n,
        batch_size=batch,
        policy=policy,
        feature_shape=(1,),
    )


@pytest.mark.parametrize(
    ("policy", "batches", "last_len", "real"),
    [
        (RemainderPolicy("weighted"), 5, 6, 70),
        (RemainderPolicy("naive", exact=False), 5, 6, 70),
        (RemainderPolicy("drop", keep_partial=False), 4, 16, 64),
        (RemainderPolicy("pad", pad_partial=True), 5, 16, 70),
    ],
)
def test_feed_remainder_policies(policy, batches, last_len, real):
    feed = _feed(policy)
    out = list(feed.epoch(0).as_numpy_iterator())
    assert len(out) == feed.batches_per_epoch == batches
    assert len(out[-1][0]) == last_len
    weights = np.concatenate([w for _, _, w, _ in out])
    np.testing.assert_array_equal(weights, np.concatenate([s for *_, s in out]))
    assert weights.sum() == real == feed.samples_per_epoch
    xs = np.concatenate([x[w > 0, 0] for x, _, w, _ in out])
    assert len(np.unique(xs)) == real, "a sample was fed twice in one epoch"
    labels = np.concatenate([y[w > 0] for _, y, w, _ in out])
    np.testing.assert_array_equal(labels, xs.astype(int) % 3)
