"""Temporaries: the umask's mode, stale ones removed by the next run, live ones kept; caches."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from forgetbench.data import caches
from forgetbench.data.npz_dir import build_npz_dir
from forgetbench.data.store import ShardStore
from forgetbench.data_cli import main
from forgetbench.results.io import write_json
from forgetbench.tempfiles import create_file, is_stale, temporary_folder

KILLED_WRITER = """
import os, signal, sys
from forgetbench.tempfiles import create_file, temporary_folder
if sys.argv[1] == "file":
    fd, path = create_file(sys.argv[2], sys.argv[3], ".tmp.npy")
    os.write(fd, b"half a member")
else:
    building = temporary_folder(sys.argv[2], sys.argv[3])
    folder = building.__enter__()
    (folder / "train").mkdir()
    (folder / "train" / "s0.array1.npy").write_bytes(b"x" * 4096)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_writer(kind, folder, prefix):
    """A temporary left by a process killed with ``kill -9`` while writing it, made old."""
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, kind, str(folder), prefix])
    assert done.returncode == -9
    (left,) = folder.glob(f"{prefix}*")
    old = time.time() - 3600
    for path in [left, *left.rglob("*")]:
        os.utime(path, (old, old))
    return left


@pytest.fixture
def umask_002():
    previous = os.umask(0o002)
    yield
    os.umask(previous)


def test_files_and_folders_take_the_umask(tmp_path, umask_002, write_shards):
    folder = write_shards(tmp_path / "d")
    os.chmod(folder, 0o775)
    store = ShardStore(folder)
    data = build_npz_dir(tmp_path / "cache", path=folder)
    write_json(tmp_path / "summary.json", {"a": 1})
    converted = folder / ".forgetbench_cache" / "s0.array1.npy"
    carved = data.train.shards[0].features
    for path in (converted, folder / ".forgetbench_cache" / "s0.meta.json", carved):
        assert os.stat(path).st_mode & 0o777 == 0o664, path
    assert os.stat(tmp_path / "summary.json").st_mode & 0o777 == 0o664
    assert os.stat(data.train.folder.parent).st_mode & 0o777 == 0o775
    assert store.num_shards == 3


def test_stale_conversion_temporary_removed_live_one_kept(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d")
    cache = folder / ".forgetbench_cache"
    cache.mkdir()
    stale = killed_writer("file", cache, ".s0.array1.npy.")
    fd, live = create_file(cache, ".s1.array1.npy.", ".tmp.npy")  # being written right now
    os.utime(live, (time.time() - 3600,) * 2)
    assert is_stale(stale) and not is_stale(live)
    ShardStore(folder)
    assert not stale.exists() and live.exists()
    os.close(fd)
    assert is_stale(live)


def test_stale_carve_folder_removed_live_one_kept(tmp_path, write_shards):
    folder = write_shards(tmp_path / "d")
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = killed_writer("folder", cache, ".tmp-npz_dir-")
    with temporary_folder(cache, ".tmp-npz_dir-") as live:
        os.utime(live, (time.time() - 3600,) * 2)
        build_npz_dir(cache, path=folder)
        assert not stale.exists() and live.exists()
    assert not live.exists()


def test_young_temporaries_are_not_stale(tmp_path):
    fd, path = create_file(tmp_path, ".x.", ".tmp")
    os.close(fd)
    assert not is_stale(path) and is_stale(path, grace=0)


def test_cache_list_and_clean(tmp_path, capsys, monkeypatch, write_shards):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("FORGETBENCH_DATA_CACHE", str(cache))
    old = build_npz_dir(cache, path=write_shards(tmp_path / "a", sizes=(50, 60)))
    new = build_npz_dir(cache, path=write_shards(tmp_path / "b", sizes=(30, 20)))
    stale = killed_writer("folder", cache, ".tmp-npz_dir-")
    long_ago = time.time() - 10 * 86400
    for path in [old.train.folder.parent, *old.train.folder.parent.rglob("*")]:
        os.utime(path, (long_ago, long_ago))
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"{cache}: holds 3 entries" in out and "unfinished" in out and "ready" in out
    assert str(old.train.folder.parent) in out and " kB " in out
    assert main(["cache", "clean", "--older-than", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{cache}: removed 2 entries" in out and "Freed:" in out
    assert not stale.exists() and not old.train.folder.parent.exists()
    assert new.train.folder.parent.exists()
    assert [e.state for e in caches.entries(cache)] == ["ready"]
    assert main(["cache", "clean", str(tmp_path / "b")]) == 0  # a shard folder's own cache
    assert not (tmp_path / "b" / ".forgetbench_cache").exists()
    assert json.loads((new.train.folder.parent / "params.json").read_text())["seed"] == 0
    np.testing.assert_array_equal(new.train.sizes, [24, 16])
