"""Runs fail loudly and lose nothing: divergence, interruption, failing sweep jobs, bad config."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException, InstantiationException
from omegaconf import open_dict

from forgetbench.report import report
from forgetbench.run import RunInterrupted, build_trainer, run
from forgetbench.sweep import failed_jobs, record_failure

BIN = Path(sys.executable).parent


def test_divergence_stops_the_run_with_no_metrics(tiny_cfg, tmp_path):
    summary = run(tiny_cfg("optimizer.learning_rate=1e30"), tmp_path / "r")
    assert summary["status"] == "diverged"
    assert "metrics" not in summary and "accuracy_matrix" not in summary
    info = summary["diverged"]
    assert info["step"] >= 1 and info["phase"] == 0
    assert info["samples_seen"] < sum(summary["shards"]["train_sizes"])
    assert info["last_finite_loss"] is None or np.isfinite(info["last_finite_loss"])
    assert not (tmp_path / "r" / "model.keras").exists()
    curves = pd.read_parquet(tmp_path / "r" / "curves.parquet")
    assert curves["samples_seen"].max() <= info["samples_seen"]
    # The report lists it apart and averages only completed runs.
    run(tiny_cfg(), tmp_path / "ok")
    table = report([tmp_path], tmp_path / "report")
    assert table["seeds"].tolist() == [1]
    runs = pd.read_parquet(tmp_path / "report" / "runs.parquet")
    assert sorted(runs["status"]) == ["completed", "diverged"]


def test_sigterm_keeps_partial_curves_and_a_rerun_completes(tiny_cfg, tmp_path):
    killer = {"_target_": "conftest.SignalAfterPhase", "phase": 0, "signum": 15}
    cfg = tiny_cfg("strategy=sequential")
    with open_dict(cfg):
        cfg.strategy.plugins = {"killer": killer}
    out = tmp_path / "r"
    with pytest.raises(RunInterrupted, match="SIGTERM"):
        run(cfg, out)
    assert not (out / "summary.json").exists()
    marker = json.loads((out / "interrupted.json").read_text())
    assert marker["status"] == "interrupted"
    partial = pd.read_parquet(out / "curves.parquet")
    assert 0 < partial["samples_seen"].max() == marker["samples_seen"]
    summary = run(tiny_cfg("strategy=sequential"), out)  # resumed: redone in full
    assert summary["status"] == "completed"
    assert not (out / "interrupted.json").exists()
    assert pd.read_parquet(out / "curves.parquet")["samples_seen"].max() > marker["samples_seen"]


def test_one_failing_job_does_not_stop_the_sweep(tmp_path, tiny_overrides):
    sweep = tmp_path / "sweep"
    cmd = [
        str(BIN / "forgetbench"),
        "-m",
        *tiny_overrides,
        "train.batch_size=0,16",  # after tiny_overrides, so it wins
        f"paths.data_cache={tmp_path / 'data'}",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "1 job(s) failed" in done.stderr
    assert "train.batch_size=0. Expected an integer >= 1" in done.stderr
    (bad,) = sweep.glob("*train.batch_size=0*")
    (good,) = sweep.glob("*train.batch_size=16*")
    assert (good / "summary.json").exists()
    assert (bad / "error.txt").exists() and not (bad / "summary.json").exists()


def test_failed_jobs_are_listed_by_their_root_cause(tmp_path):
    try:
        try:
            raise ValueError("remainder 'drop': expected (False, False, True).\nDetails")
        except ValueError as cause:
            raise InstantiationException("Error in call to target\nfull_key: remainder") from cause
    except InstantiationException as exc:
        record_failure(tmp_path / "job", exc)
    expected = "ValueError: remainder 'drop': expected (False, False, True)."
    assert failed_jobs(tmp_path) == [(tmp_path / "job", expected)]
    text = (tmp_path / "job" / "error.txt").read_text()
    assert "Traceback" in text and "full_key: remainder" in text  # the whole story stays


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.accumulation_steps=0", r"train.accumulation_steps=0. Expected an integer >= 1"),
        ("train.steps_per_call=0", r"train.steps_per_call=0. Expected"),
        ("eval.onset_delta=-0.5", r"eval.onset_delta=-0.5. Expected a number >= 0"),
        ("train.batch_size=2.5", r"train.batch_size=2.5. Expected an integer >= 1"),
    ],
)
def test_more_invalid_values_refused(tiny_cfg, tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        run(tiny_cfg(override), tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("data.heldout_fraction=1.5", r"data.heldout_fraction=1.5. Expected a number in \(0, 1\)"),
        ("data.heldout_fraction=abc", r"data.heldout_fraction='abc'. Expected a number"),
        ("data.num_classes=2.7", r"data.num_classes=2.7. Expected an integer >= 1, or null"),
    ],
)
def test_invalid_data_values_refused_before_the_folder_is_read(
    tmp_path, override, match, compose_config
):
    folder = tmp_path / "shards"
    folder.mkdir()
    np.savez(folder / "a.npz", array1=np.ones((20, 3), np.float32), array2=np.zeros(20, int))
    cfg = compose_config(
        ["data=npz_dir", f"data.path={folder}", f"paths.data_cache={tmp_path / 'data'}", override]
    )
    with pytest.raises(ValueError, match=match):
        run(cfg, tmp_path / "r")
    assert sorted(p.name for p in folder.iterdir()) == ["a.npz"]  # nothing converted


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["strategy=replay", "strategy.plugins.replay.capacity=-1"], r"capacity=-1"),
        (["strategy=replay", "strategy.plugins.replay.ratio=0.5"], r"exactly one of"),
        (["strategy=ewc", "strategy.plugins.ewc.lam=-1"], r"lam=-1"),
        (["strategy=ewc", "strategy.plugins.ewc.mode=sometimes"], r"mode='sometimes'"),
    ],
)
def test_invalid_strategy_hyperparameters_refused_before_data(tiny_cfg, tmp_path, overrides, match):
    with pytest.raises(Exception, match=match):
        run(tiny_cfg(*overrides), tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert not (tmp_path / "data").exists()  # refused before any data was built


def test_unknown_remainder_policy_refused(tiny_cfg):
    with pytest.raises(ConfigCompositionException, match="sloppy"):
        tiny_cfg("remainder=sloppy")


@pytest.mark.parametrize("reset", [False, True])
def test_optimizer_state_across_shards_is_an_explicit_choice(tiny_cfg, reset):
    cfg = tiny_cfg("optimizer=adam", f"train.reset_optimizer={str(reset).lower()}")
    trainer, *_ = build_trainer(cfg)
    trainer.train()
    last_phase_batches = trainer.phases[-1].feed.batches_per_epoch
    total_batches = sum(p.feed.batches_per_epoch for p in trainer.phases)
    expected = last_phase_batches if reset else total_batches
    assert int(trainer.engine.optimizer.iterations.numpy()) == expected
    # The reset clears state, not hyperparameters: every shard still trains.
    assert float(trainer.engine.optimizer.learning_rate.numpy()) == pytest.approx(
        cfg.optimizer.learning_rate
    )


def test_drop_refuses_a_shard_smaller_than_one_batch(tiny_cfg, tmp_path):
    with pytest.raises(
        ValueError, match=r"Phase 0 \(shard 0\) has \d+ samples: expected at least "
    ):
        run(tiny_cfg("remainder=drop", "train.batch_size=1000"), tmp_path / "r")
    summary = run(tiny_cfg("remainder=weighted", "train.batch_size=1000"), tmp_path / "w")
    assert summary["timing"]["samples_seen"] > 0  # kept as one partial batch per shard


def test_training_time_leaves_out_the_first_evaluation(tiny_cfg):
    import time

    trainer, *_ = build_trainer(tiny_cfg())
    evaluate, calls = trainer.evaluator, []

    def slow_first(net, forward=None):  # the first evaluation traces: slow, and not training
        if not calls:
            time.sleep(1.0)
        calls.append(1)
        return evaluate(net, forward)

    trainer.evaluator = slow_first
    start = time.perf_counter()
    seconds = trainer.train()
    assert 0 < seconds < time.perf_counter() - start - 1.0
