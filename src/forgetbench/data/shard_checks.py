"""Per-shard validation and statistics: readable arrays, shapes, dtypes, class ids, finiteness.

The statistics are taken once per source (in chunks over the memory maps) and kept in
:class:`ShardFiles`; :func:`check_consistent` compares the shards of a folder.
"""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from forgetbench.data.errors import ShardFormatError

STATS_CHUNK_BYTES = 64 * 2**20


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


def shard_stats(
    name: str, source: Path, features: np.ndarray, labels: np.ndarray, keys: tuple[str, str]
) -> dict:
    """Checks one shard's arrays and returns its statistics (rows, shapes, dtypes, classes).

    Raises:
        ShardFormatError: naming the file, the array and what was expected and received.
    """
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
