"""Shard files on disk: discovery, one-time ``.npz`` to ``.npy`` conversion, validation.

A shard is either one ``NAME.npz`` holding a feature and a label member, or a pair of files
``NAME.<feature_key>.npy`` and ``NAME.<label_key>.npy``. ``np.load(..., mmap_mode='r')`` maps
nothing for ``.npz`` members, so each member is copied once, as a stream, into a cached ``.npy``
that can be memory-mapped; the cache is rebuilt when the source file changes (size, mtime or
ctime: a copy that keeps the old mtime still changes the ctime), or when a converted file
no longer opens as the shard it was converted from.

The cache goes beside the shards (``FOLDER/.forgetbench_cache``) when that folder is writable, or
already holds an up-to-date conversion; otherwise into a per-user folder,
``$XDG_CACHE_HOME/forgetbench/shards/<folder name>-<hash of its absolute path>``. A cache root
chosen by the user (``data.convert_cache``) holds the same per-folder subfolders.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import warnings
from dataclasses import asdict, dataclass
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
from forgetbench.data.errors import (
    DiskFullError,
    LabelFormatError,
    ShardCacheError,
    ShardFormatError,
)
from forgetbench.results.io import read_json, write_json

__all__ = [
    "DiskFullError",
    "LabelFormatError",
    "ShardCacheError",
    "ShardFiles",
    "ShardFormatError",
    "prepare_shard",
    "prepare_shards",
]

CACHE_VERSION = 3  # 3: a content digest per shard, labels normalised
CACHE_FOLDER = ".forgetbench_cache"  # converted members, beside the shards by default
STATS_CHUNK_BYTES = 64 * 2**20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardFiles:
    """The memory-mappable files of one shard and the statistics checked once per source."""

    name: str
    source: str
    features: str
    labels: str
    n: int
    feature_shape: tuple[int, ...]
    feature_dtype: str
    label_dtype: str
    classes: tuple[int, ...]
    all_finite: bool
    digest: str = ""
    sources: tuple[str, ...] = ()


def discover_shards(folder: Path, feature_key: str, label_key: str) -> dict[str, list[Path]]:
    """Finds the shards of ``folder``: ``{name: [source files]}`` in file-name order.

    Raises:
        ShardFormatError: if the folder is missing, holds no shard, or a name has both forms.
    """
    if not folder.is_dir():
        raise ShardFormatError(
            f"Expected a folder of shard files. Received: {folder} (not a folder)"
        )
    if feature_key == label_key:
        raise ShardFormatError(
            f"Shard folder {folder}: expected different keys for features and labels. "
            f"Received '{feature_key}' for both"
        )
    found: dict[str, list[Path]] = {}
    labels_only, unused = [], []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".npz":
            found.setdefault(path.stem, []).append(path)
        elif path.name.endswith(f".{feature_key}.npy"):
            found.setdefault(path.name[: -len(f".{feature_key}.npy")], []).append(path)
        elif path.name.endswith(f".{label_key}.npy"):
            labels_only.append(path)
        elif path.suffix.lower() in (".npz", ".npy"):
            unused.append(path.name)
    feature_files = {p.name for paths in found.values() for p in paths}
    orphans = [
        p.name
        for p in labels_only
        if p.name[: -len(f".{label_key}.npy")] + f".{feature_key}.npy" not in feature_files
    ]
    if orphans:
        raise ShardFormatError(
            f"Labels files without features in {folder}: {orphans}. Expected beside each "
            f"NAME.{label_key}.npy a features file NAME.{feature_key}.npy"
        )
    if unused:
        warnings.warn(
            f"Shard folder {folder}: files not read, as they are neither NAME.npz nor "
            f"NAME.{feature_key}.npy with NAME.{label_key}.npy: {unused}",
            stacklevel=2,
        )
    if not found:
        raise ShardFormatError(
            f"Expected shard files in {folder}: NAME.npz, or NAME.{feature_key}.npy with "
            f"NAME.{label_key}.npy. Received: no such file."
        )
    for name, paths in found.items():
        if len({p.suffix for p in paths}) > 1:
            raise ShardFormatError(
                f"Shard '{name}' in {folder} exists both as .npz and as .npy files. "
                "Expected one form per shard."
            )
    return found


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


def open_npy(path: Path, source: Path) -> np.ndarray:
    """Memory-maps an ``.npy`` file, turning format errors into ``ShardFormatError``.

    Args:
        path: The file to map (the source itself, or a member converted from it).
        source: The shard file the user gave, named in errors.
    """
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EMFILE:  # not the file's fault
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            raise OSError(
                errno.EMFILE,
                f"Too many open files while opening {path}: the process reached its open-file "
                f"limit of {soft} (hard limit {hard}); the file itself is not known to be "
                "damaged. Raise the limit (`ulimit -n 4096`) or open fewer folders at once",
            ) from exc
        where = f"{source}" if Path(path) == Path(source) else f"{path} (from {source})"
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise ShardFormatError(
                f"Array {where}: expected a numeric array. Received dtype object (pickled "
                "Python objects, which are not read)"
            ) from exc
        raise ShardFormatError(
            f"Corrupt or truncated shard file {where}: expected a readable .npy array. "
            f"Received error: {exc}"
        ) from exc


def chunk_rows(array: np.ndarray) -> int:
    """Rows of ``array`` per chunk of about ``STATS_CHUNK_BYTES`` (chunked passes over a map)."""
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize)
    return max(1, STATS_CHUNK_BYTES // row_bytes)


def _label_stats(labels: np.ndarray, source: Path, label_key: str) -> tuple[int, ...]:
    if labels.ndim != 1:
        raise ShardFormatError(
            f"Labels '{label_key}' in {source}: expected a 1-D array. Received shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ShardFormatError(
            f"Labels '{label_key}' in {source}: expected an integer dtype. "
            f"Received dtype {labels.dtype}"
        )
    classes: set[int] = set()
    step = chunk_rows(labels)
    for start in range(0, len(labels), step):
        classes.update(np.unique(labels[start : start + step]).tolist())
    if classes and min(classes) < 0:
        raise ShardFormatError(
            f"Labels '{label_key}' in {source}: expected class ids >= 0. "
            f"Received minimum {min(classes)}"
        )
    return tuple(sorted(int(c) for c in classes))


def _all_finite(features: np.ndarray) -> bool:
    if not np.issubdtype(features.dtype, np.floating):
        return True
    step = chunk_rows(features)
    return all(
        np.isfinite(features[start : start + step]).all() for start in range(0, len(features), step)
    )


def _shard_stats(
    name: str, source: Path, features: np.ndarray, labels: np.ndarray, keys: tuple[str, str]
) -> dict:
    feature_key, label_key = keys
    if features.ndim < 2:
        raise ShardFormatError(
            f"Features '{feature_key}' in {source}: expected shape (samples, ...) with at least "
            f"2 dimensions. Received shape {features.shape}"
        )
    kind = features.dtype.kind
    if kind not in "biuf":
        raise ShardFormatError(
            f"Features '{feature_key}' in {source}: expected a real numeric dtype (float, "
            f"integer or bool). Received dtype {features.dtype}"
        )
    if len(features) == 0:
        raise ShardFormatError(f"Empty shard {source}: expected at least 1 sample. Received 0.")
    if len(labels) != len(features):
        raise ShardFormatError(
            f"Shard {source}: expected as many labels as feature rows. "
            f"Received {len(features)} rows in '{feature_key}' and {len(labels)} "
            f"in '{label_key}'"
        )
    return {
        "name": name,
        "n": int(len(features)),
        "feature_shape": list(features.shape[1:]),
        "feature_dtype": str(features.dtype),
        "label_dtype": str(labels.dtype),
        "classes": list(_label_stats(labels, source, label_key)),
        "all_finite": bool(_all_finite(features)),
    }


def user_cache_root() -> Path:
    """The per-user root of converted shards: ``$XDG_CACHE_HOME/forgetbench/shards``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache``.
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "forgetbench" / "shards"


def keyed_cache(folder: Path, root: str | os.PathLike) -> Path:
    """``root/<folder name>-<hash of the folder's absolute path>``: one subfolder per folder."""
    resolved = Path(folder).expanduser().resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return Path(root).expanduser() / f"{resolved.name or 'root'}-{digest}"


def writable(path: Path) -> bool:
    """Whether ``path`` can be written, or created: checked on its nearest existing ancestor."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def resolve_cache(
    folder: Path,
    shards: dict[str, list[Path]],
    feature_key: str,
    label_key: str,
    cache_root: str | os.PathLike | None = None,
    labels: str = "index",
) -> Path:
    """The folder that holds (or will hold) the converted members of ``folder``'s shards.

    With ``cache_root``: ``keyed_cache(folder, cache_root)``. Without: ``folder/.forgetbench_cache``
    when it can be written, or when it already holds every shard up to date (a read-only folder
    converted beforehand); otherwise ``keyed_cache(folder, user_cache_root())`` (if writable or
    up to date), with a log line.

    Args:
        folder: The shard folder.
        shards: The shards to be opened, ``{name: [source files]}`` (as ``discover_shards``).
        feature_key: Key (member name) of the features.
        label_key: Key (member name) of the labels.
        cache_root: A root chosen by the user for converted members, or ``None``.
        labels: ``data.labels``, which an up-to-date conversion must have used.

    Raises:
        ShardCacheError: naming the folder, the places tried and the option, when no candidate
            can be written (``cache_root``'s subfolder; or both the folder's and the per-user
            cache).
    """

    def usable(cache: Path) -> bool:  # writable, or holding every shard up to date
        return writable(cache) or all(
            cached_shard(name, sources, cache, feature_key, label_key, labels) is not None
            for name, sources in shards.items()
        )

    if cache_root is not None:
        chosen = keyed_cache(folder, cache_root)
        if not usable(chosen):
            raise ShardCacheError(
                f"Cannot convert the shards of {folder} for memory mapping: expected a writable "
                f"cache folder. Received: {chosen}, under the cache root {cache_root} "
                f"({CACHE_OPTION}), is not writable. Choose a writable root."
            )
        return chosen
    beside = folder / CACHE_FOLDER
    if usable(beside):
        return beside
    fallback = keyed_cache(folder, user_cache_root())
    if not usable(fallback):
        raise ShardCacheError(
            f"Cannot convert the shards of {folder} for memory mapping: expected a writable "
            f"cache folder. Received: {beside} and the per-user cache {fallback} are not "
            f"writable. Set {CACHE_OPTION} to a writable folder."
        )
    log.info(
        "Shard folder %s is not writable: converted members go to %s (set %s to choose).",
        folder,
        fallback,
        CACHE_OPTION,
    )
    return fallback


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
        stats = _shard_stats(name, source, features, label_array, (feature_key, label_key))
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


def check_consistent(shards: list[ShardFiles], allow_nonfinite: bool = False) -> None:
    """Checks that all shards agree on feature shape and dtypes, and features are finite.

    Raises:
        ShardFormatError: naming the first shard that disagrees with the first shard.
    """
    first = shards[0]
    for shard in shards:
        for field in ("feature_shape", "feature_dtype", "label_dtype"):
            if getattr(shard, field) != getattr(first, field):
                raise ShardFormatError(
                    f"Shard {shard.source}: expected {field} {getattr(first, field)} "
                    f"(as in {first.source}). Received {getattr(shard, field)}"
                )
        if not shard.all_finite and not allow_nonfinite:
            raise ShardFormatError(
                f"Shard {shard.source}: expected finite features. Received NaN or infinite "
                "values (set data.allow_nonfinite=true to accept them)."
            )


def source_files(shard: ShardFiles) -> list[Path]:
    """The files a shard was read from: its ``.npz``, or its feature and label ``.npy``."""
    if shard.sources:
        return [Path(p) for p in shard.sources]
    source = Path(shard.source)
    return [source] if source.suffix == ".npz" else [source, Path(shard.labels)]


def shard_summary(shard: ShardFiles) -> dict:
    """The shard's statistics as a plain dict (for tables and summaries)."""
    return asdict(shard)
