"""A run folder's state: finished (and for which config), damaged, or being run right now.

A finished run is one whose ``summary.json`` and ``curves.parquet`` both read back, whose
config is the one asked for and whose data fingerprint is that of the data now. A folder
holding another config's results (or a run of data changed since) is refused, naming the
keys (files) that differ, instead of being reused (wrong numbers) or overwritten (lost results); a
damaged one is run again. While a run works in its folder it holds an exclusive lock on
``.lock`` there, so a second process (two sweeps over one folder) skips it instead of training
it twice and overwriting its files.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq

from forgetbench.data.fingerprint import changed
from forgetbench.per_strategy import drop_inert
from forgetbench.results.io import CURVES, SUMMARY
from forgetbench.results.run_files import read_summary
from forgetbench.sweep import SETTINGS_ONLY

LOCK = ".lock"
# Model builders' modules as runs recorded them before a rename: {current prefix: former}.
# Digests use the former names, so run ids and finished runs stay as they were; differences
# are listed under the current names.
RENAMED_TARGETS = {"forgetbench.train.networks.": "forgetbench.train.models."}
log = logging.getLogger(__name__)


class RunInProgressError(RuntimeError):
    """Another process is running the same run folder now."""


class OtherConfigError(ValueError):
    """The run folder holds the finished run of a different config."""


class OtherDataError(ValueError):
    """The run folder holds a finished run of data that has changed since."""


def check_same_data(summary: dict, out_dir: Path, current: Callable[[], dict]) -> None:
    """Checks that a finished run was made on the data a run would read now.

    A summary without a data fingerprint (written before runs recorded one) cannot be checked:
    it is reused as before, and a log line says so.

    Args:
        summary: The finished run's summary.
        out_dir: Its run folder.
        current: Builds the fingerprint of the data now (``forgetbench.data.fingerprint``);
            only called when the summary has one to compare with.

    Raises:
        OtherDataError: naming the shard files that changed.
    """
    recorded = summary.get("data")
    if not isinstance(recorded, dict) or "fingerprint" not in recorded:
        log.info("Run folder %s records no data fingerprint: reused unchecked.", out_dir)
        return
    now = current()
    if now["fingerprint"] != recorded["fingerprint"]:
        files = "; ".join(changed(recorded, now)) or "shard count or classes"
        raise OtherDataError(
            f"Run folder {out_dir} holds the finished run {summary.get('run_id')} of other data. "
            f"Expected the data it was run on (fingerprint {recorded['fingerprint']}). "
            f"Received fingerprint {now['fingerprint']}; changed since: {files}. Move that "
            "folder away to run again on the data as it is now, or choose another "
            "hydra.run.dir / hydra.sweep.dir"
        )


def comparable_config(resolved: dict) -> dict:
    """The resolved config without ``SETTINGS_ONLY`` keys (where things go, not what is run).

    Keys at an inert default (``per_strategy.INERT_DEFAULTS``: added options left at the value
    that changes nothing) are left out too, so earlier runs keep their ids.
    """
    config = copy.deepcopy(resolved)
    for key in SETTINGS_ONLY:
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return drop_inert(config)


def renamed_targets(config: dict, renames: dict[str, str]) -> dict:
    """``config`` with its model's ``_target_`` prefix renamed by ``renames`` (a copy if so)."""
    model = config.get("model")
    target = model.get("_target_") if isinstance(model, dict) else None
    for old, new in renames.items():
        if isinstance(target, str) and target.startswith(old):
            return {**config, "model": {**model, "_target_": new + target[len(old) :]}}
    return config


def config_digest(resolved: dict) -> str:
    """8 hex digits identifying what a resolved config runs (the end of a run id)."""
    recorded = renamed_targets(comparable_config(resolved), RENAMED_TARGETS)
    text = json.dumps(recorded, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def setting_digest(resolved: dict) -> str:
    """8 hex digits identifying a config apart from its seed: runs that average together."""
    return config_digest({key: value for key, value in resolved.items() if key != "seed"})


def config_differences(
    old: dict, new: dict, limit: int = 6, ignore: tuple[str, ...] = ()
) -> list[str]:
    """``key: old -> new`` for the first ``limit`` dotted keys whose values differ.

    Args:
        old: A resolved config.
        new: Another resolved config.
        limit: Most differences listed.
        ignore: Dotted keys left out of the comparison.
    """

    def flat(node, prefix=""):
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                out.update(flat(value, f"{prefix}{key}."))
            return out
        return {prefix[:-1]: node}

    def shown(values: dict, key: str) -> str:
        return repr(values[key]) if key in values else "(absent)"

    current = {former: now for now, former in RENAMED_TARGETS.items()}
    a, b = (flat(renamed_targets(comparable_config(c), current)) for c in (old, new))
    keys = sorted(k for k in a.keys() | b.keys() if k not in ignore and shown(a, k) != shown(b, k))
    return [f"{k}: {shown(a, k)} -> {shown(b, k)}" for k in keys[:limit]]


def finished_summary(out_dir: Path, resolved: dict) -> dict | None:
    """The summary of the finished run of ``resolved`` in ``out_dir``, or ``None`` to run it.

    Raises:
        OtherConfigError: if ``out_dir`` holds the finished run of another config.
    """
    path = out_dir / SUMMARY
    if not path.exists():
        return None
    try:
        summary = read_summary(out_dir)  # with the tables beside it
        pq.read_metadata(out_dir / CURVES)
    except (OSError, ValueError) as exc:  # truncated, empty, not JSON / parquet, missing
        log.warning("Run folder %s is damaged (%s): running it again.", out_dir, exc)
        return None
    stored = summary.get("config")
    if isinstance(stored, dict) and config_digest(stored) != config_digest(resolved):
        changes = "; ".join(config_differences(stored, resolved))
        raise OtherConfigError(
            f"Run folder {out_dir} holds the finished run {summary.get('run_id')} of another "
            f"config. Expected this config's run ({config_digest(resolved)}). Differences "
            f"(stored -> now): {changes}. Move that folder away, or choose another "
            "hydra.run.dir / hydra.sweep.dir"
        )
    return summary


def clear_temporaries(out_dir: Path) -> None:
    """Removes the half-written temporary files a killed write left (``.NAME.*.tmp*``)."""
    for path in out_dir.glob(".*.tmp*"):
        if path.is_file():
            path.unlink(missing_ok=True)


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``out_dir/.lock`` while the block runs.

    Raises:
        RunInProgressError: if another process holds it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RunInProgressError(
                f"Run folder {out_dir} is being run by another process now (it holds "
                f"{out_dir / LOCK}); this job leaves it to that process."
            ) from exc
        yield
    finally:
        os.close(fd)
