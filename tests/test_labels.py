"""Labels in the formats people store: accepted with a log line, or refused naming every file."""

import logging

import numpy as np
import pytest

from forgetbench.data.errors import LabelFormatError, ShardFormatError
from forgetbench.data.labels import plan
from forgetbench.data.npz_dir import build_npz_dir
from forgetbench.data.store import ShardStore
from forgetbench.data_cli import main

CLASS_IDS = [np.array([0, 1, 1, 0, 1]), np.array([1, 0, 0, 1, 1, 0, 1]), np.array([0, 0, 1])]


@pytest.fixture
def folder_with(tmp_path, write_shards):
    """Returns ``folder_with(make)``: shards whose labels are ``make(class ids)``."""

    def shards(make):
        override = {k: {"array2": make(y)} for k, y in enumerate(CLASS_IDS)}
        return write_shards(tmp_path / "d", override=override)

    return shards


@pytest.mark.parametrize(
    ("make", "mode", "done"),
    [
        (lambda y: y.astype(np.float32), "index", "float32 with whole values cast to int64"),
        (lambda y: y.astype(np.float64)[:, None], "index", "squeezed, float64 with whole"),
        (lambda y: y[:, None], "index", "shape (5, 1) squeezed"),
        (lambda y: y.astype(bool), "index", "bool cast to int64"),
        (lambda y: np.eye(2, dtype=np.float32)[y], "onehot", "one-hot rows of shape (5, 2)"),
        (lambda y: np.eye(3)[y] * 0.6 + 0.1, "argmax", "rows of shape (5, 3) turned"),
    ],
)
def test_common_label_formats_accepted_as_class_ids(
    tmp_path, caplog, make, mode, done, folder_with
):
    folder = folder_with(make)
    with caplog.at_level(logging.INFO, logger="forgetbench.data.shard_cache"):
        store = ShardStore(folder, labels=mode)
    for k, y in enumerate(CLASS_IDS):
        assert store.labels[k].dtype == np.int64 and store.labels[k].shape == y.shape
        np.testing.assert_array_equal(store.labels[k], y)
    assert done in caplog.text and "s0.npz" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="forgetbench.data.shard_cache"):
        again = ShardStore(folder, labels=mode)  # from the cache: no conversion, no log line
    assert caplog.text == "" and again.shards == store.shards


def test_integer_labels_untouched(tmp_path, write_shards):
    store = ShardStore(write_shards(tmp_path / "d"))
    assert all(s.labels.endswith(".array2.npy") for s in store.shards)
    assert not list((tmp_path / "d" / ".forgetbench_cache").glob("*.classes.npy"))


@pytest.mark.parametrize(
    ("make", "mode", "problem", "fix"),
    [
        (
            lambda y: y + 0.5,
            "index",
            "value 0.5 at row 0 is not a whole number",
            ".astype('int64')",
        ),
        (lambda y: np.eye(2)[y], "index", "rows of 2 values", "data.labels=onehot (forgetbench"),
        (lambda y: np.eye(3)[y] * 0.5, "onehot", "is not exactly one-hot", "data.labels=argmax"),
        (lambda y: y.astype(str), "index", "dtype <U", ".astype('int64').ravel()"),
        (lambda y: y[:, None, None], "index", "shape (5, 1, 1)", ".ravel()"),
    ],
)
def test_other_labels_refused_naming_every_file_and_the_fix(
    tmp_path, make, mode, problem, fix, folder_with
):
    folder = folder_with(make)
    with pytest.raises(LabelFormatError) as caught:
        ShardStore(folder, labels=mode)
    text = str(caught.value)
    assert "of 3 shard files" in text and problem in text and fix in text
    assert all(f"s{k}.npz:" in text for k in range(3)), text


def test_only_the_bad_files_named(tmp_path, write_shards):
    override = {0: {"array2": np.arange(5.0) / 4}, 2: {"array2": np.eye(2)[[0, 1, 0]]}}
    folder = write_shards(tmp_path / "d", override=override)
    with pytest.raises(ShardFormatError, match="of 2 shard files") as caught:
        build_npz_dir(tmp_path / "cache", path=folder)
    assert "s0.npz" in str(caught.value) and "s2.npz" in str(caught.value)
    assert "s1.npz" not in str(caught.value)


def test_labels_mode_checked(tmp_path, write_shards):
    with pytest.raises(ValueError, match=r"data.labels .*expected one of \['index', 'onehot'"):
        ShardStore(write_shards(tmp_path / "d"), labels="one-hot")


def test_plan_leaves_class_ids_alone(tmp_path):
    assert plan(np.array([0, 3, 2]), tmp_path / "s.npz", "y") is None


def test_npz_dir_and_check_read_one_hot_labels(tmp_path, capsys, folder_with):
    folder = folder_with(lambda y: np.eye(2, dtype=np.int8)[y])
    data = build_npz_dir(tmp_path / "cache", path=folder, labels="onehot", heldout_fraction=0.3)
    assert data.num_classes == 2 and data.train.num_samples + data.heldout.num_samples == 15
    assert main(["check", str(folder)]) == 1
    err = capsys.readouterr().err
    assert (
        "of 3 shard files" in err
        and "data.labels=onehot (forgetbench-data: --labels onehot)" in err
    )
    assert err.count("To fix") == 1 and err.count("data.labels=onehot") == 1
    assert main(["check", str(folder), "--labels", "onehot"]) == 0
    assert "OK: 3 shards, 15 samples, 2 classes" in capsys.readouterr().out


def test_npy_pair_labels_converted_into_the_cache_not_beside(tmp_path):
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "a.array1.npy", np.ones((4, 2), np.float32))
    np.save(folder / "a.array2.npy", np.array([[0.0], [1.0], [1.0], [0.0]]))
    store = ShardStore(folder)
    np.testing.assert_array_equal(store.labels[0], [0, 1, 1, 0])
    assert np.load(folder / "a.array2.npy").dtype == np.float64  # the user's file untouched
    assert store.shards[0].sources == (str(folder / "a.array1.npy"), str(folder / "a.array2.npy"))
