"""The Split Digits protocol shared by both sides of the peer benchmark (numpy and sklearn only).

Both ``forgetbench_split_digits.py`` (forgetbench's venv) and ``avalanche_split_digits.py``
(``bench/peers/.venv``) import this module, so the constants below are the single definition
of the protocol. ``split_digits`` rebuilds forgetbench's ``digits_split`` shards
(``forgetbench.data.scenarios.write_class_incremental``) without forgetbench, and ``digest``
fingerprints them: both sides report the digest of the data they trained on, and ``run.py``
refuses to compare runs whose digests differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

CLASS_GROUPS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
HELDOUT_FRACTION = 0.3
SPLIT_SEED = 0  # seed of the stratified held-out split (data.seed), fixed across runs
HIDDEN = (100, 100)
NUM_CLASSES = 10
BATCH_SIZE = 32
EVAL_BATCH_SIZE = 4096  # forgetbench eval.batch_size; one batch per held-out split
EPOCHS = 5
LEARNING_RATE = 1e-3
REPLAY_CAPACITY = 500
REPLAY_SIZE = 32  # forgetbench: replayed samples per batch; Avalanche: its batch_size_mem default
EWC_LAMBDA = 100.0  # forgetbench's lambda in (lambda / 2) * sum F (theta - theta*)^2
STRATEGIES = ("sequential", "replay", "ewc", "joint")
SEEDS = (0, 1, 2)
SINGLE = ("sequential", 0)  # the run timed as a whole process on each side
RESULT_MARK = "PEERS_RESULT "  # prefix of the one JSON line a side prints for run.py


def split_digits(
    heldout_fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED
) -> list[dict[str, np.ndarray]]:
    """The five class-incremental shards: ``x_train, y_train, x_test, y_test`` per shard.

    Features are the 8x8 digits scaled to [0, 1] (``pixels / 16``, float32, 64 columns); each
    shard's held-out part is a stratified ``train_test_split`` of that shard's samples, exactly
    as forgetbench writes its ``digits_split`` cache (sorted indices, same ``random_state``).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    shards = []
    for group in CLASS_GROUPS:
        members = np.flatnonzero(np.isin(y, group))
        train, test = train_test_split(
            np.arange(len(members)),
            test_size=heldout_fraction,
            stratify=y[members],
            random_state=seed,
        )
        train, test = members[np.sort(train)], members[np.sort(test)]
        shards.append(
            {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
        )
    return shards


def digest(parts: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """SHA-256 (16 hex digits) of per-shard ``(x, y)`` sets, whatever the order within a shard.

    Rows are hashed as float32 features plus an int64 label, sorted within each shard: the two
    libraries order an experience's samples differently.
    """
    h = hashlib.sha256()
    for x, y in parts:
        x = np.ascontiguousarray(x, np.float32).reshape(len(y), -1)
        y = np.asarray(y, np.int64)
        rows = sorted(xi.tobytes() + yi.tobytes() for xi, yi in zip(x, y, strict=True))
        h.update(f"{len(rows)}:".encode())
        for row in rows:
            h.update(row)
    return h.hexdigest()[:16]


def shards_digest(shards: list[dict[str, np.ndarray]]) -> dict[str, str]:
    """Digests of the training and the held-out shards of ``split_digits``."""
    return {
        "train": digest([(s["x_train"], s["y_train"]) for s in shards]),
        "heldout": digest([(s["x_test"], s["y_test"]) for s in shards]),
    }


def emit(result: dict, path: Path | None = None) -> dict:
    """Prints ``result`` as the one machine-readable line ``run.py`` looks for (and writes it
    to ``path`` as JSON when given); returns it."""
    print(RESULT_MARK + json.dumps(result), flush=True)
    if path:
        path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def parse(output: str) -> dict:
    """The result a side printed with :func:`emit` (the last such line)."""
    lines = [ln for ln in output.splitlines() if ln.startswith(RESULT_MARK)]
    if not lines:
        raise ValueError("no result line in the output")
    return json.loads(lines[-1][len(RESULT_MARK) :])


def timed_process(cmd: list[str], log: Path, env: dict | None = None, cwd: Path = ROOT) -> tuple:
    """Runs ``cmd`` to completion, output to ``log``; returns ``(wall seconds, output)``.

    Raises:
        SystemExit: if the command fails (the tail of its log is shown).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        start = time.perf_counter()
        done = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
        seconds = time.perf_counter() - start
    text = log.read_text()
    if done.returncode != 0:
        tail = "\n".join(text.splitlines()[-30:])
        raise SystemExit(
            f"{' '.join(map(str, cmd))} failed ({done.returncode}); log {log}:\n{tail}"
        )
    return seconds, text


def quiet_env(**extra: str) -> dict:
    """This environment plus the Makefile's settings (quiet TensorFlow, fixed hash seed)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONHASHSEED", "0")
    env.update(extra)
    return env
