"""Shared fixtures: tiny configs composed from the real config tree, test plugins, fake runs.

Tests reach these helpers through fixtures (``compose_config``, ``tiny_overrides``,
``conf_dir``, ``write_fake_run``), never by importing this module; configs name the test plugins as
``conftest.NAME`` in a ``_target_``.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from forgetbench.strategies.base import Plugin

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONF = str(Path(__file__).resolve().parents[1] / "conf")

TINY = [
    "data.num_shards=3",
    "data.dim=5",
    "data.samples_per_shard=120",
    "data.heldout_per_shard=40",
    "model.hidden=[8]",
    "train.epochs=1",
    "train.batch_size=16",
    "train.verbose=0",
    "eval.every_samples=50",
]

# One epoch of batches of 64, evaluated only at phase ends: runs on any dataset, quickly.
QUICK = [
    "model.hidden=[8]",
    "train.epochs=1",
    "train.batch_size=64",
    "train.verbose=0",
    "eval.every_samples=100000",
]


def compose_config(overrides: list[str] | None = None):
    """The real config tree composed with ``overrides`` (no Hydra app, no chdir)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=list(overrides or []))


@pytest.fixture(name="compose_config")
def compose_config_fixture():
    """Returns ``compose_config(overrides)``: the real config tree composed with overrides."""
    return compose_config


@pytest.fixture
def tiny_overrides() -> list[str]:
    """The overrides of the tiny config (3 small shards, one epoch), a fresh list."""
    return list(TINY)


@pytest.fixture
def quick_overrides() -> list[str]:
    """The overrides of a quick run on any dataset (evaluated only at phase ends), a fresh list."""
    return list(QUICK)


@pytest.fixture
def conf_dir() -> str:
    """The real config tree's folder (``conf/``)."""
    return CONF


@pytest.fixture
def preset_acc(tmp_path):
    """Returns ``preset_acc(experiment, strategy)``: final ACC under a preset, seeds 0, 1, 2."""
    from forgetbench.run import run

    def acc(experiment: str, strategy: str) -> np.ndarray:
        values = []
        for seed in (0, 1, 2):
            cfg = compose_config(
                [
                    f"experiment={experiment}",
                    f"strategy={strategy}",
                    f"seed={seed}",
                    "output.run_figure=false",
                    f"paths.data_cache={tmp_path / 'data'}",
                ]
            )
            folder = tmp_path / f"{experiment}-{strategy}-{seed}"
            values.append(run(cfg, folder)["metrics"]["acc"])
        return np.array(values)

    return acc


@pytest.fixture
def keras_session():
    """A fresh Keras session for tests that build models.

    Engines (and their traced steps) are kept across tests, as across the runs of a sweep: each
    run starts from its own seeded weights and reset state (tests/test_extension_points.py
    checks that a reused engine gives a fresh engine's curves).
    """
    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


@pytest.fixture
def tiny_cfg(tmp_path, keras_session):
    """Returns a function composing the tiny config (cache in ``tmp_path``) plus overrides."""

    def make(*overrides: str):
        return compose_config([*TINY, f"paths.data_cache={tmp_path / 'data'}", *overrides])

    return make


class SignalAtSetup(Plugin):
    """A test plugin that sends the process SIGTERM when it is built (before any data)."""

    def __init__(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)


class SignalAfterPhase(Plugin):
    """A test plugin that sends the process a signal after a given phase (simulated preemption)."""

    def __init__(self, phase: int = 0, signum: int = 15) -> None:
        self.phase, self.signum = phase, signum

    def after_phase(self, ctx, phase):
        if phase.index == self.phase:
            import os

            os.kill(os.getpid(), self.signum)


class EvaluateAfterPhase(Plugin):
    """A test plugin that evaluates the model as each phase hands it on (after ``fit``)."""

    def __init__(self) -> None:
        self.after: list[tuple[int, list[dict]]] = []

    def after_phase(self, ctx, phase):
        self.after.append((ctx.samples_seen, ctx.evaluate()))


def write_shards(folder, sizes=(5, 7, 3), dim=4, seed=0, override=None):
    """Writes ``s0.npz``, ``s1.npz``, ... (``array1``: normal features, ``array2``: classes 0-2).

    Args:
        folder: Where to write (created).
        sizes: Samples of each shard.
        dim: Features per sample.
        seed: Seed of the values.
        override: ``{shard index: {member: array}}`` replacing or adding members.

    Returns:
        ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k, n in enumerate(sizes):
        arrays = {
            "array1": rng.normal(size=(n, dim)).astype(np.float32),
            "array2": rng.integers(0, 3, size=n),
        }
        arrays.update((override or {}).get(k, {}))
        np.savez(folder / f"s{k}.npz", **arrays)
    return folder


@pytest.fixture(name="write_shards")
def write_shards_fixture():
    """Returns ``write_shards(folder, sizes, dim, seed, override)``: a folder of ``.npz`` shards."""
    return write_shards


def write_fake_run(folder: Path, strategy: str, seed: int, **extra) -> None:
    """A hand-made finished run folder (3 shards, evaluation every 50 samples), no training."""
    import json

    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True)
    run_id = f"toy-{strategy}-weighted-seed{seed}"
    boundaries = [100, 200, 300]
    seen = np.arange(0, 301, 50)
    rows = []
    for j in range(3):
        # Shard j rises while trained; sequential forgets it afterwards, mixing does not.
        acc = np.clip(0.5 + (seen - 100 * j) / 200, 0.5, 0.9) if strategy == "joint" else None
        if acc is None:
            acc = np.where(seen >= 100 * (j + 1), 0.9, 0.5)
            if strategy == "sequential":
                acc = np.where(seen >= 100 * (j + 2) + 50 * seed, 0.3, acc)
        for t, (s, a) in enumerate(zip(seen, acc, strict=True)):
            rows.append(
                {
                    "run_id": run_id,
                    "dataset": "toy",
                    "strategy": strategy,
                    "remainder": "weighted",
                    "seed": seed,
                    "step": t * 5,
                    "samples_seen": int(s),
                    "epoch": 0,
                    "train_shard": min(int(s) // 100, 2) if strategy == "sequential" else None,
                    "eval_shard": j,
                    "accuracy": float(a) + 0.01 * seed,
                    "loss": 1.0 - float(a),
                    "n_eval": 20,
                }
            )
    curves = pd.DataFrame(rows)
    curves["train_shard"] = curves["train_shard"].astype("Int64")
    curves.to_parquet(folder / "curves.parquet", index=False)
    wide = curves.pivot_table(index="samples_seen", columns="eval_shard", values="accuracy")
    R = wide.loc[boundaries].to_numpy()
    forgotten = strategy == "sequential"
    onset = [
        {
            "eval_shard": j,
            "step": None,
            "samples_seen": 100 * (j + 2) + 50 * seed if forgotten and j == 0 else None,
            "samples_to_forget": 100 + 50 * seed if forgotten and j == 0 else None,
        }
        for j in range(3)
    ]
    spans = [(0, 100, 0), (100, 200, 1), (200, 300, 2)]
    summary = {
        "status": "completed",
        "run_id": run_id,
        "dataset": "toy",
        "strategy": strategy,
        "remainder": "weighted",
        "seed": seed,
        "metrics": {
            "acc": float(R[-1].mean()),
            "bwt": float(np.mean([R[-1, j] - R[j, j] for j in range(2)])),
            "fwt": 0.0,
            "forgetting": float(np.mean([R[:2, j].max() - R[-1, j] for j in range(2)])),
            **extra.pop("metrics", {}),
        },
        "accuracy_matrix": R.tolist(),
        "init_accuracy": wide.iloc[0].tolist(),
        "boundaries": boundaries,
        "onset": onset,
        "phases": [
            {
                "phase": p,
                "train_shard": shard if strategy == "sequential" else None,
                "start_samples": start,
                "end_samples": end,
            }
            for p, (start, end, shard) in enumerate(spans)
        ]
        if strategy == "sequential"
        else [{"phase": 0, "train_shard": None, "start_samples": 0, "end_samples": 300}],
        "timing": {"train_seconds": 1.0, "samples_per_second": 300.0},
        "config": {"seed": seed, "train": {"batch_size": 16, "epochs": 1}},
        **extra,
    }
    (folder / "summary.json").write_text(json.dumps(summary))


@pytest.fixture(name="write_fake_run")
def write_fake_run_fixture():
    """Returns ``write_fake_run(folder, strategy, seed, **extra)``: a hand-made finished run."""
    return write_fake_run


@pytest.fixture
def fake_sweep(tmp_path):
    """A sweep folder of hand-made runs: sequential and joint x seeds 0, 1; one diverged run,
    one unfinished folder. The sequential runs also report ``min_acc``.
    """
    sweep = tmp_path / "sweep"
    for strategy in ("sequential", "joint"):
        for seed in (0, 1):
            metrics = {"min_acc": 0.2 + 0.1 * seed} if strategy == "sequential" else {}
            write_fake_run(sweep / f"{strategy}-{seed}", strategy, seed, metrics=metrics)
    write_fake_run(sweep / "sequential-9", "sequential", 9)
    diverged = sweep / "sequential-9" / "summary.json"
    import json

    data = json.loads(diverged.read_text())
    data["status"] = "diverged"
    for key in ("metrics", "accuracy_matrix", "onset"):
        data.pop(key)
    diverged.write_text(json.dumps(data))
    (sweep / "unfinished" / ".hydra").mkdir(parents=True)
    return sweep


class PreemptAfterFirstCheckpoint:
    """A Hydra callback: the job of ``strategy`` gets SIGUSR2 right after its first checkpoint.

    SIGUSR2 is what SLURM sends (``--signal=USR2@DELAY``) before a time limit or preemption, and
    what Submitit's local executor sends too; Submitit's handler then requeues the job. The
    ``marker`` file makes it happen once: the requeued job runs to its end.
    """

    def __init__(self, marker: str, strategy: str) -> None:
        self.marker, self.strategy = marker, strategy

    def on_job_start(self, config, **kwargs) -> None:
        import os
        import signal
        from pathlib import Path

        import forgetbench.checkpoint as checkpoint

        job = f"strategy={self.strategy}"
        if Path(self.marker).exists() or job not in list(config.hydra.overrides.task):
            return
        write = checkpoint.write_checkpoint

        def write_then_signal(*args, **kw):
            folder = write(*args, **kw)
            if not Path(self.marker).exists():
                Path(self.marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGUSR2)
            return folder

        checkpoint.write_checkpoint = write_then_signal

    def __getattr__(self, name):  # Hydra calls every hook: the others do nothing
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)
