"""How unequally the naive policy weighs samples, for the shard sizes of a config.

Sequential training feeds each shard's micro-batches in turn, the last one partial. Keras's
accumulation groups every ``k`` consecutive micro-batches, across shard boundaries, and gives each
micro-batch's mean 1/k of the update: a sample in a micro-batch of ``s`` samples weighs
``1 / (k s)``. The exact policies flush at each shard end and weigh every sample of a group
``1 / n_group``. This prints, per ``k``, the spread of the naive / exact weight ratio over all
samples of one epoch (1.0 everywhere means no bias).

    .venv/bin/python experiments/remainder_overweight.py experiment=remainder_effect
"""

import sys
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def micro_batches(size: int, batch: int) -> list[int]:
    """Sizes of one shard's micro-batches (the last one partial)."""
    return [batch] * (size // batch) + ([size % batch] if size % batch else [])


def weight_ratios(sizes: list[int], batch: int, k: int) -> np.ndarray:
    """Naive / exact weight of every sample of one sequential epoch over the shards."""
    exact, naive = [], []
    for size in sizes:
        shard = micro_batches(size, batch)
        for start in range(0, len(shard), k):  # exact: groups restart at each shard
            group = shard[start : start + k]
            exact += [1 / sum(group)] * sum(group)
    stream = [s for size in sizes for s in micro_batches(size, batch)]
    for s in stream:  # naive: every micro-batch mean counts 1/k, groups span shards
        naive += [1 / (k * s)] * s
    return np.array(naive) / np.array(exact)


def main(overrides: list[str]) -> None:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    sizes = [int(n) for n in instantiate(cfg.data).train.sizes]
    batch = int(cfg.train.batch_size)
    print(f"batch size {batch}; shard sizes {sizes}")
    print("k   min ratio  max ratio  share of samples off by more than 1.5x")
    for k in (1, 2, 4, 8, 16):
        ratio = weight_ratios(sizes, batch, k)
        off = np.mean((ratio > 1.5) | (ratio < 1 / 1.5))
        print(f"{k:<3} {ratio.min():9.2f}  {ratio.max():9.2f}  {off:6.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
