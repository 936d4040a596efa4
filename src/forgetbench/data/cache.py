"""Generated datasets: cache folders named by a hash of their parameters, built atomically.

A builder writes ``train/`` and ``heldout/`` shard folders into a temporary folder, which is
renamed onto ``CACHE/<prefix>-<hash>`` once complete; ``params.json`` marks a finished folder. The
same parameters reuse the files, and concurrent runs never see half-written shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.store import ShardStore

FEATURE_KEY = "array1"
LABEL_KEY = "array2"
PARAMS_FILE = "params.json"


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
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=cache_dir))
    try:
        write(tmp)
        (tmp / PARAMS_FILE).write_text(json.dumps(params, indent=2))
        os.rename(tmp, folder)
    except OSError:
        if not (folder / PARAMS_FILE).exists():  # another process finished the same folder
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def write_shard(path: Path, features: np.ndarray, labels: np.ndarray) -> None:
    """Writes one shard ``.npz`` in the common layout (float32 features, int64 labels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        **{FEATURE_KEY: np.asarray(features, np.float32), LABEL_KEY: np.asarray(labels, np.int64)},
    )


def open_cached(folder: Path, name: str, num_classes: int) -> ShardDataset:
    """Opens ``folder/train`` and ``folder/heldout`` (common layout) as a dataset."""
    return ShardDataset(
        name=name,
        train=ShardStore(folder / "train", feature_key=FEATURE_KEY, label_key=LABEL_KEY),
        heldout=ShardStore(folder / "heldout", feature_key=FEATURE_KEY, label_key=LABEL_KEY),
        num_classes=num_classes,
    )
