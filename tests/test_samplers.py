import numpy as np
import pytest
from scipy import stats

from forgetbench.data.feed import Feed, array_gather
from forgetbench.data.samplers import (
    CrossShardPlan,
    FixedPlan,
    Permutations,
    ShuffledPlan,
    epoch_keys,
)
from forgetbench.remainder import RemainderPolicy

SIZES = np.array([37, 250, 91, 5, 180])
OFFSETS = np.concatenate([[0], np.cumsum(SIZES)])
SEEDS = range(50)


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_shard_every_sample_exactly_once(seed):
    order = CrossShardPlan(SIZES, seed).order(0)
    assert np.array_equal(np.sort(order), np.arange(SIZES.sum()))


@pytest.mark.parametrize("batch_size", [8, 32, 64])
def test_cross_shard_batches_hold_every_shard_in_proportion(batch_size):
    n = SIZES.sum()
    shard_of = np.repeat(np.arange(len(SIZES)), SIZES)
    expected = batch_size * SIZES / n
    bound = 2 + 2 * len(SIZES) * SIZES / n  # jittered stratification: see cross_shard_order
    deviations = []
    for seed in SEEDS:
        order = CrossShardPlan(SIZES, seed).order(0)
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
    order = CrossShardPlan(SIZES, 3).order(0)
    seen = np.cumsum(np.eye(len(SIZES), dtype=int)[shard_of[order]], axis=0)
    expected = np.arange(1, n + 1)[:, None] * SIZES / n
    assert np.all(np.abs(seen - expected) <= 2 + 2 * len(SIZES) * SIZES / n)


def test_cross_shard_differs_per_epoch_and_is_deterministic_per_seed():
    a0 = CrossShardPlan(SIZES, 1).order(0)
    a1 = CrossShardPlan(SIZES, 1).order(1)
    b0 = CrossShardPlan(SIZES, 2).order(0)
    c0 = CrossShardPlan(SIZES, 1, phase=1).order(0)
    assert not np.array_equal(a0, a1)
    assert not np.array_equal(a0, b0)
    assert not np.array_equal(a0, c0)
    assert np.array_equal(a0, CrossShardPlan(SIZES, 1).order(0))


def test_within_shard_order_is_uniform():
    # Each sample of a shard is equally likely to occupy the shard's first slot.
    sizes = np.array([4, 6])
    firsts = np.zeros(10)
    for seed in range(4000):
        order = CrossShardPlan(sizes, seed).order(0)
        firsts[order[np.isin(order, np.arange(4, 10))][0]] += 1
    freq = firsts[4:] / firsts[4:].sum()
    assert np.abs(freq - 1 / 6).max() < 0.03


@pytest.mark.parametrize("seed", SEEDS)
def test_shuffled_plans_are_permutations_of_their_range(seed):
    plan = ShuffledPlan(int(OFFSETS[2]), int(SIZES[2]), seed, phase=2)
    assert np.array_equal(np.sort(plan.order(0)), np.arange(OFFSETS[2], OFFSETS[3]))
    assert not np.array_equal(plan.order(0), plan.order(1))
    assert np.array_equal(np.sort(ShuffledPlan(0, 100, seed).order(3)), np.arange(100))
    assert np.array_equal(ShuffledPlan(7, 1, seed).order(0), [7])


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 16, 17, 1000, 65537])
def test_permutations_are_bijections_of_any_size(size):
    perm = Permutations(np.array([size]))
    for seed in range(5):
        ranks = np.arange(size)
        out = perm(epoch_keys(seed, 0, 0, 1), np.zeros(size, dtype=np.int64), ranks)
        assert np.array_equal(np.sort(out), ranks)


@pytest.mark.parametrize("size", [3, 5, 7, 16])
def test_every_position_is_equally_likely_for_every_sample(size):
    # Chi-square over 300 * size epochs of the (sample, position) table; a biased permutation
    # (for example one Feistel round, or a fixed rotation) fails by orders of magnitude.
    plan = ShuffledPlan(0, size, seed=11)
    epochs = 300 * size
    table = np.zeros((size, size))
    for epoch in range(epochs):
        table[plan.order(epoch), np.arange(size)] += 1
    expected = epochs / size
    chi2 = ((table - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, (size - 1) ** 2), table


@pytest.mark.parametrize("size", [3, 6, 9])
def test_consecutive_pairs_are_uniform(size):
    # Which ordered pair of samples opens the epoch: all size * (size - 1) pairs equally often.
    epochs = 200 * size * (size - 1)
    plan = ShuffledPlan(0, size, seed=5)
    pairs = np.zeros((size, size))
    for epoch in range(epochs):
        first, second = plan.slice(epoch, 0, 2)
        pairs[first, second] += 1
    observed = pairs[~np.eye(size, dtype=bool)]
    expected = epochs / (size * (size - 1))
    chi2 = ((observed - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.ppf(0.999, size * (size - 1) - 1), pairs


def test_large_shards_open_with_uniform_samples_and_pairs():
    # A shard large enough for unequal Feistel halves: the first sample falls in each tenth of
    # the shard equally often, and so does the (first, second) pair in each of 5 x 5 cells.
    size, epochs = 70_001, 5000
    plan = ShuffledPlan(0, size, seed=9)
    firsts = np.array([plan.slice(epoch, 0, 2) for epoch in range(epochs)])
    tenths = np.bincount(firsts[:, 0] * 10 // size, minlength=10)
    assert stats.chisquare(tenths).pvalue > 0.001, tenths
    cells = np.bincount((firsts[:, 0] * 5 // size) * 5 + firsts[:, 1] * 5 // size, minlength=25)
    assert stats.chisquare(cells).pvalue > 0.001, cells


@pytest.mark.parametrize("block_size", [1, 3, 64, 4096])
@pytest.mark.parametrize("sizes", [SIZES, np.array([1, 0, 2]), np.array([500]), np.full(40, 3)])
def test_cross_shard_slices_match_the_whole_order(block_size, sizes):
    # Any slice is the same part of the epoch's order, whatever the block size.
    reference = CrossShardPlan(sizes, 7, block_size=4096).order(2)
    plan = CrossShardPlan(sizes, 7, block_size=block_size)
    assert np.array_equal(plan.order(2), reference)
    n = int(sizes.sum())
    rng = np.random.default_rng(0)
    for start, stop in [(0, 0), (0, 1), (n - 1, n), *np.sort(rng.integers(0, n + 1, (20, 2)))]:
        assert np.array_equal(plan.slice(2, int(start), int(stop)), reference[start:stop])


def test_slices_outside_the_epoch_are_refused():
    for plan in (CrossShardPlan(SIZES, 0), ShuffledPlan(0, 10, 0), FixedPlan(np.arange(10))):
        with pytest.raises(IndexError, match=r"start <= stop <= "):
            plan.slice(0, 5, plan.num_samples + 1)


def test_fixed_plan_repeats_its_order():
    plan = FixedPlan(np.array([4, 2, 9]))
    assert plan.order(0).tolist() == plan.order(5).tolist() == [4, 2, 9]
    assert plan.slice(1, 1, 3).tolist() == [2, 9]


def _feed(policy, n=70, batch=16):
    data = np.arange(n, dtype=np.float32)[:, None]
    return Feed(
        gather=array_gather(data, np.arange(n) % 3),
        plan=ShuffledPlan(0, n, seed=0),
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
    out = [
        tuple(b[k] for k in ("x", "y", "weight", "is_new"))
        for b in feed.epoch(0).as_numpy_iterator()
    ]
    assert len(out) == feed.batches_per_epoch == batches
    assert len(out[-1][0]) == last_len
    weights = np.concatenate([w for _, _, w, _ in out])
    np.testing.assert_array_equal(weights, np.concatenate([s for *_, s in out]))
    assert weights.sum() == real == feed.samples_per_epoch
    xs = np.concatenate([x[w > 0, 0] for x, _, w, _ in out])
    assert len(np.unique(xs)) == real, "a sample was fed twice in one epoch"
    labels = np.concatenate([y[w > 0] for _, y, w, _ in out])
    np.testing.assert_array_equal(labels, xs.astype(int) % 3)
