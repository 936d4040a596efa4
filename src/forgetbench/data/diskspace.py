"""Free-space checks and reservations before writing cache files, and clear disk-full errors.

Writing into a memory map that the file system cannot back kills the process with ``SIGBUS``
(no message, a partial file left); writing a stream onto a full disk fails half-way. So files
are reserved before they are written (``os.posix_fallocate``), and a whole job's space is
checked up front (``shutil.disk_usage``); either failure raises :class:`DiskFullError` naming
the place, the space needed and the space free, never the source file being read.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from forgetbench.data.errors import DiskFullError
from forgetbench.results.io import atomic_path

FULL = (errno.ENOSPC, errno.EDQUOT)


def _existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes free to this user on the file system that holds (or will hold) ``path``."""
    return shutil.disk_usage(_existing(Path(path))).free


def size_text(n: float) -> str:
    """A byte count for people: ``1.5 GB``, ``640.0 kB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def disk_full(path: str | os.PathLike, needed: int, what: str, fix: str) -> DiskFullError:
    """The error for ``needed`` bytes that do not fit at ``path`` (free space measured now)."""
    try:
        free = size_text(free_bytes(path))
    except OSError:
        free = "unknown"
    return DiskFullError(
        f"No space left to write {what} at {path}: expected {size_text(needed)} free there. "
        f"Received {free} free. {fix}"
    )


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for lack of space (or quota)."""
    return isinstance(exc, OSError) and exc.errno in FULL


def require(path: str | os.PathLike, needed: int, what: str, fix: str) -> None:
    """Checks that ``needed`` bytes are free where ``path`` goes.

    Raises:
        DiskFullError: naming ``path``, the space needed and the space free, and ``fix``.
    """
    if needed > 0 and free_bytes(path) < needed:
        raise disk_full(path, needed, what, fix)


def reserve(fd: int, nbytes: int, path: str | os.PathLike, what: str, fix: str) -> None:
    """Allocates ``nbytes`` for the open file ``fd`` before it is written or mapped.

    A file system without ``fallocate`` support is left to fail, if it must, on writing.

    Raises:
        DiskFullError: when the space cannot be allocated.
    """
    if nbytes <= 0:
        return
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if is_full(exc):
            raise disk_full(path, nbytes, what, fix) from exc
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise


def write_npy(
    dest: Path,
    dtype: np.dtype,
    shape: tuple[int, ...],
    fill: Callable[[np.ndarray], None],
    what: str,
    fix: str = "Free some space there, or choose a cache on a larger disk.",
) -> None:
    """Writes an ``.npy`` file through a memory map whose space is reserved first, atomically.

    Args:
        dest: The file to write.
        dtype: Its dtype.
        shape: Its shape.
        fill: Writes the content into the array it is given (a writable memory map).
        what: What the file is, for a disk-full error.
        fix: What to do about a full disk, for the error.

    Raises:
        DiskFullError: naming ``dest``, the space needed and free, when it does not fit.
    """
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    with atomic_path(dest) as tmp:
        with open(tmp, "r+b") as f:
            np.lib.format.write_array_header_1_0(f, header)
            offset = f.tell()
            f.flush()
            reserve(f.fileno(), offset + nbytes, dest, what, fix)
            f.truncate(offset + nbytes)
        if nbytes:
            out = np.memmap(tmp, dtype=dtype, mode="r+", offset=offset, shape=shape)
            fill(out)
            out.flush()
            del out
