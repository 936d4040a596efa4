"""Atomic file writing: a file is either complete or absent, never half-written."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from forgetbench.tempfiles import create_file

# The run folder's files (the contract in docs/architecture.md), named once for every module.
SUMMARY = "summary.json"
CURVES = "curves.parquet"
MODEL = "model.keras"
INTERRUPTED = "interrupted.json"


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``target`` and renames it onto ``target`` on success.

    Args:
        target: Final path of the file.

    Yields:
        A temporary path in the same folder, ending in ``target``'s suffix; whatever is
        written there replaces ``target`` atomically when the block exits without an
        exception, and is removed otherwise. It is created with the umask's mode (not
        ``mkstemp``'s 0600) and locked while the block runs (see ``forgetbench.tempfiles``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = create_file(target.parent, f".{target.name}.", f".tmp{target.suffix}")
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
        os.close(fd)  # releases the lock that marks the temporary as being written


def to_jsonable(obj: Any) -> Any:
    """Converts numpy values, paths and non-finite floats (to ``None``) into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Writes ``data`` as indented JSON, atomically (numpy scalars and arrays allowed)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")


def write_with(path: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Calls ``writer(tmp_path)`` and atomically moves the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file."""
    return json.loads(Path(path).read_text())
