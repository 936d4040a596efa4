"""A user's folder of shard files (``.npz``, or ``.npy`` pairs) as a dataset.

The held-out split of each shard is either read from a parallel folder holding shards of the same
names (``heldout_dir``) or carved from the shard with a seeded fraction (``heldout_fraction``).
An optional validation split is read the same way from ``validation_dir``, or carved from the
training part that remains (``validation_fraction``; 0: no validation split).
A carve is written once into the data cache, in a folder named by a hash of the parameters and of
the source files' sizes and modification times (a changed shard gives a new carve). It copies
rows in chunks between memory maps, so memory does not grow with the folder's size.
"""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from forgetbench.data import diskspace
from forgetbench.data.dataset import ShardDataset, check_labels_below
from forgetbench.data.discovery import discover_shards
from forgetbench.data.errors import ShardFormatError
from forgetbench.data.generated import FEATURE_KEY, LABEL_KEY, cached_folder
from forgetbench.data.shard_cache import source_stamp
from forgetbench.data.shard_checks import chunk_rows, source_files
from forgetbench.data.store import ShardStore
from forgetbench.data.validation import check_fraction

SPLITS = ("train", "heldout")
MAX_INFERRED_CLASSES = 1_000_000  # above this, data.num_classes must be set
CARVE_FIX = (
    "Free some space there, set paths.data_cache (or FORGETBENCH_DATA_CACHE) to a folder on a "
    "larger disk, or give data.heldout_dir instead of carving."
)


def build_npz_dir(
    cache_dir: str | os.PathLike,
    *,
    path: str | os.PathLike,
    name: str = "npz_dir",
    feature_key: str = FEATURE_KEY,
    label_key: str = LABEL_KEY,
    order: list[str] | None = None,
    heldout_fraction: float = 0.2,
    heldout_dir: str | os.PathLike | None = None,
    num_classes: int | None = None,
    allow_nonfinite: bool = False,
    seed: int = 0,
    convert_cache: str | os.PathLike | None = None,
    labels: str = "index",
    validation_fraction: float = 0.0,
    validation_dir: str | os.PathLike | None = None,
) -> ShardDataset:
    """Opens a folder of shards, with a held-out split per shard.

    Args:
        cache_dir: Root folder of the data cache (where a carved split goes).
        path: Folder of ``NAME.npz`` files, or ``NAME.<feature_key>.npy`` and
            ``NAME.<label_key>.npy`` pairs. Converted members go to ``path/.forgetbench_cache``
            when ``path`` is writable (see ``convert_cache``).
        name: Dataset name in results.
        feature_key: Key (member name) of the features.
        label_key: Key (member name) of the integer labels.
        order: Shard names in training order; file-name order when ``None``.
        heldout_fraction: Fraction of every shard carved out, uniformly at random, as its
            held-out split (ignored when ``heldout_dir`` is given).
        heldout_dir: Folder with a held-out shard of the same name for every training shard.
        num_classes: Number of classes of the output layer; the largest label + 1 when ``None``.
        allow_nonfinite: Accept NaN or infinite features instead of raising.
        seed: Seed of the carve.
        convert_cache: Root folder for the converted members of ``path`` and ``heldout_dir``
            (each in ``<folder name>-<hash of its path>``); ``None``: beside the data when
            writable, else ``$XDG_CACHE_HOME/forgetbench/shards``.
        labels: How labels are read: ``index`` (class ids; whole floats and ``(N, 1)`` are
            accepted), ``onehot`` or ``argmax`` (rows of ``(N, C)``; see
            :mod:`forgetbench.data.labels`).
        validation_fraction: Fraction of every training shard (what remains after the held-out
            carve) carved out, uniformly at random, as its validation split; 0: none (ignored
            when ``validation_dir`` is given).
        validation_dir: Folder with a validation shard of the same name for every training shard.

    Raises:
        ShardFormatError: naming the file and what was expected, for any bad shard.
        ShardCacheError: naming the folder and ``data.convert_cache`` when no cache folder
            can be written.
    """
    options = {"feature_key": feature_key, "label_key": label_key}
    options["allow_nonfinite"] = allow_nonfinite
    options["labels"] = labels
    options["cache_root"] = None if convert_cache is None else Path(convert_cache).expanduser()
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(
            f"data.num_classes: expected a positive integer, or null to take the largest "
            f"label + 1. Received: {num_classes!r}"
        )
    train = ShardStore(Path(path).expanduser(), order=order, **options)
    if num_classes is not None:  # before any carve, so that errors name the user's files
        check_labels_below(num_classes, train)
    labelled = [train]  # the user's shards: a carve's classes are among them
    sources = {s.name: s.source for s in train.shards}
    if heldout_dir is None:
        keys = {"feature_key": feature_key, "label_key": label_key}
        train, heldout = carve_heldout(
            train,
            cache_dir,
            fraction=heldout_fraction,
            seed=seed,
            allow_nonfinite=allow_nonfinite,
            **keys,
        )
    else:
        heldout = open_heldout_dir(train, Path(heldout_dir).expanduser(), **options)
        labelled.append(heldout)
    validation = None
    if validation_dir is not None:
        validation = open_heldout_dir(
            train, Path(validation_dir).expanduser(), role="Validation", **options
        )
        labelled.append(validation)
    elif check_fraction(validation_fraction) > 0:
        train, validation = carve_heldout(
            train,
            cache_dir,
            fraction=validation_fraction,
            seed=seed,
            allow_nonfinite=allow_nonfinite,
            feature_key=FEATURE_KEY if heldout_dir is None else feature_key,
            label_key=LABEL_KEY if heldout_dir is None else label_key,
            key="data.validation_fraction",
        )
    if num_classes is None:
        num_classes = inferred_num_classes(*labelled)
    return ShardDataset(
        name, train, heldout, num_classes=num_classes, sources=sources, validation=validation
    )


def inferred_num_classes(*stores: ShardStore) -> int:
    """The largest label of any shard + 1.

    Raises:
        ShardFormatError: naming the shard, if that exceeds ``MAX_INFERRED_CLASSES`` (a stray
            label would otherwise size the output layer).
    """
    shards = [s for store in stores for s in store.shards]
    top = max(shards, key=lambda s: max(s.classes))
    num_classes = max(top.classes) + 1
    if num_classes > MAX_INFERRED_CLASSES:
        raise ShardFormatError(
            f"Labels of {top.source}: expected class ids below {MAX_INFERRED_CLASSES:,} when "
            f"data.num_classes is null. Received {max(top.classes)}. Set data.num_classes if "
            "that many classes is intended"
        )
    return num_classes


def open_heldout_dir(
    train: ShardStore,
    heldout_dir: Path,
    *,
    feature_key: str,
    label_key: str,
    role: str = "Held-out",
    **options,
) -> ShardStore:
    """Opens the held-out shards of ``train``'s shards, in the same order, from ``heldout_dir``.

    Args:
        train: The training shards.
        heldout_dir: Folder holding a shard of the same name for every training shard.
        feature_key: Key (member name) of the features.
        label_key: Key (member name) of the labels.
        role: What the folder holds, in messages (``Held-out`` or ``Validation``).
        **options: Further :class:`ShardStore` arguments (``allow_nonfinite``, ``cache_root``).

    Raises:
        ShardFormatError: naming the shards missing from ``heldout_dir``, or held out there
            without a training shard.
    """
    if heldout_dir.resolve() == train.folder.resolve():
        warnings.warn(
            f"data.{role.lower().replace('-', '')}_dir is the training folder {train.folder}: "
            "accuracies are measured on the training samples",
            stacklevel=2,
        )
    held = discover_shards(heldout_dir, feature_key, label_key)
    missing = [name for name in train.names if name not in held]
    unknown = sorted(set(held) - set(discover_shards(train.folder, feature_key, label_key)))
    if missing or unknown:
        raise ShardFormatError(
            f"{role} folder {heldout_dir}: expected one shard per training shard of "
            f"{train.folder}, with the same names. Received: missing {missing}, no training "
            f"shard for {unknown}"
        )
    keys = {"feature_key": feature_key, "label_key": label_key}
    return ShardStore(heldout_dir, order=train.names, **keys, **options)


def heldout_count(n: int, fraction: float, source: str, key: str = "data.heldout_fraction") -> int:
    """Held-out samples carved from a shard of ``n``: ``fraction * n`` rounded, at least 1.

    Raises:
        ValueError: if ``fraction`` is not strictly between 0 and 1.
        ShardFormatError: if no training sample would be left.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ValueError(f"{key}: expected a number in (0, 1). Received: {fraction}")
    count = max(1, int(n * fraction + 0.5))
    if count >= n:
        raise ShardFormatError(
            f"Shard {source}: expected at least 2 samples to carve a "
            f"{'held-out' if 'heldout' in key else 'validation'} split "
            f"({key}={fraction}). Received {n}"
        )
    return count


def carve_heldout(
    store: ShardStore,
    cache_dir: str | os.PathLike,
    *,
    fraction: float,
    seed: int,
    feature_key: str,
    label_key: str,
    allow_nonfinite: bool = False,
    key: str = "data.heldout_fraction",
) -> tuple[ShardStore, ShardStore]:
    """Splits every shard of ``store`` into a training and a held-out shard in the data cache.

    Each shard's held-out rows are drawn by a generator seeded with ``seed`` and the shard's
    name, so a shard's split does not depend on the other shards or their order.

    Args:
        store: The shards to split.
        cache_dir: Root folder of the data cache.
        fraction: Fraction of every shard held out.
        seed: Seed of the carve.
        feature_key: Key of the features ``store`` was read with.
        label_key: Key of the labels ``store`` was read with.
        allow_nonfinite: Accept NaN or infinite features instead of raising.
        key: The config key of ``fraction``, in messages; a carve for another key
            (``data.validation_fraction``) draws from its own random stream.

    Returns:
        The training and held-out stores, ``.npy`` pairs with keys ``array1`` and ``array2``.
    """
    counts = [heldout_count(s.n, fraction, s.source, key) for s in store.shards]
    stream = [] if key == "data.heldout_fraction" else [zlib.crc32(key.encode())]
    params = {
        "source": str(store.folder.resolve()),
        "files": [source_stamp(source_files(s)) for s in store.shards],
        "keys": [feature_key, label_key],
        "heldout_fraction": fraction,
        "seed": seed,
    }
    if stream:  # only then: held-out carves keep their cache folders
        params["split"] = key

    def write(folder: Path) -> None:
        needed = sum(a.nbytes for a in (*store.features, *store.labels))
        what = f"the carved train and held-out splits of {store.folder}"
        diskspace.require(cache_dir, needed, what, CARVE_FIX)
        for k, (shard, count) in enumerate(zip(store.shards, counts, strict=True)):
            rng = np.random.default_rng([seed, zlib.crc32(shard.name.encode()), *stream])
            held = np.sort(rng.choice(shard.n, size=count, replace=False))
            kept = np.setdiff1d(np.arange(shard.n), held, assume_unique=True)
            for split, rows in (("train", kept), ("heldout", held)):
                for source, key in ((store.features[k], FEATURE_KEY), (store.labels[k], LABEL_KEY)):
                    copy_rows(source, rows, folder / split / f"{shard.name}.{key}.npy")

    folder = cached_folder(cache_dir, "npz_dir", params, write)
    train, heldout = (
        ShardStore(folder / split, order=store.names, allow_nonfinite=allow_nonfinite)
        for split in SPLITS
    )
    return train, heldout


def copy_rows(source: np.ndarray, rows: np.ndarray, dest: Path) -> None:
    """Writes ``source[rows]`` (sorted rows) to the ``.npy`` file ``dest``, a chunk at a time.

    The file's space is reserved before it is mapped, so a full disk raises
    :class:`~forgetbench.data.errors.DiskFullError` (not ``SIGBUS``) and leaves no file.
    """
    step = chunk_rows(source)

    def fill(out: np.ndarray) -> None:
        for start in range(0, len(rows), step):
            out[start : start + step] = source[rows[start : start + step]]

    shape = (len(rows), *source.shape[1:])
    diskspace.write_npy(dest, source.dtype, shape, fill, f"a carved split ({dest.name})", CARVE_FIX)
