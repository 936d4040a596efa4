import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from forgetbench.config_check import ConfigError
from forgetbench.data.digits import build_digits_permuted, build_digits_split, pixel_permutations
from forgetbench.data.errors import ShardFormatError
from forgetbench.data.fingerprint import fingerprint
from forgetbench.data.npz_dir import build_npz_dir
from forgetbench.data.subset import select_shards
from forgetbench.data.synthetic import build_synthetic
from forgetbench.data.validation import check_fraction, validation_split
from forgetbench.run import run
from forgetbench.run_folder import config_digest


def sorted_rows(x, y):
    table = np.column_stack([np.asarray(x).reshape(len(y), -1), y])
    return table[np.lexsort(table.T[::-1])]


def store_rows(store, k):
    return np.asarray(store.features[k]), np.asarray(store.labels[k])


@pytest.mark.parametrize("seed", range(40))
def test_split_disjoint_sized_deterministic_and_stratified(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=int(rng.integers(40, 200)))
    fraction = float(rng.uniform(0.1, 0.5))
    train, val = validation_split(labels, fraction, seed)
    assert np.intersect1d(train, val).size == 0
    assert np.union1d(train, val).tolist() == list(range(len(labels)))
    assert len(val) == int(len(labels) * fraction + 0.5)
    again = validation_split(labels, fraction, seed)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    # stratified: every class's share of the validation part is its share of the shard (+-1)
    for c in np.unique(labels):
        expected = np.sum(labels == c) * len(val) / len(labels)
        assert abs(np.sum(labels[val] == c) - expected) <= 1


def test_split_seeds_differ_and_bad_fraction_named():
    labels = np.repeat([0, 1], 50)
    assert not np.array_equal(
        validation_split(labels, 0.2, 0)[1], validation_split(labels, 0.2, 1)[1]
    )
    for bad in (-0.1, 1.0, "0.2", True):
        with pytest.raises(ValueError, match="data.validation_fraction.*Received"):
            check_fraction(bad)


def test_default_cache_entry_kept_and_validation_gets_its_own(tmp_path):
    plain = build_digits_split(tmp_path)
    params = {"groups": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]], "heldout_fraction": 0.2}
    digest = hashlib.sha256(json.dumps({**params, "seed": 0}, sort_keys=True).encode())
    assert plain.train.folder.parent.name == f"digits_split-{digest.hexdigest()[:12]}"
    assert plain.validation is None
    split = build_digits_split(tmp_path, validation_fraction=0.25)
    assert split.train.folder.parent != plain.train.folder.parent
    assert "validation" not in fingerprint(plain)["shards"]
    assert set(fingerprint(split)["shards"]) == {"train", "heldout", "validation"}
    for k in range(5):
        x, y = store_rows(plain.train, k)
        tx, ty = store_rows(split.train, k)
        vx, vy = store_rows(split.validation, k)
        assert len(vy) == int(len(y) * 0.25 + 0.5)
        np.testing.assert_array_equal(
            sorted_rows(np.concatenate([tx, vx]), np.concatenate([ty, vy])), sorted_rows(x, y)
        )
        hx, hy = store_rows(split.heldout, k)
        np.testing.assert_array_equal(hx, store_rows(plain.heldout, k)[0])  # test split unchanged
        for c in np.unique(y):  # stratified within the shard
            assert abs(np.sum(vy == c) - np.sum(y == c) * len(vy) / len(y)) <= 1


def test_domain_incremental_validation_rows_shared_by_every_shard(tmp_path):
    ds = build_digits_permuted(tmp_path, num_shards=3, validation_fraction=0.2)
    perms = pixel_permutations(3, True, 0)
    first = store_rows(ds.validation, 0)[0]
    for k in range(1, 3):
        x = store_rows(ds.validation, k)[0]
        np.testing.assert_array_equal(x[:, np.argsort(perms[k])], first)


def test_npz_dir_validation_carved_from_training_part_or_read_from_folder(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d", sizes=(40, 31, 22))
    plain = build_npz_dir(tmp_path / "cache", path=folder)
    ds = build_npz_dir(tmp_path / "cache", path=folder, validation_fraction=0.25)
    np.testing.assert_array_equal(ds.heldout.sizes, plain.heldout.sizes)
    assert ds.validation.sizes.tolist() == [int(n * 0.25 + 0.5) for n in plain.train.sizes]
    for k in range(3):
        tx, ty = store_rows(ds.train, k)
        vx, vy = store_rows(ds.validation, k)
        np.testing.assert_array_equal(
            sorted_rows(np.concatenate([tx, vx]), np.concatenate([ty, vy])),
            sorted_rows(*store_rows(plain.train, k)),
        )
    val_dir = write_shards(tmp_path / "v", sizes=(5, 6, 7), seed=3)
    read = build_npz_dir(tmp_path / "cache", path=folder, validation_dir=val_dir)
    assert read.validation.sizes.tolist() == [5, 6, 7]
    np.testing.assert_array_equal(read.train.sizes, plain.train.sizes)
    (val_dir / "s2.npz").unlink()
    with pytest.raises(ShardFormatError, match=r"Validation folder .*missing \['s2'\]"):
        build_npz_dir(tmp_path / "cache", path=folder, validation_dir=val_dir)


def test_inert_validation_default_keeps_run_ids(tiny_cfg):
    resolved = OmegaConf.to_container(tiny_cfg(), resolve=True)
    assert resolved["data"]["validation_fraction"] == 0.0
    without = json.loads(json.dumps(resolved))
    del without["data"]["validation_fraction"]
    del without["per_strategy"]
    assert config_digest(resolved) == config_digest(without)
    changed = OmegaConf.to_container(tiny_cfg("data.validation_fraction=0.2"), resolve=True)
    assert config_digest(changed) != config_digest(resolved)


def test_run_measures_test_and_validation_in_one_pass(tiny_cfg, tmp_path):
    summary = run(tiny_cfg("data.validation_fraction=0.25"), tmp_path / "run")
    curves = pd.read_parquet(tmp_path / "run" / "curves.parquet")
    assert set(curves["split"]) == {"test", "val"}
    data = build_synthetic(
        tmp_path / "data",
        num_shards=3,
        dim=5,
        samples_per_shard=120,
        heldout_per_shard=40,
        validation_fraction=0.25,
    )
    at_end = curves[curves["samples_seen"] == curves["samples_seen"].max()]
    sizes = at_end.set_index(["split", "eval_shard"])["n_eval"]
    assert sizes["val"].tolist() == data.validation.sizes.tolist()
    assert sizes["test"].tolist() == data.heldout.sizes.tolist()
    metrics = summary["metrics"]
    for name in ("acc", "bwt", "forgetting", "min_acc", "acc_auc"):
        assert name in metrics and f"val_{name}" in metrics
    final = at_end.groupby("split")["accuracy"].mean()
    assert metrics["acc"] == pytest.approx(final["test"])
    assert metrics["val_acc"] == pytest.approx(final["val"])
    assert summary["shards"]["validation_sizes"] == data.validation.sizes.tolist()
    assert np.array(summary["val_accuracy_matrix"]).shape == (3, 3)


def test_shard_range_keeps_a_slice_of_every_split(tmp_path):
    ds = build_digits_split(tmp_path, validation_fraction=0.2)
    first = select_shards(ds, [0, 2])
    rest = select_shards(ds, [2, None])
    assert first.train.names == ds.train.names[:2] and rest.train.names == ds.train.names[2:]
    for split in ("train", "heldout", "validation"):
        whole, part = getattr(ds, split), getattr(rest, split)
        assert part.sizes.tolist() == whole.sizes[2:].tolist()
        np.testing.assert_array_equal(part.load_all()[1], whole.load_all()[1][whole.offsets[2] :])
    assert select_shards(ds, None) is ds
    for bad in ([1], [0, "2"], "0:2"):
        with pytest.raises(ConfigError, match="shard_range"):
            select_shards(ds, bad)
    with pytest.raises(ShardFormatError, match="shard_range=\\[4, 2\\]"):
        select_shards(ds, [4, 2])
