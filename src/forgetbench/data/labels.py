"""Labels in the formats people store, normalised to 1-D int64 class ids (``data.labels``).

Accepted as they are: 1-D integer class ids. Accepted with one log line, and written once as
``int64`` into the shard's cache: booleans, floats whose values are all whole numbers (the usual
format for sigmoid models), and labels of shape ``(N, 1)`` (squeezed). Rows of shape ``(N, C)``
only when asked: ``data.labels=onehot`` takes the argmax of rows that are exactly one-hot (and
refuses any other row); ``data.labels=argmax`` takes the argmax of any rows (probabilities,
scores). Anything else is refused with the fix in the message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from forgetbench.data.diskspace import write_npy
from forgetbench.data.errors import LabelFormatError

MODES = ("index", "onehot", "argmax")
OPTION = "data.labels (forgetbench-data: --labels)"
CAST_FIX = "store class ids, e.g. np.savez(path, array1=x, array2=y.astype('int64').ravel())"
ONEHOT_FIX = (
    "set data.labels=onehot (forgetbench-data: --labels onehot) for one-hot rows (argmax; "
    "every row exactly one 1)"
)
ARGMAX_FIX = (
    "set data.labels=argmax (forgetbench-data: --labels argmax) for probability or score rows "
    "(argmax of any row)"
)
CHUNK_BYTES = 64 * 2**20


def _chunks(array: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize)
    step = max(1, CHUNK_BYTES // row_bytes)
    for start in range(0, len(array), step):
        yield start, np.asarray(array[start : start + step])


def check_mode(mode: str) -> None:
    """Raises ``ValueError`` unless ``mode`` is one of ``MODES``."""
    if mode not in MODES:
        raise ValueError(f"{OPTION}: expected one of {list(MODES)}. Received: {mode!r}")


def _refuse(key: str, source: Path, problem: str, *fixes: str) -> LabelFormatError:
    return LabelFormatError(key, [(str(source), problem)], list(fixes))


def plan(labels: np.ndarray, source: Path, key: str, mode: str = "index") -> str | None:
    """What must be done to read ``labels`` as 1-D class ids: ``None`` (nothing) or what.

    Args:
        labels: The labels as stored (a memory map).
        source: The shard file, named in errors.
        key: The labels' key, named in errors.
        mode: ``data.labels``: ``index``, ``onehot`` or ``argmax``.

    Returns:
        ``None`` for 1-D integer labels; else a description of the conversion, for the log.

    Raises:
        LabelFormatError: naming the file and the fix, for labels that cannot be class ids.
    """
    check_mode(mode)
    shape, dtype = labels.shape, labels.dtype
    if dtype.kind not in "biuf":
        raise _refuse(key, source, f"dtype {dtype}, not numbers", CAST_FIX)
    if labels.ndim == 2 and shape[1] == 1:
        done = _plan_values(labels, source, key)
        return f"shape {shape} squeezed" + (f", {done}" if done else "")
    if labels.ndim == 2 and shape[1] > 1:
        return _plan_rows(labels, source, key, mode)
    if labels.ndim != 1:
        fixes = (CAST_FIX,) if labels.ndim != 2 else (CAST_FIX, ONEHOT_FIX)
        raise _refuse(key, source, f"shape {shape}", *fixes)
    return _plan_values(labels, source, key)


def _plan_values(labels: np.ndarray, source: Path, key: str) -> str | None:
    dtype = labels.dtype
    if dtype.kind in "iu":
        return None
    if dtype.kind == "b":
        return f"{dtype} cast to int64"
    for start, chunk in _chunks(labels):
        bad = ~np.isfinite(chunk) | (chunk != np.round(chunk))
        if bad.any():
            row = start + int(np.flatnonzero(bad.reshape(len(chunk), -1).any(1))[0])
            value = chunk.reshape(len(chunk), -1)[row - start, 0].item()
            problem = f"{dtype} value {value!r} at row {row} is not a whole number"
            raise _refuse(key, source, problem, CAST_FIX)
    return f"{dtype} with whole values cast to int64"


def _plan_rows(labels: np.ndarray, source: Path, key: str, mode: str) -> str:
    shape = labels.shape
    if mode == "index":
        problem = f"shape {shape}: rows of {shape[1]} values (one-hot or scores?)"
        raise _refuse(key, source, problem, ONEHOT_FIX, ARGMAX_FIX)
    for start, chunk in _chunks(labels):
        ok = np.isfinite(chunk).all(1) if labels.dtype.kind == "f" else np.ones(len(chunk), bool)
        if mode == "onehot":
            ok = ok & ((chunk == 0) | (chunk == 1)).all(1) & (chunk.sum(1) == 1)
        if not ok.all():
            row = start + int(np.flatnonzero(~ok)[0])
            values = np.array2string(chunk[row - start], threshold=8, precision=3)
            what = "not exactly one-hot" if mode == "onehot" else "not finite"
            fixes = (ARGMAX_FIX,) if mode == "onehot" else (CAST_FIX,)
            raise _refuse(key, source, f"row {row} {values} is {what}", *fixes)
    kind = "one-hot rows" if mode == "onehot" else "rows"
    return f"{kind} of shape {shape} turned into class ids by argmax"


def write_class_ids(labels: np.ndarray, dest: Path, reserve_for: str) -> None:
    """Writes ``labels`` (as accepted by :func:`plan`) to ``dest`` as 1-D int64 class ids.

    Args:
        labels: The stored labels.
        dest: The ``.npy`` file to write (atomically, a chunk at a time).
        reserve_for: What the file is, for a disk-full error.
    """
    rows = labels.shape[1] > 1 if labels.ndim == 2 else False

    def fill(out: np.ndarray) -> None:
        for start, chunk in _chunks(labels):
            ids = chunk.argmax(1) if rows else chunk.reshape(len(chunk))
            out[start : start + len(chunk)] = ids

    write_npy(dest, np.dtype(np.int64), (len(labels),), fill, reserve_for)
