import os
import zipfile

import numpy as np
import pytest

from forgetbench.data.errors import ShardFormatError
from forgetbench.data.store import ShardStore


def test_npz_members_converted_once_to_memory_mapped_npy(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d")
    store = ShardStore(folder)
    assert store.names == ["s0", "s1", "s2"]
    assert store.sizes.tolist() == [5, 7, 3]
    assert store.offsets.tolist() == [0, 5, 12, 15]
    assert all(isinstance(f, np.memmap) for f in store.features)
    with np.load(folder / "s1.npz") as npz:
        np.testing.assert_array_equal(store.features[1], npz["array1"])
        np.testing.assert_array_equal(store.labels[1], npz["array2"])
    cached = folder / ".forgetbench_cache" / "s1.array1.npy"
    mtime = cached.stat().st_mtime_ns
    ShardStore(folder)
    assert cached.stat().st_mtime_ns == mtime, "cache was rebuilt although the source is unchanged"


def test_cache_invalidated_by_a_copy_that_keeps_size_and_mtime(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d")
    ShardStore(folder)
    old = (folder / "s0.npz").stat()
    new = np.full((5, 4), 3.0, np.float32)  # same shapes and dtypes: the same file size
    np.savez(folder / "s0.npz", array1=new, array2=np.ones(5, np.int64))
    os.utime(folder / "s0.npz", ns=(old.st_atime_ns, old.st_mtime_ns))  # as cp -p leaves it
    assert (folder / "s0.npz").stat().st_size == old.st_size
    store = ShardStore(folder)
    np.testing.assert_array_equal(store.features[0], new)
    np.testing.assert_array_equal(store.labels[0], np.ones(5))


def test_damaged_converted_member_is_converted_again(tmp_path, caplog, write_shards):
    folder = write_shards(tmp_path / "d")
    ShardStore(folder)
    member = folder / ".forgetbench_cache" / "s1.array1.npy"
    member.write_bytes(member.read_bytes()[:100])
    store = ShardStore(folder)
    with np.load(folder / "s1.npz") as npz:
        np.testing.assert_array_equal(store.features[1], npz["array1"])
    assert "damaged" in caplog.text and "s1.npz" in caplog.text


def test_cache_invalidated_when_source_changes(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d")
    ShardStore(folder)
    new = np.full((9, 4), 2.5, np.float32)
    np.savez(folder / "s0.npz", array1=new, array2=np.zeros(9, np.int64))
    st = (folder / "s0.npz").stat()
    os.utime(folder / "s0.npz", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    store = ShardStore(folder)
    assert store.sizes[0] == 9
    np.testing.assert_array_equal(store.features[0], new)


def test_gather_across_shards_matches_concatenation(tmp_path, write_shards):
    store = ShardStore(write_shards(tmp_path / "d"))
    x_all, y_all = store.load_all()
    idx = np.array([0, 4, 5, 11, 12, 14])
    x, y = store.gather(idx)
    np.testing.assert_array_equal(x, x_all[idx])
    np.testing.assert_array_equal(y, y_all[idx])
    assert store.shard_ids().tolist() == [0] * 5 + [1] * 7 + [2] * 3


def test_npy_pairs_and_custom_keys_and_order(tmp_path):
    folder = tmp_path / "npy"
    folder.mkdir()
    for name, n in (("b", 3), ("a", 2)):
        np.save(folder / f"{name}.x.npy", np.ones((n, 2), np.float32))
        np.save(folder / f"{name}.y.npy", np.zeros(n, np.int32))
    store = ShardStore(folder, feature_key="x", label_key="y", order=["b", "a"])
    assert store.names == ["b", "a"]
    assert store.sizes.tolist() == [3, 2]


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({1: {"array2": np.arange(7.0) + 0.5}}, r"s1.npz: float64 value 0.5 at row 0 is not"),
        ({1: {"array2": -np.ones(7, np.int64)}}, r"expected class ids >= 0"),
        (
            {1: {"array1": np.zeros((7, 5), np.float32)}},
            r"s1.npz: expected feature_shape \(4,\).*Received \(5,\)",
        ),
        ({2: {"array2": np.zeros(3, np.int32)}}, r"s2.npz: expected label_dtype int64"),
        (
            {0: {"array1": np.zeros((0, 4), np.float32), "array2": np.zeros(0, np.int64)}},
            r"Empty shard .*s0.npz",
        ),
        ({0: {"array2": np.zeros(4, np.int64)}}, r"s0.npz: expected as many labels"),
        ({1: {"array1": np.full((7, 4), np.nan, np.float32)}}, r"s1.npz: expected finite"),
        ({1: {"array1": np.zeros(7, np.float32)}}, r"at least 2 dimensions"),
        (
            {1: {"array1": np.ones((7, 4), np.complex64)}},
            r"'array1' in .*s1.npz: expected a real numeric dtype.*Received dtype complex64",
        ),
        ({1: {"array1": np.full((7, 4), "x")}}, r"s1.npz: expected a real numeric.*<U1"),
        (
            {1: {"array1": np.ones((7, 4), object)}},
            r"s1.array1.npy \(from .*s1.npz\): expected a numeric array. Received dtype object",
        ),
    ],
)
def test_validation_errors_name_file_and_expectation(tmp_path, override, match, write_shards):
    folder = write_shards(tmp_path / "d", override=override)
    with pytest.raises(ShardFormatError, match=match):
        ShardStore(folder)


def test_nonfinite_allowed_when_asked(tmp_path, write_shards):
    folder = write_shards(
        tmp_path / "d", override={1: {"array1": np.full((7, 4), np.inf, np.float32)}}
    )
    assert ShardStore(folder, allow_nonfinite=True).num_samples == 15


def test_missing_key(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    np.savez(folder / "s0.npz", features=np.zeros((2, 2)), array2=np.zeros(2, np.int64))
    with pytest.raises(ShardFormatError, match=r"s0.npz. Expected key 'array1'.*'features'"):
        ShardStore(folder)


def test_corrupt_and_truncated_files(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d")
    data = (folder / "s1.npz").read_bytes()
    (folder / "s1.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardFormatError, match=r"Corrupt or truncated shard file .*s1.npz"):
        ShardStore(folder)
    (folder / "s1.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ShardFormatError, match=r"s1.npz"):
        ShardStore(folder)
    assert zipfile.is_zipfile(folder / "s0.npz")


def test_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardFormatError, match=r"Expected shard files in .*empty"):
        ShardStore(tmp_path / "empty")
    with pytest.raises(ShardFormatError, match=r"not a folder"):
        ShardStore(tmp_path / "nope")


def test_unknown_shard_in_order(tmp_path, write_shards):
    with pytest.raises(ShardFormatError, match=r"\['zz'\]"):
        ShardStore(write_shards(tmp_path / "d"), order=["s0", "zz"])


@pytest.mark.parametrize(
    ("order", "match"),
    [
        ("s0", r"expected a list of shard names. Received the string 's0'"),
        (["s0", "s1", "s0"], r"expected each shard at most once. Received \['s0'\]"),
    ],
)
def test_order_must_be_a_list_of_distinct_names(tmp_path, order, match, write_shards):
    with pytest.raises(ShardFormatError, match=match):
        ShardStore(write_shards(tmp_path / "d"), order=order)


def test_files_that_are_not_shards_are_named(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d", sizes=(5,))
    np.save(folder / "plain.npy", np.zeros(3))
    (folder / "UPPER.NPZ").write_bytes((folder / "s0.npz").read_bytes())
    (folder / "notes.txt").write_text("not data")
    with pytest.warns(UserWarning, match=r"files not read.*\['UPPER.NPZ', 'plain.npy'\]"):
        assert ShardStore(folder).names == ["s0"]
    np.save(folder / "t.array2.npy", np.zeros(3, np.int64))
    with pytest.raises(
        ShardFormatError, match=r"Labels files without features.*\['t.array2.npy'\]"
    ):
        ShardStore(folder)
    with pytest.raises(ShardFormatError, match=r"different keys.*Received 'k' for both"):
        ShardStore(folder, feature_key="k", label_key="k")


def test_gather_any_order_into_out_arrays(tmp_path, write_shards):
    store = ShardStore(write_shards(tmp_path / "d"))
    x_all, y_all = store.load_all()
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = rng.choice(store.num_samples, size=rng.integers(1, store.num_samples), replace=False)
        x, y = store.gather(idx)
        np.testing.assert_array_equal(x, x_all[idx])
        np.testing.assert_array_equal(y, y_all[idx])
        out = (np.full((len(idx), *store.feature_shape), -1.0, np.float32), np.zeros(len(idx)))
        got = store.gather(idx, out=out)
        assert got[0] is out[0] and got[1] is out[1]
        np.testing.assert_array_equal(out[0], x_all[idx].astype(np.float32))
        np.testing.assert_array_equal(out[1], y_all[idx])
