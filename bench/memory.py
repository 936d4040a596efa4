"""Peak anonymous memory of one cross-shard training epoch over shard folders of two sizes.

Each size runs in a fresh subprocess that opens the folder as a ``ShardStore``, builds the
``cross_shard`` feed and an ``Engine`` (``mlp``), trains a few batches (tracing), reports its
baseline, then trains one full epoch from prefetched blocks, as the ``Trainer`` does. The
parent samples the child's ``/proc/PID/status`` every few milliseconds (no GIL shared with the
child) for:

- ``RssAnon``: anonymous resident memory (heap, numpy arrays, tensors): what must stay flat.
- ``RssFile``: file-backed resident pages; memory-mapped shard pages land here. They belong to
  the page cache and are reclaimable, so they are not "memory the loader holds" (and they grow
  with the folder, up to the free RAM).
- ``VmHWM``: the peak of both (what ``ru_maxrss``, and so ``summary.json``'s
  ``peak_rss_mb``, reports; its ``peak_memory_mb`` is the sampled ``RssAnon`` peak).

The index plan's share is measured on its own with ``tracemalloc`` (numpy allocations): the peak
while a whole epoch's order is computed slice by slice, as the Feed does (the plan holds nothing
between slices).

Usage: ``python bench/memory.py [--sizes-gb 0.5 4] [--keep]``; folders go under
``$FORGETBENCH_BENCH_DIR`` (default ``/tmp/forgetbench-bench``) and are deleted afterwards unless
``--keep``. Needs about twice the largest size in free disk (``.npz`` plus the ``.npy`` cache).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SAMPLE_SECONDS = 0.002
WARMUP_BATCHES = 20


def child(folder: Path, batch_size: int) -> None:
    """Runs in the subprocess: one warm-up, a baseline mark, then one cross-shard epoch."""
    common.quiet_tensorflow()
    import keras
    import tensorflow as tf
    from hydra.utils import instantiate

    from forgetbench.data.dataset import ShardDataset
    from forgetbench.data.store import ShardStore
    from forgetbench.remainder import RemainderPolicy
    from forgetbench.strategies.cross_shard import CrossShard
    from forgetbench.train.engine import Engine
    from forgetbench.train.networks import mlp
    from forgetbench.train.trainer import prefetched_blocks

    store = ShardStore(folder)
    dataset = ShardDataset("memory", store, store, num_classes=max(store.classes) + 1)
    policy = RemainderPolicy("weighted")
    (phase,) = CrossShard().phases(dataset, seed=0, batch_size=batch_size, policy=policy)
    sgd = {"_target_": "keras.optimizers.SGD", "learning_rate": 0.01}
    model = Engine(mlp(store.feature_shape, dataset.num_classes), lambda: instantiate(sgd), policy)
    warmup = phase.feed.batches(1, 0, WARMUP_BATCHES)
    model.run({k: tf.convert_to_tensor(v) for k, v in warmup.items()}, 0, WARMUP_BATCHES)
    del warmup
    print("BASELINE", json.dumps(common.rss_kb()), flush=True)
    start = time.perf_counter()
    for _, _, count, block in prefetched_blocks(phase.feed, 1):  # as the Trainer feeds it
        model.run({k: tf.convert_to_tensor(v) for k, v in block.items()}, 0, count)
    seconds = time.perf_counter() - start
    seen = int(model.samples_seen.numpy())
    print("DONE", json.dumps({**common.rss_kb(), "seconds": seconds, "seen": seen}), flush=True)
    keras.backend.clear_session()


def sample_child(folder: Path, batch_size: int) -> dict:
    """Starts the child for ``folder`` and samples its memory until it exits."""
    cmd = [sys.executable, __file__, "--child", str(folder), "--batch-size", str(batch_size)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    marks: dict[str, tuple[float, dict]] = {}

    def read():
        for line in proc.stdout:
            tag, _, payload = line.partition(" ")
            if tag in ("BASELINE", "DONE"):
                marks[tag] = (time.perf_counter(), json.loads(payload))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples = []
    while proc.poll() is None:
        try:
            samples.append((time.perf_counter(), common.rss_kb(proc.pid)))
        except (OSError, ValueError, IndexError):
            break
        time.sleep(SAMPLE_SECONDS)
    proc.wait()
    reader.join()
    if proc.returncode != 0 or set(marks) != {"BASELINE", "DONE"}:
        raise RuntimeError(f"Memory child for {folder} failed (exit code {proc.returncode})")
    t0, baseline = marks["BASELINE"]
    t1, done = marks["DONE"]
    epoch = [s for t, s in samples if t0 <= t <= t1] or [done]
    mb = 1 / 1024
    return {
        "baseline_anon_mb": baseline["RssAnon"] * mb,
        "peak_anon_mb": max(s["RssAnon"] for s in epoch) * mb,
        "growth_anon_mb": (max(s["RssAnon"] for s in epoch) - baseline["RssAnon"]) * mb,
        "peak_file_mb": max(s["RssFile"] for s in epoch) * mb,
        "vm_hwm_mb": done["VmHWM"] * mb,
        "epoch_seconds": done["seconds"],
        "samples_per_s": done["seen"] / done["seconds"],
        "memory_samples": len(epoch),
    }


def plan_memory(store, batch_size: int) -> dict:
    """Peak numpy memory (``tracemalloc``) of computing a whole epoch's cross-shard order.

    The epoch is sliced the way the cross-shard Feed does it, one call's worth of batches at a
    time; the plan holds nothing between slices, so the peak is that of one slice.
    """
    from forgetbench.data.feed import Feed
    from forgetbench.data.samplers import CrossShardPlan
    from forgetbench.remainder import RemainderPolicy

    feed = Feed(
        gather=store.gather,
        plan=CrossShardPlan(store.sizes, seed=0),
        batch_size=batch_size,
        policy=RemainderPolicy("weighted"),
        feature_shape=store.feature_shape,
    )
    plan, step = feed.plan, batch_size * feed.batches_per_call
    tracemalloc.start()
    for start in range(0, plan.num_samples, step):
        plan.slice(1, start, min(start + step, plan.num_samples))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"plan_slice_positions": step, "plan_peak_mb": peak / 2**20}


def measure_size(size_gb: float, args) -> dict:
    """Makes (or reuses) a folder of about ``size_gb`` GB and measures one epoch over it."""
    from forgetbench.data.store import ShardStore

    row_bytes = 4 * args.dim + 8
    per_shard = int(size_gb * 2**30 / row_bytes / args.num_shards)
    folder = common.make_shards(
        common.SCRATCH / f"memory-{size_gb:g}gb",
        num_shards=args.num_shards,
        samples_per_shard=per_shard,
        dim=args.dim,
    )
    store = ShardStore(folder)  # converts the .npz members to the memory-mappable cache once
    result = {
        "size_gb": size_gb,
        "folder_mb": common.folder_bytes(folder) / 2**20,
        "num_samples": store.num_samples,
        **plan_memory(store, args.batch_size),
        **sample_child(folder, args.batch_size),
    }
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-gb", type=float, nargs="+", default=[0.5, 4.0])
    parser.add_argument("--num-shards", type=int, default=16)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the shard folders")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.batch_size)
        return {}
    rows = [measure_size(size, args) for size in args.sizes_gb]
    flat = rows[-1]["peak_anon_mb"] - rows[0]["peak_anon_mb"]
    print(
        f"One cross-shard epoch (engine, batch {args.batch_size}, {args.num_shards} shards, "
        f"{args.dim} float32 features)\n"
    )
    print(
        common.table(
            rows,
            [
                ("folder_mb", "folder MB", ",.0f"),
                ("num_samples", "samples", ",d"),
                ("baseline_anon_mb", "anon before", ",.0f"),
                ("peak_anon_mb", "anon peak", ",.0f"),
                ("growth_anon_mb", "anon growth", ",.0f"),
                ("plan_peak_mb", "plan peak", ",.1f"),
                ("peak_file_mb", "file-backed peak", ",.0f"),
                ("vm_hwm_mb", "VmHWM", ",.0f"),
                ("samples_per_s", "samples/s", ",.0f"),
            ],
        )
    )
    print(f"\nPeak anonymous memory, largest minus smallest folder: {flat:+.0f} MB")
    result = {
        "settings": {
            "num_shards": args.num_shards,
            "dim": args.dim,
            "batch_size": args.batch_size,
            "model": "mlp (64, 64)",
        },
        "rows": rows,
        "anon_peak_difference_mb": flat,
    }
    print(f"\nWrote {common.write_result('memory', result)}")
    return result


if __name__ == "__main__":
    main()
