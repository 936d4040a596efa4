import os

import numpy as np
import pytest

from forgetbench.data import shard_checks
from forgetbench.data.errors import ShardFormatError
from forgetbench.data.npz_dir import build_npz_dir

SIZES = (20, 31, 12)


def rows(store, k):
    return np.asarray(store.features[k]), np.asarray(store.labels[k])


def sorted_rows(x, y):
    table = np.column_stack([x, y])
    return table[np.lexsort(table.T[::-1])]


def test_file_name_order_and_carved_heldout(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    ds = build_npz_dir(tmp_path / "cache", path=folder)
    assert ds.name == "npz_dir" and ds.num_classes == 3
    assert ds.train.names == ds.heldout.names == ["s0", "s1", "s2"]
    assert ds.heldout.sizes.tolist() == [4, 6, 2]
    assert ds.train.sizes.tolist() == [16, 25, 10]
    for k, name in enumerate(ds.train.names):
        with np.load(folder / f"{name}.npz") as npz:
            original = sorted_rows(npz["array1"], npz["array2"])
        x, y = rows(ds.train, k)
        hx, hy = rows(ds.heldout, k)
        np.testing.assert_array_equal(
            sorted_rows(np.concatenate([x, hx]), np.concatenate([y, hy])), original
        )
    assert all(isinstance(f, np.memmap) for f in [*ds.train.features, *ds.heldout.features])


def test_carve_is_seeded_cached_and_per_shard(tmp_path, monkeypatch, write_shards):
    monkeypatch.setattr(shard_checks, "STATS_CHUNK_BYTES", 40)  # copy in chunks of a few rows
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    cache = tmp_path / "cache"
    a = build_npz_dir(cache, path=folder, seed=1)
    carved = next(cache.glob("npz_dir-*")) / "heldout" / "s1.array1.npy"
    stamp = carved.stat().st_mtime_ns
    again = build_npz_dir(cache, path=folder, seed=1)
    assert carved.stat().st_mtime_ns == stamp, "the carve was redone"
    np.testing.assert_array_equal(again.heldout.load_all()[0], a.heldout.load_all()[0])
    reordered = build_npz_dir(cache, path=folder, seed=1, order=["s2", "s1"])
    assert reordered.train.names == ["s2", "s1"]
    np.testing.assert_array_equal(rows(reordered.heldout, 1)[0], rows(a.heldout, 1)[0])
    other = build_npz_dir(cache, path=folder, seed=2)
    assert not np.array_equal(other.heldout.load_all()[0], a.heldout.load_all()[0])
    fraction = build_npz_dir(cache, path=folder, heldout_fraction=0.5)
    assert fraction.heldout.sizes.tolist() == [10, 16, 6]


def test_changed_shard_invalidates_conversion_and_carve(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    build_npz_dir(tmp_path / "cache", path=folder)
    np.savez(folder / "s0.npz", array1=np.full((10, 4), 7.0, np.float32), array2=np.ones(10, int))
    st = (folder / "s0.npz").stat()
    os.utime(folder / "s0.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds = build_npz_dir(tmp_path / "cache", path=folder)
    assert ds.train.sizes[0] + ds.heldout.sizes[0] == 10
    assert (rows(ds.heldout, 0)[0] == 7.0).all()


def test_custom_keys_npy_pairs_and_order(tmp_path):
    folder = tmp_path / "npy"
    folder.mkdir()
    for name, n, label in (("day2", 6, 4), ("day1", 5, 1)):
        np.save(folder / f"{name}.x.npy", np.full((n, 2, 3), label, np.float64))
        np.save(folder / f"{name}.y.npy", np.full(n, label, np.int32))
    ds = build_npz_dir(
        tmp_path / "cache", path=folder, feature_key="x", label_key="y", order=["day2", "day1"]
    )
    assert ds.train.names == ["day2", "day1"]
    assert ds.train.feature_shape == (2, 3)
    assert [s.classes for s in ds.train.shards] == [(4,), (1,)]
    assert ds.num_classes == 5
    assert (rows(ds.heldout, 0)[0] == 4).all() and rows(ds.heldout, 0)[1].dtype == np.int32


def test_custom_keys_in_npz(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    np.savez(folder / "a.npz", feats=np.ones((5, 2), np.float32), target=np.arange(5))
    ds = build_npz_dir(tmp_path / "cache", path=folder, feature_key="feats", label_key="target")
    assert ds.train.num_samples + ds.heldout.num_samples == 5
    with pytest.raises(ShardFormatError, match=r"a.npz. Expected key 'array1'.*'feats'"):
        build_npz_dir(tmp_path / "cache", path=folder)


def test_heldout_from_parallel_folder(tmp_path, write_shards):
    train = write_shards(tmp_path / "train", sizes=SIZES, seed=0)
    held = write_shards(tmp_path / "held", sizes=(3, 4, 5), seed=1)
    ds = build_npz_dir(tmp_path / "cache", path=train, heldout_dir=held, order=["s1", "s0", "s2"])
    assert ds.train.sizes.tolist() == [31, 20, 12]
    assert ds.heldout.sizes.tolist() == [4, 3, 5]
    assert ds.heldout.names == ["s1", "s0", "s2"]
    assert not (tmp_path / "cache").exists(), "nothing to carve"


def test_heldout_folder_must_match_shard_names(tmp_path, write_shards):
    train = write_shards(tmp_path / "train", sizes=SIZES)
    held = write_shards(tmp_path / "held", sizes=(3, 4))
    with pytest.raises(ShardFormatError, match=r"held: expected one shard per training.*\['s2'\]"):
        build_npz_dir(tmp_path / "cache", path=train, heldout_dir=held)
    np.savez(held / "s2.npz", array1=np.ones((2, 4), np.float32), array2=np.zeros(2, int))
    np.savez(held / "zz.npz", array1=np.ones((2, 4), np.float32), array2=np.zeros(2, int))
    with pytest.raises(ShardFormatError, match=r"no training shard for \['zz'\]"):
        build_npz_dir(tmp_path / "cache", path=train, heldout_dir=held)


def test_heldout_folder_with_other_feature_shape(tmp_path, write_shards):
    train = write_shards(tmp_path / "train", sizes=SIZES, dim=4)
    held = write_shards(tmp_path / "held", sizes=(3, 4, 5), dim=5)
    with pytest.raises(ShardFormatError, match=r"held: expected feature shape \(4,\)"):
        build_npz_dir(tmp_path / "cache", path=train, heldout_dir=held)


def test_num_classes_given_and_labels_out_of_range(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)  # labels 0..2
    assert build_npz_dir(tmp_path / "cache", path=folder, num_classes=7).num_classes == 7
    expected = r"Labels in .*/d/s\d.npz: expected class ids below num_classes=2. Received label 2"
    with pytest.raises(ShardFormatError, match=expected):
        build_npz_dir(tmp_path / "cache", path=folder, num_classes=2)
    held = write_shards(tmp_path / "held", sizes=(3, 4, 5), override={2: {"array2": np.full(5, 9)}})
    with pytest.raises(ShardFormatError, match=r"Labels in .*/held/s2.npz: .*Received label 9"):
        build_npz_dir(tmp_path / "cache", path=folder, heldout_dir=held, num_classes=3)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({1: {"array2": np.arange(31.0) / 2}}, r"s1.npz: float64 value 0.5 at row 1 is not"),
        ({1: {"array1": np.zeros((31, 5), np.float32)}}, r"s1.npz: expected feature_shape"),
        ({2: {"array2": np.zeros(12, np.int32)}}, r"s2.npz: expected label_dtype int64"),
        ({0: {"array1": np.zeros((0, 4), np.float32), "array2": np.zeros(0, int)}}, r"Empty"),
        (
            {0: {"array1": np.ones((1, 4), np.float32), "array2": np.zeros(1, int)}},
            r"s0.npz: expected at least 2 samples to carve a held-out split.*Received 1",
        ),
        ({1: {"array1": np.full((31, 4), np.nan, np.float32)}}, r"s1.npz: expected finite"),
    ],
)
def test_bad_shards_refused_naming_the_file(tmp_path, override, match, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES, override=override)
    with pytest.raises(ShardFormatError, match=match):
        build_npz_dir(tmp_path / "cache", path=folder)


def test_nonfinite_features_accepted_when_allowed(tmp_path, write_shards):
    bad = {1: {"array1": np.full((31, 4), np.inf, np.float32)}}
    folder = write_shards(tmp_path / "d", sizes=SIZES, override=bad)
    ds = build_npz_dir(tmp_path / "cache", path=folder, allow_nonfinite=True)
    assert np.isinf(rows(ds.heldout, 1)[0]).all()


def test_truncated_npy_and_missing_label_file(tmp_path):
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "a.array1.npy", np.ones((50, 4), np.float32))
    np.save(folder / "a.array2.npy", np.zeros(50, np.int64))
    data = (folder / "a.array1.npy").read_bytes()
    (folder / "a.array1.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardFormatError, match=r"Corrupt or truncated shard file .*a.array1.npy"):
        build_npz_dir(tmp_path / "cache", path=folder)
    np.save(folder / "b.array1.npy", np.ones((5, 4), np.float32))
    (folder / "a.array1.npy").unlink()
    with pytest.raises(ShardFormatError, match=r"Labels files without features.*a.array2.npy"):
        build_npz_dir(tmp_path / "cache", path=folder)
    (folder / "a.array2.npy").unlink()
    with pytest.raises(ShardFormatError, match=r"b.array1.npy: expected labels file b.array2.npy"):
        build_npz_dir(tmp_path / "cache", path=folder)


@pytest.mark.parametrize("num_classes", [2.7, 0, "3", True])
def test_num_classes_must_be_a_positive_integer(tmp_path, num_classes, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    with pytest.raises(ValueError, match=r"data.num_classes: expected a positive integer"):
        build_npz_dir(tmp_path / "cache", path=folder, num_classes=num_classes)


def test_a_stray_huge_label_does_not_size_the_output_layer(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES, override={1: {"array2": np.full(31, 2**40)}})
    with pytest.raises(ShardFormatError, match=r"Labels of .*s1.npz: .*Received 1099511627776"):
        build_npz_dir(tmp_path / "cache", path=folder)
    ds = build_npz_dir(tmp_path / "cache", path=folder, num_classes=2**40 + 1)  # when meant
    assert ds.num_classes == 2**40 + 1


@pytest.mark.parametrize("fraction", ["abc", None, True])
def test_heldout_fraction_must_be_a_number(tmp_path, fraction, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    with pytest.raises(ValueError, match=r"data.heldout_fraction: expected a number in \(0, 1\)"):
        build_npz_dir(tmp_path / "cache", path=folder, heldout_fraction=fraction)


def test_heldout_dir_equal_to_the_training_folder_warns(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    with pytest.warns(UserWarning, match=r"heldout_dir is the training folder"):
        build_npz_dir(tmp_path / "cache", path=folder, heldout_dir=folder)


def test_folder_without_shards(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no shards here")
    with pytest.raises(ShardFormatError, match=r"Expected shard files in .*empty"):
        build_npz_dir(tmp_path / "cache", path=tmp_path / "empty")
