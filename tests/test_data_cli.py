import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from forgetbench.data.store import ShardStore
from forgetbench.data_cli import main

SIZES = (50, 61, 45)


def test_check_prints_the_table_and_exits_zero(tmp_path, capsys, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    assert main(["check", str(folder)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for column in ("shard", "samples", "feature shape", "dtype", "classes present", "held-out"):
        assert column in lines[0]
    assert lines[1].split() == ["s0", "50", "(4,)", "float32", "int64", "0,1,2", "True", "10"]
    assert "OK: 3 shards, 156 samples, 3 classes present (0,1,2)" in out


def test_check_with_heldout_folder_and_num_classes(tmp_path, capsys, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    held = write_shards(tmp_path / "held", sizes=(5, 6, 7), seed=1)
    assert main(["check", str(folder), "--heldout-dir", str(held), "--num-classes", "3"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[-1] for line in out.splitlines()[1:4]] == ["5", "6", "7"]
    assert f"held-out from {held}" in out


def test_check_bad_folders_exit_nonzero_naming_the_file(tmp_path, capsys, write_shards):
    bad = write_shards(tmp_path / "bad", override={1: {"array1": np.zeros((7, 5), np.float32)}})
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "s1.npz: expected feature_shape (4,)" in err and "Received (5,)" in err
    good = write_shards(tmp_path / "good")
    assert main(["check", str(good), "--num-classes", "2"]) == 1
    err = capsys.readouterr().err
    assert f"Labels in {good}/s" in err
    assert ".npz: expected class ids below num_classes=2. Received label 2" in err
    held = write_shards(tmp_path / "held", sizes=(3, 3), dim=4)
    assert main(["check", str(good), "--heldout-dir", str(held)]) == 1
    assert "missing ['s2']" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "nope")]) == 1


def test_check_runs_as_a_command(tmp_path, write_shards):
    bad = write_shards(tmp_path / "bad", override={0: {"array2": np.arange(5.0) - 0.5}})
    done = subprocess.run(
        [sys.executable, "-m", "forgetbench.data_cli", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 1
    assert "s0.npz: float64 value -0.5 at row 0 is not a whole number" in done.stderr


def test_convert_creates_the_cache_runs_then_reuse(tmp_path, capsys, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    assert main(["convert", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "3/3" in out and "OK: 3 shards, 156 samples" in out
    cached = folder / ".forgetbench_cache" / "s2.array1.npy"
    stamp = cached.stat().st_mtime_ns
    store = ShardStore(folder)
    assert cached.stat().st_mtime_ns == stamp, "a run converted the folder again"
    assert Path(store.features[2].filename) == cached
    assert main(["convert", str(tmp_path / "empty")]) == 1
