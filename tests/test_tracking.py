"""Experiment tracking: TensorBoard events read back with TensorBoard's reader; a dead server."""

import logging
import socket
import time

import numpy as np
import pandas as pd
import pytest

from forgetbench import checkpoint as checkpoint_module
from forgetbench.run import run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``folder``, by tag, through TensorBoard's own reader."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
        for tag in acc.Tags()["tensors"]
    }


def test_tensorboard_scalars_are_the_curves_stepped_by_samples_seen(
    tiny_cfg, tmp_path, monkeypatch
):
    cfg = tiny_cfg(
        "logger=tensorboard",
        "output.run_figure=false",
        "train.epochs=2",
        "checkpoint.min_interval_s=0",
    )
    out = tmp_path / "run"
    write = checkpoint_module.write_checkpoint

    def write_then_stop(out_dir, trainer, index, identity, **within):
        write(out_dir, trainer, index, identity, **within)
        raise KeyboardInterrupt("test")

    with monkeypatch.context() as patch:  # interrupted after phase 0: the resumed run adds the rest
        patch.setattr(checkpoint_module, "write_checkpoint", write_then_stop)
        with pytest.raises(KeyboardInterrupt):
            run(cfg, out)
    summary = run(cfg, out)
    scalars = read_scalars(out / "tensorboard")
    curves = pd.read_parquet(out / "curves.parquet")
    for shard, rows in curves.groupby("eval_shard"):
        for key in ("accuracy", "loss"):
            steps, values = zip(*sorted(scalars[f"eval/{key}/{shard}"]), strict=True)
            assert list(steps) == rows["samples_seen"].tolist()  # each point once, resumed or not
            np.testing.assert_allclose(values, rows[key].to_numpy(), rtol=1e-6)
    train = pd.read_parquet(out / "train_log.parquet")
    steps, losses = zip(*sorted(scalars["train/loss"]), strict=True)
    np.testing.assert_allclose(losses, train["loss"].to_numpy(), rtol=1e-6)
    assert steps[-1] == summary["timing"]["samples_seen"] and len(set(steps)) == len(train)
    assert scalars["final/acc"] == [(steps[-1], pytest.approx(summary["metrics"]["acc"]))]


def test_a_dead_tracking_server_warns_once_and_does_not_fail_the_run(tiny_cfg, tmp_path, caplog):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cfg = tiny_cfg("logger=mlflow", f"logger.tracking_uri={uri}", "output.run_figure=false")
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        summary = run(cfg, tmp_path / "run")
    assert time.perf_counter() - start < 30
    assert summary["status"] == "completed"
    warnings = [r for r in caplog.records if "logger=mlflow failed" in r.getMessage()]
    assert len(warnings) == 1 and "the run goes on without it" in warnings[0].getMessage()
