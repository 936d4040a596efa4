"""bench/loader.py: its baselines read the right samples and every loader is measured."""

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import common  # noqa: E402
import loader  # noqa: E402

from forgetbench.data.store import ShardStore  # noqa: E402


@pytest.fixture
def folder(tmp_path):
    return common.make_shards(tmp_path / "shards", num_shards=3, samples_per_shard=120, dim=4)


def test_per_file_generator_reads_the_samples_of_the_order(folder):
    store = ShardStore(folder)
    order = np.random.default_rng(1).permutation(store.num_samples)
    pairs = list(loader.per_file_generator(sorted(folder.glob("*.npz")), store, order))
    x, y = store.gather(order)
    np.testing.assert_array_equal(np.stack([p[0] for p in pairs]), x)
    np.testing.assert_array_equal(np.array([p[1] for p in pairs]), y)


def test_empty_pipeline_counts_one_batch_per_element():
    assert loader.drain(loader.empty_pipeline(7, 32)) == 7 * 32


def test_every_loader_is_measured_at_every_batch_size(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "SCRATCH", tmp_path)
    args = argparse.Namespace(
        batch_sizes=[16, 64], num_shards=3, dim=4, per_file_seconds=0.01, slow_row_samples=64
    )
    data, rows = loader.measure_folder(args, samples_per_shard=100)
    assert data["num_samples"] == sum(common.shard_sizes(3, 100, 0))
    names = {r["loader"] for r in rows}
    for b in (16, 64):
        at_b = [r for r in rows if r["batch_size"] == b]
        assert {r["loader"] for r in at_b} == names and len(at_b) == len(names) == 11
        assert at_b[0]["loader"].startswith("Feed.epoch") and at_b[0]["feed_vs_this"] == 1
        assert at_b[0]["setup_ms"] > 0
        assert all(r["samples_per_s"] > 0 and r["folder_mb"] == data["folder_mb"] for r in at_b)
