"""The process's open-file limit: raised to the hard limit when a store needs it, else explained."""

from __future__ import annotations

import os
import resource

RESERVE = 64  # open files kept free for everything else (TensorFlow, writing results, logs)


class OpenFilesError(OSError):
    """The open-file limit is too low for the shard maps a store needs, even once raised."""


def open_files() -> int:
    """Files this process holds open now (from ``/proc/self/fd``; 0 where it is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def limit_message(folder, need: int, soft: int, hard: int) -> str:
    """What to tell the user when ``need`` open files do not fit under the limits."""
    hard_text = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return (
        f"Shard folder {folder}: reading it needs about {need} open files (memory maps of its "
        f"shards, plus what the process already holds and {RESERVE} spare). Received an "
        f"open-file limit of {soft} (hard limit {hard_text}). Raise it before starting, for "
        f"example `ulimit -n {max(need, 1024)}`, or ask for a higher hard limit."
    )


def ensure_open_files(new_files: int, folder) -> None:
    """Makes room for ``new_files`` more open files, raising the soft limit up to the hard one.

    Args:
        new_files: Files about to be held open (memory maps).
        folder: The shard folder, named in the error.

    Raises:
        OpenFilesError: when even the hard limit leaves no room for them.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = open_files() + int(new_files) + RESERVE
    if soft == resource.RLIM_INFINITY or need <= soft:
        return
    if hard != resource.RLIM_INFINITY and need > hard:
        raise OpenFilesError(limit_message(folder, need, soft, hard))
    target = hard if hard != resource.RLIM_INFINITY else max(need, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
