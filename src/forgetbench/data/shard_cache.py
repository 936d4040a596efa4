"""The shard conversion cache: ``.npz`` members copied once into memory-mappable ``.npy``.

``np.load(..., mmap_mode='r')`` maps nothing for ``.npz`` members, so each member is copied
once, as a stream, into a cached ``.npy`` that can be memory-mapped; the cache is rebuilt when
the source file changes (size, mtime or ctime: a copy that keeps the old mtime still changes the
ctime), or when a converted file no longer opens as the shard it was converted from. Where the
cache goes is :mod:`forgetbench.data.cache_location`'s job.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from forgetbench.data import labels as label_formats
from forgetbench.data.convert import (
    CACHE_OPTION,
    clear_stale_conversions,
    copy_npz_members,
    denied,
    file_digest,
    within,
)
from forgetbench.data.errors import LabelFormatError, ShardCacheError, ShardFormatError
from forgetbench.data.shard_checks import ShardFiles, open_npy, shard_stats
from forgetbench.results.io import read_json, write_json

CACHE_VERSION = 3  # 3: a content digest per shard, labels normalised

log = logging.getLogger(__name__)


def source_stamp(paths: list[Path]) -> list[list]:
    """Name, size, modification and status-change time of each file.

    Changes when a file is rewritten or replaced, also by a copy that keeps the old
    modification time (``cp -p``, ``rsync -a``): that sets the mtime, which moves the ctime.
    """
    stamps = []
    for p in paths:
        st = p.stat()
        stamps.append([p.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return stamps


def _cache_error(source: Path, cache: Path, exc: OSError) -> ShardCacheError:
    return ShardCacheError(
        f"Cannot write the converted members of {source} to {cache}: expected a writable "
        f"folder. Received: {exc}. Set {CACHE_OPTION} to a writable folder."
    )


def _member_paths(
    name: str, source: Path, cache: Path, feature_key: str, label_key: str
) -> tuple[dict[str, Path], list[Path]]:
    """The memory-mappable files of a shard, and the files its cache entry is stamped with."""
    if source.suffix == ".npz":
        return {k: cache / f"{name}.{k}.npy" for k in (feature_key, label_key)}, [source]
    paths = {k: source.with_name(f"{name}.{k}.npy") for k in (feature_key, label_key)}
    if not paths[label_key].exists():
        raise ShardFormatError(
            f"Missing key for shard {source}: expected labels file {paths[label_key].name}. "
            "Received: no such file."
        )
    return paths, list(paths.values())


def _stamp(stamped: list[Path], feature_key: str, label_key: str, labels: str) -> dict:
    stamp = {"version": CACHE_VERSION, "keys": [feature_key, label_key]}
    if labels != "index":  # what a conversion of 2-D labels depends on
        stamp["labels"] = labels
    return {**stamp, "source": source_stamp(stamped)}


def cached_shard(
    name: str,
    sources: list[Path],
    cache: Path,
    feature_key: str,
    label_key: str,
    labels: str = "index",
) -> ShardFiles | None:
    """The shard's files from ``cache`` if they are there and up to date, else ``None``."""
    source = sources[0]
    paths, stamped = _member_paths(name, source, cache, feature_key, label_key)
    meta_path = cache / f"{name}.meta.json"
    if not meta_path.exists():
        return None
    meta = read_json(meta_path)
    if meta.get("labels_file"):
        paths[label_key] = cache / meta["labels_file"]
    if meta.get("stamp") != _stamp(stamped, feature_key, label_key, labels) or not all(
        p.exists() for p in paths.values()
    ):
        return None
    converted = [p for p in paths.values() if p.parent == cache]
    if not _converted_intact(converted, meta["stats"]):
        log.warning("Converted members of %s in %s are damaged: converting again.", source, cache)
        return None
    return _shard_files(meta["stats"], source, paths, (feature_key, label_key), stamped)


def _converted_intact(paths, stats: dict) -> bool:
    """Whether every converted member still maps with the shard's number of rows."""
    try:
        return all(len(np.load(p, mmap_mode="r", allow_pickle=False)) == stats["n"] for p in paths)
    except (ValueError, OSError, EOFError):
        return False


def prepare_shard(
    name: str,
    sources: list[Path],
    cache: Path,
    feature_key: str,
    label_key: str,
    labels: str = "index",
) -> ShardFiles:
    """Converts (if needed) and validates one shard, reusing the cache while the source holds.

    Args:
        name: Shard name (file stem).
        sources: The shard's source files (one ``.npz`` or the feature ``.npy``).
        cache: Folder for converted members and per-shard metadata.
        feature_key: Key (member name) of the features.
        label_key: Key (member name) of the labels.
        labels: ``data.labels``: how 2-D label rows are read (``forgetbench.data.labels``).

    Returns:
        The memory-mappable files and their statistics.

    Raises:
        ShardCacheError: if ``cache`` cannot be written.
        DiskFullError: if the converted members do not fit in ``cache``.
        LabelFormatError: if the labels cannot be read as class ids.
    """
    label_formats.check_mode(labels)
    cached = cached_shard(name, sources, cache, feature_key, label_key, labels)
    if cached is not None:
        return cached
    source = sources[0]
    paths, stamped = _member_paths(name, source, cache, feature_key, label_key)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # denied, read-only, a file in the way: the cache folder is unusable
        raise _cache_error(source, cache, exc) from exc
    try:
        clear_stale_conversions(cache)
        if source.suffix == ".npz":
            digests = copy_npz_members(source, paths)
        else:
            digests = [file_digest(path) for path in paths.values()]
        meta = {"stamp": _stamp(stamped, feature_key, label_key, labels)}
        label_array = _class_ids(name, source, paths, cache, label_key, labels, meta)
        features = open_npy(paths[feature_key], source)
        stats = shard_stats(name, source, features, label_array, (feature_key, label_key))
        meta["stats"] = {**stats, "digest": hashlib.sha256("".join(digests).encode()).hexdigest()}
        write_json(cache / f"{name}.meta.json", meta)
    except OSError as exc:
        if not (denied(exc) and within(exc.filename, cache)):
            raise
        raise _cache_error(source, cache, exc) from exc
    return _shard_files(meta["stats"], source, paths, (feature_key, label_key), stamped)


def _class_ids(name, source, paths, cache, label_key, labels, meta) -> np.ndarray:
    """The shard's labels as 1-D class ids, written once into ``cache`` when they need it."""
    stored = open_npy(paths[label_key], source)
    done = label_formats.plan(stored, source, label_key, labels)
    if done is None:
        return stored
    dest = cache / f"{name}.{label_key}.classes.npy"
    label_formats.write_class_ids(stored, dest, f"the class ids of {source.name}")
    log.info("Labels '%s' of %s: %s (data.labels=%s).", label_key, source, done, labels)
    del stored
    if source.suffix == ".npz":  # the converted member is no longer needed
        paths[label_key].unlink(missing_ok=True)
    paths[label_key] = dest
    meta["labels_file"] = dest.name
    return open_npy(dest, source)


def prepare_shards(
    found: dict[str, list[Path]],
    names: list[str],
    cache: Path,
    feature_key: str,
    label_key: str,
    labels: str = "index",
    on_shard=None,
) -> list[ShardFiles]:
    """:func:`prepare_shard` for every shard of ``names``; label problems of all shards at once.

    Args:
        found: ``{name: [source files]}`` (as :func:`discover_shards`).
        names: The shards to prepare, in order.
        cache: Folder for converted members and metadata.
        feature_key: Key (member name) of the features.
        label_key: Key (member name) of the labels.
        labels: ``data.labels`` (``index``, ``onehot`` or ``argmax``).
        on_shard: Called with the number of shards done after each one (progress).

    Raises:
        LabelFormatError: naming every shard file whose labels are not class ids.
    """
    shards, bad = [], []
    for name in names:
        try:
            shards.append(prepare_shard(name, found[name], cache, feature_key, label_key, labels))
        except LabelFormatError as exc:
            bad.append(exc)
        if on_shard is not None:
            on_shard(len(shards) + len(bad))
    if bad:
        raise LabelFormatError.combine(bad)
    return shards


def _shard_files(
    stats: dict, source: Path, paths: dict[str, Path], keys: tuple[str, str], stamped: list[Path]
) -> ShardFiles:
    feature_key, label_key = keys
    return ShardFiles(
        name=stats["name"],
        source=str(source),
        features=str(paths[feature_key]),
        labels=str(paths[label_key]),
        n=stats["n"],
        feature_shape=tuple(stats["feature_shape"]),
        feature_dtype=stats["feature_dtype"],
        label_dtype=stats["label_dtype"],
        classes=tuple(stats["classes"]),
        all_finite=stats["all_finite"],
        digest=stats.get("digest", ""),
        sources=tuple(str(p) for p in stamped),
    )
