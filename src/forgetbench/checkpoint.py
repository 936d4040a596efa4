"""Checkpoints at phase ends, and a run resumed from one with the results it would have had.

At the end of every ``checkpoint.every``-th phase but the last (at most one per
``checkpoint.min_interval_s`` seconds), the run folder's ``checkpoint/`` holds everything the
rest of the run depends on:

- ``variables.npz``: the engine's variables (network, optimizer with its step count, counters,
  epoch sums, accumulators, the plugins' graph variables, the teacher);
- ``state.pkl``: the trainer's evaluation records, training log and evaluation schedule, every
  plugin's Python-side state (memories, logs, generators) and the global Python and numpy
  random states (pickled: memories are arrays inside objects; written and read by this
  package only);
- ``manifest.json``: the phase, samples and steps, the config and data it belongs to, and the
  SHA-256 of the two other files.

Every other random stream is keyed by ``(seed, phase, epoch, ...)``, so nothing else is needed.
The new checkpoint is written in a temporary folder; the old one is renamed to
``checkpoint.previous`` and removed only once the new one is in place. A run started in the
folder resumes from the checkpoint of its own config and data; another config's or data's is
refused (:class:`CheckpointMismatchError`), a damaged one ignored with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import random
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from forgetbench.data.fingerprint import changed
from forgetbench.run_folder import OtherConfigError, OtherDataError, config_differences
from forgetbench.tempfiles import remove_stale, stale_temporaries, temporary_folder

CHECKPOINT = "checkpoint"
PREVIOUS = "checkpoint.previous"
MANIFEST, VARIABLES, STATE = "manifest.json", "variables.npz", "state.pkl"
FORMAT = 1
log = logging.getLogger(__name__)


class CheckpointMismatchError(OtherConfigError):
    """The run folder's checkpoint belongs to another config or does not fit this run."""


class CheckpointDataError(OtherDataError):
    """The run folder's checkpoint was made on data that has changed since."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def random_states() -> dict:
    """The global Python and numpy random states."""
    return {"python_random": random.getstate(), "numpy_random": np.random.get_state()}


def set_random_states(states: dict) -> None:
    """Puts back what :func:`random_states` returned."""
    random.setstate(states["python_random"])
    np.random.set_state(states["numpy_random"])


def write_checkpoint(
    out_dir: Path,
    trainer,
    phase: int,
    identity: dict,
    epoch: int | None = None,
    phase_start: dict | None = None,
) -> Path:
    """Writes the checkpoint at the end of ``phase`` (or of its ``epoch``) atomically.

    Args:
        out_dir: The run folder.
        trainer: The run's :class:`~forgetbench.train.trainer.Trainer`.
        phase: The index of the phase just completed (or in progress, with ``epoch``).
        identity: ``config`` (comparable resolved config), ``config_digest``, ``data``
            (fingerprint) and ``run_id`` of the run.
        epoch: Within a phase: the epoch just completed.
        phase_start: Within a phase: ``strategy`` (the plugins' state before the phase's
            ``before_phase``), the ``random`` states (:func:`random_states`) and the engine's
            ``variables`` then; a resumed run runs ``before_phase`` again from them.

    Returns:
        The checkpoint's folder.
    """
    state = {"trainer": trainer.state(), **random_states()}
    variables = {name: v.numpy() for name, v in trainer.engine.state_variables().items()}
    arrays = {f"v{i}": v for i, v in enumerate(variables.values())}
    start_names = []
    if epoch is None:
        state["strategy"] = trainer.strategy.state()
    else:
        state["strategy"] = phase_start["strategy"]
        state["phase_start_random"] = phase_start["random"]
        start_names = list(phase_start["variables"])
        arrays.update({f"s{i}": v for i, v in enumerate(phase_start["variables"].values())})
    target, previous = out_dir / CHECKPOINT, out_dir / PREVIOUS
    with temporary_folder(out_dir, f".{CHECKPOINT}.") as tmp:
        np.savez(tmp / VARIABLES, **arrays)
        with (tmp / STATE).open("wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
        manifest = {
            "format": FORMAT,
            **identity,
            "phase": int(phase),
            "epoch": None if epoch is None else int(epoch),
            "phases": len(trainer.phases),
            "samples_seen": trainer.samples_seen,
            "step": int(trainer.engine.batches_seen.numpy()),
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "variables": list(variables),
            "phase_start_variables": start_names,
            "files": {name: _sha256(tmp / name) for name in (VARIABLES, STATE)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n")
        if target.exists():
            shutil.rmtree(previous, ignore_errors=True)
            os.rename(target, previous)
        os.rename(tmp, target)
    shutil.rmtree(previous, ignore_errors=True)
    return target


def _read_manifest(folder: Path) -> dict:
    """The manifest of a complete, intact checkpoint folder.

    Raises:
        ValueError: the manifest is unreadable, of another format, or a file's digest differs.
    """
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT}")
    for name, digest in manifest["files"].items():
        if _sha256(folder / name) != digest:
            raise ValueError(f"{name} does not match its SHA-256 in {MANIFEST}")
    return manifest


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint of this run's config and data."""

    folder: Path
    manifest: dict

    def describe(self) -> dict:
        """Where the run resumed: for ``summary.json``."""
        keys = ("samples_seen", "step", "written_at")
        where = {"from_phase": self.manifest["phase"], "from_epoch": self.manifest.get("epoch")}
        return {**where, **{k: self.manifest[k] for k in keys}}

    def restore(self, trainer) -> None:
        """Restores plugins, variables and trainer state; the trainer goes on at the next phase.

        Called after the plugins' ``setup`` (``Trainer.resume``).

        Raises:
            CheckpointMismatchError: if the checkpoint's variables do not fit this run's
                (a checkpoint written by another version of the code).
        """
        with (self.folder / STATE).open("rb") as f:
            state = pickle.load(f)  # verified digest; written by this package
        trainer.strategy.restore(trainer.ctx, state["strategy"])
        trainer.restore_state(state["trainer"])
        if self.manifest.get("epoch") is None:  # at a phase end: go on at the next phase
            self._assign(trainer, state)
            trainer.start_phase = int(self.manifest["phase"]) + 1
            return
        # Within a phase: its before_phase runs again from the state at its start (plugins,
        # variables, random states), then the epoch end's variables and random states are put
        # back.
        self._assign(trainer, state["phase_start_random"], "phase_start_variables", "s")
        trainer.start_phase = int(self.manifest["phase"])
        trainer.start_epoch = int(self.manifest["epoch"]) + 1
        trainer.after_before_phase = lambda: self._assign(trainer, state)

    def _assign(self, trainer, random_state: dict, key: str = "variables", prefix: str = "v"):
        variables = trainer.engine.state_variables()
        names = self.manifest[key]
        with np.load(self.folder / VARIABLES) as saved:
            values = {name: saved[f"{prefix}{i}"] for i, name in enumerate(names)}
        shapes = {n: tuple(v.shape) for n, v in values.items()}
        if shapes != {n: tuple(v.shape) for n, v in variables.items()}:
            missing = sorted(set(variables) ^ set(values)) or sorted(
                n for n in variables if tuple(variables[n].shape) != shapes[n]
            )
            raise CheckpointMismatchError(
                f"Checkpoint {self.folder} does not fit this run: variables {missing[:6]} differ "
                "(written by another version of forgetbench?). Remove that folder to run from "
                "the start, or set checkpoint.resume=false"
            )
        for name, variable in variables.items():
            variable.assign(values[name])
        set_random_states(random_state)


def find_checkpoint(out_dir: Path, identity: dict) -> Checkpoint | None:
    """The run folder's checkpoint of this run, ``None`` if there is none (or only a damaged one).

    ``checkpoint.previous`` is used when ``checkpoint`` is missing or damaged (a write killed
    between its two renames).

    Raises:
        CheckpointMismatchError: it belongs to another config (naming the differing keys).
        CheckpointDataError: it was made on other data (naming the changed shard files).
    """
    remove_stale(stale_temporaries(out_dir, f".{CHECKPOINT}.*"))
    for folder in (out_dir / CHECKPOINT, out_dir / PREVIOUS):
        if not folder.is_dir():
            continue
        try:
            manifest = _read_manifest(folder)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("Checkpoint %s is damaged (%s): ignored.", folder, exc)
            continue
        if manifest.get("config_digest") != identity["config_digest"]:
            changes = "; ".join(
                config_differences(manifest.get("config") or {}, identity["config"])
            )
            raise CheckpointMismatchError(
                f"Run folder {out_dir} holds a checkpoint of another config (run "
                f"{manifest.get('run_id')}). Expected this config's ({identity['config_digest']}). "
                f"Differences (checkpoint -> now): {changes}. Remove {folder} to run this config "
                "from the start, or choose another hydra.run.dir / hydra.sweep.dir"
            )
        stored, now = manifest.get("data") or {}, identity["data"]
        if stored.get("fingerprint") != now.get("fingerprint"):
            files = "; ".join(changed(stored, now)) or "shard count or classes"
            raise CheckpointDataError(
                f"Run folder {out_dir} holds a checkpoint made on other data (fingerprint "
                f"{stored.get('fingerprint')}, now {now.get('fingerprint')}; changed: {files}). "
                f"Remove {folder} to run from the start on the data as it is now"
            )
        return Checkpoint(folder, manifest)
    return None
