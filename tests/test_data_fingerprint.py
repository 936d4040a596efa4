"""A run records its data's fingerprint; a finished run of changed data is never reused."""

import json
import logging
import os

import numpy as np
import pytest

from forgetbench.results.run_files import read_summary
from forgetbench.run import run
from forgetbench.run_folder import OtherDataError


@pytest.fixture
def npz_cfg(tmp_path, compose_config, quick_overrides):
    """Returns ``npz_cfg(folder, *overrides)``: a quick run's config on a shard folder."""

    def make(folder, *overrides):
        return compose_config(
            [
                *quick_overrides,
                f"paths.data_cache={tmp_path / 'data'}",
                "data=npz_dir",
                f"data.path={folder}",
            ]
            + list(overrides)
        )

    return make


@pytest.fixture
def finished(tmp_path, keras_session, write_shards, npz_cfg):
    folder = write_shards(tmp_path / "shards", sizes=(50, 61, 45))
    out = tmp_path / "sweep" / "seed=0"
    summary = run(npz_cfg(folder), out)
    return folder, out, summary


def test_a_run_records_its_data_fingerprint(finished):
    folder, out, summary = finished
    data = summary["data"]
    assert len(data["fingerprint"]) == 16
    assert list(data["shards"]["train"]) == ["s0", "s1", "s2"]
    assert data["files"]["s1"] == str(folder / "s1.npz")  # the user's file, not the carve


def test_same_bytes_rewritten_is_the_same_data(tmp_path, finished, npz_cfg):
    folder, out, summary = finished
    (folder / "s1.npz").write_bytes((folder / "s1.npz").read_bytes())  # new stamp, same content
    os.utime(folder / "s1.npz", (1, 1))
    assert run(npz_cfg(folder), out) == summary


def test_a_changed_shard_refuses_the_stale_finished_run(tmp_path, finished, npz_cfg):
    folder, out, summary = finished
    with np.load(folder / "s1.npz") as npz:
        arrays = dict(npz)
    arrays["array2"] = (arrays["array2"] + 1) % 3
    np.savez(folder / "s1.npz", **arrays)
    with pytest.raises(OtherDataError) as caught:
        run(npz_cfg(folder), out)
    text = str(caught.value)
    assert f"{folder / 's1.npz'} (train changed, heldout changed)" in text
    assert "s0.npz" not in text and summary["data"]["fingerprint"] in text
    assert read_summary(out) == summary  # kept
    fresh = run(npz_cfg(folder), tmp_path / "sweep" / "seed=1")  # a new seed
    assert fresh["data"]["fingerprint"] != summary["data"]["fingerprint"]


def test_a_run_without_a_fingerprint_is_reused_unchecked(
    tmp_path, finished, caplog, write_shards, npz_cfg
):
    folder, out, summary = finished
    del summary["data"]
    (out / "summary.json").write_text(json.dumps(summary))
    (folder / "s2.npz").unlink()
    write_shards(tmp_path / "other", sizes=(5, 5, 45), seed=3)
    os.replace(tmp_path / "other" / "s2.npz", folder / "s2.npz")
    with caplog.at_level(logging.INFO, logger="forgetbench.run_folder"):
        assert run(npz_cfg(folder), out) == summary
    assert "records no data fingerprint: reused unchecked" in caplog.text


@pytest.mark.slow  # two sweeps as processes (about 30 s); the check itself is tested above
def test_a_sweep_rerun_after_a_shard_changed_refuses_the_stale_run(
    tmp_path, quick_overrides, write_shards
):
    import subprocess
    import sys
    from pathlib import Path

    folder = write_shards(tmp_path / "shards", sizes=(50, 61, 45))
    sweep = tmp_path / "sweep"
    cmd = [
        str(Path(sys.executable).parent / "forgetbench"),
        "-m",
        *quick_overrides,
        "data=npz_dir",
        f"data.path={folder}/",
        "seed=0",
        f"paths.data_cache={tmp_path / 'data'}",
        f"hydra.sweep.dir={sweep}",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    (job,) = sweep.glob("*/summary.json")
    assert job.parent.parent == sweep  # the path override does not nest folders
    with np.load(folder / "s2.npz") as npz:
        arrays = dict(npz)
    np.savez(folder / "s2.npz", **{**arrays, "array1": arrays["array1"] * 2})
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1
    assert "1 job(s) failed" in again.stderr and "OtherDataError" in again.stderr
    assert f"{folder / 's2.npz'} (train changed, heldout changed)" in again.stderr
