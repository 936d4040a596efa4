"""One run: config in, run folder out (curves.parquet, summary.json, model.keras, figure)."""

from __future__ import annotations

import json
import logging
import platform
import random
from contextlib import ExitStack
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from forgetbench.config_check import ConfigError, prepare
from forgetbench.data.fingerprint import fingerprint
from forgetbench.data.subset import select_shards
from forgetbench.eval.evaluator import SCENARIOS, Evaluator, task_classes
from forgetbench.eval.groups import config_groups, group_spans
from forgetbench.eval.summary import summarise, test_curves, validation_sizes
from forgetbench.memory import PeakMemory, peak_rss_mb
from forgetbench.options import (
    Rule,
    integer_at_least,
    invalid_message,
    number_where,
    one_of,
    option_message,
    or_null,
)
from forgetbench.results.io import (
    CURVES,
    INTERRUPTED,
    MODEL,
    SUMMARY,
    to_jsonable,
    write_json,
    write_with,
)
from forgetbench.results.run_files import split_summary, write_tables
from forgetbench.run_checkpoints import RunCheckpoints
from forgetbench.run_folder import (
    check_same_data,
    clear_temporaries,
    config_digest,
    finished_summary,
    run_lock,
)
from forgetbench.signals import terminate_raises
from forgetbench.strategies.base import sequential_boundaries
from forgetbench.tracking import make_tracker
from forgetbench.train.engine import Engine
from forgetbench.train.engines import cached_engine, engine_for
from forgetbench.train.networks import INIT_RULE
from forgetbench.train.trainer import Trainer

log = logging.getLogger(__name__)


# key: (rule, whether the key exists only in some config groups); plugins' own rules are
# their ``options`` (checked under strategy.plugins.NAME.KEY)
RULES = {
    "train.batch_size": (integer_at_least(1), False),
    "train.epochs": (integer_at_least(0), False),
    "train.accumulation_steps": (integer_at_least(1), False),
    "train.steps_per_call": (or_null(integer_at_least(1)), False),
    "eval.every_samples": (integer_at_least(1), False),
    "eval.onset_delta": (number_where(lambda v: v >= 0, "a number >= 0"), False),
    "eval.onset_patience": (integer_at_least(0), False),
    "eval.scenario": (one_of(SCENARIOS), False),
    "data.heldout_fraction": (number_where(lambda v: 0 < v < 1, "a number in (0, 1)"), True),
    "data.num_classes": (or_null(integer_at_least(1)), True),
    "model.init": (INIT_RULE, True),
}
_ABSENT = object()


def plugin_rules(cfg: DictConfig) -> dict[str, tuple[Rule, str | None]]:
    """``{strategy.plugins.NAME.KEY: (rule, label)}`` from each configured plugin's ``options``."""
    rules = {}
    for name, plugin in (OmegaConf.select(cfg, "strategy.plugins") or {}).items():
        try:
            cls = get_class(plugin["_target_"])
        except Exception:  # no such class: instantiating the strategy names the problem
            continue
        prefix = f"strategy.plugins.{name}"
        rules.update({f"{prefix}.{key}": (rule, cls.label) for key, rule in cls.options.items()})
    return rules


def validate_config(cfg: DictConfig) -> None:
    """Refuses impossible values before any work, naming the key, the value and what is allowed.

    Raises:
        ValueError: ``Invalid config value KEY=VALUE. Expected ALLOWED.``
    """
    plugins = plugin_rules(cfg)
    rules = {**RULES, **{key: (rule, True) for key, (rule, _) in plugins.items()}}
    for key, (rule, optional) in rules.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if optional and value is _ABSENT:
            continue
        if rule(value):
            continue
        label = plugins[key][1] if key in plugins else None
        if label:
            option = key.rpartition(".")[2]
            raise ConfigError(f"{option_message(label, option, value, rule)} ({key})")
        raise ConfigError(invalid_message(key, value, rule, missing=value is _ABSENT))


def run_id(cfg: DictConfig, strategy: str, dataset: str, remainder: str) -> str:
    """A readable id of the run plus a hash of its resolved config.

    ``SETTINGS_ONLY`` keys are left out, so the same run has the same id on every machine.
    """
    digest = config_digest(OmegaConf.to_container(cfg, resolve=True))
    return f"{dataset}-{strategy}-{remainder}-seed{cfg.seed}-{digest}"


def _phase_spans(phases, boundaries: np.ndarray, total: int) -> list[dict]:
    ends = boundaries.tolist() if len(phases) == len(boundaries) else [total] * len(phases)
    starts = [0, *ends[:-1]]
    return [
        {
            "phase": p.index,
            "train_shard": p.train_shard,
            "start_samples": int(s),
            "end_samples": int(e),
        }
        for p, s, e in zip(phases, starts, ends, strict=True)
    ]


def shard_boundaries(dataset, phases, epochs: int, batch_size: int, policy) -> np.ndarray:
    """Real samples the sequential feed has seen at the end of each shard (the last: the total)."""
    total = epochs * sum(p.feed.samples_per_epoch for p in phases)
    boundaries = np.minimum(
        sequential_boundaries(dataset.train.sizes, epochs, batch_size, policy), total
    )
    boundaries[-1] = total
    return boundaries


def seed_everything(seed: int, tensorflow: bool = True) -> None:
    """Seeds Python, numpy and (``tensorflow``) TensorFlow; turns on op determinism.

    Keras draws its initializers' seeds from Python's generator. TensorFlow's global seed only
    matters to graphs with stateful random ops, and setting it clears TensorFlow's kernel
    caches, so every traced function is instantiated again (about 0.2 s a run for the MLP):
    runs on a reused engine (whose traces hold no such op: ``Engine.reusable``) leave it.
    """
    if tensorflow:
        keras.utils.set_random_seed(seed)
    else:
        random.seed(seed)
        np.random.seed(seed)
    tf.config.experimental.enable_op_determinism()


class RunInterrupted(BaseException):
    """Raised in the main thread on SIGTERM (what schedulers send before preemption)."""


def engine_key(cfg: DictConfig, feature_shape, num_classes: int) -> str:
    """What a run's engine depends on: runs with the same key share one engine.

    The strategy is not part of it: the engine keeps one trace per plugin signature, so the
    strategies of a sweep (sequential, replay, EWC, joint) share the network, the evaluator's
    compiled pass and every trace whose plugins are the same.
    """
    parts = {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        for key in ("model", "optimizer", "remainder")
    }
    parts["accumulation_steps"] = int(cfg.train.accumulation_steps)
    parts["shape"] = [list(feature_shape), int(num_classes)]
    return json.dumps(parts, sort_keys=True, default=str)


def build_trainer(cfg: DictConfig, reuse_engine: bool = True):
    """Instantiates everything a run needs; returns the trainer, dataset, policy and strategy.

    Args:
        cfg: The composed config.
        reuse_engine: Reuse this process's engine (and its traced steps) of an earlier run with
            the same network, optimizer and policy (see :func:`engine_key`).
    """
    policy = instantiate(cfg.remainder)
    strategy = instantiate(cfg.strategy)  # before the data: bad hyperparameters fail first
    dataset = instantiate(cfg.data)  # builders use their own seeded generators
    dataset = select_shards(dataset, OmegaConf.select(cfg, "shard_range", default=None))
    shape, classes = dataset.train.feature_shape, dataset.num_classes
    key = engine_key(cfg, shape, classes) if reuse_engine else None
    cached = cached_engine(key)
    tf_seeded = cached is None
    seed_everything(int(cfg.seed), tensorflow=tf_seeded)
    net = instantiate(cfg.model)(shape, classes)  # the run's initial weights, under its seed
    k = int(cfg.train.accumulation_steps)
    # naive: Keras's own accumulation (equal weight per micro-batch) is the measured baseline.
    keras_accumulation = {} if policy.exact or k == 1 else {"gradient_accumulation_steps": k}

    def make_optimizer():
        return instantiate(cfg.optimizer, **keras_accumulation)

    engine = engine_for(key, lambda: Engine(net, make_optimizer, policy, accumulation_steps=k))
    plugins = OmegaConf.to_container(cfg.strategy, resolve=True).get("plugins") or {}
    engine.start_run(
        net,
        tf_seeded=tf_seeded,
        seed=int(cfg.seed),
        feature_shape=shape,
        num_classes=classes,
        plugin_configs={name: json.dumps(c, sort_keys=True) for name, c in plugins.items()},
        shard_classes=[shard.classes for shard in dataset.train.shards],
        scenario=str(cfg.eval.scenario),
    )
    batch_size, epochs = int(cfg.train.batch_size), int(cfg.train.epochs)
    phases = strategy.phases(dataset, seed=int(cfg.seed), batch_size=batch_size, policy=policy)
    for phase in phases:
        if phase.feed.samples_per_epoch == 0:
            shard = "all shards" if phase.train_shard is None else f"shard {phase.train_shard}"
            raise ValueError(
                f"Phase {phase.index} ({shard}) has {phase.feed.num_samples} samples: expected at "
                f"least train.batch_size={batch_size} under remainder={policy.name}, which drops "
                "a partial batch, so nothing of it would be trained. Use a smaller batch size or "
                "another remainder policy"
            )
    boundaries = shard_boundaries(dataset, phases, epochs, batch_size, policy)
    steps_per_call = cfg.train.get("steps_per_call")
    trainer = Trainer(
        engine=engine,
        strategy=strategy,
        phases=phases,
        evaluator=Evaluator(
            dataset.heldout,
            batch_size=int(cfg.eval.batch_size),
            task_classes=task_classes(dataset, cfg.eval.scenario),
            groups=config_groups(cfg, dataset.train.names).of_shard,
            validation=dataset.validation,
        ),
        epochs=epochs,
        every_samples=int(cfg.eval.every_samples),
        boundaries=boundaries[config_groups(cfg, dataset.train.names).last_shards()],
        verbose=int(cfg.train.verbose),
        reset_optimizer=bool(cfg.train.reset_optimizer),
        steps_per_call=None if steps_per_call is None else int(steps_per_call),
    )
    return trainer, dataset, policy, strategy


def _curves(trainer: Trainer, identity: dict) -> pd.DataFrame:
    curves = pd.DataFrame.from_records(trainer.records)
    for position, (key, value) in enumerate(identity.items()):
        curves.insert(position, key, value)
    curves["train_shard"] = curves["train_shard"].astype("Int64")
    return curves


def run(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Runs one experiment and writes its run folder; returns the summary.

    A folder that already holds this config's finished run (``completed`` or ``diverged``,
    summary and curves readable) is not redone: its summary is returned, so a re-run sweep
    resumes where it stopped. A damaged one is run again; one holding another config's run is
    refused (:class:`OtherConfigError`). While training, the run holds the folder's lock, so a
    second process gives way (:class:`RunInProgressError`). On SIGINT or SIGTERM the partial curves
    and ``interrupted.json`` are written, no summary, and the interruption is raised again: a
    re-run redoes the job.

    Args:
        cfg: The composed config (``conf/config.yaml`` and overrides).
        out_dir: The run folder.
    """
    out_dir = Path(out_dir)
    prepare(cfg)  # missing values, unknown keys, path spellings
    resolved = OmegaConf.to_container(cfg, resolve=True)
    finished = finished_summary(out_dir, resolved)
    if finished is not None:
        check_same_data(
            finished,
            out_dir,
            lambda: fingerprint(select_shards(instantiate(cfg.data), cfg.get("shard_range"))),
        )
        log.info("Skipping %s: %s exists (finished run).", out_dir, SUMMARY)
        return finished
    validate_config(cfg)
    with ExitStack() as folder:  # the folder's lock, held until the summary is written
        with PeakMemory() as memory:  # data, model, training, evaluation, metrics; not the writing
            trainer, dataset, policy, strategy = build_trainer(cfg)
            folder.enter_context(run_lock(out_dir))
            finished = finished_summary(out_dir, resolved)  # done meanwhile by another process
            if finished is not None:
                check_same_data(finished, out_dir, lambda: fingerprint(dataset))
                return finished
            clear_temporaries(out_dir)
            identity = {
                "run_id": run_id(cfg, strategy.name, dataset.name, policy.name),
                "dataset": dataset.name,
                "strategy": strategy.name,
                "remainder": policy.name,
                "seed": int(cfg.seed),
            }
            data_fingerprint = fingerprint(dataset)  # the checkpoint's and the summary's
            checkpoints = RunCheckpoints(
                cfg, out_dir, resolved, data_fingerprint, identity["run_id"]
            )
            checkpoints.attach(trainer)  # resumes from this run's checkpoint, if any
            tracker = make_tracker(cfg, out_dir, identity)
            tracker.attach(trainer)
            try:
                with terminate_raises(RunInterrupted):
                    train_seconds = trainer.train()
            except (KeyboardInterrupt, RunInterrupted) as exc:
                phase = getattr(trainer.ctx, "phase", None)
                partial = _curves(trainer, identity)
                write_with(out_dir / CURVES, lambda p: partial.to_parquet(p, index=False))
                write_json(
                    out_dir / INTERRUPTED,
                    {
                        "status": "interrupted",
                        "reason": str(exc) or type(exc).__name__,
                        **identity,
                        "samples_seen": trainer.samples_seen,
                        "step": int(trainer.engine.batches_seen.numpy()),
                        "phase": None if phase is None else phase.index,
                    },
                )
                raise
            curves = _curves(trainer, identity)
            total = int(trainer.boundaries[-1])
            groups = config_groups(cfg, dataset.train.names)
            batch_size = int(cfg.train.batch_size)
            shards_end = shard_boundaries(
                dataset, trainer.phases, trainer.epochs, batch_size, policy
            )
            results = (
                summarise(
                    curves,
                    trainer.boundaries,  # of the groups
                    cfg.eval.onset_delta,
                    cfg.eval.onset_patience,
                    mixed=all(p.train_shard is None for p in trainer.phases),
                )
                if trainer.diverged is None
                else {"diverged": trainer.diverged}
            )
        summary = {
            "status": "completed" if trainer.diverged is None else "diverged",
            **identity,
            **results,
            "phases": group_spans(_phase_spans(trainer.phases, shards_end, total), groups),
            "groups": {"count": groups.count, "names": groups.names},
            "shards": {
                "names": dataset.train.names,
                "train_sizes": dataset.train.sizes.tolist(),
                "heldout_sizes": dataset.heldout.sizes.tolist(),
                "group": groups.of_shard.tolist(),
                "group_name": [groups.names[g] for g in groups.of_shard],
                **validation_sizes(dataset),
            },
            "data": data_fingerprint,
            "timing": {
                "train_seconds": train_seconds,
                "eval_seconds": trainer.eval_seconds,
                "samples_seen": int(trainer.samples_seen),
                "samples_per_second": trainer.samples_seen / train_seconds
                if train_seconds
                else None,
            },
            "peak_memory_mb": memory.peak,  # anonymous (RssAnon, sampled); None off Linux
            "peak_rss_mb": peak_rss_mb(),  # with file-backed pages (memory-mapped shards)
            "optimizer_state": "reset per phase"
            if trainer.reset_optimizer
            else "kept across phases",
            "strategy_info": strategy.summary(),
            "resumed": checkpoints.resumed,  # null, or the phase (epoch) it resumed after
            "train_log": trainer.train_log,
            "versions": {
                "python": platform.python_version(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
            },
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        summary = to_jsonable(summary)  # what is returned is what read_summary(out_dir) gives
        figure = bool(OmegaConf.select(cfg, "output.run_figure", default=True))
        write_run_folder(out_dir, curves, summary, trainer.saved_net, figure=figure)
        checkpoints.finish()
        tracker.finish(summary)
        return summary


def write_run_folder(
    out_dir: Path, curves: pd.DataFrame, summary: dict, net, figure: bool = True
) -> None:
    """Writes curves, model and (``figure``) the run's figure, the tables, then the summary.

    The summary comes last: a folder with a summary holds a complete run. What grows with the
    shard count (accuracy matrix, per-shard sizes and groups, training log) goes to parquet
    tables beside it (:mod:`forgetbench.results.run_files`).
    """
    write_with(out_dir / CURVES, lambda p: curves.to_parquet(p, index=False))
    if summary["status"] == "completed":  # a diverged network is not worth keeping
        write_with(out_dir / MODEL, net.save)
    if figure:
        write_run_figure(out_dir, curves, summary)
    compact, tables = split_summary(summary)
    write_tables(out_dir, tables)
    write_json(out_dir / SUMMARY, compact)
    (out_dir / INTERRUPTED).unlink(missing_ok=True)


def write_run_figure(out_dir: Path, curves: pd.DataFrame, summary: dict) -> None:
    """``curves.png`` and ``curves.pdf``: the run's per-shard accuracy curves."""
    import matplotlib.pyplot as plt  # only here: training needs no plotting

    from forgetbench.plots.curves import plot_shard_curves
    from forgetbench.plots.style import save_figure

    fig = plot_shard_curves(
        test_curves(curves),
        phases=pd.DataFrame(summary["phases"]),
        onsets=pd.DataFrame(summary["onset"]) if "onset" in summary else None,
        title=f"{summary['strategy']} on {summary['dataset']} (seed {summary['seed']})",
        names=(summary.get("groups") or {}).get("names"),
    )
    save_figure(fig, out_dir / "curves")
    plt.close(fig)
