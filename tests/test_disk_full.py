"""A full disk: a clear error naming the place, the space needed and free; nothing left behind."""

import errno
import subprocess
import sys

import numpy as np
import pytest

from forgetbench.data import diskspace
from forgetbench.data.errors import DiskFullError, ShardFormatError
from forgetbench.data.npz_dir import build_npz_dir
from forgetbench.data.store import ShardStore

SIZES = (40, 50, 30)


def no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


def leftovers(folder):
    return sorted(p.name for p in folder.rglob(".*") if p.name != ".forgetbench_cache")


def test_conversion_onto_a_full_disk_names_the_cache_not_the_shard(
    tmp_path, monkeypatch, write_shards
):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    monkeypatch.setattr(diskspace.os, "posix_fallocate", no_space)
    with pytest.raises(DiskFullError) as caught:
        ShardStore(folder)
    text = str(caught.value)
    assert not isinstance(caught.value, ShardFormatError)
    assert "No space left to write member 'array1' of s0.npz" in text
    assert str(folder / ".forgetbench_cache" / "s0.array1.npy") in text
    assert "expected 768 B free there. Received" in text and "data.convert_cache" in text
    assert leftovers(folder) == [] and not list((folder / ".forgetbench_cache").iterdir())
    monkeypatch.undo()  # space freed: the same conversion as on a roomy disk
    again, fresh = ShardStore(folder), ShardStore(write_shards(tmp_path / "e", sizes=SIZES))
    for maps, other in ((again.features, fresh.features), (again.labels, fresh.labels)):
        for k in range(len(maps)):
            np.testing.assert_array_equal(maps[k], other[k])
    assert [s.digest for s in again.shards] == [s.digest for s in fresh.shards]


def test_carve_onto_a_full_disk_checked_before_writing(tmp_path, monkeypatch, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    ShardStore(folder)  # converted while there is space
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 1000)
    with pytest.raises(DiskFullError) as caught:
        build_npz_dir(tmp_path / "cache", path=folder)
    text = str(caught.value)
    assert f"carved train and held-out splits of {folder} at {tmp_path / 'cache'}:" in text
    assert "expected 2.9 kB free there. Received 1.0 kB free" in text
    assert "paths.data_cache" in text and "data.heldout_dir" in text
    assert list((tmp_path / "cache").iterdir()) == []  # no partial folder
    monkeypatch.undo()
    first = build_npz_dir(tmp_path / "cache", path=folder)
    other = build_npz_dir(tmp_path / "other", path=folder)
    for a, b in ((first.train, other.train), (first.heldout, other.heldout)):
        for x, y in zip(a.load_all(), b.load_all(), strict=True):
            np.testing.assert_array_equal(x, y)


def test_carve_reservation_failure_leaves_nothing(tmp_path, monkeypatch, write_shards):
    folder = write_shards(tmp_path / "d", sizes=SIZES)
    ShardStore(folder)
    monkeypatch.setattr(diskspace.os, "posix_fallocate", no_space)
    with pytest.raises(DiskFullError, match=r"a carved split \(s0.array1.npy\)"):
        build_npz_dir(tmp_path / "cache", path=folder)
    assert list((tmp_path / "cache").iterdir()) == []


TMPFS_SCRIPT = """
import sys
from pathlib import Path
from forgetbench.data.npz_dir import build_npz_dir
from forgetbench.data.errors import DiskFullError
try:
    build_npz_dir(sys.argv[2], path=sys.argv[1], convert_cache=sys.argv[3])
except DiskFullError as exc:
    print("DiskFullError:", exc)
    sys.exit(3)
"""


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MB tmpfs (skipped where mounting is not allowed)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("full", ["convert", "carve"])
def test_a_real_full_disk(tmp_path, small_tmpfs, full, write_shards):
    folder = write_shards(tmp_path / "d", sizes=(60_000, 10), dim=4)  # about 1 MB of features
    roomy = tmp_path / "roomy"
    convert, carve = (small_tmpfs, roomy) if full == "convert" else (roomy, small_tmpfs)
    done = subprocess.run(
        [sys.executable, "-c", TMPFS_SCRIPT, str(folder), str(carve), str(convert)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr  # not SIGBUS (-7), not a traceback
    assert f"at {small_tmpfs}" in done.stdout and "free there. Received" in done.stdout
    assert not [p for p in small_tmpfs.rglob("*") if p.is_file()]  # no partial file
