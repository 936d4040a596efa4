"""Where a shard folder's conversion cache goes.

Beside the shards (``FOLDER/.forgetbench_cache``) when that folder is writable, or already
holds an up-to-date conversion; otherwise into a per-user folder,
``$XDG_CACHE_HOME/forgetbench/shards/<folder name>-<hash of its absolute path>``. A cache root
chosen by the user (``data.convert_cache``) holds the same per-folder subfolders.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from forgetbench.data.convert import CACHE_OPTION
from forgetbench.data.errors import ShardCacheError
from forgetbench.data.shard_cache import cached_shard

CACHE_FOLDER = ".forgetbench_cache"  # converted members, beside the shards by default

log = logging.getLogger(__name__)


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
