"""Per-shard memory maps opened on demand, a bounded number held open at a time."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from forgetbench.data.limits import ensure_open_files
from forgetbench.data.shard_checks import open_npy

MAX_OPEN_SHARDS = 16  # per store and member: at most this many shard files mapped at once


class ShardMaps(Sequence):
    """One member (features or labels) of every shard, as memory maps in a least-recently-used set.

    ``maps[k]`` maps shard ``k``'s file on first use; once ``capacity`` maps are held, the one
    used longest ago is dropped (its file is closed when no array refers to it any more). So a
    folder of thousands of shards holds at most ``capacity`` of these files open.

    Args:
        paths: The ``.npy`` file of each shard.
        sources: The shard file the user gave for each (named in errors).
        folder: The shard folder (named when the open-file limit is too low).
        capacity: Maps held open at most.
    """

    def __init__(
        self,
        paths: list[Path],
        sources: list[Path],
        folder: Path,
        capacity: int = MAX_OPEN_SHARDS,
    ):
        self.paths, self.sources, self.folder = list(paths), list(sources), folder
        self.capacity = max(1, int(capacity))
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Number of shards."""
        return len(self.paths)

    def __getitem__(self, k):
        """Shard ``k``'s memory-mapped array (a list of them for a slice)."""
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = int(k) + len(self) if int(k) < 0 else int(k)
        if not 0 <= k < len(self):
            raise IndexError(f"Shard index {k} out of range for {len(self)} shards")
        with self._lock:  # gathers may run in a prefetching thread
            array = self._open.pop(k, None)
            if array is None:
                if len(self._open) >= self.capacity:
                    self._open.popitem(last=False)
                else:
                    ensure_open_files(1, self.folder)
                array = open_npy(self.paths[k], self.sources[k])
            self._open[k] = array
            return array

    @property
    def held(self) -> int:
        """Maps held open now."""
        return len(self._open)

    def close(self) -> None:
        """Drops every held map."""
        with self._lock:
            self._open.clear()
