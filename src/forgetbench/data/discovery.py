"""Finding the shards of a folder: ``NAME.npz``, or ``NAME.<feature_key>.npy`` with labels.

A shard is either one ``NAME.npz`` holding a feature and a label member, or a pair of files
``NAME.<feature_key>.npy`` and ``NAME.<label_key>.npy``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from forgetbench.data.errors import ShardFormatError


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
