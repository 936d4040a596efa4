"""Evaluation groups: which shards are evaluated together, so outputs scale with the group count.

``eval.groups`` chooses them:

- ``null`` (default): one group per shard up to ``eval.max_groups`` shards; above it,
  ``eval.max_groups`` contiguous groups of (nearly) equal shard counts.
- an integer ``G``: ``G`` contiguous groups of (nearly) equal shard counts.
- ``"re:PATTERN"``: groups named from the shard names: a shard's group is the first capture
  group of ``PATTERN`` in its name (the whole match without one), for example by month with
  ``"re:(20..-..)"`` for ``day_2023-01-05``.
- a mapping ``{shard name: group name}`` naming the group of every shard.

Groups are numbered by the training position of their last shard, so the end of group ``i``'s
training comes before that of group ``i + 1`` (``R[i]`` is read there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_GROUPS = 50


@dataclass(frozen=True)
class Groups:
    """The evaluation group of every shard.

    Attributes:
        of_shard: Group index of each shard, in training order (int64, length ``K``).
        names: Name of each group.
    """

    of_shard: np.ndarray
    names: list[str]

    @property
    def count(self) -> int:
        """Number of groups."""
        return len(self.names)

    @property
    def per_shard(self) -> bool:
        """Whether every shard is a group of its own, in shard order."""
        return np.array_equal(self.of_shard, np.arange(len(self.of_shard)))

    def last_shards(self) -> np.ndarray:
        """Training position of each group's last shard (increasing)."""
        last = np.zeros(self.count, np.int64)
        np.maximum.at(last, self.of_shard, np.arange(len(self.of_shard)))
        return last

    def table(self) -> dict[str, list]:
        """Columns ``shard, group, group_name`` of the shard-to-group map."""
        return {
            "shard": list(range(len(self.of_shard))),
            "group": self.of_shard.tolist(),
            "group_name": [self.names[g] for g in self.of_shard],
        }


def _numbered(labels: list[str], names: list[str]) -> Groups:
    """Groups from one label per shard, numbered by the position of their last shard."""
    last = {label: k for k, label in enumerate(labels)}
    ordered = sorted(last, key=last.get)
    index = {label: i for i, label in enumerate(ordered)}
    return Groups(np.array([index[label] for label in labels], np.int64), ordered)


def contiguous(names: list[str], count: int) -> Groups:
    """``count`` contiguous groups of nearly equal shard counts, named ``first..last``."""
    k = len(names)
    count = max(1, min(int(count), k))
    of_shard = np.arange(k, dtype=np.int64) * count // k
    if count == k:
        return Groups(of_shard, list(names))
    bounds = np.searchsorted(of_shard, np.arange(count + 1))
    labels = [
        f"{names[lo]}..{names[hi - 1]}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return Groups(of_shard, labels)


def shard_groups(names: list[str], spec=None, max_groups: int = DEFAULT_MAX_GROUPS) -> Groups:
    """The evaluation groups of shards ``names`` (training order) under ``eval.groups``.

    Args:
        names: Shard names in training order.
        spec: ``eval.groups``: ``None``, an int, ``"re:PATTERN"`` or a mapping (module doc).
        max_groups: ``eval.max_groups``: above this many shards, ``None`` groups them.

    Raises:
        ValueError: naming ``eval.groups`` with the value expected and received.
    """
    if spec is None:
        return contiguous(names, min(len(names), int(max_groups)))
    if isinstance(spec, bool):
        raise ValueError(_invalid(spec))
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(_invalid(spec))
        return contiguous(names, spec)
    if isinstance(spec, str) and spec.startswith("re:"):
        pattern = re.compile(spec[3:])
        labels = []
        for name in names:
            match = pattern.search(name)
            if match is None:
                raise ValueError(
                    f"Invalid config value eval.groups={spec!r}: expected the pattern to match "
                    f"every shard name. Received the shard {name!r}, which it does not match"
                )
            labels.append(match.group(1) if pattern.groups else match.group(0))
        return _numbered(labels, names)
    if isinstance(spec, Mapping):
        missing = [name for name in names if name not in spec]
        if missing:
            raise ValueError(
                f"Invalid config value eval.groups: expected a group for every shard. Received "
                f"none for {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                f"({len(missing)} shards)"
            )
        return _numbered([str(spec[name]) for name in names], names)
    raise ValueError(_invalid(spec))


def _invalid(spec) -> str:
    return (
        f"Invalid config value eval.groups={spec!r}. Expected null (one group per shard up to "
        "eval.max_groups), a number of contiguous groups >= 1, 're:PATTERN' (groups named by "
        "a pattern in the shard names) or a mapping of shard names to group names"
    )


def config_groups(cfg, names: list[str]) -> Groups:
    """The groups of ``names`` under a run config's ``eval.groups`` and ``eval.max_groups``."""
    from omegaconf import OmegaConf

    spec = OmegaConf.select(cfg, "eval.groups", default=None)
    if OmegaConf.is_config(spec):
        spec = OmegaConf.to_container(spec, resolve=True)
    max_groups = OmegaConf.select(cfg, "eval.max_groups", default=DEFAULT_MAX_GROUPS)
    return shard_groups(names, spec, int(max_groups))


def group_spans(spans: list[dict], groups: Groups) -> list[dict]:
    """Training spans per group: consecutive phases training shards of one group merged.

    Args:
        spans: Rows ``phase, train_shard, start_samples, end_samples`` per phase
            (``train_shard`` ``None`` for mixed feeds, which are kept as they are).
        groups: The evaluation groups.

    Returns:
        The same rows, ``train_shard`` holding the group index, one row per run of phases of
        the same group (its first phase's index, the first start and the last end).
    """
    if groups.per_shard:
        return spans
    out: list[dict] = []
    for span in spans:
        shard = span["train_shard"]
        group = None if shard is None else int(groups.of_shard[shard])
        if out and group is not None and out[-1]["train_shard"] == group:
            out[-1]["end_samples"] = span["end_samples"]
        else:
            out.append({**span, "train_shard": group})
    return out
