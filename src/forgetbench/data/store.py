"""ShardStore: a folder of shards seen as one memory-mapped dataset with global indices."""

from __future__ import annotations

import copy
import errno
import logging
from pathlib import Path

import numpy as np

from forgetbench.data.cache_location import resolve_cache
from forgetbench.data.discovery import discover_shards
from forgetbench.data.errors import ShardFormatError
from forgetbench.data.limits import ensure_open_files
from forgetbench.data.maps import MAX_OPEN_SHARDS, ShardMaps
from forgetbench.data.pack import open_pack
from forgetbench.data.shard_cache import prepare_shards
from forgetbench.data.shard_checks import ShardFiles, check_consistent

log = logging.getLogger(__name__)


class ShardStore:
    """Memory-mapped view of a folder of shards, addressed by global sample index.

    Global index ``i`` belongs to shard ``k`` when ``offsets[k] <= i < offsets[k + 1]``.

    Open files stay bounded whatever the shard count: ``features`` and ``labels`` map shard
    files on demand, at most ``max_open`` of each at a time (:class:`ShardMaps`). A store of
    more shards than that gathers from a pack of all its shards (:mod:`forgetbench.data.pack`,
    written once into the cache folder), so a gather across shards reads two files.

    Args:
        folder: Folder of ``NAME.npz`` files or ``NAME.<key>.npy`` pairs.
        feature_key: Member name of the features.
        label_key: Member name of the labels.
        order: Shard names in training order; file-name order when ``None``.
        cache_dir: The folder where converted ``.npy`` members and metadata go, as is.
        cache_root: Without ``cache_dir``: a root folder under which this folder's cache is
            ``<folder name>-<hash of its absolute path>``; ``None``: ``folder/.forgetbench_cache``
            when writable (or already up to date), else the per-user cache
            (:func:`forgetbench.data.cache_location.resolve_cache`).
        allow_nonfinite: Accept NaN or infinite features instead of raising.
        max_open: Shard files of each member mapped at once at most.
        labels: How labels are read (``data.labels``: ``index``, ``onehot``, ``argmax``; see
            :mod:`forgetbench.data.labels`).

    Attributes:
        cache: The folder of converted members and metadata in use.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        feature_key: str = "array1",
        label_key: str = "array2",
        order: list[str] | None = None,
        cache_dir: str | Path | None = None,
        cache_root: str | Path | None = None,
        allow_nonfinite: bool = False,
        max_open: int = MAX_OPEN_SHARDS,
        labels: str = "index",
    ) -> None:
        self.folder = Path(folder)
        found = discover_shards(self.folder, feature_key, label_key)
        if isinstance(order, str | bytes):
            raise ShardFormatError(
                f"Shard order for {self.folder}: expected a list of shard names. "
                f"Received the string {order!r}"
            )
        names = list(found) if order is None else list(order)
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ShardFormatError(
                f"Shard order for {self.folder}: expected each shard at most once. "
                f"Received {repeated} more than once"
            )
        missing = [name for name in names if name not in found]
        if missing:
            raise ShardFormatError(
                f"Shard order names shards not in {self.folder}: {missing}. "
                f"Expected names among {sorted(found)}"
            )
        if cache_dir:
            self.cache = Path(cache_dir)
        else:
            opened = {name: found[name] for name in names}
            keys = (feature_key, label_key)
            self.cache = resolve_cache(self.folder, opened, *keys, cache_root, labels)
        self.shards: list[ShardFiles] = prepare_shards(
            found, names, self.cache, feature_key, label_key, labels
        )
        check_consistent(self.shards, allow_nonfinite=allow_nonfinite)
        sources = [Path(s.source) for s in self.shards]
        self.features = ShardMaps(
            [Path(s.features) for s in self.shards], sources, self.folder, max_open
        )
        self.labels = ShardMaps(
            [Path(s.labels) for s in self.shards], sources, self.folder, max_open
        )
        self.max_open = max(1, int(max_open))
        self._pack: tuple[np.ndarray, np.ndarray] | None = None
        self.sizes = np.array([s.n for s in self.shards], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    def subset(self, start: int | None, stop: int | None) -> ShardStore:
        """The shards ``start:stop`` (a slice of the training order) as a store of the same files.

        Raises:
            ShardFormatError: if the slice holds no shard.
        """
        chosen = self.shards[start:stop]
        if not chosen:
            raise ShardFormatError(
                f"shard_range=[{start}, {stop}] of {self.folder}: expected a slice holding at "
                f"least one of its {self.num_shards} shards. Received an empty one"
            )
        sub = copy.copy(self)
        sub.shards = chosen
        sources = [Path(s.source) for s in chosen]
        sub.features = ShardMaps([Path(s.features) for s in chosen], sources, self.folder)
        sub.labels = ShardMaps([Path(s.labels) for s in chosen], sources, self.folder)
        sub._pack = None
        sub.sizes = np.array([s.n for s in chosen], dtype=np.int64)
        sub.offsets = np.concatenate([[0], np.cumsum(sub.sizes)]).astype(np.int64)
        return sub

    @property
    def names(self) -> list[str]:
        """Shard names in training order."""
        return [s.name for s in self.shards]

    @property
    def num_shards(self) -> int:
        """Number of shards."""
        return len(self.shards)

    @property
    def num_samples(self) -> int:
        """Total number of samples over all shards."""
        return int(self.offsets[-1])

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sample's features."""
        return self.shards[0].feature_shape

    @property
    def classes(self) -> list[int]:
        """Sorted class ids present in any shard."""
        return sorted(set().union(*(s.classes for s in self.shards)))

    def shard_ids(self) -> np.ndarray:
        """Shard index of every global sample index (int32, length ``num_samples``)."""
        return np.repeat(np.arange(self.num_shards, dtype=np.int32), self.sizes)

    def gather(
        self, indices: np.ndarray, out: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reads the samples at global ``indices``, in any order, with sorted reads per shard.

        Args:
            indices: Global sample indices (any order; sorted ones skip the sort).
            out: Optional ``(features, labels)`` arrays of ``len(indices)`` rows to write into
                (cast to their dtypes): no intermediate copy of the whole gather.

        Returns:
            Features and labels in the order of ``indices`` (``out`` when given).
        """
        indices = np.asarray(indices, dtype=np.int64)
        if out is None:
            out = (
                np.empty((len(indices), *self.feature_shape), self.shards[0].feature_dtype),
                np.empty(len(indices), self.shards[0].label_dtype),
            )
        x_out, y_out = out
        in_order = bool(np.all(indices[1:] >= indices[:-1]))
        order = None if in_order else np.argsort(indices, kind="stable")
        ordered = indices if in_order else indices[order]
        packed = self.packed()
        if packed is not None:  # one sorted read of each packed member
            at = slice(None) if in_order else order
            x_out[at] = packed[0][ordered]
            y_out[at] = packed[1][ordered]
            return x_out, y_out
        bounds = np.searchsorted(ordered, self.offsets)
        for k in range(self.num_shards):
            lo, hi = bounds[k], bounds[k + 1]
            if hi > lo:  # one fancy read of shard k, written where its samples go
                local = ordered[lo:hi] - self.offsets[k]
                at = slice(lo, hi) if in_order else order[lo:hi]
                x_out[at] = self.features[k][local]
                y_out[at] = self.labels[k][local]
        return x_out, y_out

    def packed(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The packed features and labels when the store has more shards than ``max_open``.

        Written on first use; ``None`` for a store small enough to keep every shard mapped, or
        when the cache folder cannot take the pack (gathers then reopen shard files as needed).
        """
        if self.num_shards <= self.max_open:
            return None
        if self._pack is None:
            ensure_open_files(2, self.folder)
            try:
                self._pack = open_pack(self.cache, self.shards)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                log.warning(
                    "Cannot write the packed shards into %s (%s): gathers reopen shard files, "
                    "which is slow for %d shards. Set data.convert_cache to a writable folder.",
                    self.cache,
                    exc,
                    self.num_shards,
                )
                self.max_open = self.num_shards  # do not try again
        return self._pack

    def load_all(self) -> tuple[np.ndarray, np.ndarray]:
        """All features and labels in memory, in global index order (one shard file at a time)."""
        x = np.empty((self.num_samples, *self.feature_shape), self.shards[0].feature_dtype)
        y = np.empty(self.num_samples, self.shards[0].label_dtype)
        for k, (lo, hi) in enumerate(zip(self.offsets[:-1], self.offsets[1:], strict=True)):
            x[lo:hi] = self.features[k]
            y[lo:hi] = self.labels[k]
        return x, y
