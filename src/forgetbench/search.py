"""Hyperparameter search trials: validation objective over a few seeds, recorded per trial.

A search (``forgetbench -m search=STRATEGY``, presets in ``conf/search/``) is a Hydra multirun
driven by the Optuna sweeper; each of its jobs is one trial. A trial trains its config under
every seed of ``tuning.seeds`` (run folders ``JOB/seed=S``, so a re-run reuses finished ones)
and returns the mean of ``tuning.objective`` over them. The objective must be a validation
metric (``val_`` prefix): only the validation split is read, never the test split.

A trial whose runs diverge or fail returns the worst value for the direction (``-inf`` when
maximising, ``inf`` when minimising), so the sampler never takes it for a good score, and its
``trial.json`` records its status (``completed``, ``diverged`` or ``failed``) and why.

Resuming: the sampler is seeded (``hydra.sweeper.sampler.seed``), so the same command proposes
the same configurations in the same order; their job folders are the same, and finished runs
are reused, not trained again. A study cut short is resumed by running the command again (with
a larger ``hydra.sweeper.n_trials`` to extend it): finished trials are neither repeated nor lost.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from forgetbench.config_check import ConfigError
from forgetbench.eval.summary import VALIDATION_PREFIX
from forgetbench.results.io import write_json

TRIAL = "trial.json"
DIRECTIONS = ("maximize", "minimize")


def check_tuning(tuning: DictConfig | dict) -> dict:
    """The ``tuning`` settings, checked: objective, direction and seeds.

    Raises:
        ConfigError: naming the key, for an objective that is not a validation metric, an
            unknown direction, or no seeds.
    """
    settings = (
        OmegaConf.to_container(tuning, resolve=True)
        if OmegaConf.is_config(tuning)
        else dict(tuning)
    )
    objective = settings.get("objective")
    if not isinstance(objective, str) or not objective.startswith(VALIDATION_PREFIX):
        raise ConfigError(
            f"Invalid config value tuning.objective={objective!r}. Expected a validation metric "
            f"of summary.json, named {VALIDATION_PREFIX}METRIC (e.g. val_acc): a search must "
            "never read the test split, whose numbers it would otherwise report as its own"
        )
    if settings.get("direction") not in DIRECTIONS:
        raise ConfigError(
            f"Invalid config value tuning.direction={settings.get('direction')!r}. Expected "
            f"one of {list(DIRECTIONS)}"
        )
    seeds = settings.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(
            f"Invalid config value tuning.seeds={seeds!r}. Expected a non-empty list of integer "
            "training seeds, e.g. [100, 101] (not those of the final comparison)"
        )
    return settings


def worst(direction: str) -> float:
    """The value a failed or diverged trial returns: the worst for ``direction``."""
    return -math.inf if direction == "maximize" else math.inf


def objective_value(summary: dict, objective: str) -> float | None:
    """The objective of one finished run (``None`` when it diverged or lacks the metric).

    Reads ``summary["metrics"][objective]`` alone: a validation metric, checked by
    :func:`check_tuning`.
    """
    if summary.get("status") != "completed":
        return None
    value = (summary.get("metrics") or {}).get(objective)
    return None if value is None or not math.isfinite(value) else float(value)


def run_trial(
    cfg: DictConfig,
    out_dir: Path,
    run: Callable[[DictConfig, Path], dict],
    overrides=(),
    number: int | None = None,
) -> float:
    """Runs a trial's seeds, writes ``out_dir/trial.json`` and returns its objective.

    Args:
        cfg: The trial's composed config (with ``tuning``).
        out_dir: The trial's job folder; seed ``S`` runs in ``out_dir/seed=S``.
        run: Runs one config into a folder and returns its summary (``forgetbench.run.run``).
        overrides: The trial's overrides (recorded).
        number: The trial's job number in the search (recorded: ties go to the earliest).

    Raises:
        ConfigError: for bad ``tuning`` settings (before any training).
    """
    settings = check_tuning(cfg.tuning)
    objective, direction = settings["objective"], settings["direction"]
    values, runs, status, reason = [], [], "completed", None
    for seed in settings["seeds"]:
        seeded = cfg.copy()
        with open_dict(seeded):
            seeded.seed = int(seed)
        folder = out_dir / f"seed={seed}"
        try:
            summary = run(seeded, folder)
        except Exception as exc:  # recorded as a failed trial; the search goes on
            from forgetbench.sweep import error_line

            status, reason = "failed", error_line(exc)
            runs.append({"seed": seed, "folder": str(folder), "status": "failed"})
            break
        value = objective_value(summary, objective)
        runs.append(
            {"seed": seed, "folder": str(folder), "status": summary["status"], objective: value}
        )
        if value is None:
            status = "diverged" if summary["status"] == "diverged" else "failed"
            reason = (summary.get("diverged") or {}).get("reason") or f"no {objective}"
            break
        values.append(value)
    result = sum(values) / len(values) if status == "completed" else worst(direction)
    write_json(
        out_dir / TRIAL,
        {
            "status": status,
            "reason": reason,
            "objective": objective,
            "direction": direction,
            "value": result if status == "completed" else None,
            "overrides": [str(o) for o in overrides],
            "number": number,
            "runs": runs,
        },
    )
    return result


def trials_table(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per trial of a search folder, best first (failed and diverged trials last).

    Columns ``folder, status, value, objective, direction, overrides, reason, number``; equal
    values are ordered by ``number`` (the earliest trial first, as Optuna's best trial).
    """
    rows = []
    for path in sorted(Path(sweep_dir).rglob(TRIAL)):
        trial = json.loads(path.read_text())
        rows.append({"folder": str(path.parent), **trial})
    columns = ["folder", "status", "value", "objective", "direction", "overrides", "reason"]
    columns.append("number")
    table = pd.DataFrame(rows, columns=[*columns, "runs"])[columns]
    if table.empty:
        return table
    maximise = (table["direction"] == "maximize").all()
    table = table.sort_values("number", na_position="last", kind="stable")
    ordered = table.sort_values("value", ascending=not maximise, na_position="last", kind="stable")
    return ordered.reset_index(drop=True)


def best_trial(sweep_dir: str | Path) -> dict:
    """The completed trial with the best objective of a search folder.

    Raises:
        ValueError: naming the folder, when no trial completed.
    """
    table = trials_table(sweep_dir)
    done = table[table["status"] == "completed"]
    if done.empty:
        raise ValueError(
            f"Search folder {sweep_dir}: expected at least one completed trial ({TRIAL} with "
            f"status completed). Received {len(table)} trial(s), none completed: see their "
            "reasons in trial.json, then narrow the search space"
        )
    return done.iloc[0].to_dict()
