"""Temporary files and folders that honour the umask and say whether their writer still lives.

``tempfile.mkstemp`` and ``mkdtemp`` create files ``0600`` and folders ``0700`` whatever the
umask, so a shared cache or a colleague's results could not be read by the group. These helpers
create them like any other file (mode ``0666`` / ``0777`` less the umask, so default ACLs apply
too) and hold an exclusive ``flock`` on them while they are written. A temporary whose lock can
be taken belongs to no live process (its writer finished or was killed, even by ``kill -9``), so
the next run removes it; one whose lock is held is left alone.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

GRACE_SECONDS = 60.0  # a temporary younger than this is never removed (its writer may be starting)


def _unique(folder: Path, prefix: str, suffix: str) -> Path:
    return Path(folder) / f"{prefix}{secrets.token_hex(4)}{suffix}"


def _lock(fd: int) -> None:
    with suppress(OSError):  # a file system without flock: the grace period alone protects it
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def create_file(folder: str | os.PathLike, prefix: str, suffix: str) -> tuple[int, Path]:
    """Creates a new empty file ``folder/PREFIX<random>SUFFIX``, locked, with the umask's mode.

    Returns:
        An open descriptor (holding the lock until it is closed) and the path.
    """
    while True:
        path = _unique(Path(folder), prefix, suffix)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        _lock(fd)
        return fd, path


@contextmanager
def temporary_folder(folder: str | os.PathLike, prefix: str) -> Iterator[Path]:
    """A new folder ``folder/PREFIX<random>`` (umask's mode), locked while the block runs.

    The folder is removed when the block exits, unless the block renamed it away.
    """
    Path(folder).mkdir(parents=True, exist_ok=True)
    while True:
        path = _unique(Path(folder), prefix, "")
        try:
            path.mkdir(mode=0o777)
            break
        except FileExistsError:
            continue
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    _lock(fd)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def is_stale(path: Path, grace: float = GRACE_SECONDS) -> bool:
    """Whether no live process writes the temporary ``path``: unlocked and older than ``grace``.

    A file system that cannot lock reports the lock as free; the grace period then decides.
    """
    try:
        if time.time() - path.lstat().st_mtime < grace:
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # gone meanwhile, or not ours to open
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
    return True


def remove_stale(paths, grace: float = GRACE_SECONDS) -> list[tuple[Path, int]]:
    """Removes the stale temporaries among ``paths`` (files or folders).

    Returns:
        ``(path, bytes freed)`` of each one removed.
    """
    removed = []
    for path in paths:
        path = Path(path)
        if not is_stale(path, grace):
            continue
        size = tree_size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append((path, size))
    return removed


def tree_size(path: Path) -> int:
    """Bytes on disk of a file, or of every file below a folder (links not followed)."""
    path = Path(path)
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_blocks * 512
        files = [path, *path.rglob("*")]
        return sum(p.lstat().st_blocks * 512 for p in files)
    except OSError:
        return 0


def stale_temporaries(folder: Path, pattern: str, grace: float = GRACE_SECONDS) -> list[Path]:
    """The entries of ``folder`` matching the glob ``pattern`` that no live process writes."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob(pattern)) if is_stale(p, grace)]
