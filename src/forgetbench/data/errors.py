"""Errors about a user's data: bad shard files, no writable cache, a full disk."""

from __future__ import annotations

import errno


class ShardFormatError(ValueError):
    """A shard file or folder does not have the expected format."""


class ShardCacheError(PermissionError):
    """No writable place for the converted members of a shard folder."""


class DiskFullError(OSError):
    """Not enough free space to write a cache file; names the place, the space needed and free."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


class LabelFormatError(ShardFormatError):
    """Labels of one or more shards cannot be read as class ids.

    Attributes:
        problems: ``(shard file, what is wrong)`` for every offending shard.
        fixes: What to do, once for all of them.
    """

    def __init__(self, key: str, problems: list[tuple[str, str]], fixes: list[str]) -> None:
        self.key, self.problems, self.fixes = key, problems, list(dict.fromkeys(fixes))
        lines = [f"  {source}: {problem}" for source, problem in problems]
        files = "1 shard file" if len(problems) == 1 else f"{len(problems)} shard files"
        super().__init__(
            f"Labels '{key}' of {files} are not class ids (expected integers >= 0 of shape "
            "(samples,), or (samples, 1)):\n"
            + "\n".join(lines)
            + "\nTo fix: "
            + "; or ".join(self.fixes)
        )

    @classmethod
    def combine(cls, errors: list[LabelFormatError]) -> LabelFormatError:
        """One error naming every offending file of ``errors``."""
        problems = [p for e in errors for p in e.problems]
        return cls(errors[0].key, problems, [f for e in errors for f in e.fixes])
