import random

import mnist1d.data
import numpy as np
import pytest

from forgetbench.data.mnist1d import build_mnist1d_split


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("mnist1d tried to download")

    monkeypatch.setattr(mnist1d.data.requests, "get", refuse)


def test_generated_locally_class_incremental_and_cached(tmp_path, no_network):
    ds = build_mnist1d_split(tmp_path, num_samples=200)
    assert ds.num_classes == 10
    assert ds.train.feature_shape == (40,)
    assert [s.classes for s in ds.train.shards] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [s.classes for s in ds.heldout.shards] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert ds.train.sizes.tolist() == [32] * 5 and ds.heldout.sizes.tolist() == [8] * 5
    for k in range(5):  # stratified: 4 held-out samples of each of the shard's two classes
        assert np.bincount(np.asarray(ds.heldout.labels[k])).max() == 4
    x, _ = ds.train.load_all()
    assert x.dtype == np.float32 and np.isfinite(x).all()
    shard = next(tmp_path.glob("mnist1d_split-*")) / "train" / "shard_000.npz"
    stamp = shard.stat().st_mtime_ns
    again = build_mnist1d_split(tmp_path, num_samples=200)
    assert shard.stat().st_mtime_ns == stamp, "cached shards were rewritten"
    np.testing.assert_array_equal(again.train.load_all()[0], x)
    other = build_mnist1d_split(tmp_path, num_samples=200, generation_seed=1)
    assert not np.array_equal(other.train.load_all()[0], x)


def test_generation_leaves_global_random_state_alone(tmp_path):
    random.seed(7)
    np.random.seed(7)
    build_mnist1d_split(tmp_path, num_samples=100)
    after = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)
    assert after == (random.random(), np.random.random())


def test_too_few_samples_refused(tmp_path):
    with pytest.raises(ValueError, match=r"data.num_samples: expected an integer >= 10"):
        build_mnist1d_split(tmp_path, num_samples=5)


def test_domain_incremental_variant(tmp_path):
    kw = {"num_samples": 400, "heldout_fraction": 0.25}
    split = build_mnist1d_split(tmp_path, **kw)
    domain = build_mnist1d_split(tmp_path, domain_incremental=True, **kw)
    assert (split.name, split.num_classes) == ("mnist1d_split", 10)
    assert (domain.name, domain.num_classes) == ("mnist1d_split_domain", 2)
    for k in range(5):
        y_class = np.asarray(split.train.labels[k])
        np.testing.assert_array_equal(
            np.asarray(domain.train.labels[k]), (y_class == 2 * k + 1).astype(np.int64)
        )
