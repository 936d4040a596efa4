import keras
import numpy as np
import pandas as pd
import pytest

from forgetbench.run import run


@pytest.fixture
def quick_run(tmp_path, compose_config, quick_overrides):
    """Returns ``quick_run(name, *overrides)``: runs a quick config into ``tmp_path / name``."""

    def run_quick(name, *overrides):
        cfg = compose_config(
            [*quick_overrides, f"paths.data_cache={tmp_path / 'data'}", *overrides]
        )
        return run(cfg, tmp_path / name)

    return run_quick


@pytest.mark.parametrize(
    ("data", "overrides", "num_shards", "features", "classes"),
    [
        ("digits_split", [], 5, 64, 10),
        ("digits_permuted", ["data.num_shards=2"], 2, 64, 10),
        ("digits_rotated", ["data.angles=[0,90]"], 2, 64, 10),
        ("mnist1d_split", ["data.num_samples=300"], 5, 40, 10),
        ("npz_dir", ["data.num_classes=4"], 3, 4, 4),
    ],
)
def test_run_on_every_dataset(
    tmp_path, keras_session, data, overrides, num_shards, features, classes, write_shards, quick_run
):
    extra = []
    if data == "npz_dir":
        extra = [f"data.path={write_shards(tmp_path / 'shards', sizes=(50, 61, 45))}"]
    summary = quick_run("r", f"data={data}", *extra, *overrides)
    assert summary["status"] == "completed" and summary["dataset"] == data
    assert np.array(summary["accuracy_matrix"]).shape == (num_shards, num_shards)
    assert len(summary["shards"]["train_sizes"]) == num_shards
    net = keras.models.load_model(tmp_path / "r" / "model.keras")
    assert net.input_shape == (None, features) and net.output_shape == (None, classes)


def test_npz_dir_run_with_parallel_heldout_folder(tmp_path, keras_session, write_shards, quick_run):
    train = write_shards(tmp_path / "train", sizes=(50, 61))
    held = write_shards(tmp_path / "held", sizes=(9, 11), seed=1)
    summary = quick_run("r", "data=npz_dir", f"data.path={train}", f"data.heldout_dir={held}")
    assert summary["shards"]["heldout_sizes"] == [9, 11]
    assert summary["shards"]["train_sizes"] == [50, 61]


def test_task_incremental_never_below_class_incremental(tmp_path, keras_session, quick_run):
    # Same seed, same training; only the evaluation differs. Restricting the argmax to a shard's
    # classes can only turn wrong predictions right, and only lowers the cross-entropy.
    base = ["data=digits_split", "data.classes_per_shard=5", "seed=1"]
    one = quick_run("class", *base)
    keras.backend.clear_session()
    task = quick_run("task", *base, "eval.scenario=task_incremental")
    assert task["config"]["eval"]["scenario"] == "task_incremental"
    R_one, R_task = np.array(one["accuracy_matrix"]), np.array(task["accuracy_matrix"])
    assert np.all(R_task >= R_one) and R_task[-1, 0] > R_one[-1, 0]
    curves = {s: pd.read_parquet(tmp_path / s / "curves.parquet") for s in ("class", "task")}
    np.testing.assert_array_equal(curves["class"]["samples_seen"], curves["task"]["samples_seen"])
    assert np.all(curves["task"]["loss"] <= curves["class"]["loss"] + 1e-6)


def test_unknown_scenario_refused(tmp_path, keras_session, quick_run):
    with pytest.raises(ValueError, match=r"eval.scenario='multi_head'. Expected one of"):
        quick_run("r", "eval.scenario=multi_head", "data.num_shards=2")
