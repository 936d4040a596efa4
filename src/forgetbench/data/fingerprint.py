"""A dataset's fingerprint: what a run was trained and evaluated on, by content.

Each shard's digest is a hash of its member files' bytes (computed once, when the shard is
converted or first validated, and kept in the shard cache's metadata), so the fingerprint
changes when any shard's content changes, and not when the same bytes are written again (a
regenerated data cache, a copy, ``touch``).
"""

from __future__ import annotations

import hashlib
import json

from forgetbench.data.dataset import ShardDataset

SPLITS = ("train", "heldout", "validation")  # validation only where the dataset has one


def fingerprint(dataset: ShardDataset) -> dict:
    """``{"fingerprint": 16 hex digits, "shards": {split: {name: digest}}, "files": ...}``.

    ``files`` maps each shard name to the file it was read from (the user's file for a carved
    split), for messages naming what changed.
    """
    stores = {split: getattr(dataset, split) for split in SPLITS}
    shards = {
        split: {s.name: s.digest for s in store.shards}
        for split, store in stores.items()
        if store is not None
    }
    text = json.dumps({"num_classes": dataset.num_classes, "shards": shards}, sort_keys=True)
    files = {s.name: s.source for s in dataset.train.shards}
    files.update(dataset.sources)
    return {
        "fingerprint": hashlib.sha256(text.encode()).hexdigest()[:16],
        "shards": shards,
        "files": files,
    }


def changed(old: dict, new: dict) -> list[str]:
    """``file (split: what)`` for every shard whose content differs between two fingerprints."""
    lines = []
    names = dict.fromkeys([*new.get("files", {}), *old.get("files", {})])
    for name in names:
        what = []
        for split in SPLITS:
            before = old.get("shards", {}).get(split, {}).get(name)
            after = new.get("shards", {}).get(split, {}).get(name)
            if before != after:
                state = "added" if before is None else "removed" if after is None else "changed"
                what.append(f"{split} {state}")
        if what:
            path = new.get("files", {}).get(name) or old.get("files", {}).get(name)
            lines.append(f"{path} ({', '.join(what)})")
    return lines
