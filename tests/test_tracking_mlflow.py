"""The MLflow logger against real tracking stores (marker ``mlflow``: ``make test-mlflow``)."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from forgetbench.run import run

pytestmark = pytest.mark.mlflow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_run(uri: str, out: Path, summary: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("forgetbench-test")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == summary["run_id"] and found.info.status == "FINISHED"
    assert found.data.tags["strategy"] == "replay" and found.data.tags["seed"] == "0"
    params = found.data.params
    assert params["train.batch_size"] == "16" and params["strategy.plugins.replay.size"] == "32"
    assert params["seed"] == "0" and params["logger.name"] == "mlflow"
    curves = pd.read_parquet(out / "curves.parquet")
    for shard, rows in curves.groupby("eval_shard"):
        history = client.get_metric_history(found.info.run_id, f"eval/accuracy/{shard}")
        got = sorted((m.step, m.value) for m in history)
        assert got == list(zip(rows["samples_seen"], rows["accuracy"], strict=True))
    for key, value in summary["metrics"].items():
        if value is not None:
            assert found.data.metrics[f"final/{key}"] == pytest.approx(value)
    names = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"summary.json", "curves.parquet", "model.keras", "train_log.parquet"} <= names
    assert "checkpoint" not in names
    local = client.download_artifacts(found.info.run_id, "summary.json", str(tmp_path))
    assert Path(local).read_text() == (out / "summary.json").read_text()


def mlflow_cfg(tiny_cfg, uri: str):
    """A tiny replay run logging to the MLflow tracking store at ``uri``."""
    return tiny_cfg(
        "strategy=replay",
        "logger=mlflow",
        f"logger.tracking_uri={uri}",
        "logger.experiment=forgetbench-test",
        "output.run_figure=false",
    )


def test_mlflow_run_in_a_sqlite_store_reads_back(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root: ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = mlflow_cfg(tiny_cfg, uri)
    summary = run(cfg, tmp_path / "run")
    check_run(uri, tmp_path / "run", summary, tmp_path / "download")
    assert (tmp_path / "mlruns").is_dir()


def test_mlflow_run_through_a_local_server_reads_back(tiny_cfg, tmp_path):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "mlflow server did not start in 120 s"
                time.sleep(0.5)
        cfg = mlflow_cfg(tiny_cfg, uri)
        summary = run(cfg, tmp_path / "run")
        check_run(uri, tmp_path / "run", summary, tmp_path / "download")
    finally:
        server.terminate()
        server.wait(timeout=30)
