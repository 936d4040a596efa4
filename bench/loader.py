"""Loader throughput (samples/s) over the same shard folder, in one run.

Compares the cross-shard ``Feed`` (memory-mapped ``.npy`` caches, sorted numpy gathers inside a
prefetched tf.data pipeline) with:

- the per-file generator pattern: one ``np.load(path, mmap_mode='r')`` handle per ``.npz``,
  indexed sample by sample (``npz['array1'][i]`` reads the whole member every time);
- numpy fancy indexing of one in-memory array (``x[perm[b:b + B]]``);
- ``tf.data.Dataset.from_tensor_slices((x, y))`` in memory, batched (with and without a full
  shuffle buffer).

tf.data pipelines are drained inside TensorFlow (``Dataset.reduce``), so no Python consumer cost
is charged to them; the numpy loops are what their pattern costs in Python. Page cache is warm
(the files were just written or read), which is the fair case for the per-file pattern too.

Two folder sizes by default (about 125 MB and 1 GB): how the ratios move with the data size is
part of the result (the in-memory baseline slows down as its array outgrows the CPU caches, and
the Feed's fixed cost per epoch, building the pipeline, is spread over more samples). The two
rows that measure superseded per-batch designs are timed on the first ``--slow-row-samples``
samples of the epoch, so the large folder does not take minutes on them.

Usage: ``python bench/loader.py [--batch-sizes 32 256] [--samples-per-shard 8000 64000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

common.quiet_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from forgetbench.data.dataset import ShardDataset  # noqa: E402
from forgetbench.data.store import ShardStore  # noqa: E402
from forgetbench.remainder import RemainderPolicy  # noqa: E402
from forgetbench.strategies.cross_shard import CrossShard  # noqa: E402

WEIGHTED = RemainderPolicy("weighted")


def drain(ds: tf.data.Dataset) -> int:
    """Iterates a dataset of batches (``(x, ...)`` or columns) inside TensorFlow; returns the
    sample count."""

    def count(n, batch):
        x = batch["x"] if isinstance(batch, dict) else batch[0]
        return n + tf.shape(x, tf.int64)[0]

    return int(ds.reduce(np.int64(0), count))


def cross_shard_feed(store: ShardStore, batch_size: int):
    """The project's cross-shard feed over ``store`` (the ``cross_shard`` strategy's phase)."""
    dataset = ShardDataset("bench", train=store, heldout=store, num_classes=max(store.classes) + 1)
    (phase,) = CrossShard().phases(dataset, seed=0, batch_size=batch_size, policy=WEIGHTED)
    return phase.feed


def tf_data_floor(feed) -> tf.data.Dataset:
    """The Feed's pipeline shape with the gather replaced by returning one cached block.

    What tf.data itself costs per batch here (``numpy_function`` call, tensor conversion,
    ``unbatch``, ``prefetch``): the ceiling of any loader built this way on this machine.
    """
    full, per_call = feed.num_samples // feed.batch_size, feed.batches_per_call
    columns = feed.batches(0, 0, min(per_call, full))
    block = [columns[name] for name in ("x", "y", "weight", "is_new")]
    types = [tf.float32, tf.int32, tf.float32, tf.float32]

    def load(i):
        parts = tf.numpy_function(lambda i_: block, [i], types)
        parts[0].set_shape((None, None, *feed.feature_shape))
        for t in parts[1:]:
            t.set_shape((None, None))
        return tuple(parts)

    blocks = tf.data.Dataset.range(full // len(block[1]))
    dataset = blocks.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.unbatch().prefetch(tf.data.AUTOTUNE)


def empty_pipeline(num_batches: int, batch_size: int) -> tf.data.Dataset:
    """``Dataset.range`` alone, one element per batch: tf.data's cost per element, no data."""
    return tf.data.Dataset.range(num_batches).map(
        lambda i: (tf.fill([batch_size], i),), num_parallel_calls=tf.data.AUTOTUNE
    )


def setup_ms(feed, epoch: int, repeats: int = 5) -> float:
    """Milliseconds from calling ``Feed.epoch`` to holding its first batch (median).

    The fixed cost of an epoch: building the pipeline (tracing its map function, gathering the
    partial last batch) and the first block's gather.
    """
    times = []
    for k in range(repeats):
        start = time.perf_counter()
        next(iter(feed.epoch(epoch + k)))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def per_file_generator(paths: list[Path], store: ShardStore, order: np.ndarray):
    """The common pattern: an ``np.load(mmap_mode='r')`` handle per file, sample by sample."""
    handles = [np.load(p, mmap_mode="r") for p in paths]
    shard = np.searchsorted(store.offsets, order, side="right") - 1
    local = order - store.offsets[shard]
    for k, i in zip(shard.tolist(), local.tolist(), strict=True):
        yield handles[k][common.FEATURE_KEY][i], handles[k][common.LABEL_KEY][i]


def measure(
    store: ShardStore,
    paths: list[Path],
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    per_file_seconds: float,
    slow_row_samples: int,
):
    """All loaders at one batch size (``x``, ``y``: the store in memory); one row per loader."""
    feed = cross_shard_feed(store, batch_size)
    n = store.num_samples
    slow_batches = max(1, min(feed.batches_per_epoch, slow_row_samples // batch_size))
    rows = []
    epochs = iter(range(10**6))

    def row(name, result, **extra):
        rows.append({"loader": name, "batch_size": batch_size, **result, **extra})

    row(
        "Feed.epoch: cross-shard, memmap, tf.data",
        common.best_rate(lambda: drain(feed.epoch(next(epochs)))),
        setup_ms=setup_ms(feed, 10**5),
    )
    row(
        "previous Feed.epoch: one numpy_function call per batch",
        common.best_rate(
            lambda: drain(common.per_batch_epoch(feed, next(epochs)).take(slow_batches))
        ),
    )

    def numpy_blocks():
        epoch = next(epochs)
        full, per_call = n // batch_size, feed.batches_per_call
        for first in range(0, full, per_call):
            feed.batches(epoch, first, min(per_call, full - first))
        return full * batch_size

    row("Feed.batches loop (numpy only, no tf.data)", common.best_rate(numpy_blocks))

    def numpy_batches():
        epoch = next(epochs)
        for b in range(slow_batches):
            feed.batch(epoch, b)
        return slow_batches * batch_size

    row("Feed.batch loop (numpy only, per batch)", common.best_rate(numpy_batches))
    row(
        "tf.data floor: cached numpy blocks, unbatch (no gather)",
        common.best_rate(lambda: drain(tf_data_floor(feed))),
    )
    empty = empty_pipeline(n // batch_size, batch_size)

    def drain_empty():
        return drain(empty)

    row(
        "tf.data alone: Dataset.range, one element per batch",
        common.best_rate(lambda: drain(empty)),
    )
    row(
        "index plan only (CrossShardPlan, a whole epoch)",
        common.best_rate(lambda: len(feed.plan.order(next(epochs)))),
    )

    def fancy():
        perm = np.random.default_rng(next(epochs)).permutation(n)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            x[idx], y[idx]
        return n

    row("in-memory numpy fancy indexing", common.best_rate(fancy))
    slices = tf.data.Dataset.from_tensor_slices((x, y))
    plain = slices.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    row("from_tensor_slices, batch", common.best_rate(lambda: drain(plain)))
    shuffled = slices.shuffle(n, seed=0).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    row("from_tensor_slices, shuffle(N), batch", common.best_rate(lambda: drain(shuffled)))

    def per_file():
        order = feed.plan.order(next(epochs))
        count, start = 0, time.perf_counter()
        for _ in per_file_generator(paths, store, order):
            count += 1
            if time.perf_counter() - start > per_file_seconds:
                break
        return count

    row("per-file generator (np.load npz, per sample)", common.best_rate(per_file, repeats=1))
    return rows


def measure_folder(args, samples_per_shard: int) -> tuple[dict, list[dict]]:
    """Every loader at every batch size over one shard folder; its description and rows."""
    folder = common.make_shards(
        common.SCRATCH / f"loader-{args.num_shards}x{samples_per_shard}x{args.dim}",
        num_shards=args.num_shards,
        samples_per_shard=samples_per_shard,
        dim=args.dim,
    )
    paths = sorted(folder.glob("*.npz"))
    store = ShardStore(folder)
    mb = common.folder_bytes(folder) / 2**20
    data = {
        "folder_mb": mb,
        "num_shards": store.num_shards,
        "num_samples": store.num_samples,
        "mean_shard_mb": mb / store.num_shards,
        "dim": args.dim,
    }
    x, y = store.load_all()
    rows = []
    for batch_size in args.batch_sizes:
        at_b = measure(store, paths, x, y, batch_size, args.per_file_seconds, args.slow_row_samples)
        for r in at_b:
            r.update(folder_mb=mb, feed_vs_this=at_b[0]["samples_per_s"] / r["samples_per_s"])
        rows += at_b
    del x, y
    print(
        f"\nShards: {store.num_shards} x ~{data['mean_shard_mb']:.1f} MB "
        f"({store.num_samples} samples x {args.dim} float32), page cache warm; Feed.epoch "
        "setup (build to first batch): "
        + ", ".join(
            f"{r['setup_ms']:.0f} ms at B={r['batch_size']}" for r in rows if "setup_ms" in r
        )
        + "\n"
    )
    print(
        common.table(
            rows,
            [
                ("batch_size", "batch", "d"),
                ("loader", "loader", ""),
                ("samples_per_s", "samples/s (best)", ",.0f"),
                ("median_samples_per_s", "median", ",.0f"),
                ("feed_vs_this", "feed / this", ".3g"),
            ],
        )
    )
    return data, rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--num-shards", type=int, default=16)
    parser.add_argument(
        "--samples-per-shard",
        type=int,
        nargs="+",
        default=[8000, 64000],
        help="one folder per value (default: about 125 MB and 1 GB of features)",
    )
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--per-file-seconds", type=float, default=3.0)
    parser.add_argument("--slow-row-samples", type=int, default=131072)
    args = parser.parse_args(argv)

    folders, rows = [], []
    for samples_per_shard in args.samples_per_shard:
        data, at_size = measure_folder(args, samples_per_shard)
        folders.append(data)
        rows += at_size
    result = {"folders": folders, "rows": rows}
    print(f"\nWrote {common.write_result('loader', result)}")
    return result


if __name__ == "__main__":
    main()
