"""Generated datasets: cache folders named by a hash of their parameters, built atomically.

A builder writes ``train/`` and ``heldout/`` shard folders into a temporary folder, which is
renamed onto ``CACHE/<prefix>-<hash>`` once complete; ``params.json`` marks a finished folder. The
same parameters reuse the files, and concurrent runs never see half-written shards. A temporary
folder left by a killed build (``CACHE/.tmp-<prefix>-*``) is removed by the next build that finds
no live process writing it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from forgetbench.tempfiles import remove_stale, temporary_folder

FEATURE_KEY = "array1"
LABEL_KEY = "array2"
PARAMS_FILE = "params.json"
TEMP_PREFIX = ".tmp-"  # a folder being built: CACHE/.tmp-<prefix>-<random>

log = logging.getLogger(__name__)


def cached_folder(
    cache_dir: str | os.PathLike, prefix: str, params: dict, write: Callable[[Path], None]
) -> Path:
    """Returns ``cache_dir/<prefix>-<hash of params>``, calling ``write(tmp)`` if it is missing.

    Args:
        cache_dir: Root folder of the data cache.
        prefix: Name of the dataset family (start of the folder name).
        params: JSON-serialisable parameters that determine the files.
        write: Writes the files into the folder it is given (a temporary one).

    Returns:
        The complete cache folder.
    """
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache_dir) / f"{prefix}-{digest}"
    if (folder / PARAMS_FILE).exists():
        return folder
    leftovers = [*Path(cache_dir).glob(f"{TEMP_PREFIX}*"), *Path(cache_dir).glob(f".{prefix}-*")]
    for path, size in remove_stale(leftovers):  # .PREFIX-*: made by earlier versions
        log.info("Removed %s (%.1f MB), left by a build that did not finish.", path, size / 1e6)
    try:
        with temporary_folder(cache_dir, f"{TEMP_PREFIX}{prefix}-") as tmp:
            write(tmp)
            (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=2))
            os.rename(tmp, folder)
    except OSError:
        if not (folder / PARAMS_FILE).exists():  # another process finished the same folder
            raise
    return folder


def write_shard(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    """Writes one shard ``.npz`` in the common layout (float32 features, int64 labels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        **{FEATURE_KEY: np.asarray(features, np.float32), LABEL_KEY: np.asarray(labels, np.int64)},
    )
