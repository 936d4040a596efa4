"""Open files stay bounded whatever the shard count; a too low limit is explained plainly."""

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgetbench.data.limits import open_files
from forgetbench.data.store import ShardStore
from forgetbench.run import run

BIN = Path(sys.executable).parent


def write_pairs(folder: Path, count: int, rows: int, seed: int = 0) -> np.ndarray:
    """``count`` shards as ``.npy`` pairs of ``rows`` samples; returns all features in order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, rows, 4)).astype(np.float32)
    for k in range(count):
        np.save(folder / f"day_{k:05d}.array1.npy", x[k])
        np.save(folder / f"day_{k:05d}.array2.npy", (x[k, :, 0] > 0).astype(np.int64))
    return x.reshape(-1, 4)


def test_store_holds_a_bounded_number_of_maps(tmp_path):
    x = write_pairs(tmp_path / "d", 300, 3)
    before = open_files()
    store = ShardStore(tmp_path / "d")
    for k in range(store.num_shards):  # every shard once, as a carve or held-out load does
        np.asarray(store.features[k])
    assert store.features.held <= 16
    every = np.random.default_rng(1).permutation(store.num_samples)
    got, labels = store.gather(every)  # across all 300 shards: from the pack
    np.testing.assert_array_equal(got, x[every])
    np.testing.assert_array_equal(labels, (x[every, 0] > 0).astype(np.int64))
    loaded, _ = store.load_all()
    np.testing.assert_array_equal(loaded, x)
    assert open_files() - before <= 2 * 16 + 2  # LRU maps of both members, the pack
    small = ShardStore(tmp_path / "d", max_open=1000)  # all mapped: the per-shard path
    np.testing.assert_array_equal(small.gather(every)[0], x[every])


def test_a_too_low_limit_names_the_limit_the_need_and_ulimit(tmp_path):
    write_pairs(tmp_path / "d", 20, 2)
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24));"
        "from forgetbench.data.store import ShardStore;"
        f"ShardStore({str(tmp_path / 'd')!r}).gather(list(range(40)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "OpenFilesError" in last and "open-file limit of 24" in last
    assert "ulimit -n" in last and "needs about" in last and str(tmp_path / "d") in last


def _limit(n: int):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    return set_limit


def test_a_run_over_2000_shards_under_ulimit_256_matches_an_unlimited_one(
    tmp_path, keras_session, compose_config
):
    write_pairs(tmp_path / "train", 2000, 10)
    write_pairs(tmp_path / "heldout", 2000, 3, seed=1)
    args = [
        "data=npz_dir",
        f"data.path={tmp_path / 'train'}",
        f"data.heldout_dir={tmp_path / 'heldout'}",
        "strategy=cross_shard",
        "train.epochs=1",
        "train.verbose=0",
        "eval.every_samples=100000",
        "output.run_figure=false",
        f"paths.data_cache={tmp_path / 'cache'}",
    ]
    run(compose_config(args), tmp_path / "free")  # in this process, under its usual limit
    out = tmp_path / "limited"
    done = subprocess.run(
        [str(BIN / "forgetbench"), *args, f"hydra.run.dir={out}"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        preexec_fn=_limit(256),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [
        json.loads((tmp_path / n / "summary.json").read_text()) for n in ("free", "limited")
    ]
    curves = [pd.read_parquet(tmp_path / n / "curves.parquet") for n in ("free", "limited")]
    free, limited = summaries
    assert limited["metrics"] == free["metrics"]
    pd.testing.assert_frame_equal(curves[0], curves[1], check_like=True)
    # Compact: 2,000 shards in 50 evaluation groups; the matrix and shard lists beside it.
    assert free["groups"]["count"] == 50 and free["shards"]["count"] == 2000
    assert (tmp_path / "free" / "summary.json").stat().st_size < 32_000
    matrix = pd.read_parquet(tmp_path / "free" / "matrix.parquet")
    assert len(matrix) == 50 * 50


@pytest.mark.parametrize("count", [5, 60])
def test_fd_count_does_not_grow_with_shards(tmp_path, count):
    write_pairs(tmp_path / "d", count, 2)
    before = open_files()
    store = ShardStore(tmp_path / "d")
    store.gather(np.arange(store.num_samples))
    assert open_files() - before <= min(count, 16) * 2 + 2
