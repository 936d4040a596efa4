import numpy as np
import pytest

from forgetbench.data.synthetic import build_synthetic, shard_sizes

PARAMS = {"num_shards": 4, "dim": 6, "samples_per_shard": 150, "heldout_per_shard": 30}


def test_files_in_common_layout_and_cached(tmp_path):
    ds = build_synthetic(tmp_path, **PARAMS)
    folders = list(tmp_path.glob("synthetic-*"))
    assert len(folders) == 1
    shard = folders[0] / "train" / "shard_000.npz"
    with np.load(shard) as npz:
        assert set(npz.files) == {"array1", "array2"}
        assert npz["array1"].dtype == np.float32 and npz["array2"].dtype == np.int64
    assert ds.train.num_shards == ds.heldout.num_shards == 4
    assert ds.heldout.sizes.tolist() == [30] * 4
    assert ds.num_classes == 2 and ds.train.classes == [0, 1]
    mtime = shard.stat().st_mtime_ns
    again = build_synthetic(tmp_path, **PARAMS)
    assert shard.stat().st_mtime_ns == mtime, "cached shards were rewritten"
    np.testing.assert_array_equal(again.train.load_all()[0], ds.train.load_all()[0])
    build_synthetic(tmp_path, **{**PARAMS, "drift": 0.5})
    assert len(list(tmp_path.glob("synthetic-*"))) == 2


@pytest.mark.parametrize("seed", range(20))
def test_shard_sizes_uneven_and_not_multiples_of_batch_sizes(seed):
    sizes = shard_sizes(8, 1000, 0.3, np.random.default_rng(seed))
    assert np.all(sizes % 8 != 0)
    assert len(set(sizes.tolist())) > 1
    assert np.all((sizes >= 690) & (sizes <= 1301))


def test_drift_flips_the_boundary_of_last_vs_first_shard(tmp_path):
    # A linear rule fit on the last shard labels the first one mostly wrong (drift = 1 turns
    # the boundary by 180 degrees), while it is near perfect on its own shard.
    ds = build_synthetic(
        tmp_path, **{**PARAMS, "samples_per_shard": 2000, "heldout_per_shard": 500}
    )
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(ds.train.features[-1]), np.asarray(ds.train.labels[-1])
    clf = LogisticRegression().fit(x, y)
    first_x, first_y = np.asarray(ds.heldout.features[0]), np.asarray(ds.heldout.labels[0])
    last_x, last_y = np.asarray(ds.heldout.features[-1]), np.asarray(ds.heldout.labels[-1])
    assert clf.score(last_x, last_y) > 0.9
    assert clf.score(first_x, first_y) < 0.2


def test_rejects_too_small_dimension(tmp_path):
    with pytest.raises(ValueError, match=r"data.dim: expected an integer >= 3. Received: 2"):
        build_synthetic(tmp_path, dim=2)
