import numpy as np
import pytest
from scipy import stats

from forgetbench.strategies.replay_buffer import ClassBalancedBuffer, ReservoirBuffer

N, CAPACITY, SEEDS = 60, 12, 3000


def stream_into(buffer, y, rng, shard=None):
    """Adds a stream in random-sized chunks (exercises the vectorised writes)."""
    x = np.arange(len(y), dtype=np.float32)[:, None]
    shard = np.zeros(len(y), np.int32) if shard is None else shard
    start = 0
    while start < len(y):
        stop = start + int(rng.integers(1, 17))
        buffer.add(x[start:stop], y[start:stop], shard[start:stop], rng)
        start = stop
    return buffer


def inclusion_counts(make, labels):
    counts = np.zeros(len(labels))
    for seed in range(SEEDS):
        buffer = stream_into(make(), labels, np.random.default_rng(seed))
        x, _, _ = buffer.items()
        assert len(x) <= CAPACITY
        assert len(np.unique(x)) == len(x), "an item is stored twice"
        counts[x[:, 0].astype(int)] += 1
    return counts


def test_reservoir_keeps_every_position_with_probability_capacity_over_n():
    counts = inclusion_counts(lambda: ReservoirBuffer(CAPACITY, (1,)), np.zeros(N, np.int64))
    assert counts.sum() == SEEDS * CAPACITY
    assert stats.chisquare(counts).pvalue > 1e-3
    freq = counts / SEEDS
    assert np.abs(freq - CAPACITY / N).max() < 4 * np.sqrt(0.2 * 0.8 / SEEDS)


def test_the_uniformity_check_rejects_a_biased_writer():
    # Keeping the first CAPACITY items and then replacing a random slot with probability 1/2 is
    # a plausible-looking but biased writer: the same statistic must reject it.
    counts = np.zeros(N)
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        kept = list(range(CAPACITY))
        for i in range(CAPACITY, N):
            if rng.random() < 0.5:
                kept[rng.integers(CAPACITY)] = i
        counts[kept] += 1
    assert stats.chisquare(counts).pvalue < 1e-6


def test_reservoir_before_full_keeps_everything():
    buffer = stream_into(ReservoirBuffer(100, (1,)), np.arange(30), np.random.default_rng(0))
    x, y, _ = buffer.items()
    assert sorted(x[:, 0].astype(int)) == list(range(30))
    assert buffer.nbytes == 100 * (4 + 8 + 4)


def test_class_balanced_counts_differ_by_at_most_one_once_full():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    buffer = stream_into(ClassBalancedBuffer(20, (1,)), labels, rng)
    _, y, _ = buffer.items()
    counts = np.bincount(y, minlength=3)
    assert counts.sum() == 20 and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("seed", range(20))
def test_class_balanced_with_late_and_recurring_classes(seed):
    rng = np.random.default_rng(seed)
    # class 0 and 1 first, class 2 appears late, then class 0 recurs, then class 3.
    labels = np.concatenate(
        [rng.integers(0, 2, 100), np.full(50, 2), np.full(30, 0), np.full(40, 3)]
    )
    buffer = ClassBalancedBuffer(10, (1,))
    stream_into(buffer, labels, rng)
    x, y, _ = buffer.items()
    counts = np.bincount(y, minlength=4)
    assert counts.tolist() in ([3, 3, 2, 2],), counts  # 10 over 4 classes, in class order
    np.testing.assert_array_equal(labels[x[:, 0].astype(int)], y)  # labels follow their items


def test_class_balanced_is_uniform_within_a_class():
    labels = np.array([0, 1] * 30)
    counts = np.zeros(len(labels))
    for seed in range(SEEDS):
        buffer = stream_into(
            ClassBalancedBuffer(CAPACITY, (1,)), labels, np.random.default_rng(seed)
        )
        x, _, _ = buffer.items()
        counts[x[:, 0].astype(int)] += 1
    for c in (0, 1):
        assert stats.chisquare(counts[labels == c]).pvalue > 1e-3


def test_replay_streams_never_repeat_an_epoch_orders_stream():
    from forgetbench.data.samplers import epoch_seed
    from forgetbench.strategies.replay import draw_seed, write_seed

    def state(entropy):
        return tuple(np.random.SeedSequence(entropy).generate_state(4))

    grid = [(s, p, e) for s in range(3) for p in range(4) for e in range(4)]
    orders = {state(epoch_seed(s, p, e)) for s, p, e in grid}
    draws = {state(draw_seed(s, p, e, b)) for s, p, e in grid for b in range(4)}
    writes = {state(write_seed(s, p)) for s, p, _ in grid}
    assert len(orders) == len(grid) and len(draws) == 4 * len(grid) and len(writes) == 12
    assert not (orders & draws) and not (orders & writes) and not (draws & writes)


def test_a_reservoir_grows_only_while_it_has_dropped_nothing():
    from forgetbench.strategies.replay_buffer import Reservoir

    rng = np.random.default_rng(0)
    young = Reservoir(5, (1,))
    young.add(np.zeros((3, 1)), np.arange(3), np.zeros(3, np.int32), rng)
    young.resize(8, rng)  # nothing dropped yet: every item is still held
    assert young.capacity == 8 and sorted(young.items[1].tolist()) == [0, 1, 2]
    full = Reservoir(3, (1,))
    full.add(np.zeros((10, 1)), np.arange(10), np.zeros(10, np.int32), rng)
    with pytest.raises(ValueError, match=r"capacity <= 3 .*7 of the 10 seen were dropped"):
        full.resize(5, rng)
    full.resize(2, rng)
    assert full.size == 2
