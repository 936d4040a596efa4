"""Run folders: finished runs are reused only when intact and of the same config; one process
at a time works in a folder."""

import fcntl
import json
import os

import pytest

from forgetbench.results.run_files import read_summary
from forgetbench.run import run
from forgetbench.run_folder import (
    LOCK,
    OtherConfigError,
    RunInProgressError,
    config_differences,
    config_digest,
)


@pytest.fixture
def finished(tiny_cfg, tmp_path):
    out = tmp_path / "r"
    summary = run(tiny_cfg(), out)
    return out, summary


def test_a_finished_run_is_reused_as_it_is(tiny_cfg, finished):
    out, summary = finished
    mtime = (out / "summary.json").stat().st_mtime_ns
    assert run(tiny_cfg(), out) == summary
    assert (out / "summary.json").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("damaged", ["summary.json", "curves.parquet"])
def test_a_damaged_run_is_run_again(tiny_cfg, finished, damaged, caplog):
    out, summary = finished
    path = out / damaged
    path.write_bytes(path.read_bytes()[:50])
    again = run(tiny_cfg(), out)
    assert "damaged" in caplog.text
    assert again["metrics"] == summary["metrics"]  # same config and seed: the same run
    assert json.loads((out / "summary.json").read_text())["run_id"] == summary["run_id"]


def test_a_folder_holding_another_configs_run_is_refused(tiny_cfg, finished):
    out, summary = finished
    with pytest.raises(OtherConfigError, match=r"model.hidden: \[8\] -> \[16\]") as err:
        run(tiny_cfg("model.hidden=[16]"), out)
    assert summary["run_id"] in str(err.value)
    assert read_summary(out) == summary  # kept


def test_where_results_go_is_not_part_of_the_config(tiny_cfg, finished, tmp_path):
    out, summary = finished
    assert run(tiny_cfg("train.verbose=1"), out) == summary


def test_a_folder_being_run_elsewhere_is_left_alone(tiny_cfg, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another process running this folder would
        with pytest.raises(RunInProgressError, match="being run by another process"):
            run(tiny_cfg(), out)
    finally:
        os.close(fd)
    assert not (out / "summary.json").exists()
    assert run(tiny_cfg(), out)["status"] == "completed"  # once the lock is free


def test_temporary_files_of_a_killed_write_are_removed(tiny_cfg, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    stale = out / ".model.keras.a0fgy45m.tmp.keras"
    stale.write_bytes(b"half")
    run(tiny_cfg(), out)
    assert not stale.exists()


def test_a_model_module_renamed_since_keeps_digests_and_finished_runs():
    recorded = {"seed": 0, "model": {"_target_": "forgetbench.train.models.mlp", "hidden": [8]}}
    now = {"seed": 0, "model": {"_target_": "forgetbench.train.networks.mlp", "hidden": [8]}}
    other = {"seed": 0, "model": {"_target_": "forgetbench.train.networks.cnn", "hidden": [8]}}
    assert config_digest(now) == config_digest(recorded) != config_digest(other)
    assert config_differences(recorded, now) == []
    assert config_differences(recorded, other) == [
        "model._target_: 'forgetbench.train.networks.mlp' -> 'forgetbench.train.networks.cnn'"
    ]
