"""All shards of a store packed into one ``.npy`` file per member, for gathers across many shards.

A gather over thousands of shards would otherwise map (and so hold open) a file per shard and
member, or reopen them batch after batch. The pack is the concatenation of the shards in the
store's order, written once into the store's cache folder and named by a digest of the shards'
names, sizes and file stamps: a changed shard or another order gives another pack, and a pack
in place is complete (written under a temporary name and renamed).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from forgetbench.data.shard_cache import source_stamp
from forgetbench.data.shard_checks import ShardFiles, chunk_rows, open_npy
from forgetbench.results.io import atomic_path

PACK_VERSION = 1

log = logging.getLogger(__name__)


def pack_digest(shards: list[ShardFiles]) -> str:
    """Digest of the shards' order, names, sizes and mapped files' stamps (16 hex digits)."""
    parts = [[s.name, s.n, source_stamp([Path(s.features), Path(s.labels)])] for s in shards]
    text = json.dumps([PACK_VERSION, parts])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pack_paths(cache: Path, shards: list[ShardFiles]) -> tuple[Path, Path]:
    """The packed features and labels files of ``shards`` in ``cache``."""
    digest = pack_digest(shards)
    return cache / f"pack-{digest}.features.npy", cache / f"pack-{digest}.labels.npy"


def _write_member(dest: Path, files: list[Path], sources: list[Path], total: int) -> None:
    first = open_npy(files[0], sources[0])
    with atomic_path(dest) as tmp:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=first.dtype, shape=(total, *first.shape[1:])
        )
        at = 0
        for path, source in zip(files, sources, strict=True):
            part = open_npy(path, source)
            step = chunk_rows(part)
            for start in range(0, len(part), step):
                chunk = part[start : start + step]
                out[at : at + len(chunk)] = chunk
                at += len(chunk)
            del part  # its file is closed here: one shard file open at a time
        out.flush()
        del out


def open_pack(cache: Path, shards: list[ShardFiles]) -> tuple[np.ndarray, np.ndarray]:
    """The packed features and labels of ``shards`` (written first if missing), memory-mapped.

    Raises:
        OSError: when the pack is missing and ``cache`` cannot be written.
    """
    features, labels = pack_paths(cache, shards)
    total = sum(s.n for s in shards)
    if not (features.exists() and labels.exists()):
        log.info("Packing %d shards into %s (once, for gathers across shards).", len(shards), cache)
        sources = [Path(s.source) for s in shards]
        _write_member(labels, [Path(s.labels) for s in shards], sources, total)
        _write_member(features, [Path(s.features) for s in shards], sources, total)
    x, y = open_npy(features, features), open_npy(labels, labels)
    if len(x) != total or len(y) != total:
        raise ValueError(
            f"Packed shards {features}: expected {total} rows. Received {len(x)} features and "
            f"{len(y)} labels; delete the file to have it written again"
        )
    return x, y
