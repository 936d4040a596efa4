import json

import keras
import numpy as np
import pandas as pd
import pytest

from forgetbench.memory import rss_anon_mb
from forgetbench.results.run_files import read_summary
from forgetbench.run import run
from forgetbench.strategies.catalog import strategy_names

CURVE_COLUMNS = [
    "run_id",
    "dataset",
    "strategy",
    "remainder",
    "seed",
    "step",
    "samples_seen",
    "epoch",
    "train_shard",
    "eval_shard",
    "accuracy",
    "loss",
    "n_eval",
]
SUMMARY_KEYS = [
    "status",
    "run_id",
    "metrics",
    "accuracy_matrix",
    "init_accuracy",
    "onset",
    "timing",
    "peak_memory_mb",
    "peak_rss_mb",
    "config",
    "boundaries",
    "phases",
]


STRATEGIES = strategy_names()  # every conf/strategy/*.yaml
# Three runs of pnn take about 26 s; tests/test_pnn.py checks its determinism in a fast test.
SLOW_THREE_RUNS = {"pnn"}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_run_writes_contract_files(tiny_cfg, tmp_path, strategy):
    out = tmp_path / "run"
    summary = run(tiny_cfg(f"strategy={strategy}"), out)
    assert {p.name for p in out.iterdir()} >= {
        "curves.parquet",
        "summary.json",
        "model.keras",
        "curves.png",
        "curves.pdf",
    }
    curves = pd.read_parquet(out / "curves.parquet")
    assert list(curves.columns[: len(CURVE_COLUMNS)]) == CURVE_COLUMNS
    on_disk = json.loads((out / "summary.json").read_text())
    assert read_summary(out) == summary  # the summary with the tables beside it put back
    assert on_disk["accuracy_matrix"] == {"file": "matrix.parquet", "shape": [3, 3]}
    assert on_disk["shards"]["count"] == 3 and on_disk["train_log"]["file"] == "train_log.parquet"
    assert {"matrix.parquet", "shards.parquet", "train_log.parquet"} <= {
        p.name for p in out.iterdir()
    }
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert summary["status"] == "completed"
    if rss_anon_mb() is not None:  # Linux: anonymous peak, at most the peak resident set
        assert 0 < summary["peak_memory_mb"] <= summary["peak_rss_mb"]
    assert set(summary["metrics"]) >= {"acc", "bwt", "fwt", "forgetting"}
    R = np.array(summary["accuracy_matrix"])
    assert R.shape == (3, 3)
    assert summary["metrics"]["acc"] == pytest.approx(R[-1].mean())
    # Every shard is evaluated at every point, at init and at each phase boundary.
    assert curves.groupby("samples_seen").size().eq(3).all()
    assert curves["samples_seen"].min() == 0
    total = sum(summary["shards"]["train_sizes"])
    assert summary["timing"]["samples_seen"] == total
    points = np.sort(curves["samples_seen"].unique())
    for boundary in summary["boundaries"]:  # evaluated at, or within one batch after, each
        first = points[np.searchsorted(points, boundary)]
        assert boundary <= first < boundary + 16
    assert (curves["n_eval"] == 40).all()
    assert len(summary["train_log"]) == (3 if strategy not in ("cross_shard", "joint") else 1)
    if strategy not in ("cross_shard", "joint"):
        assert curves["train_shard"].dropna().unique().tolist() == [0, 1, 2]
        bounds = np.cumsum(summary["shards"]["train_sizes"]).tolist()
        assert summary["boundaries"] == bounds
        assert set(bounds) <= set(points)
    else:
        assert curves["train_shard"].isna().all()
    net = keras.models.load_model(out / "model.keras")
    outputs = net.output_shape if isinstance(net.output_shape, list) else [net.output_shape]
    assert outputs == [(None, 2)] * len(outputs)  # progressive networks: one per column


def test_interval_evaluation_counts_real_samples(tiny_cfg, tmp_path):
    summary = run(
        tiny_cfg("strategy=cross_shard", "eval.every_samples=64", "train.batch_size=32"),
        tmp_path / "r",
    )
    curves = pd.read_parquet(tmp_path / "r" / "curves.parquet")
    points = sorted(curves["samples_seen"].unique())
    total = summary["timing"]["samples_seen"]
    expected = sorted({0, *range(64, total + 1, 64), *summary["boundaries"], total})
    # With batches of 32 every multiple of 64 is reached exactly; boundaries at the next batch.
    assert set(range(64, total + 1, 64)) <= set(points)
    assert len(points) <= len(expected)


def test_epochs_zero_saves_the_initialised_model(tiny_cfg, tmp_path):
    summary = run(tiny_cfg("train.epochs=0"), tmp_path / "r")
    curves = pd.read_parquet(tmp_path / "r" / "curves.parquet")
    assert curves["samples_seen"].unique().tolist() == [0]
    assert summary["metrics"]["acc"] == pytest.approx(np.mean(summary["init_accuracy"]))
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    from forgetbench.train.networks import mlp

    fresh = mlp((5,), 2, hidden=[8])
    saved = keras.models.load_model(tmp_path / "r" / "model.keras")
    for a, b in zip(fresh.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "strategy",
    [pytest.param(s, marks=pytest.mark.slow) if s in SLOW_THREE_RUNS else s for s in STRATEGIES],
)
def test_same_seed_same_curves_and_other_seed_differs(tiny_cfg, tmp_path, strategy):
    run(tiny_cfg(f"strategy={strategy}", "seed=4"), tmp_path / "a")
    run(tiny_cfg(f"strategy={strategy}", "seed=4"), tmp_path / "b")
    run(tiny_cfg(f"strategy={strategy}", "seed=5"), tmp_path / "c")
    a, b, c = (pd.read_parquet(tmp_path / x / "curves.parquet") for x in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["loss"], c["loss"])


def test_replay_and_ewc_report_their_state(tiny_cfg, tmp_path):
    summary = run(
        tiny_cfg(
            "strategy=replay_ewc",
            "strategy.plugins.replay.capacity=50",
            "strategy.plugins.replay.size=null",
            "strategy.plugins.replay.ratio=0.5",
        ),
        tmp_path / "r",
    )
    replay, ewc = summary["strategy_info"]["replay"], summary["strategy_info"]["ewc"]
    assert replay["buffer_size"] == 50 and replay["buffer_bytes"] == 50 * (5 * 4 + 8 + 4)
    assert [p["replayed_per_batch"] for p in replay["phases"]] == [0, 8, 8]  # 0.5 * 16
    assert sum(replay["per_shard"].values()) == 50
    assert [p["fisher_samples"] for p in ewc["fisher_per_phase"]] == summary["shards"][
        "train_sizes"
    ]
    assert all(p["fisher_sum"] > 0 for p in ewc["fisher_per_phase"])
    penalties = [e["penalty"] for e in summary["train_log"]]
    assert penalties[0] == 0 and all(p > 0 for p in penalties[1:])
    # The x-axis counts new samples only: replayed ones are not in samples_seen.
    assert summary["timing"]["samples_seen"] == sum(summary["shards"]["train_sizes"])


def test_finished_run_is_not_redone(tiny_cfg, tmp_path):
    first = run(tiny_cfg(), tmp_path / "r")
    stamp = (tmp_path / "r" / "curves.parquet").stat().st_mtime_ns
    again = run(tiny_cfg(), tmp_path / "r")
    assert again == first
    assert (tmp_path / "r" / "curves.parquet").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.batch_size=0", r"train.batch_size=0. Expected an integer >= 1"),
        ("eval.every_samples=0", r"eval.every_samples=0. Expected an integer >= 1"),
        ("train.epochs=-1", r"train.epochs=-1. Expected an integer >= 0"),
    ],
)
def test_invalid_config_refused_before_any_work(tiny_cfg, tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        run(tiny_cfg(override), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_run_id_ignores_where_files_go_but_not_what_is_computed(tiny_cfg, tmp_path):
    from forgetbench.run import run_id

    def rid(*overrides):
        return run_id(tiny_cfg(*overrides), "sequential", "toy", "weighted")

    base = rid()
    assert rid(f"paths.data_cache={tmp_path / 'elsewhere'}", "train.verbose=0") == base
    assert rid("train.batch_size=7") != base


def test_the_run_figure_can_be_left_out_without_changing_the_run(tiny_cfg, tmp_path):
    with_figure = run(tiny_cfg(), tmp_path / "a")
    without = run(tiny_cfg("output.run_figure=false"), tmp_path / "b")
    assert not (tmp_path / "b" / "curves.png").exists()
    assert not (tmp_path / "b" / "curves.pdf").exists()
    assert (tmp_path / "b" / "summary.json").exists() and (tmp_path / "b" / "model.keras").exists()
    assert without["run_id"] == with_figure["run_id"]  # a setting only: the same run
    assert without["metrics"] == with_figure["metrics"]
