"""The data caches on disk: what they hold, how large, how recently used; cleaning them.

Two places hold derived data: the data cache (``paths.data_cache``, ``FORGETBENCH_DATA_CACHE``,
default ``.cache/data``: generated datasets and carved splits, one folder each) and the per-user
cache of converted shards (``$XDG_CACHE_HOME/forgetbench/shards``). A shard folder's own
``.forgetbench_cache`` can be named too. Every entry is one folder; a build or conversion that
is still being written (its lock held) is never removed, one that was killed (its lock free) is
always removed by ``clean``.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from forgetbench.data.cache_location import CACHE_FOLDER, user_cache_root
from forgetbench.data.generated import TEMP_PREFIX
from forgetbench.tempfiles import is_stale, stale_temporaries, tree_size

DEFAULT_DATA_CACHE = ".cache/data"  # conf/config.yaml's paths.data_cache


@dataclass(frozen=True)
class Entry:
    """One cache folder: its path, size on disk, last use and state."""

    path: Path
    bytes: int
    last_used: float
    state: str  # "ready", "being written" or "unfinished" (a killed build)


def default_places() -> list[Path]:
    """The data cache (as a run finds it from here) and the per-user shard cache."""
    data = os.environ.get("FORGETBENCH_DATA_CACHE") or DEFAULT_DATA_CACHE
    return [Path(data), user_cache_root()]


def _last_used(path: Path) -> float:
    """Newest modification, or read of a file (listing a folder moves its atime: not counted)."""
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    stamps = [p.lstat() for p in paths]
    return max(
        s.st_mtime if stat.S_ISDIR(s.st_mode) else max(s.st_atime, s.st_mtime) for s in stamps
    )


def _temporary(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX) or (path.name.startswith(".") and "-" in path.name)


def entries(place: Path) -> list[Entry]:
    """The entries of a cache root, or of a shard folder's ``.forgetbench_cache``."""
    place = Path(place).expanduser()
    if (place / CACHE_FOLDER).is_dir():
        children = [place / CACHE_FOLDER]
    elif place.is_dir():
        children = sorted(p for p in place.iterdir() if p.is_dir() and not p.is_symlink())
    else:
        return []
    found = []
    for path in children:
        state = "ready"
        if _temporary(path):
            state = "unfinished" if is_stale(path) else "being written"
        found.append(Entry(path, tree_size(path), _last_used(path), state))
    return found


def clean(place: Path, older_than_days: float | None = None) -> list[Entry]:
    """Removes unfinished entries, and ready ones unused for ``older_than_days`` (all if None).

    Entries being written are kept. Inside kept entries, stale temporary files are removed.

    Returns:
        The entries removed (stale temporary files inside kept entries as entries too).
    """
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    removed = []
    for entry in entries(place):
        if entry.state == "being written":
            continue
        if entry.state == "unfinished" or cutoff is None or entry.last_used < cutoff:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry)
            continue
        for folder in [entry.path, *entry.path.rglob(CACHE_FOLDER)]:
            for temp in stale_temporaries(folder, ".*.tmp*"):
                removed.append(Entry(temp, tree_size(temp), _last_used(temp), "unfinished"))
                temp.unlink(missing_ok=True)
    return removed
