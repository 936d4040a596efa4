"""One run: config in, run folder out (curves.parquet, summary.json, model.keras, figure)."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import resource
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from forgetbench.eval.evaluator import Evaluator, task_classes
from forgetbench.eval.summary import summarise
from forgetbench.plots.curves import plot_shard_curves
from forgetbench.plots.style import save_figure
from forgetbench.results.io import (
    CURVES,
    INTERRUPTED,
    MODEL,
    SUMMARY,
    read_json,
    to_jsonable,
    write_json,
    write_with,
)
from forgetbench.strategies.base import sequential_boundaries
from forgetbench.train.model import ShardModel
from forgetbench.train.trainer import Trainer

log = logging.getLogger(__name__)

PROC_STATUS = Path("/proc/self/status")
MEMORY_SAMPLE_SECONDS = 0.02


def _at_least(minimum):
    return lambda value: int(value) == value and value >= minimum


RULES = [
    ("train.batch_size", _at_least(1), "an integer >= 1"),
    ("train.epochs", _at_least(0), "an integer >= 0"),
    ("train.accumulation_steps", _at_least(1), "an integer >= 1"),
    ("train.steps_per_execution", _at_least(1), "an integer >= 1"),
    ("eval.every_samples", _at_least(1), "an integer >= 1"),
    ("eval.onset_delta", lambda v: v >= 0, "a number >= 0"),
    ("eval.onset_patience", _at_least(0), "an integer >= 0"),
]


def validate_config(cfg: DictConfig) -> None:
    """Refuses impossible values before any work, naming the key, the value and what is allowed.

    Raises:
        ValueError: ``Invalid config value KEY=VALUE. Expected ALLOWED.``
    """
    for key, ok, allowed in RULES:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not ok(value):
            raise ValueError(f"Invalid config value {key}={value!r}. Expected {allowed}.")


# Config keys that say where files go or how much is printed, not what is computed: left out of
# the run id's hash, so the same run has the same id on every machine.
RUN_ID_IGNORED = ("paths", "train.verbose", "data.cache_dir", "data.convert_cache")


def run_id(cfg: DictConfig, strategy: str, dataset: str, remainder: str) -> str:
    """A readable id of the run plus a hash of its resolved config (without ``RUN_ID_IGNORED``)."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in RUN_ID_IGNORED:
        *parents, leaf = key.split(".")
        node = resolved
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:8]
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


def _seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class RunInterrupted(BaseException):
    """Raised in the main thread on SIGTERM (what schedulers send before preemption)."""


@contextmanager
def _terminate_raises():
    """Turns SIGTERM into :class:`RunInterrupted` while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise RunInterrupted(f"received signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def rss_anon_mb() -> float | None:
    """The process's anonymous resident memory now (Linux ``RssAnon``), in MB; else ``None``.

    Unlike the resident set size it leaves out file-backed pages, such as memory-mapped shards
    in the page cache (reclaimable, and as large as the data set and free RAM allow).
    """
    try:
        with open(PROC_STATUS, "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (``ru_maxrss``, with mapped files), in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else kB


class PeakMemory:
    """Peak anonymous memory while a block runs: ``RssAnon`` sampled by a background thread.

    ``RssAnon`` is a current value, not a high-water mark (the kernel keeps one only for the
    whole resident set, ``VmHWM``/``ru_maxrss``), so a daemon thread reads it every
    ``interval`` seconds (about 50 µs a read), and once more on entry and exit. A peak shorter
    than the interval can be missed. Where ``/proc`` has no ``RssAnon`` (not Linux), no thread
    starts and ``peak`` stays ``None``.

    Attributes:
        peak: The largest value read, in MB, or ``None``.
    """

    def __init__(self, interval: float = MEMORY_SAMPLE_SECONDS, read=rss_anon_mb) -> None:
        self.interval, self.read = interval, read
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Reads the current value and keeps it if it is the largest so far."""
        value = self.read()
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        if self.peak is not None:
            self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def build_trainer(cfg: DictConfig):
    """Instantiates everything a run needs; returns the trainer, dataset, policy and strategy."""
    policy = instantiate(cfg.remainder)
    strategy = instantiate(cfg.strategy)  # before the data: bad hyperparameters fail first
    dataset = instantiate(cfg.data)
    net = instantiate(cfg.model)(dataset.train.feature_shape, dataset.num_classes)
    k = int(cfg.train.accumulation_steps)
    model = ShardModel(net, policy, accumulation_steps=k)
    # naive: Keras's own accumulation (equal weight per micro-batch) is the measured baseline.
    keras_accumulation = {} if policy.exact or k == 1 else {"gradient_accumulation_steps": k}
    model.compile(
        optimizer=instantiate(cfg.optimizer, **keras_accumulation),
        steps_per_execution=int(cfg.train.steps_per_execution),
    )
    batch_size, epochs = int(cfg.train.batch_size), int(cfg.train.epochs)
    phases = strategy.phases(dataset, seed=int(cfg.seed), batch_size=batch_size, policy=policy)
    total = epochs * sum(p.feed.samples_per_epoch for p in phases)
    boundaries = np.minimum(
        sequential_boundaries(dataset.train.sizes, epochs, batch_size, policy), total
    )
    boundaries[-1] = total
    trainer = Trainer(
        model=model,
        strategy=strategy,
        phases=phases,
        evaluator=Evaluator(
            dataset.heldout,
            batch_size=int(cfg.eval.batch_size),
            task_classes=task_classes(dataset, cfg.eval.scenario),
        ),
        epochs=epochs,
        every_samples=int(cfg.eval.every_samples),
        boundaries=boundaries,
        seed=int(cfg.seed),
        verbose=int(cfg.train.verbose),
        reset_optimizer=bool(cfg.train.reset_optimizer),
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

    A folder that already holds a ``summary.json`` is a finished run (``completed`` or
    ``diverged``): it is not redone, and its summary is returned, so a re-run sweep resumes
    where it stopped. On SIGINT or SIGTERM the partial curves and ``interrupted.json`` are
    written, no summary, and the interruption is raised again: a re-run redoes the job.

    Args:
        cfg: The composed config (``conf/config.yaml`` and overrides).
        out_dir: The run folder.
    """
    out_dir = Path(out_dir)
    if (out_dir / SUMMARY).exists():
        log.info("Skipping %s: %s exists (finished run).", out_dir, SUMMARY)
        return read_json(out_dir / SUMMARY)
    validate_config(cfg)
    with PeakMemory() as memory:  # data, model, training, evaluation, metrics; not the writing
        _seed_everything(int(cfg.seed))
        trainer, dataset, policy, strategy = build_trainer(cfg)
        identity = {
            "run_id": run_id(cfg, strategy.name, dataset.name, policy.name),
            "dataset": dataset.name,
            "strategy": strategy.name,
            "remainder": policy.name,
            "seed": int(cfg.seed),
        }
        try:
            with _terminate_raises():
                train_seconds = trainer.train()
        except (KeyboardInterrupt, RunInterrupted) as exc:
            partial = _curves(trainer, identity)
            write_with(out_dir / CURVES, lambda p: partial.to_parquet(p, index=False))
            write_json(
                out_dir / INTERRUPTED,
                {
                    "status": "interrupted",
                    "reason": str(exc) or type(exc).__name__,
                    **identity,
                    "samples_seen": trainer.samples_seen,
                },
            )
            raise
        curves = _curves(trainer, identity)
        total = int(trainer.boundaries[-1])
        results = (
            summarise(curves, trainer.boundaries, cfg.eval.onset_delta, cfg.eval.onset_patience)
            if trainer.diverged is None
            else {"diverged": trainer.diverged}
        )
    summary = {
        "status": "completed" if trainer.diverged is None else "diverged",
        **identity,
        **results,
        "phases": _phase_spans(trainer.phases, trainer.boundaries, total),
        "shards": {
            "names": dataset.train.names,
            "train_sizes": dataset.train.sizes.tolist(),
            "heldout_sizes": dataset.heldout.sizes.tolist(),
        },
        "timing": {
            "train_seconds": train_seconds,
            "eval_seconds": trainer.eval_seconds,
            "samples_seen": int(trainer.samples_seen),
            "samples_per_second": trainer.samples_seen / train_seconds if train_seconds else None,
        },
        "peak_memory_mb": memory.peak,  # anonymous (RssAnon, sampled); None off Linux
        "peak_rss_mb": peak_rss_mb(),  # with file-backed pages (memory-mapped shards)
        "optimizer_state": "reset per phase" if trainer.reset_optimizer else "kept across phases",
        "strategy_info": strategy.summary(),
        "train_log": trainer.train_log,
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    summary = to_jsonable(summary)  # what is returned is exactly what summary.json holds
    write_run_folder(out_dir, curves, summary, trainer.model.net)
    return summary


def write_run_folder(out_dir: Path, curves: pd.DataFrame, summary: dict, net) -> None:
    """Writes curves, model and figure, then the summary last: a summary means a complete run."""
    write_with(out_dir / CURVES, lambda p: curves.to_parquet(p, index=False))
    if summary["status"] == "completed":  # a diverged network is not worth keeping
        write_with(out_dir / MODEL, net.save)
    fig = plot_shard_curves(
        curves,
        phases=pd.DataFrame(summary["phases"]),
        onsets=pd.DataFrame(summary["onset"]) if "onset" in summary else None,
        title=f"{summary['strategy']} on {summary['dataset']} (seed {summary['seed']})",
    )
    save_figure(fig, out_dir / "curves")
    plt.close(fig)
    write_json(out_dir / SUMMARY, summary)
    (out_dir / INTERRUPTED).unlink(missing_ok=True)
