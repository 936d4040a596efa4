"""Hydra's Submitit launcher for real: local executor, a job preempted by a signal, requeued."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BIN = Path(sys.executable).parent
TESTS = Path(__file__).parent
SWEEP = ["strategy=sequential,replay", "output.run_figure=false", "checkpoint.min_interval_s=0"]


def sweep(tmp_path: Path, tiny: list[str], folder: str, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        str(BIN / "forgetbench"),
        "-m",
        *SWEEP,
        *tiny,
        f"paths.data_cache={tmp_path / 'data'}",
        f"hydra.sweep.dir={tmp_path / folder}",
        *extra,
    ]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500)


@pytest.mark.slow
def test_submitit_local_sweep_with_a_requeued_job_equals_the_basic_launcher(
    tmp_path, tiny_overrides
):
    marker = tmp_path / "signalled"
    done = sweep(
        tmp_path,
        tiny_overrides,
        "submitit",
        "hydra/launcher=submitit_local",
        "+hydra.callbacks.preempt._target_=conftest.PreemptAfterFirstCheckpoint",
        f"+hydra.callbacks.preempt.marker={marker}",
        "+hydra.callbacks.preempt.strategy=replay",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.exists()  # the replay job was sent SIGUSR2 after its first checkpoint
    logs = "\n".join(p.read_text() for p in (tmp_path / "submitit" / ".submitit").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in logs and "Requeued job" in logs
    basic = sweep(tmp_path, tiny_overrides, "basic")
    assert basic.returncode == 0, basic.stderr[-3000:]
    for job in ("strategy=sequential", "strategy=replay"):
        (mine,) = (tmp_path / "submitit").glob(f"*{job},*")
        theirs = tmp_path / "basic" / mine.name
        pd.testing.assert_frame_equal(
            pd.read_parquet(mine / "curves.parquet"), pd.read_parquet(theirs / "curves.parquet")
        )
        summary = json.loads((mine / "summary.json").read_text())
        reference = json.loads((theirs / "summary.json").read_text())
        assert summary["metrics"] == reference["metrics"]
        assert summary["resumed"] == (
            None if job == "strategy=sequential" else {**summary["resumed"], "from_phase": 0}
        )
        assert not (mine / "checkpoint").exists()
