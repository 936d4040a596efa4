"""Throughput, memory and open files against the shard count, for the same data split finer.

The same total of training samples (and of held-out samples) is written as 10, 100, 1,000 and
5,000 shards (``.npy`` pairs, a held-out folder beside). For each count, one ``cross_shard`` run
(one epoch) and one ``sequential`` run (one epoch per shard) go through the ``forgetbench``
command, each in a fresh process, with evaluation only at the ends of the evaluation groups (at
most ``eval.max_groups``, 50), so both strategies evaluate equally often. The shard caches and
the pack are prepared before timing (a first run's one-time costs are not throughput).

Reported per run, from its ``summary.json``: training samples per second (``train_seconds``,
evaluation excluded), evaluation seconds, the peak anonymous memory (``peak_memory_mb``); from
the parent: wall seconds and the most files the process held open (``/proc/PID/fd``, sampled).

Targets: cross-shard throughput at 5,000 shards at least 0.8x that at 10; sequential at 1,000
shards at most 1.3x the cross-shard time over the same data; peak anonymous memory within
100 MB from 10 to 5,000 shards; open files bounded.

Usage: ``python bench/scale.py [--samples 120000] [--shards 10 100 1000 5000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DIM, CLASSES, HELDOUT = 16, 10, 5_000


def write_pairs(folder: Path, shards: int, total: int, seed: int) -> None:
    """``total`` samples split evenly over ``shards`` ``.npy`` pairs (written once)."""
    marker = folder / "spec.json"
    spec = {"shards": shards, "total": total, "seed": seed, "dim": DIM}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((DIM, CLASSES)).astype(np.float32)
    for k, n in enumerate(np.diff(np.linspace(0, total, shards + 1).round().astype(int))):
        x = rng.standard_normal((n, DIM), dtype=np.float32)
        np.save(folder / f"day_{k:05d}.array1.npy", x)
        np.save(folder / f"day_{k:05d}.array2.npy", np.argmax(x @ w, axis=1).astype(np.int64))
    marker.write_text(json.dumps(spec))


def prepare(train: Path, heldout: Path) -> None:
    """Converts, validates and packs once, as a first run would."""
    from forgetbench.data.store import ShardStore

    ShardStore(train).packed()
    ShardStore(heldout)


def watch_files(pid: int, peak: list[int], stop: threading.Event) -> None:
    """Samples how many files ``pid`` holds open, keeping the largest count."""
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            return
        time.sleep(0.01)


def run_one(train: Path, heldout: Path, strategy: str, out: Path) -> dict:
    """One run through the command line; its summary's figures and the parent's."""
    args = [
        str(Path(sys.executable).parent / "forgetbench"),
        "data=npz_dir",
        f"data.path={train}",
        f"data.heldout_dir={heldout}",
        f"strategy={strategy}",
        "train.epochs=1",
        "train.batch_size=64",
        "train.verbose=0",
        "eval.every_samples=1000000000",
        "output.run_figure=false",
        f"hydra.run.dir={out}",
    ]
    shutil.rmtree(out, ignore_errors=True)  # a fresh run each time: a finished one is skipped
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()
    watcher = threading.Thread(target=watch_files, args=(child.pid, peak, stop), daemon=True)
    watcher.start()
    _, err = child.communicate()
    stop.set()
    watcher.join()
    if child.returncode:
        raise RuntimeError(f"{strategy} over {train} failed:\n{err[-3000:]}")
    s = json.loads((out / "summary.json").read_text())
    return {
        "strategy": strategy,
        "train_seconds": s["timing"]["train_seconds"],
        "eval_seconds": s["timing"]["eval_seconds"],
        "samples_per_second": s["timing"]["samples_per_second"],
        "peak_anon_mb": s["peak_memory_mb"],
        "wall_seconds": time.perf_counter() - start,
        "open_files_peak": peak[0],
        "groups": s["groups"]["count"],
        "summary_bytes": (out / "summary.json").stat().st_size,
    }


def main(argv: list[str] | None = None) -> None:
    """Writes ``results/bench/scale.json`` and prints the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=120_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[10, 100, 1000, 5000])
    args = parser.parse_args(argv)
    common.quiet_tensorflow()
    rows = []
    for shards in args.shards:
        base = common.SCRATCH / f"scale-{shards}-{args.samples}"
        train, heldout = base / "train", base / "heldout"
        write_pairs(train, shards, args.samples, seed=0)
        write_pairs(heldout, shards, HELDOUT, seed=1)
        prepare(train, heldout)
        for strategy in ("cross_shard", "sequential"):
            row = {"shards": shards, **run_one(train, heldout, strategy, base / strategy)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    by = {(r["shards"], r["strategy"]): r for r in rows}
    low, high = min(args.shards), max(args.shards)
    cross = [r for r in rows if r["strategy"] == "cross_shard"]
    ratios = {
        "cross_throughput_most_vs_fewest": by[(high, "cross_shard")]["samples_per_second"]
        / by[(low, "cross_shard")]["samples_per_second"],
        "anon_mb_spread_cross": max(r["peak_anon_mb"] for r in cross)
        - min(r["peak_anon_mb"] for r in cross),
        "anon_mb_spread_all": max(r["peak_anon_mb"] for r in rows)
        - min(r["peak_anon_mb"] for r in rows),
        "open_files_most": max(r["open_files_peak"] for r in rows),
    }
    if 1000 in args.shards:
        ratios["sequential_vs_cross_time_1000"] = (
            by[(1000, "sequential")]["train_seconds"] / by[(1000, "cross_shard")]["train_seconds"]
        )
    for shards in args.shards:
        ratios[f"sequential_vs_cross_time_{shards}"] = (
            by[(shards, "sequential")]["train_seconds"]
            / by[(shards, "cross_shard")]["train_seconds"]
        )
    common.write_result("scale", {"samples": args.samples, "rows": rows, "ratios": ratios})
    print(
        common.table(
            rows,
            [
                ("shards", "shards", "d"),
                ("strategy", "strategy", ""),
                ("samples_per_second", "samples/s", ".0f"),
                ("train_seconds", "train s", ".2f"),
                ("eval_seconds", "eval s", ".2f"),
                ("peak_anon_mb", "peak anon MB", ".0f"),
                ("open_files_peak", "open files", "d"),
                ("summary_bytes", "summary.json B", "d"),
            ],
        )
    )
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
