"""Shared helpers of the benchmarks: shard folders, timing, tables, JSON results.

The benchmark scripts run from a checkout (``make bench``, or ``python bench/NAME.py``); they put
this folder on ``sys.path`` themselves, so ``import common`` works without a package.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "bench"
SCRATCH = Path(os.environ.get("FORGETBENCH_BENCH_DIR", "/tmp/forgetbench-bench"))
FEATURE_KEY, LABEL_KEY = "array1", "array2"


def shard_sizes(num_shards: int, samples_per_shard: int, seed: int) -> np.ndarray:
    """Uneven shard sizes (+/- 20 %), never a multiple of 8, so partial batches occur."""
    rng = np.random.default_rng(seed)
    sizes = np.round(samples_per_shard * rng.uniform(0.8, 1.2, num_shards)).astype(np.int64)
    return sizes + (sizes % 8 == 0)


def make_shards(
    folder: Path,
    *,
    num_shards: int,
    samples_per_shard: int,
    dim: int,
    num_classes: int = 10,
    seed: int = 0,
) -> Path:
    """Writes ``shard_KKK.npz`` files in the common layout, unless the same folder exists.

    Features are ``array1`` (float32, ``(n, dim)``), labels ``array2`` (int64); written with
    ``np.savez`` (uncompressed), one shard at a time so memory stays at one shard.

    Returns:
        The folder.
    """
    spec = {
        "num_shards": num_shards,
        "samples_per_shard": samples_per_shard,
        "dim": dim,
        "num_classes": num_classes,
        "seed": seed,
    }
    marker = folder / "spec.json"
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k, n in enumerate(shard_sizes(num_shards, samples_per_shard, seed)):
        x = rng.standard_normal((int(n), dim), dtype=np.float32)
        y = rng.integers(0, num_classes, int(n), dtype=np.int64)
        np.savez(folder / f"shard_{k:03d}.npz", **{FEATURE_KEY: x, LABEL_KEY: y})
        del x, y
    marker.write_text(json.dumps(spec))
    return folder


def folder_bytes(folder: Path, pattern: str = "*.npz") -> int:
    """Total size of the files of ``folder`` matching ``pattern``."""
    return sum(p.stat().st_size for p in folder.glob(pattern))


def best_rate(fn: Callable[[], int], *, repeats: int = 3, min_seconds: float = 0.0) -> dict:
    """Runs ``fn`` (which returns the samples it processed) and reports samples per second.

    ``fn`` is called ``repeats`` times (and again until ``min_seconds`` have passed); the best
    run is reported (the least disturbed by other work on the machine), with the median.
    """
    rates, start = [], time.perf_counter()
    while len(rates) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return {"samples_per_s": max(rates), "median_samples_per_s": float(np.median(rates))}


def rss_kb(pid: int | str = "self") -> dict[str, int]:
    """``RssAnon``, ``RssFile``, ``VmRSS`` and ``VmHWM`` of a process, in kB."""
    from forgetbench.memory import proc_status_kb

    out = proc_status_kb(pid)
    if not out:
        raise OSError(f"No memory figures in /proc/{pid}/status (process gone, or not Linux)")
    return out


def machine() -> dict:
    """Where the numbers were measured."""
    import keras
    import tensorflow as tf

    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_1_5_15": list(os.getloadavg()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def write_result(name: str, payload: dict) -> Path:
    """Writes ``results/bench/NAME.json`` (machine info added) and returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=1, default=_plain) + "\n")
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"Not JSON serialisable: {type(value)}")


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A markdown table of ``rows``; ``columns`` are ``(key, header, format spec)``."""
    lines = [
        "| " + " | ".join(h for _, h, _ in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = [_cell(row.get(key), spec) for key, _, spec in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value, spec: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return format(value, spec)


def quiet_tensorflow() -> None:
    """Silences TensorFlow's C++ start-up messages (before it is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def per_batch_epoch(feed, epoch: int):
    """The previous ``Feed.epoch``: one ``numpy_function`` call (one gather) per batch.

    Kept here to measure what gathering several batches per call gains; yields the same batches.
    """
    import tensorflow as tf

    def load(b):
        x, y, w, is_new = tf.numpy_function(
            lambda b_: tuple(feed.batch(epoch, int(b_))[k] for k in ("x", "y", "weight", "is_new")),
            [b],
            [tf.float32, tf.int32, tf.float32, tf.float32],
        )
        x.set_shape((None, *feed.feature_shape))
        for t in (y, w, is_new):
            t.set_shape((None,))
        return x, y, w, is_new

    return (
        tf.data.Dataset.range(feed.batches_per_epoch)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )
