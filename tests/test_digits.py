import numpy as np
import pytest

from forgetbench.data.digits import (
    build_digits_permuted,
    build_digits_rotated,
    build_digits_split,
    digits_arrays,
    pixel_permutations,
    rotate,
)
from forgetbench.data.scenarios import class_groups


def arrays(store, k):
    return np.asarray(store.features[k]), np.asarray(store.labels[k])


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return build_digits_split(tmp_path_factory.mktemp("cache"))


def test_split_is_five_disjoint_class_pairs_with_one_head(split):
    assert split.num_classes == 10
    assert split.train.num_shards == split.heldout.num_shards == 5
    assert split.train.feature_shape == (64,)
    pairs = [s.classes for s in split.train.shards]
    assert pairs == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [s.classes for s in split.heldout.shards] == pairs
    x, y = split.train.load_all()
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() == 1.0
    assert split.train.num_samples + split.heldout.num_samples == 1797


def test_split_heldout_is_stratified_and_disjoint_from_training(split):
    x_all, y_all = digits_arrays()
    for k in range(5):
        _, y_train = arrays(split.train, k)
        x_held, y_held = arrays(split.heldout, k)
        counts = np.bincount(y_train, minlength=10) + np.bincount(y_held, minlength=10)
        np.testing.assert_array_equal(counts, np.bincount(y_all, minlength=10) * (counts > 0))
        share = np.bincount(y_held, minlength=10)[counts > 0] / counts[counts > 0]
        assert np.all(np.abs(share - 0.2) < 0.01), share
        assert len(x_held) == pytest.approx(0.2 * counts.sum(), abs=1)
    rows = {r.tobytes() for k in range(5) for r in arrays(split.train, k)[0]}
    held_rows = {r.tobytes() for k in range(5) for r in arrays(split.heldout, k)[0]}
    # Digits has a few duplicate images; the split is by sample, so overlap stays tiny.
    assert len(rows & held_rows) <= 5


def test_split_cache_reused_and_keyed_by_parameters(tmp_path):
    build_digits_split(tmp_path)
    shard = next(tmp_path.glob("digits_split-*")) / "train" / "shard_000.npz"
    stamp = shard.stat().st_mtime_ns
    build_digits_split(tmp_path)
    assert shard.stat().st_mtime_ns == stamp, "cached shards were rewritten"
    other = build_digits_split(tmp_path, class_order=[9, 8, 7, 6, 5, 4], classes_per_shard=3)
    assert len(list(tmp_path.glob("digits_split-*"))) == 2
    assert [s.classes for s in other.train.shards] == [(7, 8, 9), (4, 5, 6)]
    assert other.num_classes == 10


@pytest.mark.parametrize(
    ("order", "per_shard", "match"),
    [
        ([0, 1, 1, 2], 2, r"distinct class ids in \[0, 10\). Received: \[0, 1, 1, 2\]"),
        ([0, 10], 2, r"class_order.*Received: \[0, 10\]"),
        ([0, 1, 2], 2, r"classes_per_shard: expected an integer >= 1 dividing the 3"),
        ([0, 1], 0, r"classes_per_shard.*Received: 0"),
    ],
)
def test_bad_class_groups_refused(order, per_shard, match):
    with pytest.raises(ValueError, match=match):
        class_groups(order, per_shard, 10)


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_bad_heldout_fraction_refused(tmp_path, fraction):
    with pytest.raises(ValueError, match=r"data.heldout_fraction: expected a number in \(0, 1\)"):
        build_digits_split(tmp_path, heldout_fraction=fraction)
    assert not list(tmp_path.glob("digits_split-*"))


def test_permuted_shard_k_is_digits_under_permutation_k(tmp_path):
    ds = build_digits_permuted(tmp_path, num_shards=3, seed=4)
    perms = pixel_permutations(3, identity_first=True, seed=4)
    assert ds.num_classes == 10 and ds.train.num_shards == 3
    np.testing.assert_array_equal(perms[0], np.arange(64))
    assert not np.array_equal(perms[1], perms[2])
    x0, y0 = arrays(ds.train, 0)
    h0, g0 = arrays(ds.heldout, 0)
    x_all, _ = digits_arrays()
    assert {r.tobytes() for r in x0} <= {r.tobytes() for r in x_all}
    for k in (1, 2):
        x, y = arrays(ds.train, k)
        np.testing.assert_array_equal(x, x0[:, perms[k]])
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(arrays(ds.heldout, k)[0], h0[:, perms[k]])
        np.testing.assert_array_equal(arrays(ds.heldout, k)[1], g0)
    assert len(y0) + len(g0) == 1797
    assert not np.array_equal(pixel_permutations(3, False, 4)[0], np.arange(64))


def test_rotated_shard_k_is_digits_rotated_by_angle_k(tmp_path):
    ds = build_digits_rotated(tmp_path, angles=[0, 90, 33])
    x0, y0 = arrays(ds.train, 0)
    for k, angle in ((1, 90.0), (2, 33.0)):
        x, y = arrays(ds.train, k)
        np.testing.assert_allclose(x, rotate(x0, angle))
        np.testing.assert_array_equal(y, y0)
        assert np.abs(x - x0).mean() > 0.05
    # 90 degrees counter-clockwise moves the first image row to the first column, bottom up.
    image = x0[0].reshape(8, 8)
    np.testing.assert_allclose(arrays(ds.train, 1)[0][0].reshape(8, 8)[:, 0], image[0, ::-1])
    assert x0.min() >= 0 and arrays(ds.train, 2)[0].max() <= 1


def test_domain_incremental_split_labels_each_class_by_its_place_in_the_pair(tmp_path, split):
    # Hsu et al.'s domain-IL split: the class-IL shards' samples, labels 0/1 within each pair,
    # one 2-way output shared by every shard.
    domain = build_digits_split(tmp_path, domain_incremental=True)
    assert domain.name == "digits_split_domain" and domain.num_classes == 2
    assert [s.classes for s in domain.train.shards] == [(0, 1)] * 5
    for k, pair in enumerate(class_groups(range(10), 2, 10)):
        for store, same in ((domain.train, split.train), (domain.heldout, split.heldout)):
            x, y = arrays(store, k)
            x_class, y_class = arrays(same, k)
            np.testing.assert_array_equal(x, x_class)
            np.testing.assert_array_equal(y, (y_class == pair[1]).astype(y.dtype))
    shuffled = build_digits_split(
        tmp_path, class_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0], domain_incremental=True
    )
    _, y = arrays(shuffled.train, 0)  # shard 0 holds 9 (label 0) and 8 (label 1)
    _, y_class = arrays(
        build_digits_split(tmp_path, class_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]).train, 0
    )
    np.testing.assert_array_equal(y, (y_class == 8).astype(y.dtype))


@pytest.mark.parametrize(
    "builder", [build_digits_split, build_digits_permuted, build_digits_rotated]
)
def test_image_shape_keeps_the_values_as_8x8_images_under_another_cache_key(tmp_path, builder):
    flat = builder(tmp_path)
    folders = {p.name for p in tmp_path.iterdir()}
    images = builder(tmp_path, image_shape=True)
    assert flat.train.feature_shape == (64,) and images.train.feature_shape == (8, 8)
    assert len({p.name for p in tmp_path.iterdir()} - folders) == 1  # a new folder, the old kept
    for store_flat, store_images in ((flat.train, images.train), (flat.heldout, images.heldout)):
        for k in range(store_flat.num_shards):
            x_flat, y_flat = arrays(store_flat, k)
            x_img, y_img = arrays(store_images, k)
            np.testing.assert_array_equal(x_img.reshape(len(x_img), -1), x_flat)
            np.testing.assert_array_equal(y_img, y_flat)
    builder(tmp_path, image_shape=False)  # off: the flat cache is found again, nothing new
    assert len(list(tmp_path.iterdir())) == len(folders) + 1
