"""Converting a shard's ``.npz`` members into memory-mappable ``.npy`` files in its cache.

Each member is streamed once into the cache (its space reserved first, so a full disk is named
as such, never blamed on the shard), hashed on the way (the shard's content digest), and written
atomically; a conversion killed half-way leaves a temporary that the next conversion removes.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import zipfile
import zlib
from pathlib import Path

from forgetbench.data import diskspace
from forgetbench.data.errors import DiskFullError, ShardFormatError
from forgetbench.results.io import atomic_path
from forgetbench.tempfiles import remove_stale

CACHE_OPTION = "data.convert_cache (forgetbench-data: --convert-cache)"
DISK_FIX = f"Free some space there, or set {CACHE_OPTION} to a folder on a larger disk."
COPY_BYTES = 16 * 2**20

log = logging.getLogger(__name__)


def copy_npz_member(src: Path, key: str, dest: Path) -> str:
    """Streams member ``key`` of ``src`` into ``dest``; returns the digest of its bytes.

    An ``.npz`` member is an ``.npy`` file. Its space is reserved before the copy.

    Raises:
        DiskFullError: naming ``dest``, the space needed and free (not the shard: it is fine).
    """
    size = 0
    try:
        with zipfile.ZipFile(src) as archive:
            members = {Path(m).stem for m in archive.namelist()}
            if key not in members:
                raise ShardFormatError(
                    f"Missing key in {src}. Expected key '{key}'. Received keys: {sorted(members)}"
                )
            size = archive.getinfo(f"{key}.npy").file_size
            digest = hashlib.sha256()  # hardware-accelerated on current CPUs
            with (
                atomic_path(dest) as tmp,
                archive.open(f"{key}.npy") as member,
                open(tmp, "r+b") as out,
            ):
                what = f"member '{key}' of {src.name} (converted for memory mapping)"
                diskspace.reserve(out.fileno(), size, dest, what, DISK_FIX)
                while chunk := member.read(COPY_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()
    except DiskFullError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        if diskspace.is_full(exc):  # writing the cache, never the shard's fault
            what = f"member '{key}' of {src.name}"
            raise diskspace.disk_full(dest, size, what, DISK_FIX) from exc
        if denied(exc) and within(exc.filename, dest.parent):
            raise  # writing the cache, not reading the shard: see prepare_shard
        raise ShardFormatError(
            f"Corrupt or truncated shard file {src}: expected a readable .npz archive. "
            f"Received error: {exc}"
        ) from exc


def copy_npz_members(src: Path, paths: dict[str, Path]) -> list[str]:
    """Converts every member of ``paths``; on any failure none of them is left in the cache."""
    try:
        return [copy_npz_member(src, key, dest) for key, dest in paths.items()]
    except Exception:
        for dest in paths.values():
            dest.unlink(missing_ok=True)
        raise


def denied(exc: BaseException) -> bool:
    """A permission error, or a write to a read-only file system."""
    return isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def within(filename, folder: Path) -> bool:
    """Whether an error's file name is ``folder`` or lies in it (unknown file name: yes)."""
    if filename is None:
        return True
    path, folder = Path(os.fsdecode(filename)).absolute(), Path(folder).absolute()
    return path == folder or folder in path.parents


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (as :func:`copy_npz_member` hashes a member it copies).

    A loop over chunks: ``hashlib.file_digest`` needs Python 3.11.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(COPY_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def clear_stale_conversions(cache: Path) -> None:
    """Removes temporaries of conversions that no live process is writing (killed runs)."""
    for path, size in remove_stale(cache.glob(".*.tmp*")):
        log.info("Removed %s (%.1f MB), left by a killed conversion.", path, size / 1e6)
