"""Where converted shards go: beside the data, a per-user cache for read-only folders, or a root."""

import errno
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from forgetbench.data import cache_location, convert
from forgetbench.data.cache_location import CACHE_FOLDER, keyed_cache
from forgetbench.data.errors import ShardCacheError
from forgetbench.data.npz_dir import build_npz_dir
from forgetbench.data.store import ShardStore
from forgetbench.data_cli import main


@pytest.fixture
def read_only(monkeypatch):
    """Makes folders read-only (``chmod``); as root, which ignores modes, simulates it."""
    made: list[Path] = []
    real = cache_location.writable

    def simulated(path) -> bool:
        path = Path(path).absolute()
        return real(path) and not any(f == path or f in path.parents for f in made)

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o555)
        made.append(folder.absolute())
        if os.geteuid() == 0:
            monkeypatch.setattr(cache_location, "writable", simulated)
        return folder

    yield make
    for folder in made:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    """``$XDG_CACHE_HOME`` in ``tmp_path``; returns the per-user shard cache root."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "forgetbench" / "shards"


def test_read_only_folder_converts_into_the_user_cache(
    tmp_path, read_only, user_cache, caplog, write_shards
):
    folder = read_only(write_shards(tmp_path / "d"))
    with caplog.at_level(logging.INFO, logger="forgetbench.data.cache_location"):
        store = ShardStore(folder)
    assert store.cache == keyed_cache(folder, user_cache)
    assert store.cache.parent == user_cache and store.cache.name.startswith("d-")
    assert str(store.cache) in caplog.text and "data.convert_cache" in caplog.text
    assert not (folder / CACHE_FOLDER).exists()
    with np.load(folder / "s1.npz") as npz:
        np.testing.assert_array_equal(store.features[1], npz["array1"])
    converted = store.cache / "s1.array1.npy"
    mtime = converted.stat().st_mtime_ns
    assert ShardStore(folder).cache == store.cache
    assert converted.stat().st_mtime_ns == mtime, "converted again although nothing changed"


def test_read_only_folder_converted_beforehand_is_used_as_is(
    tmp_path, read_only, user_cache, write_shards
):
    folder = write_shards(tmp_path / "d")
    ShardStore(folder)  # e.g. `forgetbench-data convert` by whoever owns the folder
    read_only(folder)
    store = ShardStore(folder)
    assert store.cache == folder / CACHE_FOLDER
    assert not user_cache.exists()


def test_same_folder_name_elsewhere_gets_its_own_cache(
    tmp_path, read_only, user_cache, write_shards
):
    a = read_only(write_shards(tmp_path / "a" / "d", sizes=(4, 4)))
    b = read_only(write_shards(tmp_path / "b" / "d", sizes=(6, 6)))
    store_a, store_b = ShardStore(a), ShardStore(b)
    assert store_a.cache != store_b.cache
    assert store_a.sizes.tolist() == [4, 4] and store_b.sizes.tolist() == [6, 6]


def test_nothing_writable_is_a_clear_error(tmp_path, read_only, user_cache, write_shards):
    folder = read_only(write_shards(tmp_path / "d"))
    user_cache.mkdir(parents=True)
    read_only(tmp_path / "xdg")
    with pytest.raises(ShardCacheError, match="data.convert_cache") as info:
        ShardStore(folder)
    assert str(folder) in str(info.value) and str(user_cache) in str(info.value)
    with pytest.raises(ShardCacheError, match=str(folder)):
        build_npz_dir(tmp_path / "cache", path=folder)


def test_convert_cache_root_for_training_and_heldout_folders(
    tmp_path, read_only, user_cache, write_shards
):
    train = read_only(write_shards(tmp_path / "train"))
    held = read_only(write_shards(tmp_path / "held", sizes=(2, 2, 2), seed=1))
    root = tmp_path / "root"
    data = build_npz_dir(tmp_path / "cache", path=train, heldout_dir=held, convert_cache=root)
    assert data.train.cache == keyed_cache(train, root)
    assert data.heldout.cache == keyed_cache(held, root)
    assert data.train.cache != data.heldout.cache
    assert data.train.sizes.tolist() == [5, 7, 3] and data.heldout.sizes.tolist() == [2, 2, 2]
    assert not user_cache.exists() and not (train / CACHE_FOLDER).exists()


def test_read_only_convert_cache_root_is_a_clear_error(tmp_path, read_only, write_shards):
    folder = write_shards(tmp_path / "d")
    root = read_only(tmp_path / "root")
    with pytest.raises(ShardCacheError, match=f"cache root {root}"):
        build_npz_dir(tmp_path / "cache", path=folder, convert_cache=root)


def test_a_failed_cache_write_names_the_option(tmp_path, monkeypatch, write_shards):
    folder = write_shards(tmp_path / "d")

    def denied(src, key, dest):
        raise PermissionError(errno.EACCES, "Permission denied", str(dest))

    monkeypatch.setattr(convert, "copy_npz_member", denied)
    with pytest.raises(ShardCacheError, match="data.convert_cache") as info:
        ShardStore(folder)
    assert str(folder / "s0.npz") in str(info.value)


def test_an_explicit_cache_dir_that_cannot_be_made_is_a_clear_error(tmp_path, write_shards):
    # A path below a regular file cannot be created, not even by root.
    folder = write_shards(tmp_path / "d")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ShardCacheError, match="data.convert_cache"):
        ShardStore(folder, cache_dir=blocker / "sub")


def test_config_and_convert_command(
    tmp_path, read_only, user_cache, capsys, compose_config, write_shards
):
    cfg = compose_config(["data=npz_dir", "data.path=/x"])
    assert cfg.data.convert_cache is None
    folder = read_only(write_shards(tmp_path / "d"))
    assert main(["convert", str(folder)]) == 0
    assert str(keyed_cache(folder, user_cache)) in capsys.readouterr().out
    root = tmp_path / "root"
    assert main(["convert", str(folder), "--convert-cache", str(root)]) == 0
    assert str(keyed_cache(folder, root)) in capsys.readouterr().out
    assert main(["check", str(folder), "--convert-cache", str(root)]) == 0
    read_only(tmp_path / "xdg")
    other = read_only(write_shards(tmp_path / "e"))
    assert main(["convert", str(other)]) == 1
    err = capsys.readouterr().err
    assert "data.convert_cache" in err and str(other) in err
