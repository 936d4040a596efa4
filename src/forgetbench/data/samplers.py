"""Index plans: the order in which one epoch visits global sample indices, computed lazily.

A plan never holds an epoch's order. ``plan.slice(epoch, start, stop)`` computes the global
indices at positions ``start .. stop - 1`` of that epoch from the run's seed alone, so the
loader's memory does not grow with the dataset, and any part of any epoch can be computed in any
order (parallel tf.data calls, prefetching far ahead, a resumed run). ``plan.order(epoch)``
materialises a whole epoch, for tests and small data.

Within-shard orders are keyed pseudo-random permutations (:class:`Permutations`: a Feistel
network with cycle walking, the construction format-preserving encryption uses), one key per
(seed, phase, epoch, shard): every sample exactly once per epoch, a different order every epoch.
"""

from __future__ import annotations

import functools

import numpy as np

ROUNDS = 8  # Feistel rounds (even); 8 keep each sample's position uniform even for tiny shards
BALANCED_BELOW_BITS = 16  # domains of fewer bits use two equal halves
_M1 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64 multipliers
_M2 = np.uint64(0x94D049BB133111EB)
_S31 = np.uint64(31)
_ONE = np.uint64(1)


def epoch_seed(seed: int, phase: int, epoch: int) -> list[int]:
    """The entropy of one epoch's order (other random streams must not reuse it).

    ``SeedSequence`` pads lists shorter than 4 with zeros, so ``[s, p, e]`` is also
    ``[s, p, e, 0]``: a stream for another purpose needs 5 or more entries, or another prefix.
    """
    return [int(seed), int(phase), int(epoch)]


@functools.lru_cache(maxsize=64)
def epoch_keys(seed: int, phase: int, epoch: int, sequences: int) -> np.ndarray:
    """Keys of one epoch: ``ROUNDS`` Feistel keys and one jitter key per sequence (read-only)."""
    rng = np.random.default_rng(epoch_seed(seed, phase, epoch))
    keys = rng.bit_generator.random_raw((int(sequences), ROUNDS + 1)).astype(np.uint64)
    keys.flags.writeable = False
    return keys


def _mix(x: np.ndarray, key: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Keyed 64-bit mixing of ``x`` (splitmix64's finaliser), its top ``64 - shift`` bits."""
    z = (x ^ key) * _M1
    z ^= z >> _S31
    z *= _M2
    return z >> shift


def jitter(keys: np.ndarray, sequence: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Uniform numbers in ``[0, 1)``, one per (sequence, rank), from the sequences' jitter keys."""
    bits = _mix(rank.astype(np.uint64), keys[sequence, ROUNDS], np.uint64(11))
    return bits.astype(np.float64) * 2.0**-53


class Permutations:
    """Keyed pseudo-random permutations of ``range(n_k)``, one per sequence ``k``, by element.

    A sequence is one shard's samples (cross-shard order), or all the plan's samples.

    A Feistel network on the ``m`` bits of ``n_k - 1`` (halves of ``ceil(m / 2)`` and
    ``floor(m / 2)`` bits that trade places every round; ``2 ** m < 2 * n_k``, so fewer than two
    tries per element on average; two halves of ``ceil(m / 2)`` bits for small shards) with
    cycle walking: values that land outside ``range(n_k)`` are encrypted again until they land
    inside, which keeps the map a bijection of ``range(n_k)``. Rounds use a keyed splitmix64
    finaliser.

    Args:
        sizes: ``n_k`` of each sequence.
    """

    def __init__(self, sizes: np.ndarray):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        if np.any(self.sizes < 1):
            raise ValueError(f"Permutations: sizes must be >= 1. Received {self.sizes.tolist()}")
        bits = np.array([max(2, int(n - 1).bit_length()) for n in self.sizes], dtype=np.uint64)
        self.high = (bits + _ONE) // np.uint64(2)  # bits of the half that starts on the left
        # Halves of one or two bits mix pairs poorly: small domains get two equal halves.
        self.low = np.where(bits < BALANCED_BELOW_BITS, self.high, bits - self.high)

    def __call__(self, keys: np.ndarray, sequence: np.ndarray, rank: np.ndarray) -> np.ndarray:
        """Position ``rank`` of sequence ``sequence`` under the permutations keyed by ``keys``.

        Args:
            keys: ``epoch_keys`` rows, one per sequence.
            sequence: Sequence of each element (int array).
            rank: Rank of each element within its sequence, in ``range(n_sequence)``.

        Returns:
            The permuted ranks (int64), a bijection of ``range(n_k)`` for each sequence.
        """
        sequence = np.asarray(sequence, dtype=np.int64)
        out = self._encrypt(np.asarray(rank, dtype=np.uint64), keys, sequence)
        limit = self.sizes[sequence].astype(np.uint64)
        todo = np.flatnonzero(out >= limit)
        while todo.size:
            out[todo] = self._encrypt(out[todo], keys, sequence[todo])
            todo = todo[out[todo] >= limit[todo]]
        return out.astype(np.int64)

    def _encrypt(self, x: np.ndarray, keys: np.ndarray, sequence: np.ndarray) -> np.ndarray:
        round_keys = keys[sequence]  # (elements, ROUNDS + 1)
        width_left, width_right = self.high[sequence], self.low[sequence]
        left, right = x >> width_right, x & ((_ONE << width_right) - _ONE)
        for r in range(ROUNDS):  # ROUNDS is even: the halves end where they started
            z = right ^ round_keys[:, r]
            z *= _M1
            z ^= z >> _S31
            z *= _M2
            z >>= np.uint64(64) - width_left
            z ^= left
            left, right = right, z
            width_left, width_right = width_right, width_left
        left <<= width_right
        return left | right


class IndexPlan:
    """The visiting order of one phase's samples, computed by position, epoch by epoch.

    Attributes:
        num_samples: Positions in one epoch.
    """

    num_samples: int

    def slice(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Global indices (int64) at positions ``start .. stop - 1`` of ``epoch``."""
        raise NotImplementedError

    def order(self, epoch: int) -> np.ndarray:
        """The whole order of ``epoch`` (``num_samples`` indices; for tests and small data)."""
        return self.slice(epoch, 0, self.num_samples)

    def _check(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.num_samples:
            raise IndexError(
                f"{type(self).__name__}.slice: expected 0 <= start <= stop <= "
                f"{self.num_samples}. Received start={start}, stop={stop}"
            )


class FixedPlan(IndexPlan):
    """The same given order every epoch (an explicit order, e.g. in tests).

    Args:
        indices: Global indices in visiting order.
    """

    def __init__(self, indices: np.ndarray):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.num_samples = len(self.indices)

    def slice(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Positions ``start .. stop - 1`` of the fixed order."""
        self._check(start, stop)
        return self.indices[start:stop].copy()


class ShuffledPlan(IndexPlan):
    """A fresh pseudo-random permutation of one contiguous index range every epoch.

    The sequential feed (one shard: ``offset`` is the shard's first global index) and the joint
    feed (all samples) use it.

    Args:
        offset: First global index of the range.
        size: Samples in the range.
        seed: Run seed.
        phase: Phase index (a different order per phase for the same seed).
    """

    def __init__(self, offset: int, size: int, seed: int, phase: int = 0):
        self.offset, self.num_samples = int(offset), int(size)
        self.seed, self.phase = int(seed), int(phase)
        self.permutations = Permutations(np.array([max(1, self.num_samples)]))

    def slice(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Positions ``start .. stop - 1`` of this epoch's permutation."""
        self._check(start, stop)
        keys = epoch_keys(self.seed, self.phase, epoch, 1)
        ranks = np.arange(start, stop, dtype=np.int64)
        return self.offset + self.permutations(keys, np.zeros_like(ranks), ranks)


class CrossShardPlan(IndexPlan):
    """An order of all samples that spreads every shard evenly over the epoch.

    Shard ``k``'s sample of rank ``j`` (``0 <= j < n_k``) gets the key ``(j + u) / n_k`` with
    ``u`` uniform (jittered stratification); the epoch visits all samples by increasing key, and
    rank ``j`` stands for the shard's sample ``perm_k(j)`` (a fresh permutation every epoch).
    So every sample appears exactly once, no shard is truncated, and every window of ``B``
    consecutive positions holds ``B * n_k / N`` samples of shard ``k`` within
    ``2 + 2 * K * n_k / N`` (``K`` shards): in proportion to what remains of each shard, with far
    less spread than a uniform shuffle.

    The sorted order is never built. The key range is cut at ``b / M`` into ``M`` blocks of about
    ``block_size`` positions; how many of shard ``k``'s keys fall below ``b / M`` is known from
    ``b`` alone (all ranks below ``floor(b * n_k / M)``, and that rank itself if its jitter is
    small enough), so a slice sorts only the keys of the blocks it covers (all at once: blocks
    are consecutive key ranges).

    Args:
        sizes: Samples of each shard, in global index order.
        seed: Run seed.
        phase: Phase index.
        block_size: Positions per block: a slice sorts up to two blocks more than it returns.
    """

    def __init__(self, sizes: np.ndarray, seed: int, phase: int = 0, block_size: int = 256):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        if self.sizes.ndim != 1 or len(self.sizes) == 0 or np.any(self.sizes < 0):
            raise ValueError(
                f"CrossShardPlan: expected a list of shard sizes >= 0. Received {sizes!r}"
            )
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.num_samples = int(self.offsets[-1])
        self.seed, self.phase = int(seed), int(phase)
        self.num_blocks = max(1, -(-self.num_samples // max(1, int(block_size))))
        self.permutations = Permutations(np.maximum(self.sizes, 1))

    @property
    def num_shards(self) -> int:
        """Shards in the plan."""
        return len(self.sizes)

    def counts(self, keys: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        """Samples of each shard whose key is below ``b / M``, for each ``b`` in ``blocks``.

        Returns:
            int64 array of shape ``(len(blocks), K)``.
        """
        b = np.asarray(blocks, dtype=np.int64)[:, None]
        scaled = b * self.sizes  # b * n_k / M = below + rest / M
        below = scaled // self.num_blocks
        rest = scaled - below * self.num_blocks
        shard = np.broadcast_to(np.arange(self.num_shards), below.shape)
        edge = np.minimum(below, self.sizes - 1).clip(min=0)
        u = jitter(keys, shard, edge)
        return below + ((below < self.sizes) & (u * self.num_blocks < rest))

    def _span(self, keys: np.ndarray, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Shard and rank of each position of blocks ``first .. last``, in visiting order.

        Blocks are consecutive key ranges, so sorting their keys together is their concatenation.
        """
        low, high = self.counts(keys, [first, last + 1])
        count = high - low
        shard = np.repeat(np.arange(self.num_shards), count)
        rank = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count - low, count)
        key = (rank + jitter(keys, shard, rank)) / self.sizes[shard]
        visit = np.argsort(key, kind="stable")
        return shard[visit], rank[visit]

    def _first_block(self, keys: np.ndarray, start: int) -> tuple[int, int]:
        """The block holding position ``start`` and that block's first position."""
        n, m = self.num_samples, self.num_blocks
        guess, reach = start * m // max(1, n), self.num_shards * m // max(1, n) + 3
        blocks = np.arange(max(0, guess - reach), min(m - 1, guess + reach) + 1)
        firsts = self.counts(keys, blocks).sum(axis=1)
        i = int(np.searchsorted(firsts, start, side="right")) - 1
        return int(blocks[i]), int(firsts[i])

    def slice(self, epoch: int, start: int, stop: int) -> np.ndarray:
        """Positions ``start .. stop - 1`` of this epoch's order."""
        self._check(start, stop)
        if start == stop:
            return np.empty(0, dtype=np.int64)
        keys = epoch_keys(self.seed, self.phase, epoch, self.num_shards)
        first_block, first = self._first_block(keys, start)
        last_block, _ = self._first_block(keys, stop - 1)
        shard, rank = self._span(keys, first_block, last_block)
        shard, rank = shard[start - first : stop - first], rank[start - first : stop - first]
        return self.offsets[shard] + self.permutations(keys, shard, rank)
